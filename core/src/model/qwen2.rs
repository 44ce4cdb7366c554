//! [`Qwen2`]: the transformer backbone (embeddings, decoder layers, final norm) and its head's
//! weight, with the forward pass over packed rows.
//!
//! The architecture is Hugging Face's `Qwen2Model`: per layer, a pre-norm attention block
//! (RMSNorm, q/k/v projections with biases, rotary embedding in the rotate-half layout with
//! `rope_theta`, grouped-query attention, an output projection without bias) and a pre-norm
//! SwiGLU MLP `down(silu(gate(x)) * up(x))` (no biases), each added to the residual stream; then
//! a final RMSNorm. Construction, initialization and parameter listing live in
//! [`super::weights`].

use alloc::rc::Rc;
use alloc::vec::Vec;

use super::packing::PackedBatch;
use super::{Head, Qwen2Config};
use crate::backend::nn::rope_tables;
use crate::backend::{Backend, DType, Primitives};
use crate::{Error, Result};

/// The twelve parameters of one decoder layer, in Hugging Face's (and the spec's) order.
#[derive(Debug, Clone)]
pub(crate) struct Layer<T> {
    pub(crate) input_norm: T,
    pub(crate) q_w: T,
    pub(crate) q_b: T,
    pub(crate) k_w: T,
    pub(crate) k_b: T,
    pub(crate) v_w: T,
    pub(crate) v_b: T,
    pub(crate) o_w: T,
    pub(crate) post_norm: T,
    pub(crate) gate: T,
    pub(crate) up: T,
    pub(crate) down: T,
}

impl<T: Clone> Layer<T> {
    /// Number of tensors per layer.
    pub(crate) const TENSORS: usize = 12;

    /// A layer from its tensors in spec order (exactly [`Layer::TENSORS`] of them).
    pub(crate) fn from_ordered(t: &[T]) -> Layer<T> {
        let [input_norm, q_w, q_b, k_w, k_b, v_w, v_b, o_w, post_norm, gate, up, down] =
            core::array::from_fn(|i| t[i].clone());
        Layer { input_norm, q_w, q_b, k_w, k_b, v_w, v_b, o_w, post_norm, gate, up, down }
    }

    /// Its tensors in spec order.
    pub(crate) fn ordered(&self) -> [&T; 12] {
        [
            &self.input_norm,
            &self.q_w,
            &self.q_b,
            &self.k_w,
            &self.k_b,
            &self.v_w,
            &self.v_b,
            &self.o_w,
            &self.post_norm,
            &self.gate,
            &self.up,
            &self.down,
        ]
    }
}

/// The weights of a resident model, in [`Qwen2::parameters`] order: the embedding, the decoder
/// layers, the final norm and the head's weight.
#[derive(Debug, Clone)]
pub(crate) struct Weights<T> {
    pub(crate) embed: T,
    pub(crate) layers: Vec<Layer<T>>,
    pub(crate) norm: T,
    /// `lm_head.weight` (untied policy) or the value head; `None` for a tied policy.
    pub(crate) head_weight: Option<T>,
}

/// The attention of one layer given its rotated queries `[b, hq, s, d]`, keys and values
/// `[b, hkv, s, d]`: causal attention over packed rows in a full forward, attention over a KV
/// cache while decoding. Called with the layer index.
pub(crate) type Attend<'a, B> = dyn FnMut(
        usize,
        &<B as Primitives>::Tensor,
        &<B as Primitives>::Tensor,
        &<B as Primitives>::Tensor,
    ) -> Result<<B as Primitives>::Tensor>
    + 'a;

/// The rotary tables of one forward pass, `[rows, seq, head_dim]` each.
#[derive(Debug)]
pub(crate) struct Rope<B: Backend> {
    pub(crate) cos: B::Tensor,
    pub(crate) sin: B::Tensor,
}

/// A Qwen2 model: the backbone plus the weight of its head (an untied LM head or a value
/// head). Parameters are [`Backend::param`] leaves; see [`super::weights`] for construction.
/// The [`super::Policy`] and [`super::Critic`] wrap it.
///
/// A model is *resident* (it holds its weights) or a *skeleton*: the architecture alone, whose
/// weights live sliced over the ranks of a data-parallel job (ZeRO-3,
/// [`crate::shard::ShardedOptimizer::new_weight_sharded`]) and are gathered unit by unit for a
/// training step ([`Qwen2::backprop_with`]) or whole for generation and scoring
/// ([`crate::shard::ShardedOptimizer::gather_model`]). A skeleton's forward passes are errors
/// that say so.
#[derive(Debug)]
pub struct Qwen2<B: Backend> {
    pub(crate) backend: Rc<B>,
    pub(crate) config: Qwen2Config,
    pub(crate) head: Head,
    pub(crate) dtype: DType,
    /// `None` for a skeleton.
    pub(crate) weights: Option<Weights<B::Tensor>>,
}

impl<B: Backend> Qwen2<B> {
    /// The backend the parameters live on.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The shared handle of the backend (to build another model on the same backend).
    pub fn backend_rc(&self) -> Rc<B> {
        Rc::clone(&self.backend)
    }

    /// The (validated) configuration.
    pub fn config(&self) -> &Qwen2Config {
        &self.config
    }

    /// Which head the model carries.
    pub fn head(&self) -> Head {
        self.head
    }

    /// The dtype of every parameter and of the activations.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Whether the model holds its weights (false for a skeleton, see the [type docs](Qwen2)).
    pub fn is_resident(&self) -> bool {
        self.weights.is_some()
    }

    /// The same architecture without weights (a skeleton): what each rank keeps of a model
    /// whose weights are sharded.
    pub fn skeleton(&self) -> Qwen2<B> {
        Qwen2 {
            backend: Rc::clone(&self.backend),
            config: self.config.clone(),
            head: self.head,
            dtype: self.dtype,
            weights: None,
        }
    }

    /// The weights, or an error naming `op` for a skeleton.
    pub(crate) fn weights(&self, op: &'static str) -> Result<&Weights<B::Tensor>> {
        self.weights.as_ref().ok_or_else(|| {
            Error::invalid(
                op,
                "the model's weights are sharded over the ranks (ZeRO-3) and not gathered here: \
                 run it through the gathered model (`Trainer::gathered_policy`, \
                 `ShardedOptimizer::gather_model`)",
            )
        })
    }

    /// The final hidden states (after the final norm) of a packed batch, `[rows, seq_len,
    /// hidden]`. Errors: a token id outside the vocabulary (naming it and its position).
    pub fn hidden_states(&self, batch: &PackedBatch) -> Result<B::Tensor> {
        let x = self.forward_raw(batch)?;
        self.final_norm(&x)
    }

    /// The residual stream after the last layer, before the final norm.
    pub(crate) fn forward_raw(&self, batch: &PackedBatch) -> Result<B::Tensor> {
        let b = &*self.backend;
        self.check_tokens("qwen2 forward", batch.tokens())?;
        self.forward_tensors(&batch.token_tensor(b)?, batch.positions(), &batch.segment_tensor(b)?)
    }

    /// [`Qwen2::hidden_states`] from a layout built elsewhere: token ids and segment ids I64
    /// `[rows, seq_len]` on the device, positions on the host (row-major `[rows, seq_len]`, for
    /// the rotary tables). Token ids are not checked on the host here (the embedding lookup
    /// rejects out-of-range ids).
    pub fn forward(&self, ids: &B::Tensor, positions: &[i64], segments: &B::Tensor) -> Result<B::Tensor> {
        let x = self.forward_tensors(ids, positions, segments)?;
        self.final_norm(&x)
    }

    /// [`Qwen2::forward`] before the final norm.
    fn forward_tensors(&self, ids: &B::Tensor, positions: &[i64], segments: &B::Tensor) -> Result<B::Tensor> {
        let b = &*self.backend;
        let (is, ss) = (b.shape(ids), b.shape(segments));
        if is.len() != 2 || is != ss || positions.len() != is[0] * is[1] {
            return Err(Error::shape(
                "qwen2 forward",
                alloc::format!(
                    "ids {is:?}, segments {ss:?} and {} positions do not form one [rows, seq_len] layout",
                    positions.len()
                ),
            ));
        }
        let mut attend =
            |_: usize, q: &B::Tensor, k: &B::Tensor, v: &B::Tensor| b.causal_attention(q, k, v, segments);
        self.run_layers(ids, positions, [is[0], is[1]], &mut attend)
    }

    /// The final RMSNorm.
    pub(crate) fn final_norm(&self, x: &B::Tensor) -> Result<B::Tensor> {
        self.backend.rms_norm(x, &self.weights("qwen2 final norm")?.norm, self.config.rms_norm_eps)
    }

    /// Checks that every token id is inside the vocabulary.
    pub(crate) fn check_tokens(&self, op: &'static str, tokens: &[u32]) -> Result<()> {
        let vocab = self.config.vocab_size;
        match tokens.iter().position(|&t| t as usize >= vocab) {
            None => Ok(()),
            Some(at) => Err(Error::IndexOutOfRange {
                op,
                index: i64::from(tokens[at]),
                size: vocab,
                context: alloc::format!("token id at position {at} is outside the vocabulary"),
            }),
        }
    }

    /// Embeds `ids` (I64 `[b, s]`), runs every decoder layer with rotary positions `positions`
    /// (row-major `[b, s]`) and attention `attend`, and returns the residual stream
    /// `[b, s, hidden]` before the final norm.
    pub(crate) fn run_layers(
        &self,
        ids: &B::Tensor,
        positions: &[i64],
        [rows, seq]: [usize; 2],
        attend: &mut Attend<'_, B>,
    ) -> Result<B::Tensor> {
        let w = self.weights("qwen2 forward")?;
        let rope = self.rope(positions, [rows, seq])?;
        let mut x = self.backend.embedding(&w.embed, ids)?;
        for (l, layer) in w.layers.iter().enumerate() {
            x = self.layer_forward(l, layer, &x, &rope, attend)?;
        }
        Ok(x)
    }

    /// The rotary tables `(cos, sin)` of `positions` (row-major `[rows, seq]`) in the model's
    /// dtype, shared by every layer.
    pub(crate) fn rope(&self, positions: &[i64], [rows, seq]: [usize; 2]) -> Result<Rope<B>> {
        let c = &self.config;
        let (cos, sin) =
            rope_tables(&*self.backend, positions, [rows, seq], c.head_dim(), c.rope_theta, self.dtype)?;
        Ok(Rope { cos, sin })
    }

    /// Decoder layer `l` with weights `layer` on the residual stream `x` `[rows, seq, hidden]`:
    /// the attention block and the MLP block, each added to the stream. Returns the stream
    /// after the layer.
    pub(crate) fn layer_forward(
        &self,
        l: usize,
        layer: &Layer<B::Tensor>,
        x: &B::Tensor,
        rope: &Rope<B>,
        attend: &mut Attend<'_, B>,
    ) -> Result<B::Tensor> {
        let b = &*self.backend;
        let c = &self.config;
        let d = c.head_dim();
        let xs = b.shape(x);
        let (rows, seq) = (xs[0], xs[1]);
        let heads = |x: &B::Tensor, n: usize| b.transpose(&b.reshape(x, &[rows, seq, n, d])?, 1, 2);
        let h = b.rms_norm(x, &layer.input_norm, c.rms_norm_eps)?;
        let q = heads(&b.linear(&h, &layer.q_w, Some(&layer.q_b))?, c.num_attention_heads)?;
        let k = heads(&b.linear(&h, &layer.k_w, Some(&layer.k_b))?, c.num_key_value_heads)?;
        let v = heads(&b.linear(&h, &layer.v_w, Some(&layer.v_b))?, c.num_key_value_heads)?;
        let q = b.rotary_embedding(&q, &rope.cos, &rope.sin)?;
        let k = b.rotary_embedding(&k, &rope.cos, &rope.sin)?;
        let a = attend(l, &q, &k, &v)?;
        let a = b.reshape(&b.transpose(&a, 1, 2)?, &[rows, seq, c.num_attention_heads * d])?;
        let x = b.add(x, &b.linear(&a, &layer.o_w, None)?)?;
        let h = b.rms_norm(&x, &layer.post_norm, c.rms_norm_eps)?;
        let gated = b.mul(&b.silu(&b.linear(&h, &layer.gate, None)?)?, &b.linear(&h, &layer.up, None)?)?;
        b.add(&x, &b.linear(&gated, &layer.down, None)?)
    }

    /// The LM head's weight `[vocab, hidden]`: `lm_head.weight`, or the embeddings when tied.
    pub(crate) fn lm_weight(&self) -> Result<&B::Tensor> {
        let w = self.weights("qwen2 LM head")?;
        Ok(w.head_weight.as_ref().unwrap_or(&w.embed))
    }

    /// The head's own weight (`lm_head.weight` of an untied policy, the critic's value head),
    /// `None` for a tied policy.
    pub(crate) fn head_weight(&self) -> Result<Option<&B::Tensor>> {
        Ok(self.weights("qwen2 head")?.head_weight.as_ref())
    }
}
