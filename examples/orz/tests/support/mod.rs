//! What the `orz` integration tests share: temp dirs, the repository root and a small random
//! Qwen2 written to disk in Hugging Face format.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orz-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A random Qwen2 of vocabulary 260 (the byte-level tokenizer has 257 tokens), EOS 256.
pub fn write_small_model(dir: &Path) {
    orz::testing::write_small_model(dir, 5).unwrap();
}
