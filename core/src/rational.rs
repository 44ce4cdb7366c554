//! Exact rational numbers over `i128` with checked arithmetic.
//!
//! Used where the recipe asks for exact arithmetic: the Countdown reward (an equation must hit
//! its target exactly) and the answer checker (`1/2` equals `0.5` equals `\frac{2}{4}`).
//! Every operation returns `None` on overflow or division by zero instead of panicking, so a
//! caller can fall back to floating point or reject the input.

use core::cmp::Ordering;
use core::fmt;

/// A reduced fraction `num / den` with `den > 0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    num: i128,
    den: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    // Works on non-negative values; callers pass absolute values that cannot be i128::MIN.
    while b != 0 {
        let t = a % b;
        a = b;
        b = t;
    }
    a
}

impl Rational {
    /// Zero.
    pub const ZERO: Rational = Rational { num: 0, den: 1 };
    /// One.
    pub const ONE: Rational = Rational { num: 1, den: 1 };

    /// `num / den` reduced to lowest terms; `None` if `den == 0` or a value overflows.
    pub fn new(num: i128, den: i128) -> Option<Rational> {
        if den == 0 || num == i128::MIN || den == i128::MIN {
            return None;
        }
        let g = gcd(num.abs(), den.abs()).max(1);
        let (mut n, mut d) = (num / g, den / g);
        if d < 0 {
            n = -n;
            d = -d;
        }
        Some(Rational { num: n, den: d })
    }

    /// The integer `n` as a rational.
    pub fn from_int(n: i128) -> Option<Rational> {
        Rational::new(n, 1)
    }

    /// Numerator (carries the sign).
    pub fn numer(&self) -> i128 {
        self.num
    }

    /// Denominator (always positive).
    pub fn denom(&self) -> i128 {
        self.den
    }

    /// True if the denominator is 1.
    pub fn is_integer(&self) -> bool {
        self.den == 1
    }

    /// True if the value is zero.
    pub fn is_zero(&self) -> bool {
        self.num == 0
    }

    /// Nearest `f64` (may lose precision for huge numerators or denominators).
    pub fn to_f64(&self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// `self + other`, `None` on overflow.
    pub fn checked_add(self, other: Rational) -> Option<Rational> {
        let g = gcd(self.den, other.den);
        let l = self.den / g;
        let num = self.num.checked_mul(other.den / g)?.checked_add(other.num.checked_mul(l)?)?;
        Rational::new(num, l.checked_mul(other.den)?)
    }

    /// `self - other`, `None` on overflow.
    pub fn checked_sub(self, other: Rational) -> Option<Rational> {
        self.checked_add(other.checked_neg()?)
    }

    /// `self * other`, `None` on overflow.
    pub fn checked_mul(self, other: Rational) -> Option<Rational> {
        let g1 = gcd(self.num.abs(), other.den).max(1);
        let g2 = gcd(other.num.abs(), self.den).max(1);
        Rational::new(
            (self.num / g1).checked_mul(other.num / g2)?,
            (self.den / g2).checked_mul(other.den / g1)?,
        )
    }

    /// `self / other`, `None` on division by zero or overflow.
    pub fn checked_div(self, other: Rational) -> Option<Rational> {
        self.checked_mul(other.checked_recip()?)
    }

    /// `-self`, `None` on overflow.
    pub fn checked_neg(self) -> Option<Rational> {
        Some(Rational { num: self.num.checked_neg()?, den: self.den })
    }

    /// `1 / self`, `None` for zero.
    pub fn checked_recip(self) -> Option<Rational> {
        Rational::new(self.den, self.num)
    }

    /// `self ^ exp` for an integer exponent (negative allowed), `None` on overflow or `0^-k`.
    pub fn checked_pow(self, exp: i32) -> Option<Rational> {
        let base = if exp < 0 { self.checked_recip()? } else { self };
        let mut e = exp.unsigned_abs();
        let (mut acc, mut b) = (Rational::ONE, base);
        while e > 0 {
            if e & 1 == 1 {
                acc = acc.checked_mul(b)?;
            }
            e >>= 1;
            if e > 0 {
                b = b.checked_mul(b)?;
            }
        }
        Some(acc)
    }

    /// Parses `"-12"`, `"3.25"`, `".5"`, `"7/8"` exactly; `None` for anything else or on overflow.
    pub fn parse_decimal(s: &str) -> Option<Rational> {
        let s = s.trim();
        if let Some((n, d)) = s.split_once('/') {
            return Rational::parse_decimal(n)?.checked_div(Rational::parse_decimal(d)?);
        }
        let (neg, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut num: i128 = 0;
        for b in int_part.bytes().chain(frac_part.bytes()) {
            num = num.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        }
        let den = 10i128.checked_pow(u32::try_from(frac_part.len()).ok()?)?;
        Rational::new(if neg { -num } else { num }, den)
    }
}

impl PartialOrd for Rational {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Rational {
    fn cmp(&self, other: &Self) -> Ordering {
        // Exact when the cross products fit; otherwise compare as floats (only for huge values).
        match (self.num.checked_mul(other.den), other.num.checked_mul(self.den)) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => self.to_f64().partial_cmp(&other.to_f64()).unwrap_or(Ordering::Equal),
        }
    }
}

impl fmt::Display for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 { write!(f, "{}", self.num) } else { write!(f, "{}/{}", self.num, self.den) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: i128, d: i128) -> Rational {
        Rational::new(n, d).unwrap()
    }

    #[test]
    fn reduces_and_normalizes_sign() {
        assert_eq!(r(2, -4), r(-1, 2));
        assert_eq!(r(-2, -4).numer(), 1);
        assert!(Rational::new(1, 0).is_none());
    }

    #[test]
    fn arithmetic_is_exact() {
        assert_eq!(r(1, 3).checked_add(r(1, 6)), Some(r(1, 2)));
        assert_eq!(r(1, 3).checked_sub(r(1, 2)), Some(r(-1, 6)));
        assert_eq!(r(2, 3).checked_mul(r(9, 4)), Some(r(3, 2)));
        assert_eq!(r(2, 3).checked_div(r(0, 1)), None);
        assert_eq!(r(2, 3).checked_pow(-2), Some(r(9, 4)));
        assert_eq!(r(0, 1).checked_pow(-1), None);
    }

    #[test]
    fn overflow_is_none_not_panic() {
        let big = Rational::from_int(i128::MAX / 2).unwrap();
        assert_eq!(big.checked_mul(big), None);
        assert_eq!(big.checked_add(big).and_then(|x| x.checked_add(big)), None);
        assert_eq!(Rational::from_int(10).unwrap().checked_pow(100), None);
    }

    #[test]
    fn parses_decimals_exactly() {
        assert_eq!(Rational::parse_decimal("0.5"), Some(r(1, 2)));
        assert_eq!(Rational::parse_decimal("-.25"), Some(r(-1, 4)));
        assert_eq!(Rational::parse_decimal("3/6"), Some(r(1, 2)));
        assert_eq!(Rational::parse_decimal("1e5"), None);
        assert_eq!(Rational::parse_decimal("."), None);
        assert_eq!(Rational::parse_decimal(&"9".repeat(60)), None);
    }

    #[test]
    fn orders_exactly() {
        assert!(r(1, 3) < r(1, 2));
        assert!(r(-1, 2) < r(-1, 3));
    }
}
