//! The policy loss's clip options ([`orz_core::ppo::policy_loss::PolicyClip`]): DAPO's
//! clip-higher, the dual clip, the log-ratio clamp. Property tests of their invariants, golden
//! values by hand, and the tensor version on the reference backend against the host oracle
//! (values and gradients).

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use orz_core::backend::{Backend, DType};
use orz_core::ppo::policy_loss::{
    PolicyClip, clipped_policy_loss, clipped_policy_loss_token, policy_loss_token,
};
use orz_reference::Reference;
use proptest::prelude::*;

fn clip(low: f64, high: f64, dual: Option<f64>, clamp: Option<f64>) -> PolicyClip {
    PolicyClip { eps_low: low, eps_high: high, dual_clip: dual, log_ratio_clamp: clamp }
}

#[test]
fn golden_values() {
    // Clip-higher: ratio 1.25 with A = 1 is inside [0.8, 1.28]: loss −1.25, gradient −1.25;
    // PPO's symmetric 0.2 clips it at 1.2 with gradient 0.
    let t = clipped_policy_loss_token(1.25f64.ln(), 0.0, 1.0, &clip(0.2, 0.28, None, None));
    assert!((t.loss + 1.25).abs() < 1e-12 && (t.grad_logp + 1.25).abs() < 1e-12 && !t.clipped, "{t:?}");
    let t = policy_loss_token(1.25f64.ln(), 0.0, 1.0, 0.2);
    assert!((t.loss + 1.2).abs() < 1e-12 && t.grad_logp == 0.0 && t.clipped);
    // Dual clip c = 3, A = −1: log r = 1 gives loss e ≈ 2.718 < 3 (kept, gradient e); log r = 1.5
    // gives e^1.5 ≈ 4.48, capped at 3 with gradient 0.
    let dual = clip(0.2, 0.2, Some(3.0), None);
    let t = clipped_policy_loss_token(1.0f64, 0.0, -1.0, &dual);
    let e = 1.0f64.exp();
    assert!((t.loss - e).abs() < 1e-12 && (t.grad_logp - e).abs() < 1e-12, "{t:?}");
    let t = clipped_policy_loss_token(1.5f64, 0.0, -1.0, &dual);
    assert!((t.loss - 3.0).abs() < 1e-12 && t.grad_logp == 0.0, "{t:?}");
    // Log-ratio clamp 20: log r = 30 with A = −1 gives e^20, not e^30, and no gradient.
    let t = clipped_policy_loss_token(30.0f64, 0.0, -1.0, &clip(0.2, 0.2, None, Some(20.0)));
    assert!((t.loss - 20f64.exp()).abs() < 1e-3 && t.grad_logp == 0.0, "{t:?}");
    // Invalid options are named.
    for (bad, want) in [
        (clip(0.2, -0.1, None, None), "eps_high"),
        (clip(0.2, 0.2, Some(1.0), None), "dual_clip"),
        (clip(0.2, 0.2, None, Some(0.0)), "log_ratio_clamp"),
        (clip(1.5, 0.2, None, None), "eps_low"),
    ] {
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
    }
    assert!(clip(0.2, 0.2, None, None).is_symmetric() && !clip(0.2, 0.28, None, None).is_symmetric());
}

proptest! {
    #[test]
    fn an_equal_upper_bound_is_ppo(d in -2.0f64..2.0, a in -3.0f64..3.0, eps in 0.0f64..0.5) {
        let got = clipped_policy_loss_token(d, 0.0, a, &clip(eps, eps, None, None));
        prop_assert_eq!(got, policy_loss_token(d, 0.0, a, eps));
    }

    #[test]
    fn the_dual_clip_bounds_negative_advantages_only(d in -3.0f64..3.0, a in -3.0f64..3.0, c in 1.01f64..10.0) {
        let plain = policy_loss_token(d, 0.0, a, 0.2);
        let dual = clipped_policy_loss_token(d, 0.0, a, &clip(0.2, 0.2, Some(c), None));
        if a < 0.0 {
            prop_assert!(dual.loss <= -c * a + 1e-12);
            prop_assert_eq!(dual.loss, plain.loss.min(-c * a));
        } else {
            prop_assert_eq!(dual, plain);
        }
    }

    #[test]
    fn the_log_ratio_clamp_bounds_the_gradient(d in -40.0f64..40.0, a in -3.0f64..3.0, c in 0.5f64..20.0) {
        let t = clipped_policy_loss_token(d, 0.0, a, &clip(0.2, 0.28, None, Some(c)));
        prop_assert!(t.grad_logp.abs() <= c.exp() * a.abs() * (1.0 + 1e-12));
        prop_assert!(t.loss.is_finite());
        if d.abs() > c {
            prop_assert_eq!(t.grad_logp, 0.0);
        }
    }

    #[test]
    fn the_gradient_is_the_loss_derivative_away_from_kinks(
        d in -1.0f64..1.0, a in -2.0f64..2.0, dual in proptest::option::of(1.5f64..4.0),
    ) {
        let cl = clip(0.2, 0.28, dual, Some(0.9));
        let ratio = d.clamp(-0.9, 0.9).exp();
        let undual = clipped_policy_loss_token(d, 0.0, a, &clip(0.2, 0.28, None, Some(0.9))).loss;
        let near = |x: f64, k: f64| (x - k).abs() < 1e-4;
        let kink = near(ratio, 0.8) || near(ratio, 1.28) || near(d.abs(), 0.9) || a.abs() < 1e-3
            || dual.is_some_and(|c| a < 0.0 && near(undual, -c * a));
        prop_assume!(!kink);
        let h = 1e-6;
        let f = |x: f64| clipped_policy_loss_token(x, 0.0, a, &cl).loss;
        let numeric = (f(d + h) - f(d - h)) / (2.0 * h);
        let t = clipped_policy_loss_token(d, 0.0, a, &cl);
        prop_assert!((numeric - t.grad_logp).abs() <= 1e-5 * (1.0 + numeric.abs()), "{} vs {}", numeric, t.grad_logp);
    }
}

#[test]
fn the_tensor_loss_and_its_gradient_match_the_host_oracle() {
    let b = Reference::new();
    let n = 64;
    let mut rng = orz_core::rng::Rng::seed_from_u64(3);
    let mut draw = |lo: f64, hi: f64| lo + (hi - lo) * rng.uniform();
    let logp: Vec<f64> = (0..n).map(|_| draw(-3.0, 0.0)).collect();
    let old: Vec<f64> = logp.iter().map(|l| l - draw(-1.5, 1.5)).collect();
    let adv: Vec<f64> = (0..n).map(|_| draw(-2.0, 2.0)).collect();
    for cl in
        [clip(0.2, 0.28, None, None), clip(0.2, 0.2, Some(3.0), None), clip(0.1, 0.3, Some(2.0), Some(0.5))]
    {
        let p = b.param(&b.tensor_f64(&logp, &[1, n], DType::F32).unwrap()).unwrap();
        let o = b.tensor_f64(&old, &[1, n], DType::F32).unwrap();
        let a = b.tensor_f64(&adv, &[1, n], DType::F32).unwrap();
        let loss = clipped_policy_loss(&b, &p, &o, &a, &cl).unwrap();
        let values = b.to_host_f64(&loss).unwrap();
        let grads = b.backward(&b.sum_all(&loss).unwrap()).unwrap();
        let grad = b.to_host_f64(&b.grad(&grads, &p).unwrap().unwrap()).unwrap();
        for i in 0..n {
            let t = clipped_policy_loss_token(logp[i], old[i], adv[i], &cl);
            assert!((values[i] - t.loss).abs() < 1e-9, "{cl:?} token {i}: {} vs {}", values[i], t.loss);
            assert!((grad[i] - t.grad_logp).abs() < 1e-9, "{cl:?} token {i}: {} vs {}", grad[i], t.grad_logp);
        }
    }
}
