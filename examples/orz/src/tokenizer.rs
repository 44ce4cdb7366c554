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

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// The text of this tokenizer's `tokenizer.json` (to save it next to a checkpoint).
    pub fn to_json(&self) -> Result<String> {
        self.inner.to_string(false).map_err(|e| anyhow!("{}: serializing the tokenizer: {e}", self.source))
    }
}

/// The end-of-text token of [`byte_level_json`] (Qwen2.5's EOS spelling).
pub const BYTE_LEVEL_EOS: &str = "<|endoftext|>";

/// A `tokenizer.json` of the same kind as Qwen2's (byte-level BPE, GPT-2 byte-to-unicode
/// alphabet, the ByteLevel pre-tokenizer and decoder) but without merges: every byte of the
/// text is one token (ids 0..256), and [`BYTE_LEVEL_EOS`] is id 256. Any text round-trips; for
/// tests and random-weight models of any vocabulary of at least 257.
pub fn byte_level_json() -> String {
    let vocab: serde_json::Map<String, serde_json::Value> =
        byte_alphabet().into_iter().enumerate().map(|(i, c)| (c.to_string(), i.into())).collect();
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [{
            "id": 256, "content": BYTE_LEVEL_EOS, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true
        }],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": []
        }
    })
    .to_string()
}

/// GPT-2's byte-to-unicode table: the character standing for each byte 0..256.
fn byte_alphabet() -> Vec<char> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut extra = 0;
    (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap_or('?')
            } else {
                extra += 1;
                char::from_u32(255 + extra).unwrap_or('?')
            }
        })
        .collect()
}

impl Detokenize for Tokenizer {
    /// Decoding never fails on ids the model can produce; an id outside the vocabulary decodes
    /// to U+FFFD instead of stopping generation.
    fn decode(&self, tokens: &[u32]) -> String {
        self.inner.decode(tokens, true).unwrap_or_else(|_| "\u{fffd}".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_tokenizer_round_trips_any_text() {
        let t = Tokenizer::from_bytes(byte_level_json().as_bytes(), "byte-level").unwrap();
        assert_eq!(t.vocab_size(), 257);
        assert_eq!(t.token_id(BYTE_LEVEL_EOS), Some(256));
        for text in ["What is $\\frac{1}{2}$?\nAssistant: <think>", "  ünïcode ∑ 😀 ", "", "\t\r\n"] {
            let ids = t.encode(text).unwrap();
            assert_eq!(ids.len(), text.len(), "one token per byte: {text:?}");
            assert_eq!(t.decode(&ids).unwrap(), text);
        }
        // The EOS is special: skipped when decoding.
        let mut ids = t.encode("ab").unwrap();
        ids.push(256);
        assert_eq!(Detokenize::decode(&t, &ids), "ab");
    }

    #[test]
    fn a_broken_tokenizer_file_is_named() {
        let e = Tokenizer::from_bytes(b"{}", "model/tokenizer.json").unwrap_err().to_string();
        assert!(e.contains("model/tokenizer.json"), "{e}");
        let e = Tokenizer::from_file("/nonexistent/tokenizer.json").unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/tokenizer.json"));
    }
}
