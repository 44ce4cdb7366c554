//! The Qwen2 configuration: the fields of a Hugging Face `config.json` that define the model.

use alloc::format;
use alloc::vec::Vec;

use crate::error::{Error, Result};

/// A Qwen2 architecture (Qwen2.5 uses the same), field names as in Hugging Face's
/// `Qwen2Config`.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Qwen2Config {
    /// Vocabulary size (rows of `embed_tokens` and `lm_head`).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads per layer.
    pub num_attention_heads: usize,
    /// Key/value heads per layer (grouped-query attention; divides `num_attention_heads`).
    pub num_key_value_heads: usize,
    /// RoPE base frequency.
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Whether `lm_head` shares `embed_tokens`' weight (true for Qwen2.5-0.5B/1.5B/3B).
    pub tie_word_embeddings: bool,
    /// Longest position the model was trained for.
    pub max_position_embeddings: usize,
    /// Beginning-of-sequence token, if any (Qwen2.5 base models prepend none).
    pub bos_token_id: Option<u32>,
    /// End-of-sequence tokens (Hugging Face allows one id or a list).
    pub eos_token_ids: Vec<u32>,
}

impl Qwen2Config {
    /// Width of one attention head: `hidden_size / num_attention_heads`.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }

    /// Checks that the sizes are consistent, naming the offending fields.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "qwen2 config";
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Error::invalid(OP, format!("`{name}` must be positive, got 0")));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(Error::invalid(
                OP,
                format!(
                    "`hidden_size` ({}) is not divisible by `num_attention_heads` ({})",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        if !self.num_attention_heads.is_multiple_of(self.num_key_value_heads) {
            return Err(Error::invalid(
                OP,
                format!(
                    "`num_attention_heads` ({}) is not divisible by `num_key_value_heads` ({})",
                    self.num_attention_heads, self.num_key_value_heads
                ),
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(Error::invalid(OP, format!("head_dim {} must be even for RoPE", self.head_dim())));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(Error::invalid(
                OP,
                format!("`rope_theta` must be positive, got {}", self.rope_theta),
            ));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return Err(Error::invalid(
                OP,
                format!("`rms_norm_eps` must be positive, got {}", self.rms_norm_eps),
            ));
        }
        let vocab = self.vocab_size;
        let ids = self.bos_token_id.iter().chain(&self.eos_token_ids);
        if let Some(id) = ids.into_iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::invalid(OP, format!("token id {id} is outside the vocabulary of {vocab}")));
        }
        Ok(())
    }

    /// A tiny configuration for tests and demos (2 layers, GQA 4:2, vocab 64).
    pub fn tiny_test() -> Qwen2Config {
        Qwen2Config {
            vocab_size: 64,
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            rope_theta: 10000.0,
            rms_norm_eps: 1e-6,
            tie_word_embeddings: false,
            max_position_embeddings: 256,
            bos_token_id: None,
            eos_token_ids: alloc::vec![1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn tiny_is_valid() {
        assert_eq!(Qwen2Config::tiny_test().validate(), Ok(()));
        assert_eq!(Qwen2Config::tiny_test().head_dim(), 8);
    }

    #[test]
    fn inconsistent_sizes_are_named() {
        let mut c = Qwen2Config::tiny_test();
        c.num_key_value_heads = 3;
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.contains("num_key_value_heads"), "{msg}");
        let mut c = Qwen2Config::tiny_test();
        c.hidden_size = 30;
        assert!(c.validate().unwrap_err().to_string().contains("hidden_size"));
        let mut c = Qwen2Config::tiny_test();
        c.eos_token_ids = alloc::vec![64];
        assert!(c.validate().unwrap_err().to_string().contains("token id 64"));
        let mut c = Qwen2Config::tiny_test();
        c.num_hidden_layers = 0;
        assert!(c.validate().unwrap_err().to_string().contains("num_hidden_layers"));
    }
}
