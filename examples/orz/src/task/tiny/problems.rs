//! The tiny task: sums of three or four digits, graded by ORZ's checker, and the three answer
//! forms of the base model's pretraining data.
//!
//! A question is `7+5+8`, its answer `20`. A worked solution adds left to right,
//! `7+5=12, 12+8=20`, then closes the thought and boxes the answer:
//! ` 7+5=12, 12+8=20 </think> <answer>\boxed{20}</answer>`; a checked one redoes each step after
//! `wait,`; a short one boxes a guess at once (see [`Form`], [`Mix`], [`demonstration`]). The
//! question space (9³ + 9⁴ = 7,290 questions) is split by a hash of the question: one question in
//! ten belongs to the held-out eval set ([`eval_problems`]), never to training ([`problems`]).

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

/// The three forms of an answer in the base model's pretraining data (see [`demonstration`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// No steps: a guess boxed at once, ` </think> <answer>\boxed{19}</answer>`.
    Short,
    /// Each partial sum written out: ` 7+5=12, 12+8=20 </think> ...`.
    Worked,
    /// Each partial sum written out, then checked by redoing it: ` 7+5=12, wait, 7+5=12,
    /// 12+8=21, wait, 12+8=20 </think> ...` (the redo is right, so a slip is corrected).
    Checked,
}

/// The mixture of [`Form`]s, and their mistakes, that the tiny base model is pretrained on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    /// Share of [`Form::Short`] answers.
    pub short: f64,
    /// Share of [`Form::Checked`] answers (the rest are [`Form::Worked`]).
    pub checked: f64,
    /// Probability that a step's first result is off by 1 to 3 (a worked answer carries the
    /// error to the end; a checked answer's redo corrects it).
    pub slip: f64,
    /// A short answer boxes the sum moved by a uniform draw from `-guess_spread..=guess_spread`
    /// (it skips the steps, so it guesses; 0: always right).
    pub guess_spread: u32,
}

impl Mix {
    /// The tiny base model's data: 70% short guesses (right 1 time in 7), 15% worked answers
    /// (each step slipping with probability 0.15: right about 2 times in 3), 15% checked
    /// answers (always right).
    pub const BASE: Mix = Mix { short: 0.7, checked: 0.15, slip: 0.15, guess_spread: 3 };
    /// Worked answers only, never wrong.
    pub const CORRECT: Mix = Mix { short: 0.0, checked: 0.0, slip: 0.0, guess_spread: 0 };

    /// Draws the form of one answer.
    pub fn draw_form(&self, rng: &mut Rng) -> Form {
        let u = rng.uniform();
        if u < self.short {
            Form::Short
        } else if u < self.short + self.checked {
            Form::Checked
        } else {
            Form::Worked
        }
    }
}

/// `value` moved by 1 to 3 up or down, staying positive.
fn perturb(value: u32, rng: &mut Rng) -> u32 {
    let delta = 1 + rng.below(3) as u32;
    if rng.uniform() < 0.5 && value > delta { value - delta } else { value + delta }
}

/// The correct response to `terms` in `form` (what follows `Assistant: <think>`); a short
/// answer boxes the right sum.
pub fn solution(terms: &[u32], form: Form) -> String {
    demonstration(terms, form, &Mix::CORRECT, &mut Rng::seed_from_u64(0))
}

/// A pretraining demonstration for `terms` in `form`, with the mistakes of `mix` drawn from
/// `rng` (the pretraining loop appends the end-of-text token).
pub fn demonstration(terms: &[u32], form: Form, mix: &Mix, rng: &mut Rng) -> String {
    let total: u32 = terms.iter().sum();
    let (steps, boxed) = match form {
        Form::Short => {
            let spread = i64::from(mix.guess_spread);
            let delta = rng.below(2 * spread as u64 + 1) as i64 - spread;
            (String::new(), (i64::from(total) + delta).max(0))
        }
        Form::Worked | Form::Checked => {
            let mut steps = Vec::new();
            let mut acc = terms.first().copied().unwrap_or(0);
            for &t in terms.iter().skip(1) {
                let right = acc + t;
                let first = if rng.uniform() < mix.slip { perturb(right, rng) } else { right };
                steps.push(format!("{acc}+{t}={first}"));
                if form == Form::Checked {
                    steps.push(format!("wait, {acc}+{t}={right}"));
                    acc = right;
                } else {
                    acc = first;
                }
            }
            (format!(" {}", steps.join(", ")), i64::from(acc))
        }
    };
    format!("{steps} </think> <answer>\\boxed{{{boxed}}}</answer>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use orz_core::reward::FinishReason;
    use orz_core::reward::orz_math::orz_math_score;
    use orz_core::train::ReflectionCounts;

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
        let worked = solution(&terms, Form::Worked);
        assert_eq!(worked, " 7+5=12, 12+8=20 </think> <answer>\\boxed{20}</answer>");
        let checked = solution(&terms, Form::Checked);
        assert_eq!(
            checked,
            " 7+5=12, wait, 7+5=12, 12+8=20, wait, 12+8=20 </think> <answer>\\boxed{20}</answer>"
        );
        assert_eq!(solution(&terms, Form::Short), " </think> <answer>\\boxed{20}</answer>");
        for good in [&worked, &checked] {
            assert_eq!(orz_math_score(good, FinishReason::Stop, "20"), 1.0);
            assert_eq!(orz_math_score(good, FinishReason::Length, "20"), 0.0);
        }
        let unclosed = worked.trim_end_matches("</answer>");
        assert_eq!(orz_math_score(unclosed, FinishReason::Stop, "20"), 0.0);
        assert_eq!(orz_math_score(&worked.replace("{20}", "{21}"), FinishReason::Stop, "20"), 0.0);
        // The checked form is what ORZ counts as reflection: one `wait,` per step.
        assert_eq!(ReflectionCounts::of(&checked).wait, 2);
        assert_eq!(ReflectionCounts::of(&worked).total(), 0);
    }

    #[test]
    fn a_checked_answer_corrects_its_slips_and_a_worked_one_carries_them() {
        let mut rng = Rng::seed_from_u64(5);
        let slipping = Mix { slip: 1.0, ..Mix::BASE };
        let worked = demonstration(&[7, 5, 8], Form::Worked, &slipping, &mut rng);
        let checked = demonstration(&[7, 5, 8], Form::Checked, &slipping, &mut rng);
        // Every step of the worked answer is wrong; the next step starts from the wrong sum.
        let steps: Vec<&str> = worked.trim_start().split(" </think>").next().unwrap().split(", ").collect();
        assert_eq!(steps.len(), 2, "{worked}");
        for step in &steps {
            let (lhs, sum) = step.split_once('=').unwrap();
            let (a, b) = lhs.split_once('+').unwrap();
            assert_ne!(
                a.parse::<u32>().unwrap() + b.parse::<u32>().unwrap(),
                sum.parse::<u32>().unwrap(),
                "{worked}"
            );
        }
        assert!(steps[1].starts_with(&format!("{}+8=", steps[0].split('=').nth(1).unwrap())), "{worked}");
        assert_eq!(orz_math_score(&checked, FinishReason::Stop, "20"), 1.0, "{checked}");
        assert!(
            checked.contains("wait, 7+5=12, 12+8=") && checked.contains("wait, 12+8=20 </think>"),
            "{checked}"
        );
    }

    /// The share of each form, and the accuracy of each form, of `n` demonstrations of `mix`.
    fn measure(mix: &Mix, n: usize) -> [(f64, f64); 3] {
        let mut rng = Rng::seed_from_u64(9);
        let mut counts = [(0usize, 0usize); 3];
        for p in problems(4, n) {
            let terms = terms_of(&p.question).unwrap();
            let form = mix.draw_form(&mut rng);
            let d = demonstration(&terms, form, mix, &mut rng);
            assert!(d.contains(" </think> <answer>\\boxed{") && d.ends_with("}</answer>"), "{d}");
            let i = form as usize;
            counts[i].0 += 1;
            counts[i].1 += usize::from(orz_math_score(&d, FinishReason::Stop, &p.answer) == 1.0);
        }
        counts.map(|(all, right)| (all as f64 / n as f64, right as f64 / all.max(1) as f64))
    }

    #[test]
    fn the_base_mix_has_its_shares_and_error_rates() {
        let mix = Mix::BASE;
        let [(short, short_acc), (worked, worked_acc), (checked, checked_acc)] = measure(&mix, 6000);
        assert!(
            (short - mix.short).abs() < 0.03 && (checked - mix.checked).abs() < 0.03,
            "{short} {checked}"
        );
        assert!((worked - (1.0 - mix.short - mix.checked)).abs() < 0.03, "{worked}");
        // A guess within ±3: right 1 time in 7. Worked: 2 or 3 steps, none slipping.
        assert!((short_acc - 1.0 / 7.0).abs() < 0.03, "{short_acc}");
        let expected = 0.5 * (0.85f64.powi(2) + 0.85f64.powi(3));
        assert!((worked_acc - expected).abs() < 0.04, "{worked_acc} vs {expected}");
        assert_eq!(checked_acc, 1.0);
        let [_, (_, correct), _] = measure(&Mix::CORRECT, 500);
        assert_eq!(correct, 1.0);
    }
}
