//! Shared helpers: tiny configs, random named tensors with host copies, comparisons.

use std::collections::BTreeMap;
use std::rc::Rc;

use orz_core::backend::{Backend, DType};
use orz_core::model::{Critic, Head, Policy, Qwen2Config, parameter_specs};
use orz_core::rng::Rng;
use orz_reference::{Reference, Tensor};

/// A tiny GQA config (4 query heads, 2 kv heads, head_dim 4), untied or tied.
pub fn tiny(tied: bool) -> Qwen2Config {
    Qwen2Config {
        vocab_size: 40,
        hidden_size: 16,
        intermediate_size: 24,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        rope_theta: 100.0,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: tied,
        max_position_embeddings: 64,
        bos_token_id: None,
        eos_token_ids: vec![1],
    }
}

/// Deterministic uniform draws in `[lo, hi)` from core's seeded generator.
pub fn uniform(seed: u64, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    let mut rng = Rng::seed_from_u64(seed);
    (0..n).map(|_| lo + (hi - lo) * rng.uniform()).collect()
}

/// Host values of every tensor of `config`/`head`, large enough that the model is far from
/// uniform: weights in ±0.5, biases in ±0.3, norms in 0.8..1.2.
pub fn host_weights(config: &Qwen2Config, head: Head, seed: u64) -> BTreeMap<String, (Vec<f64>, Vec<usize>)> {
    parameter_specs(config, head)
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let n = s.shape.iter().product();
            let seed = seed * 1000 + i as u64;
            let v = if s.name.ends_with("norm.weight") {
                uniform(seed, n, 0.8, 1.2)
            } else if s.name.ends_with(".bias") {
                uniform(seed, n, -0.3, 0.3)
            } else {
                uniform(seed, n, -0.5, 0.5)
            };
            (s.name, (v, s.shape))
        })
        .collect()
}

/// The host weights as reference tensors.
pub fn tensors(b: &Reference, host: &BTreeMap<String, (Vec<f64>, Vec<usize>)>) -> BTreeMap<String, Tensor> {
    host.iter().map(|(k, (v, s))| (k.clone(), b.tensor_f64(v, s, DType::F32).unwrap())).collect()
}

/// A policy with [`host_weights`] and its backend.
pub fn policy(config: &Qwen2Config, seed: u64) -> (Rc<Reference>, Policy<Reference>) {
    let b = Rc::new(Reference::new());
    let host = host_weights(config, Head::Lm, seed);
    let p = Policy::from_tensors(Rc::clone(&b), config, tensors(&b, &host)).unwrap();
    (b, p)
}

/// A critic with [`host_weights`] on backend `b`.
pub fn critic(b: &Rc<Reference>, config: &Qwen2Config, seed: u64) -> Critic<Reference> {
    let host = host_weights(config, Head::Value, seed);
    Critic::from_tensors(Rc::clone(b), config, tensors(b, &host)).unwrap()
}

/// The values of a tensor.
pub fn vals(b: &Reference, t: &Tensor) -> Vec<f64> {
    b.to_host_f64(t).unwrap()
}

/// Asserts `|x - y| <= tol * max(1, |x|, |y|)` element-wise, naming the first bad index.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (x, y)) in got.iter().zip(want).enumerate() {
        assert!((x - y).abs() <= tol * x.abs().max(y.abs()).max(1.0), "{what}: index {i}: got {x}, want {y}");
    }
}

/// Deterministic token sequences of the given lengths in `2..vocab`.
pub fn sequences(lengths: &[usize], vocab: usize, seed: u64) -> Vec<Vec<u32>> {
    lengths
        .iter()
        .enumerate()
        .map(|(i, &n)| uniform(seed + i as u64, n, 2.0, vocab as f64).into_iter().map(|x| x as u32).collect())
        .collect()
}
