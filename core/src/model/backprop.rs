//! The memory-lean backward pass of a training step: activation checkpointing per decoder layer
//! and a head (LM head or value head) run in token chunks, written once over the
//! [`Backend`] trait's autodiff so that every backend gets both.
//!
//! One ORZ pack is 10,048-16,384 tokens and Qwen's vocabulary 151,936 entries, so the plain
//! backward (one [`Backend::backward`] of the whole loss) would keep every layer's activations and
//! the pack's `[T, vocab]` logits alive at once. [`Qwen2::backprop`] instead runs the backward in
//! stages, each an ordinary `backward` of a scalar:
//!
//! 1. **Forward.** With [`MemoryOptions::activation_checkpointing`], each layer runs with
//!    recording on and its output is detached at once: only the layer inputs (`[rows, T,
//!    hidden]` each) outlive the loop. Without it, the whole forward keeps its graph.
//! 2. **Head, in chunks.** The residual stream after the last layer is cut (detached) into
//!    chunks of [`MemoryOptions::head_chunk_tokens`] positions; each chunk becomes a leaf
//!    ([`Backend::param`]), goes through the final norm and the caller's head loss, and is
//!    differentiated at once: the chunk's logits and log-softmax die with it. The chunk
//!    gradients are concatenated into `g`, the gradient of the loss with respect to the stream.
//! 3. **Backbone.** A gradient `g` is pushed back through a stage `y = f(x)` as the backward of
//!    `sum(y · g)` (whose gradient with respect to `y` is exactly `g`). Without checkpointing,
//!    that is one backward through the kept graph; with it, layer by layer from the last: the
//!    layer is recomputed from its saved input (marked as a leaf), differentiated, and the
//!    input's gradient becomes the next `g`; finally the embedding lookup.
//!
//! Every stage's parameter gradients are summed in f32 ([`Backprop::grads`], in
//! [`Qwen2::parameters`] order). When neither option applies (no checkpointing and one chunk
//! holds the whole pack), the plain single backward runs: the stages are an exact
//! re-association of the same chain rule, so the two agree up to rounding (the conformance
//! suite checks this at level 4 on every backend, against the reference's plain backward).
//!
//! Peak memory of the checkpointed path: the layer inputs, one layer's recomputed activations
//! and its gradients, and one chunk's `[chunk, vocab]` logits (the dry run's memory plan models
//! exactly these terms).

use alloc::vec::Vec;
use core::ops::Range;

use super::packing::PackedBatch;
use super::qwen2::{Layer, Qwen2};
use crate::backend::{Backend, DType};
use crate::{Error, Result};

/// How a training forward/backward spends memory (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct MemoryOptions {
    /// Keep only each decoder layer's input in the forward and recompute one layer at a time in
    /// the backward (about one extra forward of compute for `layers × T × hidden` of memory).
    pub activation_checkpointing: bool,
    /// Positions per chunk of the head and its loss: at most `[chunk, vocab]` logits live at
    /// once. A chunk at least as long as the pack runs the head in one piece.
    pub head_chunk_tokens: usize,
}

impl MemoryOptions {
    /// Packs shorter than this train without checkpointing by default: the recompute costs more
    /// than the memory it saves (the tiny preset's 256-token packs).
    pub const CHECKPOINT_FROM_PACK_LEN: usize = 1024;
    /// The default head chunk: 1024 positions, 0.6 GB of f32 logits over Qwen's vocabulary.
    pub const DEFAULT_HEAD_CHUNK: usize = 1024;

    /// The default options for packs of `packing_max_len` tokens: checkpointing from
    /// [`MemoryOptions::CHECKPOINT_FROM_PACK_LEN`] on, chunks of
    /// [`MemoryOptions::DEFAULT_HEAD_CHUNK`].
    pub fn for_pack_len(packing_max_len: usize) -> MemoryOptions {
        MemoryOptions {
            activation_checkpointing: packing_max_len >= Self::CHECKPOINT_FROM_PACK_LEN,
            head_chunk_tokens: Self::DEFAULT_HEAD_CHUNK,
        }
    }

    /// The plain backward: no checkpointing, the head in one piece.
    pub const PLAIN: MemoryOptions =
        MemoryOptions { activation_checkpointing: false, head_chunk_tokens: usize::MAX };

    /// Checks the fields, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        if self.head_chunk_tokens == 0 {
            return Err(Error::invalid("memory options", "`head_chunk_tokens` must be >= 1, got 0"));
        }
        Ok(())
    }
}

impl Default for MemoryOptions {
    /// Checkpointing on, chunks of [`MemoryOptions::DEFAULT_HEAD_CHUNK`] (the real presets).
    fn default() -> Self {
        MemoryOptions { activation_checkpointing: true, head_chunk_tokens: Self::DEFAULT_HEAD_CHUNK }
    }
}

/// A loss over a chunk of positions: given a tensor of the positions `range` of every row
/// (`[rows, range.len(), ..]`: final-normed hidden states for [`Qwen2::backprop`], log-probs or
/// values for the policy's and critic's wrappers), the scalar loss of those positions. The
/// chunks' losses add up to the training loss.
pub type ChunkLoss<'a, B> =
    dyn FnMut(&<B as Backend>::Tensor, Range<usize>) -> Result<<B as Backend>::Tensor> + 'a;

/// The result of [`Qwen2::backprop`]: the loss and every parameter's gradient.
#[derive(Debug)]
pub struct Backprop<B: Backend> {
    /// The loss (the sum of the chunks' losses), on the host.
    pub loss: f64,
    /// The gradient of each parameter, in [`Qwen2::parameters`] order (f32; `None` where the loss
    /// does not reach the parameter).
    pub grads: Vec<Option<B::Tensor>>,
}

/// Per-parameter f32 gradient sums over the stages of one backprop.
struct GradSums<'a, B: Backend> {
    b: &'a B,
    params: Vec<B::Tensor>,
    sums: Vec<Option<B::Tensor>>,
}

impl<'a, B: Backend> GradSums<'a, B> {
    fn new(b: &'a B, params: Vec<B::Tensor>) -> Self {
        let sums = params.iter().map(|_| None).collect();
        GradSums { b, params, sums }
    }

    /// Adds the gradients of `grads` for the parameters `which` (indices into the list).
    fn add(&mut self, grads: &B::Grads, which: Range<usize>) -> Result<()> {
        let b = self.b;
        for i in which {
            if let Some(g) = b.grad(grads, &self.params[i])? {
                let g = b.cast(&g, DType::F32)?;
                self.sums[i] = Some(match self.sums[i].take() {
                    Some(s) => b.add(&s, &g)?,
                    None => g,
                });
            }
        }
        Ok(())
    }
}

/// Runs `f` with graph recording on `on`, restoring the previous state afterwards.
fn recording<B: Backend, R>(b: &B, on: bool, f: impl FnOnce() -> Result<R>) -> Result<R> {
    let previous = b.set_grad_enabled(on);
    let out = f();
    b.set_grad_enabled(previous);
    out
}

/// The single element of a scalar loss on the host.
fn scalar<B: Backend>(b: &B, loss: &B::Tensor) -> Result<f64> {
    b.to_host_f64(loss)?
        .first()
        .copied()
        .ok_or_else(|| Error::backend("backprop", "a loss came back without a value"))
}

impl<B: Backend> Qwen2<B> {
    /// The loss `Σ_chunks head_loss(chunk)` of `batch` and the gradient of every parameter, with
    /// the memory behaviour of `options` (see the [module docs](self)). Runs with graph recording
    /// on whatever the caller's setting (restored afterwards).
    pub fn backprop(
        &self,
        batch: &PackedBatch,
        options: MemoryOptions,
        head_loss: &mut ChunkLoss<'_, B>,
    ) -> Result<Backprop<B>> {
        options.validate()?;
        let b = &*self.backend;
        self.check_tokens("backprop", batch.tokens())?;
        let [rows, seq] = batch.shape();
        let params = self.parameters();
        let n = params.len();
        let mut sums = GradSums::new(b, params);
        if !options.activation_checkpointing && options.head_chunk_tokens >= seq {
            // The plain backward: one graph, one `backward`.
            let loss = recording(b, true, || head_loss(&self.hidden_states(batch)?, 0..seq))?;
            let value = scalar(b, &loss)?;
            sums.add(&b.backward(&loss)?, 0..n)?;
            return Ok(Backprop { loss: value, grads: sums.sums });
        }
        let ids = batch.token_tensor(b)?;
        let segments = batch.segment_tensor(b)?;
        let mut attend =
            |_: usize, q: &B::Tensor, k: &B::Tensor, v: &B::Tensor| b.causal_attention(q, k, v, &segments);
        recording(b, true, || {
            let rope = self.rope(batch.positions(), [rows, seq])?;
            // Stage 1: the forward; with checkpointing only the layer inputs survive.
            let embedded = b.embedding(&self.embed, &ids)?;
            let mut inputs = Vec::new();
            let mut x = embedded.clone();
            for l in 0..self.layers.len() {
                if options.activation_checkpointing {
                    x = b.detach(&x)?;
                    inputs.push(x.clone());
                }
                x = self.layer_forward(l, &x, &rope, &mut attend)?;
            }
            // Stage 2: the final norm and the head, chunk by chunk.
            let stream = b.detach(&x)?;
            // With checkpointing nothing upstream needs the last layer's graph: free it now.
            let graph = if options.activation_checkpointing { None } else { Some(x) };
            let (head_params, chunk) =
                (n - 1 - usize::from(self.head_weight.is_some())..n, options.head_chunk_tokens);
            let mut loss = 0.0;
            let mut chunk_grads = Vec::with_capacity(seq.div_ceil(chunk));
            for start in (0..seq).step_by(chunk) {
                let len = chunk.min(seq - start);
                let leaf = b.param(&b.narrow(&stream, 1, start, len)?)?;
                let chunk_loss = head_loss(&self.final_norm(&leaf)?, start..start + len)?;
                loss += scalar(b, &chunk_loss)?;
                let grads = b.backward(&chunk_loss)?;
                sums.add(&grads, head_params.clone())?;
                if self.head_weight.is_none() {
                    sums.add(&grads, 0..1)?; // the tied LM head is the embedding
                }
                chunk_grads.push(match b.grad(&grads, &leaf)? {
                    Some(g) => g,
                    None => b.zeros(&[rows, len, self.config.hidden_size], self.dtype)?,
                });
            }
            let mut g = if chunk_grads.len() == 1 { chunk_grads.remove(0) } else { b.cat(&chunk_grads, 1)? };
            drop(chunk_grads);
            // Stage 3: the backbone.
            let push_back = |y: &B::Tensor, g: &B::Tensor| b.backward(&b.sum_all(&b.mul(y, g)?)?);
            if let Some(x) = graph {
                sums.add(&push_back(&x, &g)?, 0..n)?;
                return Ok(Backprop { loss, grads: sums.sums });
            }
            let per = Layer::<B::Tensor>::TENSORS;
            for (l, input) in inputs.into_iter().enumerate().rev() {
                let leaf = b.param(&input)?;
                drop(input);
                let grads = push_back(&self.layer_forward(l, &leaf, &rope, &mut attend)?, &g)?;
                sums.add(&grads, 1 + l * per..1 + (l + 1) * per)?;
                g = b.grad(&grads, &leaf)?.ok_or_else(|| {
                    Error::backend("backprop", alloc::format!("layer {l}'s input got no gradient"))
                })?;
            }
            sums.add(&push_back(&embedded, &g)?, 0..1)?;
            Ok(Backprop { loss, grads: sums.sums })
        })
    }
}
