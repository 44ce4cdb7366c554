//! `impl Backend for Reference`: argument checks and dispatch to the operation families in
//! [`crate::ops`]; every provided composite keeps its default body, so the reference certifies
//! the defaults.

use std::rc::Rc;

use orz_core::backend::shape::{check_data_len, check_float};
use orz_core::backend::{Backend, DType};
use orz_core::{Error, Result};

use crate::ops::elementwise::{max_split, nan_max, nan_min};
use crate::tensor::{Kind, Tensor};
use crate::{Cpu, Grads, Reference, autograd};

/// The largest magnitude up to which every integer is exact in f64.
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

impl Backend for Reference {
    type Tensor = Tensor;
    type Device = Cpu;
    type Grads = Grads;

    fn name(&self) -> &'static str {
        "reference"
    }
    fn device(&self) -> Cpu {
        Cpu
    }
    fn sync(&self) -> Result<()> {
        Ok(())
    }

    fn tensor_f32(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<Tensor> {
        check_new_float("tensor_f32", data.len(), shape, dtype)?;
        Ok(Tensor::constant(shape.to_vec(), dtype, data.iter().map(|&x| f64::from(x)).collect()))
    }
    fn tensor_f64(&self, data: &[f64], shape: &[usize], dtype: DType) -> Result<Tensor> {
        check_new_float("tensor_f64", data.len(), shape, dtype)?;
        Ok(Tensor::constant(shape.to_vec(), dtype, data.to_vec()))
    }
    fn tensor_i64(&self, data: &[i64], shape: &[usize]) -> Result<Tensor> {
        check_data_len("tensor_i64", data.len(), shape)?;
        if let Some(&v) = data.iter().find(|&&v| (v as f64).abs() > EXACT_INT) {
            return Err(Error::invalid(
                "tensor_i64",
                format!("{v} is beyond ±2^53, which the reference stores exactly"),
            ));
        }
        Ok(Tensor::constant(shape.to_vec(), DType::I64, data.iter().map(|&v| v as f64).collect()))
    }
    fn tensor_bool(&self, data: &[bool], shape: &[usize]) -> Result<Tensor> {
        check_data_len("tensor_bool", data.len(), shape)?;
        Ok(Tensor::constant(
            shape.to_vec(),
            DType::Bool,
            data.iter().map(|&b| f64::from(u8::from(b))).collect(),
        ))
    }
    fn to_host_f32(&self, t: &Tensor) -> Result<Vec<f32>> {
        Ok(t.values().iter().map(|&x| x as f32).collect())
    }
    fn to_host_f64(&self, t: &Tensor) -> Result<Vec<f64>> {
        Ok(t.to_vec())
    }
    fn to_host_i64(&self, t: &Tensor) -> Result<Vec<i64>> {
        if t.dtype().is_float() {
            let dtype = t.dtype();
            return Err(Error::dtype(
                "to_host_i64",
                format!("tensor has dtype {dtype}; cast it to i64 first"),
            ));
        }
        Ok(t.values().iter().map(|&x| x as i64).collect())
    }
    fn shape(&self, t: &Tensor) -> Vec<usize> {
        t.shape().to_vec()
    }
    fn dtype(&self, t: &Tensor) -> DType {
        t.dtype()
    }
    fn full(&self, shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
        let n = orz_core::backend::shape::numel("full", shape)?;
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
        Ok(Tensor::constant(shape.to_vec(), dtype, vec![value; n]))
    }

    fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.binary("add", a, b, |x, y| x + y, |_, _| (1.0, 1.0))
    }
    fn sub(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.binary("sub", a, b, |x, y| x - y, |_, _| (1.0, -1.0))
    }
    fn mul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.binary("mul", a, b, |x, y| x * y, |x, y| (y, x))
    }
    fn div(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.binary("div", a, b, |x, y| x / y, |x, y| (1.0 / y, -x / (y * y)))
    }
    fn maximum(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.binary("maximum", a, b, nan_max, max_split)
    }
    fn minimum(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.binary("minimum", a, b, nan_min, |x, y| max_split(y, x))
    }

    fn neg(&self, x: &Tensor) -> Result<Tensor> {
        self.unary("neg", x, |v| -v, |_, _| -1.0)
    }
    fn exp(&self, x: &Tensor) -> Result<Tensor> {
        self.unary("exp", x, f64::exp, |_, y| y)
    }
    fn log(&self, x: &Tensor) -> Result<Tensor> {
        self.unary("log", x, f64::ln, |x, _| 1.0 / x)
    }
    fn sqrt(&self, x: &Tensor) -> Result<Tensor> {
        self.unary("sqrt", x, f64::sqrt, |_, y| 0.5 / y)
    }
    fn sigmoid(&self, x: &Tensor) -> Result<Tensor> {
        self.unary("sigmoid", x, |v| 1.0 / (1.0 + (-v).exp()), |_, y| y * (1.0 - y))
    }
    fn tanh(&self, x: &Tensor) -> Result<Tensor> {
        self.unary("tanh", x, f64::tanh, |_, y| 1.0 - y * y)
    }
    fn powf(&self, x: &Tensor, p: f64) -> Result<Tensor> {
        self.unary("powf", x, move |v| v.powf(p), move |v, _| p * v.powf(p - 1.0))
    }
    fn affine(&self, x: &Tensor, mul: f64, add: f64) -> Result<Tensor> {
        self.unary("affine", x, move |v| v * mul + add, move |_, _| mul)
    }
    fn clamp(&self, x: &Tensor, lo: f64, hi: f64) -> Result<Tensor> {
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return Err(Error::invalid("clamp", format!("bounds [{lo}, {hi}] are not an interval")));
        }
        let inside = move |v: f64| lo <= v && v <= hi;
        self.unary(
            "clamp",
            x,
            move |v| if v.is_nan() { v } else { v.clamp(lo, hi) },
            move |v, _| f64::from(u8::from(inside(v))),
        )
    }

    fn eq(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.compare("eq", a, b, false, |x, y| x == y)
    }
    fn gt(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.compare("gt", a, b, true, |x, y| x > y)
    }
    fn ge(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.compare("ge", a, b, true, |x, y| x >= y)
    }
    fn where_(&self, cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.select_where(cond, a, b)
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
        check_float("param", "the initial value", t.dtype())?;
        Ok(Tensor::new(t.shape().to_vec(), t.dtype(), t.values(), Kind::Param))
    }
    fn detach(&self, t: &Tensor) -> Result<Tensor> {
        Ok(Tensor::new(t.shape().to_vec(), t.dtype(), t.values(), Kind::Constant))
    }
    fn backward(&self, loss: &Tensor) -> Result<Grads> {
        autograd::backward(loss)
    }
    fn grad(&self, grads: &Grads, param: &Tensor) -> Result<Option<Tensor>> {
        Ok(grads.get(param).cloned())
    }
    fn assign_param(&self, param: &Tensor, value: &Tensor) -> Result<()> {
        if !param.is_param() {
            return Err(Error::invalid("assign_param", "the target is not a parameter (see Backend::param)"));
        }
        check_float("assign_param", "the new value", value.dtype())?;
        if param.shape() != value.shape() {
            let (p, v) = (param.shape(), value.shape());
            return Err(Error::shape(
                "assign_param",
                format!("parameter has shape {p:?} but the value has shape {v:?}"),
            ));
        }
        let values: Rc<Vec<f64>> = value.values();
        *param.0.data.borrow_mut() = values;
        Ok(())
    }
    fn set_grad_enabled(&self, enabled: bool) -> bool {
        self.grad_enabled.replace(enabled)
    }
}
