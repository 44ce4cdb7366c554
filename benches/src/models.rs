//! The model shapes the benchmarks run (random weights; all Qwen2 with SwiGLU, RMSNorm, RoPE,
//! grouped-query attention).

use orz_core::model::Qwen2Config;

/// The vocabulary of Qwen2.5 (151,936 rows of the embedding and the LM head).
pub const QWEN_VOCAB: usize = 151_936;

/// A Qwen2.5-0.5B-shaped model made small enough for a CPU run in minutes: Qwen's vocabulary
/// (151,936) and head geometry (head dim 64, tied embeddings, RoPE theta 1e6), hidden 512,
/// 4 layers, 8 query heads over 2 KV heads, SwiGLU 1,536 (about 90M parameters, 78M of them the
/// embedding). Used by `vs_pytorch`.
pub fn qwen_mini() -> Qwen2Config {
    Qwen2Config {
        vocab_size: QWEN_VOCAB,
        hidden_size: 512,
        intermediate_size: 1536,
        num_hidden_layers: 4,
        num_attention_heads: 8,
        num_key_value_heads: 2,
        rope_theta: 1_000_000.0,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: true,
        max_position_embeddings: 4096,
        bos_token_id: None,
        eos_token_ids: vec![QWEN_VOCAB as u32 - 1],
    }
}

/// Qwen2.5-0.5B's published shape (hidden 896, 24 layers, 14 query heads over 2 KV heads of
/// 64, SwiGLU 4,864, tied embeddings, 494M parameters), for the GPU run (`vs_pytorch prepare
/// --shape qwen2.5-0.5b`, `scripts/gpu-check.sh`).
pub fn qwen25_0p5b() -> Qwen2Config {
    Qwen2Config {
        hidden_size: 896,
        intermediate_size: 4864,
        num_hidden_layers: 24,
        num_attention_heads: 14,
        num_key_value_heads: 2,
        max_position_embeddings: 32_768,
        eos_token_ids: vec![151_643],
        ..qwen_mini()
    }
}

/// The criterion benches' model on the fast backends: hidden 256, 4 layers, vocabulary 8,192,
/// 8 query heads over 2 KV heads (head dim 32), SwiGLU 1,024, tied embeddings.
pub fn small() -> Qwen2Config {
    Qwen2Config {
        vocab_size: 8192,
        hidden_size: 256,
        intermediate_size: 1024,
        num_hidden_layers: 4,
        num_attention_heads: 8,
        num_key_value_heads: 2,
        max_position_embeddings: 4096,
        eos_token_ids: vec![],
        ..qwen_mini()
    }
}

/// The reference backend's and the tests' model: hidden 32, 2 layers, vocabulary 256, 4 query
/// heads over 2 KV heads, SwiGLU 64.
pub fn tiny() -> Qwen2Config {
    Qwen2Config {
        vocab_size: 256,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        max_position_embeddings: 512,
        eos_token_ids: vec![],
        ..qwen_mini()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_config_is_valid() {
        for c in [qwen_mini(), small(), tiny()] {
            c.validate().expect("a valid config");
        }
        assert_eq!(qwen_mini().head_dim(), 64);
    }
}
