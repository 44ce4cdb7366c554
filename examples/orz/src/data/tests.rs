//! Tests of the data loaders: the real ORZ files of `data/orz`, and malformed files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

fn orz_data(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/orz").join(file)
}

/// A file with `content` in a fresh directory under the system temp dir (removed on drop).
struct TempFile {
    dir: PathBuf,
    path: PathBuf,
}

impl TempFile {
    fn new(name: &str, content: &str) -> TempFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let unique =
            format!("orz-data-test-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        let dir = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        TempFile { dir, path }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loader of this module.
type Loader = fn(&Path) -> Result<Vec<Problem>>;

/// The error of loading `content` with `load`, as one string with its whole context chain.
fn error_of(content: &str, load: Loader) -> (String, String) {
    let file = TempFile::new("bad.json", content);
    let err = format!("{:#}", load(&file.path).unwrap_err());
    (err, file.path.display().to_string())
}

#[test]
fn real_training_files_load_with_their_counts() {
    for (file, count) in [("orz_math_57k_subset.json", 1785), ("orz_math_72k_subset.json", 2725)] {
        let start = std::time::Instant::now();
        let problems = load_training(&orz_data(file)).unwrap();
        eprintln!("{file}: {} records in {:.1} ms", problems.len(), start.elapsed().as_secs_f64() * 1e3);
        assert_eq!(problems.len(), count, "{file}");
        assert_eq!(load_with_format(&orz_data(file)).unwrap().0, Format::Training);
        assert!(problems.iter().all(|p| !p.question.trim().is_empty() && !p.answer.trim().is_empty()));
    }
    let first = &load_training(&orz_data("orz_math_57k_subset.json")).unwrap()[0];
    assert!(first.question.starts_with("$P(x)$ is a polynomial of degree $3n$"), "{first:?}");
    assert!(first.question.ends_with("Determine $n$."), "{first:?}");
    assert_eq!(first.answer, "n = 4");
}

#[test]
fn real_eval_files_load_with_their_counts() {
    for (file, count) in [("math500.json", 500), ("aime2024.json", 30), ("gpqa_diamond.json", 198)] {
        let path = orz_data(&format!("eval/{file}"));
        let start = std::time::Instant::now();
        let problems = load_eval(&path).unwrap();
        eprintln!("{file}: {} records in {:.1} ms", problems.len(), start.elapsed().as_secs_f64() * 1e3);
        assert_eq!(problems.len(), count, "{file}");
        assert_eq!(load_any(&path).unwrap(), problems);
    }
    let math = load_eval(&orz_data("eval/math500.json")).unwrap();
    assert!(math[0].question.starts_with("Convert the point $(0,3)$ in rectangular coordinates"));
    assert_eq!(math[0].answer, "\\left( 3, \\frac{\\pi}{2} \\right)");
    let gpqa = load_eval(&orz_data("eval/gpqa_diamond.json")).unwrap();
    assert!(gpqa.iter().all(|p| ["A", "B", "C", "D"].contains(&p.answer.as_str())));
}

#[test]
fn the_wrong_format_is_refused() {
    let err = format!("{:#}", load_training(&orz_data("eval/aime2024.json")).unwrap_err());
    assert!(err.contains("aime2024.json") && err.contains("expected the ORZ training format"), "{err}");
    assert!(err.contains("found the ORZ eval format"), "{err}");
    let err = format!("{:#}", load_eval(&orz_data("orz_math_57k_subset.json")).unwrap_err());
    assert!(err.contains("expected the ORZ eval format"), "{err}");
}

#[test]
fn a_missing_file_names_its_path() {
    let path = std::env::temp_dir().join("orz-data-test-no-such-dir/none.json");
    for load in [load_any, load_training, load_eval] {
        let err = format!("{:#}", load(&path).unwrap_err());
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
}

#[test]
fn malformed_records_are_named_with_what_is_wrong() {
    let good_t =
        r#"[{"from": "human", "value": "1+1?"}, {"from": "assistant", "ground_truth": {"value": "2"}}]"#;
    let good_e = r#"{"prompt": [{"from": "user", "value": "1+1?"}], "final_answer": "2"}"#;
    let cases: [(String, Loader, &str); 12] = [
        (
            format!(r#"[{good_t}, {good_t}, [{{"from": "human", "value": "Q"}}]]"#),
            load_training,
            "record 2: the record has 1 element(s), expected at least 2",
        ),
        (
            format!(r#"[{good_t}, [{{"from": "human"}}, {{"ground_truth": {{"value": "2"}}}}]]"#),
            load_training,
            "record 1: missing field `[0].value`",
        ),
        (
            format!(r#"[{good_t}, [{{"value": "Q"}}, {{"ground_truth": {{"value": 2}}}}]]"#),
            load_training,
            "record 1: `[1].ground_truth.value` is a number, expected a string (answer)",
        ),
        (
            format!(
                r#"[{good_t}, {good_t}, {good_t}, [{{"value": "  "}}, {{"ground_truth": {{"value": "2"}}}}]]"#
            ),
            load_training,
            "record 3: empty question (`[0].value`)",
        ),
        (
            format!(r#"[{good_t}, {good_e}]"#),
            load_any,
            "record 1: the record is an object, expected an array",
        ),
        (
            format!(r#"[{good_e}, {{"prompt": [], "final_answer": "2"}}]"#),
            load_eval,
            "record 1: `prompt` has 0",
        ),
        (
            format!(r#"[{good_e}, {{"prompt": [{{"value": "Q"}}]}}]"#),
            load_eval,
            "record 1: missing field `final_answer`",
        ),
        (
            format!(r#"[{good_e}, {{"prompt": "Q", "final_answer": "2"}}]"#),
            load_eval,
            "record 1: `prompt` is a string, expected an array",
        ),
        (
            format!(r#"[{good_e}, {{"prompt": [{{"value": "Q"}}], "final_answer": ""}}]"#),
            load_eval,
            "empty answer",
        ),
        (r#"[{"colour": "red"}]"#.to_string(), load_any, "record 0: unknown layout"),
        (format!("[{good_e}"), load_any, "not valid JSON"),
        ("[]".to_string(), load_any, "holds no records"),
    ];
    for (content, load, expected) in cases {
        let (err, path) = error_of(&content, load);
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        assert!(err.contains(&path), "the error must name the file: {err}");
    }
    for (content, expected) in [("", "the file is empty"), ("\"text\"", "expected a JSON array")] {
        let (err, _) = error_of(content, load_any);
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn json_lines_and_plain_arrays_load() {
    let jsonl =
        "{\"question\": \"1+1?\", \"answer\": \"2\"}\n\n{\"question\": \"2+2?\", \"answer\": \"4\"}\n";
    let file = TempFile::new("set.jsonl", jsonl);
    let (format, problems) = load_with_format(&file.path).unwrap();
    assert_eq!(format, Format::Plain);
    let expected = vec![
        Problem { question: "1+1?".into(), answer: "2".into() },
        Problem { question: "2+2?".into(), answer: "4".into() },
    ];
    assert_eq!(problems, expected);
    let array = TempFile::new("set.json", &serde_json::to_string(&expected).unwrap());
    assert_eq!(load_any(&array.path).unwrap(), expected);
    let eval_lines = "{\"prompt\": [{\"value\": \"Q\"}], \"final_answer\": \"7\"}\n";
    let eval_file = TempFile::new("eval.jsonl", eval_lines);
    assert_eq!(load_eval(&eval_file.path).unwrap(), [Problem { question: "Q".into(), answer: "7".into() }]);
    // A bad line is named by its line number (from 1, blank lines counted).
    let bad =
        TempFile::new("bad.jsonl", "{\"question\": \"Q\", \"answer\": \"1\"}\n\n{\"question\": \"Q\"}\n");
    let err = format!("{:#}", load_any(&bad.path).unwrap_err());
    assert!(err.contains("line 3: missing field `answer`"), "{err}");
    let broken = TempFile::new("broken.jsonl", "{\"question\": \"Q\", \"answer\": \"1\"}\n{\"question\n");
    let err = format!("{:#}", load_any(&broken.path).unwrap_err());
    assert!(err.contains("line 2: not valid JSON"), "{err}");
}

#[test]
fn named_sets_use_file_stems() {
    let paths = [orz_data("eval/aime2024.json"), orz_data("eval/math500.json")];
    let sets = load_named(&paths).unwrap();
    let names: Vec<&str> = sets.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["aime2024", "math500"]);
    assert_eq!((sets[0].1.len(), sets[1].1.len()), (30, 500));
    let a = TempFile::new("x.json", r#"[{"question": "Q", "answer": "1"}]"#);
    let b = TempFile::new("x.json", r#"[{"question": "R", "answer": "2"}]"#);
    let sets = load_named(&[&a.path, &b.path]).unwrap();
    assert_eq!(sets[0].0, a.path.display().to_string());
    assert_eq!(sets[1].1[0].question, "R");
}

#[test]
fn countdown_problems_carry_the_reward_reference() {
    let problems = countdown(&GeneratorConfig::default(), 0, 3).unwrap();
    assert_eq!(problems.len(), 3);
    assert_eq!(problems[0].answer, "target=50;numbers=15,87,66,86");
    assert!(
        problems[0]
            .question
            .starts_with("Using the numbers [15, 87, 66, 86], create an equation that equals 50.")
    );
    let bad = GeneratorConfig { min_numbers: 0, ..GeneratorConfig::default() };
    assert!(countdown(&bad, 0, 1).unwrap_err().to_string().contains("min_numbers"));
}
