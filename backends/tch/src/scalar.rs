//! Scalar arguments as 0-d tensors, so that a failing libtorch call is an error, not a panic.
//!
//! tch 0.24's generated `f_*` functions that take a `Scalar` (`f_mul_scalar`, `f_full`,
//! `f_clamp`, `f_lerp`, ...) convert it into a temporary that is dropped before libtorch's error
//! is read, and `Scalar`'s `Drop` panics when an error is pending: an allocation failure in
//! `f_mul_scalar` panics (`called Result::unwrap() on an Err value: Torch("... out of memory
//! ...")`) instead of returning `Err`. The tensor overloads have no such temporary, so this
//! backend passes scalars as 0-d CPU tensors.

use tch::{Device, Kind, TchError, Tensor};

/// The kind in which libtorch computes an op on `kind` with a Scalar argument: f32 for the
/// 16-bit floats and f32, f64 for f64, i64 for integers and bool.
fn compute_kind(kind: Kind) -> Kind {
    match kind {
        Kind::Double => Kind::Double,
        Kind::Float | Kind::BFloat16 | Kind::Half => Kind::Float,
        _ => Kind::Int64,
    }
}

/// A 0-d CPU tensor holding `x` in the compute kind of `like` (integers truncate `x`).
pub(crate) fn scalar_for(like: &Tensor, x: f64) -> Result<Tensor, TchError> {
    match compute_kind(like.f_kind()?) {
        Kind::Int64 => Tensor::f_from_slice(&[x as i64])?.f_reshape([]),
        k => Tensor::f_from_slice(&[x])?.f_reshape([])?.f_to_kind(k),
    }
}

/// `op(t, s)` with `s` the 0-d tensor of `x` ([`scalar_for`]), cast back to `t`'s kind when
/// libtorch promoted it. A dimensioned `t` gives exactly the Scalar overload's result; a 0-d
/// 16-bit `t` is computed in f32 and rounded once, which can differ from the Scalar overload
/// (that may round `x` to the 16-bit kind first) by one unit in the last place.
pub(crate) fn with_scalar(
    t: &Tensor,
    x: f64,
    op: impl FnOnce(&Tensor, &Tensor) -> Result<Tensor, TchError>,
) -> Result<Tensor, TchError> {
    let out = op(t, &scalar_for(t, x)?)?;
    let kind = t.f_kind()?;
    if out.f_kind()? == kind { Ok(out) } else { out.f_to_kind(kind) }
}

/// `t * x` (as `f_mul_scalar`).
pub(crate) fn mul(t: &Tensor, x: f64) -> Result<Tensor, TchError> {
    with_scalar(t, x, |t, s| t.f_mul(s))
}

/// `t + x` (as `f_add_scalar`).
pub(crate) fn add(t: &Tensor, x: f64) -> Result<Tensor, TchError> {
    with_scalar(t, x, |t, s| t.f_add(s))
}

/// A tensor of `shape` filled with `x` (as `f_full`; integers and bool take `x` as i64).
pub(crate) fn full(shape: &[i64], x: f64, options: (Kind, Device)) -> Result<Tensor, TchError> {
    let value = match compute_kind(options.0) {
        Kind::Int64 => Tensor::f_from_slice(&[x as i64])?,
        _ => Tensor::f_from_slice(&[x])?,
    };
    Tensor::f_empty(shape, options)?.f_fill_tensor_(&value.f_reshape([])?)
}

/// A tensor of `shape` filled with the i64 `x`, exactly (as `f_full` with an integer).
pub(crate) fn full_i64(shape: &[i64], x: i64, options: (Kind, Device)) -> Result<Tensor, TchError> {
    Tensor::f_empty(shape, options)?.f_fill_tensor_(&Tensor::f_from_slice(&[x])?.f_reshape([])?)
}

/// `0, 1, ..., n - 1` as i64 on `device` (as `f_arange`).
pub(crate) fn arange(n: i64, device: Device) -> Result<Tensor, TchError> {
    let host: Vec<i64> = (0..n).collect();
    Tensor::f_from_slice(&host)?.f_to_device(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `a` and `b` have the same kind and shape and values within `ulps` units in the
    /// last place of `kind` (`ulps = 0`: bitwise equal).
    fn close(a: &Tensor, b: &Tensor, ulps: f64) -> bool {
        let eps = match a.kind() {
            Kind::BFloat16 => 2f64.powi(-7),
            Kind::Half => 2f64.powi(-10),
            _ => 0.0,
        };
        let (fa, fb) = (a.to_kind(Kind::Double), b.to_kind(Kind::Double));
        let bound = fb.abs() * (ulps * eps);
        a.kind() == b.kind()
            && a.size() == b.size()
            && (fa - fb).abs().le_tensor(&bound).all().int64_value(&[]) == 1
    }

    /// The tensor forms agree with tch's Scalar overloads, kinds included: exactly for
    /// dimensioned tensors and for f32 / f64, within one unit in the last place for 0-d 16-bit
    /// tensors.
    #[test]
    fn tensor_forms_match_scalar_overloads() {
        for kind in [Kind::Float, Kind::BFloat16, Kind::Half, Kind::Double] {
            for shape in [&[3_i64][..], &[]] {
                let t = Tensor::f_full(shape, 1.37, (kind, Device::Cpu)).unwrap();
                let x = 0.999_123_4;
                let ulps = if shape.is_empty() { 1.0 } else { 0.0 };
                assert!(close(&mul(&t, x).unwrap(), &t.f_mul_scalar(x).unwrap(), ulps), "{kind:?} {shape:?}");
                assert!(close(&add(&t, x).unwrap(), &t.f_add_scalar(x).unwrap(), ulps), "{kind:?} {shape:?}");
                let want = Tensor::f_full(shape, x, (kind, Device::Cpu)).unwrap();
                assert!(full(shape, x, (kind, Device::Cpu)).unwrap().equal(&want));
            }
        }
        let big = (1_i64 << 53) + 1;
        let want = Tensor::f_full([2], big, (Kind::Int64, Device::Cpu)).unwrap();
        assert!(full_i64(&[2], big, (Kind::Int64, Device::Cpu)).unwrap().equal(&want));
        assert!(arange(5, Device::Cpu).unwrap().equal(&Tensor::arange(5, (Kind::Int64, Device::Cpu))));
    }

    /// The point of this module: tch's Scalar overloads panic on a libtorch error, the tensor
    /// forms return it.
    #[test]
    fn errors_are_returned_not_panics() {
        let huge = Tensor::f_zeros([1], (Kind::Float, Device::Cpu))
            .unwrap()
            .f_expand([1 << 30, 1 << 30], false)
            .unwrap();
        assert!(mul(&huge, 2.0).is_err(), "2^62 elements cannot be allocated");
        assert!(full(&[1 << 60], 1.0, (Kind::Float, Device::Cpu)).is_err());
        let panicked = std::panic::catch_unwind(|| huge.f_mul_scalar(2.0).is_err());
        assert!(
            panicked.is_err(),
            "tch's f_mul_scalar panics on the same failure (if this changed, the workaround can go)"
        );
    }
}
