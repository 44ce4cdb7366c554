//! The reward algebra: a reward over (prompt, completion, finish reason, reference) and its
//! combinators, with the ORZ math, Countdown and format rewards.
//!
//! A [`Reward`] maps one [`RewardInput`] to a [`RewardOutcome`]: a score and a short static
//! label (`"correct"`, `"truncated"`, ...) that metrics can count. Rewards compose through the
//! builder methods of [`Reward`] ([`combinators`]):
//!
//! ```
//! use orz_core::reward::{orz_math::AnswerCorrect, FinishReason, Reward, RewardInput};
//!
//! // The ORZ math reward (recipe step 4) is `AnswerCorrect` gated on the `stop` finish reason.
//! let orz = AnswerCorrect.gate_on_stop();
//! let input = RewardInput::new("Q", "</think> <answer>42</answer>", FinishReason::Length, "42");
//! assert_eq!(orz.score(&input).score, 0.0); // truncated: no reward, whatever the answer
//! ```
//!
//! The score is placed on the last response token by [`placement`]; completions whose text is
//! empty are dropped before training ([`is_droppable`]).
//!
//! **References.** [`RewardInput::reference`] is the task's ground truth as one string, so
//! that every task flows through the same dataset column: the math reference answer (possibly
//! `\boxed{...}`), or for Countdown a [`countdown::CountdownProblem`] written as
//! `target=24;numbers=3,4,5,6` (its `Display` and `parse` round-trip). A reward that cannot
//! read its reference scores 0 with the label [`label::BAD_REFERENCE`]; loaders should
//! validate references up front (e.g. with [`countdown::CountdownProblem::parse`]).

pub mod combinators;
pub mod countdown;
pub mod format;
pub mod orz_math;
pub mod placement;

use alloc::boxed::Box;

use crate::error::Result;
/// Why a completion ended: generation's type, which the reward reads ([`RewardInput`]).
pub use crate::generation::FinishReason;
pub use combinators::{Clipped, FormatBonus, GateOnStop, Plus, Scaled, Sum};

/// Everything a reward may look at for one completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewardInput<'a> {
    /// The rendered prompt (template included), as fed to the model.
    pub prompt: &'a str,
    /// The generated text, stop string included (ORZ keeps it).
    pub completion: &'a str,
    /// Why generation ended.
    pub finish_reason: FinishReason,
    /// The task's ground truth as a string (see the module docs for each task's format).
    pub reference: &'a str,
}

impl<'a> RewardInput<'a> {
    /// Bundles the four fields.
    pub fn new(
        prompt: &'a str,
        completion: &'a str,
        finish_reason: FinishReason,
        reference: &'a str,
    ) -> Self {
        RewardInput { prompt, completion, finish_reason, reference }
    }
}

/// Labels that the rewards of this module attach to their outcomes (for metrics).
pub mod label {
    /// The answer is right.
    pub const CORRECT: &str = "correct";
    /// An answer was found but it is wrong.
    pub const WRONG: &str = "wrong";
    /// No answer could be extracted.
    pub const NO_ANSWER: &str = "no_answer";
    /// The completion hit the length limit, so the gate gave 0.
    pub const TRUNCATED: &str = "truncated";
    /// The reference could not be read.
    pub const BAD_REFERENCE: &str = "bad_reference";
    /// Countdown: the numbers used are not exactly the given multiset.
    pub const NUMBERS_MISMATCH: &str = "numbers_mismatch";
    /// Countdown: the equation has a character outside digits, `+-*/().` and whitespace.
    pub const INVALID_CHARS: &str = "invalid_chars";
    /// Countdown: the equation does not parse or evaluate (syntax, `**`, division by zero, overflow).
    pub const EVAL_ERROR: &str = "eval_error";
    /// Format reward: the completion has the expected layout.
    pub const FORMAT_OK: &str = "format_ok";
    /// Format reward: the completion lacks the expected layout.
    pub const FORMAT_BAD: &str = "format_bad";
    /// A sum with no terms.
    pub const EMPTY_SUM: &str = "empty_sum";
}

/// A score with a short label saying why (one of [`label`]'s constants for built-in rewards).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RewardOutcome {
    /// The scalar reward.
    pub score: f64,
    /// Why, for metrics (e.g. `"correct"`, `"truncated"`).
    pub label: &'static str,
}

impl RewardOutcome {
    /// An outcome from a score and a label.
    pub fn new(score: f64, label: &'static str) -> Self {
        RewardOutcome { score, label }
    }
}

/// A reward function over one completion. Object safe: use it as `Box<dyn Reward>`
/// (or [`BoxedReward`] to share it across threads). Implementations return finite scores and
/// never panic.
pub trait Reward {
    /// Scores one completion.
    fn score(&self, input: &RewardInput<'_>) -> RewardOutcome;

    /// A short human-readable name, e.g. `"gate_on_stop(answer_correct)"`.
    fn name(&self) -> &str;

    /// This reward where the completion stopped (`stop`), 0 where it was truncated (`length`).
    fn gate_on_stop(self) -> GateOnStop<Self>
    where
        Self: Sized,
    {
        GateOnStop::new(self)
    }

    /// The sum of this reward and `other` (the outcome keeps this reward's label).
    fn plus<R: Reward>(self, other: R) -> Plus<Self, R>
    where
        Self: Sized,
    {
        Plus::new(self, other)
    }

    /// This reward times `factor`; an error if `factor` is not finite.
    fn scaled(self, factor: f64) -> Result<Scaled<Self>>
    where
        Self: Sized,
    {
        Scaled::new(self, factor)
    }

    /// This reward clamped to `[lo, hi]`; an error unless both are finite and `lo <= hi`.
    fn clipped(self, lo: f64, hi: f64) -> Result<Clipped<Self>>
    where
        Self: Sized,
    {
        Clipped::new(self, lo, hi)
    }

    /// This reward plus `bonus` where `predicate` holds; an error if `bonus` is not finite.
    fn with_format_bonus<P>(
        self,
        bonus: f64,
        predicate_name: &str,
        predicate: P,
    ) -> Result<FormatBonus<Self, P>>
    where
        Self: Sized,
        P: Fn(&RewardInput<'_>) -> bool,
    {
        FormatBonus::new(self, bonus, predicate_name, predicate)
    }

    /// This reward behind a thread-safe box, for heterogeneous collections such as [`Sum`].
    fn boxed(self) -> BoxedReward
    where
        Self: Sized + Send + Sync + 'static,
    {
        Box::new(self)
    }
}

/// A boxed, thread-safe reward.
pub type BoxedReward = Box<dyn Reward + Send + Sync>;

impl<R: Reward + ?Sized> Reward for Box<R> {
    fn score(&self, input: &RewardInput<'_>) -> RewardOutcome {
        (**self).score(input)
    }

    fn name(&self) -> &str {
        (**self).name()
    }
}

impl<R: Reward + ?Sized> Reward for &R {
    fn score(&self, input: &RewardInput<'_>) -> RewardOutcome {
        (**self).score(input)
    }

    fn name(&self) -> &str {
        (**self).name()
    }
}

/// True if a completion must be dropped before training: ORZ removes completions whose text is
/// empty (recipe step 4; `if len(response) > 0` in ORZ's `custom_reward_fn`). Whitespace-only
/// text is not empty and is kept, as in ORZ.
pub fn is_droppable(completion: &str) -> bool {
    completion.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn finish_reason_displays_and_parses() {
        assert_eq!(FinishReason::Stop.to_string(), "stop");
        assert_eq!(FinishReason::Length.to_string(), "length");
        assert_eq!("stop".parse::<FinishReason>(), Ok(FinishReason::Stop));
        assert_eq!("length".parse::<FinishReason>(), Ok(FinishReason::Length));
        assert!("Stop".parse::<FinishReason>().is_err());
        assert!("".parse::<FinishReason>().is_err());
    }

    #[test]
    fn only_empty_completions_are_dropped() {
        assert!(is_droppable(""));
        assert!(!is_droppable(" "));
        assert!(!is_droppable("</answer>"));
    }

    #[test]
    fn rewards_are_object_safe() {
        let rewards: alloc::vec::Vec<BoxedReward> =
            alloc::vec![orz_math::AnswerCorrect.boxed(), orz_math::orz_math().boxed()];
        let input = RewardInput::new("", "", FinishReason::Stop, "1");
        for r in &rewards {
            assert_eq!(r.score(&input).score, 0.0);
            assert!(!r.name().is_empty());
        }
        let by_ref: &dyn Reward = &orz_math::AnswerCorrect;
        assert_eq!(by_ref.name(), "answer_correct");
    }
}
