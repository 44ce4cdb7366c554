//! A tiny random Qwen2 through the whole public API (toy tokenizer and reward from
//! `orz_conformance::checks::iteration`): saved in Hugging Face format, loaded back,
//! sampled from, trained one PPO iteration, saved and loaded again.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

use orz_conformance::checks::iteration::{HasE, detok};
use orz_core::backend::{Backend, DType};
use orz_core::generation::{EngineConfig, Generator, Request, SamplingParams, StopCriteria};
use orz_core::model::{Critic, Head, PackedBatch, Policy, Qwen2Config};
use orz_core::recipe::Preset;
use orz_core::rng::Rng;
use orz_core::train::{PromptItem, Trainer};
use orz_reference::Reference;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orz-hf-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn host_params<B: Backend>(b: &B, named: &[(String, B::Tensor)]) -> BTreeMap<String, Vec<f64>> {
    named.iter().map(|(n, t)| (n.clone(), b.to_host_f64(t).unwrap())).collect()
}

/// Largest absolute difference between two equally long lists (the reference computes in f64,
/// and an F32 checkpoint rounds each weight to f32, so reloaded values agree to ~1e-7).
fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn params_diff(a: &BTreeMap<String, Vec<f64>>, b: &BTreeMap<String, Vec<f64>>) -> f64 {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    a.iter().map(|(name, x)| max_diff(x, &b[name])).fold(0.0, f64::max)
}

fn logits<B: Backend>(policy: &Policy<B>, b: &B) -> Vec<f64> {
    let batch = PackedBatch::padded(&[vec![5u32, 6, 7, 8], vec![9, 10]]).unwrap();
    b.to_host_f64(&policy.logits(&batch).unwrap()).unwrap()
}

#[test]
fn save_load_sample_train_save_load() {
    let backend = Rc::new(Reference::new());
    let b = backend.as_ref();
    let config = Qwen2Config::tiny_test();
    let mut rng = Rng::seed_from_u64(11);

    // 1. A random policy, saved in Hugging Face format (sharded) and loaded back exactly.
    let original = Policy::random(Rc::clone(&backend), &config, DType::F32, &mut rng).unwrap();
    let base_dir = temp_dir("base");
    let named = original.model().named_tensors();
    orz_hf::save_model(b, &base_dir, &config, Head::Lm, &named, DType::F32, Some(8 * 1024)).unwrap();
    let (loaded_config, tensors) = orz_hf::load_model(b, &base_dir, Head::Lm, DType::F32).unwrap();
    assert_eq!(loaded_config, config);
    let policy = Policy::from_tensors(Rc::clone(&backend), &config, tensors.clone()).unwrap();
    // Host snapshot: tensor handles share storage with the model, which training updates in place.
    let before = host_params(b, &policy.model().named_tensors());
    let diff = params_diff(&host_params(b, &named), &before);
    assert!(diff < 1e-6, "weights differ by {diff} after an f32 round trip");
    let diff = max_diff(&logits(&policy, b), &logits(&original, b));
    assert!(diff < 1e-5, "reloaded policy's logits differ by {diff}");

    // 2. The critic starts from the same base checkpoint, as ORZ's does.
    let critic = Critic::from_pretrained(Rc::clone(&backend), &config, tensors, &mut rng).unwrap();

    // 3. Sampling from the loaded policy.
    let stop = StopCriteria {
        eos_token_ids: config.eos_token_ids.clone(),
        stop_strings: vec!["z".into()],
        max_new_tokens: 6,
        max_total_len: 32,
    };
    let engine = EngineConfig { max_batch_slots: 4, kv_budget_bytes: 1 << 24 };
    let generator = Generator::new(SamplingParams::default(), stop, engine).unwrap();
    let requests = [Request::new(vec![5, 6, 7], 3), Request::new(vec![9, 10], 2)];
    let out = generator.generate(b, &policy, &requests, &detok, &Rng::seed_from_u64(3)).unwrap();
    assert_eq!(out.completions.len(), 5);
    assert!(out.completions.iter().all(|c| !c.tokens.is_empty() && c.tokens.len() <= 6));
    assert_eq!(out.stats.prefills, 2, "one shared prefill per prompt");

    // 4. One ORZ iteration (constant learning rate, so the first step already moves weights).
    let mut train_config = Preset::Tiny.config().train_config(config.eos_token_ids.clone()).unwrap();
    let c = &mut train_config;
    (c.n_samples_per_prompt, c.stop.max_new_tokens, c.stop.max_total_len) = (4, 6, 32);
    (c.prompt_max_len, c.packing_max_len, c.critic_update_steps) = (8, 32, 2);
    c.set_learning_rates(1e-3, 1e-3, 0);
    let mut trainer = Trainer::new(train_config, policy, Some(critic), Rng::seed_from_u64(5)).unwrap();
    let prompts: Vec<PromptItem> = [vec![5u32, 6, 7], vec![9, 10]]
        .into_iter()
        .map(|tokens| PromptItem { text: detok(&tokens), tokens, reference: String::new() })
        .collect();
    let report = trainer.iteration(&prompts, &HasE, &detok).unwrap();
    assert_eq!(report.rollout.generated, 8);
    assert!(report.skipped_steps.is_empty(), "{:?}", report.skipped_steps);
    let trained = trainer.policy().model().named_tensors();
    let after = host_params(b, &trained);
    let moved = params_diff(&before, &after);
    assert!(moved > 1e-6, "one PPO iteration must change the policy (moved {moved})");

    // 5. The trained policy round-trips through Hugging Face format too.
    let trained_dir = temp_dir("trained");
    orz_hf::save_model(b, &trained_dir, &config, Head::Lm, &trained, DType::F32, None).unwrap();
    let (_, reloaded) = orz_hf::load_model(b, &trained_dir, Head::Lm, DType::F32).unwrap();
    let reloaded: Vec<(String, _)> = reloaded.into_iter().collect();
    let diff = params_diff(&host_params(b, &reloaded), &after);
    assert!(diff < 1e-6, "trained weights differ by {diff} after an f32 round trip");

    std::fs::remove_dir_all(&base_dir).unwrap();
    std::fs::remove_dir_all(&trained_dir).unwrap();
}
