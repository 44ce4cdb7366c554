//! Tests of the Countdown reward.

use super::*;
use crate::reward::FinishReason;
use alloc::format;
use alloc::string::ToString;
use alloc::vec;
use proptest::prelude::*;

/// TinyZero's base prompt ends like this (no newline after `<think>`).
const PROMPT: &str = "A conversation between User and Assistant. ... User: Using the numbers [3, 4, 5, 6], \
    create an equation that equals 24. ... for example <answer> (1 + 2) / 3 </answer>.\n\
    Assistant: Let me solve this step by step.\n<think>";
const REF_24: &str = "target=24;numbers=3,4,5,6";

fn score_with(reward: Countdown, completion: &str, reference: &str) -> RewardOutcome {
    reward.score(&RewardInput::new(PROMPT, completion, FinishReason::Stop, reference))
}

fn score(completion: &str, reference: &str) -> RewardOutcome {
    score_with(Countdown::new(), completion, reference)
}

fn answer(eq: &str) -> String {
    format!(" (3+5-4)*6 = 24 works. </think>\n<answer>{eq}</answer>")
}

fn correct() -> RewardOutcome {
    RewardOutcome::new(CORRECT_SCORE, label::CORRECT)
}

fn format_only(why: &'static str) -> RewardOutcome {
    RewardOutcome::new(FORMAT_SCORE, why)
}

#[test]
fn problems_round_trip_and_validate() {
    let p = CountdownProblem::parse(REF_24).unwrap();
    assert_eq!((p.target(), p.numbers()), (24, &[3u64, 4, 5, 6][..]));
    assert_eq!(p.to_string(), REF_24);
    assert_eq!(" numbers = 3, 4 ,5,6 ; target = 24 ;".parse::<CountdownProblem>(), Ok(p));
    assert_eq!(CountdownProblem::parse("target=-7;numbers=1").unwrap().target(), -7);
    for bad in [
        "",
        "target=24",
        "numbers=1,2",
        "target=24;numbers=",
        "target=24;numbers=1,,2",
        "target=24;numbers=-1,2",
        "target=x;numbers=1",
        "target=24;target=25;numbers=1",
        "target=24;numbers=1;colour=red",
        "target 24;numbers=1",
    ] {
        assert!(CountdownProblem::parse(bad).is_err(), "{bad:?}");
    }
    assert!(CountdownProblem::new(1, vec![]).is_err());
    assert!(CountdownProblem::new(1, vec![1; MAX_NUMBERS + 1]).is_err());
}

#[test]
fn correct_equations_score_one() {
    // Each checked by hand.
    assert_eq!(score(&answer("(3+5-4)*6"), REF_24), correct()); // 4 * 6
    assert_eq!(score(&answer(" ( 3 + 5 - 4 ) * 6 "), REF_24), correct());
    assert_eq!(score(&answer("6*(5+3-4)"), REF_24), correct());
    assert_eq!(score(&answer("1+2+3+4"), "target=10;numbers=4,3,2,1"), correct());
    assert_eq!(score(&answer("44 + 19 + 35"), "target=98;numbers=44,19,35"), correct());
    assert_eq!(score(&answer("8/(3-8/3)"), "target=24;numbers=8,3,3,8"), correct()); // 8 / (1/3)
    assert_eq!(score(&answer("(95-83)*7-1"), "target=83;numbers=95,83,7,1"), correct()); // 84 - 1
}

#[test]
fn python_leniencies_that_tinyzero_rewards() {
    // Unary minus: `\d+` counts `-3` as 3, and eval accepts it.
    assert_eq!(score(&answer("-3+9"), "target=6;numbers=3,9"), correct());
    // A decimal literal uses its digit runs: `1.5` uses 1 and 5.
    assert_eq!(score(&answer("1.5*2"), "target=3;numbers=1,5,2"), correct());
    // Leading zeros of a decimal literal are fine for both checks.
    assert_eq!(score(&answer("05.0*2"), "target=10;numbers=5,0,2"), correct());
}

#[test]
fn wrong_or_misused_numbers_score_point_one() {
    let mismatch = format_only(label::NUMBERS_MISMATCH);
    assert_eq!(score(&answer("3+4+5+6"), REF_24), format_only(label::WRONG)); // 18
    assert_eq!(score(&answer("6*4*(6-5)"), REF_24), mismatch); // 6 twice, no 3
    assert_eq!(score(&answer("4*6"), REF_24), mismatch); // 3 and 5 missing
    assert_eq!(score(&answer("(3+5-4)*6*1"), REF_24), mismatch); // an extra 1
    assert_eq!(score(&answer("(3+5-4)*6*00"), REF_24), mismatch); // an extra 0
    assert_eq!(score(&answer(""), REF_24), mismatch); // empty answer: found, but no numbers
    assert_eq!(score(&answer("24"), REF_24), mismatch);
}

#[test]
fn refused_syntax_scores_point_one() {
    let eval_error = format_only(label::EVAL_ERROR);
    // Python would compute these; the recipe allows + - * / only.
    assert_eq!(score(&answer("2**3"), "target=8;numbers=2,3"), eval_error);
    assert_eq!(score(&answer("7//2"), "target=3;numbers=7,2"), eval_error);
    // Letters and code.
    assert_eq!(score(&answer("import os"), REF_24), format_only(label::NUMBERS_MISMATCH));
    assert_eq!(score(&answer("(3+5-4)*6 x"), REF_24), format_only(label::INVALID_CHARS));
    let code = "__import__('os').system('rm -rf /') or (3+5-4)*6";
    assert_eq!(score(&answer(code), REF_24), format_only(label::INVALID_CHARS));
    assert_eq!(score(&answer("(3+5−4)*6"), REF_24), format_only(label::INVALID_CHARS)); // U+2212
}

#[test]
fn hostile_equations_score_point_one_without_panicking() {
    let eval_error = format_only(label::EVAL_ERROR);
    assert_eq!(score(&answer("5/(3-3)+6"), "target=6;numbers=5,3,3,6"), eval_error);
    assert_eq!(score(&answer("((3+5-4)*6"), REF_24), eval_error);
    assert_eq!(score(&answer("(3+5-4))*6"), REF_24), eval_error);
    let deep = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
    assert_eq!(score(&answer(&deep), "target=1;numbers=1"), eval_error);
    let open_only = "(".repeat(100_000);
    assert_eq!(score(&answer(&format!("{open_only}1")), "target=1;numbers=1"), eval_error);
    // 10^19 fits the problem's u64 numbers; their product overflows i128.
    let big = format!("1{}", "0".repeat(19));
    let reference = format!("target=1;numbers={big},{big},{big}");
    assert_eq!(score(&answer(&format!("{big}*{big}*{big}")), &reference), eval_error);
    // 10^40 cannot even be one of the numbers.
    let huge = format!("1{}", "0".repeat(40));
    let r = score(&answer(&format!("{huge}*{huge}")), REF_24);
    assert_eq!(r, format_only(label::NUMBERS_MISMATCH));
}

#[test]
fn megabyte_inputs_are_bounded() {
    #[cfg(feature = "std")]
    let start = std::time::Instant::now();
    let mb = 1 << 20;
    let filler = "x".repeat(mb);
    assert_eq!(score(&format!("{filler}<answer>(3+5-4)*6</answer>"), REF_24), correct());
    assert_eq!(score(&"<answer>".repeat(mb / 8), REF_24), RewardOutcome::new(0.0, label::NO_ANSWER));
    let pairs = "<answer></answer>".repeat(mb / 17);
    assert_eq!(score(&pairs, REF_24), format_only(label::NUMBERS_MISMATCH));
    let many = format!("<answer>{}1</answer>", "1+".repeat(mb / 2));
    assert_eq!(score(&many, "target=3;numbers=1,1,1"), format_only(label::NUMBERS_MISMATCH));
    let padded = format!("<answer>(3+5-4)*6{}</answer>", " +0*0".repeat(mb / 5));
    assert_eq!(score(&padded, REF_24), format_only(label::NUMBERS_MISMATCH));
    let spaces = format!("<answer>(3+5-4){}*6</answer>", " ".repeat(mb));
    assert_eq!(score(&spaces, REF_24), format_only(label::EVAL_ERROR)); // longer than MAX_EXPR_LEN
    #[cfg(feature = "std")]
    assert!(start.elapsed().as_secs_f64() < 10.0, "took {:?}", start.elapsed());
}

#[test]
fn tinyzero_extraction_takes_the_last_line_and_last_match() {
    // The answer is not on the last line: TinyZero scores 0 (the recipe's "last line").
    let c = " 4*6=24 </think>\n<answer>(3+5-4)*6</answer>\nDone.";
    assert_eq!(score(c, REF_24), RewardOutcome::new(0.0, label::NO_ANSWER));
    assert_eq!(score_with(Countdown::with_scope(AnswerScope::Completion), c, REF_24), correct());
    // Several blocks on the last line: the last one counts.
    assert_eq!(score(" </think> <answer>3+4+5+6</answer> <answer>(3+5-4)*6</answer>", REF_24), correct());
    assert_eq!(score(" </think> <answer>(3+5-4)*6</answer> <answer>3+4+5+6</answer>", REF_24).score, 0.1);
    // No newline in the completion: the prompt's last line (`<think>`) joins it.
    assert_eq!(score("<answer>(3+5-4)*6</answer>", REF_24), correct());
    // An answer split over lines is not found by TinyZero's `.` (no DOTALL).
    assert_eq!(score("<answer>(3+5-4)\n*6</answer>", REF_24).score, 0.0);
    // The prompt's own example answer is before `Assistant:` and never counts.
    assert_eq!(score(" thinking", REF_24), RewardOutcome::new(0.0, label::NO_ANSWER));
    // Unclosed blocks.
    assert_eq!(score("<answer>(3+5-4)*6", REF_24).score, 0.0);
    // Leftmost match: the content is `<answer>(3+5-4)*6`, right numbers but a bad character.
    assert_eq!(score("<answer><answer>(3+5-4)*6</answer>", REF_24), format_only(label::INVALID_CHARS));
}

#[test]
fn tinyzero_needs_an_assistant_marker() {
    let c = "<answer>(3+5-4)*6</answer>";
    let no_marker = RewardInput::new("Q: make 24", c, FinishReason::Stop, REF_24);
    assert_eq!(Countdown::new().score(&no_marker).score, 0.0);
    assert_eq!(Countdown::with_scope(AnswerScope::Completion).score(&no_marker), correct());
    let chat = RewardInput::new(
        "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n",
        c,
        FinishReason::Stop,
        REF_24,
    );
    assert_eq!(Countdown::new().score(&chat), correct());
    // The marker may also come from the completion.
    let late = RewardInput::new("Q", "Assistant: <answer>(3+5-4)*6</answer>", FinishReason::Stop, REF_24);
    assert_eq!(Countdown::new().score(&late), correct());
}

#[test]
fn finish_reason_is_ignored_unless_gated() {
    let c = answer("(3+5-4)*6");
    let truncated = RewardInput::new(PROMPT, &c, FinishReason::Length, REF_24);
    assert_eq!(Countdown::new().score(&truncated), correct());
    assert_eq!(Countdown::new().gate_on_stop().score(&truncated).score, 0.0);
}

#[test]
fn bad_reference_scores_zero() {
    assert_eq!(score(&answer("(3+5-4)*6"), "24"), RewardOutcome::new(0.0, label::BAD_REFERENCE));
    assert_eq!(Countdown::new().name(), "countdown");
}

#[test]
fn tolerance_is_tinyzero_1e_5_decided_exactly() {
    let q = |n, d| Rational::new(n, d).unwrap();
    assert!(hits_target(q(24, 1), 24));
    assert!(hits_target(q(24 * 200_000 + 1, 200_000), 24)); // 24 + 5e-6
    assert!(!hits_target(q(24 * 100_000 + 1, 100_000), 24)); // 24 + 1e-5: strict
    assert!(!hits_target(q(24 * 100_000 - 1, 100_000), 24));
    assert!(hits_target(q(-7, 1), -7));
    let huge_den = q(1, i128::MAX / 3);
    assert!(hits_target(huge_den, 0));
    assert!(hits_target(Rational::new(i128::MAX / 3 + 1, i128::MAX / 3).unwrap(), 1));
    assert!(!hits_target(huge_den, i64::MAX)); // the exact difference overflows: f64 path
}

#[test]
fn numbers_check_is_tinyzeros() {
    assert!(uses_exactly("(3+5-4)*6", &[6, 5, 4, 3]));
    assert!(uses_exactly("-3 + 9", &[3, 9]));
    assert!(uses_exactly("007 + 1", &[7, 1]));
    assert!(!uses_exactly("3+3", &[3]));
    assert!(!uses_exactly("", &[3]));
    assert!(!uses_exactly("99999999999999999999999", &[1]));
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_completions(c in any::<String>(), p in any::<String>()) {
        let o = Countdown::new().score(&RewardInput::new(&p, &c, FinishReason::Stop, REF_24));
        prop_assert!(o.score == 0.0 || o.score == FORMAT_SCORE || o.score == CORRECT_SCORE);
    }

    #[test]
    fn never_panics_on_answer_soup(eq in "[0-9+\\-*/(). a-z<>]{0,200}", scope_all: bool) {
        let scope = if scope_all { AnswerScope::Completion } else { AnswerScope::TinyZeroLastLine };
        let o = score_with(Countdown::with_scope(scope), &format!("<answer>{eq}</answer>"), REF_24);
        prop_assert!(o.score == FORMAT_SCORE || o.score == CORRECT_SCORE);
    }

    #[test]
    fn hostile_soup_is_bounded(parts in proptest::collection::vec(
        "\\(|\\)|<answer>|</answer>|\n|Assistant:|\\+|-|\\*|/|\\*\\*| |[0-9]{1,45}",
        0..3000,
    )) {
        let completion = parts.concat();
        #[cfg(feature = "std")]
        let start = std::time::Instant::now();
        for scope in [AnswerScope::TinyZeroLastLine, AnswerScope::Completion] {
            let o = score_with(Countdown::with_scope(scope), &completion, REF_24);
            prop_assert!(o.score == 0.0 || o.score == FORMAT_SCORE || o.score == CORRECT_SCORE);
        }
        #[cfg(feature = "std")]
        prop_assert!(start.elapsed().as_secs_f64() < 1.0, "took {:?}", start.elapsed());
    }

    #[test]
    fn never_panics_on_arbitrary_references(r in any::<String>()) {
        let _ = Countdown::new().score(&RewardInput::new(PROMPT, "<answer>1</answer>", FinishReason::Stop, &r));
    }

    #[test]
    fn permuting_a_correct_sum_stays_correct(nums in proptest::collection::vec(1u64..100, 1..6)) {
        let eq = nums.iter().map(u64::to_string).collect::<alloc::vec::Vec<_>>().join(" + ");
        let target: u64 = nums.iter().sum();
        let mut shuffled = nums.clone();
        shuffled.reverse();
        let reference = CountdownProblem::new(i64::try_from(target).unwrap(), shuffled).unwrap().to_string();
        prop_assert_eq!(score(&answer(&eq), &reference), correct());
    }
}
