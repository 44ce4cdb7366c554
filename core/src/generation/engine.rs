//! The generation engine: batched decoding with a KV cache, shared prefill per prompt and
//! continuous batching, over any [`SlotDecoder`].
//!
//! **Slots.** The cache has `min(max_batch_slots, kv_budget_bytes / bytes_per_slot, total
//! samples)` slots of `min(max_total_len, longest prompt + max_new_tokens)` tokens each.
//!
//! **Shared prefill.** A request's prompt is prefilled once into a free slot (the *template*);
//! its samples get copies of that slot ([`SlotDecoder::copy_slot`]) and their first tokens are
//! sampled from the one prefill's logits. The request's last sample decodes in the template
//! itself. While samples of the request wait for a slot, the template stays reserved (at most
//! one slot, for one request at a time, is held this way). With a single slot there is no room
//! for a template, so each sample of a request with `n > 1` prefills again (the first tokens
//! still come from the first prefill's logits).
//!
//! **Continuous batching.** Every decode step advances all active slots in one
//! [`SlotDecoder::decode`] call; before each step every free slot is refilled with the next
//! waiting sample, or the next request's prefill, so the batch stays full while work remains.
//!
//! **Determinism.** Sample `s` of request `r` draws its uniforms (one per token) from its own
//! stream `rng.fork(r).fork(s)` (`r` is the request's [`Request::seed_key`] when it has one), so
//! the completions do not depend on `max_batch_slots`, the KV
//! budget, or the order in which slots free up (given a model whose logits for a slot do not
//! depend on the other rows of the batch). `rng` is not advanced: pass a fresh fork per
//! iteration.
//!
//! ```
//! use orz_core::backend::{Backend, DType, Primitives};
//! use orz_core::generation::*;
//! use orz_core::generation::FinishReason;
//! use orz_core::rng::Rng;
//! use orz_core::{Error, Result};
//! use orz_reference::Reference;
//!
//! type T = <Reference as Primitives>::Tensor;
//!
//! // A toy model over 4 tokens (0 is EOS) whose next token is always equally likely.
//! struct Uniform(Reference);
//! impl SlotDecoder<Reference> for Uniform {
//!     type Cache = Vec<usize>; // tokens held per slot
//!     fn vocab_size(&self) -> usize { 4 }
//!     fn new_cache(&self, slots: usize, _: usize) -> Result<Vec<usize>> {
//!         Ok(vec![0; slots])
//!     }
//!     fn cache_bytes(&self, slots: usize, max_len: usize) -> usize { slots * max_len * 8 }
//!     fn prefill(&self, c: &mut Vec<usize>, slot: usize, p: &[u32]) -> Result<T> {
//!         c[slot] = p.len();
//!         self.0.zeros(&[4], DType::F32)
//!     }
//!     fn copy_slot(&self, c: &mut Vec<usize>, from: usize, to: usize) -> Result<()> {
//!         c[to] = c[from];
//!         Ok(())
//!     }
//!     fn decode(&self, c: &mut Vec<usize>, slots: &[usize], _: &[u32]) -> Result<T> {
//!         slots.iter().for_each(|&s| c[s] += 1);
//!         self.0.zeros(&[slots.len(), 4], DType::F32)
//!     }
//!     fn slot_len(&self, c: &Vec<usize>, slot: usize) -> Result<usize> {
//!         Ok(c[slot])
//!     }
//! }
//!
//! let stop = StopCriteria {
//!     eos_token_ids: vec![0],
//!     stop_strings: vec!["cc".into()],
//!     max_new_tokens: 6,
//!     max_total_len: 16,
//! };
//! let config = EngineConfig { max_batch_slots: 4, kv_budget_bytes: 1 << 20 };
//! let engine = Generator::new(SamplingParams::default(), stop, config)?;
//! let detok = |ts: &[u32]| ts.iter().map(|&t| ["", "a", "b", "c"][t as usize]).collect();
//! let requests = [Request::new(vec![1, 2], 3), Request::new(vec![3], 2)];
//! let (backend, model) = (Reference::new(), Uniform(Reference::new()));
//! let out = engine.generate(&backend, &model, &requests, &detok, &Rng::seed_from_u64(0))?;
//! assert_eq!(out.completions.len(), 5);
//! assert_eq!(out.stats.prefills, 2); // one per prompt, copied to its samples
//! for c in &out.completions {
//!     let stopped = c.tokens.last() == Some(&0) || c.text.ends_with("cc");
//!     assert_eq!(c.finish_reason == FinishReason::Stop, stopped);
//! }
//! # Ok::<(), Error>(())
//! ```

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::vec::Vec;

use super::completion::{Completion, GenerationOutput, GenerationStats, Request};
use super::decoder::SlotDecoder;
use super::detok::Detokenize;
use super::sampling::{SamplingParams, sample_device};
use super::stop::{StopChecker, StopCriteria};
use crate::backend::Backend;
use crate::rng::Rng;
use crate::{Error, Result};

const OP: &str = "generate";

/// How many sequences the engine decodes at once, and the memory its KV cache may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EngineConfig {
    /// Most slots (rows) in the batched KV cache, at least 1.
    pub max_batch_slots: usize,
    /// Most bytes the KV cache may occupy (as [`SlotDecoder::cache_bytes`] counts them).
    pub kv_budget_bytes: usize,
}

/// A configured generation engine: sampling parameters, stop conditions and batch limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Generator {
    params: SamplingParams,
    stop: StopCriteria,
    config: EngineConfig,
    record_log_probs: bool,
}

impl Generator {
    /// An engine with validated parameters: see [`SamplingParams::validate`] and
    /// [`StopCriteria::validate`]; `max_batch_slots` must be at least 1.
    pub fn new(params: SamplingParams, stop: StopCriteria, config: EngineConfig) -> Result<Self> {
        params.validate()?;
        stop.validate()?;
        if config.max_batch_slots == 0 {
            return Err(Error::invalid("engine config", "max_batch_slots must be >= 1, got 0"));
        }
        Ok(Generator { params, stop, config, record_log_probs: false })
    }

    /// The same engine recording, for every sampled token, its log-prob under the sampling
    /// temperature's softmax of the logits it was drawn from ([`Completion::log_probs`]; before
    /// top-k and top-p, which ORZ leaves off: then it is the sampling distribution itself). It
    /// costs one log-softmax over the vocabulary per step; the trainer compares these with the
    /// old log-probs of the training forward pass (the rollout/train mismatch).
    pub fn recording_log_probs(self, record: bool) -> Self {
        Generator { record_log_probs: record, ..self }
    }

    /// The sampling parameters.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The stop conditions.
    pub fn stop(&self) -> &StopCriteria {
        &self.stop
    }

    /// The batch limits.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Samples `n` completions of every request (see the [module docs](self)), returned in
    /// (request, sample) order with the run's counters. Every input is checked before any
    /// model call; errors name the request: an empty request list, an empty prompt, a prompt
    /// longer than `max_total_len - 1`, `n == 0`, a prompt token outside the vocabulary; and
    /// a KV budget too small for one slot (the message says how many bytes a slot needs).
    /// Model and backend errors are passed on.
    pub fn generate<B: Backend, M: SlotDecoder<B>, D: Detokenize>(
        &self,
        backend: &B,
        model: &M,
        requests: &[Request],
        detok: &D,
        rng: &Rng,
    ) -> Result<GenerationOutput> {
        let (slots, max_len) = self.plan(model, requests)?;
        let mut run = Run {
            b: backend,
            model,
            engine: self,
            requests,
            detok,
            rng,
            cache: model.new_cache(slots, max_len)?,
            free: (0..slots).collect(),
            active: (0..slots).map(|_| None).collect(),
            current: None,
            next_request: 0,
            done: requests.iter().map(|r| (0..r.n).map(|_| None).collect()).collect(),
            stats: GenerationStats { slots, ..GenerationStats::default() },
        };
        loop {
            run.refill()?;
            if run.active.iter().all(Option::is_none) {
                break;
            }
            run.decode_step()?;
        }
        if run.next_request < requests.len() || run.current.is_some() {
            return Err(Error::backend(OP, "internal error: the engine stopped with work waiting"));
        }
        let stats = run.stats;
        let completions = run.done.into_iter().flatten().collect::<Option<Vec<_>>>();
        let completions =
            completions.ok_or_else(|| Error::backend(OP, "internal error: a sample was never completed"))?;
        Ok(GenerationOutput { completions, stats })
    }

    /// Checks the requests and sizes the cache: `(slots, tokens per slot)`.
    fn plan<B: Backend, M: SlotDecoder<B>>(&self, model: &M, requests: &[Request]) -> Result<(usize, usize)> {
        if requests.is_empty() {
            return Err(Error::invalid(OP, "the request list is empty: there is nothing to generate"));
        }
        let (max_total, vocab) = (self.stop.max_total_len, model.vocab_size());
        for (i, r) in requests.iter().enumerate() {
            if r.n == 0 {
                return Err(Error::invalid(OP, format!("request {i}: n must be >= 1, got 0")));
            }
            if r.prompt.is_empty() {
                return Err(Error::invalid(OP, format!("request {i}: the prompt is empty")));
            }
            if r.prompt.len() > max_total - 1 {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "request {i}: the prompt has {} tokens, more than max_total_len - 1 = {} \
                         (no room for a new token)",
                        r.prompt.len(),
                        max_total - 1
                    ),
                ));
            }
            if let Some(j) = r.prompt.iter().position(|&t| t as usize >= vocab) {
                return Err(Error::invalid(
                    OP,
                    format!(
                        "request {i}: prompt token {j} is {}, outside the vocabulary of {vocab}",
                        r.prompt[j]
                    ),
                ));
            }
        }
        let longest = requests.iter().map(|r| r.prompt.len()).max().unwrap_or(0);
        let max_len = max_total.min(longest.saturating_add(self.stop.max_new_tokens));
        let samples = requests.iter().fold(0usize, |acc, r| acc.saturating_add(r.n));
        let per_slot = model.cache_bytes(1, max_len);
        let fit = self.config.kv_budget_bytes.checked_div(per_slot).unwrap_or(usize::MAX);
        if fit == 0 {
            return Err(Error::invalid(
                OP,
                format!(
                    "kv_budget_bytes = {} fits no slot: one slot of {max_len} tokens needs {per_slot} bytes",
                    self.config.kv_budget_bytes
                ),
            ));
        }
        Ok((self.config.max_batch_slots.min(fit).min(samples), max_len))
    }
}

/// Samples `n` completions of every request: [`Generator::new`] then [`Generator::generate`].
#[allow(clippy::too_many_arguments)]
pub fn generate<B: Backend, M: SlotDecoder<B>, D: Detokenize>(
    backend: &B,
    model: &M,
    requests: &[Request],
    params: &SamplingParams,
    stop: &StopCriteria,
    detok: &D,
    rng: &Rng,
    config: &EngineConfig,
) -> Result<GenerationOutput> {
    Generator::new(*params, stop.clone(), *config)?.generate(backend, model, requests, detok, rng)
}

/// A sample decoding in a slot.
struct Active {
    request: usize,
    sample: usize,
    checker: StopChecker,
    rng: Rng,
    /// The sampled tokens' log-probs (empty unless recording).
    log_probs: Vec<f64>,
}

/// The request whose samples are being placed: its prefill's logits (`[1, vocab]`) and the
/// template slot holding its prefilled prompt.
struct Current<T> {
    request: usize,
    next_sample: usize,
    template: Option<usize>,
    logits: T,
}

/// The state of one [`Generator::generate`] call.
struct Run<'a, B: Backend, M: SlotDecoder<B>, D> {
    b: &'a B,
    model: &'a M,
    engine: &'a Generator,
    requests: &'a [Request],
    detok: &'a D,
    rng: &'a Rng,
    cache: M::Cache,
    free: BTreeSet<usize>,
    active: Vec<Option<Active>>,
    current: Option<Current<B::Tensor>>,
    next_request: usize,
    done: Vec<Vec<Option<Completion>>>,
    stats: GenerationStats,
}

impl<B: Backend, M: SlotDecoder<B>, D: Detokenize> Run<'_, B, M, D> {
    /// Prefills request `r` into `slot`, giving its next-token logits as `[1, vocab]`.
    fn prefill(&mut self, r: usize, slot: usize) -> Result<B::Tensor> {
        let logits = self.model.prefill(&mut self.cache, slot, &self.requests[r].prompt)?;
        self.stats.prefills += 1;
        let (shape, vocab) = (self.b.shape(&logits), self.model.vocab_size());
        if shape != [vocab] {
            return Err(Error::shape(
                OP,
                format!("request {r}: prefill returned logits of shape {shape:?}, expected [{vocab}]"),
            ));
        }
        self.b.reshape(&logits, &[1, vocab])
    }

    /// Fills free slots with waiting samples (and prefills) until none is free or no work waits.
    fn refill(&mut self) -> Result<()> {
        loop {
            let mut cur = match self.current.take() {
                Some(cur) => cur,
                None => {
                    if self.next_request == self.requests.len() {
                        return Ok(());
                    }
                    let Some(slot) = self.free.pop_first() else { return Ok(()) };
                    let r = self.next_request;
                    self.next_request += 1;
                    let logits = self.prefill(r, slot)?;
                    Current { request: r, next_sample: 0, template: Some(slot), logits }
                }
            };
            let n = self.requests[cur.request].n;
            let mut group: Vec<(usize, usize)> = Vec::new();
            while cur.next_sample < n {
                let template = match cur.template {
                    Some(t) => t,
                    None => {
                        // Only with one slot: the previous sample decoded in the template.
                        let Some(slot) = self.free.pop_first() else { break };
                        self.prefill(cur.request, slot)?;
                        cur.template = Some(slot);
                        slot
                    }
                };
                let idle = group.is_empty() && self.active.iter().all(Option::is_none);
                let slot = if n - cur.next_sample == 1 {
                    cur.template = None;
                    template
                } else if let Some(slot) = self.free.pop_first() {
                    self.model.copy_slot(&mut self.cache, template, slot)?;
                    self.stats.slot_copies += 1;
                    slot
                } else if idle {
                    // The template is the only slot: decode in it, prefill again for the next.
                    cur.template = None;
                    template
                } else {
                    break;
                };
                group.push((slot, cur.next_sample));
                cur.next_sample += 1;
            }
            let placed = !group.is_empty();
            if placed {
                self.start(cur.request, &cur.logits, &group)?;
            }
            if cur.next_sample < n {
                self.current = Some(cur);
            }
            if !placed {
                return Ok(());
            }
        }
    }

    /// Samples the first tokens of `group` (slot, sample) of request `r` from its shared
    /// prefill logits and makes them active.
    fn start(&mut self, r: usize, logits: &B::Tensor, group: &[(usize, usize)]) -> Result<()> {
        let key = self.requests[r].seed_key.unwrap_or(r as u64);
        let mut rngs: Vec<Rng> = group.iter().map(|&(_, s)| self.rng.fork(key).fork(s as u64)).collect();
        let draws: Vec<f64> = rngs.iter_mut().map(Rng::uniform).collect();
        let tokens = sample_device(self.b, logits, &self.engine.params, &draws)?;
        let log_probs = self.log_probs(logits, &tokens)?;
        for (i, ((&(slot, sample), rng), token)) in group.iter().zip(rngs).zip(tokens).enumerate() {
            let checker = StopChecker::new(&self.requests[r].prompt, &self.engine.stop);
            self.active[slot] = Some(Active { request: r, sample, checker, rng, log_probs: Vec::new() });
            self.advance(slot, token, log_probs.get(i).copied());
        }
        Ok(())
    }

    /// The log-prob of each sampled token under the sampling temperature's softmax of its row
    /// of `logits` (`[rows, vocab]`; one row shared by every token when `rows` is 1); empty
    /// unless the engine records them.
    fn log_probs(&self, logits: &B::Tensor, tokens: &[u32]) -> Result<Vec<f64>> {
        if !self.engine.record_log_probs || tokens.is_empty() {
            return Ok(Vec::new());
        }
        let b = self.b;
        let shape = b.shape(logits);
        let vocab = shape.last().copied().unwrap_or(0);
        let mut x = logits.clone();
        if shape.first() == Some(&1) && tokens.len() > 1 {
            x = b.broadcast_to(&x, &[tokens.len(), vocab])?;
        }
        let t = self.engine.params.temperature;
        if t > 0.0 && t != 1.0 {
            x = b.affine(&x, 1.0 / t, 0.0)?;
        }
        let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
        b.to_host_f64(&b.selective_log_prob(&x, &b.tensor_i64(&ids, &[ids.len()])?)?)
    }

    /// Appends `token` (and its log-prob, when recorded) to the sample in `slot`; a finished
    /// sample is completed and its slot freed.
    fn advance(&mut self, slot: usize, token: u32, log_prob: Option<f64>) {
        let Some(a) = self.active[slot].as_mut() else { return };
        self.stats.tokens_generated += 1;
        a.log_probs.extend(log_prob);
        if a.checker.push(token, &self.engine.stop, self.detok).is_none() {
            return;
        }
        if let Some(a) = self.active[slot].take() {
            let (tokens, text, finish_reason) = a.checker.into_parts(&self.engine.stop, self.detok);
            let mut log_probs = a.log_probs;
            log_probs.truncate(tokens.len());
            self.done[a.request][a.sample] = Some(Completion {
                request: a.request,
                sample: a.sample,
                tokens,
                text,
                finish_reason,
                log_probs,
            });
        }
        self.free.insert(slot);
    }

    /// One batched decode call over every active slot, then one sampled token per slot.
    fn decode_step(&mut self) -> Result<()> {
        let mut slots = Vec::new();
        let mut tokens = Vec::new();
        let mut draws = Vec::new();
        for (slot, a) in self.active.iter_mut().enumerate() {
            if let Some(a) = a {
                slots.push(slot);
                tokens.push(a.checker.tokens().last().copied().unwrap_or(0));
                draws.push(a.rng.uniform());
            }
        }
        let logits = self.model.decode(&mut self.cache, &slots, &tokens)?;
        let (shape, vocab) = (self.b.shape(&logits), self.model.vocab_size());
        if shape != [slots.len(), vocab] {
            return Err(Error::shape(
                OP,
                format!("decode returned logits of shape {shape:?}, expected [{}, {vocab}]", slots.len()),
            ));
        }
        self.stats.decode_steps += 1;
        self.stats.decode_rows += slots.len();
        let next = sample_device(self.b, &logits, &self.engine.params, &draws)?;
        let log_probs = self.log_probs(&logits, &next)?;
        for (i, (slot, token)) in slots.into_iter().zip(next).enumerate() {
            self.advance(slot, token, log_probs.get(i).copied());
        }
        Ok(())
    }
}
