//! Generation and train-step throughput of a small random Qwen2 on the CPU, on orz-tch and on the
//! reference backend (the same core code: model, generation engine, AdamW):
//!
//! ```console
//! $ eval "$(./scripts/setup-libtorch.sh)"
//! $ cargo run --release -p orz-tch --example bench -- [--reference] [--threads N]
//! ```
//!
//! Generation: 4 prompts of 16 tokens, 4 samples each, 64 new tokens per sample (a batched KV
//! cache, shared prefills). Train step: 4 packed rows of 256 tokens, token log-probs, a mean over
//! the tokens, backward, one AdamW step; tokens/s counts the 1,024 tokens of the batch.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a benchmark program, not a library")]

use std::rc::Rc;
use std::time::Instant;

use orz_core::backend::{AdamW, AdamWConfig, Backend, DType, ops};
use orz_core::generation::{EngineConfig, Generator, Request, SamplingParams, StopCriteria};
use orz_core::model::{PackedBatch, Policy, Qwen2Config};
use orz_core::rng::Rng;
use orz_reference::Reference;
use orz_tch::Tch;

fn config() -> Qwen2Config {
    Qwen2Config {
        vocab_size: 2048,
        hidden_size: 128,
        intermediate_size: 384,
        num_hidden_layers: 4,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        rope_theta: 10000.0,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: false,
        max_position_embeddings: 1024,
        bos_token_id: None,
        eos_token_ids: vec![],
    }
}

fn detok(tokens: &[u32]) -> String {
    tokens.iter().map(|&t| char::from(b'a' + (t % 26) as u8)).collect()
}

/// Generated tokens per second (best of `reps`).
fn generation<B: Backend>(backend: &Rc<B>, policy: &Policy<B>, reps: usize) -> (usize, f64) {
    let stop =
        StopCriteria { eos_token_ids: vec![], stop_strings: vec![], max_new_tokens: 64, max_total_len: 96 };
    let engine = EngineConfig { max_batch_slots: 16, kv_budget_bytes: 1 << 28 };
    let generator = Generator::new(SamplingParams::default(), stop, engine).unwrap();
    let requests: Vec<Request> =
        (0..4).map(|r| Request::new((0..16).map(|i| 2 + (r * 16 + i) as u32).collect(), 4)).collect();
    let mut best = f64::MAX;
    let mut tokens = 0;
    for rep in 0..reps {
        let start = Instant::now();
        // Without graph recording, as under PyTorch's `torch.no_grad()` (core's KV-cache
        // decoder turns recording off itself; this makes the whole timed region explicit).
        let rng = Rng::seed_from_u64(rep as u64);
        let out = ops::no_grad(backend.as_ref(), || {
            generator.generate(backend.as_ref(), policy, &requests, &detok, &rng)
        })
        .unwrap();
        backend.sync().unwrap();
        best = best.min(start.elapsed().as_secs_f64());
        tokens = out.stats.tokens_generated;
    }
    (tokens, tokens as f64 / best)
}

/// Train-step tokens per second (best of `reps`).
fn train_step<B: Backend>(b: &B, policy: &Policy<B>, reps: usize) -> (usize, f64) {
    let rows: Vec<Vec<Vec<u32>>> = (0..4)
        .map(|r| {
            (0..2)
                .map(|s| (0..128).map(|i| ((r * 977 + s * 131 + i * 7) % 2000) as u32 + 2).collect())
                .collect()
        })
        .collect();
    let batch = PackedBatch::pack(&rows).unwrap();
    let params = policy.model().parameters();
    let mut opt = AdamW::<B>::new(AdamWConfig::default());
    let mask = b.tensor_bool(&batch.next_token_mask(), &batch.shape()).unwrap();
    let mut best = f64::MAX;
    for _ in 0..reps {
        let start = Instant::now();
        let logp = policy.next_token_log_probs(&batch).unwrap();
        let loss = b.neg(&b.masked_mean(&logp, &mask, None).unwrap()).unwrap();
        let grads = b.backward(&loss).unwrap();
        let grads: Vec<_> = params.iter().map(|p| b.grad(&grads, p).unwrap()).collect();
        opt.step(b, &params, &grads, 1e-4).unwrap();
        b.sync().unwrap();
        best = best.min(start.elapsed().as_secs_f64());
    }
    let tokens = batch.shape()[0] * batch.shape()[1];
    (tokens, tokens as f64 / best)
}

fn run<B: Backend>(backend: Rc<B>, label: &str, dtype: DType, reps: usize) {
    let policy = Policy::random(Rc::clone(&backend), &config(), dtype, &mut Rng::seed_from_u64(7)).unwrap();
    let (gen_tokens, gen_rate) = generation(&backend, &policy, reps);
    let (step_tokens, step_rate) = train_step(backend.as_ref(), &policy, reps);
    println!(
        "{label:<24} {:<5} generation {gen_tokens} tokens: {gen_rate:>9.1} tok/s   train step {step_tokens} tokens: {step_rate:>9.1} tok/s",
        dtype.name()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(n) = args.iter().position(|a| a == "--threads").and_then(|i| args.get(i + 1)) {
        tch::set_num_threads(n.parse().expect("--threads takes a number"));
    }
    println!("libtorch threads: {}", tch::get_num_threads());
    run(Rc::new(Tch::cpu()), "tch cpu", DType::F32, 3);
    run(Rc::new(Tch::cpu()), "tch cpu", DType::BF16, 3);
    if args.iter().any(|a| a == "--reference") {
        run(Rc::new(Reference::new()), "reference (f64 loops)", DType::F32, 1);
    }
}
