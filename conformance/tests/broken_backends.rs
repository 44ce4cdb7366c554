//! The suite can fail: each deliberately broken backend is rejected by the check of the property
//! it breaks (and the report names that check), while a correct backend that rounds every result
//! to its dtype, as a bf16 or f16 device does, passes every check.

use orz_conformance::broken::{
    AssignDropsLargeWrites, ClampOffByOneHundredth, RmsNormDropsGradient, RoundsToDType,
    SoftmaxSlightlySharp, Tweak, Tweaked,
};
use orz_conformance::checks::{composites, iteration, ppo, primitives};
use orz_conformance::report::{render, run_backend};
use orz_conformance::{CheckOutcome, all_checks};
use orz_core::backend::DType;

fn rejected(outcome: CheckOutcome, mentions: &str) {
    let failure = outcome.failure.unwrap_or_else(|| panic!("`{}` accepted a broken backend", outcome.check));
    assert!(failure.contains(mentions), "`{}` failed for another reason:\n{failure}", outcome.check);
    assert!(failure.contains("shrunk input"), "{failure}");
}

/// The checks that fail on `T` in f32, and the report's rows naming them.
fn failing<T: Tweak>() -> Vec<&'static str> {
    let rows = run_backend(&Tweaked::<T>::new(), &[DType::F32]);
    let report = render(&rows, 0.0);
    let failed: Vec<_> = rows.iter().filter(|r| !r.outcome.passed()).map(|r| r.outcome.check).collect();
    for name in &failed {
        assert!(report.lines().any(|l| l.contains(name) && l.ends_with("FAIL")), "{report}");
    }
    failed
}

#[test]
fn clamp_with_a_bound_off_by_a_hundredth_is_rejected() {
    let b = Tweaked::<ClampOffByOneHundredth>::new();
    rejected(primitives::check_clamp(&b, DType::F32), "Clamp(");
    rejected(ppo::check_policy_loss(&b, DType::F32), "Policy(");
    assert_eq!(failing::<ClampOffByOneHundredth>(), ["clamp", "policy_loss", "value_loss"]);
}

#[test]
fn rms_norm_that_drops_its_gradient_is_rejected() {
    let b = Tweaked::<RmsNormDropsGradient>::new();
    rejected(composites::check_rms_norm(&b, DType::F32), "no gradient");
    rejected(composites::check_rms_norm(&b, DType::BF16), "RmsNorm(");
    // A training step through the model sees the missing gradient too.
    assert_eq!(
        failing::<RmsNormDropsGradient>(),
        ["rms_norm", "ppo_iteration_updates", "ppo_iteration_rollout"]
    );
}

#[test]
fn slightly_wrong_softmax_is_rejected_through_the_method_only() {
    let b = Tweaked::<SoftmaxSlightlySharp>::new();
    rejected(composites::check_softmax(&b, DType::F32), "Method");
    // The attention defaults call the backend's softmax, so they inherit the fault, and so does a
    // training step through the model.
    assert_eq!(
        failing::<SoftmaxSlightlySharp>(),
        ["softmax", "attention", "causal_attention", "ppo_iteration_updates", "ppo_iteration_rollout"]
    );
}

#[test]
fn a_backend_rounding_to_its_dtype_passes_everything() {
    let b = Tweaked::<RoundsToDType>::new();
    for dtype in DType::FLOATS {
        for check in all_checks() {
            let outcome = check.run(&b, dtype);
            assert!(outcome.passed(), "{outcome}");
        }
    }
}

#[test]
fn an_assign_param_that_drops_large_writes_is_caught_by_level_6_only() {
    let b = Tweaked::<AssignDropsLargeWrites>::new();
    let updates = iteration::check_ppo_iteration_updates(&b, DType::F32);
    let failure = updates.failure.unwrap_or_else(|| panic!("level 6 accepted a backend that drops updates"));
    // The second critic step already sees the unmoved weights; the parameters are named after.
    assert!(failure.starts_with("critic step 1 grad norm"), "{failure}");
    assert!(
        failure.contains("critic parameter `model.embed_tokens.weight` after the iteration"),
        "{failure}"
    );
    assert!(
        failure.contains("policy parameter `model.embed_tokens.weight` after the iteration"),
        "{failure}"
    );
    // Every tensor of levels 1 to 3 has at most 16 elements: they all pass.
    assert_eq!(failing::<AssignDropsLargeWrites>(), ["ppo_iteration_updates", "ppo_iteration_rollout"]);
}
