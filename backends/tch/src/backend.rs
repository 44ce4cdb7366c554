//! `impl Backend for Tch`: validation, then one libtorch call per primitive; the native
//! overrides of composites live in [`crate::composites`].

use std::rc::Rc;

use orz_core::backend::shape::{check_dim, check_float, check_range, check_same_dtype, matmul_shape, numel};
use orz_core::backend::{Backend, DType};
use orz_core::optimizer::adamw::AdamWStep;
use orz_core::{Error, Result};
use tch::{Device, Kind, Tensor};

use crate::convert::{dtype_of, kind, shape_of};
use crate::validate::{binary, compare, fits_except, select, unary};
use crate::{Tch, TchGrads, TchTensor, dims, i64_of, scalar, tch_err};

/// The largest magnitude up to which every integer is exact in f64 (`full` for I64).
const EXACT_INT: f64 = 9_007_199_254_740_992.0;

impl Backend for Tch {
    type Tensor = TchTensor;
    type Device = Device;
    type Grads = TchGrads;

    fn name(&self) -> &'static str {
        "tch"
    }
    fn device(&self) -> Device {
        self.device
    }
    fn sync(&self) -> Result<()> {
        if let Device::Cuda(i) = self.device {
            tch::Cuda::synchronize(i64_of(i));
        }
        Ok(())
    }

    fn tensor_f32(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<TchTensor> {
        self.upload_float("tensor_f32", data, shape, dtype)
    }
    fn tensor_i64(&self, data: &[i64], shape: &[usize]) -> Result<TchTensor> {
        self.upload("tensor_i64", data, shape, Kind::Int64)
    }
    fn tensor_bool(&self, data: &[bool], shape: &[usize]) -> Result<TchTensor> {
        self.upload("tensor_bool", data, shape, Kind::Bool)
    }
    fn to_host_f32(&self, t: &TchTensor) -> Result<Vec<f32>> {
        self.download("to_host_f32", &t.t)
    }
    fn to_host_f64(&self, t: &TchTensor) -> Result<Vec<f64>> {
        self.download("to_host_f64", &t.t)
    }
    fn to_host_i64(&self, t: &TchTensor) -> Result<Vec<i64>> {
        let dtype = dtype_of(&t.t);
        if dtype.is_float() {
            return Err(Error::dtype(
                "to_host_i64",
                format!("tensor has dtype {dtype}; cast it to i64 first"),
            ));
        }
        self.download("to_host_i64", &t.t)
    }
    fn shape(&self, t: &TchTensor) -> Vec<usize> {
        shape_of(&t.t)
    }
    fn dtype(&self, t: &TchTensor) -> DType {
        dtype_of(&t.t)
    }
    fn full(&self, shape: &[usize], value: f64, dtype: DType) -> Result<TchTensor> {
        numel("full", shape)?;
        let value = match dtype {
            DType::Bool => f64::from(u8::from(value != 0.0)),
            DType::I64 if value.fract() != 0.0 || value.abs() > EXACT_INT => {
                return Err(Error::invalid(
                    "full",
                    format!("{value} is not an integer that i64 holds exactly"),
                ));
            }
            _ => value,
        };
        let options = (kind(dtype), self.device);
        if dtype == DType::I64 {
            // Through i64, so that large integers are not rounded by an f64 scalar.
            self.run("full", || scalar::full_i64(&dims(shape), value as i64, options))
        } else {
            self.run("full", || scalar::full(&dims(shape), value, options))
        }
    }

    fn add(&self, a: &TchTensor, b: &TchTensor) -> Result<TchTensor> {
        binary("add", a, b)?;
        self.run("add", || a.t.f_add(&b.t))
    }
    fn sub(&self, a: &TchTensor, b: &TchTensor) -> Result<TchTensor> {
        binary("sub", a, b)?;
        self.run("sub", || a.t.f_sub(&b.t))
    }
    fn mul(&self, a: &TchTensor, b: &TchTensor) -> Result<TchTensor> {
        binary("mul", a, b)?;
        self.run("mul", || a.t.f_mul(&b.t))
    }
    fn div(&self, a: &TchTensor, b: &TchTensor) -> Result<TchTensor> {
        binary("div", a, b)?;
        self.run("div", || a.t.f_div(&b.t))
    }
    fn maximum(&self, a: &TchTensor, b: &TchTensor) -> Result<TchTensor> {
        // torch.maximum: NaN propagates; on ties the gradient is split half and half.
        binary("maximum", a, b)?;
        self.run("maximum", || a.t.f_maximum(&b.t))
    }
    fn minimum(&self, a: &TchTensor, b: &TchTensor) -> Result<TchTensor> {
        binary("minimum", a, b)?;
        self.run("minimum", || a.t.f_minimum(&b.t))
    }

    fn neg(&self, x: &TchTensor) -> Result<TchTensor> {
        unary("neg", x)?;
        self.run("neg", || x.t.f_neg())
    }
    fn exp(&self, x: &TchTensor) -> Result<TchTensor> {
        unary("exp", x)?;
        self.run("exp", || x.t.f_exp())
    }
    fn log(&self, x: &TchTensor) -> Result<TchTensor> {
        unary("log", x)?;
        self.run("log", || x.t.f_log())
    }
    fn sqrt(&self, x: &TchTensor) -> Result<TchTensor> {
        unary("sqrt", x)?;
        self.run("sqrt", || x.t.f_sqrt())
    }
    fn sigmoid(&self, x: &TchTensor) -> Result<TchTensor> {
        unary("sigmoid", x)?;
        self.run("sigmoid", || x.t.f_sigmoid())
    }
    fn tanh(&self, x: &TchTensor) -> Result<TchTensor> {
        unary("tanh", x)?;
        self.run("tanh", || x.t.f_tanh())
    }
    fn powf(&self, x: &TchTensor, p: f64) -> Result<TchTensor> {
        unary("powf", x)?;
        self.run("powf", || scalar::with_scalar(&x.t, p, |x, p| x.f_pow(p)))
    }
    fn affine(&self, x: &TchTensor, mul: f64, add: f64) -> Result<TchTensor> {
        unary("affine", x)?;
        self.run("affine", || scalar::add(&scalar::mul(&x.t, mul)?, add))
    }
    fn clamp(&self, x: &TchTensor, lo: f64, hi: f64) -> Result<TchTensor> {
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return Err(Error::invalid("clamp", format!("bounds [{lo}, {hi}] are not an interval")));
        }
        unary("clamp", x)?;
        // torch.clamp passes the gradient on lo <= x <= hi (inclusive), as the trait states.
        self.run("clamp", || {
            let lo = scalar::scalar_for(&x.t, lo)?;
            scalar::with_scalar(&x.t, hi, |x, hi| x.f_clamp_tensor(Some(&lo), Some(hi)))
        })
    }

    fn eq(&self, a: &TchTensor, b: &TchTensor) -> Result<TchTensor> {
        compare("eq", a, b, false)?;
        self.run("eq", || a.t.f_eq_tensor(&b.t))
    }
    fn gt(&self, a: &TchTensor, b: &TchTensor) -> Result<TchTensor> {
        compare("gt", a, b, true)?;
        self.run("gt", || a.t.f_gt_tensor(&b.t))
    }
    fn ge(&self, a: &TchTensor, b: &TchTensor) -> Result<TchTensor> {
        compare("ge", a, b, true)?;
        self.run("ge", || a.t.f_ge_tensor(&b.t))
    }
    fn where_(&self, cond: &TchTensor, a: &TchTensor, b: &TchTensor) -> Result<TchTensor> {
        select(cond, a, b)?;
        self.run("where_", || a.t.f_where_self(&cond.t, &b.t))
    }

    fn sum(&self, x: &TchTensor, dim: usize, keepdim: bool) -> Result<TchTensor> {
        unary("sum", x)?;
        check_dim("sum", &shape_of(&x.t), dim)?;
        self.run("sum", || x.t.f_sum_dim_intlist([i64_of(dim)].as_slice(), keepdim, None::<Kind>))
    }
    fn max(&self, x: &TchTensor, dim: usize, keepdim: bool) -> Result<TchTensor> {
        unary("max", x)?;
        let shape = shape_of(&x.t);
        check_dim("max", &shape, dim)?;
        if shape[dim] == 0 {
            return Err(Error::shape("max", format!("dimension {dim} of shape {shape:?} is empty")));
        }
        // amax: NaN propagates, tied maxima share the gradient evenly.
        self.run("max", || x.t.f_amax([i64_of(dim)].as_slice(), keepdim))
    }
    fn cumsum(&self, x: &TchTensor, dim: usize) -> Result<TchTensor> {
        unary("cumsum", x)?;
        check_dim("cumsum", &shape_of(&x.t), dim)?;
        self.run("cumsum", || x.t.f_cumsum(i64_of(dim), None::<Kind>))
    }
    fn sort(&self, x: &TchTensor, dim: usize, descending: bool) -> Result<(TchTensor, TchTensor)> {
        check_dim("sort", &shape_of(&x.t), dim)?;
        if dtype_of(&x.t) != DType::I64 {
            check_float("sort", "the input", dtype_of(&x.t))?;
        }
        let (v, i) = self.run_any("sort", || x.t.f_sort_stable(true, i64_of(dim), descending))?;
        Ok((TchTensor::new(v), TchTensor::new(i)))
    }

    fn reshape(&self, x: &TchTensor, shape: &[usize]) -> Result<TchTensor> {
        let from = shape_of(&x.t);
        if numel("reshape", shape)? != numel("reshape", &from)? {
            return Err(Error::shape("reshape", format!("cannot reshape {from:?} into {shape:?}")));
        }
        self.run("reshape", || x.t.f_reshape(dims(shape)))
    }
    fn transpose(&self, x: &TchTensor, d0: usize, d1: usize) -> Result<TchTensor> {
        let shape = shape_of(&x.t);
        check_dim("transpose", &shape, d0)?;
        check_dim("transpose", &shape, d1)?;
        self.run("transpose", || x.t.f_transpose(i64_of(d0), i64_of(d1)))
    }
    fn narrow(&self, x: &TchTensor, dim: usize, start: usize, len: usize) -> Result<TchTensor> {
        check_range("narrow", &shape_of(&x.t), dim, start, len)?;
        self.run("narrow", || x.t.f_narrow(i64_of(dim), i64_of(start), i64_of(len)))
    }
    fn cat(&self, xs: &[TchTensor], dim: usize) -> Result<TchTensor> {
        let first = xs.first().ok_or_else(|| Error::shape("cat", "no tensors to concatenate"))?;
        let a = shape_of(&first.t);
        check_dim("cat", &a, dim)?;
        for x in xs {
            check_same_dtype("cat", dtype_of(&first.t), dtype_of(&x.t))?;
            let b = shape_of(&x.t);
            if !fits_except(&a, &b, dim) {
                return Err(Error::shape(
                    "cat",
                    format!("shapes {a:?} and {b:?} differ outside dimension {dim}"),
                ));
            }
        }
        let ts: Vec<&Tensor> = xs.iter().map(|x| &*x.t).collect();
        self.run("cat", || Tensor::f_cat(&ts, i64_of(dim)))
    }
    fn index_select(&self, x: &TchTensor, dim: usize, idx: &TchTensor) -> Result<TchTensor> {
        const OP: &str = "index_select";
        let xs = shape_of(&x.t);
        check_dim(OP, &xs, dim)?;
        let is = shape_of(&idx.t);
        if is.len() != 1 {
            return Err(Error::shape(OP, format!("indices must be 1-D, got shape {is:?}")));
        }
        let context = || format!("dimension {dim} of shape {xs:?}");
        self.indexed(OP, &idx.t, xs[dim], context, || x.t.f_index_select(i64_of(dim), &idx.t))
    }
    fn gather(&self, x: &TchTensor, dim: usize, idx: &TchTensor) -> Result<TchTensor> {
        const OP: &str = "gather";
        let (xs, is) = (shape_of(&x.t), shape_of(&idx.t));
        check_dim(OP, &xs, dim)?;
        if !fits_except(&xs, &is, dim) {
            return Err(Error::shape(
                OP,
                format!("index of shape {is:?} does not fit input of shape {xs:?} along dimension {dim}"),
            ));
        }
        let context = || format!("dimension {dim} of shape {xs:?}");
        self.indexed(OP, &idx.t, xs[dim], context, || x.t.f_gather(i64_of(dim), &idx.t, false))
    }
    fn write_slice(&self, dst: &TchTensor, dim: usize, start: usize, src: &TchTensor) -> Result<()> {
        const OP: &str = "write_slice";
        if dst.param || dst.t.requires_grad() {
            return Err(Error::invalid(
                OP,
                "the destination is a parameter or depends on one (no gradient through writes)",
            ));
        }
        check_same_dtype(OP, dtype_of(&dst.t), dtype_of(&src.t))?;
        let (ds, ss) = (shape_of(&dst.t), shape_of(&src.t));
        if !fits_except(&ds, &ss, dim) {
            return Err(Error::shape(
                OP,
                format!(
                    "source of shape {ss:?} does not fit destination of shape {ds:?} along dimension {dim}"
                ),
            ));
        }
        check_range(OP, &ds, dim, start, ss[dim])?;
        let _guard = tch::no_grad_guard();
        let mut view =
            dst.t.f_narrow(i64_of(dim), i64_of(start), i64_of(ss[dim])).map_err(|e| tch_err(OP, e))?;
        view.f_copy_(&src.t).map_err(|e| tch_err(OP, e))
    }
    fn matmul(&self, a: &TchTensor, b: &TchTensor) -> Result<TchTensor> {
        let (da, db) = (dtype_of(&a.t), dtype_of(&b.t));
        check_float("matmul", "the left operand", da)?;
        check_float("matmul", "the right operand", db)?;
        check_same_dtype("matmul", da, db)?;
        matmul_shape("matmul", &shape_of(&a.t), &shape_of(&b.t))?;
        self.run("matmul", || a.t.f_matmul(&b.t))
    }
    fn cast(&self, x: &TchTensor, dtype: DType) -> Result<TchTensor> {
        let from = dtype_of(&x.t);
        if from == dtype {
            return Ok(x.clone());
        }
        if dtype == DType::I64
            && from.is_float()
            && let Some(index) = self.first_non_finite("cast", &x.t)?
        {
            return Err(Error::NonFinite { op: "cast", what: "x (cast to i64)", index });
        }
        self.run("cast", || x.t.f_to_kind(kind(dtype)))
    }

    fn param(&self, t: &TchTensor) -> Result<TchTensor> {
        check_float("param", "the initial value", dtype_of(&t.t))?;
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
    fn detach(&self, t: &TchTensor) -> Result<TchTensor> {
        t.t.f_detach().map(TchTensor::new).map_err(|e| tch_err("detach", e))
    }
    fn backward(&self, loss: &TchTensor) -> Result<TchGrads> {
        check_float("backward", "the loss", dtype_of(&loss.t))?;
        let shape = shape_of(&loss.t);
        if numel("backward", &shape)? != 1 {
            return Err(Error::shape(
                "backward",
                format!("the loss must have exactly one element, got shape {shape:?}"),
            ));
        }
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
    fn grad(&self, grads: &TchGrads, param: &TchTensor) -> Result<Option<TchTensor>> {
        Ok(grads
            .grads
            .iter()
            .find(|(p, _)| Rc::ptr_eq(p, &param.t))
            .map(|(_, g)| TchTensor::new(g.shallow_clone())))
    }
    fn assign_param(&self, param: &TchTensor, value: &TchTensor) -> Result<()> {
        if !param.param {
            return Err(Error::invalid("assign_param", "the target is not a parameter (see Backend::param)"));
        }
        check_float("assign_param", "the new value", dtype_of(&value.t))?;
        let (p, v) = (shape_of(&param.t), shape_of(&value.t));
        if p != v {
            return Err(Error::shape(
                "assign_param",
                format!("parameter has shape {p:?} but the value has shape {v:?}"),
            ));
        }
        let _guard = tch::no_grad_guard();
        param.t.shallow_clone().f_copy_(&value.t).map_err(|e| tch_err("assign_param", e))
    }
    fn set_grad_enabled(&self, enabled: bool) -> bool {
        self.grad_enabled.replace(enabled)
    }

    fn log_softmax(&self, x: &TchTensor, dim: usize) -> Result<TchTensor> {
        self.native_log_softmax(x, dim)
    }
    fn softmax(&self, x: &TchTensor, dim: usize) -> Result<TchTensor> {
        self.native_softmax(x, dim)
    }
    fn logsumexp(&self, x: &TchTensor, dim: usize, keepdim: bool) -> Result<TchTensor> {
        self.native_logsumexp(x, dim, keepdim)
    }
    fn silu(&self, x: &TchTensor) -> Result<TchTensor> {
        unary("silu", x)?;
        self.run("silu", || x.t.f_silu())
    }
    fn selective_log_prob(&self, logits: &TchTensor, targets: &TchTensor) -> Result<TchTensor> {
        self.native_selective_log_prob(logits, targets)
    }
    fn attention(&self, q: &TchTensor, k: &TchTensor, v: &TchTensor, mask: &TchTensor) -> Result<TchTensor> {
        self.sdpa(q, k, v, mask)
    }
    fn causal_attention(
        &self,
        q: &TchTensor,
        k: &TchTensor,
        v: &TchTensor,
        segment_ids: &TchTensor,
    ) -> Result<TchTensor> {
        self.sdpa_causal(q, k, v, segment_ids)
    }
    fn adamw_update(
        &self,
        param: &TchTensor,
        grad: &TchTensor,
        m: &TchTensor,
        v: &TchTensor,
        hp: &AdamWStep,
    ) -> Result<(TchTensor, TchTensor)> {
        self.native_adamw(param, grad, m, v, hp)
    }
    fn clip_grad_norm(&self, grads: &[TchTensor], max_norm: f64) -> Result<(Vec<TchTensor>, f64)> {
        self.native_clip_grad_norm(grads, max_norm)
    }
}
