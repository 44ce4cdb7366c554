//! Token-level rewards (recipe step 5): a sample's score sits on its last response token;
//! every other token's reward is 0 (ORZ: `score_tensor[-1] = score`).
//!
//! ORZ builds no score tensor for an empty response and then drops the sample
//! ([`super::is_droppable`]); here an empty response is an error, so that a caller that forgot
//! to drop it hears about it instead of losing the score silently.

use alloc::vec;
use alloc::vec::Vec;

use num_traits::Float;

use crate::error::{Error, Result, check_finite, check_len};

/// Per-token rewards of one response of `response_len` tokens: zeros, then `score` last.
/// Errors if `response_len` is 0 or `score` is not finite.
pub fn place_on_last_token<F: Float>(score: F, response_len: usize) -> Result<Vec<F>> {
    check_finite("place_on_last_token", "score", &[score])?;
    let last =
        response_len.checked_sub(1).ok_or(Error::Empty { op: "place_on_last_token", what: "response" })?;
    let mut out = vec![F::zero(); response_len];
    if let Some(slot) = out.get_mut(last) {
        *slot = score;
    }
    Ok(out)
}

/// Flattened per-token rewards of several responses laid end to end (in order): sample `i`
/// takes `response_lens[i]` tokens, all 0 except its last, which holds `scores[i]`. Errors if
/// the slices differ in length, a length is 0, a score is not finite or the total overflows.
pub fn place_on_last_tokens<F: Float>(scores: &[F], response_lens: &[usize]) -> Result<Vec<F>> {
    const OP: &str = "place_on_last_tokens";
    check_len(OP, ("scores", scores.len()), ("response_lens", response_lens.len()))?;
    check_finite(OP, "scores", scores)?;
    let mut total: usize = 0;
    for (i, &len) in response_lens.iter().enumerate() {
        if len == 0 {
            return Err(Error::invalid(
                OP,
                alloc::format!("response {i} has length 0 (drop empty responses first)"),
            ));
        }
        total = total.checked_add(len).ok_or_else(|| Error::invalid(OP, "total length overflows usize"))?;
    }
    let mut out = vec![F::zero(); total];
    let mut end = 0usize;
    for (&score, &len) in scores.iter().zip(response_lens) {
        end += len; // cannot overflow: bounded by `total`
        if let Some(slot) = out.get_mut(end - 1) {
            *slot = score;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn single_response() {
        assert_eq!(place_on_last_token(1.0f32, 4).unwrap(), vec![0.0, 0.0, 0.0, 1.0]);
        assert_eq!(place_on_last_token(0.5f64, 1).unwrap(), vec![0.5]);
        assert_eq!(
            place_on_last_token(1.0f32, 0),
            Err(Error::Empty { op: "place_on_last_token", what: "response" })
        );
        assert!(matches!(place_on_last_token(f32::NAN, 3), Err(Error::NonFinite { .. })));
    }

    #[test]
    fn packed_responses() {
        let out = place_on_last_tokens(&[1.0f32, 0.0, 0.1], &[2, 1, 3]).unwrap();
        assert_eq!(out, vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.1]);
        assert_eq!(place_on_last_tokens::<f32>(&[], &[]).unwrap(), Vec::<f32>::new());
        assert!(matches!(place_on_last_tokens(&[1.0f32], &[1, 2]), Err(Error::LengthMismatch { .. })));
        assert!(matches!(place_on_last_tokens(&[1.0f32, 2.0], &[1, 0]), Err(Error::InvalidArgument { .. })));
        assert!(matches!(
            place_on_last_tokens(&[1.0f32, f32::INFINITY], &[1, 1]),
            Err(Error::NonFinite { .. })
        ));
        assert!(place_on_last_tokens(&[1.0f32, 1.0], &[usize::MAX, 2]).is_err());
    }

    proptest! {
        #[test]
        fn packed_equals_concatenated_singles(
            samples in proptest::collection::vec((-10.0f64..10.0, 1usize..20), 0..10)
        ) {
            let (scores, lens): (Vec<f64>, Vec<usize>) = samples.iter().copied().unzip();
            let packed = place_on_last_tokens(&scores, &lens).unwrap();
            let mut concat = Vec::new();
            for (&s, &l) in scores.iter().zip(&lens) {
                concat.extend(place_on_last_token(s, l).unwrap());
            }
            prop_assert_eq!(&packed, &concat);
            prop_assert_eq!(packed.iter().sum::<f64>(), scores.iter().sum::<f64>());
        }
    }
}
