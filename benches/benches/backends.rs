//! Generation and train-step throughput of a small Qwen2 on each CPU backend (a bench binary,
//! not criterion: one model-sized workload per backend, timed with the backend's `sync`).
//!
//! `cargo bench -p orz-bench --bench backends` (add `-- --quick` for fewer repetitions). The
//! reference (f64 plain loops) runs a smaller workload; rows say what ran.

use std::rc::Rc;
use std::time::Instant;

use orz_candle::Candle;
use orz_core::backend::{AdamW, AdamWConfig, Backend, DType};
use orz_core::generation::{EngineConfig, Generator, Request, SamplingParams, StopCriteria};
use orz_core::model::{PackedBatch, Policy, Qwen2Config};
use orz_core::rng::Rng;
use orz_reference::Reference;

/// hidden 256, 4 layers, vocab 4096, GQA 8:2 (head dim 32), SwiGLU 1024.
fn config() -> Qwen2Config {
    Qwen2Config {
        vocab_size: 4096,
        hidden_size: 256,
        intermediate_size: 1024,
        num_hidden_layers: 4,
        num_attention_heads: 8,
        num_key_value_heads: 2,
        max_position_embeddings: 4096,
        eos_token_ids: vec![],
        ..Qwen2Config::tiny_test()
    }
}

/// What one backend runs.
#[derive(Debug, Clone, Copy)]
struct Workload {
    /// Generation: concurrent sequences (one prompt each), prompt length, new tokens each.
    gen_batch: usize,
    prompt: usize,
    new_tokens: usize,
    /// Train step: packed rows and tokens per row.
    rows: usize,
    row_len: usize,
    /// Timed repetitions of each (after one warm-up).
    reps: usize,
}

fn tokens(rng: &mut Rng, n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|_| (rng.next_u64() % vocab as u64) as u32).collect()
}

/// Generated tokens per second (median of `reps`).
fn generation<B: Backend>(b: &Rc<B>, policy: &Policy<B>, w: Workload) -> orz_core::Result<f64> {
    let stop = StopCriteria {
        eos_token_ids: vec![],
        stop_strings: vec![],
        max_new_tokens: w.new_tokens,
        max_total_len: w.prompt + w.new_tokens + 1,
    };
    let engine_config = EngineConfig { max_batch_slots: w.gen_batch, kv_budget_bytes: 1 << 34 };
    let engine = Generator::new(SamplingParams::new(1.0, None, 1.0)?, stop, engine_config)?;
    let mut rng = Rng::seed_from_u64(1);
    let requests: Vec<Request> =
        (0..w.gen_batch).map(|_| Request::new(tokens(&mut rng, w.prompt, 4096), 1)).collect();
    let detok = |_: &[u32]| String::new();
    let mut rates = Vec::new();
    for rep in 0..=w.reps {
        let start = Instant::now();
        let out = engine.generate(b.as_ref(), policy, &requests, &detok, &Rng::seed_from_u64(rep as u64))?;
        b.sync()?;
        let seconds = start.elapsed().as_secs_f64();
        if rep > 0 {
            rates.push(out.stats.tokens_generated as f64 / seconds);
        }
    }
    Ok(median(rates))
}

/// Trained tokens per second (median of `reps`): forward, next-token log-probs, backward,
/// global-norm clipping and one AdamW step.
fn train_step<B: Backend>(b: &Rc<B>, policy: &Policy<B>, w: Workload) -> orz_core::Result<f64> {
    let mut rng = Rng::seed_from_u64(2);
    let rows: Vec<Vec<Vec<u32>>> = (0..w.rows).map(|_| vec![tokens(&mut rng, w.row_len, 4096)]).collect();
    let batch = PackedBatch::pack(&rows)?;
    let params = policy.model().parameters();
    let mut opt = AdamW::<B>::new(AdamWConfig::default());
    let mut rates = Vec::new();
    for rep in 0..=w.reps {
        let start = Instant::now();
        let logp = policy.next_token_log_probs(&batch)?;
        let loss = b.neg(&b.sum_all(&logp)?)?;
        let grads = b.backward(&loss)?;
        let grads: Vec<B::Tensor> = params
            .iter()
            .map(|p| b.grad(&grads, p)?.map_or_else(|| b.zeros(&b.shape(p), b.dtype(p)), Ok))
            .collect::<orz_core::Result<_>>()?;
        let (grads, _norm) = b.clip_grad_norm(&grads, 1.0)?;
        let grads: Vec<Option<B::Tensor>> = grads.into_iter().map(Some).collect();
        opt.step(b.as_ref(), &params, &grads, 1e-6)?;
        b.sync()?;
        let seconds = start.elapsed().as_secs_f64();
        if rep > 0 {
            rates.push((w.rows * w.row_len) as f64 / seconds);
        }
    }
    Ok(median(rates))
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

fn run<B: Backend>(backend: B, w: Workload) -> orz_core::Result<()> {
    let b = Rc::new(backend);
    let policy = Policy::random(Rc::clone(&b), &config(), DType::F32, &mut Rng::seed_from_u64(0))?;
    let gen_rate = generation(&b, &policy, w)?;
    println!(
        "{:<10} generation  batch {:>2}, prompt {:>3}, {:>3} new tokens each: {:>9.1} tokens/s",
        b.name(),
        w.gen_batch,
        w.prompt,
        w.new_tokens,
        gen_rate
    );
    let train_rate = train_step(&b, &policy, w)?;
    println!(
        "{:<10} train step  {:>2} rows x {:>3} tokens (fwd+bwd+clip+AdamW):  {:>9.1} tokens/s",
        b.name(),
        w.rows,
        w.row_len,
        train_rate
    );
    Ok(())
}

fn main() -> orz_core::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let reps = if quick { 1 } else { 3 };
    println!("Qwen2: hidden 256, 4 layers, vocab 4096, heads 8 (kv 2), f32, CPU");
    let candle = Workload { gen_batch: 8, prompt: 32, new_tokens: 64, rows: 4, row_len: 256, reps };
    run(Candle::cpu(), candle)?;
    let reference = Workload { gen_batch: 2, prompt: 8, new_tokens: 8, rows: 1, row_len: 32, reps: 1 };
    run(Candle::cpu(), reference)?;
    run(Reference::new(), reference)?;
    Ok(())
}
