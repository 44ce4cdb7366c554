//! Word answers (`\text{east}`, `Evelyn`, `\text{ even }`): compared as words, ignoring case,
//! text wrappers and spacing.

use alloc::string::String;

/// Commands whose argument is text; the command names are dropped, the braces after them too.
const TEXT_COMMANDS: &[&str] =
    &["\\textbf", "\\textit", "\\textrm", "\\textnormal", "\\text", "\\mathrm", "\\mathit", "\\mbox"];

/// Shortest run of letters that makes an answer a word (shorter runs are variables or choices).
const MIN_WORD: usize = 3;

/// The normalized text of a word answer (lowercase, single spaces, no wrappers, no final full
/// stop), or `None` when the answer holds anything but letters, spaces and `( ) , ' -`, or no
/// word of at least `MIN_WORD` (3) letters.
pub fn word_text(answer: &str) -> Option<String> {
    let mut s = String::from(answer);
    for cmd in TEXT_COMMANDS {
        s = s.replace(cmd, "");
    }
    let s = s.replace("\\ ", " ").replace("\\,", " ").replace("\\quad", " ");
    let mut out = String::new();
    let (mut run, mut longest) = (0usize, 0usize);
    for c in s.chars() {
        match c {
            '{' | '}' | '$' => continue,
            c if c.is_ascii_alphabetic() => {
                run += 1;
                longest = longest.max(run);
                out.push(c.to_ascii_lowercase());
                continue;
            }
            c if c.is_whitespace() || c == '~' => {
                if !out.ends_with(' ') && !out.is_empty() {
                    out.push(' ');
                }
            }
            '(' | ')' | ',' | '\'' | '-' | '.' => out.push(c),
            _ => return None,
        }
        run = 0;
    }
    let out = out.trim().trim_end_matches('.').trim();
    (longest >= MIN_WORD).then(|| String::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappers_case_and_spaces_are_ignored() {
        assert_eq!(word_text("\\text{ even }").as_deref(), Some("even"));
        assert_eq!(word_text("East"), word_text("\\text{east}"));
        assert_eq!(word_text("\\textbf{Evelyn}"), word_text("evelyn"));
        assert_eq!(word_text("\\mbox{odd}"), word_text("\\mathrm{Odd}."));
    }

    #[test]
    fn non_words_are_none() {
        assert_eq!(word_text("x"), None);
        assert_eq!(word_text("\\text{(C)}"), None);
        assert_eq!(word_text("5 \\text{ cm}"), None);
        assert_eq!(word_text("\\frac{1}{2}"), None);
    }

    #[test]
    fn different_words_differ() {
        assert_ne!(word_text("\\text{even}"), word_text("\\text{odd}"));
        assert_ne!(word_text("east"), word_text("west"));
    }
}
