//! `orz train` (and `orz` without a command): the ORZ training loop around
//! [`orz_core::train::Trainer`]: eval every `eval_interval` iterations including before the first
//! (ORZ_RECIPE.md step 11), one iteration per `rollout_batch_size` prompts, a metrics line and a
//! progress update per iteration, a checkpoint ([`orz_hf::trainer_checkpoint`]) every
//! `save_interval` iterations and at the end, a PNG of the curves at the end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use orz_core::backend::Backend;
use orz_core::collective::{Collective, Single};
use orz_core::rng::Rng;
use orz_core::train::Trainer;

use orz_hf::trainer_checkpoint::{self, RunState};

use super::dry_run::{dry_run, plan_without_model};
use crate::backend::{BackendJob, run_on};
use crate::cli::Common;
use crate::data::{DataCursor, DataOrder};
use crate::eval::{EvalOptions, evaluate_on_ranks};
use crate::metrics::{FinalEval, IterationMetrics, METRICS_FILE, MetricsWriter};
use crate::plot::{PLOT_FILE, plot_training};
use crate::prepare::{Prepared, prepare};
use crate::progress::Progress;

/// `orz train`: trains, then prints what changed and where the outputs are.
pub fn train(common: &Common) -> Result<()> {
    if common.dry_run && common.model.is_none() && common.resume.is_none() && !common.task().has_base_model()
    {
        return plan_without_model(common);
    }
    let prepared = prepare(common, true)?;
    if common.dry_run {
        return dry_run(common, &prepared);
    }
    let summary = run_on(common.backend, common.device, TrainJob { prepared })?;
    if crate::distributed::launch_env()?.is_some_and(|e| e.rank != 0) {
        return Ok(()); // rank 0 reports for the job
    }
    let (first, last) = (summary.metrics.first(), summary.metrics.last());
    if let (Some(f), Some(l)) = (first, last) {
        println!(
            "trained {} iterations: mean reward {:.3} -> {:.3}, response length {:.1} -> {:.1}",
            summary.metrics.len(),
            f.rollout.mean_reward,
            l.rollout.mean_reward,
            f.rollout.response_length_mean,
            l.rollout.response_length_mean
        );
    }
    if let Some(eval) = &summary.final_eval {
        for (name, acc) in eval {
            println!("eval {name}: accuracy {acc:.3} after training");
        }
    }
    if let Some(c) = &summary.last_checkpoint {
        println!("checkpoint: {}", c.display());
    }
    println!("metrics: {}\nplot: {}", common.out.join(METRICS_FILE).display(), summary.plot.display());
    Ok(())
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// Every iteration's metrics, in order (of this invocation only when resumed).
    pub metrics: Vec<IterationMetrics>,
    /// Accuracy per eval set of the trained model.
    pub final_eval: Option<BTreeMap<String, f64>>,
    /// The last checkpoint written.
    pub last_checkpoint: Option<PathBuf>,
    /// The PNG of the curves.
    pub plot: PathBuf,
}

/// `orz train` as a [`BackendJob`].
#[derive(Debug)]
pub struct TrainJob {
    /// The checked inputs.
    pub prepared: Prepared,
}

impl BackendJob for TrainJob {
    type Output = TrainSummary;

    fn run<B: Backend + 'static>(self, b: Rc<B>, name: &str) -> Result<TrainSummary> {
        run_training(&b, &self.prepared, name, None)
    }

    fn run_distributed<B: Backend + 'static>(
        self,
        b: Rc<B>,
        name: &str,
        collective: Rc<dyn Collective<B>>,
    ) -> Result<TrainSummary> {
        run_training(&b, &self.prepared, name, Some(collective))
    }
}

/// The directory of the checkpoint after `iterations` iterations.
pub fn checkpoint_dir(out: &Path, iterations: u64) -> PathBuf {
    out.join(format!("checkpoint-{iterations:06}"))
}

/// Builds a fresh trainer or restores the checkpoint, then runs to `prepared.iterations`; with
/// a `collective`, as one rank of a data-parallel job ([`Trainer::new_distributed`],
/// [`trainer_checkpoint::load_distributed`]: no rank ever holds a whole optimizer state): every
/// rank trains, evaluates its share of the questions and takes part in checkpoints; rank 0
/// alone writes metrics, eval files and plots.
pub fn run_training<B: Backend + 'static>(
    b: &Rc<B>,
    p: &Prepared,
    backend_name: &str,
    collective: Option<Rc<dyn Collective<B>>>,
) -> Result<TrainSummary> {
    let recipe = &p.settings.recipe;
    let collective = collective.unwrap_or_else(|| Rc::new(Single));
    let (mut trainer, cursor, reference_model) = match &p.resume {
        Some(dir) => {
            let loaded =
                trainer_checkpoint::load_distributed(Rc::clone(b), dir, p.dtype, Rc::clone(&collective))?;
            trainer_checkpoint::check_config(dir, loaded.trainer.config(), &p.settings.recipe.train)?;
            let run = loaded.run;
            if run.seed != p.seed {
                bail!(
                    "--resume {}: the checkpoint's seed is {}, not --seed {}",
                    dir.display(),
                    run.seed,
                    p.seed
                );
            }
            if run.preset != p.preset.name() {
                bail!(
                    "--resume {}: the checkpoint is of preset {}, not {}",
                    dir.display(),
                    run.preset,
                    p.preset
                );
            }
            let position = usize::try_from(run.position)?;
            let mut trainer = loaded.trainer;
            let mut reference_model = None;
            if trainer.config().uses_reference() {
                let base = reference_dir(p, dir, &run)?;
                let reference = orz_hf::load_policy(b, &base, p.dtype)
                    .with_context(|| format!("--resume {}: the reference model", dir.display()))?;
                trainer = trainer.with_reference(reference)?;
                reference_model = Some(base);
            }
            (trainer, DataCursor { epoch: run.epoch, position }, reference_model)
        }
        None => {
            let mut init = Rng::seed_from_u64(p.seed).fork(u64::MAX);
            let policy = orz_hf::load_policy(b, &p.model_dir, p.dtype)?;
            let critic = if p.settings.recipe.train.estimator.uses_critic() {
                Some(orz_hf::load_critic(b, &p.model_dir, p.dtype, &mut init)?)
            } else {
                None
            };
            let (train, rng) = (p.settings.recipe.train.clone(), Rng::seed_from_u64(p.seed));
            let trainer = Trainer::new_distributed(train, policy, critic, rng, collective)?;
            // The base model the run started from, recorded in every checkpoint: a resumed run
            // reloads its reference model (the initial policy) from there.
            let reference_model =
                trainer.config().uses_reference().then(|| std::path::absolute(&p.model_dir)).transpose()?;
            (trainer, DataCursor::default(), reference_model)
        }
    };
    let main = trainer.collective().rank() == 0;
    let mut order = DataOrder::new(p.seed, p.train_data.len(), cursor);
    let start_iteration = trainer.iterations();
    let mut writer = if main {
        forget_metrics_from(&p.out.join(METRICS_FILE), start_iteration)?;
        Some(MetricsWriter::create(&p.out)?)
    } else {
        None
    };
    let total = p.iterations as u64;
    if main {
        eprintln!(
            "orz train: preset {}, backend {backend_name}, model {} ({} parameters), {} training problems, \
         iterations {start_iteration}..{total}, output {}",
            p.preset,
            p.model_dir.display(),
            parameter_count(trainer.policy().model().config()),
            p.train_data.len(),
            p.out.display()
        );
    }
    let progress = if main { Progress::iterations(total, p.quiet) } else { Progress::silent(total) };
    let mut progress = progress.resume_at(start_iteration);
    let clock_start = Instant::now();
    let clock = move || clock_start.elapsed().as_secs_f64();
    let reward = p.task.reward();
    let mut all = Vec::new();
    let mut last_checkpoint = None;
    let eval_every = recipe.eval_interval.max(1) as u64;
    let save_every = recipe.save_interval.max(1) as u64;
    for k in start_iteration..total {
        let eval = if k % eval_every == 0 { run_eval(&trainer, p, k)? } else { None };
        let prompts = next_prompts(p, &mut order).map_err(anyhow::Error::from)?;
        let t0 = clock();
        // DAPO's dynamic sampling asks for more prompt groups from the same seeded order.
        let mut more = || next_prompts(p, &mut order);
        let report = trainer
            .iteration_dynamic(&prompts, &mut more, reward.as_ref(), &p.tokenizer, Some(&clock))
            .with_context(|| format!("iteration {k}"))?;
        let mut m = IterationMetrics::from_report(&report);
        m.eval = eval.unwrap_or_default();
        m.wall_seconds = Some(clock() - t0);
        for s in &report.skipped_steps {
            progress.println(&format!("iteration {k}: skipped a {:?} step: {}", s.model, s.reason));
        }
        if let Some(w) = writer.as_mut() {
            w.write(&m)?;
        }
        progress.update(&m);
        all.push(m);
        let done = k + 1;
        if done % save_every == 0 || done == total {
            let dir = checkpoint_dir(&p.out, done);
            let cursor = order.cursor();
            let run = RunState {
                seed: p.seed,
                preset: p.preset.name().to_string(),
                epoch: cursor.epoch,
                position: cursor.position as u64,
                extras: run_extras(p.train_data.len(), reference_model.as_deref()),
            };
            trainer_checkpoint::save(&dir, &trainer, Some(&p.tokenizer.to_json()?), &run)
                .with_context(|| format!("saving checkpoint {}", dir.display()))?;
            last_checkpoint = Some(dir);
        }
    }
    progress.finish();
    // The eval of the trained model (a metrics line holds the eval of the policy that sampled
    // it, so this one has no line: it goes to eval/final.json and the summary).
    let final_eval = if total > start_iteration { run_eval(&trainer, p, total)? } else { None };
    let final_point = final_eval.clone().map(|accuracy| FinalEval { iteration: total, accuracy });
    if let Some(eval) = final_point.as_ref().filter(|_| main) {
        eval.write(&p.out)?;
    }
    let plot = p.out.join(PLOT_FILE);
    if main {
        let history = crate::metrics::read_metrics(&p.out.join(METRICS_FILE))?;
        let title = format!("orz {} ({backend_name})", p.preset);
        plot_training(&history, final_point.as_ref(), &plot, &title)?;
    }
    Ok(TrainSummary { metrics: all, final_eval, last_checkpoint, plot })
}

/// The key of [`RunState::extras`] that records the reference model's directory (the base
/// model the run started from), when a KL option keeps one.
pub const REFERENCE_MODEL: &str = "reference_model";

/// What a checkpoint records beside the data cursor: the number of training problems and, under
/// a KL option, the reference model's directory ([`REFERENCE_MODEL`]).
fn run_extras(training_problems: usize, reference_model: Option<&Path>) -> serde_json::Value {
    let mut extras = serde_json::json!({ "training_problems": training_problems });
    if let (Some(dir), Some(map)) = (reference_model, extras.as_object_mut()) {
        map.insert(REFERENCE_MODEL.to_string(), serde_json::Value::String(dir.display().to_string()));
    }
    extras
}

/// The next `rollout_batch_size` prompts of the seeded data order (an error names the problem).
fn next_prompts(p: &Prepared, order: &mut DataOrder) -> orz_core::Result<Vec<orz_core::train::PromptItem>> {
    let recipe = &p.settings.recipe;
    order
        .next_batch(recipe.rollout_batch_size)
        .iter()
        .map(|&i| {
            p.train_data[i].to_prompt(recipe, &p.tokenizer).map_err(|e| {
                orz_core::Error::invalid("training data", format!("training problem {i}: {e:#}"))
            })
        })
        .collect()
}

/// Where a resumed run under a KL option loads its reference model (the initial policy, never
/// the checkpoint's): the base model directory the run recorded, else `--model` when it was
/// given (not the checkpoint's own policy). Errors when there is neither, or the recorded
/// directory is gone.
fn reference_dir(p: &Prepared, checkpoint: &Path, run: &RunState) -> Result<PathBuf> {
    let recorded = run.extras.get(REFERENCE_MODEL).and_then(|v| v.as_str()).map(PathBuf::from);
    let given = (p.model_dir != trainer_checkpoint::policy_dir(checkpoint)).then(|| p.model_dir.clone());
    match (recorded, given) {
        (Some(dir), _) if dir.is_dir() => Ok(dir),
        (Some(dir), Some(model)) => {
            eprintln!(
                "orz train: the recorded reference model {} is gone; using --model {}",
                dir.display(),
                model.display()
            );
            Ok(model)
        }
        (Some(dir), None) => bail!(
            "--resume {}: the run's reference model (its base model) was {}, which is gone: pass the base model \
             with --model",
            checkpoint.display(),
            dir.display()
        ),
        (None, Some(model)) => Ok(model),
        (None, None) => bail!(
            "--resume {}: a KL option needs the run's initial policy as the reference model, and the checkpoint \
             records no base model: pass it with --model",
            checkpoint.display()
        ),
    }
}

/// Drops the lines of iterations `>= from` from a metrics file (a resumed run rewrites what
/// happened after its checkpoint); no file is fine.
fn forget_metrics_from(path: &Path, from: u64) -> Result<()> {
    if !path.is_file() {
        return Ok(());
    }
    let kept: Vec<String> = crate::metrics::read_metrics(path)?
        .iter()
        .filter(|m| m.iteration < from)
        .map(serde_json::to_string)
        .collect::<Result<_, _>>()?;
    let text: String = kept.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).with_context(|| format!("rewriting {}", path.display()))
}

/// Parameters of a policy with `config`.
fn parameter_count(config: &orz_core::model::Qwen2Config) -> usize {
    orz_core::model::parameter_specs(config, orz_core::model::Head::Lm)
        .iter()
        .map(|s| s.shape.iter().product::<usize>())
        .sum()
}

/// The accuracy per eval set of the current policy (`eval_samples` per question), or `None`
/// without eval sets; generations go to `OUT/eval/iter-K.jsonl`. Every rank of a data-parallel
/// job calls it (the questions are split across them); rank 0 writes and shows progress.
fn run_eval<B: Backend>(trainer: &Trainer<B>, p: &Prepared, k: u64) -> Result<Option<BTreeMap<String, f64>>> {
    if p.eval_sets.is_empty() {
        return Ok(None);
    }
    let main = trainer.collective().rank() == 0;
    let jsonl = p.out.join("eval").join(format!("iter-{k:06}.jsonl"));
    if main {
        std::fs::create_dir_all(jsonl.parent().ok_or_else(|| anyhow!("no parent"))?)?;
    }
    let total: usize =
        p.eval_sets.iter().map(|(_, s)| s.len()).sum::<usize>() * p.settings.recipe.eval_samples;
    let bar = Progress::counter(&format!("eval before iteration {k}"), total, p.quiet || !main);
    let seed = p.seed ^ 0x0e7a_1000 ^ k;
    let mut options = EvalOptions::new(p.settings.recipe.eval_samples, seed);
    options.engine = p.settings.recipe.train.engine;
    options.out_jsonl = main.then_some(jsonl.as_path());
    let reward = p.task.reward();
    options.reward = Some(reward.as_ref());
    let (recipe, sets) = (&p.settings.recipe, &p.eval_sets);
    let c = trainer.collective();
    // With sharded weights every rank gathers the policy for the eval (and frees it after).
    let policy = trainer.gathered_policy()?;
    let report = evaluate_on_ranks(&policy, &p.tokenizer, recipe, sets, &options, &bar, c)?;
    Ok(Some(report.sets.iter().map(|s| (s.name.clone(), s.accuracy)).collect()))
}
