//! Fixtures for tests and the example programs: a small random Qwen2 written to disk as a Hugging
//! Face model directory.

use std::path::Path;
use std::rc::Rc;

use anyhow::Result;
use orz_core::backend::DType;
use orz_core::model::{Head, Policy, Qwen2Config};
use orz_core::rng::Rng;

use crate::tokenizer::byte_level_json;

/// Writes a random Qwen2 (vocabulary 260, hidden 32, 2 layers, EOS 256, untied embeddings,
/// weights from `seed`, saved in BF16) with the byte-level `tokenizer.json` (257 tokens) into
/// `dir`: `config.json`, `model.safetensors`, `tokenizer.json`.
pub fn write_small_model(dir: &Path, seed: u64) -> Result<()> {
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
    let policy = Policy::random(Rc::clone(&b), &config, DType::F32, &mut Rng::seed_from_u64(seed))?;
    let named = policy.model().named_tensors();
    orz_hf::save_model(&*b, dir, &config, Head::Lm, &named, DType::BF16, None)?;
    std::fs::write(dir.join("tokenizer.json"), byte_level_json())?;
    Ok(())
}
