//! The [`Backend`] trait: the tensor primitives and autodiff that the model, the sampler, the
//! optimizer and the losses of orz-rs are written in, once, for every backend.
//!
//! A backend implements the required primitives (host transfer, creation, broadcasting
//! arithmetic, unary functions, comparisons and `where_`, reductions, layout and indexing,
//! batched matmul, casts, sort, autodiff); everything else has a default body built from them
//! that a backend may override with a native path: [`ops`] and [`nn`] here, the PPO losses next
//! to their host oracles ([`crate::ppo::policy_loss`], [`crate::ppo::value_loss`]), AdamW and
//! gradient clipping next to the optimizer that drives them ([`crate::optimizer::adamw`],
//! [`crate::optimizer::clip`]).
//! The defaults are also public free functions, so a conformance check can compare a backend's
//! override with the default on the same backend, and an override can fall back to them.
//!
//! # Conventions (every method follows them)
//!
//! - **Errors are values.** Every fallible call returns [`crate::Result`]; bad shapes, dtypes
//!   and indices give [`crate::Error::Shape`], [`crate::Error::DType`] or
//!   [`crate::Error::IndexOutOfRange`] whose message names the op and the shapes
//!   (`"matmul: shapes [2, 3] and [4, 5] are incompatible"`). No method panics on bad input.
//!   The helpers in [`shape`] produce these errors, so backends reject the same inputs with the
//!   same messages.
//! - **Shapes** are `&[usize]`, row-major, outermost first; `[]` is a scalar. Dimensions are
//!   `usize` (no negative indices). Element-wise binary ops broadcast with NumPy's rules
//!   ([`shape::broadcast_shapes`]).
//! - **Dtypes** ([`DType`]): operands of one op share a dtype, there is no implicit promotion
//!   (cast explicitly), and results have the operands' dtype unless stated (comparisons give
//!   Bool, `sort` gives I64 indices). Arithmetic, unary functions and reductions take float
//!   dtypes only; I64 is for indices and Bool for masks. A backend may compute wider than the
//!   dtype (the reference computes everything in f64 and never rounds, not even on `cast`), but
//!   reports the dtype it was asked for; the conformance suite's per-dtype tolerance covers the
//!   difference.
//! - **Gradients** follow PyTorch autograd: each primitive's doc states its vector-Jacobian
//!   product. At kinks: `clamp` passes the gradient on `lo <= x <= hi` (inclusive);
//!   `maximum`/`minimum` split it half and half on ties; the `max` reduction splits it evenly
//!   among tied maxima (`amax`); comparisons, `where_`'s condition, index tensors and `sort`'s
//!   indices receive none. Broadcast operands receive the gradient summed over the broadcast
//!   dimensions.
//! - **Autodiff is functional**: [`Backend::param`] marks a leaf, [`Backend::backward`] returns a
//!   fresh gradient store per loss (no hidden `.grad` accumulation, so micro-batch accumulation
//!   is explicit), [`Backend::assign_param`] updates a parameter in place so a model keeps its
//!   handles across optimizer steps.
//! - **Masks** are applied with `where_`, never by multiplying with 0/1, so a NaN or inf in a
//!   masked-out position reaches neither the result nor the gradient.
//!
//! # Implementing a backend
//!
//! 1. Host transfer and creation: `tensor_f32`, `tensor_i64`, `to_host_f32`, `to_host_i64`,
//!    `shape`, `dtype`, `full` (and `tensor_f64` / `to_host_f64` if the device has f64, for
//!    tighter comparisons with the reference).
//! 2. Element-wise: `add`, `sub`, `mul`, `div`, `maximum`, `minimum`, `neg`, `exp`, `log`,
//!    `sqrt`, `sigmoid`, `tanh`, `powf`, `affine`, `clamp`, `eq`, `gt`, `ge`, `where_`, `cast`.
//! 3. Reductions and layout: `sum`, `max`, `cumsum`, `sort`, `reshape`, `transpose`, `narrow`,
//!    `cat`, `index_select`, `gather`, `write_slice`, `matmul`.
//! 4. Autodiff: `param`, `detach`, `backward`, `grad`, `assign_param`, `set_grad_enabled`.
//! 5. Optionally, faster overrides of composites (fused attention, log-softmax, RMSNorm, AdamW),
//!    each of which must keep the stated gradient.
//!
//! Every required method's error behaviour is part of the contract: validate with the helpers in
//! [`shape`] before calling into the framework, so that no framework panic (or abort) is reachable
//! from bad shapes, dtypes or indices.
//!
//! # Design choices
//!
//! - Bool is a dtype of its own (rather than 0/1 floats) so that masks cannot be multiplied into
//!   values by accident; libtorch has `Bool`, candle uses `U8`.
//! - Rotary tables are computed on the host in f64 ([`nn::rope_tables_host`]): positions are
//!   host data anyway, no `sin`/`cos` primitive is needed, and every backend gets identical,
//!   exact tables.
//! - `sort` (stable) rather than `topk`: top-k and top-p both follow from one sort plus
//!   `cumsum`, and a stable sort makes ties deterministic across backends.
//! - AdamW is a provided per-parameter update ([`Backend::adamw_update`]) driven by the
//!   [`AdamW`] struct ([`crate::optimizer::adamw`]), so a backend can fuse the update without
//!   owning the bookkeeping.
//! - `Send`/`Sync` are not required (the reference shares nodes with `Rc`).

mod api;
mod by_ref;
pub mod dtype;
pub mod nn;
pub mod ops;
pub mod shape;

/// The AdamW types of [`Backend::adamw_update`]'s signature, re-exported from their home
/// [`crate::optimizer::adamw`].
pub use crate::optimizer::adamw::{AdamW, AdamWConfig, AdamWState, AdamWStep};
pub use api::Backend;
pub use dtype::DType;
