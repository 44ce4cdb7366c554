//! Tests of the memory plan: published parameter counts, the ORZ presets against the H100 and
//! H200, the KV-cache cap, the growth law of the attention term, and the advice.

use super::*;
use orz_backends::BackendKind;
use orz_core::recipe::Preset;

fn plan(preset: Preset, dtype: DType, backend: MemoryFacts) -> MemoryPlan {
    let model = qwen25_shape(preset).unwrap();
    let train = preset.config().train_config(vec![151_643]).unwrap();
    MemoryPlan::new(&model, &train, dtype, backend, Some(H200_BYTES), "test")
}

#[test]
fn parameter_counts_are_the_published_ones() {
    // Qwen2.5 model cards: 0.49 B, 1.54 B, 7.61 B, 32.5 B parameters.
    for (p, billions) in
        [(Preset::Orz0p5b, 0.494), (Preset::Orz1p5b, 1.544), (Preset::Orz7b, 7.616), (Preset::Orz32b, 32.76)]
    {
        let n = plan(p, DType::BF16, BackendKind::Tch.memory()).policy_params as f64 / 1e9;
        assert!((n - billions).abs() / billions < 0.01, "{p}: {n} B");
    }
}

#[test]
fn small_orz_presets_fit_one_h100_with_fused_attention_and_checkpointing() {
    // The targets: ORZ-0.5B at most 60 GB, ORZ-1.5B at most 80 GB, both fit an H100.
    for (p, limit) in [(Preset::Orz0p5b, 60e9), (Preset::Orz1p5b, 80e9)] {
        let plan = plan(p, DType::BF16, BackendKind::Tch.memory());
        assert!(plan.options.activation_checkpointing, "{p}");
        assert!((plan.total() as f64) <= limit, "{p}: {plan}");
        let text = plan.to_string();
        assert!(text.contains("fits one 80 GB H100"), "{p}: {text}");
        // Checkpointing saves memory; where its absence breaks the fit, the advice says so.
        let off = plan.with_options(MemoryOptions { activation_checkpointing: false, ..plan.options });
        assert!(off.activations > plan.activations, "{p}");
        if off.total() > H100_BYTES {
            assert!(off.advice(H100_BYTES).contains("{activation_checkpointing=true}"), "{p}");
        }
    }
    let off = plan(Preset::Orz1p5b, DType::BF16, BackendKind::Tch.memory())
        .with_options(MemoryOptions { activation_checkpointing: false, head_chunk_tokens: 1024 });
    assert!(off.total() > H100_BYTES, "{off}");
}

#[test]
fn dense_attention_is_quadratic_and_fused_linear() {
    let dense = plan(Preset::Orz0p5b, DType::BF16, BackendKind::Reference.memory());
    let fused = plan(Preset::Orz0p5b, DType::BF16, BackendKind::Tch.memory());
    let (d1, d2) = (dense.with_pack_len(4096).attention, dense.with_pack_len(8192).attention);
    let (f1, f2) = (fused.with_pack_len(4096).attention, fused.with_pack_len(8192).attention);
    assert_eq!(d2, 4 * d1, "dense attention quadruples");
    assert_eq!(f2, 2 * f1, "fused attention doubles");
    // The whole training phase grows about linearly with fused attention.
    let (a1, a2) = (fused.with_pack_len(4096).activations, fused.with_pack_len(8192).activations);
    assert!((a2 as f64) < 2.1 * a1 as f64, "{a1} -> {a2}");
    assert!(dense.advice(H100_BYTES).contains("fused attention"), "{}", dense.advice(H100_BYTES));
}

#[test]
fn seven_b_needs_sharding_and_the_largest_pack_is_searched() {
    let p = plan(Preset::Orz7b, DType::BF16, BackendKind::Tch.memory());
    // 2 (bf16) + 4 (master) + 8 (moments) per parameter of both models, and 8 bytes of f32
    // gradients (accumulator + one micro-batch) per parameter of the larger one.
    let states = 14 * (p.policy_params + p.critic_params) + 8 * p.policy_params;
    assert_eq!(p.model_states(), states);
    assert!(p.model_states() > H200_BYTES && p.fits() == Some(false));
    let v = p.verdict(H200_BYTES, "one H200");
    assert!(v.contains("does NOT fit") && v.contains("need 2 such devices"), "{v}");
    // 0.5B on an H100: the largest pack fits, the next 256 tokens do not.
    let small = plan(Preset::Orz0p5b, DType::BF16, BackendKind::Tch.memory());
    let t = small.largest_pack_len(H100_BYTES).unwrap();
    assert!(t >= 10_048, "{t}");
    if t < MAX_PACK_LEN {
        assert!(
            small.with_pack_len(t).total() <= H100_BYTES && small.with_pack_len(t + 256).total() > H100_BYTES
        );
    }
    assert_eq!(small.largest_pack_len(small.model_states()), None);
}

#[test]
fn a_rank_of_a_data_parallel_run_holds_a_slice_of_the_states_and_gathers_weights_when_it_uses_them() {
    let one = plan(Preset::Orz7b, DType::BF16, BackendKind::Tch.memory());
    let (params, larger) = (one.policy_params + one.critic_params, one.policy_params);
    // ORZ-7B: untied, so a checkpointed step has the embedding, the LM head and a layer open.
    let open = 2 * 152_064 * 3584 + 233_057_792 + 3584;
    let eight = one.with_world_size(8);
    // ZeRO-3 by default: generation and the experience pass hold one model whole at a time.
    assert_eq!((eight.weights, eight.gathered_for_generation), (0, 2 * larger));
    assert_eq!(eight.gathered_for_training, 2 * open);
    assert_eq!(eight.masters, (4 * params).div_ceil(8));
    assert_eq!(eight.optimizer, (8 * params).div_ceil(8));
    assert_eq!(eight.gradients, 4 * open + (4 * larger).div_ceil(8));
    assert_eq!(eight.activations, one.activations);
    assert_eq!(one.with_world_size(1), one);
    assert_eq!(eight.with_world_size(1), one, "planning another world size starts from the model");
    let text = eight.to_string();
    assert!(text.contains("one rank of 8") && text.contains("8 x 141 GB H200, per rank"), "{text}");
    assert!(text.contains("weights sharded (ZeRO-3"), "{text}");
    // More ranks shrink every model state; the gathered weights stay per phase.
    let many = one.with_world_size(4096);
    assert!(many.model_states() < eight.model_states() / 100 + 4 * open + 1);
    // Too few ranks: the advice says how many.
    let two = one.with_world_size(2);
    let advice = two.advice(H100_BYTES);
    assert!(advice.contains("more ranks") && advice.contains("ranks of this size"), "{advice}");
    // ZeRO-2: whole weights on every rank, and the advice points at sharding them.
    let mut zero2 = one.clone();
    zero2.shard_weights = false;
    let zero2 = zero2.with_world_size(4096);
    assert_eq!((zero2.weights, zero2.gathered_for_generation), (one.weights, 0));
    let advice = zero2.advice(zero2.weights);
    assert!(advice.contains("shard_weights=true"), "{advice}");
}

#[test]
fn the_kv_cache_is_capped_by_the_budget() {
    let model = qwen25_shape(Preset::Orz0p5b).unwrap();
    let mut train = Preset::Orz0p5b.config().train_config(vec![0]).unwrap();
    train.engine.kv_budget_bytes = 1000;
    let plan =
        |t: &TrainConfig| MemoryPlan::new(&model, t, DType::BF16, BackendKind::Tch.memory(), None, "x");
    assert_eq!(plan(&train).kv_cache, 1000);
    train.engine.kv_budget_bytes = usize::MAX;
    train.engine.max_batch_slots = 1;
    // 24 layers x 2 kv heads x 64 dims x 2 (k, v) x 2 bytes x 8192 tokens.
    assert_eq!(plan(&train).kv_cache, 24 * 2 * 64 * 2 * 2 * 8192);
    assert!(plan(&train).to_string().contains("memory unknown"));
}

#[test]
fn host_memory_is_read() {
    let (bytes, source) = device_memory(None);
    assert!(bytes.unwrap_or(0) > 1 << 30, "{source}");
}

#[test]
fn the_reference_model_and_the_entropy_bonus_have_their_memory() {
    let model = qwen25_shape(Preset::Orz1p5b).unwrap();
    let base = preset_train(Preset::Orz1p5b);
    let plain =
        MemoryPlan::new(&model, &base, DType::BF16, BackendKind::Tch.memory(), Some(H100_BYTES), "test");
    assert_eq!(plain.reference, 0, "ORZ's presets keep no reference model");
    for kl in [
        TrainConfig { kl_coef: 0.01, ..base.clone() },
        TrainConfig { use_kl_loss: true, kl_loss_coef: 0.001, ..base.clone() },
    ] {
        let p =
            MemoryPlan::new(&model, &kl, DType::BF16, BackendKind::Tch.memory(), Some(H100_BYTES), "test");
        // One more copy of the policy's bf16 weights, nothing else.
        assert_eq!(p.reference, 2 * p.policy_params);
        assert_eq!(p.total(), plain.total() + p.reference);
        assert!(p.to_string().contains("reference model (frozen initial policy"), "{p}");
        assert_eq!(
            p.with_world_size(4).reference,
            p.reference.div_ceil(4),
            "sliced with the weights (ZeRO-3)"
        );
        let mut zero2 = p.clone();
        zero2.shard_weights = false;
        assert_eq!(zero2.with_world_size(4).reference, p.reference, "whole on every rank under ZeRO-2");
    }
    let entropy = TrainConfig { entropy_coef: 0.001, ..base };
    let p =
        MemoryPlan::new(&model, &entropy, DType::BF16, BackendKind::Tch.memory(), Some(H100_BYTES), "test");
    let chunk = p.pack_len.min(p.options.head_chunk_tokens as u64);
    assert_eq!(p.head_logits, plain.head_logits + ENTROPY_F32_BUFFERS * 4 * chunk * model.vocab_size as u64);
}

fn preset_train(preset: Preset) -> TrainConfig {
    preset.config().train_config(vec![151_643]).unwrap()
}
