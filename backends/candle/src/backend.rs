//! The kernels of candle: host transfer and creation, the op families in [`crate::ops`], autodiff
//! on candle's own (`Var`, `GradStore`), and the composites with a faster candle path
//! ([`ops::fused`]). Arguments arrive checked by [`orz_core::backend::Backend`].

use candle_core::backprop::GradStore;
use candle_core::{DType as CDType, Device, Tensor, Var};
use orz_core::Result;
use orz_core::backend::{
    AdamWStep, Autodiff, BinaryOp, CompareOp, Composites, DType, Primitives, ReduceOp, UnaryOp,
};

use crate::ops::{adamw, causal, fused};
use crate::{Candle, OrBackend, candle_dtype, orz_dtype};

impl Primitives for Candle {
    type Tensor = Tensor;
    type Device = Device;

    fn name_impl(&self) -> &'static str {
        "candle"
    }
    fn device_impl(&self) -> Device {
        self.device.clone()
    }
    fn sync_impl(&self) -> Result<()> {
        self.device.synchronize().or_backend("sync")
    }

    fn tensor_f32_impl(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<Tensor> {
        let t = Tensor::from_slice(data, shape, &self.device).or_backend("tensor_f32")?;
        t.to_dtype(candle_dtype(dtype)).or_backend("tensor_f32")
    }
    fn tensor_i64_impl(&self, data: &[i64], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_slice(data, shape, &self.device).or_backend("tensor_i64")
    }
    fn tensor_bool_impl(&self, data: &[bool], shape: &[usize]) -> Result<Tensor> {
        let bytes: Vec<u8> = data.iter().map(|&b| u8::from(b)).collect();
        Tensor::from_vec(bytes, shape, &self.device).or_backend("tensor_bool")
    }
    fn to_host_f32_impl(&self, t: &Tensor) -> Result<Vec<f32>> {
        t.flatten_all().and_then(|f| f.to_dtype(CDType::F32)?.to_vec1()).or_backend("to_host_f32")
    }
    fn to_host_f64_impl(&self, t: &Tensor) -> Result<Vec<f64>> {
        t.flatten_all().and_then(|f| f.to_dtype(CDType::F64)?.to_vec1()).or_backend("to_host_f64")
    }
    fn to_host_i64_impl(&self, t: &Tensor) -> Result<Vec<i64>> {
        t.flatten_all().and_then(|f| f.to_dtype(CDType::I64)?.to_vec1()).or_backend("to_host_i64")
    }
    fn shape_impl(&self, t: &Tensor) -> Vec<usize> {
        t.dims().to_vec()
    }
    fn dtype_impl(&self, t: &Tensor) -> DType {
        orz_dtype(t.dtype())
    }
    fn full_impl(&self, shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
        let dev = &self.device;
        match dtype {
            DType::Bool => Tensor::full(u8::from(value != 0.0), shape, dev),
            DType::I64 => Tensor::full(value as i64, shape, dev),
            DType::F32 => Tensor::full(value as f32, shape, dev),
            _ => Tensor::full(value as f32, shape, dev).and_then(|t| t.to_dtype(candle_dtype(dtype))),
        }
        .or_backend("full")
    }

    fn unary(&self, op: UnaryOp, x: &Tensor) -> Result<Tensor> {
        self.unary_op(op, x)
    }
    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.binary_op(op, a, b)
    }
    fn compare(&self, op: CompareOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.compare_op(op, a, b)
    }
    fn where_impl(&self, cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.select(cond, a, b)
    }
    fn reduce(&self, op: ReduceOp, x: &Tensor, dim: usize, keepdim: bool) -> Result<Tensor> {
        match op {
            ReduceOp::Sum => self.sum_dim(x, dim, keepdim),
            ReduceOp::Max => self.max_dim(x, dim, keepdim),
        }
    }
    fn cumsum_impl(&self, x: &Tensor, dim: usize) -> Result<Tensor> {
        self.cumsum_dim(x, dim)
    }
    fn sort_impl(&self, x: &Tensor, dim: usize, descending: bool) -> Result<(Tensor, Tensor)> {
        self.sort_dim(x, dim, descending)
    }

    fn reshape_impl(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
        self.reshape_to(x, shape)
    }
    fn transpose_impl(&self, x: &Tensor, d0: usize, d1: usize) -> Result<Tensor> {
        self.transpose_dims(x, d0, d1)
    }
    fn narrow_impl(&self, x: &Tensor, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        self.narrow_dim(x, dim, start, len)
    }
    fn cat_impl(&self, xs: &[Tensor], dim: usize) -> Result<Tensor> {
        self.concat(xs, dim)
    }
    fn index_select_impl(&self, x: &Tensor, dim: usize, idx: &Tensor) -> Result<Tensor> {
        self.select_index(x, dim, idx)
    }
    fn gather_impl(&self, x: &Tensor, dim: usize, idx: &Tensor) -> Result<Tensor> {
        self.gather_dim(x, dim, idx)
    }
    fn write_slice_impl(&self, dst: &Tensor, dim: usize, start: usize, src: &Tensor) -> Result<()> {
        self.write_into(dst, dim, start, src)
    }
    fn matmul_impl(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.matmul_batched(a, b)
    }
    fn cast_impl(&self, x: &Tensor, dtype: DType) -> Result<Tensor> {
        self.cast_to(x, dtype)
    }
}

impl Autodiff for Candle {
    type Grads = GradStore;

    fn param_impl(&self, t: &Tensor) -> Result<Tensor> {
        // `Var::from_tensor` of a non-variable copies the values into storage of their own.
        Ok(Var::from_tensor(&t.detach()).or_backend("param")?.into_inner())
    }
    fn detach_impl(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.detach())
    }
    fn backward_impl(&self, loss: &Tensor) -> Result<GradStore> {
        loss.backward().or_backend("backward")
    }
    fn grad_impl(&self, grads: &GradStore, param: &Tensor) -> Result<Option<Tensor>> {
        Ok(grads.get(param).map(Tensor::detach))
    }
    fn assign_param_impl(&self, param: &Tensor, value: &Tensor) -> Result<()> {
        const OP: &str = "assign_param";
        let value = value.detach().to_dtype(param.dtype()).or_backend(OP)?;
        let var = Var::from_tensor(param).or_backend(OP)?;
        // A value sharing the parameter's storage (e.g. its own detached clone) is copied first.
        var.set(&value).or_else(|_| var.set(&value.copy()?)).or_backend(OP)
    }
    fn is_param(&self, t: &Tensor) -> bool {
        t.is_variable()
    }
    fn requires_grad(&self, t: &Tensor) -> bool {
        t.track_op()
    }
    fn set_grad_enabled_impl(&self, enabled: bool) -> bool {
        self.grad_enabled.replace(enabled)
    }
}

impl Composites for Candle {
    fn log_softmax_impl(&self, x: &Tensor, dim: usize) -> Result<Tensor> {
        fused::log_softmax(self, x, dim)
    }
    fn softmax_impl(&self, x: &Tensor, dim: usize) -> Result<Tensor> {
        fused::softmax(self, x, dim)
    }
    fn logsumexp_impl(&self, x: &Tensor, dim: usize, keepdim: bool) -> Result<Tensor> {
        fused::logsumexp(self, x, dim, keepdim)
    }
    fn selective_log_prob_impl(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        fused::selective_log_prob(self, logits, targets)
    }
    fn silu_impl(&self, x: &Tensor) -> Result<Tensor> {
        fused::silu(self, x)
    }
    fn linear_impl(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        fused::linear(self, x, w, bias)
    }
    fn rms_norm_impl(&self, x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
        fused::rms_norm(self, x, weight, eps)
    }
    fn attention_impl(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> Result<Tensor> {
        fused::attention(self, q, k, v, mask)
    }
    fn causal_attention_impl(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        segment_ids: &Tensor,
    ) -> Result<Tensor> {
        causal::causal_attention(self, q, k, v, segment_ids)
    }
    fn adamw_update_impl(
        &self,
        param: &Tensor,
        grad: &Tensor,
        m: Tensor,
        v: Tensor,
        hp: &AdamWStep,
    ) -> Result<(Tensor, Tensor)> {
        adamw::adamw_update(self, param, grad, m, v, hp)
    }
}
