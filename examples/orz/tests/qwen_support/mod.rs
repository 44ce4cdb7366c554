//! What the Qwen2.5-tokenizer tests share: where `scripts/qwen-tokenizer.sh` caches the
//! tokenizer and tiktoken's ids, and skipping (with a message) where it has not been run.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use orz::tokenizer::Tokenizer;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The folder `scripts/qwen-tokenizer.sh` writes.
pub fn cache_dir() -> PathBuf {
    repo().join(".cache/qwen2.5-tokenizer")
}

/// Qwen2.5's `tokenizer.json`, or `None` (and a message saying how to build it) when absent:
/// the test that called it then returns early. Under CI (`CI` set) absence is a failure.
pub fn tokenizer_path(test: &str) -> Option<PathBuf> {
    let path = cache_dir().join("tokenizer.json");
    if path.is_file() {
        Some(path)
    } else if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: {} is absent under CI; scripts/test.sh must run ./scripts/qwen-tokenizer.sh",
            path.display()
        )
    } else {
        // Straight to stderr: the test harness captures `eprintln!` of a passing test.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: {} is absent; run ./scripts/qwen-tokenizer.sh to build Qwen2.5's \
             tokenizer (scripts/test.sh does, so CI always runs this test)",
            path.display()
        );
        None
    }
}

/// Qwen2.5's tokenizer through the project's wrapper, or `None` when absent (see
/// [`tokenizer_path`]).
pub fn qwen(test: &str) -> Option<Tokenizer> {
    tokenizer_path(test).map(|p| Tokenizer::from_file(p).unwrap())
}

/// One text and tiktoken's ids of it, from `tiktoken_ids.jsonl`.
#[derive(Debug, serde::Deserialize)]
pub struct Reference {
    /// Where the text comes from (`orz_math_57k_subset.json[3].prompt`, `extra[0]`).
    pub source: String,
    /// The text as in the data.
    pub text: String,
    /// The text after NFC, where it differs.
    pub nfc: Option<String>,
    /// tiktoken's ids (NFC first, special tokens recognised).
    pub ids: Vec<u32>,
}

impl Reference {
    /// The text the ids decode back to (NFC).
    pub fn normalized(&self) -> &str {
        self.nfc.as_deref().unwrap_or(&self.text)
    }
}

/// Every record of `tiktoken_ids.jsonl`, in order.
pub fn references() -> Vec<Reference> {
    let path = cache_dir().join("tiktoken_ids.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1)))
        .collect()
}

/// The references by text.
pub fn by_text(refs: &[Reference]) -> HashMap<&str, &Reference> {
    refs.iter().map(|r| (r.text.as_str(), r)).collect()
}

/// Qwen2.5's 22 special tokens from id 151643 (Qwen2.5's tokenizer_config.json).
pub const SPECIAL: [&str; 22] = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
];
