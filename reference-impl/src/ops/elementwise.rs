//! Element-wise operations: the binary, unary and comparison families, `where_` and casts.
//! Arguments arrive checked ([`orz_core::backend::check`]).

use orz_core::backend::shape::broadcast_shapes;
use orz_core::backend::{BinaryOp, CompareOp, DType, UnaryOp};
use orz_core::{Error, Result};

use super::index::broadcast_map;
use crate::Reference;
use crate::tensor::Tensor;

impl Reference {
    /// A broadcasting binary float op: values [`BinaryOp::apply`], partial derivatives
    /// [`BinaryOp::derivatives`].
    pub(crate) fn binary_op(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let (f, df) = (move |x, y| op.apply(x, y), move |x, y| op.derivatives(x, y));
        let shape = broadcast_shapes(op.name(), a.shape(), b.shape())?;
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

    /// A unary float op: values [`UnaryOp::apply`], derivative [`UnaryOp::derivative`] at
    /// `(x, f(x))`.
    pub(crate) fn unary_op(&self, op: UnaryOp, x: &Tensor) -> Result<Tensor> {
        let (f, df) = (move |v| op.apply(v), move |x, y| op.derivative(x, y));
        let xv = x.values();
        let data: Vec<f64> = xv.iter().map(|&v| f(v)).collect();
        let yv = data.clone();
        Ok(self.record(x.shape().to_vec(), x.dtype(), data, vec![x.clone()], move |g| {
            vec![Some(g.iter().zip(xv.iter().zip(&yv)).map(|(g, (&x, &y))| g * df(x, y)).collect())]
        }))
    }

    /// A broadcasting comparison giving a Bool tensor (no gradient).
    pub(crate) fn compare_op(&self, op: CompareOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let f = move |x, y| op.apply(x, y);
        let shape = broadcast_shapes(op.name(), a.shape(), b.shape())?;
        let (ia, ib) = (broadcast_map(a.shape(), &shape), broadcast_map(b.shape(), &shape));
        let (av, bv) = (a.values(), b.values());
        let data = ia.iter().zip(&ib).map(|(&i, &j)| f64::from(u8::from(f(av[i], bv[j])))).collect();
        Ok(Tensor::constant(shape, DType::Bool, data))
    }

    /// `cond ? a : b`, all three broadcast together.
    pub(crate) fn select_where(&self, cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        const OP: &str = "where_";
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
