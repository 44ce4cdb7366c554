//! The Qwen2 model, generation and one ORZ iteration of orz-core on orz-tch (a smoke test ahead of
//! conformance levels 4-6): the same weights give the reference's logits and log-probs (f32), and
//! a whole PPO iteration runs and moves the weights.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::collections::BTreeMap;
use std::rc::Rc;

use orz_conformance::checks::iteration::{HasE, detok};
use orz_core::backend::{Backend, DType};
use orz_core::model::{Critic, PackedBatch, Policy, Qwen2Config};
use orz_core::recipe::Preset;
use orz_core::rng::Rng;
use orz_core::train::{PromptItem, Trainer};
use orz_reference::Reference;
use orz_tch::Tch;

/// The reference's random policy, and the same weights on tch.
fn policies(config: &Qwen2Config) -> (Policy<Reference>, Policy<Tch>, Rc<Tch>) {
    let reference = Rc::new(Reference::new());
    let original =
        Policy::random(Rc::clone(&reference), config, DType::F32, &mut Rng::seed_from_u64(11)).unwrap();
    let tch = Rc::new(Tch::cpu());
    let tensors: BTreeMap<String, _> = original
        .model()
        .named_tensors()
        .into_iter()
        .map(|(name, t)| {
            let values = reference.to_host_f32(&t).unwrap();
            (name, tch.tensor_f32(&values, &reference.shape(&t), DType::F32).unwrap())
        })
        .collect();
    let policy = Policy::from_tensors(Rc::clone(&tch), config, tensors).unwrap();
    (original, policy, tch)
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

#[test]
fn packed_logits_and_log_probs_match_the_reference() {
    let config = Qwen2Config::tiny_test();
    let (reference, tch, b) = policies(&config);
    let r = Reference::new();
    let batch = PackedBatch::pack(&[vec![vec![5u32, 6, 7, 8], vec![9, 10]], vec![vec![11, 12, 13]]]).unwrap();
    let (lr, lt) = (
        r.to_host_f64(&reference.logits(&batch).unwrap()).unwrap(),
        b.to_host_f64(&tch.logits(&batch).unwrap()).unwrap(),
    );
    let diff = max_diff(&lr, &lt);
    assert!(diff < 1e-4, "logits differ by {diff}");
    let pr = r.to_host_f64(&reference.next_token_log_probs(&batch).unwrap()).unwrap();
    let pt = b.to_host_f64(&tch.next_token_log_probs(&batch).unwrap()).unwrap();
    let diff = max_diff(&pr, &pt);
    assert!(diff < 1e-4, "log-probs differ by {diff}");
}

#[test]
fn one_orz_iteration_runs_on_tch_and_moves_the_weights() {
    let config = Qwen2Config::tiny_test();
    let (_, policy, b) = policies(&config);
    let tensors: BTreeMap<String, _> = policy.model().named_tensors().into_iter().collect();
    let mut rng = Rng::seed_from_u64(3);
    let critic = Critic::from_pretrained(Rc::clone(&b), &config, tensors, &mut rng).unwrap();
    let before: Vec<Vec<f32>> =
        policy.model().parameters().iter().map(|t| b.to_host_f32(t).unwrap()).collect();
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
    let after: Vec<Vec<f32>> =
        trainer.policy().model().parameters().iter().map(|t| b.to_host_f32(t).unwrap()).collect();
    let moved = before
        .iter()
        .zip(&after)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0f32, f32::max);
    assert!(moved > 1e-6, "one PPO iteration must change the policy (moved {moved})");
}
