//! Values of expression trees: exact rationals where possible, `f64` otherwise, under a work
//! budget.

use alloc::collections::BTreeSet;
use alloc::string::String;
// Float math for no_std builds; with std, `f64`'s inherent methods take precedence.
#[allow(unused_imports)]
use num_traits::Float;

use super::latex::{BinOp, Expr, Func};
use crate::rational::Rational;

/// A value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    /// Exact.
    Q(Rational),
    /// Approximate and finite.
    F(f64),
    /// `\infty` (`true`: negative); only literal infinities, never an overflow.
    Inf(bool),
}

/// Relative tolerance of approximate comparisons.
pub const REL_TOL: f64 = 1e-6;
/// Absolute tolerance of approximate comparisons (for values near zero).
pub const ABS_TOL: f64 = 1e-9;
/// Largest integer exponent computed exactly.
const MAX_EXACT_EXP: i128 = 4096;
/// Largest factorial argument.
const MAX_FACTORIAL: i128 = 170;

impl Num {
    /// The value as an `f64` (infinities included).
    pub fn to_f64(self) -> f64 {
        match self {
            Num::Q(q) => q.to_f64(),
            Num::F(x) => x,
            Num::Inf(neg) => {
                if neg {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                }
            }
        }
    }

    /// True if two values are equal: exactly when both are exact, else within tolerance.
    pub fn approx_eq(self, other: Num) -> bool {
        match (self, other) {
            (Num::Q(a), Num::Q(b)) => a == b,
            (Num::Inf(a), Num::Inf(b)) => a == b,
            (Num::Inf(_), _) | (_, Num::Inf(_)) => false,
            (a, b) => {
                let (x, y) = (a.to_f64(), b.to_f64());
                (x - y).abs() <= ABS_TOL + REL_TOL * x.abs().max(y.abs())
            }
        }
    }
}

/// A finite float as a value; `None` for NaN or an overflow.
fn finite(x: f64) -> Option<Num> {
    x.is_finite().then_some(Num::F(x))
}

/// A cap on evaluation steps shared by everything one comparison evaluates.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    left: u64,
}

impl Budget {
    /// A budget of `steps` steps.
    pub fn new(steps: u64) -> Budget {
        Budget { left: steps }
    }

    /// Spends `n` steps; `None` when the budget is exhausted.
    pub fn spend(&mut self, n: u64) -> Option<()> {
        self.left = self.left.checked_sub(n)?;
        Some(())
    }
}

/// Where to evaluate: values of the variables (sorted by name) and the `\pm` sign choices
/// (bit `i` set: the `i`-th `\pm` subtracts).
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// `(name, value)` pairs.
    pub vars: &'a [(String, f64)],
    /// Sign choices of the `\pm` signs.
    pub signs: u32,
}

/// Adds the names of the variables of `e` to `out`.
pub fn collect_vars(e: &Expr, out: &mut BTreeSet<String>) {
    match e {
        Expr::Var(name) => {
            out.insert(name.clone());
        }
        Expr::Neg(a) | Expr::Call(_, a) => collect_vars(a, out),
        Expr::Bin(_, a, b)
        | Expr::PlusMinus(_, _, a, b)
        | Expr::Root(a, b)
        | Expr::Log(a, b)
        | Expr::Binom(a, b) => {
            collect_vars(a, out);
            collect_vars(b, out);
        }
        Expr::Num(_) | Expr::Float(_) | Expr::Pi | Expr::E | Expr::Infinity => {}
    }
}

fn int_of(n: Num) -> Option<i128> {
    match n {
        Num::Q(q) if q.is_integer() => Some(q.numer()),
        _ => None,
    }
}

/// Exact integer `k`-th root of a non-negative `n`, if there is one.
fn exact_root(n: i128, k: u32) -> Option<i128> {
    if n < 0 || k == 0 {
        return None;
    }
    let guess = (n as f64).powf(1.0 / f64::from(k)).round();
    if !(0.0..1e19).contains(&guess) {
        return None;
    }
    let g = guess as i128;
    (g.saturating_sub(1)..=g.saturating_add(1)).find(|c| {
        *c >= 0
            && i32::try_from(k).ok().and_then(|e| Rational::from_int(*c)?.checked_pow(e))
                == Rational::from_int(n)
    })
}

/// `x^(1/k)` of a value: exact for perfect powers of rationals, real odd roots of negatives.
fn root(x: Num, k: i128) -> Option<Num> {
    let k32 = u32::try_from(k).ok().filter(|k| (1..=64).contains(k))?;
    if let Num::Q(q) = x {
        let sign = if q.numer() < 0 && k % 2 == 1 { -1 } else { 1 };
        let exact = exact_root(q.numer() * sign, k32).zip(exact_root(q.denom(), k32));
        if let Some((n, d)) = exact {
            return Rational::new(n.checked_mul(sign)?, d).map(Num::Q);
        }
    }
    let v = x.to_f64();
    if v < 0.0 && k % 2 == 1 { finite(-(-v).powf(1.0 / k as f64)) } else { finite(v.powf(1.0 / k as f64)) }
}

/// `a op b`: exact when both are exact and nothing overflows, else a finite float.
pub fn arith(op: BinOp, a: Num, b: Num) -> Option<Num> {
    if let (Num::Q(x), Num::Q(y)) = (a, b) {
        let exact = match op {
            BinOp::Add => x.checked_add(y),
            BinOp::Sub => x.checked_sub(y),
            BinOp::Mul => x.checked_mul(y),
            BinOp::Div => x.checked_div(y),
            BinOp::Pow => pow_exact(x, y),
        };
        if let Some(q) = exact {
            return Some(Num::Q(q));
        }
        if op == BinOp::Div && y.is_zero() {
            return None;
        }
    }
    if matches!(a, Num::Inf(_)) || matches!(b, Num::Inf(_)) {
        return None;
    }
    let (x, y) = (a.to_f64(), b.to_f64());
    finite(match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => x / y,
        BinOp::Pow => return pow_float(a, b),
    })
}

fn pow_exact(x: Rational, y: Rational) -> Option<Rational> {
    if !y.is_integer() || y.numer().abs() > MAX_EXACT_EXP {
        return None;
    }
    x.checked_pow(i32::try_from(y.numer()).ok()?)
}

/// Powers that are not exact: rational exponents with odd denominators keep the sign of a
/// negative base (`(-8)^{1/3} = -2`).
fn pow_float(a: Num, b: Num) -> Option<Num> {
    if let Num::Q(e) = b
        && (2..=64).contains(&e.denom())
    {
        let r = root(a, e.denom())?;
        return arith(BinOp::Pow, r, Num::Q(Rational::from_int(e.numer())?));
    }
    finite(a.to_f64().powf(b.to_f64()))
}

fn factorial(n: i128, budget: &mut Budget) -> Option<Num> {
    if !(0..=MAX_FACTORIAL).contains(&n) {
        return None;
    }
    budget.spend(n.unsigned_abs() as u64)?;
    let mut acc = Num::Q(Rational::ONE);
    for k in 2..=n {
        acc = arith(BinOp::Mul, acc, Num::Q(Rational::from_int(k)?))?;
    }
    Some(acc)
}

fn binom(n: i128, k: i128, budget: &mut Budget) -> Option<Num> {
    if n < 0 || k < 0 || k > n {
        return Some(Num::Q(Rational::ZERO));
    }
    let k = k.min(n - k);
    budget.spend(u64::try_from(k).ok()?)?;
    let mut acc = Num::Q(Rational::ONE);
    for i in 0..k {
        let factor = Rational::new(n - i, i + 1)?;
        acc = arith(BinOp::Mul, acc, Num::Q(factor))?;
    }
    Some(acc)
}

fn call(f: Func, x: Num, budget: &mut Budget) -> Option<Num> {
    match (f, x) {
        (Func::Sqrt, _) => return root(x, 2),
        (Func::Abs, Num::Q(q)) => return Some(Num::Q(if q.numer() < 0 { q.checked_neg()? } else { q })),
        (Func::Factorial, _) => return factorial(int_of(x)?, budget),
        (_, Num::Inf(_)) => return None,
        (Func::Floor | Func::Ceil, Num::Q(q)) => {
            let down = q.numer().div_euclid(q.denom());
            let up = if q.is_integer() { down } else { down.checked_add(1)? };
            return Some(Num::Q(Rational::from_int(if f == Func::Floor { down } else { up })?));
        }
        _ => {}
    }
    let v = x.to_f64();
    finite(match f {
        Func::Sin => v.sin(),
        Func::Cos => v.cos(),
        Func::Tan => v.tan(),
        Func::Sec => v.cos().recip(),
        Func::Csc => v.sin().recip(),
        Func::Cot => v.tan().recip(),
        Func::Asin => v.asin(),
        Func::Acos => v.acos(),
        Func::Atan => v.atan(),
        Func::Ln => v.ln(),
        Func::Exp => v.exp(),
        Func::Abs => v.abs(),
        Func::Floor => v.floor(),
        Func::Ceil => v.ceil(),
        Func::Sqrt | Func::Factorial => return None,
    })
}

/// The value of `e` at `env`; `None` when undefined, not finite, unsupported or over budget.
pub fn eval(e: &Expr, env: &Env<'_>, budget: &mut Budget) -> Option<Num> {
    budget.spend(1)?;
    match e {
        Expr::Num(q) => Some(Num::Q(*q)),
        Expr::Float(x) => finite(*x),
        Expr::Var(name) => env.vars.iter().find(|(n, _)| n == name).map(|(_, v)| Num::F(*v)),
        Expr::Pi => Some(Num::F(core::f64::consts::PI)),
        Expr::E => Some(Num::F(core::f64::consts::E)),
        Expr::Infinity => Some(Num::Inf(false)),
        Expr::Neg(a) => match eval(a, env, budget)? {
            Num::Q(q) => q.checked_neg().map(Num::Q),
            Num::F(x) => Some(Num::F(-x)),
            Num::Inf(neg) => Some(Num::Inf(!neg)),
        },
        Expr::Bin(op, a, b) => arith(*op, eval(a, env, budget)?, eval(b, env, budget)?),
        Expr::PlusMinus(index, flip, a, b) => {
            let minus = (env.signs >> u32::from(*index)) & 1 == 1;
            let op = if minus != *flip { BinOp::Sub } else { BinOp::Add };
            arith(op, eval(a, env, budget)?, eval(b, env, budget)?)
        }
        Expr::Call(f, a) => call(*f, eval(a, env, budget)?, budget),
        Expr::Root(n, x) => root(eval(x, env, budget)?, int_of(eval(n, env, budget)?)?),
        Expr::Log(base, x) => {
            let (b, v) = (eval(base, env, budget)?.to_f64(), eval(x, env, budget)?.to_f64());
            finite(v.ln() / b.ln())
        }
        Expr::Binom(n, k) => binom(int_of(eval(n, env, budget)?)?, int_of(eval(k, env, budget)?)?, budget),
    }
}

#[cfg(test)]
mod tests {
    use super::super::latex::{lex, parse_expression};
    use super::*;

    fn value(s: &str) -> Option<Num> {
        let (e, _) = parse_expression(&lex(s, 1000).unwrap(), 32).unwrap();
        eval(&e, &Env { vars: &[], signs: 0 }, &mut Budget::new(100_000))
    }

    fn q(n: i128, d: i128) -> Option<Num> {
        Some(Num::Q(Rational::new(n, d).unwrap()))
    }

    #[test]
    fn exact_arithmetic() {
        assert_eq!(value("\\frac{1}{2}+\\frac{1}{3}"), q(5, 6));
        assert_eq!(value("2^{10}"), q(1024, 1));
        assert_eq!(value("2^{-2}"), q(1, 4));
        assert_eq!(value("\\sqrt{\\frac{9}{4}}"), q(3, 2));
        assert_eq!(value("\\sqrt[3]{-8}"), q(-2, 1));
        assert_eq!(value("8^{2/3}"), q(4, 1));
        assert_eq!(value("5!"), q(120, 1));
        assert_eq!(value("\\binom{5}{2}"), q(10, 1));
        assert_eq!(value("\\lfloor 7/2 \\rfloor"), q(3, 1));
        assert_eq!(value("|-3|"), q(3, 1));
    }

    #[test]
    fn irrational_values_are_floats() {
        assert!(value("2\\sqrt{2}").unwrap().approx_eq(value("\\sqrt{8}").unwrap()));
        assert!(value("\\log_2 8").unwrap().approx_eq(Num::F(3.0)));
        assert!(value("\\sin\\frac{\\pi}{2}").unwrap().approx_eq(Num::F(1.0)));
        assert!(!value("\\sqrt{3}").unwrap().approx_eq(Num::F(1.732)));
    }

    #[test]
    fn undefined_and_huge_are_none() {
        assert_eq!(value("1/0"), None);
        assert_eq!(value("\\sqrt{-1}"), None);
        assert_eq!(value("10^{10^{10}}"), None);
        assert_eq!(value("1000!"), None);
        assert_eq!(value("\\infty+1"), None);
        assert_eq!(value("-\\infty"), Some(Num::Inf(true)));
    }

    #[test]
    fn budget_is_enforced() {
        let (e, _) = parse_expression(&lex("1+1+1+1", 100).unwrap(), 32).unwrap();
        assert_eq!(eval(&e, &Env { vars: &[], signs: 0 }, &mut Budget::new(3)), None);
    }
}
