//! What the `orz` integration tests share: temp dirs, the repository root and a small random
//! Qwen2 written to disk in Hugging Face format.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::rc::Rc;

use orz::tokenizer::byte_level_json;
use orz_core::backend::DType;
use orz_core::model::{Head, Policy, Qwen2Config};
use orz_core::rng::Rng;

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
    let config = Qwen2Config {
        vocab_size: 260,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        eos_token_ids: vec![256],
        tie_word_embeddings: false,
        ..Qwen2Config::tiny_test()
    };
    let b = Rc::new(orz_candle::Candle::cpu());
    let policy = Policy::random(Rc::clone(&b), &config, DType::F32, &mut Rng::seed_from_u64(5)).unwrap();
    let named = policy.model().named_tensors();
    orz_hf::save_model(&*b, dir, &config, Head::Lm, &named, DType::BF16, None).unwrap();
    std::fs::write(dir.join("tokenizer.json"), byte_level_json()).unwrap();
}
