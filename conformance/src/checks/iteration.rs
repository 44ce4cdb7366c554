//! Level 6: one full tiny ORZ iteration (sample, reward, GAE, critic and policy updates) on the
//! backend and on the reference, from identical weights, through core's public trainer API.
//!
//! The setup ([`setup`]): a 2-layer GQA Qwen2 (vocab 32, hidden 16) as policy and as critic, its
//! weights drawn on the host from a seeded [`Rng`], rounded to the dtype ([`DType::round`]) and
//! uploaded to both sides as named tensors; 3 prompts × 4 samples of at most 4 new tokens; the
//! toy tokenizer (token `t` is the letter `'a' + t % 26`) and a toy reward (1 when the completion
//! holds an `e`, else 0); 3 critic steps and ORZ's single policy step, warmup 0.
//!
//! - [`check_ppo_iteration_updates`]: given the **same experience** (the reference's rollout),
//!   the remaining phases on each side (packing, old log-probs and values, GAE and whitening, the
//!   critic's steps, the policy's step) give the same per-token experience, losses, gradient norms,
//!   clip fraction and parameters.
//! - [`check_ppo_iteration_rollout`]: the backend's **own** sampling gives the reference's
//!   completions (tokens, finish reasons, scores), and its full [`Trainer::iteration`] the same
//!   report and parameters. Sampling is discontinuous in the logits: a draw within the logits'
//!   error of a cumulative-mass boundary may pick either token. In f32 the setup is chosen so that
//!   no draw lies within [`BORDERLINE`] of a boundary on the reference (checked every run: the
//!   check fails loudly if the setup ever stops satisfying it), so the completions must be equal.
//!   In bf16 and f16 the logits' error is far larger; the completions must agree up to the first
//!   draw within [`borderline`]`(dtype)` of a boundary, after which that completion is not
//!   compared, and the iteration's report and parameters are compared only if every completion
//!   agreed. The outcome's note says what was left out.
//!
//! **Conditioning.** Two choices keep the updates a well-conditioned function of the backend's
//! numbers, so that the dtype's tolerance can judge them: AdamW's `eps` is 1e-3 (ORZ: 1e-8),
//! because its first step is `lr · g / (|g| + eps)`, with ORZ's eps a sign function of every
//! gradient element, which turns rounding noise on gradients that vanish mathematically (the
//! key-projection biases: softmax ignores a shift shared by all keys) into updates of size `lr`;
//! with eps 1e-3 an update moves by at most `lr / eps` times the gradient's error. And the critic's
//! values stay away from the value-clip kink (checked on the reference: they move by less than
//! half of `value_clip`). The parameters are compared with [`UPDATE_TOLERANCE_SCALE`] times the
//! dtype's tolerance.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use orz_core::backend::ops::no_grad;
use orz_core::backend::{Backend, DType};
use orz_core::generation::{Completion, Generator, Request, nucleus_host};
use orz_core::model::{Critic, Head, PackedBatch, Policy, Qwen2Config, parameter_specs};
use orz_core::optimizer::StepReport;
use orz_core::recipe::Preset;
use orz_core::reward::{Reward, RewardInput, RewardOutcome, label};
use orz_core::rng::Rng;
use orz_core::train::rollout::rollout;
use orz_core::train::trainer::stream;
use orz_core::train::update::{UpdateOutcome, Updates};
use orz_core::train::{Advantages, Experience, IterationReport, PromptItem, Sample, TrainConfig, Trainer};
use orz_reference::Reference;
use proptest::strategy::Just;

use crate::harness::compare;
use crate::runner::{CheckOutcome, run_cases};
use crate::tolerance::{ErrorStats, Tolerance};

type Report = core::result::Result<(), String>;

/// The seed of the host weights of both models.
pub const WEIGHT_SEED: u64 = 9;
/// The seed of the trainer's generator (iteration 0 forks from it). Chosen so that the setup
/// holds (no f32 draw within [`BORDERLINE`] of a boundary, critic values clear of the value-clip
/// kink, a mix of scores): 9 is the smallest such seed since sampling at top-p 1 keeps the
/// token-id order (4 was, with the sorted order; of seeds 0 to 40, 9, 12 and 27 hold now).
pub const TRAINER_SEED: u64 = 9;
/// In f32, no draw of the setup lies within this distance of a cumulative-mass boundary on the
/// reference (checked every run).
pub const BORDERLINE: f64 = 1e-3;
/// The dtype's tolerance is scaled by this factor for what a whole iteration computes (the
/// experience, the losses, the gradient norms, the parameters): each is the end of a chain of a
/// few hundred rounded operations (two forwards and a backward per pack and step, AdamW, and for
/// the critic three steps that compound), against the single operation the factor-1 tolerance
/// was calibrated on. `broken::RoundsToDType` passes with a margin at this factor (see README).
pub const UPDATE_TOLERANCE_SCALE: f64 = 4.0;

/// The distance to a cumulative-mass boundary within which a draw may pick another token on a
/// backend of `dtype`: [`BORDERLINE`] in f32, four times the dtype's absolute tolerance (the
/// logits' error shifts the cumulative masses by about that much) in bf16 and f16.
pub fn borderline(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => BORDERLINE,
        d => 4.0 * Tolerance::for_dtype(d).abs,
    }
}

/// The tiny model: vocab 32, hidden 16, 2 layers, 4 query and 2 key-value heads, EOS id 1.
pub fn tiny_model() -> Qwen2Config {
    Qwen2Config {
        vocab_size: 32,
        hidden_size: 16,
        intermediate_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        rope_theta: 100.0,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: false,
        max_position_embeddings: 64,
        bos_token_id: None,
        eos_token_ids: vec![1],
    }
}

/// The iteration: the tiny preset with 4 samples of at most 4 new tokens per prompt, packs of at
/// most 24 tokens, 3 critic steps, constant learning rates 1e-2 from step 0, AdamW eps 1e-3 (see
/// the [module docs](self)).
pub fn tiny_config() -> orz_core::Result<TrainConfig> {
    let mut c = Preset::Tiny.config().train_config(tiny_model().eos_token_ids)?;
    c.n_samples_per_prompt = 4;
    (c.stop.max_new_tokens, c.stop.max_total_len, c.prompt_max_len, c.packing_max_len) = (4, 12, 6, 24);
    c.set_learning_rates(1e-2, 1e-4, 0);
    (c.policy_optimizer.adamw.eps, c.critic_optimizer.adamw.eps) = (1e-3, 1e-3);
    c.critic_update_steps = 3;
    c.validate()?;
    Ok(c)
}

/// The toy tokenizer: token `t` is the letter `'a' + t % 26`.
pub fn detok(tokens: &[u32]) -> String {
    tokens.iter().map(|&t| char::from(b'a' + (t % 26) as u8)).collect()
}

/// The toy reward: 1 (`correct`) when the completion holds an `e`, else 0 (`wrong`).
#[derive(Debug, Clone, Copy)]
pub struct HasE;

impl Reward for HasE {
    fn score(&self, input: &RewardInput<'_>) -> RewardOutcome {
        if input.completion.contains('e') {
            RewardOutcome::new(1.0, label::CORRECT)
        } else {
            RewardOutcome::new(0.0, label::WRONG)
        }
    }

    fn name(&self) -> &str {
        "has_e"
    }
}

/// The 3 prompts of 3 to 5 tokens (ids 2..32), with their toy text.
pub fn prompts() -> Vec<PromptItem> {
    (0..3)
        .map(|i| {
            let tokens: Vec<u32> = (0..3 + i % 3).map(|j| 2 + ((7 * i + 3 * j) % 30) as u32).collect();
            PromptItem { text: detok(&tokens), tokens, reference: String::new() }
        })
        .collect()
}

/// One per-sample, per-token list of the experience or the advantages.
type SampleField = fn(&Updated) -> Option<&Vec<Vec<f64>>>;

/// A named tensor on the host: name, shape, values.
pub type HostTensor = (String, Vec<usize>, Vec<f64>);

/// The host weights of a model with `head`, drawn from `rng` in spec order and rounded to
/// `dtype`: norms `1 + 0.1 N`, biases `0.1 N`, every other tensor `0.25 N` (large enough that the
/// next-token distributions are far from uniform).
fn host_weights(head: Head, dtype: DType, rng: &mut Rng) -> Vec<HostTensor> {
    parameter_specs(&tiny_model(), head)
        .into_iter()
        .map(|spec| {
            let n: usize = spec.shape.iter().product();
            let (offset, std) = if spec.name.ends_with("norm.weight") {
                (1.0, 0.1)
            } else if spec.name.ends_with(".bias") {
                (0.0, 0.1)
            } else {
                (0.0, 0.25)
            };
            let values = (0..n).map(|_| dtype.round(offset + std * rng.normal())).collect();
            (spec.name, spec.shape, values)
        })
        .collect()
}

/// The policy and the critic of the setup on `b` in `dtype` (the same values on every backend).
pub fn setup<C: Backend>(b: &C, dtype: DType) -> orz_core::Result<(Policy<&C>, Critic<&C>)> {
    let mut rng = Rng::seed_from_u64(WEIGHT_SEED);
    let (policy, critic) =
        (host_weights(Head::Lm, dtype, &mut rng), host_weights(Head::Value, dtype, &mut rng));
    let upload = |tensors: Vec<HostTensor>| {
        tensors
            .into_iter()
            .map(|(name, shape, values)| Ok((name, b.tensor_f64(&values, &shape, dtype)?)))
            .collect::<orz_core::Result<BTreeMap<_, _>>>()
    };
    let rc = Rc::new(b);
    let model = tiny_model();
    Ok((
        Policy::from_tensors(Rc::clone(&rc), &model, upload(policy)?)?,
        Critic::from_tensors(rc, &model, upload(critic)?)?,
    ))
}

/// Every parameter of a model with its name and shape, on the host.
fn snapshot<C: Backend>(b: &C, named: Vec<(String, C::Tensor)>) -> orz_core::Result<Vec<HostTensor>> {
    named.into_iter().map(|(name, t)| Ok((name, b.shape(&t), b.to_host_f64(&t)?))).collect()
}

/// The generator of iteration 0's sampling, as the trainer forks it.
fn generation_rng() -> Rng {
    Rng::seed_from_u64(TRAINER_SEED).fork(0).fork(stream::GENERATION)
}

/// Every disagreement of a check, in the order the iteration computed the values: the first is
/// the failure's report, the others are listed after it by their first line.
#[derive(Default)]
struct Disagreements(Vec<String>);

impl Disagreements {
    /// Keeps the report of a failed comparison.
    fn note(&mut self, result: Report) {
        if let Err(e) = result {
            self.0.push(e);
        }
    }

    /// `Err` with the first report and the subjects of the others, unless all agreed.
    fn finish(self) -> Report {
        let mut all = self.0.into_iter();
        let Some(first) = all.next() else { return Ok(()) };
        let rest: Vec<String> = all.map(|e| e.split(':').next().unwrap_or_default().to_string()).collect();
        if rest.is_empty() {
            Err(first)
        } else {
            Err(format!("{first}\n  also disagree: {}", rest.join("; ")))
        }
    }
}

/// Error text of a failed backend call on `side`.
fn failed(side: &str, e: orz_core::Error) -> String {
    format!("{side}: {e}")
}

/// What the phases after the rollout produced on one side.
struct Updated {
    experience: Experience,
    advantages: Advantages,
    critic: UpdateOutcome,
    policy: UpdateOutcome,
    critic_params: Vec<HostTensor>,
    policy_params: Vec<HostTensor>,
    /// The largest `|V_new − V_old|` over the response tokens (the critic's drift).
    value_drift: f64,
}

/// The phases after the rollout (experience, advantages, update) on `b` over `samples` (a
/// rollout's), through the trainer's public phase methods at iteration 0.
fn updates<C: Backend>(b: &C, dtype: DType, samples: Vec<Sample>) -> orz_core::Result<Updated> {
    let (policy, critic) = setup(b, dtype)?;
    let mut trainer = Trainer::new(tiny_config()?, policy, Some(critic), Rng::seed_from_u64(TRAINER_SEED))?;
    let experience = trainer.experience(samples)?;
    let advantages = trainer.advantages(&experience)?;
    let Updates { critic: critic_out, policy: policy_out } = trainer.update(&experience, &advantages)?;
    let missing =
        |what: &str| orz_core::Error::invalid("conformance", format!("the GAE trainer has no {what}"));
    let critic_out = critic_out.ok_or_else(|| missing("critic update"))?;
    let critic = trainer.critic().ok_or_else(|| missing("critic"))?;
    let old_values = experience.values.as_ref().ok_or_else(|| missing("values"))?;
    let mut value_drift: f64 = 0.0;
    let bb = &b;
    no_grad(bb, || {
        for pack in &experience.packs {
            let now = b.to_host_f64(&critic.values(&pack.batch)?)?;
            let old = pack.scatter(old_values)?;
            for (t, _) in pack.response_mask.iter().enumerate().filter(|(_, m)| **m) {
                value_drift = value_drift.max((now[t] - old[t]).abs());
            }
        }
        Ok(())
    })?;
    Ok(Updated {
        critic_params: snapshot(b, critic.model().named_tensors())?,
        policy_params: snapshot(b, trainer.policy().model().named_tensors())?,
        experience,
        advantages,
        critic: critic_out,
        policy: policy_out,
        value_drift,
    })
}

/// The reference's rollout of the setup (kept samples, scored, without experience).
fn reference_rollout(r: &Reference, dtype: DType) -> orz_core::Result<Vec<Sample>> {
    let config = tiny_config()?;
    let (policy, _) = setup(r, dtype)?;
    let rng = generation_rng();
    let out = no_grad(&r, || rollout(&r, &policy, &config, &prompts(), &HasE, &detok, &rng))?;
    Ok(out.samples)
}

/// Compares two named parameter lists (same names, shapes and order on both sides).
fn compare_params(
    model: &str,
    got: &[HostTensor],
    want: &[HostTensor],
    tol: Tolerance,
    stats: &mut ErrorStats,
) -> Report {
    for ((name, shape, g), (want_name, want_shape, w)) in got.iter().zip(want) {
        if name != want_name || shape != want_shape {
            return Err(format!(
                "{model} parameter `{name}` {shape:?} vs reference `{want_name}` {want_shape:?}"
            ));
        }
        compare(&format!("{model} parameter `{name}` after the iteration"), shape, g, w, tol, stats)?;
    }
    Ok(())
}

/// Compares the optimizer steps of one model: applied, micro-batches and lr exactly, the grad
/// norm and the step's loss under `tol`.
fn compare_steps(
    model: &str,
    got: (&[StepReport], &[f64]),
    want: (&[StepReport], &[f64]),
    tol: Tolerance,
    stats: &mut ErrorStats,
) -> Report {
    if got.0.len() != want.0.len() {
        return Err(format!("{model}: {} optimizer steps, the reference {}", got.0.len(), want.0.len()));
    }
    for (k, (g, w)) in got.0.iter().zip(want.0).enumerate() {
        if (g.applied, g.micro_batches, g.lr) != (w.applied, w.micro_batches, w.lr) {
            return Err(format!("{model} step {k}: backend {g:?}, reference {w:?}"));
        }
        compare(&format!("{model} step {k} grad norm"), &[1], &[g.grad_norm], &[w.grad_norm], tol, stats)?;
    }
    compare(&format!("{model} step losses"), &[got.1.len()], got.1, want.1, tol, stats)
}

/// Level 6: the same experience (the reference's rollout) through packing, old log-probs and
/// values, GAE and whitening, 3 critic steps and the policy step, on the backend and on the
/// reference; the experience, losses, grad norms, clip fraction and every parameter agree within
/// [`UPDATE_TOLERANCE_SCALE`] × the dtype's tolerance (the first bad parameter named, with its
/// index).
pub fn check_ppo_iteration_updates<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    run_cases("ppo_iteration_updates", dtype, 1, Just(TRAINER_SEED), |_, stats| {
        let r = Reference::new();
        let tol = Tolerance::for_dtype(dtype).scaled(UPDATE_TOLERANCE_SCALE);
        let samples = reference_rollout(&r, dtype).map_err(|e| failed("reference rollout", e))?;
        let scores: Vec<f64> = samples.iter().map(|s| s.score).collect();
        if !(scores.contains(&0.0) && scores.contains(&1.0)) {
            return Err(format!("setup: the reference's scores {scores:?} are not a mix of 0 and 1"));
        }
        let want = updates(&r, dtype, samples.clone()).map_err(|e| failed("reference", e))?;
        let got = updates(backend, dtype, samples).map_err(|e| failed("backend", e))?;
        let clip = tiny_config().map_err(|e| failed("setup", e))?.value_clip;
        if want.value_drift >= 0.5 * clip {
            return Err(format!(
                "setup: the reference's critic values moved by {:.3e}, not below half the value clip \
                 {clip}: the value loss is near its kink",
                want.value_drift
            ));
        }
        let mut bad = Disagreements::default();
        let fields: [(&str, SampleField); 4] = [
            ("old log-probs", |u| Some(&u.experience.logp_old)),
            ("values", |u| u.experience.values.as_ref()),
            ("advantages", |u| Some(&u.advantages.advantages)),
            ("returns", |u| u.advantages.returns.as_ref()),
        ];
        for (what, field) in fields {
            let (Some(g), Some(w)) = (field(&got), field(&want)) else {
                bad.note(Err(format!("{what}: missing on one side")));
                continue;
            };
            for (i, (g, w)) in g.iter().zip(w).enumerate() {
                bad.note(compare(&format!("sample {i} {what}"), &[w.len()], g, w, tol, stats));
            }
        }
        for (model, g, w) in [("critic", &got.critic, &want.critic), ("policy", &got.policy, &want.policy)] {
            bad.note(compare_steps(model, (&g.steps, &g.losses), (&w.steps, &w.losses), tol, stats));
        }
        let fraction = |u: &UpdateOutcome| u.clipped_tokens as f64 / u.tokens.max(1) as f64;
        let (g, w) = ([fraction(&got.policy)], [fraction(&want.policy)]);
        bad.note(compare("clip fraction", &[1], &g, &w, tol, stats));
        let outside = |u: &UpdateOutcome| u.ratio_outside_tokens as f64 / u.tokens.max(1) as f64;
        let (g, w) = ([outside(&got.policy)], [outside(&want.policy)]);
        bad.note(compare("ORZ clip ratio", &[1], &g, &w, tol, stats));
        bad.note(compare_params("critic", &got.critic_params, &want.critic_params, tol, stats));
        bad.note(compare_params("policy", &got.policy_params, &want.policy_params, tol, stats));
        bad.finish()
    })
}

/// One side of [`check_ppo_iteration_rollout`]: the completions of iteration 0's sampling, their
/// scores, and the full iteration's report and parameters (policy then critic).
struct Full {
    completions: Vec<(Completion, f64)>,
    report: IterationReport,
    params: Vec<HostTensor>,
}

fn full_iteration<C: Backend>(b: &C, dtype: DType) -> orz_core::Result<Full> {
    let config = tiny_config()?;
    let (policy, critic) = setup(b, dtype)?;
    let prompts = prompts();
    let requests: Vec<Request> =
        prompts.iter().map(|p| Request::new(p.tokens.clone(), config.n_samples_per_prompt)).collect();
    let engine = Generator::new(config.sampling, config.stop.clone(), config.engine)?;
    let out = no_grad(&b, || engine.generate(&b, &policy, &requests, &detok, &generation_rng()))?;
    let completions = out
        .completions
        .into_iter()
        .map(|c| {
            let p = &prompts[c.request];
            let score = HasE.score(&RewardInput::new(&p.text, &c.text, c.finish_reason, &p.reference)).score;
            (c, score)
        })
        .collect();
    let mut trainer = Trainer::new(config, policy, Some(critic), Rng::seed_from_u64(TRAINER_SEED))?;
    let report = trainer.iteration(&prompts, &HasE, &detok)?;
    let (policy, critic) = trainer.into_models();
    let mut params = snapshot(b, policy.model().named_tensors())?;
    if let Some(critic) = critic {
        params.extend(snapshot(b, critic.model().named_tensors())?);
    }
    Ok(Full { completions, report, params })
}

/// For each generated token of `c` (a completion of the reference), the distance of its draw to
/// the nearest cumulative-mass boundary of the reference's sampling distribution.
fn draw_margins(
    r: &Reference,
    policy: &Policy<&Reference>,
    prompt: &[u32],
    c: &Completion,
) -> orz_core::Result<Vec<f64>> {
    let config = tiny_config()?;
    let mut seq = prompt.to_vec();
    seq.extend_from_slice(&c.tokens);
    let batch = PackedBatch::pack(&[[seq]])?;
    let logits = no_grad(&r, || r.to_host_f64(&policy.logits(&batch)?))?;
    let vocab = tiny_model().vocab_size;
    let mut draws = generation_rng().fork(c.request as u64).fork(c.sample as u64);
    (0..c.tokens.len())
        .map(|j| {
            let at = prompt.len() - 1 + j;
            let nucleus = nucleus_host(&logits[at * vocab..(at + 1) * vocab], &config.sampling)?;
            let u = draws.uniform() * nucleus.mass();
            let mut cum = 0.0;
            let mut margin = f64::INFINITY;
            for p in &nucleus.probs {
                cum += p;
                margin = margin.min((cum - u).abs());
            }
            Ok(margin)
        })
        .collect()
}

/// Compares the reports of the two full iterations (counts exactly, metrics under `tol`).
fn compare_reports(
    got: &IterationReport,
    want: &IterationReport,
    tol: Tolerance,
    stats: &mut ErrorStats,
) -> Report {
    let counts = |r: &IterationReport| {
        (r.rollout.generated, r.rollout.samples, r.rollout.dropped_empty, r.packs, r.tokens_generated)
    };
    if counts(got) != counts(want) {
        return Err(format!(
            "report: (generated, samples, dropped, packs, tokens generated) {:?}, reference {:?}",
            counts(got),
            counts(want)
        ));
    }
    let metrics = |r: &IterationReport| {
        let m = &r.rollout;
        vec![
            m.mean_reward,
            m.pass_at_n,
            m.correct_fraction,
            m.response_length_mean,
            m.response_length_std,
            m.stop_ratio,
            r.clip_fraction,
            r.clip_ratio,
        ]
    };
    let what = "report (mean reward, pass@n, correct, length mean, length std, stop ratio, clip fraction, ORZ clip ratio)";
    compare(what, &[7], &metrics(got), &metrics(want), tol, stats)?;
    let value_loss = |r: &IterationReport| [r.value_loss.unwrap_or(f64::NAN)];
    compare_steps(
        "policy",
        (&got.policy_steps, &[got.policy_loss]),
        (&want.policy_steps, &[want.policy_loss]),
        tol,
        stats,
    )?;
    compare_steps(
        "critic",
        (&got.critic_steps, &value_loss(got)),
        (&want.critic_steps, &value_loss(want)),
        tol,
        stats,
    )
}

/// Level 6: the backend's own iteration. Its sampling gives the reference's completions
/// (tokens, finish reasons, scores) and its full [`Trainer::iteration`] the reference's report
/// and parameters. In f32 every completion must be equal: the setup has no draw within
/// [`BORDERLINE`] of a cumulative-mass boundary on the reference (the check fails if that ever
/// stops holding). In bf16 and f16 a completion may diverge at a draw within
/// [`borderline`]`(dtype)` of a boundary (the rest of it is not compared), and the report and
/// parameters are compared only when no completion diverged; the outcome's note says so.
pub fn check_ppo_iteration_rollout<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let note = RefCell::new(None);
    let mut outcome = run_cases("ppo_iteration_rollout", dtype, 1, Just(TRAINER_SEED), |_, stats| {
        let r = Reference::new();
        let tol = Tolerance::for_dtype(dtype).scaled(UPDATE_TOLERANCE_SCALE);
        let want = full_iteration(&r, dtype).map_err(|e| failed("reference", e))?;
        let got = full_iteration(backend, dtype).map_err(|e| failed("backend", e))?;
        let (policy, _) = setup(&r, dtype).map_err(|e| failed("reference", e))?;
        let prompts = prompts();
        if got.completions.len() != want.completions.len() {
            return Err(format!(
                "{} completions, the reference {}",
                got.completions.len(),
                want.completions.len()
            ));
        }
        let mut diverged = Vec::new();
        for ((g, g_score), (w, w_score)) in got.completions.iter().zip(&want.completions) {
            let id = (w.request, w.sample);
            let margins = draw_margins(&r, &policy, &prompts[w.request].tokens, w)
                .map_err(|e| failed("reference margins", e))?;
            if let Some((j, m)) =
                margins.iter().enumerate().find(|(_, m)| dtype == DType::F32 && **m < BORDERLINE)
            {
                return Err(format!(
                    "setup: draw {j} of completion {id:?} lies {m:.2e} from a cumulative-mass boundary on the \
                     reference, within {BORDERLINE:e}: choose seeds whose draws are all clear of the boundaries"
                ));
            }
            if (g.request, g.sample) != id {
                return Err(format!("completion {id:?} came back as {:?}", (g.request, g.sample)));
            }
            let first_diff =
                (0..g.tokens.len().max(w.tokens.len())).find(|&j| g.tokens.get(j) != w.tokens.get(j));
            match first_diff {
                None if g.finish_reason == w.finish_reason && g_score == w_score => {}
                None => {
                    return Err(format!(
                        "completion {id:?}: tokens {:?} agree, but finish reason {:?} and score {g_score}, \
                         reference {:?} and {w_score}",
                        w.tokens, g.finish_reason, w.finish_reason
                    ));
                }
                Some(j) if margins.get(j).is_some_and(|&m| m < borderline(dtype)) => diverged.push((id, j)),
                Some(j) => {
                    return Err(format!(
                        "completion {id:?}: token {j} differs (backend {:?}, reference {:?}) at a draw {:.2e} \
                         from the nearest cumulative-mass boundary, clear of the {:.0e} a {dtype} backend may \
                         miss by",
                        g.tokens,
                        w.tokens,
                        margins.get(j).copied().unwrap_or(f64::INFINITY),
                        borderline(dtype)
                    ));
                }
            }
        }
        if !diverged.is_empty() {
            *note.borrow_mut() = Some(format!(
                "{} of {} completions diverged at draws within {:.0e} of a boundary ({diverged:?}: (prompt, \
                 sample), token); the report and parameters of the full iteration were not compared",
                diverged.len(),
                want.completions.len(),
                borderline(dtype)
            ));
            return Ok(());
        }
        let mut bad = Disagreements::default();
        bad.note(compare_reports(&got.report, &want.report, tol, stats));
        bad.note(compare_params("policy and critic", &got.params, &want.params, tol, stats));
        bad.finish()
    });
    outcome.note = note.into_inner();
    outcome
}
