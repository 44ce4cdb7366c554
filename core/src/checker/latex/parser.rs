//! A bounded recursive-descent parser from tokens to an expression tree.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::super::bignum::BigRat;
use super::lexer::Tok;
use crate::rational::Rational;

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `a + b`.
    Add,
    /// `a - b`.
    Sub,
    /// `a * b`, `a \cdot b`, `a \times b`, `ab`.
    Mul,
    /// `a / b`, `\frac{a}{b}`.
    Div,
    /// `a ^ b`.
    Pow,
}

/// One-argument functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `\sqrt{x}`.
    Sqrt,
    /// `|x|`.
    Abs,
    /// `x!`.
    Factorial,
    /// `\lfloor x \rfloor`.
    Floor,
    /// `\lceil x \rceil`.
    Ceil,
    /// `\sin`.
    Sin,
    /// `\cos`.
    Cos,
    /// `\tan`.
    Tan,
    /// `\sec`.
    Sec,
    /// `\csc`.
    Csc,
    /// `\cot`.
    Cot,
    /// `\arcsin`.
    Asin,
    /// `\arccos`.
    Acos,
    /// `\arctan`.
    Atan,
    /// `\ln` and `\log` without a base (natural logarithm, as sympy reads `\log`).
    Ln,
    /// `\exp`.
    Exp,
}

/// An expression tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// An exact number literal.
    Num(Rational),
    /// An exact number literal too large for [`Rational`].
    Big(BigRat),
    /// A number literal too large for exact arithmetic.
    Float(f64),
    /// A variable (`x`, `a_1`, `\alpha`).
    Var(String),
    /// π.
    Pi,
    /// Euler's number `e`.
    E,
    /// `\infty`.
    Infinity,
    /// `-x`.
    Neg(Box<Expr>),
    /// A binary operation.
    Bin(BinOp, Box<Expr>, Box<Expr>),
    /// `a \pm b` (`index`: which sign choice; `flip`: `\mp`).
    PlusMinus(u8, bool, Box<Expr>, Box<Expr>),
    /// A function applied to an argument.
    Call(Func, Box<Expr>),
    /// `\sqrt[n]{x}`: (n, x).
    Root(Box<Expr>, Box<Expr>),
    /// `\log_b x`: (b, x).
    Log(Box<Expr>, Box<Expr>),
    /// `\binom{n}{k}`.
    Binom(Box<Expr>, Box<Expr>),
}

/// Why parsing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// A token the grammar does not accept here.
    Unexpected,
    /// The input ended too early.
    Eof,
    /// Nested deeper than the limit.
    TooDeep,
    /// More `\pm` signs than the limit.
    TooManyPm,
}

/// Most `\pm` / `\mp` signs in one expression (each doubles the values to compare).
pub const MAX_PM: u8 = 4;

fn func_named(name: &str) -> Option<Func> {
    Some(match name {
        "sin" => Func::Sin,
        "cos" => Func::Cos,
        "tan" => Func::Tan,
        "sec" => Func::Sec,
        "csc" => Func::Csc,
        "cot" => Func::Cot,
        "arcsin" => Func::Asin,
        "arccos" => Func::Acos,
        "arctan" => Func::Atan,
        "ln" | "log" => Func::Ln,
        "exp" => Func::Exp,
        _ => return None,
    })
}

const GREEK: &[&str] = &[
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "vartheta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "rho",
    "sigma",
    "tau",
    "phi",
    "varphi",
    "chi",
    "psi",
    "omega",
    "Gamma",
    "Delta",
    "Theta",
    "Lambda",
    "Sigma",
    "Phi",
    "Psi",
    "Omega",
];

/// Commands whose braced argument is just unwrapped (`\mathbf{v}` is `v`).
const WRAPPERS: &[&str] = &["text", "textbf", "mathrm", "mathbf", "mbox", "mathit", "textit", "boxed"];

/// The parser state: tokens, a cursor, the nesting depth and the `\pm` count.
pub struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    depth: usize,
    max_depth: usize,
    pm: u8,
    abs_depth: usize,
}

/// Parses a whole token list as one expression; returns it with its number of `\pm` signs.
pub fn parse_expression(toks: &[Tok], max_depth: usize) -> Result<(Expr, u8), ParseError> {
    let mut p = Parser { toks: toks.to_vec(), pos: 0, depth: 0, max_depth, pm: 0, abs_depth: 0 };
    let e = p.expr()?;
    if p.pos != p.toks.len() {
        return Err(ParseError::Unexpected);
    }
    Ok((e, p.pm))
}

/// A number literal: small exact, big exact, else a float.
fn number(text: &str) -> Result<Expr, ParseError> {
    if let Some(q) = Rational::parse_decimal(text) {
        return Ok(Expr::Num(q));
    }
    let (int_part, frac_part) = text.split_once('.').unwrap_or((text, ""));
    match BigRat::from_decimal(int_part, frac_part, false) {
        Some(b) => Ok(Expr::Big(b)),
        None => Ok(Expr::Float(text.parse::<f64>().map_err(|_| ParseError::Unexpected)?)),
    }
}

/// The integer value of a plain integer literal.
fn small_int(e: &Expr) -> Option<i128> {
    match e {
        Expr::Num(q) if q.is_integer() && q.numer() >= 0 => Some(q.numer()),
        _ => None,
    }
}

/// `n \frac{p}{q}` with `0 < p < q` (integers): the mixed number `n + p/q`, as written on
/// MATH answers (`4\frac{2}{3}` is 14/3, `1\frac34` is 7/4); `None` for any other product.
fn mixed_number(whole: &Expr, frac: &Expr) -> Option<Expr> {
    let Expr::Bin(BinOp::Div, p, q) = frac else { return None };
    let (p, q) = (small_int(p)?, small_int(q)?);
    if !(0 < p && p < q) {
        return None;
    }
    let (negative, w) = match whole {
        Expr::Neg(w) => (true, &**w),
        w => (false, w),
    };
    small_int(w)?;
    let sum = bin(BinOp::Add, w.clone(), frac.clone());
    Some(if negative { Expr::Neg(Box::new(sum)) } else { sum })
}

fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
    Expr::Bin(op, Box::new(a), Box::new(b))
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += usize::from(t.is_some());
        t
    }

    fn eat_sym(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(&Tok::Sym(c));
        self.pos += usize::from(hit);
        hit
    }

    fn expect_sym(&mut self, c: char) -> Result<(), ParseError> {
        if self.eat_sym(c) { Ok(()) } else { Err(ParseError::Unexpected) }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > self.max_depth { Err(ParseError::TooDeep) } else { Ok(()) }
    }

    fn is_cmd(&self, names: &[&str]) -> bool {
        matches!(self.peek(), Some(Tok::Cmd(n)) if names.contains(&n.as_str()))
    }

    /// `term (('+' | '-' | '\pm' | '\mp') term)*`.
    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let mut acc = self.term()?;
        loop {
            if self.eat_sym('+') {
                acc = bin(BinOp::Add, acc, self.term()?);
            } else if self.eat_sym('-') {
                acc = bin(BinOp::Sub, acc, self.term()?);
            } else if self.is_cmd(&["pm", "mp"]) {
                let flip = self.next() == Some(Tok::Cmd(String::from("mp")));
                let index = self.new_pm()?;
                acc = Expr::PlusMinus(index, flip, Box::new(acc), Box::new(self.term()?));
            } else {
                break;
            }
        }
        self.depth -= 1;
        Ok(acc)
    }

    fn new_pm(&mut self) -> Result<u8, ParseError> {
        let index = self.pm;
        if index >= MAX_PM {
            return Err(ParseError::TooManyPm);
        }
        self.pm += 1;
        Ok(index)
    }

    fn starts_atom(&self) -> bool {
        match self.peek() {
            Some(Tok::Num(_) | Tok::Letter(_)) => true,
            Some(Tok::Sym(c)) => matches!(c, '(' | '[' | '{') || (*c == '|' && self.abs_depth == 0),
            Some(Tok::Cmd(n)) => {
                !matches!(n.as_str(), "cdot" | "times" | "div" | "pm" | "mp" | "rfloor" | "rceil")
            }
            _ => false,
        }
    }

    /// `factor (('*' | '/' | '\cdot' | '\times' | '\div' | implicit) factor)*`.
    fn term(&mut self) -> Result<Expr, ParseError> {
        let mut acc = self.factor()?;
        loop {
            if self.eat_sym('*') || self.is_cmd(&["cdot", "times"]) && self.next().is_some() {
                acc = bin(BinOp::Mul, acc, self.factor()?);
            } else if self.eat_sym('/') || self.is_cmd(&["div"]) && self.next().is_some() {
                acc = bin(BinOp::Div, acc, self.factor()?);
            } else if self.starts_atom() {
                let frac_next = self.is_cmd(&["frac", "dfrac", "tfrac"]);
                let rhs = self.power()?;
                acc = match (frac_next, &acc) {
                    (true, Expr::Num(_) | Expr::Neg(_)) => {
                        mixed_number(&acc, &rhs).unwrap_or_else(|| bin(BinOp::Mul, acc, rhs))
                    }
                    _ => bin(BinOp::Mul, acc, rhs),
                };
            } else {
                return Ok(acc);
            }
        }
    }

    /// Unary signs, then a power.
    fn factor(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let e = if self.eat_sym('-') {
            Expr::Neg(Box::new(self.factor()?))
        } else if self.eat_sym('+') {
            self.factor()?
        } else if self.is_cmd(&["pm", "mp"]) {
            let flip = self.next() == Some(Tok::Cmd(String::from("mp")));
            let index = self.new_pm()?;
            Expr::PlusMinus(index, flip, Box::new(Expr::Num(Rational::ZERO)), Box::new(self.factor()?))
        } else {
            self.power()?
        };
        self.depth -= 1;
        Ok(e)
    }

    /// `postfix ('^' argument)?`, with `!` after the base.
    fn power(&mut self) -> Result<Expr, ParseError> {
        let mut base = self.atom()?;
        while self.eat_sym('!') {
            base = Expr::Call(Func::Factorial, Box::new(base));
        }
        if self.eat_sym('^') {
            let exp =
                if self.eat_sym('-') { Expr::Neg(Box::new(self.argument()?)) } else { self.argument()? };
            base = bin(BinOp::Pow, base, exp);
        }
        Ok(base)
    }

    /// A macro argument: a braced group, or a single token (one digit of a number: `\frac12`).
    fn argument(&mut self) -> Result<Expr, ParseError> {
        if self.eat_sym('{') {
            let e = self.expr()?;
            self.expect_sym('}')?;
            return Ok(e);
        }
        if let Some(Tok::Num(text)) = self.peek() {
            let mut chars = text.chars();
            let first = chars.next().ok_or(ParseError::Unexpected)?;
            let rest = String::from(chars.as_str());
            if first.is_ascii_digit() && !rest.is_empty() {
                if let Some(slot) = self.toks.get_mut(self.pos) {
                    *slot = Tok::Num(rest);
                }
                return Ok(Expr::Num(
                    Rational::from_int(i128::from(first as u8 - b'0')).unwrap_or(Rational::ZERO),
                ));
            }
        }
        self.enter()?;
        let e = self.atom();
        self.depth -= 1;
        e
    }

    fn group(&mut self, close: char) -> Result<Expr, ParseError> {
        let e = self.expr()?;
        self.expect_sym(close)?;
        Ok(e)
    }

    /// The text of a subscript (`_1`, `_{n+1}`), used as part of a variable's name.
    fn subscript(&mut self) -> Result<String, ParseError> {
        let mut name = String::from("_");
        let mut depth = 0usize;
        loop {
            let t = self.next().ok_or(ParseError::Eof)?;
            match &t {
                Tok::Sym('{') => depth += 1,
                Tok::Sym('}') => depth = depth.checked_sub(1).ok_or(ParseError::Unexpected)?,
                Tok::Num(n) => name.push_str(n),
                Tok::Letter(c) | Tok::Sym(c) => name.push(*c),
                Tok::Cmd(c) => name.push_str(c),
                Tok::SetOpen | Tok::SetClose => return Err(ParseError::Unexpected),
            }
            if depth == 0 {
                return Ok(name);
            }
        }
    }

    fn atom(&mut self) -> Result<Expr, ParseError> {
        let tok = self.next().ok_or(ParseError::Eof)?;
        Ok(match tok {
            Tok::Num(text) if self.peek() == Some(&Tok::Sym('_')) && !text.contains('.') => {
                // A numeral in another base (`52_8`, `52_{8}`): a value of its own, equal only
                // to the same digits in the same base.
                self.pos += 1;
                let mut name = String::from(text.trim_start_matches('0'));
                name.push_str(&self.subscript()?);
                Expr::Var(name)
            }
            Tok::Num(text) => number(&text)?,
            Tok::Letter('e') => Expr::E,
            Tok::Letter(c) => {
                let mut name = String::from(c);
                if self.eat_sym('_') {
                    name.push_str(&self.subscript()?);
                }
                Expr::Var(name)
            }
            Tok::Sym('(') => self.group(')')?,
            Tok::Sym('[') => self.group(']')?,
            Tok::Sym('{') => self.group('}')?,
            Tok::Sym('|') => {
                self.abs_depth += 1;
                let e = self.group('|');
                self.abs_depth -= 1;
                Expr::Call(Func::Abs, Box::new(e?))
            }
            Tok::Cmd(name) => self.command(&name)?,
            _ => return Err(ParseError::Unexpected),
        })
    }

    fn command(&mut self, name: &str) -> Result<Expr, ParseError> {
        Ok(match name {
            "frac" | "dfrac" | "tfrac" | "cfrac" => {
                let n = self.argument()?;
                bin(BinOp::Div, n, self.argument()?)
            }
            "binom" | "dbinom" | "tbinom" => {
                let n = self.argument()?;
                Expr::Binom(Box::new(n), Box::new(self.argument()?))
            }
            "sqrt" => {
                if self.eat_sym('[') {
                    let n = self.group(']')?;
                    Expr::Root(Box::new(n), Box::new(self.argument()?))
                } else {
                    Expr::Call(Func::Sqrt, Box::new(self.argument()?))
                }
            }
            "pi" => Expr::Pi,
            "infty" | "infin" => Expr::Infinity,
            "lfloor" => Expr::Call(Func::Floor, Box::new(self.closed_by("rfloor")?)),
            "lceil" => Expr::Call(Func::Ceil, Box::new(self.closed_by("rceil")?)),
            "log" if self.eat_sym('_') => {
                let base = self.argument()?;
                Expr::Log(Box::new(base), Box::new(self.function_argument()?))
            }
            n if WRAPPERS.contains(&n) => self.argument()?,
            n if GREEK.contains(&n) => {
                let mut var = String::from("\\");
                var.push_str(n);
                Expr::Var(var)
            }
            n => {
                let f = func_named(n).ok_or(ParseError::Unexpected)?;
                // `\sin^2 x` is `(\sin x)^2`; `\tan^{-1} x` is `\arctan x`.
                let power = if self.eat_sym('^') {
                    if self.eat_sym('-') {
                        Some(Expr::Neg(Box::new(self.argument()?)))
                    } else {
                        Some(self.argument()?)
                    }
                } else {
                    None
                };
                let inverse = match (&power, f) {
                    (Some(Expr::Neg(one)), Func::Sin | Func::Cos | Func::Tan)
                        if small_int(one) == Some(1) =>
                    {
                        Some(match f {
                            Func::Sin => Func::Asin,
                            Func::Cos => Func::Acos,
                            _ => Func::Atan,
                        })
                    }
                    _ => None,
                };
                let call = Expr::Call(inverse.unwrap_or(f), Box::new(self.function_argument()?));
                match (power, inverse) {
                    (Some(p), None) => bin(BinOp::Pow, call, p),
                    _ => call,
                }
            }
        })
    }

    fn closed_by(&mut self, close: &str) -> Result<Expr, ParseError> {
        let e = self.expr()?;
        if self.next() == Some(Tok::Cmd(String::from(close))) { Ok(e) } else { Err(ParseError::Unexpected) }
    }

    /// The argument of `\sin`, `\ln`, ...: a parenthesized or braced group, else one power.
    fn function_argument(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let e = if self.eat_sym('(') { self.group(')') } else { self.power() };
        self.depth -= 1;
        e
    }
}

#[cfg(test)]
mod tests {
    use super::super::lexer::lex;
    use super::*;

    fn parse(s: &str) -> Result<Expr, ParseError> {
        parse_expression(&lex(s, 1000).unwrap(), 32).map(|(e, _)| e)
    }

    fn num(n: i128) -> Expr {
        Expr::Num(Rational::from_int(n).unwrap())
    }

    #[test]
    fn precedence_and_implicit_multiplication() {
        assert_eq!(parse("1+2*3").unwrap(), bin(BinOp::Add, num(1), bin(BinOp::Mul, num(2), num(3))));
        assert_eq!(parse("2x").unwrap(), bin(BinOp::Mul, num(2), Expr::Var("x".into())));
        assert_eq!(parse("-2^2").unwrap(), Expr::Neg(Box::new(bin(BinOp::Pow, num(2), num(2)))));
    }

    #[test]
    fn short_macro_arguments_take_one_digit() {
        assert_eq!(parse("\\frac12").unwrap(), bin(BinOp::Div, num(1), num(2)));
        assert_eq!(
            parse("x^23").unwrap(),
            bin(BinOp::Mul, bin(BinOp::Pow, Expr::Var("x".into()), num(2)), num(3))
        );
        assert_eq!(parse("\\sqrt2").unwrap(), Expr::Call(Func::Sqrt, Box::new(num(2))));
    }

    #[test]
    fn roots_logs_binomials_functions() {
        assert!(matches!(parse("\\sqrt[3]{8}").unwrap(), Expr::Root(..)));
        assert!(matches!(parse("\\log_2 8").unwrap(), Expr::Log(..)));
        assert!(matches!(parse("\\binom{5}{2}").unwrap(), Expr::Binom(..)));
        assert!(matches!(parse("\\sin^2 x").unwrap(), Expr::Bin(BinOp::Pow, ..)));
        assert!(matches!(parse("|x-1|").unwrap(), Expr::Call(Func::Abs, _)));
        assert!(matches!(parse("\\lfloor x \\rfloor").unwrap(), Expr::Call(Func::Floor, _)));
    }

    #[test]
    fn variables_with_subscripts_and_greek() {
        assert_eq!(parse("a_{1}").unwrap(), Expr::Var("a_1".into()));
        assert_eq!(parse("\\alpha").unwrap(), Expr::Var("\\alpha".into()));
    }

    #[test]
    fn plus_minus_is_counted() {
        let (_, pm) = parse_expression(&lex("1\\pm\\sqrt{2}", 100).unwrap(), 32).unwrap();
        assert_eq!(pm, 1);
        let many = "\\pm1".repeat(5);
        assert_eq!(parse_expression(&lex(&many, 100).unwrap(), 32).err(), Some(ParseError::TooManyPm));
    }

    #[test]
    fn errors_not_panics() {
        assert_eq!(parse("\\frac{1}").err(), Some(ParseError::Eof));
        assert_eq!(parse("(1").err(), Some(ParseError::Unexpected));
        assert_eq!(parse("\\unknown").err(), Some(ParseError::Unexpected));
        assert_eq!(parse(&"(".repeat(40)).err(), Some(ParseError::TooDeep));
        assert_eq!(parse(&"-".repeat(40)).err(), Some(ParseError::TooDeep));
        assert!(parse("1)").is_err());
    }
}
