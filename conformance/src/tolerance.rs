//! The one comparison rule of the suite, its per-dtype constants, and the error statistics a
//! check reports.
//!
//! Two values `x` (backend) and `y` (oracle) agree when
//! `|x − y| <= max(abs, rel · max(|x|, |y|))`; NaN agrees only with NaN, and an infinity only
//! with the same infinity. `abs` governs near zero, `rel` everywhere else.

use core::fmt;

use orz_core::backend::DType;

/// The `abs` and `rel` constants of the comparison rule for one dtype.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Absolute slack, which governs for magnitudes below `abs / rel`.
    pub abs: f64,
    /// Relative slack, a fraction of `max(|x|, |y|)`.
    pub rel: f64,
}

impl Tolerance {
    /// Exact agreement (indices, masks).
    pub const EXACT: Tolerance = Tolerance { abs: 0.0, rel: 0.0 };

    /// The tolerance of results of `dtype`, calibrated on the reference with every result rounded
    /// to the dtype (see the README): f32 abs 1e-5 rel 1e-4; bf16 abs 3e-2 rel 3e-2 (bf16 keeps 8
    /// significant bits, a relative spacing of 2⁻⁸ ≈ 4e-3, and composites round several times);
    /// f16 abs 4e-3 rel 4e-3 (11 bits, 2⁻¹¹ ≈ 5e-4); I64 and Bool exact.
    pub fn for_dtype(dtype: DType) -> Tolerance {
        match dtype {
            DType::F32 => Tolerance { abs: 1e-5, rel: 1e-4 },
            DType::BF16 => Tolerance { abs: 3e-2, rel: 3e-2 },
            DType::F16 => Tolerance { abs: 4e-3, rel: 4e-3 },
            DType::I64 | DType::Bool => Tolerance::EXACT,
        }
    }

    /// The looser of two tolerances, constant by constant (a result cast between dtypes is held
    /// to the coarser one).
    pub fn looser(self, other: Tolerance) -> Tolerance {
        Tolerance { abs: self.abs.max(other.abs), rel: self.rel.max(other.rel) }
    }

    /// Both constants multiplied by `factor` (for results at the end of a long chain of rounded
    /// operations, such as a whole training step; the check using it documents its factor).
    pub fn scaled(self, factor: f64) -> Tolerance {
        Tolerance { abs: self.abs * factor, rel: self.rel * factor }
    }

    /// The largest difference allowed between `x` and `y`: `max(abs, rel · max(|x|, |y|))`.
    pub fn allowed(&self, x: f64, y: f64) -> f64 {
        self.abs.max(self.rel * x.abs().max(y.abs()))
    }

    /// Whether `x` and `y` agree under the rule (NaN only with NaN, infinities exactly).
    pub fn agrees(&self, x: f64, y: f64) -> bool {
        if x.is_nan() || y.is_nan() {
            return x.is_nan() && y.is_nan();
        }
        if x.is_infinite() || y.is_infinite() {
            return x == y;
        }
        (x - y).abs() <= self.allowed(x, y)
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "abs {:.0e}, rel {:.0e}", self.abs, self.rel)
    }
}

/// The largest errors seen over all compared values of a check.
///
/// `max_abs` is the largest `|x − y|`; `max_rel` the largest `|x − y| / max(|x|, |y|)` over values
/// whose magnitude is at least `abs / rel` of their tolerance (where the relative part of the
/// rule governs; tiny values would report meaningless relative errors).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ErrorStats {
    /// Largest absolute difference.
    pub max_abs: f64,
    /// Largest relative difference where the relative rule governs.
    pub max_rel: f64,
    /// How many values were compared.
    pub compared: u64,
    /// Comparisons skipped because the oracle's input lay within tolerance of a decision
    /// threshold (sampling: a cumulative mass near the draw), where two correct backends may
    /// legitimately differ; counted, never silent.
    pub skipped: u64,
}

impl ErrorStats {
    /// Records one compared pair under `tol` (non-finite pairs count but add no error).
    pub fn record(&mut self, x: f64, y: f64, tol: Tolerance) {
        self.compared += 1;
        if !(x.is_finite() && y.is_finite()) {
            return;
        }
        let diff = (x - y).abs();
        self.max_abs = self.max_abs.max(diff);
        let magnitude = x.abs().max(y.abs());
        if magnitude > 0.0 && tol.rel > 0.0 && magnitude >= tol.abs / tol.rel {
            self.max_rel = self.max_rel.max(diff / magnitude);
        }
    }

    /// Folds another set of statistics into this one.
    pub fn merge(&mut self, other: &ErrorStats) {
        self.max_abs = self.max_abs.max(other.max_abs);
        self.max_rel = self.max_rel.max(other.max_rel);
        self.compared += other.compared;
        self.skipped += other.skipped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        let t = Tolerance::for_dtype(DType::F32);
        assert!(t.agrees(1.0, 1.0 + 9e-5));
        assert!(!t.agrees(1.0, 1.0 + 2e-4));
        assert!(t.agrees(0.0, 9e-6) && !t.agrees(0.0, 2e-5));
        assert!(t.agrees(f64::NAN, f64::NAN) && !t.agrees(f64::NAN, 0.0));
        assert!(t.agrees(f64::INFINITY, f64::INFINITY) && !t.agrees(f64::INFINITY, f64::MAX));
        assert!(!Tolerance::EXACT.agrees(1.0, 1.0 + 1e-15));
        let mut s = ErrorStats::default();
        s.record(1.0, 1.00005, t);
        s.record(0.0, 1e-6, t);
        assert!((s.max_rel - 5e-5).abs() < 1e-8 && (s.max_abs - 5e-5).abs() < 1e-9 && s.compared == 2);
    }
}
