//! Tensor element types.

use core::fmt;

/// The element type of a tensor.
///
/// Float dtypes ([`DType::F32`], [`DType::BF16`], [`DType::F16`]) carry values and gradients;
/// [`DType::I64`] carries indices (token ids, gather and select indices, segment ids, positions);
/// [`DType::Bool`] carries masks (the result of comparisons, the condition of `where_`).
///
/// I64 is the index type because both libtorch (`Kind::Int64`) and candle (`DType::I64`) support
/// it natively for `index_select` / `gather`; Bool maps to libtorch's `Kind::Bool` and to candle's
/// `U8`. The reference backend computes every dtype in f64 (I64 values must therefore lie within
/// ±2^53, which every token id and position does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum DType {
    /// IEEE 754 single precision.
    F32,
    /// bfloat16: 8 exponent bits, 7 mantissa bits.
    BF16,
    /// IEEE 754 half precision.
    F16,
    /// 64-bit signed integers, for indices.
    I64,
    /// Booleans, for masks.
    Bool,
}

impl DType {
    /// Every dtype, in declaration order.
    pub const ALL: [DType; 5] = [DType::F32, DType::BF16, DType::F16, DType::I64, DType::Bool];

    /// The float dtypes, widest first.
    pub const FLOATS: [DType; 3] = [DType::F32, DType::BF16, DType::F16];

    /// Whether values of this dtype are floating point (and can carry gradients).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::BF16 | DType::F16)
    }

    /// The lowercase name, as in `"f32"`, `"bf16"`, `"i64"`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
            DType::I64 => "i64",
            DType::Bool => "bool",
        }
    }

    /// The most negative finite value of a float dtype (PyTorch's `finfo(dtype).min`), used as
    /// the fill of masked attention scores; `None` for I64 and Bool.
    pub fn min_finite(self) -> Option<f64> {
        match self {
            DType::F32 => Some(f32::MIN as f64),
            DType::BF16 => Some(-3.389_531_389_251_535_5e38),
            DType::F16 => Some(-65504.0),
            DType::I64 | DType::Bool => None,
        }
    }

    /// Machine epsilon of a float dtype (the gap between 1 and the next value); `None` for I64
    /// and Bool. The conformance tolerances are multiples of it.
    pub fn epsilon(self) -> Option<f64> {
        match self {
            DType::F32 => Some(f32::EPSILON as f64),
            DType::BF16 => Some(0.0078125),
            DType::F16 => Some(0.000_976_562_5),
            DType::I64 | DType::Bool => None,
        }
    }
}

impl DType {
    /// The value a tensor of this dtype holds for host value `x` passed through `tensor_f32`:
    /// `x` rounded to f32, then, for BF16 and F16, to that format (round to nearest, ties to
    /// even, with subnormals, overflowing to ±inf as libtorch and candle convert). I64 truncates
    /// toward zero; Bool gives 1 for nonzero. The conformance kit rounds its random inputs with
    /// this, so that the reference (which stores values exactly) and a backend see the same
    /// numbers.
    pub fn round(self, x: f64) -> f64 {
        match self {
            DType::F32 => f64::from(x as f32),
            DType::BF16 => round_f32_to(x as f32, 7, -126, 127),
            DType::F16 => round_f32_to(x as f32, 10, -14, 15),
            DType::I64 => num_traits::Float::trunc(x),
            DType::Bool => f64::from(u8::from(x != 0.0)),
        }
    }
}

/// Rounds an f32 to a binary format with `mant` explicit mantissa bits and normal exponents
/// `min_exp..=max_exp` (values below `2^min_exp` become subnormals of that format).
fn round_f32_to(v: f32, mant: i32, min_exp: i32, max_exp: i32) -> f64 {
    use num_traits::Float;
    let x = f64::from(v);
    if !v.is_finite() || v == 0.0 {
        return x;
    }
    // Halfway between the largest finite value and 2^(max_exp + 1): ties go to the even one, inf.
    let overflow = (2.0 - Float::powi(2.0, -(mant + 1))) * Float::powi(2.0, max_exp);
    if Float::abs(x) >= overflow {
        return Float::copysign(f64::INFINITY, x);
    }
    let biased = ((v.to_bits() >> 23) & 0xFF) as i32;
    let exp = if biased == 0 { -127 } else { biased - 127 }.max(min_exp);
    let quantum = Float::powi(2.0, exp - mant);
    let t = x / quantum; // exact: a power-of-two scaling
    let mut r = Float::round(t); // half away from zero
    if Float::abs(t - Float::trunc(t)) == 0.5 && r % 2.0 != 0.0 {
        r -= Float::signum(t); // ties to even
    }
    r * quantum
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::DType;

    #[test]
    fn rounding_matches_the_formats() {
        assert_eq!(DType::F32.round(0.1), f64::from(0.1f32));
        assert_eq!(DType::BF16.round(0.1), 0.10009765625);
        assert_eq!(DType::F16.round(0.1), 0.0999755859375);
        // Ties to even: 1 + 2^-8 lies halfway between 1 and the next bf16; 1 + 3 * 2^-8 goes up.
        assert_eq!(DType::BF16.round(1.00390625), 1.0);
        assert_eq!(DType::BF16.round(1.01171875), 1.015625);
        assert_eq!(DType::F16.round(65504.0), 65504.0);
        assert_eq!(DType::F16.round(65519.0), 65504.0);
        assert_eq!(DType::F16.round(-65520.0), f64::NEG_INFINITY);
        assert_eq!(DType::BF16.round(f64::from(f32::MAX)), f64::INFINITY);
        // F16 subnormals: the smallest is 2^-24; half of it rounds to even (0).
        assert_eq!(DType::F16.round(6e-8), 2f64.powi(-24));
        assert_eq!(DType::F16.round(2f64.powi(-25)), 0.0);
        assert_eq!(DType::F16.round(3.0 * 2f64.powi(-25)), 2f64.powi(-23));
        assert_eq!(DType::I64.round(-2.7), -2.0);
        assert_eq!(DType::Bool.round(-0.5), 1.0);
        assert!(DType::BF16.round(f64::NAN).is_nan());
    }
}
