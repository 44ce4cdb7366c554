//! # orz-plain-backend: what a new backend must write
//!
//! A complete orz-rs backend in plain Rust on the CPU, written as a new backend's author would:
//! [`PlainKernels`] implements [`Primitives`] (the forward ops) and nothing else; core's
//! [`Tape`] adds reverse-mode autodiff and core's default composites do the rest, so
//! [`Plain`] `= Tape<PlainKernels>` is a [`Backend`](orz_core::backend::Backend) that the
//! conformance suite certifies (`tests/conformance.rs`).
//!
//! Arguments arrive checked (shapes, dtypes, dimensions, bounds: see `orz_core::backend::check`),
//! so the kernels only compute; they still check what only they read: index values in range and
//! non-finite values cast to I64. Floats are stored as f32 (BF16 and F16 values rounded to their
//! format with [`DType::round`]), computed in f64 through the op families' `apply` and rounded
//! once per op.

use std::cell::RefCell;
use std::rc::Rc;

use orz_core::backend::shape::{broadcast_shapes, matmul_shape, sort_order, split_at_dim};
use orz_core::backend::tape::Tape;
use orz_core::backend::{BinaryOp, CompareOp, DType, Primitives, ReduceOp, UnaryOp};
use orz_core::{Error, Result};

/// The example backend: the plain kernels with autodiff from core's tape.
pub type Plain = Tape<PlainKernels>;

/// The forward-only CPU kernels.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainKernels;

/// The one device: the host CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu;

/// Values of one dtype, row-major.
#[derive(Debug, Clone)]
enum Data {
    /// F32, BF16 and F16 values (the last two rounded to their format).
    F(Vec<f32>),
    /// I64 values.
    I(Vec<i64>),
    /// Bool values.
    B(Vec<bool>),
}

impl Data {
    /// The elements at `idx`, in that order.
    fn pick(&self, idx: &[usize]) -> Data {
        match self {
            Data::F(v) => Data::F(idx.iter().map(|&i| v[i]).collect()),
            Data::I(v) => Data::I(idx.iter().map(|&i| v[i]).collect()),
            Data::B(v) => Data::B(idx.iter().map(|&i| v[i]).collect()),
        }
    }

    /// Every value widened to f64 (Bool as 0 and 1).
    fn f64s(&self) -> Vec<f64> {
        match self {
            Data::F(v) => v.iter().map(|&x| f64::from(x)).collect(),
            Data::I(v) => v.iter().map(|&x| x as f64).collect(),
            Data::B(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
        }
    }
}

/// A tensor: shape, dtype and storage shared by its clones (and by reshapes of it).
#[derive(Debug, Clone)]
pub struct PlainTensor {
    shape: Vec<usize>,
    dtype: DType,
    data: Rc<RefCell<Data>>,
}

impl PlainTensor {
    fn new(shape: &[usize], dtype: DType, data: Data) -> Self {
        PlainTensor { shape: shape.to_vec(), dtype, data: Rc::new(RefCell::new(data)) }
    }

    /// A tensor of `dtype` from f64 values: floats rounded to the dtype, I64 truncated (a
    /// non-finite value is an error naming `op`), Bool `!= 0`.
    fn from_f64(
        op: &'static str,
        shape: &[usize],
        dtype: DType,
        v: impl Iterator<Item = f64>,
    ) -> Result<Self> {
        let data = match dtype {
            DType::F32 => Data::F(v.map(|x| x as f32).collect()),
            DType::BF16 | DType::F16 => Data::F(v.map(|x| dtype.round(x) as f32).collect()),
            DType::Bool => Data::B(v.map(|x| x != 0.0).collect()),
            DType::I64 => Data::I(
                v.enumerate()
                    .map(|(index, x)| match x.is_finite() {
                        true => Ok(x.trunc() as i64),
                        false => Err(Error::NonFinite { op, what: "the input", index }),
                    })
                    .collect::<Result<_>>()?,
            ),
        };
        Ok(PlainTensor::new(shape, dtype, data))
    }

    fn f64s(&self) -> Vec<f64> {
        self.data.borrow().f64s()
    }

    /// The same dtype with the elements at `idx` and shape `shape`.
    fn pick(&self, shape: &[usize], idx: &[usize]) -> Self {
        PlainTensor::new(shape, self.dtype, self.data.borrow().pick(idx))
    }

    /// The I64 values of an index tensor, each checked against `size` (dimension `dim` of `of`).
    fn indices(&self, op: &'static str, size: usize, dim: usize, of: &[usize]) -> Result<Vec<usize>> {
        let check = |&i: &i64| match usize::try_from(i) {
            Ok(u) if u < size => Ok(u),
            _ => Err(Error::IndexOutOfRange {
                op,
                index: i,
                size,
                context: format!("dimension {dim} of shape {of:?}"),
            }),
        };
        match &*self.data.borrow() {
            Data::I(v) => v.iter().map(check).collect(),
            _ => Err(Error::dtype(op, "indices must be i64")),
        }
    }
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// For every element of `out` (row-major), `offset` plus its coordinates dotted with `strides`.
fn walk(out: &[usize], strides: &[usize], offset: usize) -> Vec<usize> {
    let n: usize = out.iter().product();
    (0..n)
        .map(|mut i| {
            let mut at = offset;
            for d in (0..out.len()).rev() {
                at += (i % out[d]) * strides[d];
                i /= out[d];
            }
            at
        })
        .collect()
}

/// For every element of the broadcast shape `out`, the flat index of the element of `shape`
/// that broadcasts to it.
fn bcast(out: &[usize], shape: &[usize]) -> Vec<usize> {
    let mut s = vec![0; out.len() - shape.len()];
    s.extend(shape.iter().zip(strides(shape)).map(|(&n, st)| if n == 1 { 0 } else { st }));
    walk(out, &s, 0)
}

/// Every lane along `dim` (outer index first): its first element's flat index and its stride.
fn lanes(shape: &[usize], dim: usize) -> impl Iterator<Item = (usize, usize)> {
    let (outer, n, inner) = split_at_dim(shape, dim);
    (0..outer).flat_map(move |o| (0..inner).map(move |i| (o * n * inner + i, inner)))
}

impl Primitives for PlainKernels {
    type Tensor = PlainTensor;
    type Device = Cpu;

    fn name_impl(&self) -> &'static str {
        "plain"
    }
    fn device_impl(&self) -> Cpu {
        Cpu
    }
    fn sync_impl(&self) -> Result<()> {
        Ok(())
    }
    fn tensor_f32_impl(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<PlainTensor> {
        PlainTensor::from_f64("tensor_f32", shape, dtype, data.iter().map(|&x| f64::from(x)))
    }
    fn tensor_i64_impl(&self, data: &[i64], shape: &[usize]) -> Result<PlainTensor> {
        Ok(PlainTensor::new(shape, DType::I64, Data::I(data.to_vec())))
    }
    fn to_host_f32_impl(&self, t: &PlainTensor) -> Result<Vec<f32>> {
        Ok(t.f64s().into_iter().map(|x| x as f32).collect())
    }
    fn to_host_i64_impl(&self, t: &PlainTensor) -> Result<Vec<i64>> {
        Ok(t.f64s().into_iter().map(|x| x as i64).collect())
    }
    fn shape_impl(&self, t: &PlainTensor) -> Vec<usize> {
        t.shape.clone()
    }
    fn dtype_impl(&self, t: &PlainTensor) -> DType {
        t.dtype
    }
    fn full_impl(&self, shape: &[usize], value: f64, dtype: DType) -> Result<PlainTensor> {
        let n = shape.iter().product();
        PlainTensor::from_f64("full", shape, dtype, std::iter::repeat_n(value, n))
    }
    fn unary(&self, op: UnaryOp, x: &PlainTensor) -> Result<PlainTensor> {
        PlainTensor::from_f64(op.name(), &x.shape, x.dtype, x.f64s().into_iter().map(|v| op.apply(v)))
    }
    fn binary(&self, op: BinaryOp, a: &PlainTensor, b: &PlainTensor) -> Result<PlainTensor> {
        let out = broadcast_shapes(op.name(), &a.shape, &b.shape)?;
        let (va, vb) = (a.f64s(), b.f64s());
        let ab = bcast(&out, &a.shape).into_iter().zip(bcast(&out, &b.shape));
        PlainTensor::from_f64(op.name(), &out, a.dtype, ab.map(|(i, j)| op.apply(va[i], vb[j])))
    }
    fn compare(&self, op: CompareOp, a: &PlainTensor, b: &PlainTensor) -> Result<PlainTensor> {
        let out = broadcast_shapes(op.name(), &a.shape, &b.shape)?;
        let (va, vb) = (a.f64s(), b.f64s());
        let ab = bcast(&out, &a.shape).into_iter().zip(bcast(&out, &b.shape));
        Ok(PlainTensor::new(&out, DType::Bool, Data::B(ab.map(|(i, j)| op.apply(va[i], vb[j])).collect())))
    }
    fn where_impl(&self, cond: &PlainTensor, a: &PlainTensor, b: &PlainTensor) -> Result<PlainTensor> {
        let out = broadcast_shapes("where_", &broadcast_shapes("where_", &cond.shape, &a.shape)?, &b.shape)?;
        let (vc, ia, ib) = (cond.f64s(), bcast(&out, &a.shape), bcast(&out, &b.shape));
        let n: usize = a.shape.iter().product();
        // Pick from a and b laid end to end, so that every dtype is copied exactly.
        let idx: Vec<usize> = bcast(&out, &cond.shape)
            .iter()
            .enumerate()
            .map(|(k, &c)| if vc[c] != 0.0 { ia[k] } else { n + ib[k] })
            .collect();
        let both = self.cat_flat(&[a, b]);
        Ok(PlainTensor::new(&out, a.dtype, both.pick(&idx)))
    }
    fn reduce(&self, op: ReduceOp, x: &PlainTensor, dim: usize, keepdim: bool) -> Result<PlainTensor> {
        let (_, n, _) = split_at_dim(&x.shape, dim);
        let v = x.f64s();
        let out: Vec<f64> = lanes(&x.shape, dim)
            .map(|(start, inner)| {
                let lane = (0..n).map(|k| v[start + k * inner]);
                match op {
                    ReduceOp::Sum => lane.sum(),
                    ReduceOp::Max => lane.fold(f64::NEG_INFINITY, |m, y| BinaryOp::Maximum.apply(m, y)),
                }
            })
            .collect();
        let mut shape = x.shape.clone();
        if keepdim {
            shape[dim] = 1;
        } else {
            shape.remove(dim);
        }
        PlainTensor::from_f64(op.name(), &shape, x.dtype, out.into_iter())
    }
    fn cumsum_impl(&self, x: &PlainTensor, dim: usize) -> Result<PlainTensor> {
        let (_, n, _) = split_at_dim(&x.shape, dim);
        let mut v = x.f64s();
        for (start, inner) in lanes(&x.shape, dim) {
            for k in 1..n {
                v[start + k * inner] += v[start + (k - 1) * inner];
            }
        }
        PlainTensor::from_f64("cumsum", &x.shape, x.dtype, v.into_iter())
    }
    fn sort_impl(&self, x: &PlainTensor, dim: usize, descending: bool) -> Result<(PlainTensor, PlainTensor)> {
        let (_, n, _) = split_at_dim(&x.shape, dim);
        let v = x.f64s();
        let (mut from, mut order) = (vec![0; v.len()], vec![0; v.len()]);
        for (start, inner) in lanes(&x.shape, dim) {
            let mut ks: Vec<usize> = (0..n).collect();
            let at = |k: usize| v[start + k * inner];
            // Stable: equal values keep their input order either way.
            ks.sort_by(|&p, &q| if descending { sort_order(at(q), at(p)) } else { sort_order(at(p), at(q)) });
            for (slot, k) in ks.into_iter().enumerate() {
                (from[start + slot * inner], order[start + slot * inner]) = (start + k * inner, k as i64);
            }
        }
        Ok((x.pick(&x.shape, &from), PlainTensor::new(&x.shape, DType::I64, Data::I(order))))
    }
    fn reshape_impl(&self, x: &PlainTensor, shape: &[usize]) -> Result<PlainTensor> {
        Ok(PlainTensor { shape: shape.to_vec(), dtype: x.dtype, data: Rc::clone(&x.data) })
    }
    fn transpose_impl(&self, x: &PlainTensor, d0: usize, d1: usize) -> Result<PlainTensor> {
        let (mut shape, mut s) = (x.shape.clone(), strides(&x.shape));
        shape.swap(d0, d1);
        s.swap(d0, d1);
        Ok(x.pick(&shape, &walk(&shape, &s, 0)))
    }
    fn narrow_impl(&self, x: &PlainTensor, dim: usize, start: usize, len: usize) -> Result<PlainTensor> {
        let (mut shape, s) = (x.shape.clone(), strides(&x.shape));
        shape[dim] = len;
        Ok(x.pick(&shape, &walk(&shape, &s, start * s[dim])))
    }
    fn cat_impl(&self, xs: &[PlainTensor], dim: usize) -> Result<PlainTensor> {
        let mut shape = xs[0].shape.clone();
        shape[dim] = xs.iter().map(|x| x.shape[dim]).sum();
        let (outer, _, inner) = split_at_dim(&shape, dim);
        let mut idx = Vec::with_capacity(shape.iter().product());
        for o in 0..outer {
            let mut start = 0; // where x's values begin in the tensors laid end to end
            for x in xs {
                let block = x.shape[dim] * inner;
                idx.extend(start + o * block..start + (o + 1) * block);
                start += x.shape.iter().product::<usize>();
            }
        }
        let all: Vec<&PlainTensor> = xs.iter().collect();
        Ok(PlainTensor::new(&shape, xs[0].dtype, self.cat_flat(&all).pick(&idx)))
    }
    fn index_select_impl(&self, x: &PlainTensor, dim: usize, idx: &PlainTensor) -> Result<PlainTensor> {
        let (outer, n, inner) = split_at_dim(&x.shape, dim);
        let ids = idx.indices("index_select", n, dim, &x.shape)?;
        let mut shape = x.shape.clone();
        shape[dim] = ids.len();
        let from = (0..outer)
            .flat_map(|o| ids.iter().flat_map(move |&k| (0..inner).map(move |i| (o * n + k) * inner + i)));
        Ok(x.pick(&shape, &from.collect::<Vec<_>>()))
    }
    fn gather_impl(&self, x: &PlainTensor, dim: usize, idx: &PlainTensor) -> Result<PlainTensor> {
        let (_, n, inner) = split_at_dim(&x.shape, dim);
        let ids = idx.indices("gather", n, dim, &x.shape)?;
        let (_, m, _) = split_at_dim(&idx.shape, dim);
        let from = ids.iter().enumerate().map(|(p, &k)| (p / (m * inner) * n + k) * inner + p % inner);
        Ok(x.pick(&idx.shape, &from.collect::<Vec<_>>()))
    }
    fn write_slice_impl(&self, dst: &PlainTensor, dim: usize, start: usize, src: &PlainTensor) -> Result<()> {
        let values = src.data.borrow().clone(); // src may share dst's storage
        let s = strides(&dst.shape);
        let to = walk(&src.shape, &s, start * s[dim]);
        match (&mut *dst.data.borrow_mut(), &values) {
            (Data::F(d), Data::F(v)) => to.iter().zip(v).for_each(|(&t, &x)| d[t] = x),
            (Data::I(d), Data::I(v)) => to.iter().zip(v).for_each(|(&t, &x)| d[t] = x),
            (Data::B(d), Data::B(v)) => to.iter().zip(v).for_each(|(&t, &x)| d[t] = x),
            _ => return Err(Error::dtype("write_slice", "source and destination dtypes differ")),
        }
        Ok(())
    }
    fn matmul_impl(&self, a: &PlainTensor, b: &PlainTensor) -> Result<PlainTensor> {
        let shape = matmul_shape("matmul", &a.shape, &b.shape)?;
        let (r, ra, rb) = (shape.len(), a.shape.len(), b.shape.len());
        let (m, k, n) = (shape[r - 2], a.shape[ra - 1], shape[r - 1]);
        let batch = &shape[..r - 2];
        let (ia, ib) = (bcast(batch, &a.shape[..ra - 2]), bcast(batch, &b.shape[..rb - 2]));
        let (va, vb) = (a.f64s(), b.f64s());
        let mut out = Vec::with_capacity(shape.iter().product());
        for (&p, &q) in ia.iter().zip(&ib) {
            for i in 0..m {
                for j in 0..n {
                    out.push((0..k).map(|l| va[(p * m + i) * k + l] * vb[(q * k + l) * n + j]).sum());
                }
            }
        }
        PlainTensor::from_f64("matmul", &shape, a.dtype, out.into_iter())
    }
    fn cast_impl(&self, x: &PlainTensor, dtype: DType) -> Result<PlainTensor> {
        PlainTensor::from_f64("cast", &x.shape, dtype, x.f64s().into_iter())
    }
}

impl PlainKernels {
    /// The storage of tensors of one dtype laid end to end.
    fn cat_flat(&self, xs: &[&PlainTensor]) -> Data {
        let mut out = xs[0].data.borrow().clone();
        for x in &xs[1..] {
            match (&mut out, &*x.data.borrow()) {
                (Data::F(o), Data::F(v)) => o.extend(v),
                (Data::I(o), Data::I(v)) => o.extend(v),
                (Data::B(o), Data::B(v)) => o.extend(v),
                _ => {}
            }
        }
        out
    }
}
