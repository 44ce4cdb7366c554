//! Tokens of the LaTeX math subset the stage-2 parser understands.

use alloc::string::String;
use alloc::vec::Vec;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// Digits with at most one decimal point, as written (`12`, `0.25`).
    Num(String),
    /// A single ASCII letter.
    Letter(char),
    /// A control word without its backslash (`frac`, `pi`).
    Cmd(String),
    /// Punctuation or an operator: `+ - * / ^ _ ( ) [ ] { } , ! | = < >`.
    Sym(char),
    /// `\{`: an opening set brace.
    SetOpen,
    /// `\}`: a closing set brace.
    SetClose,
}

/// Why lexing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LexError {
    /// A character outside the supported subset.
    Unsupported,
    /// Three or more adjacent letters: a word, not a product of variables.
    Word,
    /// More tokens than the limit.
    TooLong,
}

/// Longest run of adjacent plain letters accepted as a product of variables (`AB`).
const MAX_LETTER_RUN: usize = 2;

/// Control words that may be glued to a following variable (`\cosx`, `\piR^2`), longest
/// first; a glued name splits into one of them and one or two letters.
const GLUEABLE: &[&str] = &[
    "arcsin", "arccos", "arctan", "theta", "alpha", "gamma", "delta", "sin", "cos", "tan", "sec", "csc",
    "cot", "log", "exp", "beta", "ln", "pi", "mu",
];

/// Control words that look glued but are not (`\cosh` is not `\cos h`).
const NOT_GLUED: &[&str] = &["sinh", "cosh", "tanh", "coth", "sech", "csch", "cdots", "lnot", "pmod"];

/// Splits a glued control word into the command and its trailing letters.
fn split_glued(name: &str) -> Option<(&'static str, &str)> {
    if NOT_GLUED.contains(&name) {
        return None;
    }
    GLUEABLE.iter().find_map(|cmd| {
        let rest = name.strip_prefix(cmd)?;
        (1..=MAX_LETTER_RUN).contains(&rest.len()).then_some((*cmd, rest))
    })
}

/// Maps the few Unicode math symbols models write to their LaTeX tokens.
fn unicode_token(c: char) -> Option<Tok> {
    Some(match c {
        '×' | '·' | '⋅' => Tok::Sym('*'),
        '−' | '–' => Tok::Sym('-'),
        '÷' => Tok::Cmd(String::from("div")),
        '√' => Tok::Cmd(String::from("sqrt")),
        'π' => Tok::Cmd(String::from("pi")),
        '∞' => Tok::Cmd(String::from("infty")),
        '±' => Tok::Cmd(String::from("pm")),
        '≤' => Tok::Cmd(String::from("le")),
        '≥' => Tok::Cmd(String::from("ge")),
        _ => return None,
    })
}

/// Splits `s` into tokens; at most `max_tokens` of them.
pub fn lex(s: &str, max_tokens: usize) -> Result<Vec<Tok>, LexError> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    let mut letter_run = 0usize;
    while let Some((start, c)) = chars.next() {
        if out.len() >= max_tokens {
            return Err(LexError::TooLong);
        }
        if c.is_ascii_alphabetic() {
            letter_run += 1;
            if letter_run > MAX_LETTER_RUN {
                return Err(LexError::Word);
            }
            out.push(Tok::Letter(c));
            continue;
        }
        letter_run = 0;
        match c {
            c if c.is_whitespace() || c == '~' => {}
            '0'..='9' | '.' => {
                let mut end = start + c.len_utf8();
                let mut seen_dot = c == '.';
                while let Some(&(i, d)) = chars.peek() {
                    let digit_follows =
                        s.get(i + 1..).and_then(|t| t.chars().next()).is_some_and(|n| n.is_ascii_digit());
                    if d.is_ascii_digit() || (d == '.' && !seen_dot && digit_follows) {
                        seen_dot |= d == '.';
                        end = i + 1;
                        chars.next();
                    } else {
                        break;
                    }
                }
                let text = s.get(start..end).unwrap_or("");
                if text == "." {
                    // A lone full stop (end of a sentence) carries no value.
                    continue;
                }
                out.push(Tok::Num(String::from(text)));
            }
            '\\' => match chars.peek().map(|&(_, n)| n) {
                Some(n) if n.is_ascii_alphabetic() => {
                    let mut name = String::new();
                    while let Some(&(_, l)) = chars.peek() {
                        if !l.is_ascii_alphabetic() {
                            break;
                        }
                        name.push(l);
                        chars.next();
                    }
                    match split_glued(&name) {
                        Some((cmd, rest)) => {
                            out.push(Tok::Cmd(String::from(cmd)));
                            out.extend(rest.chars().map(Tok::Letter));
                            letter_run = rest.len();
                        }
                        None => out.push(Tok::Cmd(name)),
                    }
                }
                Some(n) => {
                    chars.next();
                    match n {
                        '{' => out.push(Tok::SetOpen),
                        '}' => out.push(Tok::SetClose),
                        ',' | ';' | ':' | '!' | ' ' | '%' | '$' => {}
                        _ => return Err(LexError::Unsupported),
                    }
                }
                None => return Err(LexError::Unsupported),
            },
            '+' | '-' | '*' | '/' | '^' | '_' | '(' | ')' | '[' | ']' | '{' | '}' | ',' | '!' | '|' | '='
            | '<' | '>' => out.push(Tok::Sym(c)),
            '$' => {}
            _ => out.push(unicode_token(c).ok_or(LexError::Unsupported)?),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s, 1000).unwrap()
    }

    #[test]
    fn numbers_commands_and_symbols() {
        let t = toks("\\frac{12}{3.5}+x");
        assert_eq!(t[0], Tok::Cmd("frac".into()));
        assert_eq!(t[2], Tok::Num("12".into()));
        assert_eq!(t[5], Tok::Num("3.5".into()));
        assert_eq!(t[8], Tok::Letter('x'));
    }

    #[test]
    fn trailing_full_stop_is_ignored() {
        assert_eq!(toks("5."), vec![Tok::Num("5".into())]);
        assert_eq!(toks(".5"), vec![Tok::Num(".5".into())]);
    }

    #[test]
    fn set_braces_and_spacing_commands() {
        assert_eq!(toks("\\{1\\,\\}"), vec![Tok::SetOpen, Tok::Num("1".into()), Tok::SetClose]);
    }

    #[test]
    fn words_and_unknown_characters_fail() {
        assert_eq!(lex("abc", 100), Err(LexError::Word));
        assert_eq!(lex("a b c", 100).map(|t| t.len()), Ok(3));
        assert_eq!(lex("#", 100), Err(LexError::Unsupported));
        assert_eq!(lex("1+1+1", 3), Err(LexError::TooLong));
    }

    #[test]
    fn glued_control_words_split() {
        assert_eq!(toks("\\cosx"), vec![Tok::Cmd("cos".into()), Tok::Letter('x')]);
        assert_eq!(toks("\\piR"), vec![Tok::Cmd("pi".into()), Tok::Letter('R')]);
        assert_eq!(toks("\\cosh"), vec![Tok::Cmd("cosh".into())]);
        assert_eq!(toks("\\sin"), vec![Tok::Cmd("sin".into())]);
        assert_eq!(toks("\\cdots"), vec![Tok::Cmd("cdots".into())]);
        assert_eq!(lex("\\sinxyz", 100), Ok(vec![Tok::Cmd("sinxyz".into())]));
    }

    #[test]
    fn unicode_symbols_map_to_latex() {
        assert_eq!(toks("2×π"), vec![Tok::Num("2".into()), Tok::Sym('*'), Tok::Cmd("pi".into())]);
    }
}
