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
use crate::backend::{Backend, DType, Primitives};
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
/// (`[rows, range.len(), ..]`: log-probs or values for the policy's and critic's wrappers), the
/// scalar loss of those positions. The chunks' losses add up to the training loss.
pub type ChunkLoss<'a, B> =
    dyn FnMut(&<B as Primitives>::Tensor, Range<usize>) -> Result<<B as Primitives>::Tensor> + 'a;

/// The head and its loss over a chunk of positions, for [`Qwen2::backprop`]: given the
/// final-normed hidden states of the positions `range` (`[rows, range.len(), hidden]`) and the
/// head's weight (the LM head, the embeddings when tied, or the value head), the scalar loss of
/// those positions.
pub type HeadLoss<'a, B> = dyn FnMut(
        &<B as Primitives>::Tensor,
        &<B as Primitives>::Tensor,
        Range<usize>,
    ) -> Result<<B as Primitives>::Tensor>
    + 'a;

/// Where [`Qwen2::backprop_with`] takes each sharding unit's weights ([`Qwen2::parameter_units`]:
/// the embedding, each decoder layer, the final norm with the head) and leaves each unit's
/// gradients: the model's own parameters ([`ResidentUnits`]), or the ranks' slices gathered
/// for the unit and its gradients reduce-scattered at once (ZeRO-3,
/// [`crate::shard::ShardedOptimizer`]).
///
/// [`Qwen2::backprop_with`] calls it in one order that depends only on the architecture and
/// [`MemoryOptions::activation_checkpointing`] (never on the batch), so that ranks whose stores
/// run collectives stay in step: `open` the embedding, then each layer, then the tail;
/// `finish` the tail; then from the last layer down (checkpointed: `open` and `finish` each
/// layer again; otherwise `finish` each); `finish` the embedding last.
pub trait UnitStore<B: Backend> {
    /// Unit `u`'s tensors, in parameter order, as leaves a backward reaches.
    fn open(&mut self, b: &B, u: usize) -> Result<Vec<B::Tensor>>;
    /// Unit `u`'s gradients of this backprop, final (f32, in parameter order; `None`: the loss
    /// does not reach the parameter).
    fn finish(&mut self, b: &B, u: usize, grads: Vec<Option<B::Tensor>>) -> Result<()>;
}

/// The [`UnitStore`] of a resident model: its own parameters, the gradients kept for
/// [`Backprop::grads`].
#[derive(Debug)]
pub struct ResidentUnits<B: Backend> {
    params: Vec<B::Tensor>,
    units: Vec<Range<usize>>,
    grads: Vec<Option<B::Tensor>>,
}

impl<B: Backend> ResidentUnits<B> {
    /// The store of `model`'s parameters. Errors: a skeleton.
    pub fn of(model: &Qwen2<B>) -> Result<Self> {
        model.weights("backprop")?;
        let params = model.parameters();
        let grads = params.iter().map(|_| None).collect();
        Ok(ResidentUnits { params, units: model.parameter_units(), grads })
    }

    /// The gradients the backprop left, in [`Qwen2::parameters`] order.
    pub fn into_grads(self) -> Vec<Option<B::Tensor>> {
        self.grads
    }

    fn unit(&self, u: usize) -> Result<Range<usize>> {
        self.units
            .get(u)
            .cloned()
            .ok_or_else(|| Error::invalid("backprop", alloc::format!("unit {u} of {}", self.units.len())))
    }
}

impl<B: Backend> UnitStore<B> for ResidentUnits<B> {
    fn open(&mut self, _: &B, u: usize) -> Result<Vec<B::Tensor>> {
        Ok(self.params[self.unit(u)?].to_vec())
    }

    fn finish(&mut self, _: &B, u: usize, grads: Vec<Option<B::Tensor>>) -> Result<()> {
        let range = self.unit(u)?;
        crate::error::check_len("backprop finish", ("unit parameters", range.len()), ("grads", grads.len()))?;
        for (slot, g) in self.grads[range].iter_mut().zip(grads) {
            *slot = g;
        }
        Ok(())
    }
}

/// The result of [`Qwen2::backprop`]: the loss and every parameter's gradient.
#[derive(Debug)]
pub struct Backprop<B: Backend> {
    /// The loss (the sum of the chunks' losses), on the host.
    pub loss: f64,
    /// The gradient of each parameter, in [`Qwen2::parameters`] order (f32; `None` where the loss
    /// does not reach the parameter).
    pub grads: Vec<Option<B::Tensor>>,
}

/// Adds the f32 gradients of `tensors` in `grads` to `sums` (one slot per tensor).
fn add_grads<B: Backend>(
    b: &B,
    sums: &mut [Option<B::Tensor>],
    grads: &B::Grads,
    tensors: &[B::Tensor],
) -> Result<()> {
    for (slot, t) in sums.iter_mut().zip(tensors) {
        if let Some(g) = b.grad(grads, t)? {
            let g = b.cast(&g, DType::F32)?;
            *slot = Some(match slot.take() {
                Some(s) => b.add(&s, &g)?,
                None => g,
            });
        }
    }
    Ok(())
}

/// The f32 gradients of `tensors` in `grads`.
fn grads_of<B: Backend>(b: &B, grads: &B::Grads, tensors: &[B::Tensor]) -> Result<Vec<Option<B::Tensor>>> {
    let mut sums = alloc::vec![None; tensors.len()];
    add_grads(b, &mut sums, grads, tensors)?;
    Ok(sums)
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
    /// on whatever the caller's setting (restored afterwards). Errors: a skeleton (see
    /// [`Qwen2::backprop_with`]).
    pub fn backprop(
        &self,
        batch: &PackedBatch,
        options: MemoryOptions,
        head_loss: &mut HeadLoss<'_, B>,
    ) -> Result<Backprop<B>> {
        let mut units = ResidentUnits::of(self)?;
        let loss = self.backprop_with(&mut units, batch, options, head_loss)?;
        Ok(Backprop { loss, grads: units.into_grads() })
    }

    /// [`Qwen2::backprop`] with the weights taken from, and the gradients left in, `units`
    /// (unit by unit, in the order [`UnitStore`] states); only the architecture of `self` is
    /// read, so a skeleton works. Returns the loss.
    pub fn backprop_with(
        &self,
        units: &mut dyn UnitStore<B>,
        batch: &PackedBatch,
        options: MemoryOptions,
        head_loss: &mut HeadLoss<'_, B>,
    ) -> Result<f64> {
        options.validate()?;
        let b = &*self.backend;
        self.check_tokens("backprop", batch.tokens())?;
        let [rows, seq] = batch.shape();
        let (layers, checkpointed) = (self.config.num_hidden_layers, options.activation_checkpointing);
        let tail_unit = layers + 1;
        let ids = batch.token_tensor(b)?;
        let segments = batch.segment_tensor(b)?;
        let mut attend =
            |_: usize, q: &B::Tensor, k: &B::Tensor, v: &B::Tensor| b.causal_attention(q, k, v, &segments);
        let push_back = |y: &B::Tensor, g: &B::Tensor| b.backward(&b.sum_all(&b.mul(y, g)?)?);
        recording(b, true, || {
            let rope = self.rope(batch.positions(), [rows, seq])?;
            // Stage 1: the forward; with checkpointing only the layer inputs survive (and each
            // layer's weights are let go as soon as it ran).
            let embed = units.open(b, 0)?;
            let embedded = b.embedding(&embed[0], &ids)?;
            let mut embed_sums = alloc::vec![None; embed.len()];
            let (mut inputs, mut kept) = (Vec::new(), Vec::new());
            let mut x = embedded.clone();
            for l in 0..layers {
                let w = units.open(b, 1 + l)?;
                if checkpointed {
                    x = b.detach(&x)?;
                    inputs.push(x.clone());
                }
                x = self.layer_forward(l, &Layer::from_ordered(&w), &x, &rope, &mut attend)?;
                if !checkpointed {
                    kept.push(w);
                }
            }
            // Stage 2: the final norm and the head (the tail unit; the embeddings when tied).
            let tail = units.open(b, tail_unit)?;
            let (norm, eps) = (&tail[0], self.config.rms_norm_eps);
            let (head_w, tied) = match tail.get(1) {
                Some(w) => (w, false),
                None => (&embed[0], true),
            };
            let mut loss = 0.0;
            let mut tail_sums = alloc::vec![None; tail.len()];
            let g = if !checkpointed && options.head_chunk_tokens >= seq {
                // The plain backward: one graph, one `backward`.
                let total = head_loss(&b.rms_norm(&x, norm, eps)?, head_w, 0..seq)?;
                loss = scalar(b, &total)?;
                let grads = b.backward(&total)?;
                add_grads(b, &mut tail_sums, &grads, &tail)?;
                units.finish(b, tail_unit, tail_sums)?;
                for (l, w) in kept.iter().enumerate().rev() {
                    units.finish(b, 1 + l, grads_of(b, &grads, w)?)?;
                }
                add_grads(b, &mut embed_sums, &grads, &embed)?;
                return units.finish(b, 0, embed_sums).map(|()| loss);
            } else {
                let stream = b.detach(&x)?;
                // With checkpointing nothing upstream needs the last layer's graph: free it now.
                if checkpointed {
                    x = stream.clone();
                }
                let chunk = options.head_chunk_tokens;
                let mut chunk_grads = Vec::with_capacity(seq.div_ceil(chunk));
                for start in (0..seq).step_by(chunk) {
                    let len = chunk.min(seq - start);
                    let leaf = b.param(&b.narrow(&stream, 1, start, len)?)?;
                    let chunk_loss = head_loss(&b.rms_norm(&leaf, norm, eps)?, head_w, start..start + len)?;
                    loss += scalar(b, &chunk_loss)?;
                    let grads = b.backward(&chunk_loss)?;
                    add_grads(b, &mut tail_sums, &grads, &tail)?;
                    if tied {
                        add_grads(b, &mut embed_sums, &grads, &embed)?;
                    }
                    chunk_grads.push(match b.grad(&grads, &leaf)? {
                        Some(g) => g,
                        None => b.zeros(&[rows, len, self.config.hidden_size], self.dtype)?,
                    });
                }
                units.finish(b, tail_unit, tail_sums)?;
                if chunk_grads.len() == 1 { chunk_grads.remove(0) } else { b.cat(&chunk_grads, 1)? }
            };
            drop(tail);
            // Stage 3: the backbone.
            let mut g = g;
            if !checkpointed {
                let grads = push_back(&x, &g)?;
                for (l, w) in kept.iter().enumerate().rev() {
                    units.finish(b, 1 + l, grads_of(b, &grads, w)?)?;
                }
                add_grads(b, &mut embed_sums, &grads, &embed)?;
                return units.finish(b, 0, embed_sums).map(|()| loss);
            }
            drop(x);
            for (l, input) in inputs.into_iter().enumerate().rev() {
                let w = units.open(b, 1 + l)?;
                let leaf = b.param(&input)?;
                drop(input);
                let grads = push_back(
                    &self.layer_forward(l, &Layer::from_ordered(&w), &leaf, &rope, &mut attend)?,
                    &g,
                )?;
                units.finish(b, 1 + l, grads_of(b, &grads, &w)?)?;
                g = b.grad(&grads, &leaf)?.ok_or_else(|| {
                    Error::backend("backprop", alloc::format!("layer {l}'s input got no gradient"))
                })?;
            }
            add_grads(b, &mut embed_sums, &push_back(&embedded, &g)?, &embed)?;
            units.finish(b, 0, embed_sums)?;
            Ok(loss)
        })
    }
}
