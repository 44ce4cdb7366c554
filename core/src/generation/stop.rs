//! Stop conditions ([`StopCriteria`]) and the per-completion state that applies them token by
//! token ([`StopChecker`]).
//!
//! After each sampled token, in this order (vLLM's):
//!
//! 1. **EOS**: the token is one of `eos_token_ids` → finish `stop`. The EOS token is kept in the
//!    completion's tokens (as vLLM's `token_ids`) but adds nothing to its text (it is never
//!    passed to the detokenizer: special tokens are skipped).
//! 2. **stop string**: the token's text is appended (incrementally, see [`IncrementalText`]) and
//!    the generated text (never the prompt) is searched for the stop strings; at the first
//!    occurrence (the one that ends first) the text is cut right after it, so the stop string
//!    **stays in the text** (ORZ, vLLM `include_stop_str_in_output=True`), the tokens end with the
//!    token that completed it, and the finish reason is `stop`. Only the newly emitted text plus
//!    an overlap of the longest stop string's length minus one byte is searched, so the cost
//!    per token does not grow with the completion's length.
//! 3. **length**: `max_new_tokens` tokens generated, or prompt plus completion reaching
//!    `max_total_len` → finish `length`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::detok::{Detokenize, IncrementalText};
use super::finish::FinishReason;
use crate::{Error, Result};

/// When a completion stops: EOS ids, stop strings, and two length limits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StopCriteria {
    /// Token ids that end a completion with `stop` (kept in the tokens, not in the text).
    pub eos_token_ids: Vec<u32>,
    /// Strings that end a completion with `stop` once they appear in its text (kept in it).
    pub stop_strings: Vec<String>,
    /// Most tokens generated per completion (ORZ `generate_max_len`), at least 1.
    pub max_new_tokens: usize,
    /// Most tokens of prompt plus completion (ORZ `max_len`), at least 2.
    pub max_total_len: usize,
}

impl StopCriteria {
    /// Checks `max_new_tokens >= 1`, `max_total_len >= 2` and that no stop string is empty; the
    /// error names the field.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "stop criteria";
        if self.max_new_tokens == 0 {
            return Err(Error::invalid(OP, "max_new_tokens must be >= 1, got 0"));
        }
        if self.max_total_len < 2 {
            return Err(Error::invalid(
                OP,
                format!(
                    "max_total_len must be >= 2 (one prompt and one new token), got {}",
                    self.max_total_len
                ),
            ));
        }
        if let Some(i) = self.stop_strings.iter().position(String::is_empty) {
            return Err(Error::invalid(OP, format!("stop_strings[{i}] is empty")));
        }
        Ok(())
    }

    /// Bytes of the longest stop string (0 without stop strings).
    pub fn longest_stop_string(&self) -> usize {
        self.stop_strings.iter().map(String::len).max().unwrap_or(0)
    }

    /// The most tokens a completion of a `prompt_len`-token prompt can have.
    pub fn max_new_for(&self, prompt_len: usize) -> usize {
        self.max_new_tokens.min(self.max_total_len.saturating_sub(prompt_len))
    }

    /// End (byte offset) of the first stop string occurrence in `text` that ends after byte
    /// `from`, searching only `text[from - (longest - 1)..]`; the earliest end wins.
    pub fn find_stop(&self, text: &str, from: usize) -> Option<usize> {
        let overlap = self.longest_stop_string().saturating_sub(1);
        let mut start = from.saturating_sub(overlap).min(text.len());
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let tail = &text[start..];
        self.stop_strings
            .iter()
            .filter_map(|s| tail.find(s.as_str()).map(|i| start + i + s.len()))
            .filter(|&end| end > from)
            .min()
    }
}

/// The state of one completion being generated: its tokens, its text, whether it has finished.
#[derive(Debug, Clone)]
pub struct StopChecker {
    tokens: Vec<u32>,
    text: IncrementalText,
    max_new: usize,
    finished: Option<FinishReason>,
}

impl StopChecker {
    /// A completion of `prompt` (the prompt's last tokens give the detokenizer its context).
    pub fn new(prompt: &[u32], criteria: &StopCriteria) -> Self {
        StopChecker {
            tokens: Vec::new(),
            text: IncrementalText::new(prompt),
            max_new: criteria.max_new_for(prompt.len()),
            finished: None,
        }
    }

    /// Appends a sampled token and applies the stop conditions (see the [module docs](self));
    /// returns the finish reason once the completion has finished. Pushing after the finish
    /// changes nothing.
    pub fn push(
        &mut self,
        token: u32,
        criteria: &StopCriteria,
        detok: &impl Detokenize,
    ) -> Option<FinishReason> {
        if self.finished.is_some() {
            return self.finished;
        }
        self.tokens.push(token);
        if criteria.eos_token_ids.contains(&token) {
            return self.finish(FinishReason::Stop, criteria, detok);
        }
        let from = self.text.push(token, detok);
        if let Some(end) = criteria.find_stop(self.text.text(), from) {
            self.text.truncate(end);
            self.finished = Some(FinishReason::Stop);
        } else if self.tokens.len() >= self.max_new {
            return self.finish(FinishReason::Length, criteria, detok);
        }
        self.finished
    }

    /// Flushes pending text (a stop string may still appear in it) and records the reason.
    fn finish(
        &mut self,
        reason: FinishReason,
        criteria: &StopCriteria,
        detok: &impl Detokenize,
    ) -> Option<FinishReason> {
        let from = self.text.flush(detok);
        let reason = match criteria.find_stop(self.text.text(), from) {
            Some(end) => {
                self.text.truncate(end);
                FinishReason::Stop
            }
            None => reason,
        };
        self.finished = Some(reason);
        self.finished
    }

    /// The finish reason, once finished.
    pub fn finished(&self) -> Option<FinishReason> {
        self.finished
    }

    /// The tokens generated so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The text emitted so far.
    pub fn text(&self) -> &str {
        self.text.text()
    }

    /// The generated tokens and text (pending text flushed), with the finish reason (`length`
    /// if the completion was cut off before finishing).
    pub fn into_parts(
        mut self,
        criteria: &StopCriteria,
        detok: &impl Detokenize,
    ) -> (Vec<u32>, String, FinishReason) {
        let reason = match self.finished {
            Some(reason) => reason,
            None => self.finish(FinishReason::Length, criteria, detok).unwrap_or(FinishReason::Length),
        };
        (self.tokens, self.text.into_text(), reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use core::cell::Cell;

    /// Token `t` decodes to `PIECES[t]`; token 0 is EOS (decodes to nothing).
    const PIECES: [&str; 12] =
        ["", "a", "b", "</", "answer", ">", "User", ":", "ab</answer>xyz", "axbcd", "c", "d"];

    fn pieces(tokens: &[u32]) -> String {
        tokens.iter().map(|&t| PIECES[t as usize]).collect()
    }

    fn criteria(stop: &[&str], max_new: usize, max_total: usize) -> StopCriteria {
        StopCriteria {
            eos_token_ids: vec![0],
            stop_strings: stop.iter().map(|s| s.to_string()).collect(),
            max_new_tokens: max_new,
            max_total_len: max_total,
        }
    }

    /// Pushes `tokens` after `prompt` until the checker finishes; returns what it gives back.
    fn run(c: &StopCriteria, prompt: &[u32], tokens: &[u32]) -> (Vec<u32>, String, Option<FinishReason>) {
        let mut s = StopChecker::new(prompt, c);
        let mut reason = None;
        for &t in tokens {
            reason = s.push(t, c, &pieces);
            if reason.is_some() {
                break;
            }
        }
        let (tokens, text, _) = s.clone().into_parts(c, &pieces);
        (tokens, text, reason)
    }

    const ORZ: [&str; 4] = ["User:", "Human:", "Assistant:", "</answer>"];

    #[test]
    fn stop_string_split_across_tokens_is_kept_and_ends_the_tokens() {
        let c = criteria(&ORZ, 100, 1000);
        let (tokens, text, reason) = run(&c, &[1], &[1, 2, 3, 4, 5, 1, 1]);
        assert_eq!(
            (tokens.as_slice(), text.as_str(), reason),
            (&[1, 2, 3, 4, 5][..], "ab</answer>", Some(FinishReason::Stop))
        );
    }

    #[test]
    fn stop_string_at_the_very_start() {
        let c = criteria(&ORZ, 100, 1000);
        let (tokens, text, reason) = run(&c, &[6, 7], &[6, 7, 1]);
        assert_eq!((tokens, text.as_str(), reason), (vec![6, 7], "User:", Some(FinishReason::Stop)));
    }

    #[test]
    fn text_is_cut_right_after_the_stop_string_inside_a_token() {
        let c = criteria(&ORZ, 100, 1000);
        let (tokens, text, reason) = run(&c, &[1], &[1, 8, 1]);
        assert_eq!((tokens, text.as_str(), reason), (vec![1, 8], "aab</answer>", Some(FinishReason::Stop)));
    }

    #[test]
    fn of_two_stop_strings_the_one_completed_first_wins() {
        // "axbcd" holds "xb" (ends at 3) and "cd" (ends at 5): cut after "xb".
        let c = criteria(&["cd", "xb"], 100, 1000);
        let (_, text, reason) = run(&c, &[1], &[9, 1]);
        assert_eq!((text.as_str(), reason), ("axb", Some(FinishReason::Stop)));
        // Across tokens: "ab" + "c" completes "abc" before "bcd" could.
        let c = criteria(&["bcd", "abc"], 100, 1000);
        let (tokens, text, _) = run(&c, &[1], &[1, 2, 10, 11]);
        assert_eq!((tokens, text.as_str()), (vec![1, 2, 10], "abc"));
    }

    #[test]
    fn eos_is_kept_in_the_tokens_but_not_in_the_text() {
        let c = criteria(&ORZ, 100, 1000);
        let (tokens, text, reason) = run(&c, &[1], &[1, 2, 0, 1]);
        assert_eq!((tokens, text.as_str(), reason), (vec![1, 2, 0], "ab", Some(FinishReason::Stop)));
    }

    #[test]
    fn length_limits_finish_with_length() {
        let c = criteria(&ORZ, 3, 1000);
        let (tokens, text, reason) = run(&c, &[1], &[1, 2, 1, 2, 1]);
        assert_eq!((tokens, text.as_str(), reason), (vec![1, 2, 1], "aba", Some(FinishReason::Length)));
        // max_total_len: a 5-token prompt with max_total_len 8 leaves room for 3 tokens.
        let c = criteria(&ORZ, 100, 8);
        let (tokens, _, reason) = run(&c, &[1; 5], &[1, 2, 1, 2, 1]);
        assert_eq!((tokens.len(), reason), (3, Some(FinishReason::Length)));
        // A stop string completed by the last allowed token is a `stop`.
        let c = criteria(&ORZ, 3, 1000);
        let (_, text, reason) = run(&c, &[1], &[6, 1, 8]);
        assert_eq!((text.as_str(), reason), ("Useraab</answer>", Some(FinishReason::Stop)));
        // Unfinished (cut off by the caller): `length`.
        let c = criteria(&ORZ, 100, 1000);
        let mut s = StopChecker::new(&[1], &c);
        assert_eq!(s.push(1, &c, &pieces), None);
        assert_eq!(s.into_parts(&c, &pieces).2, FinishReason::Length);
    }

    #[test]
    fn the_prompt_is_not_searched() {
        let c = criteria(&ORZ, 100, 1000);
        let (tokens, text, reason) = run(&c, &[6, 7, 3, 4, 5], &[1, 2, 1]);
        assert_eq!((tokens.len(), text.as_str(), reason), (3, "aba", None));
    }

    #[test]
    fn find_stop_only_reports_occurrences_ending_after_from() {
        let c = criteria(&["</answer>"], 1, 2);
        assert_eq!(c.find_stop("x</answer>y</answer>", 10), Some(20));
        assert_eq!(c.find_stop("x</answer>", 10), None);
        assert_eq!(c.find_stop("é</answer>", 3), Some(11)); // the window starts on a char boundary
    }

    #[test]
    fn validation_names_the_field() {
        assert!(criteria(&[], 0, 10).validate().unwrap_err().to_string().contains("max_new_tokens"));
        assert!(criteria(&[], 1, 1).validate().unwrap_err().to_string().contains("max_total_len"));
        assert!(criteria(&["a", ""], 1, 10).validate().unwrap_err().to_string().contains("stop_strings[1]"));
    }

    #[test]
    fn detokenization_cost_per_token_does_not_grow_with_length() {
        let decoded = Cell::new(0usize);
        let counting = |ts: &[u32]| {
            decoded.set(decoded.get() + ts.len());
            pieces(ts)
        };
        let c = criteria(&ORZ, 100_000, 100_010);
        let mut s = StopChecker::new(&[1, 2, 1], &c);
        let n = 5000;
        for i in 0..n {
            assert_eq!(s.push(1 + (i % 2), &c, &counting), None);
        }
        assert_eq!(s.text().len(), n as usize);
        assert!(decoded.get() < 8 * n as usize, "decoded {} tokens for {n}", decoded.get());
    }
}
