//! The op families a backend implements as one method each ([`Primitives::unary`],
//! [`Primitives::binary`], [`Primitives::compare`], [`Primitives::reduce`]), as candle's
//! `BackendStorage` and tinygrad's op set group them. Each variant states its value and gradient
//! rule and its edge cases; the user-facing [`Backend`] methods (`add`, `exp`, `clamp`, `sum`,
//! ...) check their arguments and call the family with the matching variant.
//!
//! [`Primitives::unary`]: super::Primitives::unary
//! [`Primitives::binary`]: super::Primitives::binary
//! [`Primitives::compare`]: super::Primitives::compare
//! [`Primitives::reduce`]: super::Primitives::reduce
//! [`Backend`]: super::Backend

use num_traits::Float;

/// Element-wise functions of one float tensor; the result has the input's shape and dtype.
/// "Gradient" is the vector-Jacobian product given `g`, the gradient of the result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
    /// `-x`. Gradient: `-g`.
    Neg,
    /// `e^x`. Gradient: `g * e^x`.
    Exp,
    /// Natural logarithm: `-inf` at 0, NaN below. Gradient: `g / x`.
    Log,
    /// Square root. Gradient: `g / (2 sqrt(x))`, inf at 0 (PyTorch).
    Sqrt,
    /// Logistic function `1 / (1 + e^-x)`. Gradient: `g * s * (1 - s)`.
    Sigmoid,
    /// Hyperbolic tangent. Gradient: `g * (1 - tanh²(x))`.
    Tanh,
    /// `x^p` for a scalar exponent; NaN for negative `x` and non-integer `p`. Gradient:
    /// `g * p * x^(p-1)`.
    Powf(f64),
    /// `x * mul + add` with scalars. Gradient: `g * mul`.
    Affine {
        /// The scale.
        mul: f64,
        /// The shift.
        add: f64,
    },
    /// `min(max(x, lo), hi)`; NaN stays NaN. The bounds are checked before the kernel runs
    /// (`lo <= hi`, neither NaN). Gradient (PyTorch `clamp`): `g` where `lo <= x <= hi`
    /// (inclusive), 0 elsewhere.
    Clamp {
        /// The lower bound.
        lo: f64,
        /// The upper bound.
        hi: f64,
    },
}

impl UnaryOp {
    /// The name of the [`Backend`](super::Backend) method this variant implements, for errors.
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Powf(_) => "powf",
            UnaryOp::Affine { .. } => "affine",
            UnaryOp::Clamp { .. } => "clamp",
        }
    }

    /// The value of the op on one f64 number: the rule every backend's kernel follows, and the
    /// body of a plain-loop kernel (the reference's and the example backend's).
    pub fn apply(self, x: f64) -> f64 {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => Float::exp(x),
            UnaryOp::Log => Float::ln(x),
            UnaryOp::Sqrt => Float::sqrt(x),
            UnaryOp::Sigmoid => 1.0 / (1.0 + Float::exp(-x)),
            UnaryOp::Tanh => Float::tanh(x),
            UnaryOp::Powf(p) => Float::powf(x, p),
            UnaryOp::Affine { mul, add } => x * mul + add,
            UnaryOp::Clamp { lo, hi } if !x.is_nan() => x.clamp(lo, hi),
            UnaryOp::Clamp { .. } => x,
        }
    }

    /// The derivative `dy/dx` at input `x` with result `y` (so that `exp`, `sqrt`, `sigmoid`
    /// and `tanh` reuse their result), stating each variant's gradient rule in one place.
    pub fn derivative(self, x: f64, y: f64) -> f64 {
        match self {
            UnaryOp::Neg => -1.0,
            UnaryOp::Exp => y,
            UnaryOp::Log => 1.0 / x,
            UnaryOp::Sqrt => 0.5 / y,
            UnaryOp::Sigmoid => y * (1.0 - y),
            UnaryOp::Tanh => 1.0 - y * y,
            UnaryOp::Powf(p) => p * Float::powf(x, p - 1.0),
            UnaryOp::Affine { mul, .. } => mul,
            UnaryOp::Clamp { lo, hi } => f64::from(u8::from(lo <= x && x <= hi)),
        }
    }
}

/// Element-wise functions of two float tensors of one dtype, broadcast with NumPy's rules.
/// Every operand's gradient is summed over the dimensions it was broadcast along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`. Gradient: `g` to each.
    Add,
    /// `a - b`. Gradient: `g` to `a`, `-g` to `b`.
    Sub,
    /// `a * b`. Gradient: `g * b` to `a`, `g * a` to `b`.
    Mul,
    /// `a / b` (IEEE: division by 0 gives ±inf or NaN). Gradient: `g / b` to `a`,
    /// `-g * a / b²` to `b`.
    Div,
    /// The larger operand; a NaN operand gives NaN. Gradient (PyTorch `torch.maximum`): `g` to
    /// the larger; on a tie `g / 2` to each.
    Maximum,
    /// The smaller operand; a NaN operand gives NaN. Gradient: `g` to the smaller; on a tie
    /// `g / 2` to each (PyTorch `torch.minimum`).
    Minimum,
}

impl BinaryOp {
    /// The name of the [`Backend`](super::Backend) method this variant implements.
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
        }
    }

    /// The value on two f64 numbers (NaN-propagating `maximum`/`minimum`).
    pub fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Maximum if a.is_nan() || b.is_nan() => f64::NAN,
            BinaryOp::Maximum => a.max(b),
            BinaryOp::Minimum if a.is_nan() || b.is_nan() => f64::NAN,
            BinaryOp::Minimum => a.min(b),
        }
    }

    /// The partial derivatives `(dy/da, dy/db)` at `(a, b)`, ties of `maximum`/`minimum` split
    /// half and half (a NaN operand: 1 to each, as PyTorch).
    pub fn derivatives(self, a: f64, b: f64) -> (f64, f64) {
        // All to the larger, half each on a tie; with a NaN operand PyTorch passes the gradient
        // to both.
        let larger = |a: f64, b: f64| match a.partial_cmp(&b) {
            Some(core::cmp::Ordering::Greater) => (1.0, 0.0),
            Some(core::cmp::Ordering::Less) => (0.0, 1.0),
            Some(core::cmp::Ordering::Equal) => (0.5, 0.5),
            None => (1.0, 1.0),
        };
        match self {
            BinaryOp::Add => (1.0, 1.0),
            BinaryOp::Sub => (1.0, -1.0),
            BinaryOp::Mul => (b, a),
            BinaryOp::Div => (1.0 / b, -a / (b * b)),
            BinaryOp::Maximum => larger(a, b),
            BinaryOp::Minimum => larger(b, a),
        }
    }
}

/// Element-wise comparisons of two tensors of one dtype, broadcast; the result is Bool and
/// receives no gradient (nor do the operands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `a == b`; any dtype (NaN equals nothing).
    Eq,
    /// `a > b`; float or I64 (Bool has no order).
    Gt,
    /// `a >= b`; float or I64.
    Ge,
}

impl CompareOp {
    /// The name of the [`Backend`](super::Backend) method this variant implements.
    pub fn name(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
        }
    }

    /// Whether the comparison needs an order (so Bool operands are an error).
    pub fn is_ordered(self) -> bool {
        !matches!(self, CompareOp::Eq)
    }

    /// The comparison on two f64 numbers.
    pub fn apply(self, a: f64, b: f64) -> bool {
        match self {
            CompareOp::Eq => a == b,
            CompareOp::Gt => a > b,
            CompareOp::Ge => a >= b,
        }
    }
}

/// Reductions of a float tensor along one dimension (kept with size 1 when `keepdim`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    /// The sum; a dimension of size 0 sums to 0. Gradient: `g` broadcast back along the
    /// dimension.
    Sum,
    /// The maximum, NaN propagating; a dimension of size 0 is an error (checked before the
    /// kernel runs). Gradient (PyTorch `amax`): `g` split evenly among the positions that
    /// attain the maximum.
    Max,
}

impl ReduceOp {
    /// The name of the [`Backend`](super::Backend) method this variant implements.
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
        }
    }
}
