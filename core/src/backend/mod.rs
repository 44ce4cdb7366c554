//! The [`Backend`] trait: the tensor primitives and autodiff that the model, the sampler, the
//! optimizer and the losses of orz-rs are written in, once, for every backend.
//!
//! A backend implements kernels ([`kernels`]: forward primitives grouped in op families,
//! autodiff, optional native composites); [`Backend`] wraps them in argument checks and adds
//! composites with default bodies built from the primitives: [`ops`] and [`nn`] here, the PPO losses next
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
//!   [`Backend`] runs the checks of [`check`] before any kernel, so every backend rejects the
//!   same inputs with the same messages.
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
//! A backend implements three traits of kernels ([`kernels`]); [`Backend`] is implemented for it
//! by core and checks every argument ([`check`]) before a kernel runs, so kernels may assume
//! valid shapes and dtypes and never repeat a check:
//!
//! 1. [`Primitives`]: host transfer and creation (`tensor_f32_impl`, `tensor_i64_impl`,
//!    `to_host_f32`, `to_host_i64_impl`, `shape`, `dtype`, `full_impl`), the four op families
//!    ([`Primitives::unary`], [`Primitives::binary`], [`Primitives::compare`],
//!    [`Primitives::reduce`], each taking an enum of [`families`] whose variants state their
//!    gradient and edge-case rules), `where_impl`, `cumsum_impl`, `sort_impl`, layout and
//!    indexing (`reshape_impl`, `transpose_impl`, `narrow_impl`, `cat_impl`,
//!    `index_select_impl`, `gather_impl`, `write_slice_impl`), `matmul_impl`, `cast_impl`.
//! 2. [`Autodiff`]: map it onto the framework's autograd (tch, candle), or wrap a forward-only
//!    engine in [`tape::Tape`] and write none of it.
//! 3. [`Composites`]: `impl Composites for MyBackend {}`, or native paths for any of them
//!    (fused attention, log-softmax, RMSNorm, AdamW), each keeping the stated gradient.
//!
//! Kernels still check what only they can read cheaply: index values in range and non-finite
//! values cast to I64. `conformance/README.md` walks through a complete example.
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
pub mod check;
pub mod dtype;
pub mod families;
pub mod kernels;
pub mod nn;
pub mod ops;
pub mod shape;
pub mod tape;

/// The AdamW types of [`Backend::adamw_update`]'s signature, re-exported from their home
/// [`crate::optimizer::adamw`].
pub use crate::optimizer::adamw::{AdamW, AdamWConfig, AdamWState, AdamWStep};
pub use api::Backend;
pub use dtype::DType;
pub use families::{BinaryOp, CompareOp, ReduceOp, UnaryOp};
pub use kernels::{Autodiff, Composites, Primitives};
