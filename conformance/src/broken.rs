//! Backends that wrap the reference and change one thing, to show that the suite can fail (and
//! one that is correct but rounds like a real low-precision device, to calibrate tolerances).
//!
//! [`Tweaked`] delegates every kernel to [`Reference`]'s, except through the hooks of a
//! [`Tweak`]: a post-processing of every primitive's result, and replacements of `clamp`,
//! `write_slice`, `cumsum`, `softmax` and `rms_norm`. Composites the hooks do not replace run
//! their default bodies on the wrapper, as on any backend.

use orz_core::Result;
use orz_core::backend::{
    Autodiff, Backend, BinaryOp, CompareOp, Composites, DType, Primitives, ReduceOp, UnaryOp, nn, ops,
};
use orz_reference::{Cpu, Grads, Reference, Tensor};

/// What a [`Tweaked`] backend changes; every hook defaults to the reference's behaviour.
pub trait Tweak: Sized {
    /// The backend's name in reports.
    const NAME: &'static str;
    /// Applied to the result of every primitive that returns a tensor (not `param`/`detach`).
    fn output(b: &Tweaked<Self>, t: Tensor) -> Result<Tensor> {
        let _ = b;
        Ok(t)
    }
    /// Replaces `clamp`.
    fn clamp(b: &Tweaked<Self>, x: &Tensor, lo: f64, hi: f64) -> Result<Tensor> {
        b.inner.clamp(x, lo, hi)
    }
    /// Replaces `softmax`.
    fn softmax(b: &Tweaked<Self>, x: &Tensor, dim: usize) -> Result<Tensor> {
        ops::softmax(b, x, dim)
    }
    /// Replaces `write_slice`.
    fn write_slice(b: &Tweaked<Self>, dst: &Tensor, dim: usize, start: usize, src: &Tensor) -> Result<()> {
        b.inner.write_slice(dst, dim, start, src)
    }
    /// Replaces `cumsum`.
    fn cumsum(b: &Tweaked<Self>, x: &Tensor, dim: usize) -> Result<Tensor> {
        b.inner.cumsum(x, dim)
    }
    /// Replaces `rms_norm`.
    fn rms_norm(b: &Tweaked<Self>, x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
        nn::rms_norm(b, x, weight, eps)
    }
    /// Replaces `assign_param` (after `value` was cast to the parameter's dtype and passed
    /// through [`Tweak::output`]).
    fn assign_param(b: &Tweaked<Self>, param: &Tensor, value: &Tensor) -> Result<()> {
        b.inner.assign_param(param, value)
    }
}

/// The reference with the hooks of `T`.
#[derive(Debug, Default)]
pub struct Tweaked<T> {
    /// The wrapped reference.
    pub inner: Reference,
    tweak: core::marker::PhantomData<T>,
}

impl<T: Tweak> Tweaked<T> {
    /// A wrapped reference.
    pub fn new() -> Self {
        Tweaked { inner: Reference::new(), tweak: core::marker::PhantomData }
    }

    fn out(&self, t: Result<Tensor>) -> Result<Tensor> {
        T::output(self, t?)
    }
}

/// `clamp` with its upper bound off by 0.01.
#[derive(Debug, Default)]
pub struct ClampOffByOneHundredth;

impl Tweak for ClampOffByOneHundredth {
    const NAME: &'static str = "broken: clamp hi + 0.01";
    fn clamp(b: &Tweaked<Self>, x: &Tensor, lo: f64, hi: f64) -> Result<Tensor> {
        b.inner.clamp(x, lo, hi + 0.01)
    }
}

/// `rms_norm` computed on detached inputs: right values, no gradient to `x` or `weight` (what
/// candle's fused kernel does).
#[derive(Debug, Default)]
pub struct RmsNormDropsGradient;

impl Tweak for RmsNormDropsGradient {
    const NAME: &'static str = "broken: rms_norm without gradient";
    fn rms_norm(b: &Tweaked<Self>, x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
        nn::rms_norm(b, &b.detach(x)?, &b.detach(weight)?, eps)
    }
}

/// `softmax` of `1.001 · x`: slightly too sharp.
#[derive(Debug, Default)]
pub struct SoftmaxSlightlySharp;

impl Tweak for SoftmaxSlightlySharp {
    const NAME: &'static str = "broken: softmax of 1.001 x";
    fn softmax(b: &Tweaked<Self>, x: &Tensor, dim: usize) -> Result<Tensor> {
        ops::softmax(b, &b.affine(x, 1.001, 0.0)?, dim)
    }
}

/// `write_slice` that writes at offset 0 whatever `start` says: a prefill (which writes from 0)
/// is right, every decode step overwrites the first cached token.
#[derive(Debug, Default)]
pub struct WriteSliceAtZero;

impl Tweak for WriteSliceAtZero {
    const NAME: &'static str = "broken: write_slice at offset 0";
    fn write_slice(b: &Tweaked<Self>, dst: &Tensor, dim: usize, _start: usize, src: &Tensor) -> Result<()> {
        b.inner.write_slice(dst, dim, 0, src)
    }
}

/// `cumsum` that is exclusive (each entry the sum of those before it): off by one.
#[derive(Debug, Default)]
pub struct CumsumExclusive;

impl Tweak for CumsumExclusive {
    const NAME: &'static str = "broken: exclusive cumsum";
    fn cumsum(b: &Tweaked<Self>, x: &Tensor, dim: usize) -> Result<Tensor> {
        b.inner.sub(&b.inner.cumsum(x, dim)?, x)
    }
}

/// `assign_param` that silently drops the write to parameters of more than 64 elements (as an
/// in-place update through a size-limited staging buffer would): the weight matrices and
/// embeddings of a model never move, while every small tensor of the earlier levels does. Only a
/// training step on a real model (level 6) sees it.
#[derive(Debug, Default)]
pub struct AssignDropsLargeWrites;

impl Tweak for AssignDropsLargeWrites {
    const NAME: &'static str = "broken: large assign_param dropped";
    fn assign_param(b: &Tweaked<Self>, param: &Tensor, value: &Tensor) -> Result<()> {
        if param.shape().iter().product::<usize>() > 64 { Ok(()) } else { b.inner.assign_param(param, value) }
    }
}

/// A correct backend that rounds every primitive's result (and every gradient) to its dtype,
/// as a device computing in bf16 or f16 does; gradients pass the rounding straight through. The
/// suite must accept it: it calibrates the tolerances.
#[derive(Debug, Default)]
pub struct RoundsToDType;

impl Tweak for RoundsToDType {
    const NAME: &'static str = "rounding to dtype";
    fn output(b: &Tweaked<Self>, t: Tensor) -> Result<Tensor> {
        round_straight_through(&b.inner, t)
    }
}

/// `t + detach(round(t) − t)`: the values of `t` rounded to its dtype, the gradient of `t`.
fn round_straight_through(r: &Reference, t: Tensor) -> Result<Tensor> {
    let dtype = t.dtype();
    if !dtype.is_float() {
        return Ok(t);
    }
    let values = t.to_vec();
    let rounded: Vec<f64> = values.iter().map(|&x| dtype.round(x)).collect();
    if rounded.iter().zip(&values).all(|(a, b)| a == b || (a.is_nan() && b.is_nan())) {
        return Ok(t);
    }
    let delta = r.detach(&r.sub(&r.tensor_f64(&rounded, t.shape(), dtype)?, &t)?)?;
    r.add(&t, &delta)
}

impl<T: Tweak> Primitives for Tweaked<T> {
    type Tensor = Tensor;
    type Device = Cpu;

    fn name_impl(&self) -> &'static str {
        T::NAME
    }
    fn device_impl(&self) -> Cpu {
        self.inner.device_impl()
    }
    fn sync_impl(&self) -> Result<()> {
        self.inner.sync_impl()
    }
    fn tensor_f32_impl(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<Tensor> {
        self.out(self.inner.tensor_f32_impl(data, shape, dtype))
    }
    fn tensor_f64_impl(&self, data: &[f64], shape: &[usize], dtype: DType) -> Result<Tensor> {
        self.out(self.inner.tensor_f64_impl(data, shape, dtype))
    }
    fn tensor_i64_impl(&self, data: &[i64], shape: &[usize]) -> Result<Tensor> {
        self.inner.tensor_i64_impl(data, shape)
    }
    fn tensor_bool_impl(&self, data: &[bool], shape: &[usize]) -> Result<Tensor> {
        self.inner.tensor_bool_impl(data, shape)
    }
    fn to_host_f32_impl(&self, t: &Tensor) -> Result<Vec<f32>> {
        self.inner.to_host_f32_impl(t)
    }
    fn to_host_f64_impl(&self, t: &Tensor) -> Result<Vec<f64>> {
        self.inner.to_host_f64_impl(t)
    }
    fn to_host_i64_impl(&self, t: &Tensor) -> Result<Vec<i64>> {
        self.inner.to_host_i64_impl(t)
    }
    fn shape_impl(&self, t: &Tensor) -> Vec<usize> {
        self.inner.shape_impl(t)
    }
    fn dtype_impl(&self, t: &Tensor) -> DType {
        self.inner.dtype_impl(t)
    }
    fn full_impl(&self, shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
        self.out(self.inner.full_impl(shape, value, dtype))
    }
    fn unary(&self, op: UnaryOp, x: &Tensor) -> Result<Tensor> {
        match op {
            UnaryOp::Clamp { lo, hi } => self.out(T::clamp(self, x, lo, hi)),
            _ => self.out(self.inner.unary(op, x)),
        }
    }
    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.out(self.inner.binary(op, a, b))
    }
    fn compare(&self, op: CompareOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.inner.compare(op, a, b)
    }
    fn where_impl(&self, cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.out(self.inner.where_impl(cond, a, b))
    }
    fn reduce(&self, op: ReduceOp, x: &Tensor, dim: usize, keepdim: bool) -> Result<Tensor> {
        self.out(self.inner.reduce(op, x, dim, keepdim))
    }
    fn cumsum_impl(&self, x: &Tensor, dim: usize) -> Result<Tensor> {
        self.out(T::cumsum(self, x, dim))
    }
    fn sort_impl(&self, x: &Tensor, dim: usize, descending: bool) -> Result<(Tensor, Tensor)> {
        let (values, indices) = self.inner.sort_impl(x, dim, descending)?;
        Ok((self.out(Ok(values))?, indices))
    }
    fn reshape_impl(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
        self.inner.reshape_impl(x, shape)
    }
    fn transpose_impl(&self, x: &Tensor, d0: usize, d1: usize) -> Result<Tensor> {
        self.inner.transpose_impl(x, d0, d1)
    }
    fn narrow_impl(&self, x: &Tensor, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        self.inner.narrow_impl(x, dim, start, len)
    }
    fn cat_impl(&self, xs: &[Tensor], dim: usize) -> Result<Tensor> {
        self.inner.cat_impl(xs, dim)
    }
    fn index_select_impl(&self, x: &Tensor, dim: usize, idx: &Tensor) -> Result<Tensor> {
        self.inner.index_select_impl(x, dim, idx)
    }
    fn gather_impl(&self, x: &Tensor, dim: usize, idx: &Tensor) -> Result<Tensor> {
        self.inner.gather_impl(x, dim, idx)
    }
    fn write_slice_impl(&self, dst: &Tensor, dim: usize, start: usize, src: &Tensor) -> Result<()> {
        T::write_slice(self, dst, dim, start, src)
    }
    fn matmul_impl(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.out(self.inner.matmul_impl(a, b))
    }
    fn cast_impl(&self, x: &Tensor, dtype: DType) -> Result<Tensor> {
        self.out(self.inner.cast_impl(x, dtype))
    }
}

impl<T: Tweak> Autodiff for Tweaked<T> {
    type Grads = Grads;

    fn param_impl(&self, t: &Tensor) -> Result<Tensor> {
        self.inner.param_impl(t)
    }
    fn detach_impl(&self, t: &Tensor) -> Result<Tensor> {
        self.inner.detach_impl(t)
    }
    fn backward_impl(&self, loss: &Tensor) -> Result<Grads> {
        self.inner.backward_impl(loss)
    }
    fn grad_impl(&self, grads: &Grads, param: &Tensor) -> Result<Option<Tensor>> {
        self.inner.grad_impl(grads, param)?.map(|g| self.out(Ok(g))).transpose()
    }
    fn is_param(&self, t: &Tensor) -> bool {
        self.inner.is_param(t)
    }
    fn requires_grad(&self, t: &Tensor) -> bool {
        self.inner.requires_grad(t)
    }
    fn assign_param_impl(&self, param: &Tensor, value: &Tensor) -> Result<()> {
        let value = self.out(self.inner.cast(value, param.dtype()))?;
        T::assign_param(self, param, &value)
    }
    fn set_grad_enabled_impl(&self, enabled: bool) -> bool {
        self.inner.set_grad_enabled_impl(enabled)
    }
}

/// The hooks replace `softmax` and `rms_norm`; every other composite runs its default body on
/// the wrapper, as on any backend.
impl<T: Tweak> Composites for Tweaked<T> {
    fn softmax_impl(&self, x: &Tensor, dim: usize) -> Result<Tensor> {
        T::softmax(self, x, dim)
    }
    fn rms_norm_impl(&self, x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
        T::rms_norm(self, x, weight, eps)
    }
}
