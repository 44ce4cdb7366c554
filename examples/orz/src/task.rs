//! [`Task`]: what the model is trained on and how it is scored (`--task`): ORZ's math (the
//! `orz_math` reward on boxed answers; the default) or Countdown (TinyZero's task and reward).

use anyhow::Result;
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
    /// TinyZero's Countdown: reach the target with the given numbers; 1.0 right, 0.1 well formed
    /// but wrong, 0 without an answer (ORZ_RECIPE.md "Countdown"). Without `--data` the
    /// problems come from the seeded generator, which makes only solvable instances.
    Countdown,
}

/// Seed offset of the held-out Countdown eval instances (the generator's draws for another seed;
/// a rare instance may also occur in training, as in TinyZero's random split).
const COUNTDOWN_EVAL_SEED: u64 = 0xc0de_0e7a;

impl Task {
    /// The reward of this task.
    pub fn reward(self) -> Box<dyn Reward> {
        match self {
            Task::Math => Box::new(orz_math()),
            Task::Countdown => Box::new(Countdown::new()),
        }
    }

    /// Recipe fields the task sets before the user's overrides (Countdown: TinyZero's prompt).
    pub fn overrides(self) -> Option<Overrides> {
        match self {
            Task::Math => None,
            Task::Countdown => {
                let mut recipe = Map::new();
                recipe.insert("prompt_template".into(), Value::String(TINYZERO_PROMPT_TEMPLATE.into()));
                Some(Overrides { source: "--task countdown".into(), recipe, train: Map::new() })
            }
        }
    }

    /// Generated training and eval problems when no `--data` is given (Countdown only).
    pub fn generated(
        self,
        seed: u64,
        train: usize,
        eval: usize,
    ) -> Result<Option<(Vec<Problem>, Vec<Problem>)>> {
        match self {
            Task::Math => Ok(None),
            Task::Countdown => {
                let config = GeneratorConfig::default();
                let train = data::countdown(&config, seed, train)?;
                let eval = data::countdown(&config, seed ^ COUNTDOWN_EVAL_SEED, eval)?;
                Ok(Some((train, eval)))
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
        assert!(o.recipe["prompt_template"].as_str().unwrap().contains("{question}"));
    }
}
