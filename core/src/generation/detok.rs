//! Detokenization: the [`Detokenize`] callback and [`IncrementalText`], which turns a growing
//! token sequence into text at a constant cost per token.
//!
//! Decoding a token alone can differ from decoding it in context (SentencePiece's leading
//! space, byte-level BPE tokens that hold part of a UTF-8 character), so [`IncrementalText`]
//! follows vLLM's incremental detokenization: it decodes a short window of tokens twice,
//! `tokens[prefix..read]` (already emitted) and `tokens[prefix..]`, and emits the difference
//! once it no longer ends in U+FFFD (an unfinished character). The window starts with up to
//! [`PROMPT_CONTEXT`] tokens of the prompt, as vLLM's does. Each step decodes a window of a few
//! tokens, so the cost per step does not grow with the completion's length; a run of tokens that
//! keeps ending in U+FFFD (invalid bytes) is emitted as it is after [`MAX_PENDING`] tokens, so
//! the window stays short.

use alloc::string::String;
use alloc::vec::Vec;

/// Turns token ids into text (a tokenizer's `decode`, skipping special tokens). Implemented for
/// every `Fn(&[u32]) -> String`.
pub trait Detokenize {
    /// The text of `tokens`.
    fn decode(&self, tokens: &[u32]) -> String;
}

impl<F: Fn(&[u32]) -> String> Detokenize for F {
    fn decode(&self, tokens: &[u32]) -> String {
        self(tokens)
    }
}

/// Prompt tokens decoded as context before the first generated token (vLLM uses 5).
pub const PROMPT_CONTEXT: usize = 5;

/// Tokens whose text may stay pending (ending in U+FFFD) before it is emitted anyway.
pub const MAX_PENDING: usize = 8;

/// The text of a growing token sequence, decoded incrementally (see the [module docs](self)).
#[derive(Debug, Clone, Default)]
pub struct IncrementalText {
    /// Prompt context followed by the generated tokens pushed so far.
    window: Vec<u32>,
    /// Start of the window decoded as context.
    prefix: usize,
    /// End of the tokens whose text has been emitted.
    read: usize,
    /// The emitted text of the generated tokens.
    text: String,
}

impl IncrementalText {
    /// An empty text whose first token is decoded after the last [`PROMPT_CONTEXT`] tokens of
    /// `prompt`.
    pub fn new(prompt: &[u32]) -> Self {
        let context = &prompt[prompt.len().saturating_sub(PROMPT_CONTEXT)..];
        IncrementalText { window: context.to_vec(), prefix: 0, read: context.len(), text: String::new() }
    }

    /// The text emitted so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Appends `token` and returns the byte offset in [`IncrementalText::text`] where the newly
    /// emitted text starts (equal to the text's length when nothing was emitted yet).
    pub fn push(&mut self, token: u32, detok: &impl Detokenize) -> usize {
        self.window.push(token);
        let start = self.text.len();
        let pending = self.window.len() - self.read;
        self.emit(detok, pending >= MAX_PENDING);
        start
    }

    /// Emits whatever text is still pending (call once the sequence is complete); returns the
    /// byte offset where the newly emitted text starts.
    pub fn flush(&mut self, detok: &impl Detokenize) -> usize {
        let start = self.text.len();
        if self.read < self.window.len() {
            self.emit(detok, true);
        }
        start
    }

    /// Truncates the text to `len` bytes (a char boundary; a stop string's end).
    pub fn truncate(&mut self, len: usize) {
        if self.text.is_char_boundary(len) {
            self.text.truncate(len);
        }
    }

    /// Consumes the decoder, giving its text.
    pub fn into_text(self) -> String {
        self.text
    }

    fn emit(&mut self, detok: &impl Detokenize, force: bool) {
        let before = detok.decode(&self.window[self.prefix..self.read]);
        let full = detok.decode(&self.window[self.prefix..]);
        if full.ends_with('\u{FFFD}') && !force {
            return; // an unfinished character: wait for the next token
        }
        // The new text is what `full` adds to `before`; for a well-behaved tokenizer `before` is
        // a prefix of `full`, otherwise the longest common prefix (on char boundaries) is kept.
        let common = before
            .char_indices()
            .zip(full.chars())
            .find(|((_, a), b)| a != b)
            .map_or(before.len().min(full.len()), |((i, _), _)| i);
        let common = if full.is_char_boundary(common) { common } else { 0 };
        self.text.push_str(&full[common..]);
        // Slide the window: the emitted tokens become the context of the next step.
        let trim = self.read;
        self.prefix = 0;
        self.read = self.window.len() - trim;
        self.window.drain(..trim);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    /// A byte-level toy tokenizer: token t < 256 is the byte t; decode is lossy UTF-8.
    fn bytes(tokens: &[u32]) -> String {
        let bytes: Vec<u8> = tokens.iter().map(|&t| t as u8).collect();
        String::from_utf8_lossy(&bytes).to_string()
    }

    #[test]
    fn multibyte_characters_wait_until_complete() {
        let mut t = IncrementalText::new(&[b'x' as u32]);
        let word = "hé€!";
        for (i, &byte) in word.as_bytes().iter().enumerate() {
            let start = t.push(u32::from(byte), &bytes);
            assert!(!t.text().contains('\u{FFFD}'), "step {i}: {:?}", t.text());
            assert!(start <= t.text().len());
        }
        assert_eq!(t.text(), word);
    }

    #[test]
    fn invalid_bytes_are_emitted_after_a_bounded_wait_and_on_flush() {
        let mut t = IncrementalText::new(&[]);
        t.push(0xE2, &bytes);
        assert_eq!(t.text(), "");
        t.flush(&bytes);
        assert_eq!(t.text(), "\u{FFFD}");
        let mut t = IncrementalText::new(&[]);
        for _ in 0..MAX_PENDING {
            t.push(0xFF, &bytes);
        }
        assert!(t.text().starts_with('\u{FFFD}'));
        assert!(t.window.len() <= MAX_PENDING + PROMPT_CONTEXT);
    }

    #[test]
    fn context_dependent_tokens_decode_as_in_the_full_sequence() {
        // SentencePiece-like: a token after another gets a leading space, a first token none.
        let words = ["zero", "one", "two", "three"];
        let sp = |ts: &[u32]| ts.iter().map(|&t| words[t as usize]).collect::<Vec<_>>().join(" ");
        let mut t = IncrementalText::new(&[0, 1]);
        for tok in [2, 3, 1] {
            t.push(tok, &sp);
        }
        assert_eq!(t.text(), " two three one");
        // Without prompt context, the first token has no leading space.
        let mut t = IncrementalText::new(&[]);
        t.push(2, &sp);
        t.push(3, &sp);
        assert_eq!(t.into_text(), "two three");
    }
}
