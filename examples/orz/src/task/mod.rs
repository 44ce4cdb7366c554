//! [`Task`]: what the model is trained on and how it is scored (`--task`): ORZ's math (the
//! `orz_math` reward on boxed answers), Countdown (TinyZero's task and reward) or the tiny
//! default ([`tiny`]: digit sums, ORZ's reward, an embedded base model).
//!
//! A task supplies whatever the command line leaves out: its reward, recipe overrides (a prompt
//! template), generated training and held-out problems, and an embedded base model. The one
//! place a preset picks a task is [`Task::default_for`]: the `tiny` preset trains the tiny task
//! unless `--task` says otherwise.

pub mod tiny;

use std::fmt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use orz_core::recipe::Preset;
use orz_core::reward::Reward;
use orz_core::reward::countdown::{Countdown, GeneratorConfig, TINYZERO_PROMPT_TEMPLATE};
use orz_core::reward::orz_math::orz_math;
use serde_json::{Map, Value};

use crate::data::{self, Problem};
use crate::settings::Overrides;

/// The task of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Task {
    /// ORZ: math problems, 1 if the completion stopped and its last `\boxed{}` inside
    /// `<answer>` equals the reference (ORZ_RECIPE.md "Answer extraction and checking").
    #[default]
    Math,
    /// The tiny default: sums of three or four digits (guessed, worked or checked step by step),
    /// graded by ORZ's math reward, with an embedded base model and tokenizer ([`tiny`]); without
    /// `--data` the problems are generated, with a held-out eval split.
    Tiny,
    /// TinyZero's Countdown: reach the target with the given numbers; 1.0 right, 0.1 well formed
    /// but wrong, 0 without an answer (ORZ_RECIPE.md "Countdown"). Without `--data` the
    /// problems come from the seeded generator, which makes only solvable instances.
    Countdown,
}

/// Seed offset of the held-out Countdown eval instances (the generator's draws for another seed;
/// a rare instance may also occur in training, as in TinyZero's random split).
const COUNTDOWN_EVAL_SEED: u64 = 0xc0de_0e7a;

/// A base model shipped inside the program: the three files of a Hugging Face model directory.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedModel {
    /// `config.json`.
    pub config_json: &'static [u8],
    /// `model.safetensors`.
    pub model_safetensors: &'static [u8],
    /// `tokenizer.json`.
    pub tokenizer_json: &'static [u8],
}

impl EmbeddedModel {
    /// Writes the model into `dir` (created if needed), so that it loads through the normal
    /// model-directory path.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, bytes) in [
            ("config.json", self.config_json),
            ("model.safetensors", self.model_safetensors),
            ("tokenizer.json", self.tokenizer_json),
        ] {
            // Written aside and renamed into place: ranks of a data-parallel job write the same
            // files at once, and a reader must never see one half-written.
            let path = dir.join(name);
            let tmp = dir.join(format!(".{name}.{}", std::process::id()));
            std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &path).with_context(|| format!("renaming {} into place", tmp.display()))?;
        }
        Ok(())
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = clap::ValueEnum::to_possible_value(self).map(|v| v.get_name().to_string());
        f.write_str(name.as_deref().unwrap_or("?"))
    }
}

impl Task {
    /// The task of a run without `--task`: the tiny task for the `tiny` preset, ORZ's math for
    /// the others.
    pub fn default_for(preset: Preset) -> Task {
        if preset == Preset::Tiny { Task::Tiny } else { Task::Math }
    }

    /// The reward of this task.
    pub fn reward(self) -> Box<dyn Reward> {
        match self {
            Task::Math | Task::Tiny => Box::new(orz_math()),
            Task::Countdown => Box::new(Countdown::new()),
        }
    }

    /// Recipe fields the task sets before the user's overrides (Countdown: TinyZero's prompt;
    /// tiny: room for its longest, checked answers, [`tiny::lengths`]).
    pub fn overrides(self) -> Option<Overrides> {
        match self {
            Task::Math => None,
            Task::Tiny => Some(tiny::lengths()),
            Task::Countdown => {
                let mut values = Map::new();
                values.insert("prompt_template".into(), Value::String(TINYZERO_PROMPT_TEMPLATE.into()));
                Some(Overrides { source: "--task countdown".into(), values })
            }
        }
    }

    /// Generated training and held-out eval problems when no `--data` is given (tiny and
    /// Countdown).
    pub fn generated(
        self,
        seed: u64,
        train: usize,
        eval: usize,
    ) -> Result<Option<(Vec<Problem>, Vec<Problem>)>> {
        match self {
            Task::Math => Ok(None),
            Task::Tiny => Ok(Some((tiny::problems(seed, train), tiny::eval_problems(eval)))),
            Task::Countdown => {
                let config = GeneratorConfig::default();
                let train = data::countdown(&config, seed, train)?;
                let eval = data::countdown(&config, seed ^ COUNTDOWN_EVAL_SEED, eval)?;
                Ok(Some((train, eval)))
            }
        }
    }

    /// The base model the task ships with, used when no `--model` is given (tiny only).
    pub fn base_model(self) -> Option<EmbeddedModel> {
        match self {
            Task::Tiny => Some(tiny::BASE_MODEL),
            Task::Math | Task::Countdown => None,
        }
    }

    /// Whether the task ships with a base model ([`Self::base_model`]).
    pub fn has_base_model(self) -> bool {
        self.base_model().is_some()
    }

    /// Builds the task's base model by pretraining (deterministic given `seed`) and writes it to
    /// `out` as a Hugging Face model directory (`orz pretrain`; tiny only).
    pub fn pretrain(self, out: &Path, seed: u64) -> Result<()> {
        match self {
            Task::Tiny => tiny::build_base_model(out, seed),
            Task::Math | Task::Countdown => {
                bail!("the {self} task has no base model to pretrain (only the tiny task has; --task tiny)")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orz_core::reward::{FinishReason, RewardInput};

    #[test]
    fn countdown_problems_score_with_their_own_reward() {
        let (train, eval) = Task::Countdown.generated(3, 5, 2).unwrap().unwrap();
        assert_eq!((train.len(), eval.len()), (5, 2));
        assert_ne!(train[0], eval[0]);
        let reward = Task::Countdown.reward();
        let no_answer = RewardInput {
            prompt: "",
            completion: "I give up",
            finish_reason: FinishReason::Stop,
            reference: &train[0].answer,
        };
        assert_eq!(reward.score(&no_answer).score, 0.0);
        assert!(Task::Math.generated(0, 1, 1).unwrap().is_none());
        let o = Task::Countdown.overrides().unwrap();
        assert!(o.values["prompt_template"].as_str().unwrap().contains("{question}"));
    }

    #[test]
    fn the_tiny_task_brings_its_model_and_problems_and_is_the_tiny_presets_default() {
        assert_eq!(Task::default_for(Preset::Tiny), Task::Tiny);
        assert_eq!(Task::default_for(Preset::Orz7b), Task::Math);
        let (train, eval) = Task::Tiny.generated(3, 4, 2).unwrap().unwrap();
        assert_eq!((train, eval), (tiny::problems(3, 4), tiny::eval_problems(2)));
        assert!(
            Task::Tiny.has_base_model() && !Task::Math.has_base_model() && !Task::Countdown.has_base_model()
        );
        assert_eq!(Task::Tiny.to_string(), "tiny");
        let e = Task::Countdown.pretrain(Path::new("unused"), 0).unwrap_err().to_string();
        assert!(e.contains("countdown task has no base model"), "{e}");
    }
}
