//! [`Borrowed`]: a backend used through a shared reference, so that the models of orz-core
//! (which hold their backend as an `Rc<B>`) can be built on the `&B` a check is given.
//!
//! Every method of [`Backend`], required and provided alike, forwards to the wrapped backend, so
//! its overrides (fused attention, device-side sampling ops, fused AdamW) are the ones exercised.

use orz_core::Result;
use orz_core::backend::optim::AdamWStep;
use orz_core::backend::{Backend, DType};

/// A `&B` that is itself a [`Backend`], forwarding every method (overrides included) to `B`.
#[derive(Debug, Clone, Copy)]
pub struct Borrowed<'a, B: Backend>(pub &'a B);

impl<B: Backend> Backend for Borrowed<'_, B> {
    type Tensor = B::Tensor;
    type Device = B::Device;
    type Grads = B::Grads;
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn device(&self) -> Self::Device {
        self.0.device()
    }
    fn sync(&self) -> Result<()> {
        self.0.sync()
    }
    fn tensor_f32(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<Self::Tensor> {
        self.0.tensor_f32(data, shape, dtype)
    }
    fn tensor_f64(&self, data: &[f64], shape: &[usize], dtype: DType) -> Result<Self::Tensor> {
        self.0.tensor_f64(data, shape, dtype)
    }
    fn tensor_i64(&self, data: &[i64], shape: &[usize]) -> Result<Self::Tensor> {
        self.0.tensor_i64(data, shape)
    }
    fn tensor_bool(&self, data: &[bool], shape: &[usize]) -> Result<Self::Tensor> {
        self.0.tensor_bool(data, shape)
    }
    fn to_host_f32(&self, t: &Self::Tensor) -> Result<Vec<f32>> {
        self.0.to_host_f32(t)
    }
    fn to_host_f64(&self, t: &Self::Tensor) -> Result<Vec<f64>> {
        self.0.to_host_f64(t)
    }
    fn to_host_i64(&self, t: &Self::Tensor) -> Result<Vec<i64>> {
        self.0.to_host_i64(t)
    }
    fn shape(&self, t: &Self::Tensor) -> Vec<usize> {
        self.0.shape(t)
    }
    fn dtype(&self, t: &Self::Tensor) -> DType {
        self.0.dtype(t)
    }
    fn full(&self, shape: &[usize], value: f64, dtype: DType) -> Result<Self::Tensor> {
        self.0.full(shape, value, dtype)
    }
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.add(a, b)
    }
    fn sub(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.sub(a, b)
    }
    fn mul(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.mul(a, b)
    }
    fn div(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.div(a, b)
    }
    fn maximum(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.maximum(a, b)
    }
    fn minimum(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.minimum(a, b)
    }
    fn neg(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.neg(x)
    }
    fn exp(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.exp(x)
    }
    fn log(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.log(x)
    }
    fn sqrt(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.sqrt(x)
    }
    fn sigmoid(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.sigmoid(x)
    }
    fn tanh(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.tanh(x)
    }
    fn powf(&self, x: &Self::Tensor, p: f64) -> Result<Self::Tensor> {
        self.0.powf(x, p)
    }
    fn affine(&self, x: &Self::Tensor, mul: f64, add: f64) -> Result<Self::Tensor> {
        self.0.affine(x, mul, add)
    }
    fn clamp(&self, x: &Self::Tensor, lo: f64, hi: f64) -> Result<Self::Tensor> {
        self.0.clamp(x, lo, hi)
    }
    fn eq(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.eq(a, b)
    }
    fn gt(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.gt(a, b)
    }
    fn ge(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.ge(a, b)
    }
    fn where_(&self, cond: &Self::Tensor, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.where_(cond, a, b)
    }
    fn sum(&self, x: &Self::Tensor, dim: usize, keepdim: bool) -> Result<Self::Tensor> {
        self.0.sum(x, dim, keepdim)
    }
    fn max(&self, x: &Self::Tensor, dim: usize, keepdim: bool) -> Result<Self::Tensor> {
        self.0.max(x, dim, keepdim)
    }
    fn cumsum(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor> {
        self.0.cumsum(x, dim)
    }
    fn sort(&self, x: &Self::Tensor, dim: usize, descending: bool) -> Result<(Self::Tensor, Self::Tensor)> {
        self.0.sort(x, dim, descending)
    }
    fn reshape(&self, x: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor> {
        self.0.reshape(x, shape)
    }
    fn transpose(&self, x: &Self::Tensor, d0: usize, d1: usize) -> Result<Self::Tensor> {
        self.0.transpose(x, d0, d1)
    }
    fn narrow(&self, x: &Self::Tensor, dim: usize, start: usize, len: usize) -> Result<Self::Tensor> {
        self.0.narrow(x, dim, start, len)
    }
    fn cat(&self, xs: &[Self::Tensor], dim: usize) -> Result<Self::Tensor> {
        self.0.cat(xs, dim)
    }
    fn index_select(&self, x: &Self::Tensor, dim: usize, idx: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.index_select(x, dim, idx)
    }
    fn gather(&self, x: &Self::Tensor, dim: usize, idx: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.gather(x, dim, idx)
    }
    fn write_slice(&self, dst: &Self::Tensor, dim: usize, start: usize, src: &Self::Tensor) -> Result<()> {
        self.0.write_slice(dst, dim, start, src)
    }
    fn matmul(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.matmul(a, b)
    }
    fn cast(&self, x: &Self::Tensor, dtype: DType) -> Result<Self::Tensor> {
        self.0.cast(x, dtype)
    }
    fn param(&self, t: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.param(t)
    }
    fn detach(&self, t: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.detach(t)
    }
    fn backward(&self, loss: &Self::Tensor) -> Result<Self::Grads> {
        self.0.backward(loss)
    }
    fn grad(&self, grads: &Self::Grads, param: &Self::Tensor) -> Result<Option<Self::Tensor>> {
        self.0.grad(grads, param)
    }
    fn assign_param(&self, param: &Self::Tensor, value: &Self::Tensor) -> Result<()> {
        self.0.assign_param(param, value)
    }
    fn set_grad_enabled(&self, enabled: bool) -> bool {
        self.0.set_grad_enabled(enabled)
    }
    fn zeros(&self, shape: &[usize], dtype: DType) -> Result<Self::Tensor> {
        self.0.zeros(shape, dtype)
    }
    fn unsqueeze(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor> {
        self.0.unsqueeze(x, dim)
    }
    fn squeeze(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor> {
        self.0.squeeze(x, dim)
    }
    fn broadcast_to(&self, x: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor> {
        self.0.broadcast_to(x, shape)
    }
    fn lt(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.lt(a, b)
    }
    fn le(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.le(a, b)
    }
    fn logical_and(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.logical_and(a, b)
    }
    fn sum_all(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.sum_all(x)
    }
    fn argmax(&self, x: &Self::Tensor, dim: usize, keepdim: bool) -> Result<Self::Tensor> {
        self.0.argmax(x, dim, keepdim)
    }
    fn embedding(&self, weight: &Self::Tensor, ids: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.embedding(weight, ids)
    }
    fn mean(&self, x: &Self::Tensor, dim: usize, keepdim: bool) -> Result<Self::Tensor> {
        self.0.mean(x, dim, keepdim)
    }
    fn logsumexp(&self, x: &Self::Tensor, dim: usize, keepdim: bool) -> Result<Self::Tensor> {
        self.0.logsumexp(x, dim, keepdim)
    }
    fn log_softmax(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor> {
        self.0.log_softmax(x, dim)
    }
    fn softmax(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor> {
        self.0.softmax(x, dim)
    }
    fn silu(&self, x: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.silu(x)
    }
    fn masked_sum(&self, x: &Self::Tensor, mask: &Self::Tensor, dim: Option<usize>) -> Result<Self::Tensor> {
        self.0.masked_sum(x, mask, dim)
    }
    fn masked_mean(&self, x: &Self::Tensor, mask: &Self::Tensor, dim: Option<usize>) -> Result<Self::Tensor> {
        self.0.masked_mean(x, mask, dim)
    }
    fn selective_log_prob(&self, logits: &Self::Tensor, targets: &Self::Tensor) -> Result<Self::Tensor> {
        self.0.selective_log_prob(logits, targets)
    }
    fn linear(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: Option<&Self::Tensor>,
    ) -> Result<Self::Tensor> {
        self.0.linear(x, w, bias)
    }
    fn rms_norm(&self, x: &Self::Tensor, weight: &Self::Tensor, eps: f64) -> Result<Self::Tensor> {
        self.0.rms_norm(x, weight, eps)
    }
    fn rotary_embedding(
        &self,
        x: &Self::Tensor,
        cos: &Self::Tensor,
        sin: &Self::Tensor,
    ) -> Result<Self::Tensor> {
        self.0.rotary_embedding(x, cos, sin)
    }
    fn attention(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        mask: &Self::Tensor,
    ) -> Result<Self::Tensor> {
        self.0.attention(q, k, v, mask)
    }
    fn causal_attention(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        segment_ids: &Self::Tensor,
    ) -> Result<Self::Tensor> {
        self.0.causal_attention(q, k, v, segment_ids)
    }
    fn policy_loss(
        &self,
        logp: &Self::Tensor,
        logp_old: &Self::Tensor,
        advantages: &Self::Tensor,
        eps: f64,
    ) -> Result<Self::Tensor> {
        self.0.policy_loss(logp, logp_old, advantages, eps)
    }
    fn value_loss(
        &self,
        values: &Self::Tensor,
        values_old: &Self::Tensor,
        returns: &Self::Tensor,
        clip: f64,
    ) -> Result<Self::Tensor> {
        self.0.value_loss(values, values_old, returns, clip)
    }
    fn adamw_update(
        &self,
        param: &Self::Tensor,
        grad: &Self::Tensor,
        m: &Self::Tensor,
        v: &Self::Tensor,
        hp: &AdamWStep,
    ) -> Result<(Self::Tensor, Self::Tensor)> {
        self.0.adamw_update(param, grad, m, v, hp)
    }
    fn clip_grad_norm(&self, grads: &[Self::Tensor], max_norm: f64) -> Result<(Vec<Self::Tensor>, f64)> {
        self.0.clip_grad_norm(grads, max_norm)
    }
}
