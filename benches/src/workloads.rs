//! The benchmarked workloads, each generic over the backend: prepared by a constructor (not
//! timed), then [`Workload::run`] does the timed work once and ends with the backend's `sync`.
//! The `sized` constructors pick the sizes the benches use at a [`Scale`]; the others take
//! explicit inputs (the `vs_pytorch` binary feeds them the inputs PyTorch gets).

use std::rc::Rc;

use orz_core::backend::ops::no_grad;
use orz_core::backend::{AdamWConfig, Backend, DType};
use orz_core::generation::{EngineConfig, Generator, Request, SamplingParams, StopCriteria};
use orz_core::model::{PackedBatch, Policy, Qwen2Config};
use orz_core::optimizer::{Optimizer, OptimizerConfig};
use orz_core::ppo::policy_loss::ORZ_CLIP_EPS;
use orz_core::ppo::value_loss::ORZ_VALUE_CLIP;
use orz_core::rng::Rng;
use orz_core::schedule::LrSchedule;
use orz_core::{Error, Result};

use crate::backends::Scale;
use crate::models;

/// One benchmarked piece of work.
pub trait Workload {
    /// Does the work once; returns after the backend's `sync`.
    fn run(&mut self) -> Result<()>;
    /// How many units (tokens, unless the workload says otherwise) one run processes.
    fn units(&self) -> u64;
}

/// `n` token ids below `limit` from `rng`.
pub fn random_tokens(rng: &mut Rng, n: usize, limit: usize) -> Vec<u32> {
    (0..n).map(|_| (rng.next_u64() % limit as u64) as u32).collect()
}

/// Uniform floats in `[lo, hi)`.
fn uniform(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| lo + (hi - lo) * ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32)).collect()
}

/// The model of the benches at `scale`: [`models::small`] or [`models::tiny`].
pub fn bench_config(scale: Scale) -> Qwen2Config {
    match scale {
        Scale::Full => models::small(),
        Scale::Tiny => models::tiny(),
    }
}

/// A random f32 policy of `config` (seed 0).
pub fn random_policy<B: Backend>(b: &Rc<B>, config: &Qwen2Config) -> Result<Rc<Policy<B>>> {
    Ok(Rc::new(Policy::random(Rc::clone(b), config, DType::F32, &mut Rng::seed_from_u64(0))?))
}

/// PPO policy and value losses, forward and backward, over `rows x len` response tokens: the
/// clipped per-token losses, ORZ's masked means, backward to the log-probs and the values.
pub struct PpoLosses<B: Backend> {
    b: Rc<B>,
    logp: B::Tensor,
    logp_old: B::Tensor,
    advantages: B::Tensor,
    values: B::Tensor,
    values_old: B::Tensor,
    returns: B::Tensor,
    mask: B::Tensor,
    tokens: usize,
}

impl<B: Backend> PpoLosses<B> {
    /// The shapes benched at `scale`: `(rows, len)`.
    pub fn shapes(scale: Scale) -> Vec<(usize, usize)> {
        match scale {
            Scale::Full => vec![(8, 10_048)],
            Scale::Tiny => vec![(2, 16)],
        }
    }

    /// Random inputs of shape `[rows, len]` (7/8 of the positions are response tokens).
    pub fn new(b: Rc<B>, rows: usize, len: usize) -> Result<Self> {
        let n = rows * len;
        let shape = [rows, len];
        let mut rng = Rng::seed_from_u64(3);
        let mut f = |lo, hi| b.tensor_f32(&uniform(&mut rng, n, lo, hi), &shape, DType::F32);
        let (logp, logp_old, advantages) = (f(-4.0, 0.0)?, f(-4.0, 0.0)?, f(-2.0, 2.0)?);
        let (values, values_old, returns) = (f(0.0, 1.0)?, f(0.0, 1.0)?, f(0.0, 1.0)?);
        let mask: Vec<bool> = (0..n).map(|i| i % 8 != 0).collect();
        let mask = b.tensor_bool(&mask, &shape)?;
        let (logp, values) = (b.param(&logp)?, b.param(&values)?);
        Ok(PpoLosses { b, logp, logp_old, advantages, values, values_old, returns, mask, tokens: n })
    }
}

impl<B: Backend> Workload for PpoLosses<B> {
    fn run(&mut self) -> Result<()> {
        let b = &self.b;
        let pl = b.policy_loss(&self.logp, &self.logp_old, &self.advantages, ORZ_CLIP_EPS)?;
        let vl = b.value_loss(&self.values, &self.values_old, &self.returns, ORZ_VALUE_CLIP)?;
        let loss = b.add(&b.masked_mean(&pl, &self.mask, None)?, &b.masked_mean(&vl, &self.mask, None)?)?;
        let grads = b.backward(&loss)?;
        for p in [&self.logp, &self.values] {
            b.grad(&grads, p)?.ok_or_else(|| Error::backend("ppo losses bench", "no gradient"))?;
        }
        b.sync()
    }

    fn units(&self) -> u64 {
        self.tokens as u64
    }
}

/// Selective log-prob ([`Backend::selective_log_prob`]) of `[rows, len, vocab]` logits, the
/// forward alone (under no-grad) or forward and backward to the logits.
pub struct SelectiveLogProb<B: Backend> {
    b: Rc<B>,
    logits: B::Tensor,
    targets: B::Tensor,
    backward: bool,
    tokens: usize,
}

impl<B: Backend> SelectiveLogProb<B> {
    /// The shapes benched at `scale`: `(rows, len, vocab)`. Full: Qwen's vocabulary at batch x
    /// length 1 x 128, 4 x 128 and 2 x 512 (2,048 rows of 151,936 f32 logits are 1.2 GB).
    pub fn shapes(scale: Scale) -> Vec<(usize, usize, usize)> {
        let v = models::QWEN_VOCAB;
        match scale {
            Scale::Full => vec![(1, 128, v), (4, 128, v), (2, 512, v)],
            Scale::Tiny => vec![(1, 8, 256), (2, 8, 256)],
        }
    }

    /// Random logits and targets; `backward` adds the backward pass to the timed work.
    pub fn new(b: Rc<B>, rows: usize, len: usize, vocab: usize, backward: bool) -> Result<Self> {
        let mut rng = Rng::seed_from_u64(4);
        let logits = uniform(&mut rng, rows * len * vocab, -8.0, 8.0);
        let logits = b.param(&b.tensor_f32(&logits, &[rows, len, vocab], DType::F32)?)?;
        let targets: Vec<i64> =
            random_tokens(&mut rng, rows * len, vocab).into_iter().map(i64::from).collect();
        let targets = b.tensor_i64(&targets, &[rows, len])?;
        Ok(SelectiveLogProb { b, logits, targets, backward, tokens: rows * len })
    }
}

impl<B: Backend> Workload for SelectiveLogProb<B> {
    fn run(&mut self) -> Result<()> {
        let b = &self.b;
        if self.backward {
            let logp = b.selective_log_prob(&self.logits, &self.targets)?;
            let grads = b.backward(&b.sum_all(&logp)?)?;
            b.grad(&grads, &self.logits)?.ok_or_else(|| Error::backend("selective bench", "no gradient"))?;
        } else {
            no_grad(b.as_ref(), || b.selective_log_prob(&self.logits, &self.targets))?;
        }
        b.sync()
    }

    fn units(&self) -> u64 {
        self.tokens as u64
    }
}

/// The model's forward pass (logits, no graph) on a packed batch.
pub struct Forward<B: Backend> {
    policy: Rc<Policy<B>>,
    batch: PackedBatch,
    /// The logits of the last run, `[rows, seq_len, vocab]`.
    pub logits: Option<B::Tensor>,
}

impl<B: Backend> Forward<B> {
    /// The packed batch of the benches at `scale` as `(rows, samples per row, sample length)`:
    /// 4 rows of 2 samples of 256 tokens (full), 1 row of 2 samples of 16 (tiny).
    pub fn shape(scale: Scale) -> (usize, usize, usize) {
        match scale {
            Scale::Full => (4, 2, 256),
            Scale::Tiny => (1, 2, 16),
        }
    }

    /// Random samples packed `rows x per_row`.
    pub fn sized(policy: Rc<Policy<B>>, rows: usize, per_row: usize, len: usize) -> Result<Self> {
        let vocab = policy.model().config().vocab_size;
        let mut rng = Rng::seed_from_u64(5);
        let rows: Vec<Vec<Vec<u32>>> =
            (0..rows).map(|_| (0..per_row).map(|_| random_tokens(&mut rng, len, vocab)).collect()).collect();
        Self::new(policy, &rows)
    }

    /// The forward pass over `rows` (each a list of samples packed into one row).
    pub fn new(policy: Rc<Policy<B>>, rows: &[Vec<Vec<u32>>]) -> Result<Self> {
        Ok(Forward { policy, batch: PackedBatch::pack(rows)?, logits: None })
    }
}

impl<B: Backend> Workload for Forward<B> {
    fn run(&mut self) -> Result<()> {
        let b = self.policy.model().backend();
        self.logits = Some(no_grad(b, || self.policy.logits(&self.batch))?);
        b.sync()
    }

    fn units(&self) -> u64 {
        self.batch.samples().iter().map(|s| s.len as u64).sum()
    }
}

/// Sampling with orz-core's [`Generator`] (KV cache, shared prefill per prompt, continuous
/// batching) at temperature 1, top-p 1, no stop before the token limit; units are generated
/// tokens.
pub struct Generation<B: Backend> {
    policy: Rc<Policy<B>>,
    engine: Generator,
    requests: Vec<Request>,
    seed: u64,
    generated: usize,
}

/// Sequences decoded together per prompt in the generation workloads (ORZ samples 64 per
/// prompt; 4 keeps batch 16 at 4 prompts).
pub const SAMPLES_PER_PROMPT: usize = 4;

/// `batch` sequences as prompts x samples: 1 x 1 for batch 1, else `batch / 4` prompts of 4
/// samples (at least one prompt); random prompt tokens below `vocab - 1` (never the EOS).
pub fn generation_requests(batch: usize, prompt_len: usize, vocab: usize, seed: u64) -> Vec<Request> {
    let per = if batch >= SAMPLES_PER_PROMPT { SAMPLES_PER_PROMPT } else { 1 };
    let mut rng = Rng::seed_from_u64(seed);
    (0..(batch / per).max(1))
        .map(|_| Request::new(random_tokens(&mut rng, prompt_len, vocab - 1), per))
        .collect()
}

impl<B: Backend> Generation<B> {
    /// The benches' generation shapes at `scale`: `(batch, prompt length, new tokens)`.
    pub fn shapes(scale: Scale) -> Vec<(usize, usize, usize)> {
        match scale {
            Scale::Full => vec![(1, 32, 32), (16, 32, 32), (64, 32, 32)],
            Scale::Tiny => vec![(1, 8, 4), (4, 8, 4)],
        }
    }

    /// `requests`, each sampled for exactly `new_tokens` tokens with all sequences in one batch.
    pub fn new(policy: Rc<Policy<B>>, requests: Vec<Request>, new_tokens: usize) -> Result<Self> {
        let batch: usize = requests.iter().map(|r| r.n).sum();
        let longest = requests.iter().map(|r| r.prompt.len()).max().unwrap_or(0);
        let stop = StopCriteria {
            eos_token_ids: vec![],
            stop_strings: vec![],
            max_new_tokens: new_tokens,
            max_total_len: longest + new_tokens + 1,
        };
        let config = EngineConfig { max_batch_slots: batch, kv_budget_bytes: usize::MAX };
        let engine = Generator::new(SamplingParams::new(1.0, None, 1.0)?, stop, config)?;
        Ok(Generation { policy, engine, requests, seed: 0, generated: 0 })
    }

    /// Tokens generated by the last run.
    pub fn generated(&self) -> usize {
        self.generated
    }
}

impl<B: Backend> Workload for Generation<B> {
    fn run(&mut self) -> Result<()> {
        let b = self.policy.model().backend();
        let detok = |_: &[u32]| String::new();
        self.seed += 1;
        let rng = Rng::seed_from_u64(self.seed);
        let out = no_grad(b, || self.engine.generate(b, self.policy.as_ref(), &self.requests, &detok, &rng))?;
        self.generated = out.stats.tokens_generated;
        b.sync()
    }

    fn units(&self) -> u64 {
        let max_new = self.engine.stop().max_new_tokens;
        self.requests.iter().map(|r| (r.n * max_new) as u64).sum()
    }
}

/// One training step: next-token log-probs of a packed batch, their negated masked mean,
/// backward, global-norm clipping (1.0) and one AdamW step (ORZ's betas, constant lr 1e-6)
/// through orz-core's [`Optimizer`]; units are the batch's tokens.
pub struct TrainStep<B: Backend> {
    policy: Rc<Policy<B>>,
    batch: PackedBatch,
    mask: B::Tensor,
    optimizer: Optimizer<B>,
}

impl<B: Backend> TrainStep<B> {
    /// The benches' batch at `scale` as `(rows, samples per row, sample length)`.
    pub fn shape(scale: Scale) -> (usize, usize, usize) {
        match scale {
            Scale::Full => (4, 2, 128),
            Scale::Tiny => (1, 2, 16),
        }
    }

    /// Random samples packed `rows x per_row`.
    pub fn sized(policy: Rc<Policy<B>>, rows: usize, per_row: usize, len: usize) -> Result<Self> {
        let vocab = policy.model().config().vocab_size;
        let mut rng = Rng::seed_from_u64(6);
        let rows: Vec<Vec<Vec<u32>>> =
            (0..rows).map(|_| (0..per_row).map(|_| random_tokens(&mut rng, len, vocab)).collect()).collect();
        Self::new(policy, &rows)
    }

    /// A step over `rows` (each a list of samples packed into one row).
    pub fn new(policy: Rc<Policy<B>>, rows: &[Vec<Vec<u32>>]) -> Result<Self> {
        let b = policy.model().backend();
        let batch = PackedBatch::pack(rows)?;
        let mask = b.tensor_bool(&batch.next_token_mask(), &batch.shape())?;
        let config = OptimizerConfig {
            adamw: AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.0 },
            schedule: LrSchedule::WarmupConstant { peak: 1e-6, warmup_steps: 0 },
            max_grad_norm: Some(1.0),
        };
        let optimizer = Optimizer::new(b, policy.model().parameters(), config)?;
        Ok(TrainStep { policy, batch, mask, optimizer })
    }
}

impl<B: Backend> Workload for TrainStep<B> {
    fn run(&mut self) -> Result<()> {
        let b = self.policy.model().backend();
        let logp = self.policy.next_token_log_probs(&self.batch)?;
        let loss = b.neg(&b.masked_mean(&logp, &self.mask, None)?)?;
        let grads = b.backward(&loss)?;
        self.optimizer.accumulate(b, &grads)?;
        self.optimizer.step(b)?;
        b.sync()
    }

    fn units(&self) -> u64 {
        self.batch.samples().iter().map(|s| s.len as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::{BackendVisitor, for_each_backend};

    /// Runs every workload once at the tiny size on a backend (CI's check that the benches run).
    struct Smoke(Vec<String>);

    fn twice(w: &mut impl Workload) -> Result<()> {
        w.run()?;
        w.run()
    }

    impl Smoke {
        fn all<B: Backend>(b: B) -> Result<()> {
            let b = Rc::new(b);
            let s = Scale::Tiny;
            for (rows, len) in PpoLosses::<B>::shapes(s) {
                twice(&mut PpoLosses::new(Rc::clone(&b), rows, len)?)?;
            }
            for (rows, len, vocab) in SelectiveLogProb::<B>::shapes(s) {
                for backward in [false, true] {
                    twice(&mut SelectiveLogProb::new(Rc::clone(&b), rows, len, vocab, backward)?)?;
                }
            }
            let config = bench_config(s);
            let policy = random_policy(&b, &config)?;
            let (rows, per, len) = Forward::<B>::shape(s);
            let mut f = Forward::sized(Rc::clone(&policy), rows, per, len)?;
            twice(&mut f)?;
            let logits = f.logits.as_ref().map(|l| b.shape(l));
            assert_eq!(logits, Some(vec![rows, per * len, config.vocab_size]));
            assert_eq!(f.units(), (rows * per * len) as u64);
            for (batch, prompt, new) in Generation::<B>::shapes(s) {
                let requests = generation_requests(batch, prompt, config.vocab_size, 1);
                let mut g = Generation::new(Rc::clone(&policy), requests, new)?;
                twice(&mut g)?;
                assert_eq!(g.generated() as u64, g.units());
                assert_eq!(g.units(), (batch * new) as u64);
            }
            let (rows, per, len) = TrainStep::<B>::shape(s);
            let mut t = TrainStep::sized(Rc::clone(&policy), rows, per, len)?;
            let before = b.to_host_f32(&policy.model().parameters()[0])?;
            twice(&mut t)?;
            assert_ne!(before, b.to_host_f32(&policy.model().parameters()[0])?, "AdamW changed nothing");
            Ok(())
        }
    }

    impl BackendVisitor for Smoke {
        fn visit<B: Backend + 'static>(&mut self, backend: B, label: &str, _: Scale) {
            Smoke::all(backend).unwrap_or_else(|e| panic!("{label}: {e}"));
            self.0.push(label.to_string());
        }
    }

    #[test]
    fn every_workload_runs_on_every_backend_at_the_tiny_size() {
        let mut smoke = Smoke(Vec::new());
        for_each_backend(&mut smoke);
        let on_cpu: Vec<&str> =
            smoke.0.iter().map(String::as_str).filter(|l| !l.ends_with("-cuda")).collect();
        let tch: &[&str] = if cfg!(feature = "tch") { &["tch-cpu"] } else { &[] };
        assert_eq!(on_cpu, [&["reference", "candle-cpu"][..], tch].concat());
    }

    #[test]
    fn generation_requests_split_the_batch_into_prompts_of_four_samples() {
        for (batch, prompts, n) in [(1, 1, 1), (16, 4, 4), (64, 16, 4)] {
            let r = generation_requests(batch, 8, 100, 0);
            assert_eq!((r.len(), r[0].n), (prompts, n));
            assert!(r.iter().all(|r| r.prompt.len() == 8 && r.prompt.iter().all(|&t| t < 99)));
        }
    }
}
