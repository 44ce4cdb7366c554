//! KL in the reward (an option; ORZ's presets have `kl_coef = 0`): per-token rewards of
//! `−kl_coef · kl_t` on every response token plus the outcome score on the last one, the score
//! first clamped to `reward_clip_range` when one is set.
//!
//! This is ORZ's and OpenRLHF's `compute_reward` (ORZ `orz/ppo/models/utils.py`, from
//! OpenRLHF `openrlhf/models/utils.py`): `r = r.clamp(*reward_clip_range)`;
//! `kl_reward = −kl_coef · kl`; `last_reward` holds `r` at the last action position (the EOS
//! index of the action mask); `reward = last_reward + kl_reward`. The per-token `kl` is one of
//! Schulman's estimators ([`crate::ppo::kl::KlEstimator`]) of the sampling policy's log-probs
//! (recipe step 7's old log-probs) against the reference model's (OpenRLHF `--kl_estimator`,
//! default `k1`).
//!
//! Every estimator in core is linear in the per-token rewards, so the trainer adds the KL part
//! after the estimator ran on the (clamped) scores, before whitening: token `t` of a sample
//! gains `Σ_{k ≥ t} d^{k − t} · (−kl_coef · kl_k)` ([`kl_advantage_terms`]) with the
//! estimator's [`token_reward_discount`](crate::ppo::estimator::AdvantageEstimator::token_reward_discount)
//! `d`: γλ for GAE (returns gain the same term, since `R = A + V`), γ for REINFORCE++, 1 for the
//! group estimators (OpenRLHF's `get_cumulative_returns` on the KL-shaped reward of `rloo`,
//! `group_norm`, `dr_grpo`). [`kl_shaped_rewards`] builds the whole reward tensor, the form the
//! tests check the placement and the linearity on.

use alloc::format;
use alloc::vec::Vec;

use crate::error::{Error, Result, check_finite, check_len};
use crate::ppo::reinforce::discounted_returns;
use crate::reward::placement::place_on_last_tokens;

/// Checks a `reward_clip_range`: finite bounds with `low <= high`.
pub fn validate_clip_range(range: [f64; 2]) -> Result<()> {
    let [lo, hi] = range;
    if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
        return Err(Error::invalid(
            "train config",
            format!("`reward_clip_range` = [{lo}, {hi}] must be finite with low <= high"),
        ));
    }
    Ok(())
}

/// The scores clamped to `range` (ORZ's `r.clamp(min, max)`); unchanged without one.
pub fn clamp_scores(scores: &[f64], range: Option<[f64; 2]>) -> Result<Vec<f64>> {
    match range {
        None => Ok(scores.to_vec()),
        Some(r) => {
            validate_clip_range(r)?;
            Ok(scores.iter().map(|s| s.clamp(r[0], r[1])).collect())
        }
    }
}

/// `−kl_coef · kl_t` for every token (the KL part of the reward). Errors: a negative or
/// non-finite coefficient, a non-finite KL.
pub fn kl_penalty(kl: &[f64], kl_coef: f64) -> Result<Vec<f64>> {
    if !(kl_coef.is_finite() && kl_coef >= 0.0) {
        return Err(Error::invalid(
            "kl reward",
            format!("`kl_coef` = {kl_coef} is not a finite number >= 0"),
        ));
    }
    check_finite("kl reward", "kl", kl)?;
    Ok(kl.iter().map(|&k| -kl_coef * k).collect())
}

/// ORZ's/OpenRLHF's `compute_reward`: per-token rewards of samples laid end to end, `−kl_coef ·
/// kl_t` on every response token and the score (clamped to `clip_range` when set) added on each
/// sample's last token. Errors: lengths that disagree, an empty response, non-finite inputs.
pub fn kl_shaped_rewards(
    scores: &[f64],
    kl: &[f64],
    response_lengths: &[usize],
    kl_coef: f64,
    clip_range: Option<[f64; 2]>,
) -> Result<Vec<f64>> {
    let last = place_on_last_tokens(&clamp_scores(scores, clip_range)?, response_lengths)?;
    check_len("kl reward", ("kl", kl.len()), ("response tokens", last.len()))?;
    Ok(last.iter().zip(kl_penalty(kl, kl_coef)?).map(|(s, p)| s + p).collect())
}

/// What the KL part of the reward adds to each token's advantage under an estimator that
/// discounts per-token rewards by `discount` (see the [module docs](self)): the discounted
/// return of `−kl_coef · kl` within each sample.
pub fn kl_advantage_terms(
    kl: &[f64],
    response_lengths: &[usize],
    kl_coef: f64,
    discount: f64,
) -> Result<Vec<f64>> {
    discounted_returns(&kl_penalty(kl, kl_coef)?, response_lengths, discount)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ppo::gae::gae;
    use alloc::string::ToString;
    use proptest::prelude::*;

    #[test]
    fn placement_by_hand() {
        // Two samples of 3 and 2 tokens, scores 1 and 5 (clamped to 2), kl_coef 0.1.
        let kl = [0.5, -1.0, 2.0, 0.0, 3.0];
        let r = kl_shaped_rewards(&[1.0, 5.0], &kl, &[3, 2], 0.1, Some([-2.0, 2.0])).unwrap();
        let want = [-0.05, 0.1, -0.2 + 1.0, 0.0, -0.3 + 2.0];
        for (a, b) in r.iter().zip(want) {
            assert!((a - b).abs() < 1e-15, "{r:?}");
        }
        // Without a clamp the score stays; with kl_coef 0 only the scores remain.
        let r = kl_shaped_rewards(&[1.0, 5.0], &kl, &[3, 2], 0.0, None).unwrap();
        assert_eq!(r, [0.0, 0.0, 1.0, 0.0, 5.0]);
        assert!(kl_shaped_rewards(&[1.0], &kl, &[3], 0.1, None).is_err());
        assert!(kl_penalty(&kl, -0.1).unwrap_err().to_string().contains("kl_coef"));
        assert!(
            clamp_scores(&[1.0], Some([1.0, 0.0])).unwrap_err().to_string().contains("reward_clip_range")
        );
    }

    proptest! {
        #[test]
        fn gae_is_linear_in_the_kl_reward(
            lens in proptest::collection::vec(1usize..5, 1..4),
            seed in proptest::collection::vec(-2.0f64..2.0, 40),
            coef in 0.0f64..1.0,
            gamma in 0.5f64..=1.0,
            lambda in 0.5f64..=1.0,
        ) {
            let n: usize = lens.iter().sum();
            let scores: Vec<f64> = seed[..lens.len()].to_vec();
            let (kl, values) = (&seed[10..10 + n], &seed[25..25 + n]);
            let shaped = kl_shaped_rewards(&scores, kl, &lens, coef, None).unwrap();
            let full = gae(&shaped, values, &lens, gamma, lambda).unwrap();
            let plain = gae(&place_on_last_tokens(&scores, &lens).unwrap(), values, &lens, gamma, lambda).unwrap();
            let extra = kl_advantage_terms(kl, &lens, coef, gamma * lambda).unwrap();
            for (t, e) in extra.iter().enumerate() {
                prop_assert!((full.advantages[t] - plain.advantages[t] - e).abs() < 1e-9);
                prop_assert!((full.returns[t] - plain.returns[t] - e).abs() < 1e-9);
            }
            prop_assert_eq!(extra.len(), n);
        }
    }
}
