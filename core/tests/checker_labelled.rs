//! The answer checker against the own labelled set of issue 17 (`tests/data/checker_labelled.tsv`):
//! (reference, prediction, label, category) pairs built from the gold answers of `data/orz/`,
//! covering the accepted forms and their near-misses. Prints the agreement per category and
//! the slowest call; fails below 99% overall or when any call takes 50 ms.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use orz_core::checker::{extract_answer, extract_reference, is_equivalent};

const DATA: &str = include_str!("data/checker_labelled.tsv");
const MIN_AGREEMENT: f64 = 0.99;
const MAX_CALL: Duration = Duration::from_millis(50);

struct Row<'a> {
    category: &'a str,
    label: bool,
    reference: &'a str,
    prediction: &'a str,
}

fn rows() -> Vec<Row<'static>> {
    DATA.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 4, "malformed row: {l:?}");
            Row { category: f[0], label: f[1] == "1", reference: f[2], prediction: f[3] }
        })
        .collect()
}

#[test]
fn labelled_set_agrees_at_least_99_percent() {
    let rows = rows();
    assert!(rows.len() >= 500, "only {} labelled pairs", rows.len());
    let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut wrong = Vec::new();
    let (mut slowest, mut slowest_pair) = (Duration::ZERO, ("", ""));
    for r in &rows {
        let completion =
            format!("<think>...</think> <answer>The answer is \\boxed{{{}}}.</answer>", r.prediction);
        let start = Instant::now();
        let verdict = is_equivalent(&extract_answer(&completion), &extract_reference(r.reference));
        let took = start.elapsed();
        if took > slowest {
            (slowest, slowest_pair) = (took, (r.reference, r.prediction));
        }
        let e = per.entry(r.category).or_default();
        e.0 += 1;
        if verdict == r.label {
            e.1 += 1;
        } else {
            wrong.push(r);
        }
    }
    println!("{:<20} {:>6} {:>6} {:>9}", "category", "pairs", "agree", "rate");
    for (cat, (n, ok)) in &per {
        println!("{cat:<20} {n:>6} {ok:>6} {:>8.2}%", 100.0 * *ok as f64 / *n as f64);
    }
    let agree = rows.len() - wrong.len();
    let rate = agree as f64 / rows.len() as f64;
    println!("{:<20} {:>6} {agree:>6} {:>8.2}%", "overall", rows.len(), 100.0 * rate);
    println!("slowest call: {slowest:?} on {slowest_pair:?}");
    for r in &wrong {
        println!(
            "  disagree [{}] label {} ref {:?} pred {:?}",
            r.category, r.label, r.reference, r.prediction
        );
    }
    assert!(rate >= MIN_AGREEMENT, "agreement {rate:.4} < {MIN_AGREEMENT}");
    assert!(slowest < MAX_CALL, "slowest call {slowest:?} on {slowest_pair:?}");
}

#[test]
fn every_group_of_the_issue_is_covered_with_both_labels() {
    let rows = rows();
    for cat in [
        "mixed_number",
        "word",
        "base_subscript",
        "big_power",
        "glued_macro",
        "equation_swap",
        "membership",
        "matrix",
        "interval_union",
        "units",
        "decimal_irrational",
        "long_integer",
        "tiny_decimal",
        "list",
    ] {
        for label in [true, false] {
            assert!(
                rows.iter().any(|r| r.category == cat && r.label == label),
                "{cat} has no pair labelled {label}"
            );
        }
    }
}
