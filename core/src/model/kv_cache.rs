//! KV-cache decoding: [`KvCache`] and the [`SlotDecoder`] implementation of [`Policy`].
//!
//! Per layer and per slot the cache holds the rotated keys and the values of the slot's tokens,
//! each a tensor `[1, kv_heads, max_len, head_dim]` (the per-layer cache is their concatenation
//! `[slots, kv_heads, max_len, head_dim]`), plus each slot's length on the host.
//!
//! - `prefill` runs the prompt through the causal forward as one row (positions `0..P`) and
//!   writes each layer's keys and values into positions `0..P` of the slot
//!   ([`Backend::write_slice`]).
//! - `decode` embeds one token per listed slot at the slot's next position (its rotary position
//!   is the slot's length), writes that token's key and value at that position, and attends
//!   each slot to its own prefix: the caches of the listed slots are narrowed to the longest
//!   prefix among them, concatenated, and masked (`j < len`) per slot, so slots of different
//!   lengths decode together.
//! - `copy_slot` writes the valid prefix of the source slot's keys and values into the target
//!   slot's own tensors (copying `len` tokens, not the whole capacity) and copies its length:
//!   shared prefill.
//!
//! All three run with graph recording off ([`crate::backend::ops::no_grad`]), restoring the
//! caller's setting afterwards. Invalid arguments change nothing; a decode that fails in the
//! backend leaves the lengths unchanged, a prefill that fails there leaves its slot empty, and
//! whatever they wrote lies beyond the lengths, where nothing reads it. Decoding into an empty
//! slot starts a sequence at position 0. Positions are not limited by `max_position_embeddings`
//! (RoPE extends past it, as in Hugging Face).
//!
//! A [`KvCache`] is not `Clone`: its tensors are written in place, so a clone would share them.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::policy::Policy;
use crate::backend::ops::no_grad;
use crate::backend::{Backend, DType};
use crate::generation::SlotDecoder;
use crate::{Error, Result};

const OP: &str = "kv cache";

/// The batched KV cache of a [`Policy`]: keys and values per layer and slot, and each slot's
/// number of tokens. See the [module docs](self).
#[derive(Debug)]
pub struct KvCache<B: Backend> {
    max_len: usize,
    /// `[layer][slot]`, each `[1, kv_heads, max_len, head_dim]`.
    keys: Vec<Vec<B::Tensor>>,
    /// As `keys`.
    values: Vec<Vec<B::Tensor>>,
    lens: Vec<usize>,
}

impl<B: Backend> KvCache<B> {
    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.lens.len()
    }

    /// Capacity of each slot, in tokens.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Tokens held by each slot.
    pub fn lens(&self) -> &[usize] {
        &self.lens
    }

    /// An error unless `slot` exists.
    fn check_slot(&self, slot: usize) -> Result<()> {
        if slot < self.slots() {
            Ok(())
        } else {
            Err(Error::IndexOutOfRange {
                op: OP,
                index: slot as i64,
                size: self.slots(),
                context: "slot index".into(),
            })
        }
    }
}

/// Bytes per element of a dtype.
fn dtype_bytes(dtype: DType) -> usize {
    match dtype {
        DType::F32 => 4,
        DType::BF16 | DType::F16 => 2,
        DType::I64 => 8,
        DType::Bool => 1,
    }
}

impl<B: Backend> Policy<B> {
    /// The logits `[n, vocab]` of the final-normed residual stream `x` `[n, 1, hidden]`.
    fn last_logits(&self, x: &B::Tensor, n: usize) -> Result<B::Tensor> {
        let m = self.model();
        let b = m.backend();
        let logits = b.linear(&m.final_norm(x)?, m.lm_weight()?, None)?;
        b.reshape(&logits, &[n, m.config().vocab_size])
    }
}

impl<B: Backend> SlotDecoder<B> for Policy<B> {
    type Cache = KvCache<B>;

    fn vocab_size(&self) -> usize {
        self.model().config().vocab_size
    }

    fn new_cache(&self, slots: usize, max_len: usize) -> Result<KvCache<B>> {
        if slots == 0 || max_len == 0 {
            return Err(Error::invalid(
                OP,
                format!("needs at least one slot of at least one token, got {slots} x {max_len}"),
            ));
        }
        let m = self.model();
        let c = m.config();
        let shape = [1, c.num_key_value_heads, max_len, c.head_dim()];
        let layer = || -> Result<Vec<B::Tensor>> {
            (0..slots).map(|_| m.backend().zeros(&shape, m.dtype())).collect()
        };
        let keys = (0..c.num_hidden_layers).map(|_| layer()).collect::<Result<_>>()?;
        let values = (0..c.num_hidden_layers).map(|_| layer()).collect::<Result<_>>()?;
        Ok(KvCache { max_len, keys, values, lens: vec![0; slots] })
    }

    fn cache_bytes(&self, slots: usize, max_len: usize) -> usize {
        let c = self.model().config();
        let per_token = 2 * c.num_hidden_layers * c.num_key_value_heads * c.head_dim();
        per_token * slots * max_len * dtype_bytes(self.model().dtype())
    }

    fn prefill(&self, cache: &mut KvCache<B>, slot: usize, prompt: &[u32]) -> Result<B::Tensor> {
        cache.check_slot(slot)?;
        if prompt.is_empty() {
            return Err(Error::Empty { op: "prefill", what: "prompt" });
        }
        if prompt.len() > cache.max_len {
            return Err(Error::invalid(
                "prefill",
                format!("prompt of {} tokens does not fit a slot of {} tokens", prompt.len(), cache.max_len),
            ));
        }
        let m = self.model();
        m.check_tokens("prefill", prompt)?;
        let b = m.backend();
        cache.lens[slot] = 0;
        let p = prompt.len();
        let logits = no_grad(b, || {
            let ids: Vec<i64> = prompt.iter().map(|&t| i64::from(t)).collect();
            let positions: Vec<i64> = (0..p as i64).collect();
            let segments = b.zeros(&[1, p], DType::I64)?;
            let cache_ref = &*cache;
            let mut attend = |l: usize, q: &B::Tensor, k: &B::Tensor, v: &B::Tensor| {
                b.write_slice(&cache_ref.keys[l][slot], 2, 0, k)?;
                b.write_slice(&cache_ref.values[l][slot], 2, 0, v)?;
                b.causal_attention(q, k, v, &segments)
            };
            let x = m.run_layers(&b.tensor_i64(&ids, &[1, p])?, &positions, [1, p], &mut attend)?;
            let logits = self.last_logits(&b.narrow(&x, 1, p - 1, 1)?, 1)?;
            b.reshape(&logits, &[m.config().vocab_size])
        })?;
        cache.lens[slot] = p;
        Ok(logits)
    }

    fn copy_slot(&self, cache: &mut KvCache<B>, from: usize, to: usize) -> Result<()> {
        cache.check_slot(from)?;
        cache.check_slot(to)?;
        if from == to {
            return Ok(());
        }
        let b = self.model().backend();
        let len = cache.lens[from];
        if len > 0 {
            no_grad(b, || {
                for store in cache.keys.iter().chain(&cache.values) {
                    b.write_slice(&store[to], 2, 0, &b.narrow(&store[from], 2, 0, len)?)?;
                }
                Ok(())
            })?;
        }
        cache.lens[to] = cache.lens[from];
        Ok(())
    }

    fn decode(&self, cache: &mut KvCache<B>, slots: &[usize], tokens: &[u32]) -> Result<B::Tensor> {
        crate::error::check_len("decode", ("slots", slots.len()), ("tokens", tokens.len()))?;
        if slots.is_empty() {
            return Err(Error::Empty { op: "decode", what: "slots" });
        }
        for (i, &s) in slots.iter().enumerate() {
            cache.check_slot(s)?;
            if slots[..i].contains(&s) {
                return Err(Error::invalid("decode", format!("slot {s} is listed twice")));
            }
            if cache.lens[s] >= cache.max_len {
                return Err(Error::invalid("decode", format!("slot {s} is full ({} tokens)", cache.max_len)));
            }
        }
        let m = self.model();
        m.check_tokens("decode", tokens)?;
        let b = m.backend();
        let n = slots.len();
        let positions: Vec<i64> = slots.iter().map(|&s| cache.lens[s] as i64).collect();
        // Every listed slot attends to its first `len + 1` entries, within a window of `span`.
        let span = slots.iter().map(|&s| cache.lens[s] + 1).max().unwrap_or(1);
        let logits = no_grad(b, || {
            let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
            let valid: Vec<bool> =
                positions.iter().flat_map(|&p| (0..span).map(move |j| j as i64 <= p)).collect();
            let mask = b.tensor_bool(&valid, &[n, 1, 1, span])?;
            let cache_ref = &*cache;
            let mut attend = |l: usize, q: &B::Tensor, k: &B::Tensor, v: &B::Tensor| {
                let window = |store: &[B::Tensor], new: &B::Tensor| -> Result<B::Tensor> {
                    let mut parts = Vec::with_capacity(n);
                    for (i, (&s, &p)) in slots.iter().zip(&positions).enumerate() {
                        b.write_slice(&store[s], 2, p as usize, &b.narrow(new, 0, i, 1)?)?;
                        parts.push(b.narrow(&store[s], 2, 0, span)?);
                    }
                    if n == 1 { Ok(parts.swap_remove(0)) } else { b.cat(&parts, 0) }
                };
                let keys = window(&cache_ref.keys[l], k)?;
                let values = window(&cache_ref.values[l], v)?;
                b.attention(q, &keys, &values, &mask)
            };
            let x = m.run_layers(&b.tensor_i64(&ids, &[n, 1])?, &positions, [n, 1], &mut attend)?;
            self.last_logits(&x, n)
        })?;
        for &s in slots {
            cache.lens[s] += 1;
        }
        Ok(logits)
    }

    fn slot_len(&self, cache: &KvCache<B>, slot: usize) -> Result<usize> {
        cache.check_slot(slot)?;
        Ok(cache.lens[slot])
    }
}
