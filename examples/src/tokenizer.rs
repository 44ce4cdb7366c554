//! [`Tokenizer`]: a Hugging Face `tokenizer.json` through the `tokenizers` crate, for real Qwen2.5
//! checkpoints and for the tiny default alike (one code path).

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use orz_core::generation::Detokenize;

/// A loaded `tokenizer.json`, with where it came from (for error messages).
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    source: String,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer").field("source", &self.source).field("vocab", &self.vocab_size()).finish()
    }
}

impl Tokenizer {
    /// Loads `path` (a `tokenizer.json`); the error names the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Tokenizer> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).with_context(|| format!("reading tokenizer {}", path.display()))?;
        Tokenizer::from_bytes(&bytes, &path.display().to_string())
    }

    /// Parses the bytes of a `tokenizer.json`; `source` names them in errors.
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Tokenizer> {
        let inner = tokenizers::Tokenizer::from_bytes(bytes)
            .map_err(|e| anyhow!("{source}: not a valid Hugging Face tokenizer.json: {e}"))?;
        Ok(Tokenizer { inner, source: source.to_string() })
    }

    /// Where the tokenizer came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Token ids of `text`, without added special tokens (ORZ: Qwen2.5 base has no BOS).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc =
            self.inner.encode(text, false).map_err(|e| anyhow!("{}: encoding failed: {e}", self.source))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens skipped (as vLLM returns completions to ORZ's reward).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| anyhow!("{}: decoding {} ids failed: {e}", self.source, ids.len()))
    }

    /// The id of `token`, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The underlying `tokenizers` tokenizer (to save it next to a checkpoint).
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

impl Detokenize for Tokenizer {
    /// Decoding never fails on ids the model can produce; an id outside the vocabulary decodes
    /// to U+FFFD instead of stopping generation.
    fn decode(&self, tokens: &[u32]) -> String {
        self.inner.decode(tokens, true).unwrap_or_else(|_| "\u{fffd}".to_string())
    }
}
