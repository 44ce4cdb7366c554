//! `orz eval` and `orz generate`: sample completions of eval questions with the generation
//! engine and score them as the paper does.
//!
//! Each question is rendered with [`RecipeConfig::render_prompt`], tokenized without special
//! tokens ([`Tokenizer::encode`]) and cut to `prompt_max_len` tokens as in training (ORZ keeps
//! the first tokens, [`truncate_prompt`]). The engine samples `samples` completions per question
//! (one shared prefill per prompt, continuous batching) with the recipe's temperature, top-k
//! and top-p, its stop strings, the model's EOS ids, `generate_max_len` and `max_len`. Each
//! completion is scored by the ORZ math reward ([`orz_math`]: 1 if it stopped and its answer is
//! equivalent to the reference) or another [`Reward`]; a set's accuracy is the mean over its
//! questions of the mean over their samples (the paper's "average of 16 samples").
//!
//! **Determinism.** Questions go to the engine in calls of `prompts_per_call` (the progress
//! callback is called after each); call `c` of set `f` draws from
//! `Rng::seed_from_u64(seed).fork(f).fork(first question of c)`, and the engine gives sample
//! `s` of request `r` its own stream of that. So the completions depend on the seed, the model,
//! the recipe and `prompts_per_call`, and not on the engine's slots or KV budget (up to the
//! backend's batch invariance). Across the ranks of a data-parallel job the calls are split
//! (call `c` on rank `c mod W`) and the completions exchanged ([`evaluate_on_ranks`]).

mod report;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail, ensure};
use orz_core::backend::Backend;
use orz_core::backend::ops::no_grad;
use orz_core::checker::extract_answer;
use orz_core::collective::{Collective, Single};
use orz_core::generation::{EngineConfig, Generator, Request, SlotDecoder, StopCriteria};
use orz_core::model::Policy;
use orz_core::recipe::RecipeConfig;
use orz_core::reward::{FinishReason, Reward, RewardInput, orz_math::orz_math};
use orz_core::rng::Rng;
use orz_core::train::{DEFAULT_ENGINE, PromptOverflow, rollout::truncate_prompt};

use crate::data::Problem;
use crate::tokenizer::Tokenizer;
use report::SetAccumulator;
pub use report::{EvalLine, EvalReport, SetReport};

/// Questions per engine call when [`EvalOptions::new`] is used.
pub const DEFAULT_PROMPTS_PER_CALL: usize = 64;

/// How an evaluation runs (besides the model, tokenizer and recipe).
#[derive(Clone, Copy)]
pub struct EvalOptions<'a> {
    /// Completions sampled per question (the paper: 16), at least 1.
    pub samples: usize,
    /// Seed of the sampling draws.
    pub seed: u64,
    /// The engine's slots and KV budget (hardware; the completions do not depend on it).
    pub engine: EngineConfig,
    /// Questions per engine call, at least 1 (the progress granularity; completions depend on it).
    pub prompts_per_call: usize,
    /// Where to write one JSON line per (question, sample) ([`EvalLine`]), if anywhere.
    pub out_jsonl: Option<&'a Path>,
    /// The score of a completion; `None` is ORZ's math reward ([`orz_math`]).
    pub reward: Option<&'a dyn Reward>,
}

impl std::fmt::Debug for EvalOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EvalOptions")
            .field("samples", &self.samples)
            .field("seed", &self.seed)
            .field("engine", &self.engine)
            .field("prompts_per_call", &self.prompts_per_call)
            .field("out_jsonl", &self.out_jsonl)
            .field("reward", &self.reward.map(|r| r.name().to_string()))
            .finish()
    }
}

impl EvalOptions<'_> {
    /// `samples` per question with `seed`, [`DEFAULT_ENGINE`], [`DEFAULT_PROMPTS_PER_CALL`], no
    /// JSONL output, the ORZ math reward.
    pub fn new(samples: usize, seed: u64) -> Self {
        EvalOptions {
            samples,
            seed,
            engine: DEFAULT_ENGINE,
            prompts_per_call: DEFAULT_PROMPTS_PER_CALL,
            out_jsonl: None,
            reward: None,
        }
    }
}

/// Evaluates `policy` on each named set (see the [module docs](self)); `progress(done, total)`
/// counts completions. Errors: no set, an empty set, `samples == 0`, a question that tokenizes
/// to nothing, an unwritable JSONL file, and the engine's errors (naming the set and question).
pub fn evaluate<B: Backend>(
    policy: &Policy<B>,
    tokenizer: &Tokenizer,
    recipe: &RecipeConfig,
    sets: &[(String, Vec<Problem>)],
    options: &EvalOptions<'_>,
    progress: &dyn Fn(usize, usize),
) -> Result<EvalReport> {
    evaluate_on_ranks(policy, tokenizer, recipe, sets, options, progress, &Single)
}

/// [`evaluate`] as one rank of a data-parallel job: engine call `c` (counted over all sets)
/// runs on rank `c mod W`, the ranks exchange their scored completions, and every rank returns
/// the whole report (the same as one process gives: each call's draws do not depend on the
/// rank). Pass `options.out_jsonl` on one rank only. Every rank must call it.
pub fn evaluate_on_ranks<B: Backend>(
    policy: &Policy<B>,
    tokenizer: &Tokenizer,
    recipe: &RecipeConfig,
    sets: &[(String, Vec<Problem>)],
    options: &EvalOptions<'_>,
    progress: &dyn Fn(usize, usize),
    collective: &dyn Collective<B>,
) -> Result<EvalReport> {
    let b = policy.model().backend();
    let eos = policy.model().config().eos_token_ids.clone();
    let mut result = None;
    no_grad(b, || {
        result = Some(evaluate_with(b, policy, &eos, tokenizer, recipe, sets, options, progress, collective));
        Ok(())
    })
    .map_err(|e| anyhow!("evaluation: {e}"))?;
    result.unwrap_or_else(|| Err(anyhow!("evaluation did not run")))
}

/// The scored completions of one engine call: its set, its first question, its lines.
type CallLines = (usize, usize, Vec<EvalLine>);

/// [`evaluate_on_ranks`] over any [`SlotDecoder`] (a policy, or a scripted model in tests)
/// with the given EOS ids.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_with<B: Backend, M: SlotDecoder<B>>(
    backend: &B,
    model: &M,
    eos_token_ids: &[u32],
    tokenizer: &Tokenizer,
    recipe: &RecipeConfig,
    sets: &[(String, Vec<Problem>)],
    options: &EvalOptions<'_>,
    progress: &dyn Fn(usize, usize),
    collective: &dyn Collective<B>,
) -> Result<EvalReport> {
    ensure!(!sets.is_empty(), "evaluation: no eval set given");
    if let Some((name, _)) = sets.iter().find(|(_, problems)| problems.is_empty()) {
        bail!("evaluation: the eval set `{name}` has no question");
    }
    let engine = engine(recipe, eos_token_ids, options)?;
    let default_reward = orz_math();
    let reward = options.reward.unwrap_or(&default_reward);
    let (rank, world) = (collective.rank(), collective.world_size());
    let total = sets.iter().map(|(_, p)| p.len()).sum::<usize>() * options.samples;
    let (root, mut done, mut call) = (Rng::seed_from_u64(options.seed), 0usize, 0usize);
    progress(0, total);
    let mut mine: Vec<CallLines> = Vec::new();
    for (f, (name, problems)) in sets.iter().enumerate() {
        let prompts = render(tokenizer, recipe, name, problems)?;
        for first in (0..problems.len()).step_by(options.prompts_per_call) {
            call += 1;
            if (call - 1) % world != rank {
                continue;
            }
            let last = (first + options.prompts_per_call).min(problems.len());
            let requests: Vec<Request> =
                prompts[first..last].iter().map(|(_, t)| Request::new(t.clone(), options.samples)).collect();
            let rng = root.fork(f as u64).fork(first as u64);
            let generated = engine.generate(backend, model, &requests, tokenizer, &rng).map_err(|e| {
                anyhow!("evaluation of `{name}`, questions {first}..{last}: generation failed: {e}")
            })?;
            let mut lines = Vec::with_capacity(generated.completions.len());
            for c in generated.completions {
                let q = first + c.request;
                let (prompt, problem) = (&prompts[q].0, &problems[q]);
                let input = RewardInput::new(prompt, &c.text, c.finish_reason, &problem.answer);
                let outcome = reward.score(&input);
                lines.push(EvalLine {
                    file: name.clone(),
                    index: q,
                    sample: c.sample,
                    question: problem.question.clone(),
                    reference: problem.answer.clone(),
                    extracted: extract_answer(&c.text),
                    completion: c.text,
                    finish_reason: c.finish_reason.as_str().to_string(),
                    score: outcome.score,
                    label: outcome.label.to_string(),
                    response_tokens: c.tokens.len(),
                });
                done += 1;
            }
            mine.push((f, first, lines));
            progress(done, total);
        }
    }
    let calls = if world > 1 { exchange_calls(collective, mine)? } else { mine };
    let mut out = match options.out_jsonl {
        Some(path) => Some((
            BufWriter::new(File::create(path).with_context(|| format!("creating {}", path.display()))?),
            path,
        )),
        None => None,
    };
    let mut accs: Vec<SetAccumulator> = sets
        .iter()
        .map(|(name, problems)| SetAccumulator::new(name, problems.len(), options.samples))
        .collect();
    for (f, _, lines) in &calls {
        for line in lines {
            let finish = if line.finish_reason == FinishReason::Length.as_str() {
                FinishReason::Length
            } else {
                FinishReason::Stop
            };
            accs[*f].add(line.index, line.score, line.response_tokens, finish)?;
            if let Some((w, path)) = out.as_mut() {
                write_line(w, path, line)?;
            }
        }
    }
    if let Some((mut w, path)) = out {
        w.flush().with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(EvalReport {
        seed: options.seed,
        samples: options.samples,
        reward: reward.name().to_string(),
        sets: accs.into_iter().map(SetAccumulator::finish).collect::<Result<_>>()?,
    })
}

/// Every rank's engine calls, in (set, first question) order: each rank sends its calls' lines
/// as JSON ([`Collective::all_gather_bytes`]).
fn exchange_calls<B: Backend>(
    collective: &dyn Collective<B>,
    mine: Vec<CallLines>,
) -> Result<Vec<CallLines>> {
    let bytes = serde_json::to_vec(&mine).context("encoding this rank's eval completions")?;
    let mut all: Vec<CallLines> = Vec::new();
    for (r, b) in collective.all_gather_bytes(&bytes)?.iter().enumerate() {
        let calls: Vec<CallLines> =
            serde_json::from_slice(b).with_context(|| format!("reading rank {r}'s eval completions"))?;
        all.extend(calls);
    }
    all.sort_by_key(|(f, first, _)| (*f, *first));
    Ok(all)
}

/// One generated completion of [`generate`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Generated {
    /// Index of its question.
    pub prompt: usize,
    /// Index of this sample among the question's.
    pub sample: usize,
    /// The completion's text (stop string kept).
    pub text: String,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Tokens generated.
    pub tokens: usize,
}

/// `orz generate`: `options.samples` completions of each question (rendered with the recipe's
/// template, like [`evaluate`]; set `recipe.prompt_template = "{question}"` for raw prompts), in
/// (question, sample) order, drawn as [`evaluate`] draws a set at index 0. No scoring;
/// `options.out_jsonl` and `options.reward` are not used.
pub fn generate<B: Backend>(
    policy: &Policy<B>,
    tokenizer: &Tokenizer,
    recipe: &RecipeConfig,
    questions: &[String],
    options: &EvalOptions<'_>,
) -> Result<Vec<Generated>> {
    ensure!(!questions.is_empty(), "generate: no question given");
    let b = policy.model().backend();
    let eos = policy.model().config().eos_token_ids.clone();
    let engine = engine(recipe, &eos, options)?;
    let problems: Vec<Problem> =
        questions.iter().map(|q| Problem { question: q.clone(), answer: String::new() }).collect();
    let prompts = render(tokenizer, recipe, "prompts", &problems)?;
    let root = Rng::seed_from_u64(options.seed).fork(0);
    let mut all = Vec::with_capacity(questions.len() * options.samples);
    for first in (0..questions.len()).step_by(options.prompts_per_call) {
        let last = (first + options.prompts_per_call).min(questions.len());
        let requests: Vec<Request> =
            prompts[first..last].iter().map(|(_, t)| Request::new(t.clone(), options.samples)).collect();
        let out = no_grad(b, || engine.generate(b, policy, &requests, tokenizer, &root.fork(first as u64)))
            .map_err(|e| anyhow!("generate, questions {first}..{last}: {e}"))?;
        all.extend(out.completions.into_iter().map(|c| Generated {
            prompt: first + c.request,
            sample: c.sample,
            finish_reason: c.finish_reason,
            tokens: c.tokens.len(),
            text: c.text,
        }));
    }
    Ok(all)
}

/// The engine of a recipe: its sampling and stop settings with `eos`, after checking `options`.
fn engine(recipe: &RecipeConfig, eos: &[u32], options: &EvalOptions<'_>) -> Result<Generator> {
    ensure!(options.samples >= 1, "evaluation: samples must be >= 1, got 0");
    ensure!(options.prompts_per_call >= 1, "evaluation: prompts_per_call must be >= 1, got 0");
    let stop = StopCriteria { eos_token_ids: eos.to_vec(), ..recipe.train.stop.clone() };
    Generator::new(recipe.train.sampling, stop, options.engine).map_err(|e| anyhow!("generation engine: {e}"))
}

/// Each question's prompt text and its (truncated) tokens.
fn render(
    tokenizer: &Tokenizer,
    recipe: &RecipeConfig,
    set: &str,
    problems: &[Problem],
) -> Result<Vec<(String, Vec<u32>)>> {
    problems
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let text = recipe.render_prompt(&p.question);
            let tokens = tokenizer.encode(&text).with_context(|| format!("`{set}` question {i}"))?;
            let tokens = truncate_prompt(i, &tokens, recipe.train.prompt_max_len, PromptOverflow::KeepFirst)
                .map_err(|e| anyhow!("`{set}`: {e}"))?;
            Ok((text, tokens))
        })
        .collect()
}

fn write_line(w: &mut BufWriter<File>, path: &Path, line: &EvalLine) -> Result<()> {
    serde_json::to_writer(&mut *w, line).with_context(|| format!("writing {}", path.display()))?;
    w.write_all(b"\n").with_context(|| format!("writing {}", path.display()))
}
