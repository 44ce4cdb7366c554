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

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
