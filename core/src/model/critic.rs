//! [`Critic`]: the Qwen2 backbone without the LM head, plus ORZ's bias-free scalar value head.
//!
//! # Value alignment (ORZ)
//!
//! The value head is `Linear(hidden, 1, bias = false)` on the final-norm hidden states, so
//! [`Critic::values`] has one value per position. The value of response token `j` of a sample
//! (the token at sample position `prompt_len + j`) is the value at the position **before** it,
//! `prompt_len + j - 1`: the state from which that token is chosen, exactly like its log-prob.
//! (ORZ: `values[:, :-1]`, then the last `num_actions` entries.) The value after the last
//! response token is not used (GAE takes it as 0). [`super::response_positions`] gives those
//! positions and [`super::PackedBatch::response_entries`] reads them from host values.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;

use core::ops::Range;

use super::backprop::{Backprop, ChunkLoss, MemoryOptions, ResidentUnits, UnitStore};
use super::packing::PackedBatch;
use super::qwen2::Qwen2;
use super::weights::init_values;
use super::{Head, Qwen2Config, VALUE_HEAD, parameter_specs};
use crate::backend::{Backend, DType};
use crate::rng::Rng;
use crate::{Error, Result};

/// A value model: [`Qwen2`] with the value head [`VALUE_HEAD`] (`[1, hidden]`) instead of an LM
/// head. Shares no weights with the policy.
#[derive(Debug)]
pub struct Critic<B: Backend> {
    model: Qwen2<B>,
}

impl<B: Backend> Critic<B> {
    /// Wraps a model; an error unless it carries the value head.
    pub fn new(model: Qwen2<B>) -> Result<Critic<B>> {
        if model.head() != Head::Value {
            return Err(Error::invalid(
                "critic",
                format!("needs a model with the value head, got {:?}", model.head()),
            ));
        }
        Ok(Critic { model })
    }

    /// A critic from named tensors including [`VALUE_HEAD`]; see [`Qwen2::from_tensors`].
    pub fn from_tensors(
        backend: Rc<B>,
        config: &Qwen2Config,
        tensors: BTreeMap<String, B::Tensor>,
    ) -> Result<Critic<B>> {
        Ok(Critic { model: Qwen2::from_tensors(backend, config, Head::Value, tensors)? })
    }

    /// A critic from a base (policy) checkpoint, as ORZ starts it: the backbone's tensors are
    /// used, `lm_head.weight` is ignored, and the value head, unless present, is drawn from
    /// Normal(0, 1/(hidden+1)) with `rng`, in the embeddings' dtype.
    pub fn from_pretrained(
        backend: Rc<B>,
        config: &Qwen2Config,
        mut tensors: BTreeMap<String, B::Tensor>,
        rng: &mut Rng,
    ) -> Result<Critic<B>> {
        if !tensors.contains_key(VALUE_HEAD) {
            config.validate()?;
            let dtype = tensors.get("model.embed_tokens.weight").map_or(DType::F32, |t| backend.dtype(t));
            let specs = parameter_specs(config, Head::Value);
            if let Some(spec) = specs.iter().find(|s| s.name == VALUE_HEAD) {
                let values = init_values(spec, config.hidden_size, rng);
                tensors.insert(spec.name.clone(), backend.tensor_f64(&values, &spec.shape, dtype)?);
            }
        }
        Critic::from_tensors(backend, config, tensors)
    }

    /// A randomly initialized critic; see [`Qwen2::random`].
    pub fn random(backend: Rc<B>, config: &Qwen2Config, dtype: DType, rng: &mut Rng) -> Result<Critic<B>> {
        Ok(Critic { model: Qwen2::random(backend, config, Head::Value, dtype, rng)? })
    }

    /// The underlying model (config, parameters, named tensors, hidden states).
    pub fn model(&self) -> &Qwen2<B> {
        &self.model
    }

    /// The underlying model, by value.
    pub fn into_model(self) -> Qwen2<B> {
        self.model
    }

    /// The value head applied at every position, `[rows, seq_len]`. See the
    /// [module docs](self) for which position holds the value of which response token.
    /// Differentiable with respect to the parameters.
    pub fn values(&self, batch: &PackedBatch) -> Result<B::Tensor> {
        let b = self.model.backend();
        let hidden = self.model.hidden_states(batch)?;
        let head = self.model.head_weight()?.ok_or_else(|| Error::invalid("critic", "no value head"))?;
        b.squeeze(&b.linear(&hidden, head, None)?, 2)
    }

    /// The loss `Σ_chunks loss(values_chunk, positions)` of the values (as [`Critic::values`])
    /// and every parameter's gradient, with the memory behaviour of `options`
    /// ([`Qwen2::backprop`]): `loss` gets the values `[rows, len]` of the positions `range` and
    /// returns their scalar loss.
    pub fn backprop_values(
        &self,
        batch: &PackedBatch,
        options: MemoryOptions,
        loss: &mut ChunkLoss<'_, B>,
    ) -> Result<Backprop<B>> {
        let mut units = ResidentUnits::of(&self.model)?;
        let value = self.backprop_values_with(&mut units, batch, options, loss)?;
        Ok(Backprop { loss: value, grads: units.into_grads() })
    }

    /// [`Critic::backprop_values`] with the weights and gradients in `units`
    /// ([`Qwen2::backprop_with`]; a skeleton critic works). Returns the loss.
    pub fn backprop_values_with(
        &self,
        units: &mut dyn UnitStore<B>,
        batch: &PackedBatch,
        options: MemoryOptions,
        loss: &mut ChunkLoss<'_, B>,
    ) -> Result<f64> {
        let b = self.model.backend();
        let mut head_loss = |hidden: &B::Tensor, head: &B::Tensor, range: Range<usize>| {
            loss(&b.squeeze(&b.linear(hidden, head, None)?, 2)?, range)
        };
        self.model.backprop_with(units, batch, options, &mut head_loss)
    }
}
