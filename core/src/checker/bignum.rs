//! Exact big rationals for the checker: `2^{2008}`, `\frac{1}{4^{2016}}`, `2001!` and integer
//! literals of hundreds of digits compare exactly instead of through a float that overflows.
//!
//! Magnitudes are little-endian `u32` limbs; every result is bounded by [`MAX_BITS`] (about
//! 7200 decimal digits), beyond which an operation gives `None` ("not comparable", never a
//! float approximation). Fractions are kept unreduced except for common powers of two;
//! equality is decided by cross multiplication.

use alloc::vec::Vec;
use core::cmp::Ordering;
// Float math for no_std builds; with std, `f64`'s inherent methods take precedence.
#[allow(unused_imports)]
use num_traits::Float;

use crate::rational::Rational;

/// Largest magnitude, in bits, of a numerator or denominator (2001! has 19 054 bits,
/// 2019^{2020} has 22 175).
pub const MAX_BITS: u64 = 24_000;

/// An unsigned big integer: little-endian `u32` limbs without trailing zero limbs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigUint {
    limbs: Vec<u32>,
}

impl BigUint {
    /// The integer `n`.
    pub fn from_u128(mut n: u128) -> BigUint {
        let mut limbs = Vec::new();
        while n > 0 {
            limbs.push(n as u32);
            n >>= 32;
        }
        BigUint { limbs }
    }

    fn trim(mut self) -> BigUint {
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
        self
    }

    /// True for zero.
    pub fn is_zero(&self) -> bool {
        self.limbs.is_empty()
    }

    /// Number of limbs.
    pub fn len(&self) -> usize {
        self.limbs.len()
    }

    /// True for zero (no limbs).
    pub fn is_empty(&self) -> bool {
        self.limbs.is_empty()
    }

    /// Number of significant bits.
    pub fn bits(&self) -> u64 {
        match self.limbs.last() {
            None => 0,
            Some(top) => 32 * (self.limbs.len() as u64 - 1) + u64::from(32 - top.leading_zeros()),
        }
    }

    /// The value as a `u128`, if it fits.
    pub fn to_u128(&self) -> Option<u128> {
        if self.limbs.len() > 4 {
            return None;
        }
        Some(self.limbs.iter().rev().fold(0u128, |acc, l| (acc << 32) | u128::from(*l)))
    }

    /// `self + other`.
    pub fn add(&self, other: &BigUint) -> BigUint {
        let (a, b) = if self.len() >= other.len() { (self, other) } else { (other, self) };
        let mut out = Vec::with_capacity(a.len() + 1);
        let mut carry = 0u64;
        for (i, x) in a.limbs.iter().enumerate() {
            let s = u64::from(*x) + u64::from(b.limbs.get(i).copied().unwrap_or(0)) + carry;
            out.push(s as u32);
            carry = s >> 32;
        }
        if carry > 0 {
            out.push(carry as u32);
        }
        BigUint { limbs: out }
    }

    /// `self - other`; `None` when `other > self`.
    pub fn sub(&self, other: &BigUint) -> Option<BigUint> {
        if self.cmp(other) == Ordering::Less {
            return None;
        }
        let mut out = Vec::with_capacity(self.len());
        let mut borrow = 0i64;
        for (i, x) in self.limbs.iter().enumerate() {
            let mut d = i64::from(*x) - i64::from(other.limbs.get(i).copied().unwrap_or(0)) - borrow;
            borrow = i64::from(d < 0);
            if d < 0 {
                d += 1 << 32;
            }
            out.push(d as u32);
        }
        Some(BigUint { limbs: out }.trim())
    }

    /// `self * other`; `None` beyond [`MAX_BITS`].
    pub fn mul(&self, other: &BigUint) -> Option<BigUint> {
        self.mul_within(other, MAX_BITS)
    }

    /// `self * other`; `None` beyond `max_bits`.
    fn mul_within(&self, other: &BigUint, max_bits: u64) -> Option<BigUint> {
        if self.is_zero() || other.is_zero() {
            return Some(BigUint { limbs: Vec::new() });
        }
        if self.bits() + other.bits() > max_bits + 1 {
            return None;
        }
        let mut out = alloc::vec![0u32; self.len() + other.len()];
        for (i, x) in self.limbs.iter().enumerate() {
            let mut carry = 0u64;
            for (j, y) in other.limbs.iter().enumerate() {
                let slot = out.get_mut(i + j)?;
                let t = u64::from(*x) * u64::from(*y) + u64::from(*slot) + carry;
                *slot = t as u32;
                carry = t >> 32;
            }
            let mut k = i + other.len();
            while carry > 0 {
                let slot = out.get_mut(k)?;
                let t = u64::from(*slot) + carry;
                *slot = t as u32;
                carry = t >> 32;
                k += 1;
            }
        }
        let r = BigUint { limbs: out }.trim();
        (r.bits() <= max_bits).then_some(r)
    }

    /// `self *= m` in place.
    fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for l in self.limbs.iter_mut() {
            let t = u64::from(*l) * u64::from(m) + carry;
            *l = t as u32;
            carry = t >> 32;
        }
        if carry > 0 {
            self.limbs.push(carry as u32);
        }
        if m == 0 {
            self.limbs.clear();
        }
    }

    /// `(self / d, self % d)` for a nonzero small divisor.
    pub fn divrem_small(&self, d: u32) -> Option<(BigUint, u32)> {
        if d == 0 {
            return None;
        }
        let mut out = alloc::vec![0u32; self.len()];
        let mut rem = 0u64;
        for (i, x) in self.limbs.iter().enumerate().rev() {
            let cur = (rem << 32) | u64::from(*x);
            *out.get_mut(i)? = (cur / u64::from(d)) as u32;
            rem = cur % u64::from(d);
        }
        Some((BigUint { limbs: out }.trim(), rem as u32))
    }

    /// Number of trailing zero bits (0 for zero).
    fn trailing_zeros(&self) -> u64 {
        let mut n = 0u64;
        for l in &self.limbs {
            if *l == 0 {
                n += 32;
            } else {
                return n + u64::from(l.trailing_zeros());
            }
        }
        0
    }

    /// `self >> k`.
    fn shr(&self, k: u64) -> BigUint {
        let (limbs, bits) = ((k / 32) as usize, (k % 32) as u32);
        let src = self.limbs.get(limbs..).unwrap_or(&[]);
        let mut out = Vec::with_capacity(src.len());
        for (i, l) in src.iter().enumerate() {
            let hi = if bits == 0 { 0 } else { src.get(i + 1).map_or(0, |h| h << (32 - bits)) };
            out.push((l >> bits) | hi);
        }
        BigUint { limbs: out }.trim()
    }

    /// Parses a run of ASCII digits; `None` for anything else or beyond [`MAX_BITS`].
    pub fn parse_digits(s: &str) -> Option<BigUint> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() as u64 > MAX_BITS * 3 / 10 {
            return None;
        }
        let mut acc = BigUint { limbs: Vec::new() };
        let ten9 = BigUint::from_u128(1_000_000_000);
        for chunk in s.as_bytes().chunks(9) {
            let part: u128 = chunk.iter().fold(0, |a, b| a * 10 + u128::from(b - b'0'));
            let scale = if chunk.len() == 9 {
                ten9.clone()
            } else {
                BigUint::from_u128(10u128.pow(chunk.len() as u32))
            };
            acc = acc.mul(&scale)?.add(&BigUint::from_u128(part));
        }
        Some(acc)
    }

    /// The value as `mantissa * 2^exponent` with the mantissa in `[0.5, 1)` (0 for zero).
    fn to_f64_parts(&self) -> (f64, i64) {
        let bits = self.bits();
        if bits == 0 {
            return (0.0, 0);
        }
        let shift = bits.saturating_sub(64);
        let top = self.shr(shift).to_u128().unwrap_or(0) as f64;
        // top < 2^64; value = top * 2^shift.
        let e = 64i64.min(bits as i64);
        (top / 2f64.powi(e as i32), shift as i64 + e)
    }
}

impl PartialOrd for BigUint {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for BigUint {
    fn cmp(&self, other: &Self) -> Ordering {
        self.len().cmp(&other.len()).then_with(|| self.limbs.iter().rev().cmp(other.limbs.iter().rev()))
    }
}

/// An exact rational `±num / den` with big magnitudes (not necessarily in lowest terms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigRat {
    neg: bool,
    num: BigUint,
    den: BigUint,
}

impl BigRat {
    /// The small rational `q`.
    pub fn from_rational(q: Rational) -> BigRat {
        BigRat {
            neg: q.numer() < 0,
            num: BigUint::from_u128(q.numer().unsigned_abs()),
            den: BigUint::from_u128(q.denom().unsigned_abs()),
        }
    }

    /// The integer with decimal digits `digits` (optionally negative).
    pub fn from_digits(digits: &str, neg: bool) -> Option<BigRat> {
        Some(BigRat { neg, num: BigUint::parse_digits(digits)?, den: BigUint::from_u128(1) })
    }

    /// A terminating decimal `int.frac` exactly.
    pub fn from_decimal(int_part: &str, frac_part: &str, neg: bool) -> Option<BigRat> {
        let mut digits = alloc::string::String::from(int_part);
        digits.push_str(frac_part);
        let den = BigUint::parse_digits(&alloc::format!("1{}", "0".repeat(frac_part.len())))?;
        BigRat { neg, num: BigUint::parse_digits(&digits)?, den }.normalized()
    }

    fn normalized(mut self) -> Option<BigRat> {
        if self.den.is_zero() {
            return None;
        }
        let tz = self.num.trailing_zeros().min(self.den.trailing_zeros());
        if tz > 0 {
            self.num = self.num.shr(tz);
            self.den = self.den.shr(tz);
        }
        if self.num.is_zero() {
            self.neg = false;
        }
        Some(self)
    }

    /// `n!` exactly; `None` beyond [`MAX_BITS`]. Factors are grouped into `u32` products, so
    /// `2001!` takes about 700 passes of one-limb multiplication.
    pub fn factorial(n: u32) -> Option<BigRat> {
        let mut acc = BigUint::from_u128(1);
        let mut group = 1u64;
        for k in 2..=u64::from(n) {
            if group * k > u64::from(u32::MAX) {
                acc.mul_small(group as u32);
                if acc.bits() > MAX_BITS {
                    return None;
                }
                group = 1;
            }
            group *= k;
        }
        acc.mul_small(u32::try_from(group).ok()?);
        (acc.bits() <= MAX_BITS).then(|| BigRat { neg: false, num: acc, den: BigUint::from_u128(1) })
    }

    /// The value as a small rational when numerator and denominator fit `i128`.
    pub fn to_rational(&self) -> Option<Rational> {
        let n = i128::try_from(self.num.to_u128()?).ok()?;
        let d = i128::try_from(self.den.to_u128()?).ok()?;
        Rational::new(if self.neg { -n } else { n }, d)
    }

    /// True if the denominator is one.
    pub fn is_integer(&self) -> bool {
        self.den.to_u128() == Some(1)
    }

    /// Work units of an operation on these operands (limb products / 64).
    pub fn cost(&self, other: &BigRat) -> u64 {
        let size = |x: &BigRat| (x.num.len() + x.den.len()) as u64;
        1 + size(self) * size(other) / 64
    }

    /// `-self`.
    pub fn negated(mut self) -> BigRat {
        self.neg = !self.neg && !self.num.is_zero();
        self
    }

    /// `self + other`.
    pub fn add(&self, other: &BigRat) -> Option<BigRat> {
        let a = self.num.mul(&other.den)?;
        let b = other.num.mul(&self.den)?;
        let den = self.den.mul(&other.den)?;
        let (neg, num) = if self.neg == other.neg {
            (self.neg, a.add(&b))
        } else if a >= b {
            (self.neg, a.sub(&b)?)
        } else {
            (other.neg, b.sub(&a)?)
        };
        (num.bits() <= MAX_BITS).then_some(())?;
        BigRat { neg, num, den }.normalized()
    }

    /// `self * other`.
    pub fn mul(&self, other: &BigRat) -> Option<BigRat> {
        BigRat { neg: self.neg != other.neg, num: self.num.mul(&other.num)?, den: self.den.mul(&other.den)? }
            .normalized()
    }

    /// `1 / self`; `None` for zero.
    pub fn recip(&self) -> Option<BigRat> {
        BigRat { neg: self.neg, num: self.den.clone(), den: self.num.clone() }.normalized()
    }

    /// `self ^ exp` by squaring; `None` beyond [`MAX_BITS`] or for `0^-k`.
    pub fn pow(&self, exp: i64) -> Option<BigRat> {
        let base = if exp < 0 { self.recip()? } else { self.clone() };
        let mut e = exp.unsigned_abs();
        // Cheap refusal before any work: the result has about bits * e bits.
        let bits = base.num.bits().max(base.den.bits()).saturating_sub(1);
        if bits.saturating_mul(e) > MAX_BITS {
            return None;
        }
        let mut acc = BigRat::from_rational(Rational::ONE);
        let mut b = base;
        while e > 0 {
            if e & 1 == 1 {
                acc = acc.mul(&b)?;
            }
            e >>= 1;
            if e > 0 {
                b = b.mul(&b)?;
            }
        }
        Some(acc)
    }

    /// Exact equality (cross multiplication).
    pub fn equals(&self, other: &BigRat) -> bool {
        if self.neg != other.neg {
            return self.num.is_zero() && other.num.is_zero();
        }
        match (self.num.mul_within(&other.den, 2 * MAX_BITS), other.num.mul_within(&self.den, 2 * MAX_BITS)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        }
    }

    /// Nearest `f64` (infinite or zero when out of range).
    pub fn to_f64(&self) -> f64 {
        let (mn, en) = self.num.to_f64_parts();
        let (md, ed) = self.den.to_f64_parts();
        if md == 0.0 {
            return f64::NAN;
        }
        let e = (en - ed).clamp(-2000, 2000) as i32;
        let v = mn / md * if e >= 0 { 2f64.powi(e.min(1100)) } else { 2f64.powi(e.max(-1100)) };
        if self.neg { -v } else { v }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(s: &str) -> BigRat {
        BigRat::from_digits(s, false).unwrap()
    }

    #[test]
    fn parses_and_multiplies_exactly() {
        let a = int("123456789012345678901234567890123456789012345678901234567890");
        let b = int("123456789012345678901234567890123456789012345678901234567891");
        assert!(!a.equals(&b));
        assert!(a.equals(&a.clone()));
        let one = BigRat::from_rational(Rational::ONE);
        assert!(a.add(&one).unwrap().equals(&b));
    }

    #[test]
    fn powers_and_reciprocals() {
        let two = BigRat::from_rational(Rational::from_int(2).unwrap());
        let four = BigRat::from_rational(Rational::from_int(4).unwrap());
        assert!(two.pow(4032).unwrap().equals(&four.pow(2016).unwrap()));
        assert!(four.pow(-2016).unwrap().equals(&four.pow(2016).unwrap().recip().unwrap()));
        assert!(two.pow(100_000).is_none());
        assert_eq!(two.pow(10).unwrap().to_rational(), Rational::from_int(1024));
    }

    #[test]
    fn decimals_and_floats() {
        let x = BigRat::from_decimal("0", "00000000000000000000000000000000000000000001", false).unwrap();
        assert!(!x.equals(&BigRat::from_rational(Rational::ZERO)));
        assert!(x.to_f64() > 0.0 && x.to_f64() < 1e-40);
        let two = BigRat::from_rational(Rational::from_int(2).unwrap());
        assert!((two.pow(1000).unwrap().to_f64().log10() - 1000.0 * 2f64.log10()).abs() < 1e-9);
        assert!(two.pow(2008).unwrap().to_f64().is_infinite());
        assert!(
            two.pow(2008).unwrap().add(&two.pow(2008).unwrap().negated()).unwrap().to_rational()
                == Some(Rational::ZERO)
        );
    }

    #[test]
    fn factorials() {
        let f = BigRat::factorial(25).unwrap();
        assert_eq!(f.to_rational(), Rational::from_int(15_511_210_043_330_985_984_000_000));
        let f2001 = BigRat::factorial(2001).unwrap();
        let f2000 = BigRat::factorial(2000).unwrap();
        let n = BigRat::from_rational(Rational::from_int(2001).unwrap());
        assert!(f2001.equals(&f2000.mul(&n).unwrap()));
        assert!(BigRat::factorial(3000).is_none());
    }

    #[test]
    fn small_division() {
        let (q, r) = BigUint::from_u128(1001).divrem_small(10).unwrap();
        assert_eq!((q.to_u128(), r), (Some(100), 1));
    }
}
