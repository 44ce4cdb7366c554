//! The rollout/train mismatch, measured: how far the old log-probs the training forward pass
//! computes for each response token ([`super::Experience::logp_old`]) are from the log-probs
//! the engine saw when it sampled the token ([`super::Sample::sampling_log_probs`]).
//!
//! PPO's ratio assumes they are equal: the samples were drawn from the policy whose
//! log-probs are `logp_old`. Systems that generate with another engine (vLLM) and train with
//! another (DeepSpeed, FSDP) see them differ, from kernels, precision and weight sync (veRL and
//! OpenRLHF log this as a "rollout/train mismatch" or importance-sampling gap). orz-rs samples
//! and trains with one model definition on one backend, so the gap is only what the backend's
//! batch shape does to rounding (decode rows of one step against a packed training row); on the
//! f64 reference it is 0. Per iteration: the largest and the mean `|logp_sample − logp_old|`
//! over the response tokens, and the KL from the sampler to the trainer estimated on the
//! sampled tokens with Schulman's k3 ([`KlEstimator::K3`], never negative).

use alloc::vec::Vec;

use super::rollout::Sample;
use crate::ppo::kl::KlEstimator;

/// One iteration's rollout/train mismatch over its response tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Mismatch {
    /// The largest `|logp_sample − logp_old|`.
    pub max_abs: f64,
    /// The mean `|logp_sample − logp_old|`.
    pub mean_abs: f64,
    /// The mean k3 estimate of KL(sampler ‖ trainer) on the sampled tokens.
    pub kl: f64,
    /// Response tokens compared.
    pub tokens: usize,
}

/// The mismatch of `samples` against their old log-probs (one vector per sample, aligned with
/// its response), over the samples whose sampling log-probs were recorded; `None` when none was.
pub fn measure(samples: &[Sample], logp_old: &[Vec<f64>]) -> Option<Mismatch> {
    let (mut max_abs, mut sum_abs, mut sum_kl, mut tokens) = (0.0f64, 0.0, 0.0, 0usize);
    for (s, old) in samples.iter().zip(logp_old) {
        if s.sampling_log_probs.len() != old.len() || old.is_empty() {
            continue;
        }
        for (&sampled, &trained) in s.sampling_log_probs.iter().zip(old) {
            let d = (sampled - trained).abs();
            max_abs = max_abs.max(d);
            sum_abs += d;
            sum_kl += KlEstimator::K3.per_token(sampled, trained);
            tokens += 1;
        }
    }
    (tokens > 0).then(|| Mismatch {
        max_abs,
        mean_abs: sum_abs / tokens as f64,
        kl: sum_kl / tokens as f64,
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::{FinishReason, label};
    use alloc::vec;

    fn sample(log_probs: Vec<f64>) -> Sample {
        Sample {
            prompt: 0,
            sample: 0,
            prompt_tokens: vec![1],
            response: vec![2; log_probs.len().max(2)],
            text: "x".into(),
            finish_reason: FinishReason::Stop,
            score: 0.0,
            label: label::WRONG,
            sampling_log_probs: log_probs,
        }
    }

    #[test]
    fn equal_log_probs_give_zero_and_gaps_are_measured() {
        let same = [sample(vec![-0.5, -2.0])];
        let m = measure(&same, &[vec![-0.5, -2.0]]).unwrap();
        assert_eq!((m.max_abs, m.mean_abs, m.kl, m.tokens), (0.0, 0.0, 0.0, 2));
        let m = measure(&same, &[vec![-0.25, -2.5]]).unwrap();
        assert_eq!((m.max_abs, m.mean_abs, m.tokens), (0.5, 0.375, 2));
        // k3 with log r = logp_old − logp_sample: (e^0.25 − 1 − 0.25 + e^−0.5 − 1 + 0.5) / 2.
        let want = ((0.25f64).exp() - 1.25 + (-0.5f64).exp() - 0.5) / 2.0;
        assert!((m.kl - want).abs() < 1e-12 && m.kl > 0.0, "{}", m.kl);
        // Nothing recorded, or a length that does not match: nothing compared.
        assert_eq!(measure(&[sample(vec![])], &[vec![-1.0, -1.0]]), None);
        assert_eq!(measure(&[sample(vec![-1.0])], &[vec![-1.0, -1.0]]), None);
    }
}
