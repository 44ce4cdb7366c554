//! Stage 1: the MATH dataset's / ORZ's `strip_string` normalization and string equality.
//!
//! Each helper mirrors the Python function of the same name. Where the Python raises (an
//! `assert` or an index out of range), the helper returns `None`, and [`stage1_equal`] then
//! compares the raw strings, as ORZ's `is_equiv` does in its `except` branch.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::bignum::BigRat;
use super::minerva::drop_thousands_separators;
use crate::rational::Rational;

/// `_remove_right_units`: cut the string at `\text{ ` (a unit); `None` if it occurs twice.
fn remove_right_units(s: &str) -> Option<String> {
    let mut parts = s.split("\\text{ ");
    let first = parts.next().unwrap_or("");
    match (parts.next(), parts.next()) {
        (None, _) => Some(String::from(s)),
        (Some(_), None) => Some(String::from(first)),
        (Some(_), Some(_)) => None,
    }
}

/// `_fix_sqrt`: `\sqrt3` to `\sqrt{3}`; `None` when `\sqrt` ends the string.
fn fix_sqrt(s: &str) -> Option<String> {
    let mut parts = s.split("\\sqrt");
    let mut out = String::from(parts.next().unwrap_or(""));
    for part in parts {
        let mut chars = part.chars();
        let first = chars.next()?;
        if first == '{' {
            out.push_str("\\sqrt");
            out.push_str(part);
        } else {
            out.push_str(&format!("\\sqrt{{{first}}}{}", chars.as_str()));
        }
    }
    Some(out)
}

/// `_fix_fracs`: `\frac12` to `\frac{1}{2}` and `\frac1{2}` to `\frac{1}{2}`; a `\frac` with
/// fewer than two characters after it leaves the whole string unchanged.
fn fix_fracs(s: &str) -> String {
    let mut parts = s.split("\\frac");
    let mut out = String::from(parts.next().unwrap_or(""));
    for part in parts {
        out.push_str("\\frac");
        let mut chars = part.chars();
        let (Some(a), second) = (chars.next(), chars.next()) else {
            return String::from(s);
        };
        if a == '{' {
            out.push_str(part);
            continue;
        }
        let Some(b) = second else {
            return String::from(s);
        };
        let post = chars.as_str();
        if b == '{' {
            out.push_str(&format!("{{{a}}}{{{post}"));
        } else {
            out.push_str(&format!("{{{a}}}{{{b}}}{post}"));
        }
    }
    out
}

/// True for the text Python's `str(int(t))` gives back unchanged: `0`, or an optional `-` and
/// digits without a leading zero.
fn is_canonical_int(t: &str) -> bool {
    let digits = t.strip_prefix('-').unwrap_or(t);
    let well_formed = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    well_formed && (t == "0" || !digits.starts_with('0'))
}

/// `_fix_a_slash_b`: `a/b` of integers to `\frac{a}{b}`.
fn fix_a_slash_b(s: &str) -> String {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        [a, b] if is_canonical_int(a) && is_canonical_int(b) => format!("\\frac{{{a}}}{{{b}}}"),
        _ => String::from(s),
    }
}

/// ORZ's `strip_string` (the MATH dataset's normalization, plus dropping `$` and every comma);
/// `None` where the Python raises.
pub fn strip_string(input: &str) -> Option<String> {
    let mut s = input.replace('\n', "").replace("\\!", "").replace("\\\\", "\\");
    s = s.replace("tfrac", "frac").replace("dfrac", "frac");
    s = s.replace("\\left", "").replace("\\right", "");
    s = s.replace("^{\\circ}", "").replace("^\\circ", "");
    s = s.replace("\\$", "").replace(['$', ','], "");
    s = remove_right_units(&s)?;
    s = s.replace("\\%", "").replace('%', "");
    s = s.replace(" .", " 0.").replace("{.", "{0.");
    if s.is_empty() {
        return Some(s);
    }
    if s.starts_with('.') {
        s.insert(0, '0');
    }
    let sides: Vec<&str> = s.split('=').collect();
    if let [left, right] = sides.as_slice()
        && left.chars().count() <= 2
    {
        s = String::from(*right);
    }
    s = fix_sqrt(&s)?;
    s = s.replace(' ', "");
    s = fix_fracs(&s);
    if s == "0.5" {
        s = String::from("\\frac{1}{2}");
    }
    Some(fix_a_slash_b(&s))
}

/// Python's `float(t)` for the forms that matter here (Rust's `f64` grammar: digits, `.`,
/// exponents, `inf`, `nan`).
fn parse_float(t: &str) -> Option<f64> {
    t.trim().parse::<f64>().ok()
}

/// A plain decimal (`-`, digits, one `.`) as an exact big rational.
fn big_decimal(t: &str) -> Option<BigRat> {
    let (neg, body) = match t.trim().strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.trim()),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    let int_part = if int_part.is_empty() { "0" } else { int_part };
    BigRat::from_decimal(int_part, if frac_part.is_empty() { "" } else { frac_part }, neg)
}

/// Numeric equality of two normalized strings, `None` unless both are numbers. Plain decimals
/// compare exactly (ORZ's float comparison calls `7241379310344827586206896551` and its
/// successor equal; this is the one place orz-rs is stricter), anything else as floats.
fn numbers_equal(x: &str, y: &str) -> Option<bool> {
    if let (Some(qx), Some(qy)) = (Rational::parse_decimal(x), Rational::parse_decimal(y))
        && !x.contains('/')
        && !y.contains('/')
    {
        return Some(qx == qy);
    }
    // Decimals too long for `i128` compare exactly too: no float rounding makes two different
    // 300-digit integers equal.
    if let (Some(bx), Some(by)) = (big_decimal(x), big_decimal(y)) {
        return Some(bx.equals(&by));
    }
    Some(parse_float(x)? == parse_float(y)?)
}

/// Stands for a list comma while [`strip_string`] runs (it drops every comma).
const LIST_COMMA: char = '\u{1}';

/// True if `s` holds a comma that is not a thousands separator of one number (`1, 2`,
/// `(1,2)`; not `1,000`).
fn has_list_comma(s: &str) -> bool {
    let t = s.replace(",\\!", ",").replace("{,}", ",").replace("\\$", "").replace('$', "");
    t.contains(',') && drop_thousands_separators(&t).is_none()
}

/// ORZ's `is_equiv`: both sides through [`strip_string`], equal as numbers when both parse as
/// numbers, otherwise equal as strings; raw string equality when the normalization fails.
///
/// Stricter than ORZ in two ways, each a false accept of ORZ's: a list keeps its commas (ORZ
/// reads `1, 2` and `0, 1, 2` as `12` and `012`, equal numbers), and a side that normalizes to
/// nothing (`\text{ even }`, cut as a unit) equals nothing.
pub fn stage1_equal(a: &str, b: &str) -> bool {
    if has_list_comma(a) || has_list_comma(b) {
        let keep = |s: &str| strip_string(&s.replace(',', LIST_COMMA.encode_utf8(&mut [0; 4])));
        return match (keep(a), keep(b)) {
            (Some(x), Some(y)) if x.is_empty() || y.is_empty() => a.trim() == b.trim(),
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        };
    }
    match (strip_string(a), strip_string(b)) {
        (Some(x), Some(y)) if x.is_empty() || y.is_empty() => a.trim() == b.trim(),
        (Some(x), Some(y)) => numbers_equal(&x, &y).unwrap_or(x == y),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(s: &str) -> String {
        strip_string(s).unwrap()
    }

    #[test]
    fn drops_newlines_thin_spaces_and_doubled_backslashes() {
        assert_eq!(strip("1\n2"), "12");
        assert_eq!(strip("1\\!000"), "1000");
        assert_eq!(strip("\\\\frac{1}{2}"), "\\frac{1}{2}");
    }

    #[test]
    fn tfrac_and_dfrac_become_frac() {
        assert_eq!(strip("\\dfrac{3}{4}"), "\\frac{3}{4}");
        assert_eq!(strip("\\tfrac{3}{4}"), "\\frac{3}{4}");
    }

    #[test]
    fn drops_left_right_degrees_dollars_commas() {
        assert_eq!(strip("\\left(1,2\\right)"), "(12)");
        assert_eq!(strip("90^\\circ"), "90");
        assert_eq!(strip("90^{\\circ}"), "90");
        assert_eq!(strip("\\$5"), "5");
        assert_eq!(strip("$5$"), "5");
        assert_eq!(strip("1,000"), "1000");
    }

    #[test]
    fn cuts_a_trailing_unit_and_fails_on_two() {
        assert_eq!(strip("5 \\text{ cm}"), "5");
        assert_eq!(strip_string("5\\text{ cm}\\text{ m}"), None);
    }

    #[test]
    fn drops_percent() {
        assert_eq!(strip("10\\%"), "10");
        assert_eq!(strip("10%"), "10");
    }

    #[test]
    fn leading_dots_gain_a_zero() {
        assert_eq!(strip(".5"), "\\frac{1}{2}");
        assert_eq!(strip(".25"), "0.25");
        assert_eq!(strip("x .3"), "x0.3");
        assert_eq!(strip("\\frac{.3}{2}"), "\\frac{0.3}{2}");
    }

    #[test]
    fn short_left_side_of_an_equation_is_dropped() {
        assert_eq!(strip("x = 5"), "5");
        assert_eq!(strip("ab=5"), "5");
        assert_eq!(strip("abc=5"), "abc=5");
        assert_eq!(strip("x=y=5"), "x=y=5");
    }

    #[test]
    fn sqrt_gains_braces() {
        assert_eq!(strip("\\sqrt3"), "\\sqrt{3}");
        assert_eq!(strip("2\\sqrt{3}"), "2\\sqrt{3}");
        assert_eq!(strip_string("2\\sqrt"), None);
    }

    #[test]
    fn spaces_are_dropped() {
        assert_eq!(strip("a + b"), "a+b");
    }

    #[test]
    fn short_fracs_gain_braces() {
        assert_eq!(strip("\\frac12"), "\\frac{1}{2}");
        assert_eq!(strip("\\frac1{2}"), "\\frac{1}{2}");
        assert_eq!(strip("\\frac12x"), "\\frac{1}{2}x");
        assert_eq!(strip("\\frac1"), "\\frac1");
    }

    #[test]
    fn half_and_integer_slash() {
        assert_eq!(strip("0.5"), "\\frac{1}{2}");
        assert_eq!(strip("3/4"), "\\frac{3}{4}");
        assert_eq!(strip("-3/4"), "\\frac{-3}{4}");
        assert_eq!(strip("03/4"), "03/4");
        assert_eq!(strip("x/4"), "x/4");
    }

    #[test]
    fn equality_uses_floats_then_strings_then_raw() {
        assert!(stage1_equal("2", "2.0"));
        assert!(stage1_equal("\\frac{1}{2}", "0.5"));
        assert!(stage1_equal("B", "B"));
        assert!(!stage1_equal("A", "B"));
        assert!(stage1_equal("\\sqrt", "\\sqrt"));
        assert!(!stage1_equal("nan", "nan"));
        assert!(stage1_equal("1e3", "1000"));
        assert!(!stage1_equal("7241379310344827586206896551", "7241379310344827586206896552"));
        let (a, b) = ("7".repeat(300), alloc::format!("{}8", "7".repeat(299)));
        assert!(!stage1_equal(&a, &b));
        assert!(stage1_equal(&a, &a.clone()));
    }

    #[test]
    fn lists_keep_their_commas() {
        assert!(!stage1_equal("1, 2", "0, 1, 2"));
        assert!(!stage1_equal("12, 3", "1, 23"));
        assert!(stage1_equal("1,2", "1, 2"));
        assert!(stage1_equal("1,000", "1000"));
        assert!(stage1_equal("(1,2)", "\\left(1, 2\\right)"));
    }

    #[test]
    fn a_side_cut_to_nothing_equals_nothing() {
        assert!(!stage1_equal("\\text{ even }", "\\text{ odd }"));
        assert!(stage1_equal("\\text{ even }", "\\text{ even }"));
    }
}
