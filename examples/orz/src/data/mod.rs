//! Training and evaluation data: ORZ's JSON formats, JSON Lines, the Countdown generator, and
//! the in-memory [`Problem`] every task (ORZ math, Countdown, the tiny default) is turned into.
//!
//! Formats ([`Format`], detected by [`load_any`] from the first record):
//!
//! - **ORZ training** (`orz_math_57k_collected.json`): a JSON array of dialogues
//!   `[{"from": "human", "value": Q}, {"from": "assistant", "ground_truth": {"value": A}}]`.
//!   As ORZ's `dataset.py`, the question is message 0's `value` and the answer message 1's
//!   `ground_truth.value`; the `from` fields and any further messages are not read.
//! - **ORZ eval** (`math500.json`, `aime2024.json`, `gpqa_diamond.json`): a JSON array of
//!   `{"prompt": [{"from": "user", "value": Q}], "final_answer": A}`; extra keys (gpqa's
//!   `choices`) are ignored.
//! - **Plain**: records `{"question": Q, "answer": A}` (a [`Problem`]), as a JSON array or as
//!   JSON Lines (one record per line, blank lines skipped).
//!
//! A file whose text starts with `[` is a JSON array; one that starts with `{` is JSON Lines
//! (whose records may be in the eval or plain format). Every record must be in the format of
//! the first one. A malformed record is an error naming the file, the record (index from 0, or
//! line from 1 for JSON Lines) and what is wrong (missing field, wrong type, empty question or
//! answer); nothing is skipped silently. Questions and answers are kept as written (not trimmed).
//!
//! [`DataOrder`] is the order in which training takes the problems (a seeded shuffle per epoch,
//! resumable from a checkpoint's [`DataCursor`]).

pub mod order;
mod records;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use orz_core::recipe::RecipeConfig;
use orz_core::reward::countdown::{self, GeneratorConfig};
use orz_core::train::PromptItem;

pub use order::{DataCursor, DataOrder};

use crate::tokenizer::Tokenizer;

use records::parse_record;

/// One question with its reference answer, whatever file or generator it came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// The question, inserted into the recipe's prompt template.
    pub question: String,
    /// The reference answer the reward compares against.
    pub answer: String,
}

impl Problem {
    /// The training prompt of this problem: the question put into `recipe`'s template and
    /// tokenized, with the answer as the reward's reference.
    pub fn to_prompt(&self, recipe: &RecipeConfig, tokenizer: &Tokenizer) -> Result<PromptItem> {
        let text = recipe.render_prompt(&self.question);
        Ok(PromptItem { tokens: tokenizer.encode(&text)?, text, reference: self.answer.clone() })
    }
}

/// A record layout (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ORZ's training dialogues.
    Training,
    /// ORZ's eval records (`prompt`, `final_answer`).
    Eval,
    /// `{"question": Q, "answer": A}`.
    Plain,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Training => "ORZ training format ([{\"from\": \"human\", \"value\": Q}, ...])",
            Format::Eval => "ORZ eval format ({\"prompt\": [...], \"final_answer\": A})",
            Format::Plain => "plain format ({\"question\": Q, \"answer\": A})",
        })
    }
}

/// Loads a file in ORZ's training format; any other format is an error naming the file.
pub fn load_training(path: &Path) -> Result<Vec<Problem>> {
    load_expecting(path, Format::Training)
}

/// Loads a file in ORZ's eval format; any other format is an error naming the file.
pub fn load_eval(path: &Path) -> Result<Vec<Problem>> {
    load_expecting(path, Format::Eval)
}

/// Loads a file in any format of the [module docs](self), detected from its first record.
pub fn load_any(path: &Path) -> Result<Vec<Problem>> {
    Ok(load_with_format(path)?.1)
}

/// Loads a file in any format and says which it was. Errors: an unreadable file, invalid JSON,
/// no record, an unknown layout, a malformed record.
pub fn load_with_format(path: &Path) -> Result<(Format, Vec<Problem>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading data file {}", path.display()))?;
    parse_text(&text).with_context(|| format!("data file {}", path.display()))
}

/// Loads several files with [`load_any`], each named by its file stem (`math500` for
/// `eval/math500.json`), or by its whole path where two stems collide.
pub fn load_named<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<(String, Vec<Problem>)>> {
    let stem =
        |p: &Path| p.file_stem().map_or_else(|| p.display().to_string(), |s| s.to_string_lossy().into());
    let stems: Vec<String> = paths.iter().map(|p| stem(p.as_ref())).collect();
    paths
        .iter()
        .zip(&stems)
        .map(|(p, s)| {
            let p = p.as_ref();
            let name = if stems.iter().filter(|t| *t == s).count() > 1 {
                p.display().to_string()
            } else {
                s.clone()
            };
            Ok((name, load_any(p)?))
        })
        .collect()
}

/// `count` Countdown problems from the seeded generator ([`countdown::generate()`]): the question
/// in TinyZero's wording, the answer the reference `target=T;numbers=a,b,c` that the Countdown
/// reward reads.
pub fn countdown(config: &GeneratorConfig, seed: u64, count: usize) -> Result<Vec<Problem>> {
    let instances = countdown::generate(config, seed, count).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(instances.iter().map(|i| Problem { question: i.question(), answer: i.reference() }).collect())
}

fn load_expecting(path: &Path, expected: Format) -> Result<Vec<Problem>> {
    let (found, problems) = load_with_format(path)?;
    if found != expected {
        bail!("data file {}: expected the {expected}, found the {found}", path.display());
    }
    Ok(problems)
}

/// Parses a whole file's text (errors say which record; the caller adds the file).
fn parse_text(text: &str) -> Result<(Format, Vec<Problem>)> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let records: Vec<(String, serde_json::Value)> = if trimmed.starts_with('[') {
        let value: serde_json::Value = serde_json::from_str(trimmed).context("not valid JSON")?;
        let serde_json::Value::Array(items) = value else { bail!("not a JSON array") };
        items.into_iter().enumerate().map(|(i, v)| (format!("record {i}"), v)).collect()
    } else if trimmed.starts_with('{') {
        let mut records = Vec::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let value = serde_json::from_str(line).with_context(|| {
                format!("line {}: not valid JSON (JSON Lines: one record per line)", i + 1)
            })?;
            records.push((format!("line {}", i + 1), value));
        }
        records
    } else if trimmed.is_empty() {
        bail!("the file is empty")
    } else {
        bail!("expected a JSON array (`[`) or JSON Lines (`{{`), found {:?}", trimmed.chars().next())
    };
    let Some((at, first)) = records.first() else { bail!("the file holds no records") };
    let format = records::detect(first).map_err(|e| anyhow::anyhow!("{at}: unknown layout: {e}"))?;
    let problems = records
        .into_iter()
        .map(|(at, v)| parse_record(format, &v).map_err(|e| anyhow::anyhow!("{at}: {e}")))
        .collect::<Result<Vec<_>>>()?;
    Ok((format, problems))
}
