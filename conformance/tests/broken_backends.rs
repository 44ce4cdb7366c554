//! The suite can fail: each deliberately broken backend is rejected by the check of the property
//! it breaks (and the report names that check), while a correct backend that rounds every result
//! to its dtype, as a bf16 or f16 device does, passes every check.

use orz_conformance::broken::{
    AssignDropsLargeWrites, ClampOffByOneHundredth, CumsumExclusive, RmsNormDropsGradient, RoundsToDType,
    SoftmaxSlightlySharp, Tweak, Tweaked, WriteSliceAtZero,
};
use orz_conformance::checks::{composites, iteration, model, ppo, primitives, sampling};
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
        assert!(report.lines().any(|l| l.contains(name) && l.contains(" FAIL")), "{report}");
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
    // Through the model, the gradients of every parameter below a norm vanish, and a training
    // step sees the missing gradient too.
    assert_eq!(
        failing::<RmsNormDropsGradient>(),
        [
            "rms_norm",
            "model_ppo_gradients",
            "model_lean_gradients",
            "ppo_iteration_updates",
            "ppo_iteration_rollout"
        ]
    );
}

#[test]
fn slightly_wrong_softmax_is_rejected_through_the_method_only() {
    let b = Tweaked::<SoftmaxSlightlySharp>::new();
    rejected(composites::check_softmax(&b, DType::F32), "Method");
    // The attention defaults, hence the model, and the device sampler call the backend's softmax,
    // so they inherit the fault (the optimizer step, fed the backend's gradients, does not).
    assert_eq!(
        failing::<SoftmaxSlightlySharp>(),
        [
            "softmax",
            "attention",
            "causal_attention",
            "model_logits",
            "packed_equals_padded",
            "kv_decode_equals_forward",
            "value_head",
            "model_ppo_gradients",
            "model_lean_gradients",
            "top_p_mass",
            "ppo_iteration_updates",
            "ppo_iteration_rollout"
        ]
    );
}

/// A shared reference to a backend is a backend that runs the backend's own kernels, overrides
/// included (`&K` forwards every kernel: the forwarding is generated from the trait's list, so
/// none can fall back to a default). Through `&Tweaked`, the broken softmax override is still the
/// one that runs, and the hooked clamp and cumsum primitives too.
#[test]
fn a_shared_reference_runs_the_backends_own_overrides() {
    let b = Tweaked::<SoftmaxSlightlySharp>::new();
    rejected(composites::check_softmax(&&b, DType::F32), "Method");
    assert!(composites::check_softmax(&&Tweaked::<RoundsToDType>::new(), DType::F32).passed());
    rejected(primitives::check_clamp(&&Tweaked::<ClampOffByOneHundredth>::new(), DType::F32), "Clamp(");
    let by_ref = run_backend(&&Tweaked::<CumsumExclusive>::new(), &[DType::F32]);
    assert!(by_ref.iter().any(|r| r.outcome.check == "cumsum" && !r.outcome.passed()));
}

#[test]
fn write_slice_ignoring_its_offset_breaks_kv_decoding() {
    let b = Tweaked::<WriteSliceAtZero>::new();
    rejected(model::check_kv_decode_equals_forward(&b, DType::F32), "decode vs reference");
    rejected(model::check_kv_decode_equals_forward(&b, DType::BF16), "logits after position");
    // Generation runs on the KV cache too; a deterministic fault keeps 1 slot = 4 slots.
    // The full iteration's rollout decodes through the same cache.
    assert_eq!(
        failing::<WriteSliceAtZero>(),
        ["write_slice", "kv_decode_equals_forward", "stop_handling", "ppo_iteration_rollout"]
    );
}

#[test]
fn an_exclusive_cumsum_changes_the_sampled_tokens() {
    let b = Tweaked::<CumsumExclusive>::new();
    rejected(sampling::check_sampling_same_tokens(&b, DType::F32), "the backend chose token");
    rejected(sampling::check_top_p_mass(&b, DType::F32), "the backend keeps");
    // The full iteration samples through the same device path.
    assert_eq!(
        failing::<CumsumExclusive>(),
        ["cumsum", "sampling_same_tokens", "top_p_mass", "ppo_iteration_rollout"]
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
fn an_assign_param_that_drops_large_writes_is_caught_by_training_checks() {
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
    // Every tensor of levels 1 to 3 has at most 16 elements: they all pass. Level 4's optimizer
    // step on the tiny model's matrices and level 6 catch it.
    assert_eq!(
        failing::<AssignDropsLargeWrites>(),
        ["adamw_step", "ppo_iteration_updates", "ppo_iteration_rollout"]
    );
}
