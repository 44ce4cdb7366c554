//! What a backend implements: three traits of kernels that may assume valid arguments, because
//! [`Backend`](super::Backend) checks every argument (shapes, dtypes, dimensions, bounds) once,
//! in core, before it calls them.
//!
//! - [`Primitives`]: the forward ops (host transfer, creation, the four op families, layout,
//!   indexing, matmul, cast, sort). Required, but for a few provided ones (f64 and Bool
//!   transfer, and `index_add_impl`/`scatter_add_impl`, the adjoints of `index_select`/`gather`
//!   that [`Tape`](super::tape::Tape) differentiates with), whose defaults use the others.
//! - [`Autodiff`]: parameters, reverse-mode differentiation and in-place updates. Required; a
//!   framework with autograd maps it onto its own (tch, candle), one without wraps its
//!   primitives in core's [`Tape`](super::tape::Tape) and writes none of it.
//! - [`Composites`]: the composites a backend may replace with a native path (fused attention,
//!   log-softmax, AdamW, ...). Every method has a default built from the primitives, so
//!   `impl Composites for MyBackend {}` is a complete implementation.
//!
//! Each [`Backend`](super::Backend) method calls one kernel: `Backend::matmul` checks its
//! arguments and calls `Primitives::matmul_impl`, `Backend::shape` calls `Primitives::shape_impl`;
//! the families replace per-op methods (`Backend::add` calls `Primitives::binary(BinaryOp::Add,
//! ..)`). The kernels' names never clash with the user-facing ones, so users import `Backend`
//! alone, and implementors see at a glance which methods are theirs.
//!
//! Every trait is declared through one macro that also writes its implementation for `&K`, so a
//! shared reference to a backend forwards every method, overrides included, and no method can be
//! forgotten there (models hold their backend in an `Rc`; `Rc::new(&backend)` builds one on a
//! borrowed backend).
//!
//! Kernels that read values (index ranges of `index_select`/`gather`, non-finite values cast to
//! I64) still check those values themselves: only the backend reads them cheaply. They report
//! them with [`crate::Error::IndexOutOfRange`] and [`crate::Error::NonFinite`].

use alloc::vec::Vec;
use core::fmt::Debug;

use super::families::{BinaryOp, CompareOp, ReduceOp, UnaryOp};
use super::shape::split_at_dim;
use super::{DType, nn, ops};
use crate::Result;
use crate::optimizer::{adamw, clip};

/// Declares a kernel trait and its forwarding implementation for `&K`, from one list of
/// methods (each either required, `;`, or provided, `{ body }`).
macro_rules! kernel_trait {
    (
        $(#[$trait_meta:meta])*
        pub trait $trait:ident $(: $super:ident)? {
            types {
                $($(#[$type_meta:meta])* type $assoc:ident: $b0:ident $(+ $bn:ident)*;)*
            }
            required {
                $($(#[$req_meta:meta])* fn $req:ident(&$req_self:ident $(, $req_arg:ident: $req_ty:ty)* $(,)?) -> $req_ret:ty;)*
            }
            provided {
                $(
                    $(#[$meta:meta])*
                    fn $name:ident(&$self:ident $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty $body:block
                )*
            }
        }
    ) => {
        $(#[$trait_meta])*
        pub trait $trait $(: $super)? {
            $($(#[$type_meta])* type $assoc: $b0 $(+ $bn)*;)*
            $($(#[$req_meta])* fn $req(&$req_self $(, $req_arg: $req_ty)*) -> $req_ret;)*
            $($(#[$meta])* fn $name(&$self $(, $arg: $ty)*) -> $ret $body)*
        }

        impl<K: $trait + ?Sized> $trait for &K {
            $(type $assoc = K::$assoc;)*
            $(
                #[inline]
                fn $req(&$req_self $(, $req_arg: $req_ty)*) -> $req_ret {
                    K::$req(*$req_self $(, $req_arg)*)
                }
            )*
            $(
                #[inline]
                fn $name(&$self $(, $arg: $ty)*) -> $ret {
                    K::$name(*$self $(, $arg)*)
                }
            )*
        }
    };
}

kernel_trait! {
    /// The forward ops of a backend. See the [module docs](self): arguments arrive checked (the
    /// conditions each [`Backend`](super::Backend) method documents hold), so a kernel only
    /// computes. Results of float ops have the operands' dtype; a kernel may compute wider and
    /// round (or, as the reference, never round).
    pub trait Primitives {
        types {
            /// A tensor handle: cheap to clone (clones share storage), immutable except through
            /// `assign_param` and `write_slice`, which every clone observes.
            type Tensor: Clone + Debug;
            /// Where tensors live (e.g. a CPU or a CUDA ordinal).
            type Device: Clone + Debug;
        }
        required {
            /// A short name for reports, e.g. `"reference"`, `"tch"`, `"candle"`.
            fn name_impl(&self) -> &'static str;
            /// The device this backend creates tensors on.
            fn device_impl(&self) -> Self::Device;
            /// Waits until all queued work is finished; a no-op on synchronous backends.
            fn sync_impl(&self) -> Result<()>;
            /// A float tensor of `dtype` from row-major `data` (length checked against `shape`).
            fn tensor_f32_impl(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<Self::Tensor>;
            /// An I64 tensor (length checked).
            fn tensor_i64_impl(&self, data: &[i64], shape: &[usize]) -> Result<Self::Tensor>;
            /// The values of a tensor of any dtype, row-major, as f32 (Bool gives 0 and 1).
            fn to_host_f32_impl(&self, t: &Self::Tensor) -> Result<Vec<f32>>;
            /// The values of an I64 or Bool tensor (checked: not a float tensor).
            fn to_host_i64_impl(&self, t: &Self::Tensor) -> Result<Vec<i64>>;
            /// The shape of a tensor.
            fn shape_impl(&self, t: &Self::Tensor) -> Vec<usize>;
            /// The dtype a tensor was created with.
            fn dtype_impl(&self, t: &Self::Tensor) -> DType;
            /// A tensor filled with `value` (checked: for I64 an integer within ±2^53; for Bool the
            /// caller passes 0 or 1).
            fn full_impl(&self, shape: &[usize], value: f64, dtype: DType) -> Result<Self::Tensor>;
            /// A [`UnaryOp`] on a float tensor.
            fn unary(&self, op: UnaryOp, x: &Self::Tensor) -> Result<Self::Tensor>;
            /// A [`BinaryOp`] on two float tensors of one dtype that broadcast together.
            fn binary(&self, op: BinaryOp, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
            /// A [`CompareOp`] on two tensors of one dtype that broadcast together, giving Bool.
            fn compare(&self, op: CompareOp, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
            /// `cond ? a : b` (Bool `cond`, branches of one dtype, all three broadcasting); the
            /// untaken branch neither reaches the result nor receives gradient.
            fn where_impl(&self, cond: &Self::Tensor, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
            /// A [`ReduceOp`] on a float tensor along a valid `dim` (non-empty for `Max`).
            fn reduce(&self, op: ReduceOp, x: &Self::Tensor, dim: usize, keepdim: bool) -> Result<Self::Tensor>;
            /// Inclusive cumulative sum of a float tensor along a valid `dim`.
            fn cumsum_impl(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor>;
            /// Stable sort of a float or I64 tensor along a valid `dim`: values and I64 indices.
            fn sort_impl(&self, x: &Self::Tensor, dim: usize, descending: bool) -> Result<(Self::Tensor, Self::Tensor)>;
            /// The same values with a shape of equal element count.
            fn reshape_impl(&self, x: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor>;
            /// Swaps two valid dimensions.
            fn transpose_impl(&self, x: &Self::Tensor, d0: usize, d1: usize) -> Result<Self::Tensor>;
            /// The slice `start..start + len` (in bounds) along `dim`.
            fn narrow_impl(&self, x: &Self::Tensor, dim: usize, start: usize, len: usize) -> Result<Self::Tensor>;
            /// Concatenation of at least one tensor, one dtype, equal sizes but along `dim`.
            fn cat_impl(&self, xs: &[Self::Tensor], dim: usize) -> Result<Self::Tensor>;
            /// Entries `idx` (1-D I64) along a valid `dim`; the kernel checks the index values.
            fn index_select_impl(&self, x: &Self::Tensor, dim: usize, idx: &Self::Tensor) -> Result<Self::Tensor>;
            /// PyTorch `gather` (I64 `idx` of `x`'s rank and sizes but along `dim`); the kernel
            /// checks the index values.
            fn gather_impl(&self, x: &Self::Tensor, dim: usize, idx: &Self::Tensor) -> Result<Self::Tensor>;
            /// Writes `src` into `dst` at `start` along `dim` in place (fits, one dtype, `dst` not
            /// a parameter and not depending on one).
            fn write_slice_impl(&self, dst: &Self::Tensor, dim: usize, start: usize, src: &Self::Tensor) -> Result<()>;
            /// Batched matrix product of float operands of one dtype with compatible shapes.
            fn matmul_impl(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
            /// Converts to another dtype (the checked layer returns `x` itself for its own dtype);
            /// the kernel checks for non-finite values cast to I64.
            fn cast_impl(&self, x: &Self::Tensor, dtype: DType) -> Result<Self::Tensor>;
        }
        provided {
            /// As `tensor_f32_impl` from f64 data. Default: converts to f32 first.
            fn tensor_f64_impl(&self, data: &[f64], shape: &[usize], dtype: DType) -> Result<Self::Tensor> {
                let data: Vec<f32> = data.iter().map(|&x| x as f32).collect();
                self.tensor_f32_impl(&data, shape, dtype)
            }
            /// A Bool tensor (length checked). Default: an I64 tensor cast to Bool.
            fn tensor_bool_impl(&self, data: &[bool], shape: &[usize]) -> Result<Self::Tensor> {
                let data: Vec<i64> = data.iter().map(|&b| i64::from(b)).collect();
                self.cast_impl(&self.tensor_i64_impl(&data, shape)?, DType::Bool)
            }
            /// As [`Primitives::to_host_f32_impl`], as f64. Default: widens the f32 values.
            fn to_host_f64_impl(&self, t: &Self::Tensor) -> Result<Vec<f64>> {
                Ok(self.to_host_f32_impl(t)?.into_iter().map(f64::from).collect())
            }
            /// `dst` plus `src` added along `dim` at the 1-D I64 positions `idx`: the result is
            /// `dst` with `src[.., k, ..]` added to `dst[.., idx[k], ..]` (repeats accumulate);
            /// `src` has `dst`'s shape with `idx.len()` at `dim`, both one float dtype. The adjoint
            /// of `index_select`, which [`Tape`](super::tape::Tape) differentiates with it; the
            /// indices arrive in range (the forward `index_select` checked them). Default: a one-hot
            /// `[dst.shape[dim], idx.len()]` matrix (`compare` of the indices with `0..size`, cast
            /// to the dtype) multiplied into `src`, memory `size × idx.len()`; a NaN or inf in
            /// `src` spreads to every row of `dim` (0 × NaN), so a forward-only backend may
            /// override it with a loop.
            fn index_add_impl(&self, dst: &Self::Tensor, dim: usize, idx: &Self::Tensor, src: &Self::Tensor) -> Result<Self::Tensor> {
                let shape = self.shape_impl(dst);
                let (outer, size, inner) = split_at_dim(&shape, dim);
                let picks = self.shape_impl(idx).iter().product::<usize>();
                let rows: Vec<i64> = (0..size as i64).collect();
                let rows = self.tensor_i64_impl(&rows, &[size, 1])?;
                let hit = self.compare(CompareOp::Eq, &rows, &self.reshape_impl(idx, &[1, picks])?)?;
                let onehot = self.cast_impl(&hit, self.dtype_impl(src))?;
                let added = self.matmul_impl(&onehot, &self.reshape_impl(src, &[outer, picks, inner])?)?;
                self.binary(BinaryOp::Add, dst, &self.reshape_impl(&added, &shape)?)
            }
            /// `dst` plus `src` scattered along `dim` (PyTorch `scatter_add`): `src[p]` is added to
            /// `dst` at `p` with coordinate `dim` replaced by `idx[p]`; `idx` (I64) and `src` share
            /// one shape, equal to `dst`'s but along `dim`. The adjoint of `gather`, which
            /// [`Tape`](super::tape::Tape) differentiates with it; the indices arrive in range.
            /// Default: `where_(idx == j, src, 0)` summed over the positions, for every `j` in
            /// `0..dst.shape[dim]` (memory `src.len() × dst.shape[dim]`, no NaN spreading).
            fn scatter_add_impl(&self, dst: &Self::Tensor, dim: usize, idx: &Self::Tensor, src: &Self::Tensor) -> Result<Self::Tensor> {
                let shape = self.shape_impl(dst);
                let (outer, size, inner) = split_at_dim(&shape, dim);
                let picks = self.shape_impl(idx)[dim];
                let targets: Vec<i64> = (0..size as i64).collect();
                let targets = self.tensor_i64_impl(&targets, &[1, 1, size, 1])?;
                let hit = self.compare(CompareOp::Eq, &self.reshape_impl(idx, &[outer, picks, 1, inner])?, &targets)?;
                let zero = self.full_impl(&[], 0.0, self.dtype_impl(src))?;
                let spread = self.where_impl(&hit, &self.reshape_impl(src, &[outer, picks, 1, inner])?, &zero)?;
                let added = self.reduce(ReduceOp::Sum, &spread, 1, false)?;
                self.binary(BinaryOp::Add, dst, &self.reshape_impl(&added, &shape)?)
            }
        }
    }
}

kernel_trait! {
    /// Reverse-mode autodiff, functional: [`Backend::param`](super::Backend::param) marks a
    /// leaf, `backward` returns a fresh gradient store per loss. A framework with autograd maps
    /// these onto its own; a forward-only engine gets them from [`Tape`](super::tape::Tape).
    pub trait Autodiff: Primitives {
        types {
            /// The gradients computed by one `backward` call, read with [`Autodiff::grad_impl`].
            type Grads: Sized;
        }
        required {
            /// A trainable leaf holding a copy of `t`'s values (checked: a float dtype).
            fn param_impl(&self, t: &Self::Tensor) -> Result<Self::Tensor>;
            /// The same values cut from the graph: no gradient flows through the result.
            fn detach_impl(&self, t: &Self::Tensor) -> Result<Self::Tensor>;
            /// Differentiates `loss` (checked: one float element) with respect to every parameter
            /// it depends on; each call is fresh (nothing accumulates across calls).
            fn backward_impl(&self, loss: &Self::Tensor) -> Result<Self::Grads>;
            /// The gradient of the loss with respect to `param` (its shape and dtype, no graph);
            /// `None` when the loss does not depend on it.
            fn grad_impl(&self, grads: &Self::Grads, param: &Self::Tensor) -> Result<Option<Self::Tensor>>;
            /// Whether `t` came from `param_impl` (a trainable leaf).
            fn is_param(&self, t: &Self::Tensor) -> bool;
            /// Whether gradients flow into `t`: a parameter, or computed from one with recording on.
            fn requires_grad(&self, t: &Self::Tensor) -> bool;
            /// Replaces a parameter's values in place, every clone seeing them (checked: `param` is
            /// a parameter, `value` a float tensor of its shape; the kernel casts to its dtype).
            fn assign_param_impl(&self, param: &Self::Tensor, value: &Self::Tensor) -> Result<()>;
            /// Turns graph recording on or off for later ops; returns the previous state.
            fn set_grad_enabled_impl(&self, enabled: bool) -> bool;
        }
        provided {

        }
    }
}

kernel_trait! {
    /// The composites a backend may replace with a native path; each default is the
    /// composition [`Backend`](super::Backend)'s docs state, built from the primitives, and an
    /// override must give the same values and gradients (the conformance suite compares them).
    /// Arguments arrive checked, as for [`Primitives`].
    pub trait Composites: Autodiff {
        types {}
        required {}
        provided {
            /// `x - logsumexp(x)` along `dim`.
            fn log_softmax_impl(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor> {
                ops::log_softmax(self, x, dim)
            }
            /// `softmax` along `dim`.
            fn softmax_impl(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor> {
                ops::softmax(self, x, dim)
            }
            /// `log(sum(exp(x)))` along `dim`.
            fn logsumexp_impl(&self, x: &Self::Tensor, dim: usize, keepdim: bool) -> Result<Self::Tensor> {
                ops::logsumexp(self, x, dim, keepdim)
            }
            /// `x * sigmoid(x)`.
            fn silu_impl(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
                ops::silu(self, x)
            }
            /// Log-probabilities of chosen tokens.
            fn selective_log_prob_impl(&self, logits: &Self::Tensor, targets: &Self::Tensor) -> Result<Self::Tensor> {
                ops::selective_log_prob(self, logits, targets)
            }
            /// `x @ wᵀ + bias`.
            fn linear_impl(&self, x: &Self::Tensor, w: &Self::Tensor, bias: Option<&Self::Tensor>) -> Result<Self::Tensor> {
                nn::linear(self, x, w, bias)
            }
            /// Qwen2 RMSNorm over the last dimension.
            fn rms_norm_impl(&self, x: &Self::Tensor, weight: &Self::Tensor, eps: f64) -> Result<Self::Tensor> {
                nn::rms_norm(self, x, weight, eps)
            }
            /// Masked scaled dot-product attention with GQA.
            fn attention_impl(
                &self,
                q: &Self::Tensor,
                k: &Self::Tensor,
                v: &Self::Tensor,
                mask: &Self::Tensor,
            ) -> Result<Self::Tensor> {
                nn::attention(self, q, k, v, mask)
            }
            /// Causal attention over packed rows.
            fn causal_attention_impl(
                &self,
                q: &Self::Tensor,
                k: &Self::Tensor,
                v: &Self::Tensor,
                segment_ids: &Self::Tensor,
            ) -> Result<Self::Tensor> {
                nn::causal_attention(self, q, k, v, segment_ids)
            }
            /// One AdamW update of one parameter; `m` and `v` are consumed (their storage may be
            /// reused for the new moments).
            fn adamw_update_impl(
                &self,
                param: &Self::Tensor,
                grad: &Self::Tensor,
                m: Self::Tensor,
                v: Self::Tensor,
                hp: &adamw::AdamWStep,
            ) -> Result<(Self::Tensor, Self::Tensor)> {
                adamw::adamw_update(self, param, grad, &m, &v, hp)
            }
            /// Global L2 gradient clipping.
            fn clip_grad_norm_impl(&self, grads: &[Self::Tensor], max_norm: f64) -> Result<(Vec<Self::Tensor>, f64)> {
                clip::clip_grad_norm(self, grads, max_norm)
            }
        }
    }
}
