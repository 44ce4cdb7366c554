//! The [`Backend`] trait: the checked, user-facing API that the model, sampler, optimizer and
//! losses are written in, over the kernels a backend implements ([`super::kernels`]).

use alloc::vec::Vec;

use super::families::{BinaryOp, CompareOp, ReduceOp, UnaryOp};
use super::kernels::{Composites, Primitives};
use super::shape::{check_data_len, check_float, check_range};
use super::{DType, check, nn, ops};
use crate::optimizer::adamw;
use crate::ppo::{policy_loss, value_loss};
use crate::{Error, Result};

/// A tensor backend as its users see it: every op of orz-rs, each checking its arguments (in
/// [`check`]) before it calls the backend's kernel, so that every backend rejects bad input alike
/// and kernels may assume valid shapes and dtypes. See the [module docs](super) for the
/// conventions every method follows (shapes, broadcasting, dtypes, errors, gradients).
///
/// Implemented for every backend, by the blanket impl below: a backend implements
/// [`Primitives`], [`Autodiff`](super::Autodiff) and [`Composites`], never this trait, and cannot skip a check.
/// Users import this trait alone: every method a model, sampler or optimizer calls is here, and
/// the kernel traits' methods have names of their own (`*_impl` and the op families).
///
/// Methods are grouped: host transfer and creation, element-wise arithmetic, unary functions,
/// comparisons and selection, reductions, layout and indexing, autodiff; then the composites
/// (default bodies in [`ops`] and [`nn`], the PPO losses in [`policy_loss`] and [`value_loss`],
/// AdamW and clipping in [`adamw`] and [`clip`](crate::optimizer::clip), all built from the primitives; those in
/// [`Composites`] may be replaced by a backend's native path, and the conformance suite checks
/// defaults and overrides alike).
///
/// "Gradient" below states the vector-Jacobian product: given `g`, the gradient of the loss with
/// respect to the result, what flows to each differentiable input. Inputs that receive no
/// gradient are named. A composite whose doc states no gradient is differentiated as its
/// formula, with respect to every float tensor argument; an override must give the same
/// gradients as the default (candle's fused kernels that record no backward do not qualify).
pub trait Backend: Composites {
    // ---- identity and queries (nothing to check) -----------------------------------------

    /// A short name for reports, e.g. `"reference"`, `"tch"`, `"candle"`.
    fn name(&self) -> &'static str {
        self.name_impl()
    }
    /// The device this backend creates tensors on.
    fn device(&self) -> Self::Device {
        self.device_impl()
    }
    /// Waits until all queued work is finished (timed regions end with it); a no-op on
    /// synchronous backends.
    fn sync(&self) -> Result<()> {
        self.sync_impl()
    }
    /// The shape of a tensor.
    fn shape(&self, t: &Self::Tensor) -> Vec<usize> {
        self.shape_impl(t)
    }
    /// The dtype of a tensor (the dtype it was created with, even where a backend computes
    /// wider, as the reference does).
    fn dtype(&self, t: &Self::Tensor) -> DType {
        self.dtype_impl(t)
    }
    /// The values of a tensor of any dtype, row-major, as f32 (Bool gives 0 and 1).
    fn to_host_f32(&self, t: &Self::Tensor) -> Result<Vec<f32>> {
        self.to_host_f32_impl(t)
    }
    /// As [`Backend::to_host_f32`], as f64 (exact on the reference).
    fn to_host_f64(&self, t: &Self::Tensor) -> Result<Vec<f64>> {
        self.to_host_f64_impl(t)
    }

    // ---- host transfer and creation ------------------------------------------------------

    /// A tensor of float dtype `dtype` holding `data` (row-major) with shape `shape`; values are
    /// rounded to `dtype` (the reference keeps them exact). Errors: `data.len()` differs from the
    /// shape's element count; `dtype` is not a float dtype. Not differentiable (a constant).
    fn tensor_f32(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<Self::Tensor> {
        check::new_float("tensor_f32", data.len(), shape, dtype)?;
        self.tensor_f32_impl(data, shape, dtype)
    }
    /// As [`Backend::tensor_f32`] from f64 data (the oracle's input path). Default: converts
    /// to f32 first.
    fn tensor_f64(&self, data: &[f64], shape: &[usize], dtype: DType) -> Result<Self::Tensor> {
        check::new_float("tensor_f64", data.len(), shape, dtype)?;
        self.tensor_f64_impl(data, shape, dtype)
    }
    /// An I64 tensor holding `data` with shape `shape`. Errors as [`Backend::tensor_f32`].
    fn tensor_i64(&self, data: &[i64], shape: &[usize]) -> Result<Self::Tensor> {
        check_data_len("tensor_i64", data.len(), shape)?;
        self.tensor_i64_impl(data, shape)
    }
    /// A Bool tensor (a mask) holding `data`. Default: an I64 tensor cast to Bool.
    fn tensor_bool(&self, data: &[bool], shape: &[usize]) -> Result<Self::Tensor> {
        check_data_len("tensor_bool", data.len(), shape)?;
        self.tensor_bool_impl(data, shape)
    }
    /// The values of an I64 or Bool tensor, row-major (Bool gives 0 and 1); a float tensor is a
    /// dtype error (cast it first).
    fn to_host_i64(&self, t: &Self::Tensor) -> Result<Vec<i64>> {
        check::host_i64(self.dtype(t))?;
        self.to_host_i64_impl(t)
    }
    /// A tensor of shape `shape` and any dtype filled with `value` (for I64, `value` must be an
    /// integer; for Bool, nonzero is true). Not differentiable.
    fn full(&self, shape: &[usize], value: f64, dtype: DType) -> Result<Self::Tensor> {
        let value = check::full(shape, value, dtype)?;
        self.full_impl(shape, value, dtype)
    }

    // ---- element-wise arithmetic (float, NumPy broadcasting) -------------------------------

    /// `a + b`, broadcast. Both operands share one float dtype, which the result has.
    /// Gradient: `g` to each, summed over the dimensions that operand was broadcast along (the
    /// same reduction holds for every broadcasting op below).
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.binary_checked(BinaryOp::Add, a, b)
    }
    /// `a - b`, broadcast. Gradient: `g` to `a`, `-g` to `b`.
    fn sub(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.binary_checked(BinaryOp::Sub, a, b)
    }
    /// `a * b`, broadcast. Gradient: `g * b` to `a`, `g * a` to `b`.
    fn mul(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.binary_checked(BinaryOp::Mul, a, b)
    }
    /// `a / b` (IEEE: division by 0 gives ±inf or NaN), broadcast. Gradient: `g / b` to `a`,
    /// `-g * a / b²` to `b`.
    fn div(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.binary_checked(BinaryOp::Div, a, b)
    }
    /// Element-wise maximum, broadcast; a NaN operand gives NaN. Gradient (PyTorch
    /// `torch.maximum`): `g` to the larger operand; on a tie, `g / 2` to each.
    fn maximum(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.binary_checked(BinaryOp::Maximum, a, b)
    }
    /// Element-wise minimum, broadcast; a NaN operand gives NaN. Gradient: `g` to the smaller
    /// operand; on a tie `g / 2` to each (PyTorch `torch.minimum`).
    fn minimum(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.binary_checked(BinaryOp::Minimum, a, b)
    }

    // ---- unary functions (float; result has the input's shape and dtype) -------------------

    /// `-x`. Gradient: `-g`.
    fn neg(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.unary_checked(UnaryOp::Neg, x)
    }
    /// `e^x`. Gradient: `g * e^x`.
    fn exp(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.unary_checked(UnaryOp::Exp, x)
    }
    /// Natural logarithm (`-inf` at 0, NaN below). Gradient: `g / x`.
    fn log(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.unary_checked(UnaryOp::Log, x)
    }
    /// Square root. Gradient: `g / (2 sqrt(x))` (inf at 0, as in PyTorch).
    fn sqrt(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.unary_checked(UnaryOp::Sqrt, x)
    }
    /// Logistic function `1 / (1 + e^-x)`. Gradient: `g * s * (1 - s)`.
    fn sigmoid(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.unary_checked(UnaryOp::Sigmoid, x)
    }
    /// Hyperbolic tangent. Gradient: `g * (1 - tanh²(x))`.
    fn tanh(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.unary_checked(UnaryOp::Tanh, x)
    }
    /// `x^p` for a scalar exponent (NaN for negative `x` and non-integer `p`). Gradient:
    /// `g * p * x^(p-1)`.
    fn powf(&self, x: &Self::Tensor, p: f64) -> Result<Self::Tensor> {
        self.unary_checked(UnaryOp::Powf(p), x)
    }
    /// `x * mul + add` with scalar `mul`, `add`. Gradient: `g * mul`.
    fn affine(&self, x: &Self::Tensor, mul: f64, add: f64) -> Result<Self::Tensor> {
        self.unary_checked(UnaryOp::Affine { mul, add }, x)
    }
    /// `min(max(x, lo), hi)` with scalar bounds (NaN stays NaN); `lo > hi` or a NaN bound is an
    /// error.
    /// Gradient (PyTorch `clamp`): `g` where `lo <= x <= hi` (inclusive), 0 elsewhere.
    fn clamp(&self, x: &Self::Tensor, lo: f64, hi: f64) -> Result<Self::Tensor> {
        check::clamp_bounds(lo, hi)?;
        self.unary_checked(UnaryOp::Clamp { lo, hi }, x)
    }

    // ---- comparisons and selection ------------------------------------------------------

    /// `a == b` element-wise, broadcast; operands share a dtype (any); the result is Bool.
    /// Not differentiable (no gradient flows into `a` or `b`).
    fn eq(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.compare_checked(CompareOp::Eq, a, b)
    }
    /// `a > b` element-wise (float or I64), broadcast, giving Bool. Not differentiable.
    fn gt(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.compare_checked(CompareOp::Gt, a, b)
    }
    /// `a >= b` element-wise (float or I64), broadcast, giving Bool. Not differentiable.
    fn ge(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.compare_checked(CompareOp::Ge, a, b)
    }
    /// `cond ? a : b` element-wise; `cond` is Bool, `a` and `b` share a dtype (any), all three
    /// broadcast together. Gradient: `g` to `a` where `cond`, to `b` elsewhere, none to `cond`.
    /// A NaN or inf in the branch not taken never reaches the result, and that branch receives
    /// exactly 0 gradient there: this, not a multiplication by a 0/1 mask, is how masks are
    /// applied. (As in PyTorch, a function upstream of the untaken branch whose derivative is
    /// infinite there can still turn that 0 into NaN; keep such inputs finite.)
    fn where_(&self, cond: &Self::Tensor, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        check::where_(self, cond, a, b)?;
        self.where_impl(cond, a, b)
    }

    // ---- reductions (float) -------------------------------------------------------------

    /// Sum along `dim` (kept with size 1 when `keepdim`). Gradient: `g` broadcast back along
    /// `dim`. Summing a dimension of size 0 gives 0.
    fn sum(&self, x: &Self::Tensor, dim: usize, keepdim: bool) -> Result<Self::Tensor> {
        check::along(self, "sum", x, dim, false)?;
        self.reduce(ReduceOp::Sum, x, dim, keepdim)
    }
    /// Maximum along `dim`, NaN propagating (an error on a dimension of size 0). Gradient
    /// (PyTorch `amax`): `g` split evenly among the positions that attain the maximum.
    fn max(&self, x: &Self::Tensor, dim: usize, keepdim: bool) -> Result<Self::Tensor> {
        check::along(self, "max", x, dim, true)?;
        self.reduce(ReduceOp::Max, x, dim, keepdim)
    }
    /// Inclusive cumulative sum along `dim`. Gradient: the reversed cumulative sum of `g`.
    fn cumsum(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor> {
        check::along(self, "cumsum", x, dim, false)?;
        self.cumsum_impl(x, dim)
    }
    /// Stable sort along `dim` (float or I64), ascending or descending, giving `(values,
    /// indices)` where `indices` (I64) are positions along `dim` in the input; equal values keep
    /// their input order; NaN sorts above every number. Gradient: `g` on `values` scattered back
    /// to the positions the values came from; none through `indices`.
    fn sort(&self, x: &Self::Tensor, dim: usize, descending: bool) -> Result<(Self::Tensor, Self::Tensor)> {
        check::sort(self, x, dim)?;
        self.sort_impl(x, dim, descending)
    }

    // ---- layout and indexing (any dtype unless said) ------------------------------------

    /// The same values with another shape of equal element count (row-major order kept).
    /// Gradient: `g` reshaped back.
    fn reshape(&self, x: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor> {
        check::reshape(self, x, shape)?;
        self.reshape_impl(x, shape)
    }
    /// Swaps dimensions `d0` and `d1`. Gradient: `g` transposed back.
    fn transpose(&self, x: &Self::Tensor, d0: usize, d1: usize) -> Result<Self::Tensor> {
        check::transpose(self, x, d0, d1)?;
        self.transpose_impl(x, d0, d1)
    }
    /// The slice `start..start + len` along `dim`. Gradient: `g` placed into that slice of a
    /// zero tensor of the input's shape.
    fn narrow(&self, x: &Self::Tensor, dim: usize, start: usize, len: usize) -> Result<Self::Tensor> {
        check_range("narrow", &self.shape(x), dim, start, len)?;
        self.narrow_impl(x, dim, start, len)
    }
    /// Concatenation along `dim` of tensors (at least one) sharing a dtype and all other sizes.
    /// Gradient: the matching slice of `g` to each input.
    fn cat(&self, xs: &[Self::Tensor], dim: usize) -> Result<Self::Tensor> {
        check::cat(self, xs, dim)?;
        self.cat_impl(xs, dim)
    }
    /// Selects entries `idx` (a 1-D I64 tensor, each in `0..x.shape[dim]`) along `dim`: the
    /// result has `x`'s shape with `shape[dim] = idx.len()` (an embedding lookup with `dim = 0`).
    /// Gradient: `g` scatter-added back (repeated indices accumulate); none to `idx`.
    fn index_select(&self, x: &Self::Tensor, dim: usize, idx: &Self::Tensor) -> Result<Self::Tensor> {
        check::index_select(self, x, dim, idx)?;
        self.index_select_impl(x, dim, idx)
    }
    /// PyTorch `gather` along `dim`: `idx` is I64 with `x`'s rank and `x`'s sizes in every
    /// dimension but `dim` (any size there); the result has `idx`'s shape, and its element at
    /// multi-index `p` is `x` at `p` with coordinate `dim` replaced by `idx[p]` (e.g. token
    /// log-probs: `gather(logp [b, s, V], 2, targets [b, s, 1])`). Gradient: `g` scatter-added
    /// back; none to `idx`.
    fn gather(&self, x: &Self::Tensor, dim: usize, idx: &Self::Tensor) -> Result<Self::Tensor> {
        check::gather(self, x, dim, idx)?;
        self.gather_impl(x, dim, idx)
    }
    /// Writes `src` into `dst[.., start..start + src.shape[dim], ..]` in place (a KV-cache
    /// append): `src` has `dst`'s dtype and sizes except along `dim`. Every clone of `dst` sees
    /// the write. No gradient: `dst` must not be a parameter or depend on one.
    ///
    /// Aliasing: results of `reshape`, `transpose`, `narrow` and `detach` may be views sharing
    /// storage with their input (libtorch), so write only into tensors with storage of their own
    /// (from `full`, `zeros`, `tensor_*`, `cat`, `index_select`, or arithmetic), and do not keep
    /// views of `dst` across a write. To copy a cache (one prompt's prefill shared by n samples),
    /// `index_select` it. The reference never aliases (it copies on write).
    fn write_slice(&self, dst: &Self::Tensor, dim: usize, start: usize, src: &Self::Tensor) -> Result<()> {
        if self.is_param(dst) || self.requires_grad(dst) {
            return Err(Error::invalid(
                "write_slice",
                "the destination is a parameter or depends on one (no gradient through writes)",
            ));
        }
        check::write_slice(self, dst, dim, start, src)?;
        self.write_slice_impl(dst, dim, start, src)
    }
    /// Batched matrix product `[..., m, k] x [..., k, n] -> [..., m, n]`: both ranks at least 2
    /// (no vector promotion), batch dimensions broadcast, one float dtype. Gradient: `g bᵀ` to
    /// `a` and `aᵀ g` to `b`, summed over broadcast batch dimensions.
    fn matmul(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        check::matmul(self, a, b)?;
        self.matmul_impl(a, b)
    }
    /// Converts to `dtype`. Float to float rounds (the reference keeps values exact); float to
    /// I64 truncates toward zero (a non-finite value is an error); anything to Bool is `!= 0`;
    /// Bool to a number gives 0 or 1. Gradient: between float dtypes, `g` cast back to the input
    /// dtype; none across I64 or Bool.
    fn cast(&self, x: &Self::Tensor, dtype: DType) -> Result<Self::Tensor> {
        if self.dtype(x) == dtype {
            return Ok(x.clone());
        }
        self.cast_impl(x, dtype)
    }

    // ---- autodiff ------------------------------------------------------------------------

    /// A trainable leaf holding `t`'s values (float dtype): gradients of later
    /// [`Backend::backward`] calls are reported for it by [`Backend::grad`].
    fn param(&self, t: &Self::Tensor) -> Result<Self::Tensor> {
        check_float("param", "the initial value", self.dtype(t))?;
        self.param_impl(t)
    }
    /// Reverse-mode differentiation of `loss` (a float tensor with exactly one element, any
    /// rank) with respect to every parameter it depends on. Each call returns fresh gradients
    /// (nothing accumulates across calls; accumulate micro-batches by adding gradients).
    fn backward(&self, loss: &Self::Tensor) -> Result<Self::Grads> {
        check::loss(self, loss)?;
        self.backward_impl(loss)
    }
    /// Replaces a parameter's values in place (an optimizer step): every clone of the handle
    /// sees `value` (same shape; cast to the parameter's dtype). Recorded by no graph; graphs
    /// built before the call keep the old values. Errors unless `param` came from
    /// [`Backend::param`].
    fn assign_param(&self, param: &Self::Tensor, value: &Self::Tensor) -> Result<()> {
        if !self.is_param(param) {
            return Err(Error::invalid("assign_param", "the target is not a parameter (see Backend::param)"));
        }
        check::assign_value(self, param, value)?;
        self.assign_param_impl(param, value)
    }

    /// The same values cut from the graph: no gradient flows through the result.
    fn detach(&self, t: &Self::Tensor) -> Result<Self::Tensor> {
        self.detach_impl(t)
    }
    /// The gradient of the loss with respect to `param`, with `param`'s shape and dtype and no
    /// graph; `None` when the loss does not depend on `param` (a parameter the loss reaches only
    /// through zero-gradient paths gets `Some` zeros).
    fn grad(&self, grads: &Self::Grads, param: &Self::Tensor) -> Result<Option<Self::Tensor>> {
        self.grad_impl(grads, param)
    }
    /// Turns graph recording on or off for later operations on this backend (off: results are
    /// detached, as under PyTorch's `no_grad`; use it for sampling); returns the previous state.
    fn set_grad_enabled(&self, enabled: bool) -> bool {
        self.set_grad_enabled_impl(enabled)
    }

    // ---- provided: creation and layout helpers ------------------------------------------

    /// Zeros of any dtype.
    fn zeros(&self, shape: &[usize], dtype: DType) -> Result<Self::Tensor> {
        self.full(shape, 0.0, dtype)
    }
    /// Inserts a dimension of size 1 at `dim` (`0..=rank`). Gradient: reshaped back.
    fn unsqueeze(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor> {
        ops::unsqueeze(self, x, dim)
    }
    /// Removes dimension `dim`, which must have size 1. Gradient: reshaped back.
    fn squeeze(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor> {
        ops::squeeze(self, x, dim)
    }
    /// Broadcasts `x` to `shape` (NumPy rules; the result must have exactly `shape`).
    /// Gradient: `g` summed over the broadcast dimensions.
    fn broadcast_to(&self, x: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor> {
        ops::broadcast_to(self, x, shape)
    }
    /// `a < b` (Bool), as [`Backend::gt`] with the operands swapped.
    fn lt(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.gt(b, a)
    }
    /// `a <= b` (Bool), as [`Backend::ge`] with the operands swapped.
    fn le(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.ge(b, a)
    }
    /// Element-wise `a && b` of two Bool masks, broadcast.
    fn logical_and(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        ops::logical_and(self, a, b)
    }
    /// The sum of all elements, as a scalar (shape `[]`). Gradient: `g` to every element.
    fn sum_all(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        ops::sum_all(self, x)
    }
    /// Index of the maximum along `dim` (I64; the first one on ties). Not differentiable.
    fn argmax(&self, x: &Self::Tensor, dim: usize, keepdim: bool) -> Result<Self::Tensor> {
        ops::argmax(self, x, dim, keepdim)
    }
    /// Embedding lookup: rows `ids` (I64, any shape) of `weight` (`[vocab, hidden]`), giving
    /// `ids.shape + [hidden]`. Gradient: scatter-added into the looked-up rows of `weight`.
    fn embedding(&self, weight: &Self::Tensor, ids: &Self::Tensor) -> Result<Self::Tensor> {
        nn::embedding(self, weight, ids)
    }

    // ---- provided: math composites ----------------------------------------------------

    /// Mean along `dim` (sum / size). Gradient: `g / size` to every element of the dimension.
    fn mean(&self, x: &Self::Tensor, dim: usize, keepdim: bool) -> Result<Self::Tensor> {
        ops::mean(self, x, dim, keepdim)
    }
    /// `log(sum(exp(x)))` along `dim`, stabilized by the (detached) maximum. Gradient:
    /// `g * softmax(x)`.
    fn logsumexp(&self, x: &Self::Tensor, dim: usize, keepdim: bool) -> Result<Self::Tensor> {
        check::along(self, "logsumexp", x, dim, false)?;
        self.logsumexp_impl(x, dim, keepdim)
    }
    /// `x - logsumexp(x)` along `dim` (shape and dtype of `x`), computed as
    /// `(x - m) - log(sum(exp(x - m)))` so that a huge `|m|` does not swallow the log term.
    /// Gradient: `g - softmax(x) * sum(g)` along `dim`.
    fn log_softmax(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor> {
        check::along(self, "log_softmax", x, dim, false)?;
        self.log_softmax_impl(x, dim)
    }
    /// `exp(x - m) / sum(exp(x - m))` along `dim` (`m` the maximum). Gradient:
    /// `s * (g - sum(g * s))` along `dim`.
    fn softmax(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor> {
        check::along(self, "softmax", x, dim, false)?;
        self.softmax_impl(x, dim)
    }
    /// `x * sigmoid(x)`. Gradient: `g * (s + x s (1 - s))`.
    fn silu(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        check::float(self, "silu", x)?;
        self.silu_impl(x)
    }
    /// Sum of `x` where the Bool `mask` (same shape as `x`) is true, over `dim` (`None`: all
    /// elements, giving a scalar `[]`). Masked-out elements contribute nothing, not even a NaN.
    /// Gradient: `g` where the mask is true, 0 elsewhere.
    fn masked_sum(&self, x: &Self::Tensor, mask: &Self::Tensor, dim: Option<usize>) -> Result<Self::Tensor> {
        ops::masked_sum(self, x, mask, dim)
    }
    /// Mean of `x` over the true positions of `mask`: `masked_sum / max(count, 1)` (0 when
    /// nothing is selected, never NaN). Gradient: `g / count` where the mask is true.
    fn masked_mean(&self, x: &Self::Tensor, mask: &Self::Tensor, dim: Option<usize>) -> Result<Self::Tensor> {
        ops::masked_mean(self, x, mask, dim)
    }
    /// Log-probabilities of chosen tokens: `log_softmax(logits)[..., targets[...]]` for logits
    /// `[..., vocab]` and I64 targets `[...]`, giving `[...]`. Backends may fuse it (no need to
    /// materialize the full log-softmax). Gradient: `g * (onehot(target) - softmax(logits))`.
    fn selective_log_prob(&self, logits: &Self::Tensor, targets: &Self::Tensor) -> Result<Self::Tensor> {
        check::selective_log_prob(self, logits, targets)?;
        self.selective_log_prob_impl(logits, targets)
    }

    // ---- provided: transformer building blocks (Qwen2 / Hugging Face conventions) -----------

    /// `x @ wᵀ + bias` with Hugging Face weight layout: `x [..., in]`, `w [out, in]`, optional
    /// `bias [out]`, giving `[..., out]`.
    fn linear(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: Option<&Self::Tensor>,
    ) -> Result<Self::Tensor> {
        check::linear(self, x, w, bias)?;
        self.linear_impl(x, w, bias)
    }
    /// Qwen2 RMSNorm over the last dimension, computed in f32:
    /// `weight * cast(x32 * rsqrt(mean(x32²) + eps), x.dtype)` with `x32 = cast(x, f32)`;
    /// `weight [hidden]` has `x`'s dtype.
    fn rms_norm(&self, x: &Self::Tensor, weight: &Self::Tensor, eps: f64) -> Result<Self::Tensor> {
        check::rms_norm(self, x, weight)?;
        self.rms_norm_impl(x, weight, eps)
    }
    /// Rotary position embedding in Hugging Face's rotate-half layout:
    /// `x * cos + rotate_half(x) * sin`, `rotate_half(x) = cat(-x[..., d/2..], x[..., ..d/2])`,
    /// for `x [batch, heads, seq, d]` and `cos`, `sin` `[batch, seq, d]` (see
    /// [`nn::rope_tables`]), broadcast over heads.
    fn rotary_embedding(
        &self,
        x: &Self::Tensor,
        cos: &Self::Tensor,
        sin: &Self::Tensor,
    ) -> Result<Self::Tensor> {
        nn::rotary_embedding(self, x, cos, sin)
    }
    /// Scaled dot-product attention with a mask: `softmax(q kᵀ / sqrt(d) masked) v` for
    /// `q [b, hq, sq, d]`, `k [b, hkv, skv, d]`, `v [b, hkv, skv, dv]`, Bool `mask`
    /// broadcastable to `[b, hq, sq, skv]` (true = may attend). GQA: `hq` must be a multiple of
    /// `hkv`, query head `h` uses kv head `h / (hq / hkv)` (HF `repeat_kv`). Masked scores are
    /// the dtype's most negative finite value (HF), so a row with no allowed key averages all
    /// values uniformly instead of producing NaN. The softmax runs in f32 and is cast back to
    /// `q`'s dtype (HF eager attention). Result `[b, hq, sq, dv]`.
    fn attention(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        mask: &Self::Tensor,
    ) -> Result<Self::Tensor> {
        check::attention(self, q, k, v, mask)?;
        self.attention_impl(q, k, v, mask)
    }
    /// Causal attention over packed rows: [`Backend::attention`] with `sq = skv = s` where
    /// position `i` attends to `j` iff `j <= i` and `segment_ids[b, i] == segment_ids[b, j]`
    /// (`segment_ids` I64 `[b, s]`); a pack of several samples thus equals each sample run
    /// alone.
    fn causal_attention(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        segment_ids: &Self::Tensor,
    ) -> Result<Self::Tensor> {
        check::causal_attention(self, q, k, v, segment_ids)?;
        self.causal_attention_impl(q, k, v, segment_ids)
    }

    // ---- provided: PPO losses and optimizer ----------------------------------------------

    /// Per-token clipped PPO policy loss (ORZ): `r = exp(logp - logp_old)`,
    /// `-min(r * A, clamp(r, 1 - eps, 1 + eps) * A)`, broadcast. Gradient flows into `logp`
    /// only (`logp_old` and `advantages` are detached), with the `minimum` and `clamp` gradient
    /// conventions above; see [`policy_loss::policy_loss`].
    fn policy_loss(
        &self,
        logp: &Self::Tensor,
        logp_old: &Self::Tensor,
        advantages: &Self::Tensor,
        eps: f64,
    ) -> Result<Self::Tensor> {
        policy_loss::policy_loss(self, logp, logp_old, advantages, eps)
    }
    /// Per-token clipped value loss (ORZ): `V_clip = V_old + clamp(V - V_old, -c, c)`,
    /// `0.5 * max((V_clip - R)², (V - R)²)`, broadcast. Gradient flows into `values` only; see
    /// [`value_loss::value_loss`].
    fn value_loss(
        &self,
        values: &Self::Tensor,
        values_old: &Self::Tensor,
        returns: &Self::Tensor,
        clip: f64,
    ) -> Result<Self::Tensor> {
        value_loss::value_loss(self, values, values_old, returns, clip)
    }
    /// One AdamW update of one parameter (PyTorch `AdamW`, decoupled weight decay, bias
    /// correction): given the f32 moments `m`, `v`, returns the new `(m, v)` (f32) and assigns
    /// the new value to `param`. See [`adamw::adamw_update`] for the formula.
    ///
    /// The moments are **consumed**: a backend may write the new moments into their storage and
    /// return them (orz-tch and orz-candle do, as PyTorch's AdamW updates `exp_avg` in place), so
    /// pass tensors nothing else reads: a tensor's clone may share its storage.
    fn adamw_update(
        &self,
        param: &Self::Tensor,
        grad: &Self::Tensor,
        m: Self::Tensor,
        v: Self::Tensor,
        hp: &adamw::AdamWStep,
    ) -> Result<(Self::Tensor, Self::Tensor)> {
        if !self.is_param(param) {
            return Err(Error::invalid("adamw_update", "the target is not a parameter (see Backend::param)"));
        }
        check::adamw(self, param, grad, &m, &v, hp.step)?;
        self.adamw_update_impl(param, grad, m, v, hp)
    }
    /// Global L2 gradient clipping (PyTorch `clip_grad_norm_`): `norm = sqrt(Σ‖g‖²)` over all
    /// tensors, each scaled by `min(1, max_norm / (norm + 1e-6))` ([`clip_factor`](crate::optimizer::clip::clip_factor)).
    /// Returns the scaled gradients and `norm`; when `norm` is not finite, the gradients come
    /// back unscaled and the caller should skip the step. See [`clip_grad_norm`](crate::optimizer::clip::clip_grad_norm).
    fn clip_grad_norm(&self, grads: &[Self::Tensor], max_norm: f64) -> Result<(Vec<Self::Tensor>, f64)> {
        check::clip(self, grads, max_norm)?;
        self.clip_grad_norm_impl(grads, max_norm)
    }
}

/// The one implementation of [`Backend`]: every backend's, through its kernels.
impl<K: Composites + ?Sized> Backend for K {}

/// The family calls behind the element-wise methods, each after its check.
trait Families: Primitives {
    fn unary_checked(&self, op: UnaryOp, x: &Self::Tensor) -> Result<Self::Tensor> {
        check::float(self, op.name(), x)?;
        self.unary(op, x)
    }
    fn binary_checked(&self, op: BinaryOp, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        check::binary(self, op.name(), a, b)?;
        self.binary(op, a, b)
    }
    fn compare_checked(&self, op: CompareOp, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        check::compare(self, op, a, b)?;
        self.compare(op, a, b)
    }
}

impl<K: Primitives + ?Sized> Families for K {}
