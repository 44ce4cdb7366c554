//! The Countdown reward of TinyZero (`verl/utils/reward_score/countdown.py`, `compute_score`),
//! a second task: given numbers and a target, write an equation that uses each number once with
//! `+ - * /` and parentheses and equals the target.
//!
//! Scores ([`Countdown`]), following TinyZero's code step by step:
//!
//! 1. **Extraction** ([`extract_equation`]). TinyZero scores the decoded prompt + response:
//!    it keeps the text after the first `Assistant:` (else after the first
//!    `<|im_start|>assistant`; if neither is there the score is 0), keeps **the last line** of
//!    it (`split('\n')[-1]`), takes the **last** match of `<answer>(.*?)</answer>` in that line
//!    and strips it. No match: score 0.0. The recipe's wording ("0 if no `<answer>...</answer>`
//!    is found in the last line of the response") is this code; the last-match rule matters
//!    when the last line holds several blocks. [`AnswerScope::Completion`] is an **option** that
//!    searches the whole completion instead (answers may then span lines).
//! 2. **Numbers** ([`uses_exactly`]): the runs of ASCII digits of the equation (regex `\d+`,
//!    so `3.5` uses 3 and 5, and `-3` uses 3) must be exactly the given multiset, else 0.1.
//! 3. **Evaluation** ([`expr::evaluate`]): characters other than digits, `+ - * / ( ) .` and
//!    whitespace, a syntax error, division by zero, `**`, `//` or overflow give 0.1. TinyZero
//!    runs Python `eval` here, which would compute `**` (power) and `//` (floor division);
//!    the recipe allows `+ - * /` only, so orz-rs refuses both (0.1). Unary signs are allowed,
//!    as in Python (`-3 + 9` uses 3 and 9).
//! 4. **Comparison** ([`hits_target`]): 1.0 if `|value - target| < 1e-5`, else 0.1. TinyZero
//!    compares a float; orz-rs evaluates exactly and applies the same `1e-5` test exactly (with
//!    an `f64` fallback only if the exact difference overflows), so an exact hit is always 1.0
//!    and float rounding never decides.
//!
//! References ([`CountdownProblem`]) are written `target=24;numbers=3,4,5,6`. Solvable instances
//! with their question text come from the seeded generator [`generate`](mod@generate).

pub mod expr;
pub mod generate;

pub use generate::{CountdownInstance, GeneratorConfig, TINYZERO_PROMPT_TEMPLATE, generate};

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;

use super::{Reward, RewardInput, RewardOutcome, label};
use crate::error::{Error, Result};
use crate::rational::Rational;
use expr::ExprError;

/// Score for an extracted answer that is not a correct equation (TinyZero's `format_score`).
pub const FORMAT_SCORE: f64 = 0.1;
/// Score for a correct equation.
pub const CORRECT_SCORE: f64 = 1.0;
/// Most numbers a problem may list.
pub const MAX_NUMBERS: usize = 64;

/// One Countdown instance: the target and the multiset of numbers to use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CountdownProblem {
    target: i64,
    numbers: Vec<u64>,
}

impl CountdownProblem {
    /// A problem; an error if `numbers` is empty or longer than [`MAX_NUMBERS`].
    pub fn new(target: i64, numbers: Vec<u64>) -> Result<Self> {
        if numbers.is_empty() {
            return Err(Error::Empty { op: "CountdownProblem::new", what: "numbers" });
        }
        if numbers.len() > MAX_NUMBERS {
            return Err(Error::invalid(
                "CountdownProblem::new",
                alloc::format!("{} numbers exceed {MAX_NUMBERS}", numbers.len()),
            ));
        }
        Ok(CountdownProblem { target, numbers })
    }

    /// The target value.
    pub fn target(&self) -> i64 {
        self.target
    }

    /// The numbers to use, each exactly once.
    pub fn numbers(&self) -> &[u64] {
        &self.numbers
    }

    /// Parses a reference `target=24;numbers=3,4,5,6` (keys in any order, spaces around
    /// separators allowed, a trailing `;` allowed).
    pub fn parse(reference: &str) -> Result<Self> {
        const OP: &str = "CountdownProblem::parse";
        let (mut target, mut numbers) = (None, None);
        for field in reference.split(';').map(str::trim).filter(|f| !f.is_empty()) {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| Error::invalid(OP, alloc::format!("field {field:?} is not `key=value`")))?;
            let (key, value) = (key.trim(), value.trim());
            let bad = |what: &str| Error::invalid(OP, alloc::format!("bad {what} {value:?}"));
            match key {
                "target" if target.is_none() => {
                    target = Some(value.parse::<i64>().map_err(|_| bad("target"))?)
                }
                "numbers" if numbers.is_none() => {
                    let parsed: core::result::Result<Vec<u64>, _> =
                        value.split(',').map(|n| n.trim().parse::<u64>()).collect();
                    numbers = Some(parsed.map_err(|_| bad("numbers"))?);
                }
                _ => return Err(Error::invalid(OP, alloc::format!("unknown or repeated key {key:?}"))),
            }
        }
        match (target, numbers) {
            (Some(t), Some(n)) => CountdownProblem::new(t, n),
            _ => Err(Error::invalid(OP, alloc::format!("{reference:?} lacks `target=` or `numbers=`"))),
        }
    }
}

impl fmt::Display for CountdownProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "target={};numbers=", self.target)?;
        for (i, n) in self.numbers.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

impl FromStr for CountdownProblem {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        CountdownProblem::parse(s)
    }
}

/// Where the answer block is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnswerScope {
    /// TinyZero: prompt + completion after the first `Assistant:` (else
    /// `<|im_start|>assistant`; neither: no answer), last line only.
    #[default]
    TinyZeroLastLine,
    /// The whole completion, all lines (an **option**; the prompt is ignored).
    Completion,
}

const ANSWER_OPEN: &str = "<answer>";
const ANSWER_CLOSE: &str = "</answer>";

/// The content of the last `<answer>(.*?)</answer>` match (leftmost, non-overlapping matches,
/// as Python's `re.finditer`), unstripped. Linear time.
fn last_answer_block(text: &str) -> Option<&str> {
    let mut last = None;
    let mut pos = 0usize;
    while let Some(rest) = text.get(pos..) {
        let Some(open) = rest.find(ANSWER_OPEN) else { break };
        let content_start = pos + open + ANSWER_OPEN.len();
        let Some(after) = text.get(content_start..) else { break };
        let Some(close) = after.find(ANSWER_CLOSE) else { break };
        last = after.get(..close);
        pos = content_start + close + ANSWER_CLOSE.len();
    }
    last
}

/// Python's `str.strip()` whitespace: Unicode White_Space plus the separators U+001C..U+001F.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The stripped equation inside the answer block that TinyZero would score, or `None` (score 0).
pub fn extract_equation(prompt: &str, completion: &str, scope: AnswerScope) -> Option<String> {
    let block = match scope {
        AnswerScope::Completion => last_answer_block(completion)?,
        AnswerScope::TinyZeroLastLine => {
            let mut text = String::with_capacity(prompt.len().saturating_add(completion.len()));
            text.push_str(prompt);
            text.push_str(completion);
            let after = ["Assistant:", "<|im_start|>assistant"]
                .iter()
                .find_map(|marker| text.split_once(marker).map(|(_, after)| after))?;
            let last_line = after.rsplit('\n').next().unwrap_or(after);
            return last_answer_block(last_line).map(|b| String::from(b.trim_matches(is_py_space)));
        }
    };
    Some(String::from(block.trim_matches(is_py_space)))
}

/// True if the digit runs of `equation` (as integers, leading zeros ignored) are exactly the
/// multiset `numbers` (TinyZero's `validate_equation`). Only ASCII digits count; Python's `\d`
/// also matches other scripts' digits, but those fail the character check, so the score (0.1)
/// is the same.
pub fn uses_exactly(equation: &str, numbers: &[u64]) -> bool {
    let mut used: Vec<u64> = Vec::with_capacity(numbers.len());
    for run in equation.split(|c: char| !c.is_ascii_digit()).filter(|r| !r.is_empty()) {
        let digits = run.trim_start_matches('0');
        let value = if digits.is_empty() { Some(0) } else { digits.parse::<u64>().ok() };
        match value {
            Some(v) if used.len() < numbers.len() => used.push(v),
            _ => return false, // too many numbers, or one too large to be in the list
        }
    }
    let mut given = numbers.to_vec();
    given.sort_unstable();
    used.sort_unstable();
    used == given
}

/// True if `|value - target| < 1e-5`, decided exactly (TinyZero's float test, without rounding).
pub fn hits_target(value: Rational, target: i64) -> bool {
    let tolerance = Rational::new(1, 100_000);
    let diff = Rational::from_int(i128::from(target)).and_then(|t| value.checked_sub(t));
    let abs = diff.and_then(|d| if d.numer() < 0 { d.checked_neg() } else { Some(d) });
    match (abs, tolerance) {
        (Some(abs), Some(tol)) => abs < tol,
        // The exact difference overflowed: fall back to TinyZero's float comparison.
        _ => (value.to_f64() - target as f64).abs() < 1e-5,
    }
}

/// Scores an extracted equation against a problem (steps 2 to 4 of the module docs).
pub fn score_equation(equation: &str, problem: &CountdownProblem) -> RewardOutcome {
    if !uses_exactly(equation, problem.numbers()) {
        return RewardOutcome::new(FORMAT_SCORE, label::NUMBERS_MISMATCH);
    }
    match expr::evaluate(equation) {
        Ok(value) if hits_target(value, problem.target()) => {
            RewardOutcome::new(CORRECT_SCORE, label::CORRECT)
        }
        Ok(_) => RewardOutcome::new(FORMAT_SCORE, label::WRONG),
        Err(ExprError::InvalidChar { .. }) => RewardOutcome::new(FORMAT_SCORE, label::INVALID_CHARS),
        Err(_) => RewardOutcome::new(FORMAT_SCORE, label::EVAL_ERROR),
    }
}

/// The TinyZero Countdown reward: 0.0, 0.1 or 1.0 (module docs). The reference is a
/// [`CountdownProblem`] string; an unreadable one scores 0 labelled [`label::BAD_REFERENCE`].
/// The finish reason is ignored, as in TinyZero (gate it with
/// [`Reward::gate_on_stop`] if wanted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Countdown {
    scope: AnswerScope,
}

impl Countdown {
    /// TinyZero's reward ([`AnswerScope::TinyZeroLastLine`]).
    pub fn new() -> Self {
        Countdown::default()
    }

    /// The reward looking for the answer in `scope`.
    pub fn with_scope(scope: AnswerScope) -> Self {
        Countdown { scope }
    }
}

impl Reward for Countdown {
    fn score(&self, input: &RewardInput<'_>) -> RewardOutcome {
        let Ok(problem) = CountdownProblem::parse(input.reference) else {
            return RewardOutcome::new(0.0, label::BAD_REFERENCE);
        };
        match extract_equation(input.prompt, input.completion, self.scope) {
            None => RewardOutcome::new(0.0, label::NO_ANSWER),
            Some(equation) => score_equation(&equation, &problem),
        }
    }

    fn name(&self) -> &str {
        match self.scope {
            AnswerScope::TinyZeroLastLine => "countdown",
            AnswerScope::Completion => "countdown(completion)",
        }
    }
}

#[cfg(test)]
mod tests;
