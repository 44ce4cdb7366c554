//! The ORZ math reward (recipe step 4): 1.0 if the completion finished with `stop` **and** its
//! answer is equivalent to the reference, else 0.0. No format reward, no length penalty.
//!
//! Built from the algebra as [`AnswerCorrect`] gated on `stop` ([`orz_math`]); the direct
//! formula [`orz_math_score`] is the recipe written out, and the tests check that both agree.

use super::{FinishReason, GateOnStop, Reward, RewardInput, RewardOutcome, label};
use crate::checker;

/// 1.0 if the extracted answer of the completion is equivalent to the extracted reference
/// ([`checker::extract_answer`], [`checker::extract_reference`], [`checker::is_equivalent`]),
/// whatever the finish reason; labels [`label::CORRECT`], [`label::WRONG`] or
/// [`label::NO_ANSWER`] (nothing extracted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnswerCorrect;

impl Reward for AnswerCorrect {
    fn score(&self, input: &RewardInput<'_>) -> RewardOutcome {
        let prediction = checker::extract_answer(input.completion);
        if prediction.is_empty() {
            return RewardOutcome::new(0.0, label::NO_ANSWER);
        }
        if checker::is_equivalent(&prediction, &checker::extract_reference(input.reference)) {
            RewardOutcome::new(1.0, label::CORRECT)
        } else {
            RewardOutcome::new(0.0, label::WRONG)
        }
    }

    fn name(&self) -> &str {
        "answer_correct"
    }
}

/// The ORZ math reward: [`AnswerCorrect`] gated on the `stop` finish reason.
pub type OrzMath = GateOnStop<AnswerCorrect>;

/// The ORZ math reward ([`OrzMath`]).
pub fn orz_math() -> OrzMath {
    AnswerCorrect.gate_on_stop()
}

/// The recipe's formula, written out: `1.0` iff `finish_reason == stop` and
/// `is_equivalent(extract_answer(completion), extract_reference(reference))`.
pub fn orz_math_score(completion: &str, finish_reason: FinishReason, reference: &str) -> f64 {
    let correct = finish_reason == FinishReason::Stop
        && checker::is_equivalent(
            &checker::extract_answer(completion),
            &checker::extract_reference(reference),
        );
    if correct { 1.0 } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PROMPT: &str = "... Assistant: <think>";

    fn score(completion: &str, fr: FinishReason, reference: &str) -> RewardOutcome {
        orz_math().score(&RewardInput::new(PROMPT, completion, fr, reference))
    }

    fn assert_matches_recipe(completion: &str, reference: &str) {
        for fr in [FinishReason::Stop, FinishReason::Length] {
            assert_eq!(
                score(completion, fr, reference).score,
                orz_math_score(completion, fr, reference),
                "{completion:?} vs {reference:?} ({fr})"
            );
        }
    }

    #[test]
    fn name_says_what_it_is() {
        assert_eq!(orz_math().name(), "gate_on_stop(answer_correct)");
    }

    // Depends on the real checker (the placeholder extracts nothing).
    #[test]
    fn right_answer_that_stopped_scores_one() {
        let c = "I add. </think> <answer>\\boxed{42}</answer>";
        assert_eq!(score(c, FinishReason::Stop, "42"), RewardOutcome::new(1.0, label::CORRECT));
        assert_eq!(score(c, FinishReason::Stop, "\\boxed{42}").score, 1.0);
        assert_matches_recipe(c, "42");
    }

    // Depends on the real checker (extraction and stage-1 normalization of `0.5`).
    #[test]
    fn equivalent_forms_score_one() {
        let c = "</think> <answer>The answer is \\boxed{\\frac{1}{2}}.</answer>";
        assert_eq!(score(c, FinishReason::Stop, "0.5").score, 1.0);
        assert_eq!(score(c, FinishReason::Stop, "\\boxed{\\dfrac12}").score, 1.0);
        assert_matches_recipe(c, "0.5");
    }

    #[test]
    fn truncated_scores_zero_even_when_right() {
        let c = "</think> <answer>\\boxed{42}</answer>";
        assert_eq!(score(c, FinishReason::Length, "42"), RewardOutcome::new(0.0, label::TRUNCATED));
        assert_matches_recipe(c, "42");
    }

    #[test]
    fn wrong_answer_scores_zero() {
        let c = "</think> <answer>\\boxed{41}</answer>";
        assert_eq!(score(c, FinishReason::Stop, "42").score, 0.0);
        assert_matches_recipe(c, "42");
    }

    #[test]
    fn missing_answer_tags_or_box_score_zero() {
        for c in ["\\boxed{42}", "</think> 42", "<answer>42</answer>", "</think> <answer>\\boxed{42}"] {
            let o = score(c, FinishReason::Stop, "42");
            assert_eq!(o, RewardOutcome::new(0.0, label::NO_ANSWER), "{c:?}");
            assert_matches_recipe(c, "42");
        }
    }

    #[test]
    fn empty_completion_and_empty_reference_score_zero() {
        assert_eq!(score("", FinishReason::Stop, "42").score, 0.0);
        assert_eq!(score("", FinishReason::Stop, "").score, 0.0);
        assert_eq!(score("<answer>\\boxed{}</answer>", FinishReason::Stop, "").score, 0.0);
        assert_matches_recipe("", "");
    }

    proptest! {
        #[test]
        fn combinator_equals_recipe_formula(
            think in "[a-z0-9 ]{0,20}",
            ans in "[0-9]{1,3}|\\\\frac\\{[1-9]\\}\\{[1-9]\\}|0\\.5|[a-z]{1,3}",
            reference in "[0-9]{1,3}|0\\.5|\\\\boxed\\{[0-9]{1,2}\\}",
            boxed: bool,
            tagged: bool,
        ) {
            let body = if boxed { alloc::format!("\\boxed{{{ans}}}") } else { ans.clone() };
            let c = if tagged { alloc::format!("{think}</think> <answer>{body}</answer>") } else { body };
            assert_matches_recipe(&c, &reference);
        }
    }
}
