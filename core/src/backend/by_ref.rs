//! A shared reference to a backend is a backend: `&B` delegates every method, provided
//! composites included, to `B` (so `B`'s overrides are the ones that run). Models hold their
//! backend in an `Rc`; with this impl a model can be built on a backend that is only borrowed,
//! as a generic check `fn(&B, DType)` does (`Rc::new(backend)` with `backend: &B`).

use alloc::vec::Vec;

use super::{AdamWStep, Backend, DType};
use crate::Result;

/// Writes each listed method as a call of the same method on the referenced backend.
macro_rules! delegate {
    ($(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        $(fn $name(&self $(, $arg: $ty)*) -> $ret {
            B::$name(*self $(, $arg)*)
        })*
    };
}

impl<B: Backend + ?Sized> Backend for &B {
    type Tensor = B::Tensor;
    type Device = B::Device;
    type Grads = B::Grads;

    delegate! {
    fn name(&self) -> &'static str;
    fn device(&self) -> Self::Device;
    fn sync(&self) -> Result<()>;
    fn tensor_f32(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<Self::Tensor>;
    fn tensor_f64(&self, data: &[f64], shape: &[usize], dtype: DType) -> Result<Self::Tensor>;
    fn tensor_i64(&self, data: &[i64], shape: &[usize]) -> Result<Self::Tensor>;
    fn tensor_bool(&self, data: &[bool], shape: &[usize]) -> Result<Self::Tensor>;
    fn to_host_f32(&self, t: &Self::Tensor) -> Result<Vec<f32>>;
    fn to_host_f64(&self, t: &Self::Tensor) -> Result<Vec<f64>>;
    fn to_host_i64(&self, t: &Self::Tensor) -> Result<Vec<i64>>;
    fn shape(&self, t: &Self::Tensor) -> Vec<usize>;
    fn dtype(&self, t: &Self::Tensor) -> DType;
    fn full(&self, shape: &[usize], value: f64, dtype: DType) -> Result<Self::Tensor>;
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    fn sub(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    fn mul(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    fn div(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    fn maximum(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    fn minimum(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    fn neg(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    fn exp(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    fn log(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    fn sqrt(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    fn sigmoid(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    fn tanh(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    fn powf(&self, x: &Self::Tensor, p: f64) -> Result<Self::Tensor>;
    fn affine(&self, x: &Self::Tensor, mul: f64, add: f64) -> Result<Self::Tensor>;
    fn clamp(&self, x: &Self::Tensor, lo: f64, hi: f64) -> Result<Self::Tensor>;
    fn eq(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    fn gt(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    fn ge(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    fn where_(&self, cond: &Self::Tensor, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    fn sum(&self, x: &Self::Tensor, dim: usize, keepdim: bool) -> Result<Self::Tensor>;
    fn max(&self, x: &Self::Tensor, dim: usize, keepdim: bool) -> Result<Self::Tensor>;
    fn cumsum(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor>;
    fn sort(&self, x: &Self::Tensor, dim: usize, descending: bool) -> Result<(Self::Tensor, Self::Tensor)>;
    fn reshape(&self, x: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor>;
    fn transpose(&self, x: &Self::Tensor, d0: usize, d1: usize) -> Result<Self::Tensor>;
    fn narrow(&self, x: &Self::Tensor, dim: usize, start: usize, len: usize) -> Result<Self::Tensor>;
    fn cat(&self, xs: &[Self::Tensor], dim: usize) -> Result<Self::Tensor>;
    fn index_select(&self, x: &Self::Tensor, dim: usize, idx: &Self::Tensor) -> Result<Self::Tensor>;
    fn gather(&self, x: &Self::Tensor, dim: usize, idx: &Self::Tensor) -> Result<Self::Tensor>;
    fn write_slice(&self, dst: &Self::Tensor, dim: usize, start: usize, src: &Self::Tensor) -> Result<()>;
    fn matmul(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    fn cast(&self, x: &Self::Tensor, dtype: DType) -> Result<Self::Tensor>;
    fn param(&self, t: &Self::Tensor) -> Result<Self::Tensor>;
    fn detach(&self, t: &Self::Tensor) -> Result<Self::Tensor>;
    fn backward(&self, loss: &Self::Tensor) -> Result<Self::Grads>;
    fn grad(&self, grads: &Self::Grads, param: &Self::Tensor) -> Result<Option<Self::Tensor>>;
    fn assign_param(&self, param: &Self::Tensor, value: &Self::Tensor) -> Result<()>;
    fn set_grad_enabled(&self, enabled: bool) -> bool;
    fn zeros(&self, shape: &[usize], dtype: DType) -> Result<Self::Tensor>;
    fn unsqueeze(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor>;
    fn squeeze(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor>;
    fn broadcast_to(&self, x: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor>;
    fn lt(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    fn le(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    fn logical_and(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor>;
    fn sum_all(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    fn argmax(&self, x: &Self::Tensor, dim: usize, keepdim: bool) -> Result<Self::Tensor>;
    fn embedding(&self, weight: &Self::Tensor, ids: &Self::Tensor) -> Result<Self::Tensor>;
    fn mean(&self, x: &Self::Tensor, dim: usize, keepdim: bool) -> Result<Self::Tensor>;
    fn logsumexp(&self, x: &Self::Tensor, dim: usize, keepdim: bool) -> Result<Self::Tensor>;
    fn log_softmax(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor>;
    fn softmax(&self, x: &Self::Tensor, dim: usize) -> Result<Self::Tensor>;
    fn silu(&self, x: &Self::Tensor) -> Result<Self::Tensor>;
    fn masked_sum(&self, x: &Self::Tensor, mask: &Self::Tensor, dim: Option<usize>) -> Result<Self::Tensor>;
    fn masked_mean(&self, x: &Self::Tensor, mask: &Self::Tensor, dim: Option<usize>) -> Result<Self::Tensor>;
    fn selective_log_prob(&self, logits: &Self::Tensor, targets: &Self::Tensor) -> Result<Self::Tensor>;
    fn linear(&self, x: &Self::Tensor, w: &Self::Tensor, bias: Option<&Self::Tensor>) -> Result<Self::Tensor>;
    fn rms_norm(&self, x: &Self::Tensor, weight: &Self::Tensor, eps: f64) -> Result<Self::Tensor>;
    fn rotary_embedding(&self, x: &Self::Tensor, cos: &Self::Tensor, sin: &Self::Tensor) -> Result<Self::Tensor>;
    fn attention(&self, q: &Self::Tensor, k: &Self::Tensor, v: &Self::Tensor, mask: &Self::Tensor) -> Result<Self::Tensor>;
    fn causal_attention(&self, q: &Self::Tensor, k: &Self::Tensor, v: &Self::Tensor, segment_ids: &Self::Tensor) -> Result<Self::Tensor>;
    fn policy_loss(&self, logp: &Self::Tensor, logp_old: &Self::Tensor, advantages: &Self::Tensor, eps: f64) -> Result<Self::Tensor>;
    fn value_loss(&self, values: &Self::Tensor, values_old: &Self::Tensor, returns: &Self::Tensor, clip: f64) -> Result<Self::Tensor>;
    fn adamw_update(&self, param: &Self::Tensor, grad: &Self::Tensor, m: &Self::Tensor, v: &Self::Tensor, hp: &AdamWStep) -> Result<(Self::Tensor, Self::Tensor)>;
    fn clip_grad_norm(&self, grads: &[Self::Tensor], max_norm: f64) -> Result<(Vec<Self::Tensor>, f64)>;
    }
}
