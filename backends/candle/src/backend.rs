//! `impl Backend for Candle`: host transfer, autodiff, and dispatch to the operation families in
//! [`crate::ops`]; the composites with a faster candle path are overridden there ([`ops::fused`]).

use candle_core::backprop::GradStore;
use candle_core::{DType as CDType, Device, Tensor, Var};
use orz_core::backend::shape::{check_data_len, check_float, numel};
use orz_core::backend::{AdamWStep, Backend, DType};
use orz_core::{Error, Result};

use crate::ops::elementwise::{Binary, Compare};
use crate::ops::{causal, fused};
use crate::{Candle, OrBackend, candle_dtype, orz_dtype};

/// The largest magnitude an f64 holds every integer up to (the limit of `full`'s I64 values).
const EXACT_INT: f64 = 9_007_199_254_740_992.0;

fn check_new_float(op: &'static str, len: usize, shape: &[usize], dtype: DType) -> Result<()> {
    if !dtype.is_float() {
        return Err(Error::dtype(
            op,
            format!("dtype {dtype} is not a float dtype; use tensor_i64 or tensor_bool"),
        ));
    }
    check_data_len(op, len, shape)
}

impl Backend for Candle {
    type Tensor = Tensor;
    type Device = Device;
    type Grads = GradStore;

    fn name(&self) -> &'static str {
        "candle"
    }
    fn device(&self) -> Device {
        self.device.clone()
    }
    fn sync(&self) -> Result<()> {
        self.device.synchronize().or_backend("sync")
    }

    fn tensor_f32(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<Tensor> {
        check_new_float("tensor_f32", data.len(), shape, dtype)?;
        let t = Tensor::from_slice(data, shape, &self.device).or_backend("tensor_f32")?;
        t.to_dtype(candle_dtype(dtype)).or_backend("tensor_f32")
    }
    fn tensor_i64(&self, data: &[i64], shape: &[usize]) -> Result<Tensor> {
        check_data_len("tensor_i64", data.len(), shape)?;
        Tensor::from_slice(data, shape, &self.device).or_backend("tensor_i64")
    }
    fn tensor_bool(&self, data: &[bool], shape: &[usize]) -> Result<Tensor> {
        check_data_len("tensor_bool", data.len(), shape)?;
        let bytes: Vec<u8> = data.iter().map(|&b| u8::from(b)).collect();
        Tensor::from_vec(bytes, shape, &self.device).or_backend("tensor_bool")
    }
    fn to_host_f32(&self, t: &Tensor) -> Result<Vec<f32>> {
        t.flatten_all().and_then(|f| f.to_dtype(CDType::F32)?.to_vec1()).or_backend("to_host_f32")
    }
    fn to_host_f64(&self, t: &Tensor) -> Result<Vec<f64>> {
        t.flatten_all().and_then(|f| f.to_dtype(CDType::F64)?.to_vec1()).or_backend("to_host_f64")
    }
    fn to_host_i64(&self, t: &Tensor) -> Result<Vec<i64>> {
        let dtype = orz_dtype(t.dtype());
        if dtype.is_float() {
            return Err(Error::dtype(
                "to_host_i64",
                format!("tensor has dtype {dtype}; cast it to i64 first"),
            ));
        }
        t.flatten_all().and_then(|f| f.to_dtype(CDType::I64)?.to_vec1()).or_backend("to_host_i64")
    }
    fn shape(&self, t: &Tensor) -> Vec<usize> {
        t.dims().to_vec()
    }
    fn dtype(&self, t: &Tensor) -> DType {
        orz_dtype(t.dtype())
    }
    fn full(&self, shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
        numel("full", shape)?;
        let dev = &self.device;
        match dtype {
            DType::Bool => Tensor::full(u8::from(value != 0.0), shape, dev),
            DType::I64 => {
                if value.fract() != 0.0 || value.abs() > EXACT_INT {
                    return Err(Error::invalid(
                        "full",
                        format!("{value} is not an integer that i64 holds exactly"),
                    ));
                }
                Tensor::full(value as i64, shape, dev)
            }
            DType::F32 => Tensor::full(value as f32, shape, dev),
            _ => Tensor::full(value as f32, shape, dev).and_then(|t| t.to_dtype(candle_dtype(dtype))),
        }
        .or_backend("full")
    }

    fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.binary(Binary::Add, a, b)
    }
    fn sub(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.binary(Binary::Sub, a, b)
    }
    fn mul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.binary(Binary::Mul, a, b)
    }
    fn div(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.binary(Binary::Div, a, b)
    }
    fn maximum(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.binary(Binary::Maximum, a, b)
    }
    fn minimum(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.binary(Binary::Minimum, a, b)
    }

    fn neg(&self, x: &Tensor) -> Result<Tensor> {
        self.unary("neg", x, Tensor::neg)
    }
    fn exp(&self, x: &Tensor) -> Result<Tensor> {
        self.unary("exp", x, Tensor::exp)
    }
    fn log(&self, x: &Tensor) -> Result<Tensor> {
        self.unary("log", x, Tensor::log)
    }
    fn sqrt(&self, x: &Tensor) -> Result<Tensor> {
        self.unary("sqrt", x, Tensor::sqrt)
    }
    fn sigmoid(&self, x: &Tensor) -> Result<Tensor> {
        // candle-nn's fused sigmoid has a backward (`s (1 - s)`).
        self.unary("sigmoid", x, candle_nn::ops::sigmoid)
    }
    fn tanh(&self, x: &Tensor) -> Result<Tensor> {
        self.unary("tanh", x, Tensor::tanh)
    }
    fn powf(&self, x: &Tensor, p: f64) -> Result<Tensor> {
        self.unary("powf", x, |x| x.powf(p))
    }
    fn affine(&self, x: &Tensor, mul: f64, add: f64) -> Result<Tensor> {
        self.unary("affine", x, |x| x.affine(mul, add))
    }
    fn clamp(&self, x: &Tensor, lo: f64, hi: f64) -> Result<Tensor> {
        self.clamp_op(x, lo, hi)
    }

    fn eq(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.compare(Compare::Eq, a, b)
    }
    fn gt(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.compare(Compare::Gt, a, b)
    }
    fn ge(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.compare(Compare::Ge, a, b)
    }
    fn where_(&self, cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.select(cond, a, b)
    }

    fn sum(&self, x: &Tensor, dim: usize, keepdim: bool) -> Result<Tensor> {
        self.sum_dim(x, dim, keepdim)
    }
    fn max(&self, x: &Tensor, dim: usize, keepdim: bool) -> Result<Tensor> {
        self.max_dim(x, dim, keepdim)
    }
    fn cumsum(&self, x: &Tensor, dim: usize) -> Result<Tensor> {
        self.cumsum_dim(x, dim)
    }
    fn sort(&self, x: &Tensor, dim: usize, descending: bool) -> Result<(Tensor, Tensor)> {
        self.sort_dim(x, dim, descending)
    }

    fn reshape(&self, x: &Tensor, shape: &[usize]) -> Result<Tensor> {
        self.reshape_to(x, shape)
    }
    fn transpose(&self, x: &Tensor, d0: usize, d1: usize) -> Result<Tensor> {
        self.transpose_dims(x, d0, d1)
    }
    fn narrow(&self, x: &Tensor, dim: usize, start: usize, len: usize) -> Result<Tensor> {
        self.narrow_dim(x, dim, start, len)
    }
    fn cat(&self, xs: &[Tensor], dim: usize) -> Result<Tensor> {
        self.concat(xs, dim)
    }
    fn index_select(&self, x: &Tensor, dim: usize, idx: &Tensor) -> Result<Tensor> {
        self.select_index(x, dim, idx)
    }
    fn gather(&self, x: &Tensor, dim: usize, idx: &Tensor) -> Result<Tensor> {
        self.gather_dim(x, dim, idx)
    }
    fn write_slice(&self, dst: &Tensor, dim: usize, start: usize, src: &Tensor) -> Result<()> {
        self.write_into(dst, dim, start, src)
    }
    fn matmul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.matmul_batched(a, b)
    }
    fn cast(&self, x: &Tensor, dtype: DType) -> Result<Tensor> {
        self.cast_to(x, dtype)
    }

    fn param(&self, t: &Tensor) -> Result<Tensor> {
        check_float("param", "the initial value", orz_dtype(t.dtype()))?;
        // `Var::from_tensor` of a non-variable copies the values into storage of their own.
        Ok(Var::from_tensor(&t.detach()).or_backend("param")?.into_inner())
    }
    fn detach(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.detach())
    }
    fn backward(&self, loss: &Tensor) -> Result<GradStore> {
        let dtype = orz_dtype(loss.dtype());
        if loss.elem_count() != 1 || !dtype.is_float() {
            return Err(Error::shape(
                "backward",
                format!("the loss must be one float element, got shape {:?} of dtype {dtype}", loss.dims()),
            ));
        }
        loss.backward().or_backend("backward")
    }
    fn grad(&self, grads: &GradStore, param: &Tensor) -> Result<Option<Tensor>> {
        Ok(grads.get(param).map(Tensor::detach))
    }
    fn assign_param(&self, param: &Tensor, value: &Tensor) -> Result<()> {
        const OP: &str = "assign_param";
        if !param.is_variable() {
            return Err(Error::invalid(OP, "the target is not a parameter (see Backend::param)"));
        }
        check_float(OP, "the new value", orz_dtype(value.dtype()))?;
        if param.dims() != value.dims() {
            let (p, v) = (param.dims(), value.dims());
            return Err(Error::shape(OP, format!("parameter has shape {p:?} but the value has shape {v:?}")));
        }
        let value = value.detach().to_dtype(param.dtype()).or_backend(OP)?;
        let var = Var::from_tensor(param).or_backend(OP)?;
        // A value sharing the parameter's storage (e.g. its own detached clone) is copied first.
        var.set(&value).or_else(|_| var.set(&value.copy()?)).or_backend(OP)
    }
    fn set_grad_enabled(&self, enabled: bool) -> bool {
        self.grad_enabled.replace(enabled)
    }

    // ---- overrides with faster candle paths (see ops::fused) ----

    fn log_softmax(&self, x: &Tensor, dim: usize) -> Result<Tensor> {
        fused::log_softmax(self, x, dim)
    }
    fn softmax(&self, x: &Tensor, dim: usize) -> Result<Tensor> {
        fused::softmax(self, x, dim)
    }
    fn logsumexp(&self, x: &Tensor, dim: usize, keepdim: bool) -> Result<Tensor> {
        fused::logsumexp(self, x, dim, keepdim)
    }
    fn selective_log_prob(&self, logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        fused::selective_log_prob(self, logits, targets)
    }
    fn silu(&self, x: &Tensor) -> Result<Tensor> {
        fused::silu(self, x)
    }
    fn linear(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        fused::linear(self, x, w, bias)
    }
    fn rms_norm(&self, x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
        fused::rms_norm(self, x, weight, eps)
    }
    fn attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> Result<Tensor> {
        fused::attention(self, q, k, v, mask)
    }
    fn causal_attention(&self, q: &Tensor, k: &Tensor, v: &Tensor, segment_ids: &Tensor) -> Result<Tensor> {
        causal::causal_attention(self, q, k, v, segment_ids)
    }
    fn adamw_update(
        &self,
        param: &Tensor,
        grad: &Tensor,
        m: &Tensor,
        v: &Tensor,
        hp: &AdamWStep,
    ) -> Result<(Tensor, Tensor)> {
        fused::adamw_update(self, param, grad, m, v, hp)
    }
}
