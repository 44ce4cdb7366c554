//! The kernels of the reference: [`Primitives`] dispatching to the operation families in
//! [`crate::ops`], [`Autodiff`] over its own f64 tape ([`crate::autograd`]), and [`Composites`]
//! with every default kept, so that the reference certifies the defaults. Arguments arrive
//! checked by [`orz_core::backend::Backend`].

use std::rc::Rc;

use orz_core::backend::check::EXACT_INT;
use orz_core::backend::{Autodiff, BinaryOp, CompareOp, Composites, DType, Primitives, ReduceOp, UnaryOp};
use orz_core::{Error, Result};

use crate::tensor::{Kind, Tensor};
use crate::{Cpu, Grads, Reference, autograd};

impl Primitives for Reference {
    type Tensor = Tensor;
    type Device = Cpu;

    fn name_impl(&self) -> &'static str {
        "reference"
    }
    fn device_impl(&self) -> Cpu {
        Cpu
    }
    fn sync_impl(&self) -> Result<()> {
        Ok(())
    }

    fn tensor_f32_impl(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<Tensor> {
        Ok(Tensor::constant(shape.to_vec(), dtype, data.iter().map(|&x| f64::from(x)).collect()))
    }
    fn tensor_f64_impl(&self, data: &[f64], shape: &[usize], dtype: DType) -> Result<Tensor> {
        Ok(Tensor::constant(shape.to_vec(), dtype, data.to_vec()))
    }
    fn tensor_i64_impl(&self, data: &[i64], shape: &[usize]) -> Result<Tensor> {
        if let Some(&v) = data.iter().find(|&&v| (v as f64).abs() > EXACT_INT) {
            return Err(Error::invalid(
                "tensor_i64",
                format!("{v} is beyond ±2^53, which the reference stores exactly"),
            ));
        }
        Ok(Tensor::constant(shape.to_vec(), DType::I64, data.iter().map(|&v| v as f64).collect()))
    }
    fn tensor_bool_impl(&self, data: &[bool], shape: &[usize]) -> Result<Tensor> {
        Ok(Tensor::constant(
            shape.to_vec(),
            DType::Bool,
            data.iter().map(|&b| f64::from(u8::from(b))).collect(),
        ))
    }
    fn to_host_f32_impl(&self, t: &Tensor) -> Result<Vec<f32>> {
        Ok(t.values().iter().map(|&x| x as f32).collect())
    }
    fn to_host_f64_impl(&self, t: &Tensor) -> Result<Vec<f64>> {
        Ok(t.to_vec())
    }
    fn to_host_i64_impl(&self, t: &Tensor) -> Result<Vec<i64>> {
        Ok(t.values().iter().map(|&x| x as i64).collect())
    }
    fn shape_impl(&self, t: &Tensor) -> Vec<usize> {
        t.shape().to_vec()
    }
    fn dtype_impl(&self, t: &Tensor) -> DType {
        t.dtype()
    }
    fn full_impl(&self, shape: &[usize], value: f64, dtype: DType) -> Result<Tensor> {
        let n = shape.iter().product();
        Ok(Tensor::constant(shape.to_vec(), dtype, vec![value; n]))
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
        self.select_where(cond, a, b)
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

impl Autodiff for Reference {
    type Grads = Grads;

    fn param_impl(&self, t: &Tensor) -> Result<Tensor> {
        Ok(Tensor::new(t.shape().to_vec(), t.dtype(), t.values(), Kind::Param))
    }
    fn detach_impl(&self, t: &Tensor) -> Result<Tensor> {
        Ok(Tensor::new(t.shape().to_vec(), t.dtype(), t.values(), Kind::Constant))
    }
    fn backward_impl(&self, loss: &Tensor) -> Result<Grads> {
        autograd::backward(loss)
    }
    fn grad_impl(&self, grads: &Grads, param: &Tensor) -> Result<Option<Tensor>> {
        Ok(grads.get(param).cloned())
    }
    fn is_param(&self, t: &Tensor) -> bool {
        t.is_param()
    }
    fn requires_grad(&self, t: &Tensor) -> bool {
        t.requires_grad()
    }
    fn assign_param_impl(&self, param: &Tensor, value: &Tensor) -> Result<()> {
        let values: Rc<Vec<f64>> = value.values();
        *param.0.data.borrow_mut() = values;
        Ok(())
    }
    fn set_grad_enabled_impl(&self, enabled: bool) -> bool {
        self.grad_enabled.replace(enabled)
    }
}

/// Every composite keeps its default: the reference certifies the defaults.
impl Composites for Reference {}
