//! Property tests of `orz_core::ppo` and `orz_core::schedule`, on inputs drawn by the strategies
//! of `orz_conformance::strategies`.

use orz_conformance::strategies::{PackedBatch, packed_batch, packs};
use orz_core::optimizer::clip::{clip_grad_norm_host, global_norm};
use orz_core::ppo::aggregation::{Aggregation, PackLayout, StepTotals};
use orz_core::ppo::gae::{gae, gae_masked};
use orz_core::ppo::policy_loss::{ORZ_CLIP_EPS, policy_loss_host, policy_loss_token};
use orz_core::ppo::value_loss::{ORZ_VALUE_CLIP, value_loss_token};
use orz_core::ppo::whitening::{WhiteningConvention, moments, whiten_masked};
use orz_core::schedule::LrSchedule;
use proptest::prelude::*;

/// `|x − y| <= max(abs, rel · max(|x|, |y|))`, the project's tolerance rule.
fn close(x: f64, y: f64, abs: f64, rel: f64) -> bool {
    (x - y).abs() <= abs.max(rel * x.abs().max(y.abs()))
}

/// `xs` with NaN written at every masked position.
fn poison(xs: &[f64], mask: &[bool]) -> Vec<f64> {
    xs.iter().zip(mask).map(|(&x, &m)| if m { x } else { f64::NAN }).collect()
}

/// The valid (unmasked) values of `xs`.
fn valid(xs: &[f64], mask: &[bool]) -> Vec<f64> {
    xs.iter().zip(mask).filter(|(_, m)| **m).map(|(x, _)| *x).collect()
}

/// `(f(x + h) − f(x − h)) / 2h` with h = 1e-6.
fn central_difference(f: impl Fn(f64) -> f64, x: f64) -> f64 {
    let h = 1e-6;
    (f(x + h) - f(x - h)) / (2.0 * h)
}

fn layouts(packs: &[PackedBatch]) -> Vec<PackLayout<'_>> {
    packs.iter().map(|p| PackLayout { mask: &p.mask, sample_lengths: &p.lengths }).collect()
}

proptest! {
    #[test]
    fn gae_with_gamma_lambda_one_is_score_minus_value(b in packed_batch(8, 40)) {
        let g = gae(&b.rewards, &b.values, &b.lengths, 1.0, 1.0).unwrap();
        for (range, score) in b.sample_ranges().into_iter().zip(b.scores()) {
            for t in range {
                prop_assert!(close(g.advantages[t], score - b.values[t], 1e-12, 1e-12));
                prop_assert!(close(g.returns[t], score, 1e-12, 1e-12));
            }
        }
    }

    #[test]
    fn gae_over_a_pack_is_per_sample_gae_concatenated(
        b in packed_batch(8, 40), gamma in 0.0f64..=1.0, lambda in 0.0f64..=1.0,
    ) {
        let packed = gae(&b.rewards, &b.values, &b.lengths, gamma, lambda).unwrap();
        for r in b.sample_ranges() {
            let one = gae(&b.rewards[r.clone()], &b.values[r.clone()], &[r.len()], gamma, lambda).unwrap();
            prop_assert_eq!(&packed.advantages[r.clone()], &one.advantages[..]);
            prop_assert_eq!(&packed.returns[r.clone()], &one.returns[..]);
        }
    }

    #[test]
    fn gae_masked_positions_never_matter(
        b in packed_batch(8, 40), gamma in 0.0f64..=1.0, lambda in 0.0f64..=1.0,
    ) {
        let clean = gae_masked(&b.rewards, &b.values, &b.mask, &b.lengths, gamma, lambda).unwrap();
        let (r, v) = (poison(&b.rewards, &b.mask), poison(&b.values, &b.mask));
        let poisoned = gae_masked(&r, &v, &b.mask, &b.lengths, gamma, lambda).unwrap();
        prop_assert_eq!(&clean, &poisoned);
        // Equal to dense GAE over the valid tokens only, with zeros at masked positions.
        let lengths: Vec<usize> =
            b.sample_ranges().into_iter().map(|r| b.mask[r].iter().filter(|m| **m).count()).collect();
        let dense = gae(&valid(&b.rewards, &b.mask), &valid(&b.values, &b.mask), &lengths, gamma, lambda).unwrap();
        prop_assert_eq!(valid(&clean.advantages, &b.mask), dense.advantages);
        prop_assert!(clean.advantages.iter().zip(&b.mask).all(|(a, m)| *m || *a == 0.0));
    }

    #[test]
    fn whitening_gives_mean_zero_and_unit_variance(b in packed_batch(8, 40)) {
        let x = poison(&b.advantages, &b.mask);
        for convention in [WhiteningConvention::OrzBiased, WhiteningConvention::Bessel] {
            let Ok(m) = moments(&x, Some(&b.mask), convention) else { continue };
            if m.var <= 1e-8 {
                continue;
            }
            // OrzBiased divides by sqrt(var) above its floor, so the result has variance exactly 1;
            // Bessel (TRL/veRL) multiplies by rsqrt(var + 1e-8), giving var / (var + 1e-8).
            let expected = match convention {
                WhiteningConvention::OrzBiased => 1.0,
                WhiteningConvention::Bessel => m.var / (m.var + 1e-8),
            };
            let w = whiten_masked(&x, &b.mask, convention, true).unwrap();
            let wm = moments(&w, Some(&b.mask), convention).unwrap();
            prop_assert!(close(wm.mean, 0.0, 1e-9, 0.0), "{:?}", wm);
            prop_assert!(close(wm.var, expected, 1e-9, 1e-9), "{:?} expected var {}", wm, expected);
            prop_assert!(w.iter().zip(&b.mask).all(|(v, m)| *m || *v == 0.0));
        }
    }

    #[test]
    fn policy_gradient_matches_central_differences(
        logp in -5.0f64..0.0, shift in -0.5f64..0.5, adv in -3.0f64..3.0,
    ) {
        let old = logp + shift;
        let ratio = (logp - old).exp();
        let eps = ORZ_CLIP_EPS;
        prop_assume!((ratio - (1.0 - eps)).abs() > 1e-4 && (ratio - (1.0 + eps)).abs() > 1e-4);
        let numeric = central_difference(|l| policy_loss_token(l, old, adv, eps).loss, logp);
        let g = policy_loss_token(logp, old, adv, eps).grad_logp;
        prop_assert!(close(g, numeric, 1e-6, 1e-5), "analytic {} numeric {}", g, numeric);
    }

    #[test]
    fn value_gradient_matches_central_differences(
        value in -2.0f64..2.0, shift in -0.6f64..0.6, ret in -2.0f64..2.0,
    ) {
        let old = value + shift;
        let c = ORZ_VALUE_CLIP;
        prop_assume!((shift.abs() - c).abs() > 1e-4);
        let clipped = old + (value - old).clamp(-c, c);
        // Away from the switch of the max (outside the clip range the two errors differ).
        prop_assume!(shift.abs() < c || ((clipped - ret).powi(2) - (value - ret).powi(2)).abs() > 1e-3);
        let numeric = central_difference(|v| value_loss_token(v, old, ret, c).loss, value);
        let g = value_loss_token(value, old, ret, c).grad_value;
        prop_assert!(close(g, numeric, 1e-6, 1e-5), "analytic {} numeric {}", g, numeric);
    }

    #[test]
    fn clip_is_inactive_inside_the_range(t in 0.0f64..=1.0, adv in -3.0f64..3.0, eps in 0.05f64..0.5) {
        let logp = ((1.0 - eps) + t * 2.0 * eps).ln();
        let r = logp.exp();
        prop_assume!(r >= 1.0 - eps && r <= 1.0 + eps);
        let tok = policy_loss_token(logp, 0.0, adv, eps);
        prop_assert!(!tok.clipped);
        prop_assert!(close(tok.loss, -r * adv, 1e-15, 1e-12));
        prop_assert!(close(tok.grad_logp, -r * adv, 1e-15, 1e-12));
    }

    #[test]
    fn policy_loss_masked_positions_never_matter(b in packed_batch(8, 40)) {
        let (l, o, a) = (poison(&b.logp, &b.mask), poison(&b.logp_old, &b.mask), poison(&b.advantages, &b.mask));
        let poisoned = policy_loss_host(&l, &o, &a, Some(&b.mask), ORZ_CLIP_EPS).unwrap();
        let clean = policy_loss_host(&b.logp, &b.logp_old, &b.advantages, Some(&b.mask), ORZ_CLIP_EPS).unwrap();
        prop_assert_eq!(poisoned, clean);
    }

    #[test]
    fn aggregation_is_invariant_to_micro_batch_splits(
        step in packs(6, 4, 12), cuts in prop::collection::vec(any::<bool>(), 6),
    ) {
        let layouts = layouts(&step);
        let losses: Vec<Vec<f64>> = step.iter().map(|p| poison(&p.advantages, &p.mask)).collect();
        let loss_refs: Vec<&[f64]> = losses.iter().map(|l| &l[..]).collect();
        let totals = StepTotals::of(&layouts).unwrap();
        let dr_grpo = Aggregation::SeqMeanTokenSumNorm { norm: 7 };
        for agg in [Aggregation::OrzPackMean, Aggregation::TokenMean, Aggregation::SeqMeanTokenMean, dr_grpo] {
            let whole = agg.aggregate(&layouts, &loss_refs).unwrap();
            prop_assert!(whole.is_finite());
            // Micro-batches end after every pack whose cut flag is set.
            let (mut sum, mut start) = (0.0, 0);
            for end in 1..=layouts.len() {
                if end == layouts.len() || cuts[end - 1] {
                    sum += agg.micro_batch_loss(&totals, &layouts[start..end], &loss_refs[start..end]).unwrap();
                    start = end;
                }
            }
            prop_assert!(close(sum, whole, 1e-12, 1e-12), "{:?}: {} vs {}", agg, sum, whole);
        }
        let per_pack: Vec<Vec<f64>> = step.iter().map(|p| valid(&p.advantages, &p.mask)).collect();
        let tokens: usize = per_pack.iter().map(Vec::len).sum();
        let token_mean = per_pack.iter().flatten().sum::<f64>() / tokens as f64;
        let pack_means =
            per_pack.iter().map(|v| v.iter().sum::<f64>() / v.len() as f64).sum::<f64>() / per_pack.len() as f64;
        let token = Aggregation::TokenMean.aggregate(&layouts, &loss_refs).unwrap();
        let orz = Aggregation::OrzPackMean.aggregate(&layouts, &loss_refs).unwrap();
        prop_assert!(close(token, token_mean, 1e-12, 1e-12));
        prop_assert!(close(orz, pack_means, 1e-12, 1e-12));
    }

    #[test]
    fn warmup_starts_at_zero_and_reaches_the_peak(peak in 1e-8f64..1e-2, warmup in 1usize..200, k in 0usize..400) {
        let s = LrSchedule::WarmupConstant { peak, warmup_steps: warmup };
        prop_assert_eq!(s.lr(0), 0.0);
        prop_assert_eq!(s.lr(warmup), peak);
        prop_assert!(s.lr(k) <= peak && s.lr(k) <= s.lr(k + 1));
        prop_assert_eq!(LrSchedule::ORZ_POLICY.lr(50), 1e-6);
    }

    #[test]
    fn clipped_norm_is_at_most_max_norm(
        grads in prop::collection::vec(prop::collection::vec(-100.0f64..100.0, 0..20), 1..5),
        max_norm in 0.0f64..10.0,
    ) {
        let mut grads = grads;
        let mut views: Vec<&mut [f64]> = grads.iter_mut().map(|g| &mut g[..]).collect();
        let c = clip_grad_norm_host(&mut views, max_norm).unwrap();
        let after: Vec<&[f64]> = grads.iter().map(|g| &g[..]).collect();
        let norm = global_norm(&after).unwrap();
        prop_assert!(norm <= max_norm * (1.0 + 1e-12));
        prop_assert!(c.factor <= 1.0);
    }
}
