//! The answer checker never panics and answers in bounded time, on arbitrary strings, on
//! LaTeX-like token soup, and on huge or deeply nested inputs.

use std::time::{Duration, Instant};

use orz_core::checker::{check, extract_answer, extract_reference, is_equivalent, strip_string};
use proptest::prelude::*;

/// Per-call time bound (test builds use opt-level 1).
const MAX_CALL: Duration = Duration::from_millis(50);

fn timed_check(a: &str, b: &str) -> Duration {
    let start = Instant::now();
    let _ = is_equivalent(a, b);
    let _ = strip_string(a);
    let _ = extract_answer(a);
    let _ = extract_reference(b);
    start.elapsed()
}

const TOKENS: &[&str] = &[
    "\\frac",
    "\\dfrac",
    "\\sqrt",
    "{",
    "}",
    "^",
    "_",
    "(",
    ")",
    "[",
    "]",
    ",",
    "1",
    "2",
    "9",
    "0.5",
    "x",
    "y",
    "\\pi",
    "\\pm",
    "-",
    "+",
    "*",
    "/",
    "=",
    "\\cdot",
    "!",
    "|",
    "\\{",
    "\\}",
    "\\infty",
    "\\text{",
    " cm",
    "\\boxed{",
    "\\left(",
    "\\right)",
    "\\ln",
    "\\sin",
    "\\binom",
    "\\log_",
    "e",
    ".",
    " ",
    "\\",
    "%",
    "$",
    "\\lfloor",
    "\\rfloor",
    "^{\\circ}",
    "<answer>",
    "</answer>",
    "é",
    "\\mp",
];

fn latexish() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..80).prop_map(|t| t.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn arbitrary_strings_do_not_panic(a in ".{0,200}", b in ".{0,200}") {
        prop_assert!(timed_check(&a, &b) < MAX_CALL);
    }

    #[test]
    fn latex_token_soup_does_not_panic(a in latexish(), b in latexish()) {
        prop_assert!(timed_check(&a, &b) < MAX_CALL);
        prop_assert!(timed_check(&a, &a) < MAX_CALL);
    }

    #[test]
    fn soup_equals_itself_unless_empty(a in latexish()) {
        prop_assert_eq!(is_equivalent(&a, &a), !a.trim().is_empty() && a.chars().count() <= 1000);
    }
}

#[test]
fn huge_and_deep_inputs_are_bounded() {
    let huge = "1+".repeat(50_000);
    let nested = format!("{}1{}", "{".repeat(10_000), "}".repeat(10_000));
    let parens = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    let fracs = "\\frac{1}{".repeat(300) + &"}".repeat(300);
    let completion = format!("<answer>\\boxed{{{nested}}}</answer>");
    for (a, b) in [
        (huge.as_str(), huge.as_str()),
        (&huge[..999], &huge[..997]),
        (nested.as_str(), "1"),
        (&nested[4990..5010], "1"),
        (parens.as_str(), "1"),
        (&parens[9980..10020], "1"),
        (fracs.as_str(), "0"),
        (completion.as_str(), "1"),
    ] {
        assert!(timed_check(a, b) < MAX_CALL * 4, "too slow on {}", &a[..a.len().min(40)]);
    }
    assert_eq!(extract_answer(&completion), nested);
}

#[test]
fn costly_expressions_are_bounded() {
    let cases = [
        ("2^{2^{2^{2^{2^{2}}}}}", "2"),
        ("10^{1000000}", "10^{1000000}+1"),
        ("170!", "171!"),
        ("\\binom{100000}{50000}", "1"),
        ("(x+1)^{1000}", "(1+x)^{1000}"),
        ("\\pm1\\pm1\\pm1\\pm1", "0"),
        (
            "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20",
            "20,19,18,17,16,15,14,13,12,11,10,9,8,7,6,5,4,3,2,1",
        ),
    ];
    for (a, b) in cases {
        assert!(timed_check(a, b) < MAX_CALL, "too slow on {a}");
    }
    assert!(is_equivalent(cases[6].0, cases[6].1));
    assert!(!check("10^{1000000}", "10^{1000000}+1").is_equal());
}

#[test]
fn big_exact_arithmetic_is_bounded() {
    let many = |t: &str| vec![t; 1000 / (t.len() + 1)].join(",");
    let cases = [
        (many("9^{7000}"), many("3^{14000}")),
        (many("2001!"), many("2000!")),
        (many("\\binom{2100}{1050}"), many("1")),
        (many("2^{23000}+2^{23001}"), many("3\\cdot2^{23000}")),
        ("2^{23999}\\cdot3^{15000}/5^{10000}".to_string(), "7^{8000}".to_string()),
        ("(2^{20000}+1)^{2}-(2^{20000}-1)^2".to_string(), "2^{20002}".to_string()),
        (format!("{}+1", "9".repeat(990)), format!("1{}", "0".repeat(990))),
        ("1.0001^{100000}".to_string(), "2".to_string()),
    ];
    let mut slowest = Duration::ZERO;
    for (a, b) in &cases {
        let t = timed_check(a, b).max(timed_check(b, a)).max(timed_check(a, a));
        println!("{t:?} on {}", &a[..a.len().min(40)]);
        slowest = slowest.max(t);
    }
    println!("slowest big exact call: {slowest:?}");
    assert!(slowest < MAX_CALL);
    assert!(is_equivalent(&cases[6].0, &cases[6].1));
}

#[test]
fn a_list_of_many_items_stays_within_the_work_budget() {
    let a: Vec<String> = (0..400).map(|i| format!("x+{i}")).collect();
    let b: Vec<String> = (0..400).rev().map(|i| format!("x+{i}")).collect();
    let (a, b) = (a.join(","), b.join(","));
    let start = Instant::now();
    let _ = is_equivalent(&a[..a.len().min(1000)], &b[..b.len().min(1000)]);
    assert!(start.elapsed() < MAX_CALL * 4);
}
