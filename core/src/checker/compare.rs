//! Stage 2 structure and comparison: scalars (with `\pm` alternatives), tuples and intervals,
//! equations and unordered lists, compared by value.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;

use super::eval::{Budget, Env, Num, arith, collect_vars, eval};
use super::latex::{BinOp, Expr, ParseError, Tok, parse_expression};

/// One element of an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An expression with its number of `\pm` signs.
    Scalar(Expr, u8),
    /// A tuple or interval: opening bracket, closing bracket, elements.
    Bracket(char, char, Vec<Expr>),
    /// `lhs = rhs`, with a mask of the sides that only name the answer (bit 0: left, bit 1:
    /// right), whose other side is then also the answer's value (`x = 5` is 5, `5 = x` too).
    Equation(Expr, Expr, u8),
}

/// Points at which expressions with variables are compared.
const POINTS: u64 = 8;
/// Points that must be defined on both sides for a verdict of "equal".
const MIN_DEFINED_POINTS: u64 = 4;

fn is_open(t: &Tok) -> bool {
    matches!(t, Tok::Sym('(' | '[' | '{') | Tok::SetOpen)
}

fn is_close(t: &Tok) -> bool {
    matches!(t, Tok::Sym(')' | ']' | '}') | Tok::SetClose)
}

/// Splits at `sep` outside any brackets.
fn split_top<'a>(toks: &'a [Tok], sep: &Tok) -> Vec<&'a [Tok]> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, t) in toks.iter().enumerate() {
        if is_open(t) {
            depth += 1;
        } else if is_close(t) {
            depth = depth.saturating_sub(1);
        } else if depth == 0 && t == sep {
            parts.push(toks.get(start..i).unwrap_or(&[]));
            start = i + 1;
        }
    }
    parts.push(toks.get(start..).unwrap_or(&[]));
    parts
}

/// True if the bracket opened by the first token closes at the last one.
fn outer_pair(toks: &[Tok]) -> bool {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate() {
        if is_open(t) {
            depth += 1;
        } else if is_close(t) {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return i + 1 == toks.len();
            }
        }
    }
    false
}

/// A left side that only names the answer: `x`, `a_1`, `AB`, `\theta`, `f(x)`.
fn is_name(toks: &[Tok]) -> bool {
    match toks {
        [Tok::Letter(_)] | [Tok::Letter(_), Tok::Letter(_)] | [Tok::Cmd(_)] => true,
        [Tok::Letter(_), Tok::Sym('_'), ..] => true,
        [Tok::Letter(_), Tok::Sym('('), .., Tok::Sym(')')] => outer_pair(toks.get(1..).unwrap_or(&[])),
        _ => false,
    }
}

/// True if `side` only names the answer given on `other`: a name (see [`is_name`]) whose
/// letters do not occur on the other side (`2x+3 = x` is an equation, not a value named `x`).
fn names(side: &[Tok], other: &[Tok]) -> bool {
    if !is_name(side) {
        return false;
    }
    if matches!(side, [Tok::Letter(_), Tok::Sym('('), ..]) {
        return true;
    }
    !side.iter().any(|t| matches!(t, Tok::Letter(_) | Tok::Cmd(_)) && other.contains(t))
}

fn plain(toks: &[Tok], max_depth: usize) -> Result<Expr, ParseError> {
    match parse_expression(toks, max_depth)? {
        (e, 0) => Ok(e),
        _ => Err(ParseError::Unexpected),
    }
}

/// Parses a token list into the items of an answer.
/// `x \in S` (a name, then `\in`) without its name: `S`.
fn without_membership(toks: &[Tok]) -> &[Tok] {
    let parts = split_top(toks, &Tok::Cmd(String::from("in")));
    match parts.as_slice() {
        [name, set] if is_name(name) => set,
        _ => toks,
    }
}

/// Parses a token list into the items of an answer.
pub fn parse_items(toks: &[Tok], max_depth: usize) -> Result<Vec<Item>, ParseError> {
    let max_depth = max_depth.checked_sub(1).ok_or(ParseError::TooDeep)?;
    let mut toks = without_membership(toks);
    let sides = split_top(toks, &Tok::Sym('='));
    if let Some((last, lefts)) = sides.split_last()
        && !lefts.is_empty()
    {
        if let [lhs] = lefts {
            // The left side names the answer when it can; else the right side may.
            let named = if names(lhs, last) { 1 } else { u8::from(names(last, lhs)) << 1 };
            match (plain(lhs, max_depth), plain(last, max_depth)) {
                (Ok(l), Ok(r)) => return Ok(alloc::vec![Item::Equation(l, r, named)]),
                _ if named & 1 == 1 => toks = last,
                (Err(e), _) | (_, Err(e)) => return Err(e),
            }
        } else if lefts.iter().all(|l| is_name(l)) {
            toks = last;
        } else {
            return Err(ParseError::Unexpected);
        }
    }
    let unions = split_top(toks, &Tok::Cmd(String::from("cup")));
    if unions.len() >= 2 {
        return parse_list(&unions, max_depth);
    }
    let commas = split_top(toks, &Tok::Sym(','));
    if let (Some(first), Some(last)) = (toks.first(), toks.last())
        && outer_pair(toks)
        && toks.len() >= 2
    {
        let inner = toks.get(1..toks.len() - 1).unwrap_or(&[]);
        if *first == Tok::SetOpen && *last == Tok::SetClose {
            return parse_list(&split_top(inner, &Tok::Sym(',')), max_depth);
        }
        let elems = split_top(inner, &Tok::Sym(','));
        if let (Tok::Sym(o @ ('(' | '[')), Tok::Sym(c @ (')' | ']'))) = (first, last)
            && elems.len() >= 2
        {
            let items = elems.iter().map(|e| plain(e, max_depth)).collect::<Result<Vec<_>, _>>()?;
            return Ok(alloc::vec![Item::Bracket(*o, *c, items)]);
        }
    }
    if commas.len() >= 2 {
        return parse_list(&commas, max_depth);
    }
    let (e, pm) = parse_expression(toks, max_depth)?;
    Ok(alloc::vec![Item::Scalar(e, pm)])
}

fn parse_list(parts: &[&[Tok]], max_depth: usize) -> Result<Vec<Item>, ParseError> {
    let mut out = Vec::new();
    for p in parts.iter().filter(|p| !p.is_empty()) {
        out.extend(parse_items(p, max_depth)?);
    }
    Ok(out)
}

/// What to evaluate: an expression under `\pm` sign choices, or the difference of the two
/// sides of an equation.
#[derive(Debug, Clone, Copy)]
enum Side<'a> {
    Expr(&'a Expr, u32),
    Diff(&'a Expr, &'a Expr),
}

impl Side<'_> {
    fn vars(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        match self {
            Side::Expr(e, _) => collect_vars(e, &mut out),
            Side::Diff(a, b) => {
                collect_vars(a, &mut out);
                collect_vars(b, &mut out);
            }
        }
        out
    }

    fn eval(&self, vars: &[(String, f64)], budget: &mut Budget) -> Option<Num> {
        match *self {
            Side::Expr(e, signs) => eval(e, &Env { vars, signs }, budget),
            Side::Diff(a, b) => {
                let env = Env { vars, signs: 0 };
                let (x, y) = (eval(a, &env, budget)?, eval(b, &env, budget)?);
                arith(BinOp::Sub, &x, &y)
            }
        }
    }
}

/// A deterministic pseudo-random value in [0.3, 2.3) for variable `name` at point `point`.
fn sample(name: &str, point: u64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h ^ point.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    0.3 + 2.0 * ((z >> 11) as f64 / (1u64 << 53) as f64)
}

/// True if two sides agree: same variables, and equal values at every point where both are
/// defined (at least [`MIN_DEFINED_POINTS`] of them when there are variables).
///
/// The variables are those of either side: `\sin^2x+\cos^2x` equals `1`, and `x+1` differs
/// from `y+1` at the points.
fn sides_equal(a: Side<'_>, b: Side<'_>, budget: &mut Budget) -> bool {
    let mut vars = a.vars();
    vars.extend(b.vars());
    if vars.is_empty() {
        return matches!((a.eval(&[], budget), b.eval(&[], budget)), (Some(x), Some(y)) if x.approx_eq(&y));
    }
    let mut defined = 0;
    for point in 0..POINTS {
        let env: Vec<(String, f64)> = vars.iter().map(|v| (v.clone(), sample(v, point))).collect();
        match (a.eval(&env, budget), b.eval(&env, budget)) {
            (Some(x), Some(y)) if x.approx_eq(&y) => defined += 1,
            (None, None) => {}
            _ => return false,
        }
    }
    defined >= MIN_DEFINED_POINTS
}

/// An item with its `\pm` signs chosen.
#[derive(Debug, Clone, Copy)]
enum Alt<'a> {
    Scalar(&'a Expr, u32),
    Bracket(char, char, &'a [Expr]),
    Equation(&'a Expr, &'a Expr, u8),
}

/// The value sides of an equation: the side opposite each side that only names the answer.
fn values<'a>(l: &'a Expr, r: &'a Expr, named: u8) -> impl Iterator<Item = &'a Expr> {
    [(named & 1 == 1).then_some(r), (named & 2 == 2).then_some(l)].into_iter().flatten()
}

fn alternatives(items: &[Item]) -> Vec<Alt<'_>> {
    let mut out = Vec::new();
    for item in items {
        match item {
            Item::Scalar(e, pm) => out.extend((0..1u32 << pm).map(|signs| Alt::Scalar(e, signs))),
            Item::Bracket(o, c, xs) => out.push(Alt::Bracket(*o, *c, xs)),
            Item::Equation(l, r, n) => out.push(Alt::Equation(l, r, *n)),
        }
    }
    out
}

fn alt_equal(a: Alt<'_>, b: Alt<'_>, budget: &mut Budget) -> bool {
    match (a, b) {
        (Alt::Scalar(x, sx), Alt::Scalar(y, sy)) => sides_equal(Side::Expr(x, sx), Side::Expr(y, sy), budget),
        (Alt::Bracket(o1, c1, xs), Alt::Bracket(o2, c2, ys)) => {
            (o1, c1) == (o2, c2)
                && xs.len() == ys.len()
                && xs.iter().zip(ys).all(|(x, y)| sides_equal(Side::Expr(x, 0), Side::Expr(y, 0), budget))
        }
        (Alt::Equation(l1, r1, n1), Alt::Equation(l2, r2, n2)) => {
            sides_equal(Side::Diff(l1, r1), Side::Diff(l2, r2), budget)
                || sides_equal(Side::Diff(l1, r1), Side::Diff(r2, l2), budget)
                || values(l1, r1, n1).any(|v| {
                    values(l2, r2, n2).any(|w| sides_equal(Side::Expr(v, 0), Side::Expr(w, 0), budget))
                })
        }
        (Alt::Equation(l, r, n), Alt::Scalar(e, s)) | (Alt::Scalar(e, s), Alt::Equation(l, r, n)) => {
            values(l, r, n).any(|v| sides_equal(Side::Expr(v, 0), Side::Expr(e, s), budget))
        }
        _ => false,
    }
}

/// True if two answers have the same items up to order (each matched once).
pub fn items_equal(a: &[Item], b: &[Item], budget: &mut Budget) -> bool {
    let (xs, ys) = (alternatives(a), alternatives(b));
    if xs.is_empty() || xs.len() != ys.len() {
        return false;
    }
    let mut used = alloc::vec![false; ys.len()];
    xs.iter().all(|x| {
        let hit = ys.iter().zip(used.iter()).position(|(y, u)| !*u && alt_equal(*x, *y, budget));
        hit.and_then(|i| used.get_mut(i)).map(|u| *u = true).is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::super::latex::lex;
    use super::*;

    fn items(s: &str) -> Vec<Item> {
        parse_items(&lex(s, 1000).unwrap(), 32).unwrap()
    }

    fn eq(a: &str, b: &str) -> bool {
        items_equal(&items(a), &items(b), &mut Budget::new(1_000_000))
    }

    #[test]
    fn structure_is_recognized() {
        assert!(matches!(items("(1,2)").as_slice(), [Item::Bracket('(', ')', _)]));
        assert!(matches!(items("[0,1)").as_slice(), [Item::Bracket('[', ')', _)]));
        assert_eq!(items("1, 2, 3").len(), 3);
        assert_eq!(items("\\{1,2\\}").len(), 2);
        assert!(matches!(items("x = 5").as_slice(), [Item::Equation(_, _, 1)]));
        assert!(matches!(items("f(x) = x+1").as_slice(), [Item::Equation(_, _, 1)]));
        assert!(matches!(items("x = 1 \\pm 2").as_slice(), [Item::Scalar(_, 1)]));
        assert_eq!(items("(0,9) \\cup (9,36)").len(), 2);
        assert!(matches!(items("x \\in [-2,7]").as_slice(), [Item::Bracket('[', ']', _)]));
        assert!(matches!(items("x+y = 1").as_slice(), [Item::Equation(..)]));
    }

    #[test]
    fn tuples_and_intervals() {
        assert!(eq("(1,2)", "(1, 2)"));
        assert!(!eq("(1,2)", "(2,1)"));
        assert!(!eq("[0,1)", "[0,1]"));
        assert!(eq("[2, \\infty)", "[2,\\infty)"));
        assert!(!eq("(1,2)", "1,2"));
    }

    #[test]
    fn lists_are_unordered_and_pm_expands() {
        assert!(eq("1, 2", "2, 1"));
        assert!(eq("\\pm 2", "2, -2"));
        assert!(eq("1\\pm\\sqrt{2}", "1-\\sqrt2, 1+\\sqrt2"));
        assert!(!eq("1, 2", "1, 2, 2"));
    }

    #[test]
    fn symbolic_comparison_at_points() {
        assert!(eq("x^2+2x+1", "(x+1)^2"));
        assert!(!eq("x^2+1", "x^2+2"));
        assert!(!eq("x+1", "y+1"));
        assert!(eq("a+b", "b+a"));
        assert!(eq("\\sin^2x+\\cos^2x", "1"));
        assert!(eq("x+1-x", "1"));
        assert!(!eq("x", "1"));
    }

    #[test]
    fn equations_compare_up_to_sides() {
        assert!(eq("x+y=1", "1=x+y"));
        assert!(eq("x+y=1", "x+y-1=0"));
        assert!(!eq("x+y=1", "x-y=1"));
        assert!(eq("cx = \\frac{x^2}{2}", "\\frac{x^2}{2} = cx"));
        assert!(eq("y = 2x+1", "2x+1"));
        assert!(eq("2x+1 = y", "2x+1"));
        assert!(eq("x = 5", "y = 5"));
        assert!(!eq("x = 5", "x = 6"));
        assert!(!eq("y = 2x+1", "x = 2y+1"));
        assert!(!eq("k = n", "k = q"));
        assert!(!eq("y = 2x + 3", "2x+3=x"));
        assert!(eq("k = n", "n"));
    }

    #[test]
    fn membership_and_unions() {
        assert!(eq("x \\in [-2, 7]", "[-2,7]"));
        assert!(!eq("x \\in [-2, 7]", "[-2,7)"));
        assert!(eq("(9,36)\\cup(0,9)", "(0, 9) \\cup (9, 36)"));
        assert!(!eq("(9,36)\\cup(0,9)", "(0, 9) \\cup [9, 36)"));
        assert!(!eq("(9,36)\\cup(0,9)", "(0, 36)"));
    }

    #[test]
    fn samples_are_deterministic_and_distinct() {
        assert_eq!(sample("x", 3), sample("x", 3));
        assert_ne!(sample("x", 3), sample("y", 3));
        assert!((0.3..2.3).contains(&sample("z", 7)));
    }
}
