//! [`Policy`]: the Qwen2 backbone with its language-model head (`Qwen2ForCausalLM`).

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

use core::ops::Range;

use super::backprop::{Backprop, ChunkLoss, MemoryOptions, ResidentUnits, UnitStore};
use super::packing::PackedBatch;
use super::qwen2::Qwen2;
use super::{Head, Qwen2Config};
use crate::backend::{Backend, DType};
use crate::rng::Rng;
use crate::{Error, Result};

/// A causal language model: [`Qwen2`] with an LM head (`lm_head.weight`, or the embeddings when
/// `tie_word_embeddings`). It also drives generation through
/// [`SlotDecoder`](crate::generation::SlotDecoder) (see [`super::kv_cache`]).
#[derive(Debug)]
pub struct Policy<B: Backend> {
    model: Qwen2<B>,
}

impl<B: Backend> Policy<B> {
    /// Wraps a model; an error unless it carries the LM head.
    pub fn new(model: Qwen2<B>) -> Result<Policy<B>> {
        if model.head() != Head::Lm {
            return Err(Error::invalid(
                "policy",
                format!("needs a model with the LM head, got {:?}", model.head()),
            ));
        }
        Ok(Policy { model })
    }

    /// A policy from Hugging Face named tensors; see [`Qwen2::from_tensors`].
    pub fn from_tensors(
        backend: Rc<B>,
        config: &Qwen2Config,
        tensors: BTreeMap<String, B::Tensor>,
    ) -> Result<Policy<B>> {
        Ok(Policy { model: Qwen2::from_tensors(backend, config, Head::Lm, tensors)? })
    }

    /// A randomly initialized policy; see [`Qwen2::random`].
    pub fn random(backend: Rc<B>, config: &Qwen2Config, dtype: DType, rng: &mut Rng) -> Result<Policy<B>> {
        Ok(Policy { model: Qwen2::random(backend, config, Head::Lm, dtype, rng)? })
    }

    /// The underlying model (config, parameters, named tensors, hidden states).
    pub fn model(&self) -> &Qwen2<B> {
        &self.model
    }

    /// The underlying model, by value.
    pub fn into_model(self) -> Qwen2<B> {
        self.model
    }

    /// Next-token logits of a packed batch, `[rows, seq_len, vocab]`: the logits at position
    /// `t` predict the token at `t + 1` of the same sample (meaningful where
    /// [`PackedBatch::next_token_mask`] is true; at a sample's last token they predict its
    /// continuation; on padding they are finite but meaningless).
    pub fn logits(&self, batch: &PackedBatch) -> Result<B::Tensor> {
        let hidden = self.model.hidden_states(batch)?;
        self.model.backend().linear(&hidden, self.model.lm_weight()?, None)
    }

    /// The log-prob of each given next token, `[rows, seq_len]`: entry `t` is
    /// `log p(targets[t] | the sample's tokens up to t)`, with I64 `targets` `[rows, seq_len]`
    /// holding the token at `t + 1` ([`PackedBatch::next_token_tensor`]). Meaningful where
    /// [`PackedBatch::next_token_mask`] is true; the log-prob of response token `j` of a sample
    /// is at [`super::response_positions`]. Computed with [`Backend::selective_log_prob`], which
    /// a backend may fuse so that the full log-softmax over the vocabulary is never stored.
    /// Differentiable with respect to the parameters.
    pub fn selective_log_probs(&self, batch: &PackedBatch, targets: &B::Tensor) -> Result<B::Tensor> {
        let b = self.model.backend();
        let ts = b.shape(targets);
        if ts[..] != batch.shape() {
            return Err(Error::shape(
                "policy log-probs",
                format!("targets have shape {ts:?}, the batch is {:?}", batch.shape()),
            ));
        }
        let hidden = self.model.hidden_states(batch)?;
        let (seq, lm) = (batch.seq_len(), self.model.lm_weight()?);
        let chunk = MemoryOptions::DEFAULT_HEAD_CHUNK;
        let piece = |start: usize, len: usize| {
            let h = if len == seq { hidden.clone() } else { b.narrow(&hidden, 1, start, len)? };
            let t = if len == seq { targets.clone() } else { b.narrow(targets, 1, start, len)? };
            b.selective_log_prob(&b.linear(&h, lm, None)?, &t)
        };
        if seq <= chunk {
            return piece(0, seq);
        }
        // Chunks of positions: at most `[rows, chunk, vocab]` logits at once.
        let parts =
            (0..seq).step_by(chunk).map(|s| piece(s, chunk.min(seq - s))).collect::<Result<Vec<_>>>()?;
        b.cat(&parts, 1)
    }

    /// The loss `Σ_chunks loss(logp_chunk, positions)` of per-token log-probs of `targets` (as
    /// [`Policy::selective_log_probs`]) and every parameter's gradient, with the memory
    /// behaviour of `options` ([`Qwen2::backprop`]): `loss` gets the log-probs `[rows, len]` of
    /// the positions `range` and returns their scalar loss.
    pub fn backprop_log_probs(
        &self,
        batch: &PackedBatch,
        targets: &B::Tensor,
        options: MemoryOptions,
        loss: &mut ChunkLoss<'_, B>,
    ) -> Result<Backprop<B>> {
        let mut units = ResidentUnits::of(&self.model)?;
        let value = self.backprop_log_probs_with(&mut units, batch, targets, options, loss)?;
        Ok(Backprop { loss: value, grads: units.into_grads() })
    }

    /// [`Policy::backprop_log_probs`] with the weights and gradients in `units`
    /// ([`Qwen2::backprop_with`]; a skeleton policy works). Returns the loss.
    pub fn backprop_log_probs_with(
        &self,
        units: &mut dyn UnitStore<B>,
        batch: &PackedBatch,
        targets: &B::Tensor,
        options: MemoryOptions,
        loss: &mut ChunkLoss<'_, B>,
    ) -> Result<f64> {
        let b = self.model.backend();
        let ts = b.shape(targets);
        if ts[..] != batch.shape() {
            return Err(Error::shape(
                "policy backprop",
                format!("targets have shape {ts:?}, the batch is {:?}", batch.shape()),
            ));
        }
        let mut head = |hidden: &B::Tensor, lm: &B::Tensor, range: Range<usize>| {
            let t = b.narrow(targets, 1, range.start, range.len())?;
            loss(&b.selective_log_prob(&b.linear(hidden, lm, None)?, &t)?, range)
        };
        self.model.backprop_with(units, batch, options, &mut head)
    }

    /// [`Policy::selective_log_probs`] of the batch's own next tokens
    /// ([`PackedBatch::next_tokens`]), 0-padded where there is none.
    pub fn next_token_log_probs(&self, batch: &PackedBatch) -> Result<B::Tensor> {
        self.selective_log_probs(batch, &batch.next_token_tensor(self.model.backend())?)
    }
}
