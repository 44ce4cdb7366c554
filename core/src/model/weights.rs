//! Building a [`Qwen2`] from named tensors or from a seeded random init, and listing its
//! parameters back in spec order.
//!
//! Names and shapes are [`parameter_specs`] (Hugging Face's). Loading checks every expected
//! tensor is present with its shape and that all share one float dtype, naming the tensor at
//! fault. Tensors whose names are not in the specs are **ignored**, as Hugging Face ignores
//! buffers such as `rotary_emb.inv_freq`: a critic can thus be built from a policy checkpoint
//! (its `lm_head.weight` is left out), and a misspelt name cannot slip through, since the
//! tensor it should have been is then reported missing.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

use super::qwen2::{Layer, Qwen2, Weights};
use super::{Head, ParamSpec, Qwen2Config, VALUE_HEAD, parameter_specs};
use crate::backend::{Backend, DType};
use crate::rng::Rng;
use crate::{Error, Result};

/// Standard deviation of Hugging Face's init for Qwen2 linear and embedding weights
/// (`initializer_range`).
pub const INIT_STD: f64 = 0.02;

/// Standard deviation of ORZ's value-head init: `1 / (hidden + 1)`.
pub fn value_head_std(hidden: usize) -> f64 {
    1.0 / (hidden as f64 + 1.0)
}

/// How [`Qwen2::random`] initializes one tensor: the norms get ones, the biases zeros, the
/// value head Normal(0, [`value_head_std`]), every other weight Normal(0, [`INIT_STD`]).
fn init_std(spec: &ParamSpec, hidden: usize) -> Option<f64> {
    if spec.name.ends_with("norm.weight") || spec.name.ends_with(".bias") {
        None
    } else if spec.name == VALUE_HEAD {
        Some(value_head_std(hidden))
    } else {
        Some(INIT_STD)
    }
}

/// Host values of a freshly initialized tensor (see [`init_std`]).
pub(crate) fn init_values(spec: &ParamSpec, hidden: usize, rng: &mut Rng) -> Vec<f64> {
    let n: usize = spec.shape.iter().product();
    match init_std(spec, hidden) {
        Some(std) => (0..n).map(|_| std * rng.normal()).collect(),
        None if spec.name.ends_with(".bias") => alloc::vec![0.0; n],
        None => alloc::vec![1.0; n],
    }
}

impl<B: Backend> Qwen2<B> {
    /// A model from named tensors (Hugging Face names, [`parameter_specs`] of `config` and
    /// `head`), each turned into a [`Backend::param`]. The config is validated first. Errors:
    /// a missing tensor, a tensor of the wrong shape or of a dtype that is not float or differs
    /// from `model.embed_tokens.weight`'s, each naming the tensor with the expected and actual
    /// shape or dtype. Unknown names are ignored (see the [module docs](self)).
    pub fn from_tensors(
        backend: Rc<B>,
        config: &Qwen2Config,
        head: Head,
        mut tensors: BTreeMap<String, B::Tensor>,
    ) -> Result<Qwen2<B>> {
        const OP: &str = "qwen2 weights";
        config.validate()?;
        let b = &*backend;
        let specs = parameter_specs(config, head);
        let mut ordered = Vec::with_capacity(specs.len());
        let mut dtype = None;
        for spec in &specs {
            let t = tensors.remove(&spec.name).ok_or_else(|| {
                Error::invalid(
                    OP,
                    format!("missing tensor `{}` (expected shape {:?})", spec.name, spec.shape),
                )
            })?;
            let shape = b.shape(&t);
            if shape != spec.shape {
                return Err(Error::shape(
                    OP,
                    format!("tensor `{}` has shape {shape:?}, expected {:?}", spec.name, spec.shape),
                ));
            }
            let dt = b.dtype(&t);
            let want = *dtype.get_or_insert(dt);
            let problem = if !dt.is_float() {
                Some(format!("a float dtype is required, got {dt}"))
            } else if dt != want {
                Some(format!("it has dtype {dt}, the embeddings have {want}"))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(Error::dtype(OP, format!("tensor `{}`: {problem}", spec.name)));
            }
            ordered.push(b.param(&t)?);
        }
        let dtype = dtype.unwrap_or(DType::F32);
        Ok(Qwen2::assemble(backend, config.clone(), head, dtype, ordered))
    }

    /// A model with Hugging Face's random init: Normal(0, [`INIT_STD`]) weights and
    /// embeddings, zero biases, unit norms, and the value head Normal(0, [`value_head_std`]) as
    /// ORZ; drawn from `rng` in spec order (so a seed fixes the model), in dtype `dtype`.
    pub fn random(
        backend: Rc<B>,
        config: &Qwen2Config,
        head: Head,
        dtype: DType,
        rng: &mut Rng,
    ) -> Result<Qwen2<B>> {
        config.validate()?;
        if !dtype.is_float() {
            return Err(Error::dtype("qwen2 random", format!("parameters need a float dtype, got {dtype}")));
        }
        let mut ordered = Vec::new();
        for spec in parameter_specs(config, head) {
            let values = init_values(&spec, config.hidden_size, rng);
            ordered.push(backend.param(&backend.tensor_f64(&values, &spec.shape, dtype)?)?);
        }
        Ok(Qwen2::assemble(backend, config.clone(), head, dtype, ordered))
    }

    /// The model from its parameters in spec order (as many as [`parameter_specs`] lists).
    fn assemble(
        backend: Rc<B>,
        config: Qwen2Config,
        head: Head,
        dtype: DType,
        ordered: Vec<B::Tensor>,
    ) -> Qwen2<B> {
        let weights = Some(Self::weights_from_ordered(config.num_hidden_layers, ordered));
        Qwen2 { backend, config, head, dtype, weights }
    }

    /// The weights from the parameters in spec order.
    fn weights_from_ordered(layers: usize, ordered: Vec<B::Tensor>) -> Weights<B::Tensor> {
        let per = Layer::<B::Tensor>::TENSORS;
        let built =
            (0..layers).map(|l| Layer::from_ordered(&ordered[1 + l * per..1 + (l + 1) * per])).collect();
        Weights {
            embed: ordered[0].clone(),
            layers: built,
            norm: ordered[1 + layers * per].clone(),
            head_weight: ordered.get(2 + layers * per).cloned(),
        }
    }

    /// A resident model of this architecture holding `ordered` (every parameter in
    /// [`parameter_specs`] order, e.g. gathered from the ranks' slices), used as they are (no
    /// [`Backend::param`] leaves: for generation and scoring). Errors: a count or a shape that
    /// differs from the specs, naming the tensor.
    pub fn with_weights(&self, ordered: Vec<B::Tensor>) -> Result<Qwen2<B>> {
        const OP: &str = "qwen2 with_weights";
        let specs = parameter_specs(&self.config, self.head);
        crate::error::check_len(OP, ("parameters", specs.len()), ("tensors", ordered.len()))?;
        for (spec, t) in specs.iter().zip(&ordered) {
            let shape = self.backend.shape(t);
            if shape != spec.shape {
                return Err(Error::shape(
                    OP,
                    format!("tensor `{}` has shape {shape:?}, expected {:?}", spec.name, spec.shape),
                ));
            }
        }
        let mut model = self.skeleton();
        model.weights = Some(Self::weights_from_ordered(self.config.num_hidden_layers, ordered));
        Ok(model)
    }

    /// Every parameter in [`parameter_specs`] order (for the optimizer; a tied LM head appears
    /// once, as the embeddings); empty for a skeleton ([`Qwen2::is_resident`]).
    pub fn parameters(&self) -> Vec<B::Tensor> {
        let Some(w) = &self.weights else { return Vec::new() };
        let mut out = Vec::with_capacity(2 + w.layers.len() * Layer::<B::Tensor>::TENSORS);
        out.push(w.embed.clone());
        for layer in &w.layers {
            out.extend(layer.ordered().into_iter().cloned());
        }
        out.push(w.norm.clone());
        out.extend(w.head_weight.iter().cloned());
        out
    }

    /// The sharding units over [`Qwen2::parameters`]: the embedding, each decoder layer, and
    /// the final norm with the head weight (FSDP's per-layer wrapping), as index ranges. Read
    /// from the architecture (a skeleton has the same units).
    pub fn parameter_units(&self) -> Vec<core::ops::Range<usize>> {
        let per_layer = Layer::<B::Tensor>::TENSORS;
        let layers = self.config.num_hidden_layers;
        let mut units = Vec::with_capacity(layers + 2);
        units.push(0..1);
        for l in 0..layers {
            units.push(1 + l * per_layer..1 + (l + 1) * per_layer);
        }
        let tail = 1 + layers * per_layer;
        let untied = parameter_specs(&self.config, self.head).len() > tail + 1;
        units.push(tail..tail + 1 + usize::from(untied));
        units
    }

    /// Every parameter with its Hugging Face name, in [`parameter_specs`] order (what a
    /// checkpoint writer saves); empty for a skeleton.
    pub fn named_tensors(&self) -> Vec<(String, B::Tensor)> {
        let specs = parameter_specs(&self.config, self.head);
        specs.into_iter().map(|s| s.name).zip(self.parameters()).collect()
    }
}
