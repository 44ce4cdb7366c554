//! Shape arithmetic shared by every backend, so that all of them accept the same shapes and
//! reject the others with the same messages.
//!
//! Shapes are `&[usize]`, outermost dimension first; the empty shape `[]` is a scalar with one
//! element. Dimensions are non-negative `usize` indices (no negative "from the end" indices).

use alloc::format;
use alloc::vec::Vec;

use super::DType;
use crate::{Error, Result};

/// The number of elements of a tensor of this shape (1 for `[]`); an error naming `op` if the
/// product overflows `usize`.
pub fn numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| Error::shape(op, format!("shape {shape:?} has more elements than fit in usize")))
}

/// Checks that `dim` indexes a dimension of `shape`.
pub fn check_dim(op: &'static str, shape: &[usize], dim: usize) -> Result<()> {
    if dim < shape.len() {
        Ok(())
    } else {
        Err(Error::shape(
            op,
            format!("dimension {dim} is out of range for shape {shape:?} (rank {})", shape.len()),
        ))
    }
}

/// The NumPy broadcast of two shapes: align them at the last dimension; each pair of sizes
/// must be equal or one of them 1; missing leading dimensions count as 1.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
        let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
        out.push(match (da, db) {
            _ if da == db => da,
            (1, _) => db,
            (_, 1) => da,
            _ => return Err(Error::shape(op, format!("shapes {a:?} and {b:?} do not broadcast"))),
        });
    }
    Ok(out)
}

/// The result shape of a batched matrix product `[..., m, k] x [..., k, n] -> [..., m, n]`:
/// both ranks at least 2, inner sizes equal, batch dimensions broadcast.
pub fn matmul_shape(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let incompatible = || Error::shape(op, format!("shapes {a:?} and {b:?} are incompatible"));
    if a.len() < 2 || b.len() < 2 || a[a.len() - 1] != b[b.len() - 2] {
        return Err(incompatible());
    }
    let mut out = broadcast_shapes(op, &a[..a.len() - 2], &b[..b.len() - 2]).map_err(|_| incompatible())?;
    out.push(a[a.len() - 2]);
    out.push(b[b.len() - 1]);
    Ok(out)
}

/// Checks that `len` elements of host data fill `shape`.
pub fn check_data_len(op: &'static str, len: usize, shape: &[usize]) -> Result<()> {
    let n = numel(op, shape)?;
    if n == len {
        Ok(())
    } else {
        Err(Error::shape(op, format!("{len} values cannot fill shape {shape:?} ({n} elements)")))
    }
}

/// Checks that a tensor's dtype is a float dtype.
pub fn check_float(op: &'static str, what: &str, dtype: DType) -> Result<()> {
    if dtype.is_float() {
        Ok(())
    } else {
        Err(Error::dtype(op, format!("{what} has dtype {dtype}, a float dtype (f32, bf16, f16) is required")))
    }
}

/// Checks that two operands have the same dtype (there is no implicit promotion).
pub fn check_same_dtype(op: &'static str, a: DType, b: DType) -> Result<()> {
    if a == b {
        Ok(())
    } else {
        Err(Error::dtype(op, format!("operands have dtypes {a} and {b}; they must match")))
    }
}

/// Checks `narrow`-style bounds: `start + len <= shape[dim]`.
pub fn check_range(op: &'static str, shape: &[usize], dim: usize, start: usize, len: usize) -> Result<()> {
    check_dim(op, shape, dim)?;
    match start.checked_add(len) {
        Some(end) if end <= shape[dim] => Ok(()),
        _ => Err(Error::shape(
            op,
            format!("range {start}..{start}+{len} exceeds dimension {dim} of shape {shape:?}"),
        )),
    }
}

/// The order of [`Backend::sort`](super::Backend::sort) on values widened to f64: NaN above every
/// number (NaNs tie), equal numbers (`-0` and `+0` too) tie, so a stable sort keeps them in input
/// order. Shared so that every backend that sorts on the host orders exactly alike.
pub fn sort_order(a: f64, b: f64) -> core::cmp::Ordering {
    use core::cmp::Ordering;
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// The shape after reducing `dim` (kept as size 1 with `keepdim`, removed otherwise).
pub fn reduced_shape(shape: &[usize], dim: usize, keepdim: bool) -> Vec<usize> {
    let mut out = shape.to_vec();
    if keepdim {
        out[dim] = 1;
    } else {
        out.remove(dim);
    }
    out
}

/// Splits a shape around `dim` into `(outer, size, inner)` element counts, the layout every
/// per-dimension loop of a row-major tensor uses.
pub fn split_at_dim(shape: &[usize], dim: usize) -> (usize, usize, usize) {
    let outer = shape[..dim].iter().product();
    let inner = shape[dim + 1..].iter().product();
    (outer, shape[dim], inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shapes("t", &[2, 1, 3], &[4, 1]).unwrap(), vec![2, 4, 3]);
        assert_eq!(broadcast_shapes("t", &[], &[2, 3]).unwrap(), vec![2, 3]);
        assert_eq!(broadcast_shapes("t", &[0, 1], &[1, 5]).unwrap(), vec![0, 5]);
        let e = broadcast_shapes("add", &[2, 3], &[3, 2]).unwrap_err();
        assert_eq!(e.to_string(), "add: shapes [2, 3] and [3, 2] do not broadcast");
    }

    #[test]
    fn matmul_shapes() {
        assert_eq!(matmul_shape("m", &[5, 1, 2, 3], &[4, 3, 6]).unwrap(), vec![5, 4, 2, 6]);
        assert_eq!(
            matmul_shape("matmul", &[2, 3], &[4, 5]).unwrap_err().to_string(),
            "matmul: shapes [2, 3] and [4, 5] are incompatible"
        );
        assert!(matmul_shape("m", &[2, 2, 3], &[3, 3, 1]).is_err(), "batch dims 2 and 3 do not broadcast");
    }

    #[test]
    fn counts_ranges_and_layouts() {
        assert_eq!(numel("n", &[]).unwrap(), 1);
        assert!(numel("n", &[usize::MAX, 2]).is_err(), "overflow is an error, not a panic");
        assert!(check_range("narrow", &[4], 0, 2, 2).is_ok());
        assert!(check_range("narrow", &[4], 0, usize::MAX, 2).is_err());
        assert_eq!(split_at_dim(&[2, 3, 4], 1), (2, 3, 4));
        assert_eq!(sort_order(f64::NAN, 1e300), core::cmp::Ordering::Greater);
        assert_eq!(sort_order(-0.0, 0.0), core::cmp::Ordering::Equal);
        assert_eq!(sort_order(f64::NAN, f64::NAN), core::cmp::Ordering::Equal);
        assert_eq!(reduced_shape(&[2, 3, 4], 1, true), vec![2, 1, 4]);
        assert_eq!(reduced_shape(&[2, 3, 4], 1, false), vec![2, 4]);
    }
}
