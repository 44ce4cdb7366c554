//! One record of each [`Format`] to a [`Problem`], with errors that say what is wrong.

use serde_json::Value;

use super::{Format, Problem};

/// The JSON type of `v`, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The format of a record, from its shape.
pub(super) fn detect(record: &Value) -> Result<Format, String> {
    match record {
        Value::Array(_) => Ok(Format::Training),
        Value::Object(map) if map.contains_key("prompt") => Ok(Format::Eval),
        Value::Object(map) if map.contains_key("question") => Ok(Format::Plain),
        Value::Object(_) => Err(format!(
            "an object without `prompt` (ORZ eval format) or `question` (plain format); expected the {}, \
             the {} or the {}",
            Format::Training,
            Format::Eval,
            Format::Plain
        )),
        other => Err(format!("{}, expected an array (ORZ training format) or an object", kind(other))),
    }
}

/// `v[key]` where `v` must be an object; `path` names `v` in messages (empty at the top).
fn get<'a>(v: &'a Value, path: &str, key: &str) -> Result<&'a Value, String> {
    let here = if path.is_empty() { "the record".to_string() } else { format!("`{path}`") };
    match v {
        Value::Object(map) => map.get(key).ok_or_else(|| format!("missing field `{}{key}`", dotted(path))),
        other => Err(format!("{here} is {}, expected an object with `{key}`", kind(other))),
    }
}

/// `v[i]` where `v` must be an array.
fn at<'a>(v: &'a Value, path: &str, i: usize) -> Result<&'a Value, String> {
    let here = if path.is_empty() { "the record".to_string() } else { format!("`{path}`") };
    match v {
        Value::Array(items) => items
            .get(i)
            .ok_or_else(|| format!("{here} has {} element(s), expected at least {}", items.len(), i + 1)),
        other => Err(format!("{here} is {}, expected an array", kind(other))),
    }
}

fn dotted(path: &str) -> String {
    if path.is_empty() { String::new() } else { format!("{path}.") }
}

/// A non-empty string at `path`; `what` (question/answer) names it when empty.
fn text(v: &Value, path: &str, what: &str) -> Result<String, String> {
    match v {
        Value::String(s) if s.trim().is_empty() => Err(format!("empty {what} (`{path}`)")),
        Value::String(s) => Ok(s.clone()),
        other => Err(format!("`{path}` is {}, expected a string ({what})", kind(other))),
    }
}

/// One record in `format` as a [`Problem`].
pub(super) fn parse_record(format: Format, r: &Value) -> Result<Problem, String> {
    let (question, answer) = match format {
        Format::Training => {
            let q = get(at(r, "", 0)?, "[0]", "value")?;
            let truth = get(at(r, "", 1)?, "[1]", "ground_truth")?;
            let a = get(truth, "[1].ground_truth", "value")?;
            (text(q, "[0].value", "question")?, text(a, "[1].ground_truth.value", "answer")?)
        }
        Format::Eval => {
            let q = get(at(get(r, "", "prompt")?, "prompt", 0)?, "prompt[0]", "value")?;
            (
                text(q, "prompt[0].value", "question")?,
                text(get(r, "", "final_answer")?, "final_answer", "answer")?,
            )
        }
        Format::Plain => (
            text(get(r, "", "question")?, "question", "question")?,
            text(get(r, "", "answer")?, "answer", "answer")?,
        ),
    };
    Ok(Problem { question, answer })
}
