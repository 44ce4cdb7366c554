//! The Countdown equation language: a tokenizer, a recursive-descent parser and an exact
//! evaluator over [`Rational`], standing in for TinyZero's Python `eval` (never `eval`).
//!
//! Grammar (Python's precedence and associativity for the subset TinyZero's character check
//! lets through):
//!
//! ```text
//! expr   := term (('+' | '-') term)*
//! term   := unary (('*' | '/') unary)*
//! unary  := ('+' | '-') unary | atom
//! atom   := number | '(' expr ')'
//! number := digits ['.' digits?] | '.' digits     (Python literals: `3`, `3.`, `.5`, `3.25`)
//! ```
//!
//! Whitespace is Python's: space, tab and form feed. Where Python's `eval` would accept more
//! than the recipe's "`+ - * /` and parentheses", this evaluator refuses, so the reward is 0.1:
//! `**` (power) and `//` (floor division) are errors. Like Python, an integer literal with a
//! leading zero (`07`) is an error (`00` is 0), `2(3)` is an error (Python: `int` is not
//! callable) and unary signs are allowed (`-3 + 4`).
//!
//! Bounds: inputs longer than [`MAX_EXPR_LEN`] bytes or nested deeper than [`MAX_DEPTH`]
//! (parentheses and unary signs together; Python's tokenizer itself refuses 200 nested
//! parentheses) are errors, so time and stack are bounded. Arithmetic is exact; any
//! overflow of `i128` (a literal of about 39 digits, or an intermediate value) is
//! [`ExprError::Overflow`], where Python would compute on. Valid Countdown equations (a few
//! numbers below 100) are far from either bound.

use alloc::vec::Vec;
use core::fmt;

use crate::error::Error;
use crate::rational::Rational;

/// Longest equation accepted, in bytes.
pub const MAX_EXPR_LEN: usize = 4096;
/// Deepest nesting accepted (parentheses plus unary signs).
pub const MAX_DEPTH: usize = 200;

/// Why an equation does not evaluate. Positions are byte offsets into the equation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExprError {
    /// Longer than [`MAX_EXPR_LEN`] bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A character other than ASCII digits, `+ - * / ( ) .`, space, tab or form feed.
    InvalidChar {
        /// Where.
        at: usize,
    },
    /// `**`: Python's power, refused (the recipe allows `+ - * /` only).
    Power {
        /// Where.
        at: usize,
    },
    /// `//`: Python's floor division, refused.
    FloorDivision {
        /// Where.
        at: usize,
    },
    /// A malformed number: a lone `.`, or an integer with a leading zero such as `07`.
    BadNumber {
        /// Where it starts.
        at: usize,
    },
    /// A token where it cannot stand (e.g. `3 4`, `(`, `)`, `2(3)`).
    Unexpected {
        /// Where.
        at: usize,
    },
    /// The equation ends too early (empty, `3 +`, `(3`).
    UnexpectedEnd,
    /// Division by zero.
    DivisionByZero,
    /// A literal or an intermediate value does not fit the exact `i128` rational.
    Overflow,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExprError::TooLong { len } => write!(f, "equation of {len} bytes exceeds {MAX_EXPR_LEN}"),
            ExprError::TooDeep => write!(f, "equation nested deeper than {MAX_DEPTH}"),
            ExprError::InvalidChar { at } => write!(f, "invalid character at byte {at}"),
            ExprError::Power { at } => write!(f, "`**` (power) at byte {at} is not allowed"),
            ExprError::FloorDivision { at } => write!(f, "`//` (floor division) at byte {at} is not allowed"),
            ExprError::BadNumber { at } => write!(f, "malformed number at byte {at}"),
            ExprError::Unexpected { at } => write!(f, "unexpected token at byte {at}"),
            ExprError::UnexpectedEnd => write!(f, "unexpected end of equation"),
            ExprError::DivisionByZero => write!(f, "division by zero"),
            ExprError::Overflow => write!(f, "arithmetic overflow"),
        }
    }
}

impl core::error::Error for ExprError {}

impl From<ExprError> for Error {
    fn from(e: ExprError) -> Self {
        Error::invalid("countdown::expr", alloc::format!("{e}"))
    }
}

/// One token with its byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Num(Rational),
    Plus,
    Minus,
    Star,
    Slash,
    LParen,
    RParen,
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x0c)
}

/// Splits `src` into tokens; all characters are checked before anything else happens.
fn tokenize(src: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    let bytes = src.as_bytes();
    if let Some(at) =
        bytes.iter().position(|&b| !(b.is_ascii_digit() || is_space(b) || b"+-*/().".contains(&b)))
    {
        return Err(ExprError::InvalidChar { at });
    }
    let mut toks = Vec::new();
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        let next = bytes.get(i + 1).copied();
        let tok = match b {
            _ if is_space(b) => {
                i += 1;
                continue;
            }
            b'*' if next == Some(b'*') => return Err(ExprError::Power { at: i }),
            b'/' if next == Some(b'/') => return Err(ExprError::FloorDivision { at: i }),
            b'+' => Tok::Plus,
            b'-' => Tok::Minus,
            b'*' => Tok::Star,
            b'/' => Tok::Slash,
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            _ => {
                let (value, end) = number(bytes, i)?;
                toks.push((Tok::Num(value), i));
                i = end;
                continue;
            }
        };
        toks.push((tok, i));
        i += 1;
    }
    Ok(toks)
}

/// Lexes the number literal starting at `start` (a digit or `.`); returns it and its end.
fn number(bytes: &[u8], start: usize) -> Result<(Rational, usize), ExprError> {
    let digits_from = |from: usize| {
        bytes.get(from..).map_or(from, |rest| from + rest.iter().take_while(|b| b.is_ascii_digit()).count())
    };
    let int_end = digits_from(start);
    let (end, has_dot) = match bytes.get(int_end) {
        Some(b'.') => (digits_from(int_end + 1), true),
        _ => (int_end, false),
    };
    let text = bytes.get(start..end).ok_or(ExprError::BadNumber { at: start })?;
    let int_part = bytes.get(start..int_end).unwrap_or_default();
    // `.` alone is not a number; Python refuses `07` but accepts `00` and `07.5`.
    let lone_dot = int_end == start && end == int_end + 1;
    let leading_zero = !has_dot
        && int_part.len() > 1
        && int_part.first() == Some(&b'0')
        && int_part.iter().any(|&b| b != b'0');
    if lone_dot || leading_zero {
        return Err(ExprError::BadNumber { at: start });
    }
    let text = core::str::from_utf8(text).map_err(|_| ExprError::BadNumber { at: start })?;
    let value = Rational::parse_decimal(text).ok_or(ExprError::Overflow)?;
    Ok((value, end))
}

struct Parser<'t> {
    toks: &'t [(Tok, usize)],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<Tok> {
        self.toks.get(self.pos).map(|&(t, _)| t)
    }

    fn unexpected(&self) -> ExprError {
        self.toks.get(self.pos).map_or(ExprError::UnexpectedEnd, |&(_, at)| ExprError::Unexpected { at })
    }

    fn expr(&mut self, depth: usize) -> Result<Rational, ExprError> {
        let mut acc = self.term(depth)?;
        loop {
            let op = match self.peek() {
                Some(Tok::Plus) => Rational::checked_add,
                Some(Tok::Minus) => Rational::checked_sub,
                _ => return Ok(acc),
            };
            self.pos += 1;
            let rhs = self.term(depth)?;
            acc = op(acc, rhs).ok_or(ExprError::Overflow)?;
        }
    }

    fn term(&mut self, depth: usize) -> Result<Rational, ExprError> {
        let mut acc = self.unary(depth)?;
        loop {
            match self.peek() {
                Some(Tok::Star) => {
                    self.pos += 1;
                    let rhs = self.unary(depth)?;
                    acc = acc.checked_mul(rhs).ok_or(ExprError::Overflow)?;
                }
                Some(Tok::Slash) => {
                    self.pos += 1;
                    let rhs = self.unary(depth)?;
                    if rhs.is_zero() {
                        return Err(ExprError::DivisionByZero);
                    }
                    acc = acc.checked_div(rhs).ok_or(ExprError::Overflow)?;
                }
                _ => return Ok(acc),
            }
        }
    }

    fn unary(&mut self, depth: usize) -> Result<Rational, ExprError> {
        let depth = depth + 1;
        if depth > MAX_DEPTH {
            return Err(ExprError::TooDeep);
        }
        match self.peek() {
            Some(Tok::Plus) => {
                self.pos += 1;
                self.unary(depth)
            }
            Some(Tok::Minus) => {
                self.pos += 1;
                self.unary(depth)?.checked_neg().ok_or(ExprError::Overflow)
            }
            Some(Tok::Num(v)) => {
                self.pos += 1;
                Ok(v)
            }
            Some(Tok::LParen) => {
                self.pos += 1;
                let v = self.expr(depth)?;
                if self.peek() != Some(Tok::RParen) {
                    return Err(self.unexpected());
                }
                self.pos += 1;
                Ok(v)
            }
            _ => Err(self.unexpected()),
        }
    }
}

/// Evaluates a Countdown equation exactly (see the module docs for the language and bounds).
pub fn evaluate(equation: &str) -> Result<Rational, ExprError> {
    if equation.len() > MAX_EXPR_LEN {
        return Err(ExprError::TooLong { len: equation.len() });
    }
    let toks = tokenize(equation)?;
    let mut parser = Parser { toks: &toks, pos: 0 };
    let value = parser.expr(0)?;
    if parser.pos < toks.len() {
        return Err(parser.unexpected());
    }
    Ok(value)
}

#[cfg(test)]
#[path = "expr_tests.rs"]
mod tests;
