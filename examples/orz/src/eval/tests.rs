//! Tests of the eval harness: the report's arithmetic, the JSONL file, determinism, bad inputs;
//! on a scripted model (known answers) and on a random tiny Qwen2 on the reference backend.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use orz_core::backend::{DType, Primitives};
use orz_core::model::Qwen2Config;
use orz_core::recipe::Preset;
use orz_core::reward::label;
use orz_reference::Reference;

use super::report::SetAccumulator;
use super::*;

/// The toy vocabulary after `[UNK]` (0) and the EOS `</s>` (1): one token per character.
const CHARS: &str = "abcdefghijklmnopqrstuvwxyz0123456789 <>/\\{}=?+-*().,:\n";

/// A character-level `tokenizer.json` (WordLevel over single characters, fused on decode).
fn toy_tokenizer() -> Tokenizer {
    let mut vocab = serde_json::Map::new();
    vocab.insert("[UNK]".into(), 0.into());
    vocab.insert("</s>".into(), 1.into());
    for (i, c) in CHARS.chars().enumerate() {
        vocab.insert(c.to_string(), (i + 2).into());
    }
    let special = |id: u32, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(0, "[UNK]"), special(1, "</s>")],
        "normalizer": null,
        "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(?s)."}, "behavior": "Isolated", "invert": false},
        "post_processor": null,
        "decoder": {"type": "Fuse"},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    Tokenizer::from_bytes(json.to_string().as_bytes(), "toy tokenizer").unwrap()
}

/// The tiny recipe with a short template and short completions.
fn recipe(generate_max_len: usize) -> RecipeConfig {
    let mut r = Preset::Tiny.config();
    r.prompt_template = "q: {question}\na:".into();
    r.train.stop.max_new_tokens = generate_max_len;
    r
}

/// A unique path under the system temp dir (the file is removed on drop).
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> TempPath {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        TempPath(std::env::temp_dir().join(format!("orz-eval-test-{}-{n}-{name}", std::process::id())))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn read_lines(path: &Path) -> Vec<EvalLine> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn problem(q: &str, a: &str) -> Problem {
    Problem { question: q.into(), answer: a.into() }
}

/// A model that writes a fixed script chosen by the question's first word: `one` answers 1,
/// `two` answers 3, `long` never stops, `coin` answers 4 or 5 with equal probability.
struct Scripted {
    backend: Reference,
    tokenizer: Tokenizer,
}

type T = <Reference as Primitives>::Tensor;

/// Per slot: the prompt's length and every token so far.
type ScriptCache = Vec<(usize, Vec<u32>)>;

impl Scripted {
    fn next_logits(&self, prompt_len: usize, seq: &[u32]) -> Vec<f32> {
        let prompt = self.tokenizer.decode(&seq[..prompt_len]).unwrap();
        let question = prompt.trim_start_matches("q: ");
        let script: Vec<Vec<char>> = if question.starts_with("long") {
            vec![vec!['a']; 1000]
        } else {
            let digit = match question.split_whitespace().next() {
                Some("one") => vec!['1'],
                Some("two") => vec!['3'],
                _ => vec!['4', '5'],
            };
            let mut s: Vec<Vec<char>> = " <answer>\\boxed{".chars().map(|c| vec![c]).collect();
            s.push(digit);
            s.extend("}</answer> more".chars().map(|c| vec![c]));
            s
        };
        let mut logits = vec![-100.0f32; 64];
        match script.get(seq.len() - prompt_len) {
            Some(choices) => {
                for c in choices {
                    logits[self.tokenizer.token_id(&c.to_string()).unwrap() as usize] = 0.0;
                }
            }
            None => logits[1] = 0.0,
        }
        logits
    }
}

impl SlotDecoder<Reference> for Scripted {
    type Cache = ScriptCache;
    fn vocab_size(&self) -> usize {
        64
    }
    fn new_cache(&self, slots: usize, _: usize) -> orz_core::Result<ScriptCache> {
        Ok(vec![(0, Vec::new()); slots])
    }
    fn cache_bytes(&self, slots: usize, max_len: usize) -> usize {
        slots * max_len * 4
    }
    fn prefill(&self, c: &mut ScriptCache, slot: usize, p: &[u32]) -> orz_core::Result<T> {
        c[slot] = (p.len(), p.to_vec());
        self.backend.tensor_f32(&self.next_logits(p.len(), p), &[64], DType::F32)
    }
    fn copy_slot(&self, c: &mut ScriptCache, from: usize, to: usize) -> orz_core::Result<()> {
        c[to] = c[from].clone();
        Ok(())
    }
    fn decode(&self, c: &mut ScriptCache, slots: &[usize], tokens: &[u32]) -> orz_core::Result<T> {
        let mut all = Vec::new();
        for (&s, &t) in slots.iter().zip(tokens) {
            c[s].1.push(t);
            all.extend(self.next_logits(c[s].0, &c[s].1));
        }
        self.backend.tensor_f32(&all, &[slots.len(), 64], DType::F32)
    }
    fn slot_len(&self, c: &ScriptCache, slot: usize) -> orz_core::Result<usize> {
        Ok(c[slot].1.len())
    }
}

fn scripted() -> Scripted {
    Scripted { backend: Reference::new(), tokenizer: toy_tokenizer() }
}

fn scripted_sets() -> Vec<(String, Vec<Problem>)> {
    vec![
        ("fixed".into(), vec![problem("one", "1"), problem("two", "2"), problem("long", "1")]),
        (
            "coins".into(),
            vec![problem("coin a", "4"), problem("coin b", "\\boxed{4}"), problem("coin c", "5")],
        ),
    ]
}

/// Runs the scripted model over [`scripted_sets`], writing the JSONL to `out`.
fn run_scripted(options: &EvalOptions<'_>) -> Result<EvalReport> {
    let model = scripted();
    let eos = [1];
    evaluate_with(
        &model.backend,
        &model,
        &eos,
        &model.tokenizer,
        &recipe(40),
        &scripted_sets(),
        options,
        &|_, _| {},
        &Single,
    )
}

#[test]
fn toy_tokenizer_round_trips() {
    let t = toy_tokenizer();
    let ids = t.encode("q: one\na: <answer>\\boxed{1}</answer>").unwrap();
    assert_eq!(ids.len(), 36);
    assert!(ids.iter().all(|i| (2..64).contains(i)));
    assert_eq!(t.decode(&ids).unwrap(), "q: one\na: <answer>\\boxed{1}</answer>");
    assert_eq!(t.encode("Q").unwrap(), [0]); // unknown character
}

#[test]
fn accuracy_is_the_mean_over_questions_of_the_mean_over_samples() {
    let mut acc = SetAccumulator::new("s", 3, 2);
    for (q, score, tokens, finish) in [
        (0, 1.0, 4, FinishReason::Stop),
        (0, 0.0, 6, FinishReason::Length),
        (1, 1.0, 2, FinishReason::Stop),
        (1, 1.0, 2, FinishReason::Stop),
        (2, 0.0, 10, FinishReason::Stop),
        (2, 0.0, 0, FinishReason::Length),
    ] {
        acc.add(q, score, tokens, finish).unwrap();
    }
    let r = acc.finish().unwrap();
    assert_eq!((r.name.as_str(), r.questions, r.samples), ("s", 3, 2));
    assert_eq!(r.accuracy, (0.5 + 1.0 + 0.0) / 3.0);
    assert_eq!(r.pass_at_samples, 2.0 / 3.0);
    assert_eq!(r.mean_response_tokens, 24.0 / 6.0);
    assert_eq!(r.stop_ratio, 4.0 / 6.0);
    // A missing sample, a question outside the set, a NaN score: errors.
    let mut short = SetAccumulator::new("t", 2, 2);
    short.add(0, 1.0, 1, FinishReason::Stop).unwrap();
    short.add(0, 1.0, 1, FinishReason::Stop).unwrap();
    short.add(1, 1.0, 1, FinishReason::Stop).unwrap();
    assert!(short.finish().unwrap_err().to_string().contains("`t` question 1: 1 completions, expected 2"));
    let mut out = SetAccumulator::new("u", 1, 1);
    assert!(out.add(1, 1.0, 1, FinishReason::Stop).is_err());
    assert!(out.add(0, f64::NAN, 1, FinishReason::Stop).is_err());
}

#[test]
fn scripted_answers_give_known_scores_and_jsonl() {
    let out = TempPath::new("scripted.jsonl");
    let options = EvalOptions { out_jsonl: Some(&out.0), ..EvalOptions::new(8, 3) };
    let report = run_scripted(&options).unwrap();
    let lines = read_lines(&out.0);
    assert_eq!(lines.len(), 6 * 8);
    let fixed = report.set("fixed").unwrap();
    // `one` always right, `two` always wrong, `long` always truncated.
    assert_eq!((fixed.questions, fixed.samples, fixed.accuracy), (3, 8, 1.0 / 3.0));
    assert_eq!(fixed.pass_at_samples, 1.0 / 3.0);
    assert_eq!(fixed.stop_ratio, 2.0 / 3.0);
    let script_len = " <answer>\\boxed{1}</answer>".len() as f64;
    assert_eq!(fixed.mean_response_tokens, (2.0 * script_len + 40.0) / 3.0);
    for l in lines.iter().filter(|l| l.file == "fixed") {
        let (score, label, finish, extracted) = match l.index {
            0 => (1.0, label::CORRECT, "stop", "1"),
            1 => (0.0, label::WRONG, "stop", "3"),
            _ => (0.0, label::TRUNCATED, "length", ""),
        };
        assert_eq!(
            (l.score, l.label.as_str(), l.finish_reason.as_str(), l.extracted.as_str()),
            (score, label, finish, extracted),
            "{l:?}"
        );
        assert_eq!(l.question, scripted_sets()[0].1[l.index].question);
        assert_eq!(l.reference, scripted_sets()[0].1[l.index].answer);
    }
    assert_eq!(lines[0].completion, " <answer>\\boxed{1}</answer>"); // cut at the stop string
    // The coins: every line's score follows its extracted digit, and the set's accuracy is the
    // mean of the per-question means of the JSONL scores.
    let coins: Vec<&EvalLine> = lines.iter().filter(|l| l.file == "coins").collect();
    let mut per_question = [0.0; 3];
    for l in &coins {
        let right = if l.index == 2 { "5" } else { "4" };
        assert_eq!(l.score, if l.extracted == right { 1.0 } else { 0.0 }, "{l:?}");
        per_question[l.index] += l.score / 8.0;
        assert_eq!(
            lines.iter().filter(|m| m.file == "coins" && m.index == l.index && m.sample == l.sample).count(),
            1
        );
    }
    let coins_report = report.set("coins").unwrap();
    assert_eq!(coins_report.accuracy, per_question.iter().sum::<f64>() / 3.0);
    assert!(per_question.iter().all(|&p| p > 0.0 && p < 1.0), "both faces should appear: {per_question:?}");
    let table = report.to_string();
    assert!(table.contains("fixed") && table.contains("33.3%") && table.contains("seed 3"), "{table}");
}

#[test]
fn same_seed_same_completions_whatever_the_engine_slots() {
    let (a, b, c) = (TempPath::new("a.jsonl"), TempPath::new("b.jsonl"), TempPath::new("c.jsonl"));
    let base = EvalOptions::new(8, 11);
    run_scripted(&EvalOptions { out_jsonl: Some(&a.0), ..base }).unwrap();
    let few_slots = EngineConfig { max_batch_slots: 3, ..DEFAULT_ENGINE };
    run_scripted(&EvalOptions { out_jsonl: Some(&b.0), engine: few_slots, ..base }).unwrap();
    run_scripted(&EvalOptions { out_jsonl: Some(&c.0), seed: 12, ..base }).unwrap();
    let read = |p: &TempPath| std::fs::read_to_string(&p.0).unwrap();
    assert_eq!(read(&a), read(&b));
    assert_ne!(read(&a), read(&c));
}

#[test]
fn bad_inputs_are_errors() {
    let model = scripted();
    let run = |sets: &[(String, Vec<Problem>)], options: &EvalOptions<'_>| {
        let r = recipe(8);
        evaluate_with(&model.backend, &model, &[1], &model.tokenizer, &r, sets, options, &|_, _| {}, &Single)
            .unwrap_err()
            .to_string()
    };
    let sets = scripted_sets();
    assert!(run(&[], &EvalOptions::new(1, 0)).contains("no eval set"));
    assert!(run(&[("empty".into(), vec![])], &EvalOptions::new(1, 0)).contains("`empty` has no question"));
    assert!(run(&sets, &EvalOptions::new(0, 0)).contains("samples must be >= 1"));
    let zero_chunk = EvalOptions { prompts_per_call: 0, ..EvalOptions::new(1, 0) };
    assert!(run(&sets, &zero_chunk).contains("prompts_per_call"));
    let nowhere = std::env::temp_dir().join("orz-eval-test-no-such-dir/out.jsonl");
    let err = run(&sets, &EvalOptions { out_jsonl: Some(&nowhere), ..EvalOptions::new(1, 0) });
    assert!(err.contains(&nowhere.display().to_string()), "{err}");
}

#[test]
fn random_tiny_policy_report_matches_its_jsonl_and_is_deterministic() {
    let config = Qwen2Config::tiny_test();
    let policy =
        Policy::random(Rc::new(Reference::new()), &config, DType::F32, &mut Rng::seed_from_u64(5)).unwrap();
    let tokenizer = toy_tokenizer();
    let sets = vec![
        ("a".to_string(), vec![problem("1+1=?", "2"), problem("2*3=?", "6")]),
        ("b".to_string(), vec![problem("what is 7", "7")]),
    ];
    let (x, y) = (TempPath::new("x.jsonl"), TempPath::new("y.jsonl"));
    let calls = Cell::new((0, 0, 0));
    let progress = |done: usize, total: usize| {
        let (n, _, _) = calls.get();
        calls.set((n + 1, done, total));
    };
    let r = recipe(6);
    let options = EvalOptions { out_jsonl: Some(&x.0), prompts_per_call: 1, ..EvalOptions::new(3, 9) };
    let report = evaluate(&policy, &tokenizer, &r, &sets, &options, &progress).unwrap();
    assert_eq!(calls.get(), (4, 9, 9)); // once at 0, then after each of the 3 engine calls
    let lines = read_lines(&x.0);
    assert_eq!(lines.len(), 9);
    for set in &report.sets {
        let mine: Vec<&EvalLine> = lines.iter().filter(|l| l.file == set.name).collect();
        assert_eq!(mine.len(), set.questions * 3);
        let n = mine.len() as f64;
        assert_eq!(set.accuracy, mine.iter().map(|l| l.score).sum::<f64>() / n);
        assert_eq!(set.mean_response_tokens, mine.iter().map(|l| l.response_tokens as f64).sum::<f64>() / n);
        assert_eq!(set.stop_ratio, mine.iter().filter(|l| l.finish_reason == "stop").count() as f64 / n);
        assert!(mine.iter().all(|l| l.response_tokens >= 1 && l.response_tokens <= 6));
    }
    let again = EvalOptions { out_jsonl: Some(&y.0), ..options };
    assert_eq!(evaluate(&policy, &tokenizer, &r, &sets, &again, &|_, _| {}).unwrap(), report);
    assert_eq!(std::fs::read_to_string(&x.0).unwrap(), std::fs::read_to_string(&y.0).unwrap());

    // `generate`: the same draws as set 0 of an evaluation, in (question, sample) order.
    let questions: Vec<String> = sets[0].1.iter().map(|p| p.question.clone()).collect();
    let generated = generate(&policy, &tokenizer, &r, &questions, &options).unwrap();
    let order: Vec<(usize, usize)> = generated.iter().map(|g| (g.prompt, g.sample)).collect();
    assert_eq!(order, [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]);
    for (g, l) in generated.iter().zip(lines.iter().filter(|l| l.file == "a")) {
        assert_eq!(
            (&g.text, g.finish_reason.as_str(), g.tokens),
            (&l.completion, l.finish_reason.as_str(), l.response_tokens)
        );
    }
    assert!(generate(&policy, &tokenizer, &r, &[], &options).is_err());
}

#[test]
fn real_eval_file_prompts_are_cut_to_prompt_max_len() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/orz/eval/aime2024.json");
    let problems = crate::data::load_eval(&path).unwrap();
    let mut r = Preset::Tiny.config(); // ORZ's template: about 700 characters, so 700 toy tokens
    r.train.stop.max_new_tokens = 2;
    let tokenizer = toy_tokenizer();
    let prompts = render(&tokenizer, &r, "aime2024", &problems).unwrap();
    assert_eq!(prompts.len(), 30);
    for ((text, tokens), p) in prompts.iter().zip(&problems) {
        assert!(text.contains(&p.question) && text.ends_with("Assistant: <think>"));
        assert_eq!(tokens[..], tokenizer.encode(text).unwrap()[..r.train.prompt_max_len]);
    }
    let config = Qwen2Config::tiny_test();
    let policy =
        Policy::random(Rc::new(Reference::new()), &config, DType::F32, &mut Rng::seed_from_u64(0)).unwrap();
    let sets = vec![("aime2024".to_string(), problems)];
    let report = evaluate(&policy, &tokenizer, &r, &sets, &EvalOptions::new(1, 0), &|_, _| {}).unwrap();
    let aime = report.set("aime2024").unwrap();
    assert_eq!((aime.questions, aime.samples), (30, 1));
    assert!(aime.mean_response_tokens > 0.0 && aime.mean_response_tokens <= 2.0);
}
