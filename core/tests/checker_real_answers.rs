//! The answer checker on the real gold answers of the ORZ data in the repository: every answer
//! equals itself and its rewritten forms, and differs from its near misses.

use orz_core::checker::{CheckerLimits, extract_answer, extract_reference, is_equivalent, math_equal};
use serde_json::Value;

const EVAL_FILES: &[&str] = &[
    concat!(env!("CARGO_MANIFEST_DIR"), "/../data/orz/eval/math500.json"),
    concat!(env!("CARGO_MANIFEST_DIR"), "/../data/orz/eval/aime2024.json"),
];
const TRAIN_FILES: &[&str] = &[
    concat!(env!("CARGO_MANIFEST_DIR"), "/../data/orz/orz_math_57k_subset.json"),
    concat!(env!("CARGO_MANIFEST_DIR"), "/../data/orz/orz_math_72k_subset.json"),
];

fn load(path: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every gold answer of the four data files.
fn gold_answers() -> Vec<String> {
    let mut out = Vec::new();
    for path in EVAL_FILES {
        for rec in load(path).as_array().expect("eval file is an array") {
            out.push(rec["final_answer"].as_str().expect("final_answer").to_string());
        }
    }
    for path in TRAIN_FILES {
        for rec in load(path).as_array().expect("training file is an array") {
            out.push(rec[1]["ground_truth"]["value"].as_str().expect("ground_truth.value").to_string());
        }
    }
    out
}

/// A completion that answers `a` in ORZ's format, and its extracted prediction.
fn predict(a: &str) -> String {
    extract_answer(&format!("<think>...</think> <answer>The answer is \\boxed{{{a}}}.</answer>"))
}

/// How one rewrite fared: answers it applied to, and those where the verdict was wrong.
struct Tally {
    name: &'static str,
    applied: usize,
    wrong: Vec<(String, String)>,
}

impl Tally {
    fn run(
        name: &'static str,
        golds: &[String],
        want_equal: bool,
        rewrite: impl Fn(&str) -> Option<String>,
    ) -> Tally {
        let mut t = Tally { name, applied: 0, wrong: Vec::new() };
        let mut slowest = std::time::Duration::ZERO;
        for gold in golds {
            let Some(changed) = rewrite(gold) else { continue };
            t.applied += 1;
            let start = std::time::Instant::now();
            let verdict = is_equivalent(&predict(&changed), &extract_reference(gold));
            slowest = slowest.max(start.elapsed());
            if verdict != want_equal {
                t.wrong.push((gold.clone(), changed));
            }
        }
        let right = t.applied - t.wrong.len();
        let rate = t.rate() * 100.0;
        println!(
            "{:<32} applied to {:>5}, right {:>5} ({rate:.2}%), slowest {slowest:?}",
            t.name, t.applied, right
        );
        for (g, c) in t.wrong.iter().take(40) {
            println!("    wrong: gold {g:?} vs {c:?}");
        }
        t
    }

    fn rate(&self) -> f64 {
        if self.applied == 0 { 1.0 } else { (self.applied - self.wrong.len()) as f64 / self.applied as f64 }
    }

    fn require(&self, min_rate: f64, min_applied: usize) {
        assert!(self.applied >= min_applied, "{}: applied to only {}", self.name, self.applied);
        assert!(self.rate() >= min_rate, "{}: {:.4} < {min_rate}", self.name, self.rate());
    }
}

/// True if stage 2 can read the answer (it is inside the supported LaTeX subset).
fn in_subset(a: &str) -> bool {
    math_equal(a, a, &CheckerLimits::default())
}

/// The byte range of the brace group opening at `open`, braces included.
fn group_end(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, c) in s.get(open..)?.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// `a` with the terms around its first top-level `+` (outside brackets) swapped.
fn reordered_sum(a: &str) -> Option<String> {
    if a.contains('|') {
        return None; // `|x+1|` has no brackets to tell its `+` is inside
    }
    let mut depth = 0i32;
    let mut at = None;
    for (i, c) in a.char_indices() {
        match c {
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => depth -= 1,
            '+' if depth == 0 && at.is_none() => at = Some(i),
            '=' | ',' | '<' | '>' if depth == 0 => return None,
            _ => {}
        }
    }
    let (l, r) = a.split_at(at?);
    let (l, r) = (l.trim(), r[1..].trim());
    if l.is_empty() || r.is_empty() || l.ends_with(['^', '_', '\\']) {
        return None;
    }
    Some(if l.contains('-') { format!("{r}+({l})") } else { format!("{r}+{l}") })
}

fn integer(a: &str) -> Option<i128> {
    let t = a.trim();
    (!t.is_empty() && t.trim_start_matches('-').bytes().all(|b| b.is_ascii_digit()))
        .then(|| t.parse().ok())?
}

fn with_thousands(n: i128) -> Option<String> {
    let digits = n.abs().to_string();
    if digits.len() < 4 {
        return None;
    }
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    Some(if n < 0 { format!("-{out}") } else { out })
}

/// `\frac{p}{q}` of integers as a terminating decimal (at most 6 places), or the reverse.
fn decimal_form(a: &str) -> Option<String> {
    let t = a.trim();
    let inner = t.strip_prefix("\\frac{")?.strip_suffix('}')?;
    let (p, q) = inner.split_once("}{")?;
    let (p, q): (i64, i64) = (p.parse().ok()?, q.parse().ok()?);
    let scaled = (0..=6).find(|k| (p * 10i64.pow(*k)) % q == 0)?;
    let v = p * 10i64.pow(scaled) / q;
    Some(if scaled == 0 {
        v.to_string()
    } else {
        format!("{:.*}", scaled as usize, v as f64 / 10f64.powi(scaled as i32))
    })
}

/// `a` with its first ASCII letter outside control words (after the last `=`: a name on the
/// left, such as `n = 4`, is dropped by stage 1) replaced by a letter `a` does not use.
fn letter_swap(a: &str) -> Option<String> {
    if ["\\text", "\\mathrm", "\\mbox", "\\operatorname", "\\mathbf"].iter().any(|w| a.contains(w)) {
        return None;
    }
    let mut in_command = false;
    let mut target = None;
    for c in a.rsplit('=').next().unwrap_or(a).chars() {
        if c == '\\' {
            in_command = true;
        } else if !c.is_ascii_alphabetic() {
            in_command = false;
        } else if !in_command {
            target = Some(c);
            break;
        }
    }
    let target = target?;
    let fresh = "qwkzjQWKZJ".chars().find(|c| !a.contains(*c))?;
    let mut out = String::new();
    in_command = false;
    for c in a.chars() {
        if c == '\\' {
            in_command = true;
        } else if !c.is_ascii_alphabetic() {
            in_command = false;
        }
        out.push(if c == target && !in_command { fresh } else { c });
    }
    Some(out)
}

fn swapped_fraction(a: &str) -> Option<String> {
    let at = a.find("\\frac{")? + "\\frac".len();
    let mid = group_end(a, at)?;
    let end = group_end(a, mid)?;
    let (num, den) = (&a[at..mid], &a[mid..end]);
    (num != den).then(|| format!("{}{den}{num}{}", &a[..at], &a[end..]))
}

#[test]
fn gold_answers_equal_themselves_and_their_rewrites() {
    let golds = gold_answers();
    println!("gold answers: {}", golds.len());
    assert!(golds.len() > 5000);
    let in_math_subset: Vec<String> = golds.iter().filter(|a| in_subset(a)).cloned().collect();
    println!("inside the stage-2 LaTeX subset: {}", in_math_subset.len());

    let itself = Tally::run("itself", &golds, true, |a| Some(a.to_string()));
    itself.require(1.0, 5000);

    let dfrac = Tally::run("\\dfrac for \\frac", &golds, true, |a| {
        a.contains("\\frac").then(|| a.replace("\\frac", "\\dfrac"))
    });
    dfrac.require(1.0, 500);
    let spaces = Tally::run("extra spaces", &golds, true, |a| {
        // Not after `\text{`: ORZ's stage 1 reads `\text{ ` as the start of a unit.
        let out =
            a.replace('+', " + ").replace('=', " = ").replace(',', " , ").replace("\\frac{", "\\frac {");
        (out != a).then_some(out)
    });
    spaces.require(1.0, 300);
    let left_right = Tally::run("\\left( \\right)", &golds, true, |a| {
        (a.contains('(') && !a.contains("\\left")).then(|| a.replace('(', "\\left(").replace(')', "\\right)"))
    });
    left_right.require(1.0, 150);
    let prefix = Tally::run("x = prefix", &golds, true, |a| (!a.contains('=')).then(|| format!("x = {a}")));
    prefix.require(1.0, 4000);
    let unit = Tally::run("\\text{ cm} unit", &golds, true, |a| {
        (!a.contains("\\text{ ")).then(|| format!("{a} \\text{{ cm}}"))
    });
    unit.require(1.0, 4000);
    let thousands = Tally::run("thousands separators", &golds, true, |a| with_thousands(integer(a)?));
    thousands.require(1.0, 100);
    let decimals = Tally::run("decimal for \\frac{p}{q}", &golds, true, decimal_form);
    decimals.require(1.0, 30);
    let sqrt = Tally::run("\\sqrtN for \\sqrt{N}", &golds, true, |a| {
        let out =
            (1..=9).fold(a.to_string(), |s, d| s.replace(&format!("\\sqrt{{{d}}}"), &format!("\\sqrt{d}")));
        (out != a).then_some(out)
    });
    sqrt.require(1.0, 100);
    let rationalized = Tally::run("\\frac{\\sqrt n}{n} as 1/\\sqrt n", &golds, true, |a| {
        (2..=99).find_map(|n| {
            let pat = format!("\\frac{{\\sqrt{{{n}}}}}{{{n}}}");
            a.contains(&pat).then(|| a.replace(&pat, &format!("\\frac{{1}}{{\\sqrt{{{n}}}}}")))
        })
    });
    rationalized.require(1.0, 3);
    // Needs stage 2: only answers inside the LaTeX subset (words, relations and `\cdots`
    // outside it cannot be evaluated, and ORZ's sympy fails on most of them too).
    let reordered = Tally::run("reordered sum b+a", &in_math_subset, true, reordered_sum);
    reordered.require(0.99, 50);
}

#[test]
fn near_misses_are_rejected() {
    let golds = gold_answers();
    let off_by_one = Tally::run("integer + 1", &golds, false, |a| Some((integer(a)? + 1).to_string()));
    off_by_one.require(1.0, 3000);
    let off_by_minus_one = Tally::run("integer - 1", &golds, false, |a| Some((integer(a)? - 1).to_string()));
    off_by_minus_one.require(1.0, 3000);
    // An answer equal to its own negation (zero) is legitimately equal, and `\pm` answers are
    // symmetric sets: both are left out.
    let sign = Tally::run("sign flip", &golds, false, |a| {
        let zero = is_equivalent(a, "0");
        (!zero && !a.contains("\\pm") && !a.contains("\\mp")).then(|| format!("-({a})"))
    });
    sign.require(0.99, 4000);
    let swapped = Tally::run("swapped fraction", &golds, false, swapped_fraction);
    swapped.require(0.99, 500);
    let letter = Tally::run("different letter", &golds, false, letter_swap);
    letter.require(0.99, 300);
}
