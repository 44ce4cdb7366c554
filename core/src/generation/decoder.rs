//! [`SlotDecoder`]: what the generation engine needs from a language model.
//!
//! The engine keeps one batched KV cache with a fixed number of *slots* (rows), each holding one
//! sequence of at most `max_len` tokens. A prompt is prefilled into one slot once; its `n`
//! samples get copies of that slot (shared prefill); every decode step appends one token to
//! each active slot; a finished slot is refilled with the next waiting request (continuous
//! batching).

use crate::Result;
use crate::backend::Backend;

/// A causal language model driven slot by slot through a batched KV cache.
pub trait SlotDecoder<B: Backend> {
    /// The batched KV cache (all layers, all slots).
    type Cache;

    /// Vocabulary size: the width of the logits this model returns.
    fn vocab_size(&self) -> usize;

    /// An empty cache with `slots` rows of at most `max_len` tokens each.
    fn new_cache(&self, slots: usize, max_len: usize) -> Result<Self::Cache>;

    /// Bytes a cache of `slots` rows of `max_len` tokens occupies (for the KV-cache budget).
    fn cache_bytes(&self, slots: usize, max_len: usize) -> usize;

    /// Resets `slot` and runs `prompt` through the model into it; returns the next-token logits
    /// after the last prompt token, shape `[vocab]`. Errors: empty prompt, prompt longer than
    /// the slot, token id outside the vocabulary.
    fn prefill(&self, cache: &mut Self::Cache, slot: usize, prompt: &[u32]) -> Result<B::Tensor>;

    /// Makes slot `to` a copy of slot `from` (keys, values and length): shared prefill.
    fn copy_slot(&self, cache: &mut Self::Cache, from: usize, to: usize) -> Result<()>;

    /// Appends `tokens[i]` to slot `slots[i]` for every i and returns the next-token logits,
    /// shape `[slots.len(), vocab]`. Errors: a full slot, repeated slots, bad token ids.
    fn decode(&self, cache: &mut Self::Cache, slots: &[usize], tokens: &[u32]) -> Result<B::Tensor>;

    /// Number of tokens currently held by `slot`.
    fn slot_len(&self, cache: &Self::Cache, slot: usize) -> Result<usize>;
}
