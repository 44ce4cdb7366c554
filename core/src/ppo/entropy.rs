//! The entropy bonus (an option; ORZ uses none): the full-vocabulary entropy of the current
//! policy at each response position, `H = −Σ_v p_v · log p_v` with `p = softmax(logits)`,
//! as a tensor ([`entropy_from_logits`], differentiable in the logits) and its host oracle with
//! the gradient ([`entropy_host`], `dH/dz_v = −p_v · (log p_v + H)`).
//!
//! The trainer subtracts `entropy_coef × H_t` from each response token's policy loss and
//! aggregates it with the policy loss's token weights (OpenRLHF `--entropy_loss_coef`, veRL
//! `actor.entropy_coeff`: `pg_loss − coef · agg(entropy)`, with the policy loss's
//! `loss_agg_mode`). Under the chunked LM head ([`crate::model::backprop`]) it is computed per
//! chunk from the chunk's logits, so no `[T, vocab]` tensor outlives a chunk.

use alloc::vec::Vec;
use num_traits::Float;

use crate::backend::Backend;
use crate::error::{Error, Result, check_finite};

/// The entropy of `softmax(logits)` along the last dimension (`[.., vocab]` to `[..]`),
/// differentiable in `logits`.
pub fn entropy_from_logits<B: Backend + ?Sized>(b: &B, logits: &B::Tensor) -> Result<B::Tensor> {
    let dim = b.shape(logits).len().checked_sub(1).ok_or(Error::Empty { op: "entropy", what: "logits" })?;
    let logp = b.log_softmax(logits, dim)?;
    b.neg(&b.sum(&b.mul(&b.exp(&logp)?, &logp)?, dim, false)?)
}

/// Host oracle: the entropy of `softmax(logits)` of one position and its gradient with respect
/// to the logits (`dH/dz_v = −p_v · (log p_v + H)`). Errors: no logit, a non-finite logit.
pub fn entropy_host<F: Float>(logits: &[F]) -> Result<(F, Vec<F>)> {
    check_finite("entropy", "logits", logits)?;
    let max = logits.iter().copied().reduce(F::max).ok_or(Error::Empty { op: "entropy", what: "logits" })?;
    let lse = max + logits.iter().map(|&z| (z - max).exp()).fold(F::zero(), |a, x| a + x).ln();
    let logp: Vec<F> = logits.iter().map(|&z| z - lse).collect();
    let h = -logp.iter().map(|&l| l.exp() * l).fold(F::zero(), |a, x| a + x);
    Ok((h, logp.iter().map(|&l| -(l.exp()) * (l + h)).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn uniform_logits_have_entropy_ln_v() {
        for v in [1usize, 2, 7, 64] {
            let (h, g) = entropy_host(&alloc::vec![0.3f64; v]).unwrap();
            assert!((h - (v as f64).ln()).abs() < 1e-12, "V = {v}: {h}");
            // The maximum: the gradient vanishes.
            assert!(g.iter().all(|x| x.abs() < 1e-12), "V = {v}: {g:?}");
        }
        // Hand value: p = (1/2, 1/2 · ...) for logits (ln 2, 0, 0) → p = (1/2, 1/4, 1/4),
        // H = ½ ln 2 + 2 · ¼ ln 4 = 1.5 ln 2.
        let (h, _) = entropy_host(&[2f64.ln(), 0.0, 0.0]).unwrap();
        assert!((h - 1.5 * 2f64.ln()).abs() < 1e-12);
        assert!(entropy_host::<f64>(&[]).is_err());
        assert!(entropy_host(&[f64::INFINITY]).is_err());
    }

    proptest! {
        #[test]
        fn gradient_matches_finite_differences(z in proptest::collection::vec(-4.0f64..4.0, 1..8)) {
            let (h, g) = entropy_host(&z).unwrap();
            prop_assert!(h >= -1e-12 && h <= (z.len() as f64).ln() + 1e-12);
            let eps = 1e-6;
            for v in 0..z.len() {
                let (mut up, mut down) = (z.clone(), z.clone());
                up[v] += eps;
                down[v] -= eps;
                let fd = (entropy_host(&up).unwrap().0 - entropy_host(&down).unwrap().0) / (2.0 * eps);
                prop_assert!((fd - g[v]).abs() < 1e-6, "v = {}: {} vs {}", v, fd, g[v]);
            }
        }
    }
}
