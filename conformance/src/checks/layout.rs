//! Level 1, layout and indexing: `reshape`, `transpose`, `narrow`, `cat`, `index_select`,
//! `gather`, `write_slice` and batched `matmul`, forward and gradient.

use orz_core::Result;
use orz_core::backend::{Backend, DType};
use proptest::collection::vec;
use proptest::prelude::*;

use super::{shape, tensor, tensor_and_dim, values};
use crate::harness::{Harness, Input, Mode, TensorOp};
use crate::runner::CheckOutcome;

/// A layout or indexing primitive with its parameters; `xs[0]` is the data, `xs[1..]` the rest.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// `reshape(x0, shape)`.
    Reshape(Vec<usize>),
    /// `transpose(x0, d0, d1)`.
    Transpose(usize, usize),
    /// `narrow(x0, dim, start, len)`.
    Narrow(usize, usize, usize),
    /// `cat(xs, dim)`.
    Cat(usize),
    /// `index_select(x0, dim, x1)`.
    IndexSelect(usize),
    /// `gather(x0, dim, x1)`.
    Gather(usize),
    /// `write_slice(x0, dim, start, x1)`, then `x0` read through a clone taken before the write.
    WriteSlice(usize, usize),
    /// `matmul(x0, x1)`.
    Matmul,
}

impl TensorOp for Layout {
    fn apply<C: Backend + ?Sized>(&self, b: &C, xs: &[C::Tensor]) -> Result<Vec<C::Tensor>> {
        let x = &xs[0];
        let out = match self {
            Layout::Reshape(s) => b.reshape(x, s)?,
            Layout::Transpose(d0, d1) => b.transpose(x, *d0, *d1)?,
            Layout::Narrow(d, start, len) => b.narrow(x, *d, *start, *len)?,
            Layout::Cat(d) => b.cat(xs, *d)?,
            Layout::IndexSelect(d) => b.index_select(x, *d, &xs[1])?,
            Layout::Gather(d) => b.gather(x, *d, &xs[1])?,
            Layout::WriteSlice(d, start) => {
                let alias = x.clone();
                b.write_slice(x, *d, *start, &xs[1])?;
                alias
            }
            Layout::Matmul => b.matmul(x, &xs[1])?,
        };
        Ok(vec![out])
    }
}

/// Runs `op` on one float tensor in `Mode::Grad`.
fn single<B: Backend>(
    h: &Harness<'_, B>,
    op: Layout,
    shape: &[usize],
    x: &[f64],
    stats: &mut crate::ErrorStats,
) -> core::result::Result<(), String> {
    h.check_op(&op, &[h.float(shape, x)], Mode::Grad, stats)
}

/// `reshape` to the flattened, the reversed and a 1-padded shape.
pub fn check_reshape<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    h.run("reshape", (tensor(3, 4, -3.0, 3.0), 0..3usize), |((s, x), how), stats| {
        let target = match how {
            0 => vec![s.iter().product()],
            1 => s.iter().rev().copied().collect(),
            _ => [&[1], &s[..], &[1]].concat(),
        };
        single(&h, Layout::Reshape(target), s, x, stats)
    })
}

/// `transpose` of any two dimensions (equal ones included).
pub fn check_transpose<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let strategy = tensor(4, 3, -3.0, 3.0).prop_flat_map(|(s, x)| {
        let r = s.len();
        (Just(s), Just(x), 0..r, 0..r)
    });
    h.run("transpose", strategy, |(s, x, d0, d1), stats| single(&h, Layout::Transpose(*d0, *d1), s, x, stats))
}

/// `narrow` of a random range (possibly empty) along a dimension.
pub fn check_narrow<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let strategy = tensor_and_dim(3, 5, -3.0, 3.0).prop_flat_map(|(s, d, x)| {
        let size = s[d];
        (Just(s), Just(d), Just(x), 0..=size)
            .prop_flat_map(move |(s, d, x, start)| (Just(s), Just(d), Just(x), Just(start), 0..=size - start))
    });
    h.run("narrow", strategy, |(s, d, x, start, len), stats| {
        single(&h, Layout::Narrow(*d, *start, *len), s, x, stats)
    })
}

/// `cat` of one to three tensors differing along the concatenated dimension.
pub fn check_cat<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let strategy = (shape(3, 3), vec(1..=3usize, 1..=3)).prop_flat_map(|(s, sizes)| {
        let rank = s.len();
        (Just(s), Just(sizes), 0..rank).prop_flat_map(|(s, sizes, d)| {
            let parts: Vec<_> = sizes
                .iter()
                .map(|&n| {
                    let mut p = s.clone();
                    p[d] = n;
                    let numel = p.iter().product();
                    (Just(p), values(numel, -3.0, 3.0))
                })
                .collect();
            (Just(d), parts)
        })
    });
    h.run("cat", strategy, |(d, parts), stats| {
        let inputs: Vec<Input> = parts.iter().map(|(s, x)| h.float(s, x)).collect();
        h.check_op(&Layout::Cat(*d), &inputs, Mode::Grad, stats)
    })
}

/// `index_select` with repeated indices (the gradient accumulates).
pub fn check_index_select<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let strategy = tensor_and_dim(3, 4, -3.0, 3.0).prop_flat_map(|(s, d, x)| {
        let size = s[d] as i64;
        (Just(s), Just(d), Just(x), vec(0..size, 1..=5))
    });
    h.run("index_select", strategy, |(s, d, x, idx), stats| {
        let inputs = [h.float(s, x), Input::index(&[idx.len()], idx)];
        h.check_op(&Layout::IndexSelect(*d), &inputs, Mode::Grad, stats)
    })
}

/// `gather` along a dimension with an index of any size there (repeats accumulate).
pub fn check_gather<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let strategy = (tensor_and_dim(3, 4, -3.0, 3.0), 1..=4usize).prop_flat_map(|((s, d, x), k)| {
        let mut is = s.clone();
        is[d] = k;
        let n: usize = is.iter().product();
        let size = s[d] as i64;
        (Just(s), Just(d), Just(x), Just(is), vec(0..size, n))
    });
    h.run("gather", strategy, |(s, d, x, is, idx), stats| {
        let inputs = [h.float(s, x), Input::index(is, idx)];
        h.check_op(&Layout::Gather(*d), &inputs, Mode::Grad, stats)
    })
}

/// `write_slice` into a tensor of its own storage, observed through a clone (no gradient).
pub fn check_write_slice<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let strategy = tensor_and_dim(3, 4, -3.0, 3.0).prop_flat_map(|(s, d, x)| {
        let size = s[d];
        (Just(s), Just(d), Just(x), 0..=size).prop_flat_map(|(s, d, x, len)| {
            let mut src = s.clone();
            src[d] = len;
            let n = src.iter().product();
            (Just(s.clone()), Just(d), Just(x), 0..=s[d] - len, Just(src), values(n, -3.0, 3.0))
        })
    });
    h.run("write_slice", strategy, |(s, d, x, start, ss, src), stats| {
        let inputs = [h.float(s, x), h.float(ss, src)];
        h.check_op(&Layout::WriteSlice(*d, *start), &inputs, Mode::Forward, stats)
    })
}

/// Batched `matmul` with broadcast batch dimensions.
pub fn check_matmul<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let dims = (super::broadcast_pair(2, 3), 1..=4usize, 1..=6usize, 1..=4usize, any::<bool>());
    let strategy = dims.prop_flat_map(|((ba, bb), m, k, n, batched)| {
        let (ba, bb) = if batched { (ba, bb) } else { (vec![], vec![]) };
        let sa = [&ba[..], &[m, k]].concat();
        let sb = [&bb[..], &[k, n]].concat();
        let (na, nb) = (sa.iter().product(), sb.iter().product());
        (Just(sa), Just(sb), values(na, -2.0, 2.0), values(nb, -2.0, 2.0))
    });
    h.run("matmul", strategy, |(sa, sb, a, b), stats| {
        h.check_op(&Layout::Matmul, &[h.float(sa, a), h.float(sb, b)], Mode::Grad, stats)
    })
}
