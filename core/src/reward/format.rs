//! A format reward (**option**: ORZ uses no format reward): 1.0 when the completion follows
//! the template's layout `<think> reasoning </think> <answer> answer </answer>`, else 0.0.
//!
//! The ORZ prompt ends with `Assistant: <think>`, so a completion normally reads
//! `reasoning </think> <answer> answer </answer>` (generation stops on `</answer>`, which stays
//! in the text). The layout holds ([`has_think_answer_format`]) when:
//!
//! - the `<think>` opener is either the end of the prompt (ignoring trailing whitespace) or in
//!   the completion before the first `</think>`;
//! - the completion has a `</think>`, and no `<answer>` before it;
//! - after the first `</think>` comes, past whitespace, `<answer>`, then a `</answer>`, then
//!   nothing but whitespace.
//!
//! The answer's content is not checked. Use it alone ([`ThinkAnswerFormat`]) or as a bonus on
//! another reward: `orz_math().with_format_bonus(0.1, "think_answer", is_think_answer_format)`.

use super::{Reward, RewardInput, RewardOutcome, label};

const THINK_OPEN: &str = "<think>";
const THINK_CLOSE: &str = "</think>";
const ANSWER_OPEN: &str = "<answer>";
const ANSWER_CLOSE: &str = "</answer>";

/// True if `prompt` + `completion` has the `<think> ... </think> <answer> ... </answer>` layout
/// described in the module docs.
pub fn has_think_answer_format(prompt: &str, completion: &str) -> bool {
    let Some((reasoning, rest)) = completion.split_once(THINK_CLOSE) else {
        return false;
    };
    let opened = prompt.trim_end().ends_with(THINK_OPEN) || reasoning.contains(THINK_OPEN);
    if !opened || reasoning.contains(ANSWER_OPEN) {
        return false;
    }
    let Some(answer) = rest.trim_start().strip_prefix(ANSWER_OPEN) else {
        return false;
    };
    match answer.split_once(ANSWER_CLOSE) {
        Some((_, tail)) => tail.trim().is_empty(),
        None => false,
    }
}

/// [`has_think_answer_format`] on a [`RewardInput`], usable as a
/// [`super::Reward::with_format_bonus`] predicate.
pub fn is_think_answer_format(input: &RewardInput<'_>) -> bool {
    has_think_answer_format(input.prompt, input.completion)
}

/// 1.0 labelled [`label::FORMAT_OK`] when [`has_think_answer_format`] holds, else 0.0 labelled
/// [`label::FORMAT_BAD`]. Ignores the finish reason (gate it if needed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThinkAnswerFormat;

impl Reward for ThinkAnswerFormat {
    fn score(&self, input: &RewardInput<'_>) -> RewardOutcome {
        if is_think_answer_format(input) {
            RewardOutcome::new(1.0, label::FORMAT_OK)
        } else {
            RewardOutcome::new(0.0, label::FORMAT_BAD)
        }
    }

    fn name(&self) -> &str {
        "think_answer_format"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::FinishReason;
    use proptest::prelude::*;

    const PROMPT: &str = "User: Q\nAssistant: <think>";

    #[test]
    fn accepts_the_template_layout() {
        assert!(has_think_answer_format(PROMPT, " add them </think> <answer> \\boxed{3} </answer>"));
        assert!(has_think_answer_format(PROMPT, "x</think>\n\n<answer>3</answer>\n"));
        assert!(has_think_answer_format("no opener", "<think> x </think> <answer>3</answer>"));
        assert!(has_think_answer_format("Assistant: <think> \n", "x </think><answer></answer>"));
    }

    #[test]
    fn rejects_other_layouts() {
        for c in [
            "",
            "no tags at all",
            "<answer>3</answer>",
            "x </think>",
            "x </think> <answer>3",
            "x </think> text <answer>3</answer>",
            "<answer>1</answer> </think> <answer>3</answer>",
            "x </think> <answer>3</answer> trailing words",
        ] {
            assert!(!has_think_answer_format(PROMPT, c), "{c:?}");
        }
        assert!(!has_think_answer_format("no opener", "x </think> <answer>3</answer>"));
    }

    #[test]
    fn reward_and_bonus() {
        let ok = RewardInput::new(PROMPT, "x </think> <answer>3</answer>", FinishReason::Length, "");
        let bad = RewardInput::new(PROMPT, "x", FinishReason::Stop, "");
        assert_eq!(ThinkAnswerFormat.score(&ok), RewardOutcome::new(1.0, label::FORMAT_OK));
        assert_eq!(ThinkAnswerFormat.score(&bad), RewardOutcome::new(0.0, label::FORMAT_BAD));
        let r = crate::reward::orz_math::orz_math()
            .with_format_bonus(0.1, "think_answer", is_think_answer_format)
            .unwrap();
        assert_eq!(r.name(), "gate_on_stop(answer_correct) + 0.1 * [think_answer]");
        assert_eq!(r.score(&ok).score, 0.1);
        assert_eq!(r.score(&bad).score, 0.0);
    }

    proptest! {
        #[test]
        fn never_panics(prompt in ".{0,40}", completion in "(<think>|</think>|<answer>|</answer>|.){0,40}") {
            let _ = has_think_answer_format(&prompt, &completion);
        }
    }
}
