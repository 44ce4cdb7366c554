//! What the checks of levels 4 and 5 share: a tiny Qwen2 (2 layers, grouped-query attention)
//! whose weights are drawn on the host with a seeded [`Rng`], rounded to the check's dtype and
//! uploaded alike to the backend under test and to the reference; token sequences from the same
//! seed; and comparisons of per-position model outputs.
//!
//! **Tolerance.** A model output compounds hundreds of rounded operations (two layers of
//! projections, norms, rotary embeddings, attention and MLP), so its error in a low-precision
//! dtype exceeds a single op's. The model checks use the suite's one rule with both constants
//! multiplied by [`MODEL_TOLERANCE_SCALE`] ([`model_tol`]), calibrated like the op tolerances on
//! `broken::RoundsToDType`, a correct backend rounding every result to its dtype (see the README).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::rc::Rc;

use orz_core::backend::{Backend, DType};
use orz_core::model::{Critic, Head, PackedBatch, Policy, Qwen2, Qwen2Config, parameter_specs};
use orz_core::rng::Rng;
use orz_reference::Reference;
use proptest::prelude::*;

use crate::harness::compare;
use crate::tolerance::{ErrorStats, Tolerance};

/// The outcome of one case: `Err` holds the report.
pub type Report = core::result::Result<(), String>;

/// Cases per model check: each builds two models and runs several forwards, so a few suffice.
pub const MODEL_CASES: u32 = 6;

/// The factor applied to both constants of [`Tolerance::for_dtype`] for whole-model outputs
/// (logits, log-probs, values, gradients w.r.t. every parameter): see the [module docs](self).
pub const MODEL_TOLERANCE_SCALE: f64 = 4.0;

/// The factor for gradients with respect to every parameter of the model (level 4,
/// `model_ppo_gradients`): backpropagation through two layers compounds the forward's rounding
/// errors with its own; on `broken::RoundsToDType` in bf16 the gradients of the first layer's
/// parameters under a value loss are off by up to 10% of their largest entry, so the gradients
/// get 3 times the forward's factor.
pub const GRADIENT_TOLERANCE_SCALE: f64 = 3.0 * MODEL_TOLERANCE_SCALE;

/// The tolerance of model outputs in `dtype`: [`Tolerance::for_dtype`] scaled by
/// [`MODEL_TOLERANCE_SCALE`].
pub fn model_tol(dtype: DType) -> Tolerance {
    Tolerance::for_dtype(dtype).scaled(MODEL_TOLERANCE_SCALE)
}

/// The tiny configuration of the model checks: vocabulary 48, hidden 16, MLP 32, 2 layers,
/// 4 query heads sharing 2 kv heads (head_dim 4), RoPE base 100 (positions matter over a few
/// tokens), EOS id 1; `tied` ties the LM head to the embeddings.
pub fn config(tied: bool) -> Qwen2Config {
    Qwen2Config {
        vocab_size: 48,
        hidden_size: 16,
        intermediate_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        rope_theta: 100.0,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: tied,
        max_position_embeddings: 64,
        bos_token_id: None,
        eos_token_ids: vec![1],
    }
}

/// Host values of every parameter of `config` with `head`, drawn from `seed` and rounded to
/// `dtype`: weights uniform in ±0.3 (far from a uniform next-token distribution), biases in ±0.2,
/// norm weights in 0.8..1.2.
pub fn host_weights(config: &Qwen2Config, head: Head, dtype: DType, seed: u64) -> Vec<(String, Vec<f64>)> {
    let mut rng = Rng::seed_from_u64(seed);
    parameter_specs(config, head)
        .into_iter()
        .map(|s| {
            let n: usize = s.shape.iter().product();
            let (lo, hi) = if s.name.ends_with("norm.weight") {
                (0.8, 1.2)
            } else if s.name.ends_with(".bias") {
                (-0.2, 0.2)
            } else {
                (-0.3, 0.3)
            };
            let v = (0..n).map(|_| dtype.round(lo + (hi - lo) * rng.uniform())).collect();
            (s.name, v)
        })
        .collect()
}

/// A model of `config`/`head` on `b` holding `weights` (from [`host_weights`]) in `dtype`.
pub fn build<C: Backend>(
    b: Rc<C>,
    config: &Qwen2Config,
    head: Head,
    weights: &[(String, Vec<f64>)],
    dtype: DType,
) -> orz_core::Result<Qwen2<C>> {
    let specs = parameter_specs(config, head);
    let mut tensors = BTreeMap::new();
    for (spec, (name, values)) in specs.iter().zip(weights) {
        tensors.insert(name.clone(), b.tensor_f64(values, &spec.shape, dtype)?);
    }
    Qwen2::from_tensors(b, config, head, tensors)
}

/// The backend under test (borrowed: `&B` is a backend too, so models can hold it in an `Rc`) and the reference,
/// with the dtype of one check.
#[derive(Debug)]
pub struct Pair<'a, B: Backend> {
    /// The backend under test.
    pub backend: Rc<&'a B>,
    /// The oracle.
    pub reference: Rc<Reference>,
    /// The check's dtype.
    pub dtype: DType,
}

/// A model on both sides: the backend's and the reference's, with the same weights.
#[derive(Debug)]
pub struct Both<'a, B: Backend, M: ModelKind> {
    /// On the backend under test.
    pub backend: M::On<&'a B>,
    /// On the reference.
    pub reference: M::On<Reference>,
}

/// A policy or a critic, generically over the backend.
pub trait ModelKind {
    /// The model on backend `C`.
    type On<C: Backend>;
    /// Its head.
    const HEAD: Head;
    /// Wraps a model with [`Self::HEAD`].
    fn wrap<C: Backend>(model: Qwen2<C>) -> orz_core::Result<Self::On<C>>;
}

/// [`Policy`] as a [`ModelKind`].
#[derive(Debug)]
pub struct PolicyKind;

impl ModelKind for PolicyKind {
    type On<C: Backend> = Policy<C>;
    const HEAD: Head = Head::Lm;
    fn wrap<C: Backend>(model: Qwen2<C>) -> orz_core::Result<Policy<C>> {
        Policy::new(model)
    }
}

/// [`Critic`] as a [`ModelKind`].
#[derive(Debug)]
pub struct CriticKind;

impl ModelKind for CriticKind {
    type On<C: Backend> = Critic<C>;
    const HEAD: Head = Head::Value;
    fn wrap<C: Backend>(model: Qwen2<C>) -> orz_core::Result<Critic<C>> {
        Critic::new(model)
    }
}

impl<'a, B: Backend> Pair<'a, B> {
    /// The pair for `backend` in `dtype`.
    pub fn new(backend: &'a B, dtype: DType) -> Self {
        Pair { backend: Rc::new(backend), reference: Rc::new(Reference::new()), dtype }
    }

    /// A model of kind `M` with [`host_weights`] of `seed` on both sides.
    pub fn models<M: ModelKind>(&self, config: &Qwen2Config, seed: u64) -> Result<Both<'a, B, M>, String> {
        let w = host_weights(config, M::HEAD, self.dtype, seed);
        let reference = build(Rc::clone(&self.reference), config, M::HEAD, &w, self.dtype)
            .and_then(M::wrap)
            .map_err(kit)?;
        let backend = build(Rc::clone(&self.backend), config, M::HEAD, &w, self.dtype)
            .and_then(M::wrap)
            .map_err(|e| format!("building the model on the backend failed: {e}"))?;
        Ok(Both { backend, reference })
    }

    /// The policies of `seed` on both sides.
    pub fn policies(&self, config: &Qwen2Config, seed: u64) -> Result<Both<'a, B, PolicyKind>, String> {
        self.models::<PolicyKind>(config, seed)
    }

    /// The critics of `seed` on both sides.
    pub fn critics(&self, config: &Qwen2Config, seed: u64) -> Result<Both<'a, B, CriticKind>, String> {
        self.models::<CriticKind>(config, seed)
    }

    /// The backend's values of `t` (errors are reports naming `what`).
    pub fn host(&self, what: &str, t: &B::Tensor) -> Result<Vec<f64>, String> {
        self.backend.to_host_f64(t).map_err(|e| format!("{what}: to_host_f64 failed: {e}"))
    }
}

/// A reference failure: a bug of the kit or of the reference, not of the backend.
pub fn kit(e: impl Display) -> String {
    format!("kit bug: the reference failed: {e}")
}

/// A backend failure while computing `what`.
pub fn failed(what: &str) -> impl Fn(orz_core::Error) -> String + '_ {
    move |e| format!("{what}: the backend returned an error: {e}")
}

/// `n` token ids in `2..vocab` (ids 0 and 1, padding and EOS, are avoided) from `rng`.
pub fn tokens(rng: &mut Rng, n: usize, vocab: usize) -> Vec<u32> {
    (0..n).map(|_| 2 + rng.below(vocab as u64 - 2) as u32).collect()
}

/// A seed that proptest does not shrink (a different seed is a different input, not a smaller
/// one), so that a failure is reported after a few shrinking steps of the layout only.
pub fn seed() -> impl Strategy<Value = u64> {
    any::<u64>().no_shrink()
}

/// Compares `got` and `want` (per position of `shape`) where `mask` holds, under `tol`,
/// recording those pairs in `stats`; positions outside the mask (padding) are not compared.
pub fn compare_where(
    what: &str,
    shape: &[usize],
    (got, want): (&[f64], &[f64]),
    mask: &[bool],
    tol: Tolerance,
    stats: &mut ErrorStats,
) -> Report {
    if got.len() != want.len() || got.len() % mask.len().max(1) != 0 {
        return Err(format!(
            "{what}: {} values from the backend, {} from the reference",
            got.len(),
            want.len()
        ));
    }
    let per = got.len() / mask.len().max(1);
    let keep = |v: &[f64]| -> Vec<f64> {
        v.iter().enumerate().map(|(i, &x)| if mask[i / per] { x } else { 0.0 }).collect()
    };
    compare(what, shape, &keep(got), &keep(want), tol, stats)
}

/// Whether each position of `batch` holds a sample's token (padding does not).
pub fn token_mask(batch: &PackedBatch) -> Vec<bool> {
    (0..batch.tokens().len()).map(|i| batch.is_token(i)).collect()
}

/// Host values of a backend tensor and of the reference's, and their common shape.
pub type Fetched = (Vec<f64>, Vec<f64>, Vec<usize>);

impl<B: Backend> Pair<'_, B> {
    /// Checks that the backend's `got` has the shape and dtype of the reference's `want` and
    /// brings both to the host: `(got, want, shape)`.
    pub fn fetch(
        &self,
        what: &str,
        got: &B::Tensor,
        want: &orz_reference::Tensor,
    ) -> Result<Fetched, String> {
        let (gs, ws) = (self.backend.shape(got), want.shape().to_vec());
        if gs != ws {
            return Err(format!("{what}: backend shape {gs:?}, reference shape {ws:?}"));
        }
        let (gd, wd) = (self.backend.dtype(got), want.dtype());
        if gd != wd {
            return Err(format!("{what}: backend dtype {gd}, reference dtype {wd}"));
        }
        Ok((self.host(what, got)?, want.to_vec(), ws))
    }
}
