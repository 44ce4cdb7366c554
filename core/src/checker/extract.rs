//! Answer extraction: the `<answer>` block of a completion and the last `\boxed{...}` in it.

use alloc::string::String;

const OPEN_TAG: &str = "<answer>";
const CLOSE_TAG: &str = "</answer>";

/// The content of the first `<answer>`...`</answer>` block; `None` when either tag is missing.
///
/// ORZ's reward matches `<answer>.*?(\\boxed{.*}).*?</answer>`, so an answer block without its
/// closing tag holds no answer (a completion that stopped on `</answer>` keeps the tag).
pub fn answer_block(completion: &str) -> Option<&str> {
    let start = completion.find(OPEN_TAG)? + OPEN_TAG.len();
    let rest = completion.get(start..)?;
    rest.get(..rest.find(CLOSE_TAG)?)
}

/// The content of the brace group opening at byte `open` of `s` (which must be `{`), without
/// the outer braces; `None` when the group is not closed.
pub fn brace_group(s: &str, open: usize) -> Option<&str> {
    let tail = s.get(open..)?;
    if !tail.starts_with('{') {
        return None;
    }
    let mut depth = 0usize;
    for (i, c) in tail.char_indices() {
        match c {
            '{' => depth = depth.checked_add(1)?,
            '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return tail.get(1..i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The content of the last brace-balanced `\<command>{...}` in `s` (spaces allowed before the
/// brace), trying earlier occurrences when the last one is unbalanced.
fn last_command_group<'a>(s: &'a str, command: &str) -> Option<&'a str> {
    let mut end = s.len();
    while let Some(at) = s.get(..end)?.rfind(command) {
        let after = at + command.len();
        let rest = s.get(after..)?;
        let skipped = rest.len() - rest.trim_start().len();
        if let Some(content) = brace_group(s, after + skipped) {
            return Some(content);
        }
        end = at;
    }
    None
}

/// The content of the last `\boxed{...}` in `s`, or of the last `\fbox{...}` when there is no
/// balanced `\boxed`; `None` when there is neither.
pub fn last_boxed(s: &str) -> Option<&str> {
    last_command_group(s, "\\boxed").or_else(|| last_command_group(s, "\\fbox"))
}

/// ORZ's prediction extraction: inside the first `<answer>`...`</answer>` block, the content of
/// the last `\boxed{...}` (brace-balanced; `\fbox{...}` as a fallback); empty if there is none.
pub fn extract_answer(completion: &str) -> String {
    answer_block(completion).and_then(last_boxed).map(|s| String::from(s.trim())).unwrap_or_default()
}

/// ORZ's reference extraction: the last `\boxed{...}` content if the reference has one,
/// otherwise the reference as is (trimmed).
pub fn extract_reference(reference: &str) -> String {
    String::from(last_boxed(reference).unwrap_or(reference).trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_last_boxed_in_first_block() {
        let c = "think \\boxed{9} <answer>a \\boxed{1} then \\boxed{2}</answer> <answer>\\boxed{3}</answer>";
        assert_eq!(extract_answer(c), "2");
    }

    #[test]
    fn nested_braces_are_balanced() {
        assert_eq!(extract_answer("<answer>\\boxed{\\frac{1}{\\sqrt{2}}}</answer>"), "\\frac{1}{\\sqrt{2}}");
        assert_eq!(extract_answer("<answer>\\boxed {7}</answer>"), "7");
    }

    #[test]
    fn fbox_is_a_fallback() {
        assert_eq!(extract_answer("<answer>\\fbox{4}</answer>"), "4");
        assert_eq!(extract_answer("<answer>\\boxed{5} \\fbox{4}</answer>"), "5");
    }

    #[test]
    fn missing_pieces_give_empty() {
        assert_eq!(extract_answer("\\boxed{5}"), "");
        assert_eq!(extract_answer("<answer>5</answer>"), "");
        assert_eq!(extract_answer("<answer>\\boxed{5</answer>"), "");
        assert_eq!(extract_answer("</answer>\\boxed{5}"), "");
    }

    #[test]
    fn unclosed_answer_tag_holds_no_answer() {
        assert_eq!(extract_answer("<answer> so \\boxed{6}"), "");
    }

    #[test]
    fn unbalanced_last_box_falls_back_to_an_earlier_one() {
        assert_eq!(last_boxed("\\boxed{1} \\boxed{2"), Some("1"));
    }

    #[test]
    fn reference_without_box_is_used_as_is() {
        assert_eq!(extract_reference(" \\frac{1}{2} "), "\\frac{1}{2}");
        assert_eq!(extract_reference("so \\boxed{12}."), "12");
    }

    #[test]
    fn multibyte_text_is_safe() {
        assert_eq!(extract_answer("<answer>é \\boxed{ü}</answer>"), "ü");
        assert_eq!(brace_group("é{x}", 1), None);
    }
}
