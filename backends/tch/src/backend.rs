//! The kernels of tch: one libtorch call per primitive ([`Primitives`]), libtorch's autograd
//! ([`Autodiff`]), and the native composites ([`Composites`], bodies in [`crate::composites`] and
//! [`crate::attention`]). Arguments arrive checked by [`orz_core::backend::Backend`]; the kernels
//! check index values and non-finite casts to I64, which only they can read.

use std::rc::Rc;

use orz_core::backend::{Autodiff, BinaryOp, CompareOp, Composites, DType, Primitives, ReduceOp, UnaryOp};
use orz_core::optimizer::adamw::AdamWStep;
use orz_core::{Error, Result};
use tch::{Device, Kind, Tensor};

use crate::convert::{dtype_of, kind, shape_of};
use crate::{Tch, TchGrads, TchTensor, dims, i64_of, scalar, tch_err};

impl Primitives for Tch {
    type Tensor = TchTensor;
    type Device = Device;

    fn name_impl(&self) -> &'static str {
        "tch"
    }
    fn device_impl(&self) -> Device {
        self.device
    }
    fn sync_impl(&self) -> Result<()> {
        if let Device::Cuda(i) = self.device {
            tch::Cuda::synchronize(i64_of(i));
        }
        Ok(())
    }

    fn tensor_f32_impl(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<TchTensor> {
        self.upload_float("tensor_f32", data, shape, dtype)
    }
    fn tensor_i64_impl(&self, data: &[i64], shape: &[usize]) -> Result<TchTensor> {
        self.upload("tensor_i64", data, shape, Kind::Int64)
    }
    fn tensor_bool_impl(&self, data: &[bool], shape: &[usize]) -> Result<TchTensor> {
        self.upload("tensor_bool", data, shape, Kind::Bool)
    }
    fn to_host_f32_impl(&self, t: &TchTensor) -> Result<Vec<f32>> {
        self.download("to_host_f32", &t.t)
    }
    fn to_host_f64_impl(&self, t: &TchTensor) -> Result<Vec<f64>> {
        self.download("to_host_f64", &t.t)
    }
    fn to_host_i64_impl(&self, t: &TchTensor) -> Result<Vec<i64>> {
        self.download("to_host_i64", &t.t)
    }
    fn shape_impl(&self, t: &TchTensor) -> Vec<usize> {
        shape_of(&t.t)
    }
    fn dtype_impl(&self, t: &TchTensor) -> DType {
        dtype_of(&t.t)
    }
    fn full_impl(&self, shape: &[usize], value: f64, dtype: DType) -> Result<TchTensor> {
        let options = (kind(dtype), self.device);
        if dtype == DType::I64 {
            // Through i64, so that large integers are not rounded by an f64 scalar.
            self.run("full", || scalar::full_i64(&dims(shape), value as i64, options))
        } else {
            self.run("full", || scalar::full(&dims(shape), value, options))
        }
    }

    fn unary(&self, op: UnaryOp, x: &TchTensor) -> Result<TchTensor> {
        let name = op.name();
        match op {
            UnaryOp::Neg => self.run(name, || x.t.f_neg()),
            UnaryOp::Exp => self.run(name, || x.t.f_exp()),
            UnaryOp::Log => self.run(name, || x.t.f_log()),
            UnaryOp::Sqrt => self.run(name, || x.t.f_sqrt()),
            UnaryOp::Sigmoid => self.run(name, || x.t.f_sigmoid()),
            UnaryOp::Tanh => self.run(name, || x.t.f_tanh()),
            UnaryOp::Powf(p) => self.run(name, || scalar::with_scalar(&x.t, p, |x, p| x.f_pow(p))),
            UnaryOp::Affine { mul, add } => self.run(name, || scalar::add(&scalar::mul(&x.t, mul)?, add)),
            // torch.clamp passes the gradient on lo <= x <= hi (inclusive), as the variant states.
            UnaryOp::Clamp { lo, hi } => self.run(name, || {
                let lo = scalar::scalar_for(&x.t, lo)?;
                scalar::with_scalar(&x.t, hi, |x, hi| x.f_clamp_tensor(Some(&lo), Some(hi)))
            }),
        }
    }
    fn binary(&self, op: BinaryOp, a: &TchTensor, b: &TchTensor) -> Result<TchTensor> {
        // torch.maximum/minimum: NaN propagates; on ties the gradient is split half and half.
        self.run(op.name(), || match op {
            BinaryOp::Add => a.t.f_add(&b.t),
            BinaryOp::Sub => a.t.f_sub(&b.t),
            BinaryOp::Mul => a.t.f_mul(&b.t),
            BinaryOp::Div => a.t.f_div(&b.t),
            BinaryOp::Maximum => a.t.f_maximum(&b.t),
            BinaryOp::Minimum => a.t.f_minimum(&b.t),
        })
    }
    fn compare(&self, op: CompareOp, a: &TchTensor, b: &TchTensor) -> Result<TchTensor> {
        self.run(op.name(), || match op {
            CompareOp::Eq => a.t.f_eq_tensor(&b.t),
            CompareOp::Gt => a.t.f_gt_tensor(&b.t),
            CompareOp::Ge => a.t.f_ge_tensor(&b.t),
        })
    }
    fn where_impl(&self, cond: &TchTensor, a: &TchTensor, b: &TchTensor) -> Result<TchTensor> {
        self.run("where_", || a.t.f_where_self(&cond.t, &b.t))
    }
    fn reduce(&self, op: ReduceOp, x: &TchTensor, dim: usize, keepdim: bool) -> Result<TchTensor> {
        match op {
            ReduceOp::Sum => {
                self.run("sum", || x.t.f_sum_dim_intlist([i64_of(dim)].as_slice(), keepdim, None::<Kind>))
            }
            // amax: NaN propagates, tied maxima share the gradient evenly.
            ReduceOp::Max => self.run("max", || x.t.f_amax([i64_of(dim)].as_slice(), keepdim)),
        }
    }
    fn cumsum_impl(&self, x: &TchTensor, dim: usize) -> Result<TchTensor> {
        self.run("cumsum", || x.t.f_cumsum(i64_of(dim), None::<Kind>))
    }
    fn sort_impl(&self, x: &TchTensor, dim: usize, descending: bool) -> Result<(TchTensor, TchTensor)> {
        let (v, i) = self.run_any("sort", || x.t.f_sort_stable(true, i64_of(dim), descending))?;
        Ok((TchTensor::new(v), TchTensor::new(i)))
    }

    fn reshape_impl(&self, x: &TchTensor, shape: &[usize]) -> Result<TchTensor> {
        self.run("reshape", || x.t.f_reshape(dims(shape)))
    }
    fn transpose_impl(&self, x: &TchTensor, d0: usize, d1: usize) -> Result<TchTensor> {
        self.run("transpose", || x.t.f_transpose(i64_of(d0), i64_of(d1)))
    }
    fn narrow_impl(&self, x: &TchTensor, dim: usize, start: usize, len: usize) -> Result<TchTensor> {
        self.run("narrow", || x.t.f_narrow(i64_of(dim), i64_of(start), i64_of(len)))
    }
    fn cat_impl(&self, xs: &[TchTensor], dim: usize) -> Result<TchTensor> {
        let ts: Vec<&Tensor> = xs.iter().map(|x| &*x.t).collect();
        self.run("cat", || Tensor::f_cat(&ts, i64_of(dim)))
    }
    fn index_select_impl(&self, x: &TchTensor, dim: usize, idx: &TchTensor) -> Result<TchTensor> {
        const OP: &str = "index_select";
        let xs = shape_of(&x.t);
        let context = || format!("dimension {dim} of shape {xs:?}");
        self.indexed(OP, &idx.t, xs[dim], context, || x.t.f_index_select(i64_of(dim), &idx.t))
    }
    fn gather_impl(&self, x: &TchTensor, dim: usize, idx: &TchTensor) -> Result<TchTensor> {
        const OP: &str = "gather";
        let xs = shape_of(&x.t);
        let context = || format!("dimension {dim} of shape {xs:?}");
        self.indexed(OP, &idx.t, xs[dim], context, || x.t.f_gather(i64_of(dim), &idx.t, false))
    }
    fn write_slice_impl(&self, dst: &TchTensor, dim: usize, start: usize, src: &TchTensor) -> Result<()> {
        const OP: &str = "write_slice";
        let ss = shape_of(&src.t);
        let _guard = tch::no_grad_guard();
        let mut view =
            dst.t.f_narrow(i64_of(dim), i64_of(start), i64_of(ss[dim])).map_err(|e| tch_err(OP, e))?;
        view.f_copy_(&src.t).map_err(|e| tch_err(OP, e))
    }
    fn matmul_impl(&self, a: &TchTensor, b: &TchTensor) -> Result<TchTensor> {
        self.run("matmul", || a.t.f_matmul(&b.t))
    }
    fn cast_impl(&self, x: &TchTensor, dtype: DType) -> Result<TchTensor> {
        let from = dtype_of(&x.t);
        if dtype == DType::I64
            && from.is_float()
            && let Some(index) = self.first_non_finite("cast", &x.t)?
        {
            return Err(Error::NonFinite { op: "cast", what: "x (cast to i64)", index });
        }
        self.run("cast", || x.t.f_to_kind(kind(dtype)))
    }
}

impl Autodiff for Tch {
    type Grads = TchGrads;

    fn param_impl(&self, t: &TchTensor) -> Result<TchTensor> {
        let leaf = {
            let _guard = tch::no_grad_guard();
            let copy = t.t.f_detach().and_then(|d| d.f_contiguous()).and_then(|d| {
                let mut leaf = d.f_zeros_like()?;
                leaf.f_copy_(&d)?;
                Ok(leaf)
            });
            copy.and_then(|leaf| leaf.f_set_requires_grad(true)).map_err(|e| tch_err("param", e))?
        };
        let rc = Rc::new(leaf);
        let mut params = self.params.borrow_mut();
        params.retain(|w| w.strong_count() > 0);
        params.push(Rc::downgrade(&rc));
        Ok(TchTensor { t: rc, param: true })
    }
    fn detach_impl(&self, t: &TchTensor) -> Result<TchTensor> {
        t.t.f_detach().map(TchTensor::new).map_err(|e| tch_err("detach", e))
    }
    fn backward_impl(&self, loss: &TchTensor) -> Result<TchGrads> {
        if !loss.t.requires_grad() {
            return Ok(TchGrads::default());
        }
        let params: Vec<Rc<Tensor>> = {
            let mut registry = self.params.borrow_mut();
            registry.retain(|w| w.strong_count() > 0);
            registry.iter().filter_map(std::rc::Weak::upgrade).collect()
        };
        if params.is_empty() {
            // No inputs would make libtorch's engine accumulate into `.grad`: never ask it that.
            return Ok(TchGrads::default());
        }
        let inputs: Vec<&Tensor> = params.iter().map(|p| &**p).collect();
        // keep_graph: the same loss may be differentiated again (each call is fresh).
        let grads =
            Tensor::f_run_backward(&[&*loss.t], &inputs, true, false).map_err(|e| tch_err("backward", e))?;
        let grads = params.into_iter().zip(grads).filter(|(_, g)| g.defined()).collect();
        Ok(TchGrads { grads })
    }
    fn grad_impl(&self, grads: &TchGrads, param: &TchTensor) -> Result<Option<TchTensor>> {
        Ok(grads
            .grads
            .iter()
            .find(|(p, _)| Rc::ptr_eq(p, &param.t))
            .map(|(_, g)| TchTensor::new(g.shallow_clone())))
    }
    fn assign_param_impl(&self, param: &TchTensor, value: &TchTensor) -> Result<()> {
        let _guard = tch::no_grad_guard();
        param.t.shallow_clone().f_copy_(&value.t).map_err(|e| tch_err("assign_param", e))
    }
    fn is_param(&self, t: &TchTensor) -> bool {
        t.param
    }
    fn requires_grad(&self, t: &TchTensor) -> bool {
        t.param || t.t.requires_grad()
    }
    fn set_grad_enabled_impl(&self, enabled: bool) -> bool {
        self.grad_enabled.replace(enabled)
    }
}

impl Composites for Tch {
    fn log_softmax_impl(&self, x: &TchTensor, dim: usize) -> Result<TchTensor> {
        self.native_log_softmax(x, dim)
    }
    fn softmax_impl(&self, x: &TchTensor, dim: usize) -> Result<TchTensor> {
        self.native_softmax(x, dim)
    }
    fn logsumexp_impl(&self, x: &TchTensor, dim: usize, keepdim: bool) -> Result<TchTensor> {
        self.native_logsumexp(x, dim, keepdim)
    }
    fn silu_impl(&self, x: &TchTensor) -> Result<TchTensor> {
        self.run("silu", || x.t.f_silu())
    }
    fn selective_log_prob_impl(&self, logits: &TchTensor, targets: &TchTensor) -> Result<TchTensor> {
        self.native_selective_log_prob(logits, targets)
    }
    /// `scaled_dot_product_attention` with an additive mask: 0 where allowed, the dtype's most
    /// negative finite value elsewhere, so a fully masked row averages the values uniformly (as
    /// the trait and Hugging Face's eager path do) instead of giving NaN. GQA uses `enable_gqa`
    /// (kv head `h / (hq / hkv)`, as `repeat_kv`).
    fn attention_impl(
        &self,
        q: &TchTensor,
        k: &TchTensor,
        v: &TchTensor,
        mask: &TchTensor,
    ) -> Result<TchTensor> {
        self.sdpa_masked(q, k, v, &mask.t, true)
    }
    fn causal_attention_impl(
        &self,
        q: &TchTensor,
        k: &TchTensor,
        v: &TchTensor,
        segment_ids: &TchTensor,
    ) -> Result<TchTensor> {
        self.sdpa_causal(q, k, v, segment_ids)
    }
    fn adamw_update_impl(
        &self,
        param: &TchTensor,
        grad: &TchTensor,
        m: TchTensor,
        v: TchTensor,
        hp: &AdamWStep,
    ) -> Result<(TchTensor, TchTensor)> {
        self.native_adamw(param, grad, m, v, hp)
    }
    fn clip_grad_norm_impl(&self, grads: &[TchTensor], max_norm: f64) -> Result<(Vec<TchTensor>, f64)> {
        self.native_clip_grad_norm(grads, max_norm)
    }
}
