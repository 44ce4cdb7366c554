//! The tiny task: sums of three or four digits, worked step by step, graded by ORZ's checker.
//!
//! A question is `7+5+8`, its answer `20`. A worked solution adds left to right,
//! `7+5=12, 12+8=20`, then closes the thought and boxes the answer:
//! ` 7+5=12, 12+8=20 </think> <answer>\boxed{20}</answer>` (see [`solution`]). The question
//! space (9³ + 9⁴ = 7,290 questions) is split by a hash of the question: one question in ten
//! belongs to the held-out eval set ([`eval_problems`]), never to training ([`problems`]).

use orz_core::rng::Rng;

use crate::data::Problem;

/// The seed of the held-out eval set ([`eval_problems`]).
pub const EVAL_SEED: u64 = 0x5eed_e7a1;

/// The operands of a question: 3 or 4 digits from 1 to 9.
fn draw_terms(rng: &mut Rng) -> Vec<u32> {
    let n = 3 + rng.below(2) as usize;
    (0..n).map(|_| 1 + rng.below(9) as u32).collect()
}

/// The question text of `terms`: `7+5+8`.
pub fn question(terms: &[u32]) -> String {
    terms.iter().map(u32::to_string).collect::<Vec<_>>().join("+")
}

/// Whether a question belongs to the held-out eval split (FNV-1a hash, one in ten).
pub fn is_held_out(question: &str) -> bool {
    let hash = question
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, byte| (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    hash % 10 == 0
}

/// `n` problems drawn with `seed`, from the split `held_out` selects.
fn draw(seed: u64, n: usize, held_out: bool) -> Vec<Problem> {
    let mut rng = Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let terms = draw_terms(&mut rng);
        let q = question(&terms);
        if is_held_out(&q) == held_out {
            let answer = terms.iter().sum::<u32>().to_string();
            out.push(Problem { question: q, answer });
        }
    }
    out
}

/// `n` training problems drawn with `seed` (deterministic; never a held-out question).
pub fn problems(seed: u64, n: usize) -> Vec<Problem> {
    draw(seed, n, false)
}

/// `n` held-out eval problems (seed [`EVAL_SEED`]; disjoint from every [`problems`] set).
pub fn eval_problems(n: usize) -> Vec<Problem> {
    draw(EVAL_SEED, n, true)
}

/// The operands of a question written by [`question`]; `None` for any other text.
pub fn terms_of(question: &str) -> Option<Vec<u32>> {
    question.split('+').map(|t| t.parse::<u32>().ok()).collect()
}

/// How a demonstration of [`demonstration`] goes wrong; each kind is drawn independently.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Noise {
    /// Probability that one addition's result is off by 1 to 3 (later steps carry the error).
    pub slip: f64,
    /// Probability that the boxed answer differs from the last step's result by 1 to 3.
    pub wrong_final: f64,
    /// Probability that the answer tag is never closed (the text ends after `\boxed{..}`).
    pub unclosed: f64,
}

impl Noise {
    /// The noise of the tiny base model's pretraining data.
    pub const BASE: Noise = Noise { slip: 0.2, wrong_final: 0.1, unclosed: 0.3 };
    /// No noise: every demonstration is a correct, well-formed solution.
    pub const NONE: Noise = Noise { slip: 0.0, wrong_final: 0.0, unclosed: 0.0 };
}

/// `value` moved by 1 to 3 up or down, staying positive.
fn perturb(value: u32, rng: &mut Rng) -> u32 {
    let delta = 1 + rng.below(3) as u32;
    if rng.uniform() < 0.5 && value > delta { value - delta } else { value + delta }
}

/// The correct, well-formed response to `terms` (what follows `Assistant: <think>`).
pub fn solution(terms: &[u32]) -> String {
    demonstration_with(terms, Noise::NONE, &mut Rng::seed_from_u64(0))
}

/// A pretraining demonstration for `terms`: the worked steps and the boxed answer, with the
/// mistakes of `noise` drawn from `rng` (the pretraining loop appends the end-of-text token).
pub fn demonstration(terms: &[u32], noise: Noise, rng: &mut Rng) -> String {
    demonstration_with(terms, noise, rng)
}

fn demonstration_with(terms: &[u32], noise: Noise, rng: &mut Rng) -> String {
    let mut steps = Vec::new();
    let mut acc = terms.first().copied().unwrap_or(0);
    for &t in terms.iter().skip(1) {
        let mut sum = acc + t;
        if rng.uniform() < noise.slip {
            sum = perturb(sum, rng);
        }
        steps.push(format!("{acc}+{t}={sum}"));
        acc = sum;
    }
    let boxed = if rng.uniform() < noise.wrong_final { perturb(acc, rng) } else { acc };
    let close = if rng.uniform() < noise.unclosed { "" } else { "</answer>" };
    format!(" {} </think> <answer>\\boxed{{{boxed}}}{close}", steps.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use orz_core::reward::FinishReason;
    use orz_core::reward::orz_math::orz_math_score;

    #[test]
    fn problems_are_seeded_and_sums_are_right() {
        let a = problems(1, 50);
        assert_eq!(a, problems(1, 50));
        assert_ne!(a, problems(2, 50));
        for p in &a {
            let terms = terms_of(&p.question).unwrap();
            assert!((3..=4).contains(&terms.len()) && terms.iter().all(|t| (1..=9).contains(t)));
            assert_eq!(p.answer, terms.iter().sum::<u32>().to_string());
        }
    }

    #[test]
    fn eval_set_is_held_out() {
        let eval = eval_problems(200);
        assert!(eval.iter().all(|p| is_held_out(&p.question)));
        let train = problems(3, 2000);
        assert!(train.iter().all(|p| !is_held_out(&p.question)));
        let held = eval.iter().map(|p| &p.question).collect::<std::collections::BTreeSet<_>>();
        assert!(train.iter().all(|p| !held.contains(&p.question)));
        // About one question in ten of the whole space (9^3 + 9^4) is held out.
        let digits = 1..=9u32;
        let mut space: Vec<String> = Vec::new();
        for a in digits.clone() {
            for b in digits.clone() {
                for c in digits.clone() {
                    space.push(question(&[a, b, c]));
                    space.extend(digits.clone().map(|d| question(&[a, b, c, d])));
                }
            }
        }
        let held = space.iter().filter(|q| is_held_out(q)).count() as f64 / space.len() as f64;
        assert!((0.08..0.12).contains(&held), "{held}");
    }

    #[test]
    fn the_checker_grades_solutions_and_rejects_broken_ones() {
        let terms = [7, 5, 8];
        let good = solution(&terms);
        assert_eq!(good, " 7+5=12, 12+8=20 </think> <answer>\\boxed{20}</answer>");
        assert_eq!(orz_math_score(&good, FinishReason::Stop, "20"), 1.0);
        assert_eq!(orz_math_score(&good, FinishReason::Length, "20"), 0.0);
        let unclosed = good.trim_end_matches("</answer>");
        assert_eq!(orz_math_score(unclosed, FinishReason::Stop, "20"), 0.0);
        assert_eq!(orz_math_score(&good.replace("{20}", "{21}"), FinishReason::Stop, "20"), 0.0);
    }

    #[test]
    fn noisy_demonstrations_have_the_configured_error_rates() {
        let mut rng = Rng::seed_from_u64(9);
        let n = 4000;
        let (mut correct, mut unclosed) = (0, 0);
        for p in problems(4, n) {
            let terms = terms_of(&p.question).unwrap();
            let d = demonstration(&terms, Noise::BASE, &mut rng);
            assert!(d.starts_with(' ') && d.contains("</think> <answer>\\boxed{"), "{d}");
            unclosed += usize::from(!d.ends_with("</answer>"));
            correct += usize::from(orz_math_score(&d, FinishReason::Stop, &p.answer) == 1.0);
        }
        let unclosed = unclosed as f64 / n as f64;
        assert!((unclosed - Noise::BASE.unclosed).abs() < 0.03, "{unclosed}");
        // 3 or 4 terms: 2 or 3 steps each slipping with 0.2, a wrong final 0.1, unclosed 0.3.
        let expected = 0.5 * (0.8f64.powi(2) + 0.8f64.powi(3)) * 0.9 * 0.7;
        let correct = correct as f64 / n as f64;
        assert!((correct - expected).abs() < 0.03, "{correct} vs {expected}");
    }
}
