//! Values of expression trees: exact rationals where possible, `f64` otherwise, under a work
//! budget.

use alloc::collections::BTreeSet;
use alloc::string::String;
// Float math for no_std builds; with std, `f64`'s inherent methods take precedence.
#[allow(unused_imports)]
use num_traits::Float;

use super::latex::{BinOp, Expr, Func};
use crate::rational::Rational;

use super::bignum::BigRat;
pub use super::value::{ABS_TOL, Num, REL_TOL, arith};
use super::value::{big, finite, root};

/// Largest factorial argument computed exactly (2001! has 5736 digits).
const MAX_FACTORIAL: i128 = 2100;

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
        Expr::Num(_) | Expr::Big(_) | Expr::Float(_) | Expr::Pi | Expr::E | Expr::Infinity => {}
    }
}

fn int_of(n: &Num) -> Option<i128> {
    n.as_int()
}

/// Γ(x) for a real `x` (Lanczos, g = 7, 9 terms; reflection below 1/2); `None` at poles.
fn gamma(x: f64) -> Option<f64> {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x <= 0.0 && x == x.floor() {
        return None;
    }
    if x < 0.5 {
        let s = (core::f64::consts::PI * x).sin();
        return Some(core::f64::consts::PI / (s * gamma(1.0 - x)?));
    }
    let x = x - 1.0;
    let mut a = G[0];
    let t = x + 7.5;
    for (i, g) in G.iter().enumerate().skip(1) {
        a += g / (x + i as f64);
    }
    let v = (2.0 * core::f64::consts::PI).sqrt() * t.powf(x + 0.5) * (-t).exp() * a;
    v.is_finite().then_some(v)
}

/// `x!`: exact for integers up to [`MAX_FACTORIAL`], Γ(x + 1) for other reals.
fn factorial(x: &Num, budget: &mut Budget) -> Option<Num> {
    let Some(n) = int_of(x) else {
        return match x {
            Num::F(v) => finite(gamma(v + 1.0)?),
            _ => None,
        };
    };
    if !(0..=MAX_FACTORIAL).contains(&n) {
        return None;
    }
    // About n * log2(n!) / 32 / 64 limb products (a few hundred thousand for 2001!).
    budget.spend(1 + (n * n) as u64 / 256)?;
    BigRat::factorial(u32::try_from(n).ok()?).map(big)
}

/// `\binom{n}{k}`: exact for integers, through Γ for other reals.
fn binom(n: &Num, k: &Num, budget: &mut Budget) -> Option<Num> {
    let (Some(n), Some(k)) = (int_of(n), int_of(k)) else {
        let (n, k) = (n.to_f64(), k.to_f64());
        return finite(gamma(n + 1.0)? / (gamma(k + 1.0)? * gamma(n - k + 1.0)?));
    };
    if n < 0 || k < 0 || k > n {
        return Some(Num::Q(Rational::ZERO));
    }
    let k = k.min(n - k);
    if k > MAX_FACTORIAL {
        return None;
    }
    let mut acc = Num::Q(Rational::ONE);
    for i in 0..k {
        let factor = Num::Q(Rational::new(n - i, i + 1)?);
        budget.spend(acc.cost(&factor))?;
        acc = arith(BinOp::Mul, &acc, &factor)?;
    }
    Some(acc)
}

fn call(f: Func, x: Num, budget: &mut Budget) -> Option<Num> {
    match (f, &x) {
        (Func::Sqrt, _) => return root(&x, 2),
        (Func::Abs, Num::Q(_) | Num::B(_)) => return if x.to_f64() < 0.0 { x.negated() } else { Some(x) },
        (Func::Factorial, _) => return factorial(&x, budget),
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
        Expr::Big(b) => Some(big(b.clone())),
        Expr::Float(x) => finite(*x),
        Expr::Var(name) => env.vars.iter().find(|(n, _)| n == name).map(|(_, v)| Num::F(*v)),
        Expr::Pi => Some(Num::F(core::f64::consts::PI)),
        Expr::E => Some(Num::F(core::f64::consts::E)),
        Expr::Infinity => Some(Num::Inf(false)),
        Expr::Neg(a) => eval(a, env, budget)?.negated(),
        Expr::Bin(op, a, b) => {
            let (x, y) = (eval(a, env, budget)?, eval(b, env, budget)?);
            budget.spend(x.cost(&y))?;
            arith(*op, &x, &y)
        }
        Expr::PlusMinus(index, flip, a, b) => {
            let minus = (env.signs >> u32::from(*index)) & 1 == 1;
            let op = if minus != *flip { BinOp::Sub } else { BinOp::Add };
            arith(op, &eval(a, env, budget)?, &eval(b, env, budget)?)
        }
        Expr::Call(f, a) => call(*f, eval(a, env, budget)?, budget),
        Expr::Root(n, x) => {
            let (x, n) = (eval(x, env, budget)?, eval(n, env, budget)?);
            match int_of(&n) {
                Some(k) => root(&x, k),
                None => finite(x.to_f64().powf(1.0 / n.to_f64())),
            }
        }
        Expr::Log(base, x) => {
            let (b, v) = (eval(base, env, budget)?.to_f64(), eval(x, env, budget)?.to_f64());
            finite(v.ln() / b.ln())
        }
        Expr::Binom(n, k) => binom(&eval(n, env, budget)?, &eval(k, env, budget)?, budget),
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
        assert!(value("2\\sqrt{2}").unwrap().approx_eq(&value("\\sqrt{8}").unwrap()));
        assert!(value("\\log_2 8").unwrap().approx_eq(&Num::F(3.0)));
        assert!(value("\\sin\\frac{\\pi}{2}").unwrap().approx_eq(&Num::F(1.0)));
        assert!(!value("\\sqrt{3}").unwrap().approx_eq(&Num::F(1.732)));
    }

    #[test]
    fn undefined_and_huge_are_none() {
        assert_eq!(value("1/0"), None);
        assert_eq!(value("\\sqrt{-1}"), None);
        assert_eq!(value("10^{10^{10}}"), None);
        assert_eq!(value("3000!"), None);
        assert_eq!(value("\\infty+1"), None);
        assert_eq!(value("-\\infty"), Some(Num::Inf(true)));
    }

    #[test]
    fn big_exact_values() {
        let digits = "1606938044258990275541962092341162602522202993782792835301376";
        assert!(value("2^{200}").unwrap().approx_eq(&value(digits).unwrap()));
        assert!(!value("2^{200}+1").unwrap().approx_eq(&value(digits).unwrap()));
        assert!(value("\\frac{1}{4^{2016}}").unwrap().approx_eq(&value("2^{-4032}").unwrap()));
        assert!(value("2001!").unwrap().approx_eq(&value("2001 \\cdot 2000!").unwrap()));
        assert!(!value("2001!").unwrap().approx_eq(&value("2000!").unwrap()));
        let a = "1".repeat(300);
        let b = alloc::format!("{}2", "1".repeat(299));
        assert!(!value(&a).unwrap().approx_eq(&value(&b).unwrap()));
        assert!(value(&a).unwrap().approx_eq(&value(&a).unwrap()));
    }

    #[test]
    fn gamma_extends_factorials_and_binomials() {
        let g = gamma(4.5).unwrap();
        assert!((g - 11.631_728_396_567_45).abs() < 1e-9);
        assert!(gamma(-1.0).is_none());
        let at = |s: &str, x: f64| {
            let (e, _) = parse_expression(&lex(s, 1000).unwrap(), 32).unwrap();
            let vars = [(String::from("n"), x)];
            eval(&e, &Env { vars: &vars, signs: 0 }, &mut Budget::new(100_000)).unwrap().to_f64()
        };
        assert!((at("(n+1)!", 1.7) - 1.7 * at("n!", 1.7) - at("n!", 1.7)).abs() < 1e-9);
        assert!((at("\\binom{n}{2}", 1.7) - 1.7 * 0.7 / 2.0).abs() < 1e-9);
    }

    #[test]
    fn inverse_trig_and_nth_roots() {
        assert!(value("\\tan^{-1} 1").unwrap().approx_eq(&value("\\frac{\\pi}{4}").unwrap()));
        assert!(value("\\sin^{-1}(1)").unwrap().approx_eq(&value("\\arcsin 1").unwrap()));
        assert!(value("\\sqrt[3]{27}").unwrap().approx_eq(&value("3").unwrap()));
    }

    #[test]
    fn budget_is_enforced() {
        let (e, _) = parse_expression(&lex("1+1+1+1", 100).unwrap(), 32).unwrap();
        assert_eq!(eval(&e, &Env { vars: &[], signs: 0 }, &mut Budget::new(3)), None);
    }
}
