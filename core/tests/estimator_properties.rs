//! Property tests of the advantage estimators of `orz_core::ppo` (RLOO, Dr. GRPO, REINFORCE++)
//! and of its KL estimators: the invariants that define them.

use orz_core::ppo::estimator::{AdvantageEstimator, EstimatorInput};
use orz_core::ppo::grpo::{GroupStd, GrpoEstimator};
use orz_core::ppo::reinforce::ReinforcePlusPlusEstimator;
use orz_core::ppo::rloo::{RlooEstimator, rloo_advantages};
use proptest::prelude::*;

/// Prompt groups: 1 to 5 groups of 1 to 6 samples, each with a score in [-2, 2] and a response
/// length of 1 to 9 tokens.
fn groups() -> impl Strategy<Value = Vec<Vec<(f64, usize)>>> {
    prop::collection::vec(prop::collection::vec((-2.0f64..2.0, 1usize..10), 1..7), 1..6)
}

/// Scores, prompt indices and response lengths of `groups`, flattened in prompt order.
fn flatten(groups: &[Vec<(f64, usize)>]) -> (Vec<f64>, Vec<usize>, Vec<usize>) {
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for (p, g) in groups.iter().enumerate() {
        for &(s, len) in g {
            out.0.push(s);
            out.1.push(p);
            out.2.push(len);
        }
    }
    out
}

/// Each sample's advantage (the value of its first token) from a per-token estimate.
fn per_sample(advantages: &[f64], lengths: &[usize]) -> Vec<f64> {
    let mut start = 0;
    lengths
        .iter()
        .map(|&len| {
            let a = advantages[start];
            assert!(advantages[start..start + len].iter().all(|&x| x == a), "not constant over a sample");
            start += len;
            a
        })
        .collect()
}

proptest! {
    #[test]
    fn rloo_baseline_excludes_the_sample_itself(groups in groups()) {
        let (scores, prompts, lengths) = flatten(&groups);
        let input = EstimatorInput { scores: &scores, prompts: &prompts, response_lengths: &lengths, values: None };
        let a = per_sample(&RlooEstimator.estimate(&input).unwrap().advantages, &lengths);
        let mut k = 0;
        for g in &groups {
            let n = g.len();
            for (i, &(s, _)) in g.iter().enumerate() {
                // The baseline is the mean of the others, computed here independently.
                let others: Vec<f64> = g.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, x)| x.0).collect();
                let want = if n < 2 { 0.0 } else { s - others.iter().sum::<f64>() / others.len() as f64 };
                prop_assert!((a[k + i] - want).abs() < 1e-12, "{} vs {}", a[k + i], want);
            }
            // A group's advantages sum to 0.
            prop_assert!(a[k..k + n].iter().sum::<f64>().abs() < 1e-9);
            k += n;
        }
        // Raising one score by d raises its own advantage by exactly d.
        let mut raised = scores.clone();
        raised[0] += 0.5;
        let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        let b = rloo_advantages(&raised, &sizes).unwrap();
        let own = if sizes[0] < 2 { 0.0 } else { 0.5 };
        prop_assert!((b[0] - a[0] - own).abs() < 1e-12);
    }

    #[test]
    fn dr_grpo_advantages_do_not_depend_on_response_lengths(groups in groups(), other in 1usize..10) {
        let (scores, prompts, lengths) = flatten(&groups);
        let dr = GrpoEstimator { std: GroupStd::OrzDividesByOne };
        let input = EstimatorInput { scores: &scores, prompts: &prompts, response_lengths: &lengths, values: None };
        let a = per_sample(&dr.estimate(&input).unwrap().advantages, &lengths);
        let same: Vec<usize> = vec![other; lengths.len()];
        let input = EstimatorInput { response_lengths: &same, ..input };
        let b = per_sample(&dr.estimate(&input).unwrap().advantages, &same);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn reinforce_returns_are_discounted_scores(groups in groups(), gamma in 0.0f64..=1.0) {
        let (scores, prompts, lengths) = flatten(&groups);
        let input = EstimatorInput { scores: &scores, prompts: &prompts, response_lengths: &lengths, values: None };
        let a = ReinforcePlusPlusEstimator { gamma }.estimate(&input).unwrap().advantages;
        let mut start = 0;
        for (&s, &len) in scores.iter().zip(&lengths) {
            for t in 0..len {
                let want = gamma.powi((len - 1 - t) as i32) * s;
                prop_assert!((a[start + t] - want).abs() < 1e-12, "{} vs {}", a[start + t], want);
            }
            start += len;
        }
    }
}

/// Two discrete distributions over the same 2 to 8 outcomes, every probability at least about
/// 1e-3 / 8.
fn two_distributions() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
    let normalized = |w: Vec<f64>| {
        let total: f64 = w.iter().sum();
        w.into_iter().map(|x| x / total).collect::<Vec<f64>>()
    };
    (2usize..9).prop_flat_map(move |n| {
        let d = prop::collection::vec(1e-3f64..1.0, n);
        (d.clone().prop_map(normalized), d.prop_map(normalized))
    })
}

proptest! {
    #[test]
    fn kl_estimators_are_nonnegative_where_they_must_be_and_zero_at_equality(
        logp in -20.0f64..0.0, logp_ref in -20.0f64..0.0,
    ) {
        use orz_core::ppo::kl::KlEstimator;
        prop_assert!(KlEstimator::K2.per_token(logp, logp_ref) >= 0.0);
        prop_assert!(KlEstimator::K3.per_token(logp, logp_ref) >= 0.0);
        for k in [KlEstimator::K1, KlEstimator::K2, KlEstimator::K3] {
            prop_assert_eq!(k.per_token(logp, logp), 0.0);
        }
    }

    #[test]
    fn k1_and_k3_are_unbiased_under_the_policy((q, p) in two_distributions()) {
        use orz_core::ppo::kl::KlEstimator;
        // KL(q ‖ p) exactly, and the expectation under q of each estimator.
        let kl: f64 = q.iter().zip(&p).map(|(a, b)| a * (a / b).ln()).sum();
        for k in [KlEstimator::K1, KlEstimator::K3] {
            let e: f64 = q.iter().zip(&p).map(|(a, b)| a * k.per_token(a.ln(), b.ln())).sum();
            prop_assert!((e - kl).abs() < 1e-9, "{:?}: {} vs {}", k, e, kl);
        }
    }
}
