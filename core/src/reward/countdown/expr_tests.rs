//! Tests of the Countdown equation evaluator.

use super::*;
use alloc::format;
use alloc::string::{String, ToString};
use proptest::prelude::*;

fn r(n: i128, d: i128) -> Rational {
    Rational::new(n, d).unwrap()
}

fn eval(s: &str) -> Result<Rational, ExprError> {
    evaluate(s)
}

#[test]
fn precedence_and_associativity_follow_python() {
    assert_eq!(eval("2+3*4"), Ok(r(14, 1)));
    assert_eq!(eval("2*3+4"), Ok(r(10, 1)));
    assert_eq!(eval("8/4/2"), Ok(r(1, 1)));
    assert_eq!(eval("8-4-2"), Ok(r(2, 1)));
    assert_eq!(eval("(8-4)-2"), Ok(r(2, 1)));
    assert_eq!(eval("8-(4-2)"), Ok(r(6, 1)));
    assert_eq!(eval(" ( 3 + 5 - 4 ) * 6 "), Ok(r(24, 1)));
    assert_eq!(eval("\t1\x0c+2"), Ok(r(3, 1)));
}

#[test]
fn unary_signs_are_allowed() {
    assert_eq!(eval("-3+9"), Ok(r(6, 1)));
    assert_eq!(eval("-2*3"), Ok(r(-6, 1)));
    assert_eq!(eval("2*-3"), Ok(r(-6, 1)));
    assert_eq!(eval("--3"), Ok(r(3, 1)));
    assert_eq!(eval("+3"), Ok(r(3, 1)));
    assert_eq!(eval("-(1-4)"), Ok(r(3, 1)));
}

#[test]
fn arithmetic_is_exact() {
    assert_eq!(eval("8/(3-8/3)"), Ok(r(24, 1))); // Python's float gives 23.999999999999996
    assert_eq!(eval("1/3+1/3+1/3"), Ok(r(1, 1)));
    assert_eq!(eval("1.5*2"), Ok(r(3, 1)));
    assert_eq!(eval(".5+3."), Ok(r(7, 2)));
    assert_eq!(eval("00+007.5"), Ok(r(15, 2)));
}

#[test]
fn python_literal_rules() {
    assert_eq!(eval("07"), Err(ExprError::BadNumber { at: 0 }));
    assert_eq!(eval("1+."), Err(ExprError::BadNumber { at: 2 }));
    assert_eq!(eval("1.2.3"), Err(ExprError::Unexpected { at: 3 })); // `1.2` then `.3`
    assert_eq!(eval("1..2"), Err(ExprError::Unexpected { at: 2 })); // `1.` then `.2`
    assert_eq!(eval("0"), Ok(Rational::ZERO));
}

#[test]
fn refuses_power_floor_division_and_bad_characters() {
    assert_eq!(eval("2**3"), Err(ExprError::Power { at: 1 }));
    assert_eq!(eval("7//2"), Err(ExprError::FloorDivision { at: 1 }));
    assert_eq!(eval("2* *3"), Err(ExprError::Unexpected { at: 3 }));
    assert_eq!(eval("2^3"), Err(ExprError::InvalidChar { at: 1 }));
    assert_eq!(eval("import os"), Err(ExprError::InvalidChar { at: 0 }));
    assert_eq!(eval("1e5"), Err(ExprError::InvalidChar { at: 1 }));
    assert_eq!(eval("1,2"), Err(ExprError::InvalidChar { at: 1 }));
    assert_eq!(eval("1+\n2"), Err(ExprError::InvalidChar { at: 2 }));
    assert_eq!(eval("３+4"), Err(ExprError::InvalidChar { at: 0 }));
    assert_eq!(eval("1\u{a0}+2"), Err(ExprError::InvalidChar { at: 1 }));
}

#[test]
fn syntax_errors() {
    assert_eq!(eval(""), Err(ExprError::UnexpectedEnd));
    assert_eq!(eval("   "), Err(ExprError::UnexpectedEnd));
    assert_eq!(eval("3+"), Err(ExprError::UnexpectedEnd));
    assert_eq!(eval("(3"), Err(ExprError::UnexpectedEnd));
    assert_eq!(eval("3)"), Err(ExprError::Unexpected { at: 1 }));
    assert_eq!(eval("3 4"), Err(ExprError::Unexpected { at: 2 }));
    assert_eq!(eval("2(3)"), Err(ExprError::Unexpected { at: 1 }));
    assert_eq!(eval("()"), Err(ExprError::Unexpected { at: 1 }));
    assert_eq!(eval("..."), Err(ExprError::BadNumber { at: 0 }));
    assert_eq!(eval("*3"), Err(ExprError::Unexpected { at: 0 }));
}

#[test]
fn division_by_zero_and_overflow_are_errors() {
    assert_eq!(eval("1/0"), Err(ExprError::DivisionByZero));
    assert_eq!(eval("5/(3-3)"), Err(ExprError::DivisionByZero));
    assert_eq!(eval("0*(1/0)"), Err(ExprError::DivisionByZero));
    let e20 = format!("1{}", "0".repeat(20));
    assert_eq!(eval(&format!("{e20}*{e20}")), Err(ExprError::Overflow));
    let e40 = format!("1{}", "0".repeat(40));
    assert_eq!(eval(&format!("{e40}*{e40}")), Err(ExprError::Overflow));
    assert_eq!(eval(&format!("0.{}1", "0".repeat(60))), Err(ExprError::Overflow));
    let max = i128::MAX.to_string();
    assert_eq!(eval(&format!("{max}+1")), Err(ExprError::Overflow));
}

#[test]
fn depth_and_length_are_bounded() {
    let nest = |n: usize| format!("{}1{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(eval(&nest(MAX_DEPTH - 1)), Ok(Rational::ONE));
    assert_eq!(eval(&nest(MAX_DEPTH)), Err(ExprError::TooDeep));
    assert_eq!(eval(&format!("{}1", "-".repeat(MAX_DEPTH - 1))), Ok(Rational::ONE.checked_neg().unwrap()));
    assert_eq!(eval(&format!("{}1", "-".repeat(MAX_DEPTH))), Err(ExprError::TooDeep));
    assert_eq!(eval(&"(".repeat(100_000)), Err(ExprError::TooLong { len: 100_000 }));
    assert_eq!(eval(&"(".repeat(MAX_EXPR_LEN)), Err(ExprError::TooDeep));
    let long_flat = format!("1{}", "+1".repeat((MAX_EXPR_LEN - 1) / 2));
    assert_eq!(eval(&long_flat), Ok(r(i128::try_from(MAX_EXPR_LEN / 2).unwrap(), 1)));
}

#[test]
fn errors_convert_to_crate_errors() {
    let e: Error = ExprError::DivisionByZero.into();
    assert_eq!(format!("{e}"), "countdown::expr: division by zero");
}

/// A random expression tree rendered with the fewest parentheses Python's precedence needs,
/// with its value computed on the tree (`None`: division by zero or overflow), its precedence.
fn arb_expr() -> impl Strategy<Value = (String, Option<Rational>, u8)> {
    let leaf = (0i128..10).prop_map(|n| (format!("{n}"), Rational::from_int(n), 3u8));
    leaf.prop_recursive(4, 16, 2, |inner| {
        (inner.clone(), prop_oneof![Just('+'), Just('-'), Just('*'), Just('/')], inner).prop_map(
            |((a, va, pa), op, (b, vb, pb))| {
                let prec = if op == '+' || op == '-' { 1 } else { 2 };
                let v = va.zip(vb).and_then(|(x, y)| match op {
                    '+' => x.checked_add(y),
                    '-' => x.checked_sub(y),
                    '*' => x.checked_mul(y),
                    _ => x.checked_div(y),
                });
                let a = if pa < prec { format!("({a})") } else { a };
                let b =
                    if pb < prec || (pb == prec && (op == '-' || op == '/')) { format!("({b})") } else { b };
                (format!("{a} {op} {b}"), v, prec)
            },
        )
    })
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_strings(s in any::<String>()) {
        let _ = evaluate(&s);
    }

    #[test]
    fn never_panics_on_arithmetic_soup(s in "[0-9+\\-*/(). ]{0,300}") {
        let _ = evaluate(&s);
    }

    #[test]
    fn agrees_with_the_tree((src, expected, _) in arb_expr()) {
        match (evaluate(&src), expected) {
            (Ok(v), Some(want)) => prop_assert_eq!(v, want, "{}", src),
            (Err(ExprError::DivisionByZero | ExprError::Overflow), None) => {}
            // Re-association (`a * (b / c)` read as `a * b / c`) may overflow in one order only.
            (Err(ExprError::Overflow), Some(_)) => {}
            (got, want) => prop_assert!(false, "{}: {:?} vs {:?}", src, got, want),
        }
    }
}
