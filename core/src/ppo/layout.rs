//! Packed layouts: flat per-token slices cut into samples by their lengths, with an optional
//! validity mask.

use core::ops::Range;

use alloc::vec::Vec;
use num_traits::Float;

use crate::error::{Error, Result, check_len};

/// Checks per-sample `scores` (non-empty, finite) cut into consecutive prompt groups of
/// `group_sizes` samples; returns each group's range (group-relative estimators: GRPO, RLOO).
pub fn score_groups<F: Float>(
    op: &'static str,
    scores: &[F],
    group_sizes: &[usize],
) -> Result<Vec<Range<usize>>> {
    if scores.is_empty() {
        return Err(Error::Empty { op, what: "scores" });
    }
    let groups = sample_ranges(op, group_sizes, ("scores", scores.len()))?;
    crate::error::check_finite(op, "scores", scores)?;
    Ok(groups)
}

/// Checks that `sample_lengths` is non-empty, has no zero length, and sums to `total` tokens
/// (the length of the per-token input named `what`); returns each sample's token range.
pub fn sample_ranges(
    op: &'static str,
    sample_lengths: &[usize],
    what: (&'static str, usize),
) -> Result<Vec<Range<usize>>> {
    if sample_lengths.is_empty() {
        return Err(Error::Empty { op, what: "sample_lengths" });
    }
    let mut ranges = Vec::with_capacity(sample_lengths.len());
    let mut start = 0usize;
    for (i, &len) in sample_lengths.iter().enumerate() {
        if len == 0 {
            return Err(Error::invalid(
                op,
                alloc::format!("sample_lengths[{i}] is 0: a sample has no tokens"),
            ));
        }
        let end = start
            .checked_add(len)
            .ok_or_else(|| Error::invalid(op, "the sum of sample_lengths overflows usize"))?;
        ranges.push(start..end);
        start = end;
    }
    check_len(op, ("sum of sample_lengths", start), what)?;
    Ok(ranges)
}

/// Checks that an optional mask has the length of the per-token input named `what`.
pub(crate) fn check_mask(op: &'static str, mask: Option<&[bool]>, what: (&'static str, usize)) -> Result<()> {
    mask.map_or(Ok(()), |m| check_len(op, ("mask", m.len()), what))
}

/// Whether token `i` is valid under an optional mask (no mask: every token is valid).
#[inline]
pub fn is_valid(mask: Option<&[bool]>, i: usize) -> bool {
    mask.is_none_or(|m| m[i])
}

/// Checks that every valid (unmasked) value of `xs` is finite; masked values may be anything.
pub(crate) fn check_finite_valid<F: Float>(
    op: &'static str,
    what: &'static str,
    xs: &[F],
    mask: Option<&[bool]>,
) -> Result<()> {
    match xs.iter().enumerate().position(|(i, x)| is_valid(mask, i) && !x.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite { op, what, index }),
    }
}

/// Checks that a hyper-parameter is finite and lies in `[lo, hi]`.
pub(crate) fn check_param<F: Float>(
    op: &'static str,
    name: &'static str,
    x: F,
    lo: f64,
    hi: f64,
) -> Result<()> {
    match x.to_f64() {
        Some(v) if v.is_finite() && v >= lo && v <= hi => Ok(()),
        v => {
            Err(Error::invalid(op, alloc::format!("`{name}` = {v:?} is not a finite number in [{lo}, {hi}]")))
        }
    }
}

/// Checks that a clip hyper-parameter of a tensor loss (ε, c) is finite and non-negative.
pub(crate) fn check_clip(op: &'static str, what: &str, value: f64) -> Result<()> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(op, alloc::format!("{what} must be finite and non-negative, got {value}")))
    }
}

/// Applies a per-token function to three aligned inputs after checking their lengths, the
/// mask's length and the finiteness of every valid value; masked tokens get `T::default()`.
pub(crate) fn map_tokens<F: Float, T: Default>(
    op: &'static str,
    names: [&'static str; 3],
    inputs: [&[F]; 3],
    mask: Option<&[bool]>,
    f: impl Fn(F, F, F) -> T,
) -> Result<Vec<T>> {
    let [a, b, c] = inputs;
    if a.is_empty() {
        return Err(Error::Empty { op, what: names[0] });
    }
    check_len(op, (names[0], a.len()), (names[1], b.len()))?;
    check_len(op, (names[0], a.len()), (names[2], c.len()))?;
    check_mask(op, mask, (names[0], a.len()))?;
    for (name, xs) in names.into_iter().zip(inputs) {
        check_finite_valid(op, name, xs, mask)?;
    }
    Ok((0..a.len()).map(|i| if is_valid(mask, i) { f(a[i], b[i], c[i]) } else { T::default() }).collect())
}
