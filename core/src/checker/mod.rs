//! Answer extraction and mathematical equivalence checking, following the Open-Reasoner-Zero
//! code without Python.
//!
//! - Extraction ([`extract`]): inside the first `<answer>` block, the last `\boxed{...}`.
//! - Stage 1 ([`normalize`]): ORZ's / the MATH dataset's `strip_string`, then string or float
//!   equality.
//! - Stage 2, only when stage 1 says no: a Minerva-style normalization ([`minerva`]), a bounded
//!   LaTeX parser ([`latex`]), evaluation to exact rationals or floats ([`eval`]) and a
//!   structural comparison of scalars, tuples, intervals, equations and lists ([`compare`]).
//!   ORZ runs sympy here; expressions with variables are compared at deterministic points.
//!
//! Every input is answered in bounded time without panicking: [`CheckerLimits`] bounds the
//! length, the nesting depth and the evaluation work, and anything beyond them is "not equal".

pub mod bignum;
pub mod compare;
pub mod eval;
pub mod extract;
pub mod latex;
pub mod matrix;
pub mod minerva;
pub mod normalize;
pub mod value;
pub mod words;

pub use extract::{extract_answer, extract_reference, last_boxed};
pub use normalize::{stage1_equal, strip_string};

/// Bounds on the work of one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckerLimits {
    /// Longest answer (in characters, after extraction) that is compared at all.
    pub max_len: usize,
    /// Deepest nesting of brackets, signs and macro arguments the parser accepts.
    pub max_depth: usize,
    /// Most tokens in one stage-2 answer.
    pub max_tokens: usize,
    /// Most evaluation steps of one stage-2 comparison.
    pub max_work: u64,
}

impl Default for CheckerLimits {
    fn default() -> Self {
        CheckerLimits { max_len: 1000, max_depth: 32, max_tokens: 1000, max_work: 200_000 }
    }
}

/// The outcome of a comparison, saying which stage decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An answer is empty: never equal.
    Empty,
    /// An answer is longer than [`CheckerLimits::max_len`]: not equal.
    TooLong,
    /// Equal after stage 1 (string normalization).
    Stage1,
    /// Equal after stage 2 (mathematical equality).
    Stage2,
    /// Not equal.
    Different,
}

impl Verdict {
    /// True for [`Verdict::Stage1`] and [`Verdict::Stage2`].
    pub fn is_equal(self) -> bool {
        matches!(self, Verdict::Stage1 | Verdict::Stage2)
    }
}

/// Stage 2 alone: true if the two answers are mathematically equal within `limits`.
pub fn math_equal(prediction: &str, reference: &str, limits: &CheckerLimits) -> bool {
    stage2(prediction, reference, limits, &mut eval::Budget::new(limits.max_work))
}

/// Stage 2 under a shared budget: matrices entry by entry, words as words, the rest parsed and
/// compared by value.
fn stage2(prediction: &str, reference: &str, limits: &CheckerLimits, budget: &mut eval::Budget) -> bool {
    match (matrix::parse_matrix(prediction), matrix::parse_matrix(reference)) {
        (Some(a), Some(b)) => {
            return matrix::matrices_equal(&a, &b, |x, y| stage1_equal(x, y) || stage2(x, y, limits, budget));
        }
        (Some(m), None) | (None, Some(m)) => {
            // A row or column vector against a tuple written with commas.
            let other = if matrix::parse_matrix(prediction).is_some() { reference } else { prediction };
            return match m.vector() {
                Some(v) if !m.bars && v.len() >= 2 && other.contains(',') => {
                    let tuple = alloc::format!("({})", v.join(","));
                    stage2(&tuple, other, limits, budget)
                }
                _ => false,
            };
        }
        (None, None) => {}
    }
    if let (Some(a), Some(b)) = (words::word_text(prediction), words::word_text(reference)) {
        return a == b;
    }
    let parse = |s: &str| {
        let toks = latex::lex(&minerva::normalize(s), limits.max_tokens).ok()?;
        compare::parse_items(&toks, limits.max_depth).ok()
    };
    match (parse(prediction), parse(reference)) {
        (Some(a), Some(b)) => compare::items_equal(&a, &b, budget),
        _ => false,
    }
}

/// Compares two extracted answers under `limits`, saying which stage decided.
pub fn check_with(prediction: &str, reference: &str, limits: &CheckerLimits) -> Verdict {
    if prediction.trim().is_empty() || reference.trim().is_empty() {
        return Verdict::Empty;
    }
    if prediction.chars().count() > limits.max_len || reference.chars().count() > limits.max_len {
        return Verdict::TooLong;
    }
    if stage1_equal(prediction, reference) {
        Verdict::Stage1
    } else if math_equal(prediction, reference, limits) {
        Verdict::Stage2
    } else {
        Verdict::Different
    }
}

/// [`check_with`] under the default limits.
pub fn check(prediction: &str, reference: &str) -> Verdict {
    check_with(prediction, reference, &CheckerLimits::default())
}

/// True if two extracted answers are equivalent (stage 1 string normalization, then stage 2
/// mathematical equality). The empty answer is never equivalent to anything.
pub fn is_equivalent(prediction: &str, reference: &str) -> bool {
    check(prediction, reference).is_equal()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN_EQUAL: &[(&str, &str)] = &[
        ("\\frac{1}{2}", "0.5"),
        ("\\dfrac{3}{4}", "0.75"),
        ("10\\%", "10"),
        ("x=5", "5"),
        ("2\\sqrt{2}", "\\sqrt{8}"),
        ("\\frac{\\pi}{2}", "\\pi/2"),
        ("(1,2)", "(1, 2)"),
        ("\\pm 2", "2, -2"),
        ("x^2+2x+1", "(x+1)^2"),
        ("1000", "1,000"),
        ("5 \\text{ cm}", "5"),
        ("90^\\circ", "90"),
        ("\\frac{\\sqrt2}{2}", "\\frac{1}{\\sqrt2}"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\pi/2)"),
        ("a+b", "b+a"),
        ("\\$18.90", "18.9"),
        ("\\{1,2\\}", "\\{2,1\\}"),
    ];

    const GOLDEN_DIFFERENT: &[(&str, &str)] = &[
        ("(1,2)", "(2,1)"),
        ("[0,1)", "[0,1]"),
        ("x^2+1", "x^2+2"),
        ("A", "B"),
        ("\\frac{2}{3}", "\\frac{3}{2}"),
        ("5", "-5"),
        ("x+1", "y+1"),
        ("", ""),
    ];

    #[test]
    fn golden_examples() {
        for (a, b) in GOLDEN_EQUAL {
            assert!(is_equivalent(a, b), "{a} should equal {b}");
            assert!(is_equivalent(b, a), "{b} should equal {a}");
        }
        for (a, b) in GOLDEN_DIFFERENT {
            assert!(!is_equivalent(a, b), "{a} should differ from {b}");
        }
    }

    #[test]
    fn verdict_names_the_deciding_stage() {
        assert_eq!(check("\\frac12", "0.5"), Verdict::Stage1);
        assert_eq!(check("2\\sqrt{2}", "\\sqrt{8}"), Verdict::Stage2);
        assert_eq!(check("1", "2"), Verdict::Different);
        assert_eq!(check(" ", "2"), Verdict::Empty);
        assert_eq!(check(&"1".repeat(1001), "1"), Verdict::TooLong);
    }

    #[test]
    fn extraction_then_comparison() {
        let answer = extract_answer("<think>...</think><answer>So \\boxed{\\dfrac{1}{2}}.</answer>");
        assert!(is_equivalent(&answer, &extract_reference("0.5")));
        assert!(!is_equivalent(&extract_answer("no tags, \\boxed{1}"), "1"));
    }
}
