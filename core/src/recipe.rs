//! The ORZ recipe presets: every knob of one training run, with ORZ's values.
//!
//! Values come from Open-Reasoner-Zero's `playground/orz_{0p5b,1p5b,7b,32b}_ppo.py` (commit
//! 3fdd9a0) as summarized in `ORZ_RECIPE.md`; `tiny` is orz-rs's own CPU demo and says so.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use crate::error::Error;
use crate::train::TrainConfig;

/// A named preset: the tiny CPU demo or one of the four published ORZ recipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Preset {
    /// orz-rs's tiny CPU demo: a 3-layer, hidden-64 Qwen2 pretrained by orz-rs on digit sums in
    /// three answer forms (`orz::task::tiny`: guesses, worked steps, steps checked after `wait,`),
    /// ORZ's algorithm unchanged; sized so that its 30 iterations take under five minutes on 2 CPU cores
    /// with candle, the training reward rising from about 0.3 to 0.8+ and the response length
    /// from about 25 to 70 tokens (the tiny task raises `generate_max_len` to 96 for that).
    Tiny,
    /// ORZ-0.5B on Qwen2.5-0.5B.
    #[cfg_attr(feature = "serde", serde(rename = "orz-0.5b"))]
    Orz0p5b,
    /// ORZ-1.5B on Qwen2.5-1.5B.
    #[cfg_attr(feature = "serde", serde(rename = "orz-1.5b"))]
    Orz1p5b,
    /// ORZ-7B on Qwen2.5-7B.
    Orz7b,
    /// ORZ-32B on Qwen2.5-32B.
    Orz32b,
}

impl Preset {
    /// Every preset, smallest first.
    pub const ALL: [Preset; 5] =
        [Preset::Tiny, Preset::Orz0p5b, Preset::Orz1p5b, Preset::Orz7b, Preset::Orz32b];

    /// The name used on the command line (`tiny`, `orz-0.5b`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Orz0p5b => "orz-0.5b",
            Preset::Orz1p5b => "orz-1.5b",
            Preset::Orz7b => "orz-7b",
            Preset::Orz32b => "orz-32b",
        }
    }

    /// The full configuration of this preset.
    pub fn config(self) -> RecipeConfig {
        let orz = RecipeConfig::orz_common();
        match self {
            Preset::Tiny => RecipeConfig {
                preset: self,
                base_model: "embedded tiny Qwen2 (orz-rs)".into(),
                // 32 x 8 = 256 samples per iteration.
                rollout_batch_size: 32,
                eval_interval: 5,
                save_interval: 20,
                iterations: 30,
                eval_samples: 4,
                orz_gpus: 0,
                training_data: vec!["embedded task".into()],
                prompt_template: TINY_PROMPT_TEMPLATE.to_string(),
                train: TrainConfig::tiny(),
            },
            Preset::Orz0p5b => {
                RecipeConfig { preset: self, base_model: "Qwen2.5-0.5B".into(), orz_gpus: 8, ..orz }
            }
            Preset::Orz1p5b => {
                RecipeConfig { preset: self, base_model: "Qwen2.5-1.5B".into(), orz_gpus: 16, ..orz }
            }
            Preset::Orz7b => RecipeConfig {
                preset: self,
                base_model: "Qwen2.5-7B".into(),
                orz_gpus: 32,
                train: TrainConfig { packing_max_len: 16384, ..orz.train.clone() },
                ..orz
            },
            Preset::Orz32b => RecipeConfig {
                preset: self,
                base_model: "Qwen2.5-32B".into(),
                orz_gpus: 128,
                training_data: vec![
                    "orz_math_57k_collected.json".into(),
                    "orz_math_72k_collection_extended.json".into(),
                    "13k hard prompts (annealing)".into(),
                ],
                ..orz
            },
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Preset::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
            Error::invalid(
                "preset",
                alloc::format!("unknown preset `{s}`; known presets: {}", names.join(", ")),
            )
        })
    }
}

/// Where the question goes in a [`RecipeConfig::prompt_template`].
pub const QUESTION_SLOT: &str = "{question}";

/// ORZ's prompt template, verbatim (ORZ_RECIPE.md "Prompt template"; `orz/ppo/dataset.py`), with
/// [`QUESTION_SLOT`] for the question. It ends with `<think>`, no newline after it.
pub const ORZ_PROMPT_TEMPLATE: &str = "A conversation between User and Assistant. The User asks a question, \
and the Assistant solves it. The Assistant first thinks about the reasoning process in the mind and then \
provides the User with the answer. The reasoning process is enclosed within <think> </think> and answer is \
enclosed within <answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> \
<answer> answer here </answer>. User: You must put your answer inside <answer> </answer> tags, i.e., \
<answer> answer here </answer>. And your final answer will be extracted automatically by the \\boxed{} tag.
This is the problem:
{question}
Assistant: <think>";

/// The tiny preset's prompt template: ORZ's shape (`User:` ... `Assistant: <think>`) without
/// the long instructions, which a character-level model would pay for on every sample.
pub const TINY_PROMPT_TEMPLATE: &str = "User: {question}\nAssistant: <think>";

/// Every knob of one ORZ training run: the run's own (data, batch, schedule of evaluations and
/// checkpoints) and, once each, the iteration's ([`RecipeConfig::train`]).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RecipeConfig {
    /// The preset these values came from.
    pub preset: Preset,
    /// The base model the recipe starts from.
    pub base_model: String,
    /// Prompts per iteration (ORZ `rollout_batch_size`).
    pub rollout_batch_size: usize,
    /// Evaluate every this many iterations.
    pub eval_interval: usize,
    /// Save a checkpoint every this many iterations.
    pub save_interval: usize,
    /// GPUs ORZ used for this preset (informational).
    pub orz_gpus: usize,
    /// The training data ORZ used, by file name (informational).
    pub training_data: Vec<String>,
    /// Training iterations of a full run (ORZ: about 750 for the smaller presets).
    pub iterations: usize,
    /// Samples per evaluation prompt (ORZ evaluates with 1 at temperature 1; tiny averages 4).
    pub eval_samples: usize,
    /// The prompt template; `{question}` is replaced by the problem.
    pub prompt_template: String,
    /// The iteration: samples per prompt, lengths, sampling, packing, GAE, clips, steps,
    /// optimizers; the one home of these knobs (each field's doc names ORZ's spelling). Its
    /// EOS ids are the model's: presets leave them empty ([`RecipeConfig::train_config`] sets
    /// them).
    pub train: TrainConfig,
}

impl RecipeConfig {
    /// The prompt template with `question` in place of `{question}`.
    pub fn render_prompt(&self, question: &str) -> String {
        self.prompt_template.replace(QUESTION_SLOT, question)
    }

    /// The iteration config with the model's EOS ids, validated.
    pub fn train_config(&self, eos_token_ids: Vec<u32>) -> Result<TrainConfig, Error> {
        let mut train = self.train.clone();
        train.stop.eos_token_ids = eos_token_ids;
        train.validate()?;
        Ok(train)
    }

    /// The settings every ORZ preset shares (the 7B's run values).
    fn orz_common() -> RecipeConfig {
        RecipeConfig {
            preset: Preset::Orz7b,
            base_model: String::new(),
            rollout_batch_size: 128,
            eval_interval: 10,
            save_interval: 50,
            iterations: 750,
            eval_samples: 1,
            prompt_template: ORZ_PROMPT_TEMPLATE.to_string(),
            orz_gpus: 8,
            training_data: vec!["orz_math_57k_collected.json".into()],
            train: TrainConfig::orz(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::schedule::LrSchedule;

    /// Peak rate and warmup of a warmup-constant schedule.
    fn warmup(s: LrSchedule) -> (f64, usize) {
        match s {
            LrSchedule::WarmupConstant { peak, warmup_steps } => (peak, warmup_steps),
            other => panic!("not a warmup-constant schedule: {other:?}"),
        }
    }

    #[test]
    fn orz_presets_match_the_recipe_table() {
        for p in [Preset::Orz0p5b, Preset::Orz1p5b, Preset::Orz7b, Preset::Orz32b] {
            let c = p.config();
            let t = &c.train;
            assert_eq!((c.rollout_batch_size, t.n_samples_per_prompt), (128, 64), "{p}");
            assert_eq!(
                (t.stop.max_new_tokens, t.stop.max_total_len, t.prompt_max_len),
                (8000, 8192, 2048),
                "{p}"
            );
            assert_eq!(warmup(t.policy_optimizer.schedule), (1e-6, 50), "{p}");
            assert_eq!(warmup(t.critic_optimizer.schedule), (5e-6, 50), "{p}");
            assert_eq!((t.critic_update_steps, t.policy_update_steps), (12, 1), "{p}");
            assert_eq!((t.gamma, t.lambda, t.eps_clip, t.value_clip), (1.0, 1.0, 0.2, 0.2), "{p}");
            for o in [t.policy_optimizer, t.critic_optimizer] {
                let a = o.adamw;
                assert_eq!(
                    (a.beta1, a.beta2, a.eps, a.weight_decay, o.max_grad_norm),
                    (0.9, 0.95, 1e-8, 0.0, Some(1.0))
                );
            }
            assert_eq!((c.eval_interval, c.save_interval), (10, 50));
            assert_eq!(t.stop.stop_strings, ["User:", "Human:", "Assistant:", "</answer>"]);
            assert!(t.stop.eos_token_ids.is_empty(), "EOS ids are the model's");
            assert_eq!((t.sampling.temperature, t.sampling.top_p, t.sampling.top_k), (1.0, 1.0, None));
            let expected_pack = if p == Preset::Orz7b { 16384 } else { 10048 };
            assert_eq!(t.packing_max_len, expected_pack, "{p}");
        }
        assert_eq!(Preset::Orz7b.config().orz_gpus, 32);
        assert_eq!(Preset::Orz32b.config().orz_gpus, 128);
    }

    #[test]
    fn tiny_is_small_with_orz_algorithm_unchanged() {
        let (c, orz) = (Preset::Tiny.config(), Preset::Orz7b.config());
        let (t, o) = (&c.train, &orz.train);
        assert_eq!((c.rollout_batch_size, t.n_samples_per_prompt, c.iterations), (32, 8, 30));
        let lens = (t.prompt_max_len, t.stop.max_new_tokens, t.stop.max_total_len, t.packing_max_len);
        assert_eq!(lens, (40, 48, 88, 256));
        assert!(lens.0 + lens.1 <= lens.2 && lens.2 <= lens.3);
        assert_eq!(warmup(t.policy_optimizer.schedule), (1e-3, 5));
        assert_eq!(warmup(t.critic_optimizer.schedule), (1e-3, 5));
        assert_eq!((c.eval_interval, c.save_interval, c.eval_samples), (5, 20, 4));
        // The algorithm is ORZ's: GAE 1/1, clips, 12 critic / 1 policy steps, sampling, stops.
        assert_eq!((t.critic_update_steps, t.policy_update_steps), (12, 1));
        assert_eq!((t.gamma, t.lambda, t.eps_clip, t.value_clip), (o.gamma, o.lambda, 0.2, 0.2));
        assert_eq!((t.sampling, &t.stop.stop_strings), (o.sampling, &o.stop.stop_strings));
        assert_eq!(c.render_prompt("7+5+8"), "User: 7+5+8\nAssistant: <think>");
    }

    #[test]
    fn train_config_sets_the_models_eos_and_validates() {
        let c = Preset::Tiny.config();
        assert_eq!(c.train_config(vec![1, 2]).unwrap().stop.eos_token_ids, [1, 2]);
        let mut bad = c.clone();
        bad.train.n_samples_per_prompt = 0;
        assert!(bad.train_config(vec![1]).is_err());
    }

    #[test]
    fn orz_template_renders_verbatim() {
        let p = Preset::Orz7b.config().render_prompt("What is 1+1?");
        assert!(
            p.starts_with("A conversation between User and Assistant. The User asks a question, and the")
        );
        assert!(p.contains("by the \\boxed{} tag.\nThis is the problem:\nWhat is 1+1?\nAssistant: <think>"));
        assert!(p.ends_with("<think>") && !p.contains("  "), "{p}");
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for p in Preset::ALL {
            assert_eq!(p.name().parse::<Preset>(), Ok(p));
        }
        let err = "orz-3b".parse::<Preset>().unwrap_err();
        assert!(alloc::format!("{err}").contains("unknown preset `orz-3b`"));
    }
}
