//! The Minerva-style normalization that precedes stage 2: units and words removed, text
//! wrappers unwrapped, `\boxed` removed, spacing commands and `\left`/`\right` dropped.
//!
//! Unlike stage 1 it keeps commas, so tuples, intervals and lists survive.

use alloc::string::String;

use super::extract::{brace_group, last_boxed};

/// Unit and filler words removed wherever they stand as whole words (ASCII letter runs that
/// are not control words), with a following `^2`/`^3`.
const UNIT_WORDS: &[&str] = &[
    "degrees",
    "degree",
    "deg",
    "cm",
    "mm",
    "km",
    "units",
    "unit",
    "inches",
    "inch",
    "in",
    "feet",
    "foot",
    "ft",
    "meters",
    "meter",
    "metres",
    "metre",
    "dollars",
    "dollar",
    "cents",
    "cent",
    "mph",
    "hours",
    "hour",
    "hrs",
    "minutes",
    "minute",
    "min",
    "seconds",
    "sec",
    "square",
    "sq",
    "ways",
    "points",
    "students",
    "pounds",
    "lbs",
    "miles",
    "mile",
    "yards",
    "yard",
    "days",
    "day",
    "years",
    "year",
    "kg",
    "grams",
    "gm",
    "liters",
    "cubic",
    "people",
    "times",
    "th",
    "centimeters",
    "centimeter",
    "millimeters",
    "millimeter",
    "kilometers",
    "kilometer",
    "squared",
    "cm2",
    "m2",
    "meters2",
    "seconds",
    "second",
    "sqft",
    "weeks",
    "week",
    "months",
    "month",
    "grams",
    "gram",
    "kilograms",
    "ounces",
    "ounce",
    "gallons",
    "gallon",
    "percent",
    "mi",
    "yd",
    "hr",
];

/// Single-letter units, removed only when they are the whole content of a text wrapper.
const SHORT_UNITS: &[&str] = &["m", "s", "g", "l", "h"];

/// Commands whose braced argument is text (unwrapped, or removed when it is a unit).
const TEXT_WRAPPERS: &[&str] =
    &["\\text", "\\textbf", "\\textit", "\\textrm", "\\mathrm", "\\mbox", "\\textnormal"];

/// Commands dropped outright (when not followed by a letter).
const DROPPED: &[&str] = &[
    "\\left",
    "\\right",
    "\\displaystyle",
    "\\!",
    "\\,",
    "\\;",
    "\\:",
    "\\ ",
    "\\$",
    "\\%",
    "\\quad",
    "\\qquad",
];

/// Removes `needle` wherever it is not followed by an ASCII letter (so `\right` spares
/// `\rightarrow`).
fn remove_command(s: &str, needle: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(needle) {
        let after = rest.get(at + needle.len()..).unwrap_or("");
        let letter_follows = after.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
        let ends_in_letter = needle.chars().last().is_some_and(|c| c.is_ascii_alphabetic());
        out.push_str(rest.get(..at).unwrap_or(""));
        if letter_follows && ends_in_letter {
            out.push_str(needle);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Drops a `^2`, `^3`, `^{2}` or `^{3}` (after spaces) at the start of `s`.
fn skip_unit_power(s: &str) -> &str {
    let t = s.trim_start();
    for p in ["^2", "^3", "^{2}", "^{3}"] {
        if let Some(rest) = t.strip_prefix(p) {
            return rest;
        }
    }
    s
}

/// True if `word` (one or more words: `square centimeters`) names only units.
fn is_unit(word: &str, short_too: bool) -> bool {
    let mut words = word.split_whitespace().map(|w| w.trim_end_matches('.')).peekable();
    words.peek().is_some()
        && words.all(|w| UNIT_WORDS.contains(&w) || (short_too && SHORT_UNITS.contains(&w)))
}

/// `4 2/3` (a whole number, spaces, a proper fraction of integers) as `4\frac{2}{3}`, which
/// the parser reads as a mixed number.
fn mixed_fractions(s: &str) -> String {
    let b = s.as_bytes();
    let digits_from =
        |i: usize| b.get(i..).map_or(0, |t| t.iter().take_while(|c| c.is_ascii_digit()).count());
    let mut out = String::with_capacity(s.len() + 8);
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        let before_ok =
            i == 0 || b.get(i - 1).is_some_and(|c| !c.is_ascii_alphanumeric() && !b"./^_\\".contains(c));
        let whole = digits_from(i);
        if whole > 0 && before_ok {
            let spaces = b.get(i + whole..).map_or(0, |t| t.iter().take_while(|c| **c == b' ').count());
            let num_at = i + whole + spaces;
            let num = digits_from(num_at);
            let den = if b.get(num_at + num) == Some(&b'/') { digits_from(num_at + num + 1) } else { 0 };
            let end = num_at + num + 1 + den;
            let after_ok = !b.get(end).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'.');
            if spaces > 0 && num > 0 && den > 0 && after_ok {
                out.push_str(s.get(copied..i).unwrap_or(""));
                let part = |a: usize, n: usize| s.get(a..a + n).unwrap_or("");
                out.push_str(&alloc::format!(
                    "{}\\frac{{{}}}{{{}}}",
                    part(i, whole),
                    part(num_at, num),
                    part(num_at + num + 1, den)
                ));
                copied = end;
                i = end;
                continue;
            }
            i += whole;
            continue;
        }
        i += 1;
    }
    out.push_str(s.get(copied..).unwrap_or(""));
    out
}

/// Unwraps `\text{...}` and its kin: a unit is removed (with its power), `and`/`or` become a
/// comma, anything else is kept as plain content.
fn unwrap_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let hit = TEXT_WRAPPERS
            .iter()
            .filter_map(|w| {
                let at = rest.find(&alloc::format!("{w}{{"))?;
                Some((at, w.len()))
            })
            .min();
        let Some((at, len)) = hit else { break };
        out.push_str(rest.get(..at).unwrap_or(""));
        let Some(content) = brace_group(rest, at + len) else {
            // Unbalanced: keep the rest as is (the parser rejects it).
            out.push_str(rest.get(at..).unwrap_or(""));
            return out;
        };
        let after = rest.get(at + len + content.len() + 2..).unwrap_or("");
        let word = content.trim();
        if is_unit(word, true) || word.is_empty() {
            rest = skip_unit_power(after);
        } else {
            if word == "and" || word == "or" {
                out.push(',');
            } else {
                out.push(' ');
                out.push_str(content);
                out.push(' ');
            }
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Removes unit words that stand as whole words outside commands.
fn remove_unit_words(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic()) {
        let end = rest
            .get(start..)
            .and_then(|t| t.find(|c: char| !c.is_ascii_alphabetic()))
            .map_or(rest.len(), |e| start + e);
        let word = rest.get(start..end).unwrap_or("");
        let is_command = rest.get(..start).is_some_and(|b| b.ends_with('\\'));
        out.push_str(rest.get(..start).unwrap_or(""));
        let after = rest.get(end..).unwrap_or("");
        if !is_command && is_unit(word, false) {
            rest = skip_unit_power(after);
        } else {
            out.push_str(word);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `1,000,000` (the whole answer, optional sign and decimals) without its separators.
pub fn drop_thousands_separators(s: &str) -> Option<String> {
    let t = s.trim();
    let body = t.strip_prefix('-').unwrap_or(t);
    let (int_part, frac) = body.split_once('.').unwrap_or((body, ""));
    let mut groups = int_part.split(',');
    let head = groups.next()?;
    let head_ok = (1..=3).contains(&head.len()) && head.bytes().all(|b| b.is_ascii_digit());
    let mut tail = groups.peekable();
    tail.peek()?;
    let tail_ok = tail.all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()));
    (head_ok && tail_ok && frac.bytes().all(|b| b.is_ascii_digit())).then(|| t.replace(',', ""))
}

/// The Minerva-style normalization of an extracted answer.
pub fn normalize(answer: &str) -> String {
    let mut s = String::from(last_boxed(answer).unwrap_or(answer));
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac");
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\circ", "").replace('°', "");
    s = s.replace("{,}", "").replace(",\\!", "");
    for c in DROPPED {
        s = remove_command(&s, c);
    }
    s = unwrap_text(&s);
    s = remove_unit_words(&s);
    s = s.replace(['%', '$'], "");
    s = drop_thousands_separators(&s).unwrap_or(s);
    mixed_fractions(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_text_are_removed() {
        assert_eq!(normalize("5 \\text{ cm}").trim(), "5");
        assert_eq!(normalize("15\\mbox{ cm}^2").trim(), "15");
        assert_eq!(normalize("15 cm^2").trim(), "15");
        assert_eq!(normalize("90 degrees").trim(), "90");
        assert_eq!(normalize("\\$18.90").trim(), "18.90");
        assert_eq!(normalize("3 \\text{m}").trim(), "3");
    }

    #[test]
    fn text_content_is_unwrapped() {
        assert_eq!(normalize("\\text{(C)}").trim(), "(C)");
        assert_eq!(normalize("1 \\text{ and } 2").replace(' ', ""), "1,2");
    }

    #[test]
    fn left_right_and_spacing_are_dropped() {
        assert_eq!(normalize("\\left( 3, \\frac{\\pi}{2} \\right)"), "( 3, \\frac{\\pi}{2} )");
        assert_eq!(normalize("x \\rightarrow y"), "x \\rightarrow y");
        assert_eq!(normalize("1\\,000"), "1000");
    }

    #[test]
    fn degrees_percent_dfrac_boxed() {
        assert_eq!(normalize("90^\\circ"), "90");
        assert_eq!(normalize("10\\%"), "10");
        assert_eq!(normalize("\\boxed{\\dfrac{1}{2}}"), "\\frac{1}{2}");
    }

    #[test]
    fn thousands_separators_only_for_a_whole_number() {
        assert_eq!(normalize("1,000"), "1000");
        assert_eq!(normalize("-12,345.5"), "-12345.5");
        assert_eq!(normalize("1,2"), "1,2");
        assert_eq!(normalize("(100,200)"), "(100,200)");
    }

    #[test]
    fn multi_word_units_and_wrappings() {
        assert_eq!(normalize("24\\mbox{ square centimeters}").trim(), "24");
        assert_eq!(normalize("5\\ \\text{cm}").trim(), "5");
        assert_eq!(normalize("3\\,\\text{m}").trim(), "3");
        assert_eq!(normalize("\\text{ even }").trim(), "even");
    }

    #[test]
    fn spaced_mixed_numbers_become_fracs() {
        assert_eq!(normalize("4 2/3"), "4\\frac{2}{3}");
        assert_eq!(normalize("-4 2/3"), "-4\\frac{2}{3}");
        assert_eq!(normalize("4 2/3x"), "4 2/3x");
        assert_eq!(normalize("x 2/3"), "x 2/3");
        assert_eq!(normalize("1, 2/3"), "1, 2/3");
    }

    #[test]
    fn control_words_are_not_units() {
        assert_eq!(normalize("\\min"), "\\min");
        assert_eq!(normalize("\\int x"), "\\int x");
    }
}
