//! Shared helpers: a tiny Qwen2, a toy tokenizer and reward, small train configs.

use std::rc::Rc;

use orz_core::backend::{Backend, DType};
use orz_core::model::{Critic, Policy};
use orz_core::recipe::Preset;
use orz_core::reward::{Reward, RewardInput, RewardOutcome, label};
use orz_core::rng::Rng;
use orz_core::train::{PromptItem, TrainConfig, Trainer};
use orz_reference::Reference;

/// A tiny GQA Qwen2: vocab 32, hidden 16, 2 layers, EOS id 1 (the model of conformance level 6).
pub use orz_conformance::checks::iteration::tiny_model as tiny;

/// The toy tokenizer: token `t` is the letter `'a' + t % 26`.
pub fn detok(tokens: &[u32]) -> String {
    tokens.iter().map(|&t| char::from(b'a' + (t % 26) as u8)).collect()
}

/// The letter token `t` decodes to.
pub fn letter(t: u32) -> char {
    char::from(b'a' + (t % 26) as u8)
}

/// 1.0 (`correct`) when the completion holds the letter `letter` (anywhere, or first when
/// `first`), else 0.0 (`wrong`).
pub struct HasLetter {
    /// The letter.
    pub letter: char,
    /// Only as the completion's first character (its first token).
    pub first: bool,
}

impl Reward for HasLetter {
    fn score(&self, input: &RewardInput<'_>) -> RewardOutcome {
        let hit = if self.first {
            input.completion.starts_with(self.letter)
        } else {
            input.completion.contains(self.letter)
        };
        if hit { RewardOutcome::new(1.0, label::CORRECT) } else { RewardOutcome::new(0.0, label::WRONG) }
    }

    fn name(&self) -> &str {
        "has_letter"
    }
}

/// 1.0 when the completion contains `letter`.
pub fn contains(letter: char) -> HasLetter {
    HasLetter { letter, first: false }
}

/// 1.0 when the completion starts with `letter`.
pub fn starts_with(letter: char) -> HasLetter {
    HasLetter { letter, first: true }
}

/// `count` prompts of 3 to 5 tokens (ids 2..32), with their toy text.
pub fn prompts(count: usize) -> Vec<PromptItem> {
    (0..count)
        .map(|i| {
            let tokens: Vec<u32> = (0..3 + i % 3).map(|j| 2 + ((7 * i + 3 * j) % 30) as u32).collect();
            PromptItem { text: detok(&tokens), tokens, reference: String::new() }
        })
        .collect()
}

/// The tiny preset shrunk to this model: `n` samples of at most 4 new tokens, packs of at
/// most 24 tokens, 12 critic steps; constant learning rates (no warmup) of `lr`.
pub fn config(n: usize, lr: f64) -> TrainConfig {
    let mut c = Preset::Tiny.config().train_config(tiny().eos_token_ids).unwrap();
    c.n_samples_per_prompt = n;
    (c.stop.max_new_tokens, c.stop.max_total_len, c.prompt_max_len, c.packing_max_len) = (4, 12, 6, 24);
    c.set_learning_rates(lr, lr, 0);
    c.critic_update_steps = 12;
    c.validate().unwrap();
    c
}

/// A random policy and critic (from `seed`) on one reference backend.
pub fn models(seed: u64) -> (Rc<Reference>, Policy<Reference>, Critic<Reference>) {
    let b = Rc::new(Reference::new());
    let mut rng = Rng::seed_from_u64(seed);
    let policy = Policy::random(Rc::clone(&b), &tiny(), DType::F32, &mut rng).unwrap();
    let critic = Critic::random(Rc::clone(&b), &tiny(), DType::F32, &mut rng).unwrap();
    (b, policy, critic)
}

/// A trainer with `config` over [`models`]`(seed)`, its generator seeded with `seed + 1`.
/// The critic is left out when the config's estimator uses none.
pub fn trainer(config: TrainConfig, seed: u64) -> Trainer<Reference> {
    let (_, policy, critic) = models(seed);
    let critic = config.estimator.uses_critic().then_some(critic);
    Trainer::new(config, policy, critic, Rng::seed_from_u64(seed + 1)).unwrap()
}

/// Host values of every parameter of a model, in order.
pub fn snapshot(params: &[orz_reference::Tensor]) -> Vec<Vec<f64>> {
    let b = Reference::new();
    params.iter().map(|p| b.to_host_f64(p).unwrap()).collect()
}

/// The largest absolute difference between two snapshots.
pub fn max_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    a.iter().zip(b).flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs())).fold(0.0, f64::max)
}
