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

/// A named preset: the tiny CPU demo or one of the four published ORZ recipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum Preset {
    /// orz-rs's tiny CPU demo: a 3-layer, hidden-64 Qwen2 pretrained by orz-rs on noisy worked
    /// sums (`orz::tiny`), ORZ's algorithm unchanged; sized so that its 40 iterations take about
    /// 5 minutes on 2 CPU cores with candle, the training reward rising from about 0.35 to 0.9+.
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
                // 32 x 8 = 256 samples per iteration; packs of 256 tokens keep the packed
                // attention (quadratic in the row length) cheap on a CPU.
                rollout_batch_size: 32,
                n_samples_per_prompt: 8,
                packing_max_len: 256,
                generate_max_len: 48,
                max_len: 88,
                prompt_max_len: 40,
                // A model this small moves little at ORZ's 1e-6: 1e-3 for both (the
                // pretraining peak was 3e-3).
                policy_lr: 1e-3,
                critic_lr: 1e-3,
                warmup_steps: 5,
                eval_interval: 5,
                save_interval: 20,
                iterations: 40,
                eval_samples: 4,
                orz_gpus: 0,
                training_data: vec!["embedded task".into()],
                prompt_template: TINY_PROMPT_TEMPLATE.to_string(),
                ..orz
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
                packing_max_len: 16384,
                orz_gpus: 32,
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

/// Every knob of one ORZ training run.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RecipeConfig {
    /// The preset these values came from.
    pub preset: Preset,
    /// The base model the recipe starts from.
    pub base_model: String,
    /// Prompts per iteration (ORZ `rollout_batch_size`).
    pub rollout_batch_size: usize,
    /// Completions sampled per prompt (ORZ `n_samples_per_prompt`).
    pub n_samples_per_prompt: usize,
    /// Most tokens in one packed training row (ORZ `packing_max_len`).
    pub packing_max_len: usize,
    /// Most new tokens per completion (ORZ `generate_max_len`).
    pub generate_max_len: usize,
    /// Most tokens of prompt plus completion (ORZ `max_len`).
    pub max_len: usize,
    /// Prompts are truncated to this many tokens (ORZ `prompt_max_len`).
    pub prompt_max_len: usize,
    /// Sampling temperature.
    pub temperature: f64,
    /// Nucleus mass (1.0 disables top-p).
    pub top_p: f64,
    /// Top-k cutoff (`None` disables it, as in ORZ).
    pub top_k: Option<usize>,
    /// Stop strings; each is kept in the completion text.
    pub stop_strings: Vec<String>,
    /// GAE discount γ.
    pub gamma: f64,
    /// GAE λ.
    pub lambda: f64,
    /// Whiten advantages over the whole iteration (ORZ `advantage_normalize`).
    pub advantage_normalize: bool,
    /// PPO ratio clip ε (ORZ `eps_clip`).
    pub eps_clip: f64,
    /// Value clip c (ORZ `value_clip`).
    pub value_clip: f64,
    /// Policy (actor) learning rate.
    pub policy_lr: f64,
    /// Critic learning rate.
    pub critic_lr: f64,
    /// Linear warmup length in optimizer steps, starting from lr 0.
    pub warmup_steps: usize,
    /// Critic optimizer steps per iteration.
    pub critic_update_steps: usize,
    /// Policy optimizer steps per iteration.
    pub policy_update_steps: usize,
    /// AdamW β1 and β2.
    pub adam_betas: (f64, f64),
    /// AdamW ε.
    pub adam_eps: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Global L2 gradient-norm clip.
    pub max_grad_norm: f64,
    /// Evaluate every this many iterations (and before the first).
    pub eval_interval: usize,
    /// Checkpoint every this many iterations.
    pub save_interval: usize,
    /// Seed of the shuffle before packing (ORZ uses 42).
    pub pack_shuffle_seed: u64,
    /// GPUs ORZ used for this recipe (ORZ-0.5B ran on 1 or 8; 0 for orz-rs's CPU demo).
    pub orz_gpus: usize,
    /// Training data the recipe uses.
    pub training_data: Vec<String>,
    /// Iterations of a full run (ORZ-7B: about 750, the paper's figure 2; ORZ's scripts stop
    /// after `num_episodes` passes over the data instead).
    pub iterations: usize,
    /// Samples per eval question (ORZ in training: 1 at temperature 1; the paper's tables: 16).
    pub eval_samples: usize,
    /// The prompt around each question, with [`QUESTION_SLOT`] where it goes (ORZ:
    /// [`ORZ_PROMPT_TEMPLATE`]).
    pub prompt_template: String,
}

impl RecipeConfig {
    /// The prompt of `question`: [`RecipeConfig::prompt_template`] with `{question}` replaced.
    pub fn render_prompt(&self, question: &str) -> String {
        self.prompt_template.replace(QUESTION_SLOT, question)
    }

    /// The values every ORZ preset shares (ORZ_RECIPE.md, "Presets" and "Math").
    fn orz_common() -> RecipeConfig {
        RecipeConfig {
            preset: Preset::Orz7b,
            base_model: String::new(),
            rollout_batch_size: 128,
            n_samples_per_prompt: 64,
            packing_max_len: 10048,
            generate_max_len: 8000,
            max_len: 8192,
            prompt_max_len: 2048,
            temperature: 1.0,
            top_p: 1.0,
            top_k: None,
            stop_strings: ["User:", "Human:", "Assistant:", "</answer>"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            gamma: 1.0,
            lambda: 1.0,
            advantage_normalize: true,
            eps_clip: 0.2,
            value_clip: 0.2,
            policy_lr: 1e-6,
            critic_lr: 5e-6,
            warmup_steps: 50,
            critic_update_steps: 12,
            policy_update_steps: 1,
            adam_betas: (0.9, 0.95),
            adam_eps: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            eval_interval: 10,
            save_interval: 50,
            pack_shuffle_seed: 42,
            iterations: 750,
            eval_samples: 1,
            prompt_template: ORZ_PROMPT_TEMPLATE.to_string(),
            orz_gpus: 8,
            training_data: vec!["orz_math_57k_collected.json".into()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orz_presets_match_the_recipe_table() {
        for p in [Preset::Orz0p5b, Preset::Orz1p5b, Preset::Orz7b, Preset::Orz32b] {
            let c = p.config();
            assert_eq!((c.rollout_batch_size, c.n_samples_per_prompt), (128, 64), "{p}");
            assert_eq!((c.generate_max_len, c.max_len, c.prompt_max_len), (8000, 8192, 2048), "{p}");
            assert_eq!((c.policy_lr, c.critic_lr, c.warmup_steps), (1e-6, 5e-6, 50), "{p}");
            assert_eq!((c.critic_update_steps, c.policy_update_steps), (12, 1), "{p}");
            assert_eq!((c.gamma, c.lambda, c.eps_clip, c.value_clip), (1.0, 1.0, 0.2, 0.2), "{p}");
            assert_eq!(
                (c.adam_betas, c.adam_eps, c.weight_decay, c.max_grad_norm),
                ((0.9, 0.95), 1e-8, 0.0, 1.0)
            );
            assert_eq!((c.eval_interval, c.save_interval), (10, 50));
            assert_eq!(c.stop_strings, ["User:", "Human:", "Assistant:", "</answer>"]);
            assert_eq!((c.temperature, c.top_p, c.top_k), (1.0, 1.0, None));
            let expected_pack = if p == Preset::Orz7b { 16384 } else { 10048 };
            assert_eq!(c.packing_max_len, expected_pack, "{p}");
        }
        assert_eq!(Preset::Orz7b.config().orz_gpus, 32);
        assert_eq!(Preset::Orz32b.config().orz_gpus, 128);
    }

    #[test]
    fn tiny_is_small_with_orz_algorithm_unchanged() {
        let (c, orz) = (Preset::Tiny.config(), Preset::Orz7b.config());
        assert_eq!((c.rollout_batch_size, c.n_samples_per_prompt, c.iterations), (32, 8, 40));
        assert_eq!((c.prompt_max_len, c.generate_max_len, c.max_len, c.packing_max_len), (40, 48, 88, 256));
        assert!(c.prompt_max_len + c.generate_max_len <= c.max_len && c.max_len <= c.packing_max_len);
        assert_eq!((c.policy_lr, c.critic_lr, c.warmup_steps), (1e-3, 1e-3, 5));
        assert_eq!((c.eval_interval, c.save_interval, c.eval_samples), (5, 20, 4));
        // The algorithm is ORZ's: GAE 1/1, clips, 12 critic / 1 policy steps, sampling, stops.
        assert_eq!((c.critic_update_steps, c.policy_update_steps), (12, 1));
        assert_eq!((c.gamma, c.lambda, c.eps_clip, c.value_clip), (orz.gamma, orz.lambda, 0.2, 0.2));
        assert_eq!((c.temperature, c.top_p, c.top_k, &c.stop_strings), (1.0, 1.0, None, &orz.stop_strings));
        assert_eq!(c.render_prompt("7+5+8"), "User: 7+5+8\nAssistant: <think>");
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
