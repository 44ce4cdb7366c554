//! Element-wise operations: broadcasting binary arithmetic, unary functions, comparisons,
//! `where_` and casts.

use orz_core::backend::DType;
use orz_core::backend::shape::{broadcast_shapes, check_float, check_same_dtype};
use orz_core::{Error, Result};

use super::index::broadcast_map;
use crate::Reference;
use crate::tensor::Tensor;

/// `max` that propagates NaN (as `torch.maximum` does; `f64::max` would drop it).
pub(crate) fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

/// `min` that propagates NaN.
pub(crate) fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }
}

/// Gradient split of `maximum(a, b)`: all to the larger, half each on a tie.
pub(crate) fn max_split(a: f64, b: f64) -> (f64, f64) {
    if a > b {
        (1.0, 0.0)
    } else if a < b {
        (0.0, 1.0)
    } else if a == b {
        (0.5, 0.5)
    } else {
        (1.0, 1.0) // a NaN: PyTorch passes the gradient to both
    }
}

impl Reference {
    /// A broadcasting binary float op with value `f(a, b)` and partial derivatives `df(a, b)`.
    pub(crate) fn binary(
        &self,
        op: &'static str,
        a: &Tensor,
        b: &Tensor,
        f: impl Fn(f64, f64) -> f64,
        df: impl Fn(f64, f64) -> (f64, f64) + 'static,
    ) -> Result<Tensor> {
        check_float(op, "the left operand", a.dtype())?;
        check_float(op, "the right operand", b.dtype())?;
        check_same_dtype(op, a.dtype(), b.dtype())?;
        let shape = broadcast_shapes(op, a.shape(), b.shape())?;
        let (ia, ib) = (broadcast_map(a.shape(), &shape), broadcast_map(b.shape(), &shape));
        let (av, bv) = (a.values(), b.values());
        let data: Vec<f64> = ia.iter().zip(&ib).map(|(&i, &j)| f(av[i], bv[j])).collect();
        Ok(self.record(shape, a.dtype(), data, vec![a.clone(), b.clone()], move |g| {
            let (mut ga, mut gb) = (vec![0.0; av.len()], vec![0.0; bv.len()]);
            for (k, (&i, &j)) in ia.iter().zip(&ib).enumerate() {
                let (da, db) = df(av[i], bv[j]);
                ga[i] += g[k] * da;
                gb[j] += g[k] * db;
            }
            vec![Some(ga), Some(gb)]
        }))
    }

    /// A unary float op with value `f(x)` and derivative `df(x, f(x))`.
    pub(crate) fn unary(
        &self,
        op: &'static str,
        x: &Tensor,
        f: impl Fn(f64) -> f64,
        df: impl Fn(f64, f64) -> f64 + 'static,
    ) -> Result<Tensor> {
        check_float(op, "the input", x.dtype())?;
        let xv = x.values();
        let data: Vec<f64> = xv.iter().map(|&v| f(v)).collect();
        let yv = data.clone();
        Ok(self.record(x.shape().to_vec(), x.dtype(), data, vec![x.clone()], move |g| {
            vec![Some(g.iter().zip(xv.iter().zip(&yv)).map(|(g, (&x, &y))| g * df(x, y)).collect())]
        }))
    }

    /// A broadcasting comparison giving a Bool tensor (no gradient). `ordered` comparisons
    /// (`gt`, `ge`) reject Bool operands.
    pub(crate) fn compare(
        &self,
        op: &'static str,
        a: &Tensor,
        b: &Tensor,
        ordered: bool,
        f: impl Fn(f64, f64) -> bool,
    ) -> Result<Tensor> {
        check_same_dtype(op, a.dtype(), b.dtype())?;
        if ordered && a.dtype() == DType::Bool {
            return Err(Error::dtype(op, "bool operands have no order; cast them first"));
        }
        let shape = broadcast_shapes(op, a.shape(), b.shape())?;
        let (ia, ib) = (broadcast_map(a.shape(), &shape), broadcast_map(b.shape(), &shape));
        let (av, bv) = (a.values(), b.values());
        let data = ia.iter().zip(&ib).map(|(&i, &j)| f64::from(u8::from(f(av[i], bv[j])))).collect();
        Ok(Tensor::constant(shape, DType::Bool, data))
    }

    /// `cond ? a : b`, all three broadcast together.
    pub(crate) fn select_where(&self, cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        const OP: &str = "where_";
        if cond.dtype() != DType::Bool {
            return Err(Error::dtype(
                OP,
                format!("the condition has dtype {}, bool is required", cond.dtype()),
            ));
        }
        check_same_dtype(OP, a.dtype(), b.dtype())?;
        let shape = broadcast_shapes(OP, &broadcast_shapes(OP, cond.shape(), a.shape())?, b.shape())
            .map_err(|_| {
                let (c, a, b) = (cond.shape(), a.shape(), b.shape());
                Error::shape(OP, format!("shapes {c:?}, {a:?} and {b:?} do not broadcast"))
            })?;
        let ic = broadcast_map(cond.shape(), &shape);
        let (ia, ib) = (broadcast_map(a.shape(), &shape), broadcast_map(b.shape(), &shape));
        let (cv, av, bv) = (cond.values(), a.values(), b.values());
        let take: Vec<bool> = ic.iter().map(|&c| cv[c] != 0.0).collect();
        let data: Vec<f64> =
            take.iter().enumerate().map(|(k, &t)| if t { av[ia[k]] } else { bv[ib[k]] }).collect();
        let (na, nb) = (av.len(), bv.len());
        Ok(self.record(shape, a.dtype(), data, vec![a.clone(), b.clone()], move |g| {
            let (mut ga, mut gb) = (vec![0.0; na], vec![0.0; nb]);
            for (k, &t) in take.iter().enumerate() {
                if t {
                    ga[ia[k]] += g[k];
                } else {
                    gb[ib[k]] += g[k];
                }
            }
            vec![Some(ga), Some(gb)]
        }))
    }

    /// Converts to `dtype` (values stay exact between float dtypes).
    pub(crate) fn cast_to(&self, x: &Tensor, dtype: DType) -> Result<Tensor> {
        let xv = x.values();
        let data: Vec<f64> = match dtype {
            DType::Bool => xv.iter().map(|&v| f64::from(u8::from(v != 0.0))).collect(),
            DType::I64 if x.dtype().is_float() => {
                if let Some(i) = xv.iter().position(|v| !v.is_finite()) {
                    return Err(Error::NonFinite { op: "cast", what: "x (cast to i64)", index: i });
                }
                xv.iter().map(|v| v.trunc()).collect()
            }
            _ => xv.to_vec(),
        };
        let parents = if x.dtype().is_float() && dtype.is_float() { vec![x.clone()] } else { vec![] };
        Ok(self.record(x.shape().to_vec(), dtype, data, parents, |g| vec![Some(g.to_vec())]))
    }
}
