//! Sampling as a pure function of (logits, [`SamplingParams`], one uniform draw `u` in `[0, 1)`).
//!
//! The pipeline, identical on the host oracle ([`sample_host`]) and on a backend
//! ([`sample_device`]):
//!
//! 1. **temperature**: `probs = softmax(logits / T)`; `T = 0` is greedy: the argmax, ties to the
//!    lowest token id (steps 2-5 are skipped; the draw is ignored);
//! 2. **order**: tokens sorted by probability, descending, ties by the lower token id; when
//!    there is no top-k (or `k >= vocab`) and top-p = 1, every token is kept and the order is
//!    the token-id order: no sort (as vLLM skips its sort then), steps 3-4 keep everything
//!    ([`SamplingParams::keeps_every_token`]);
//! 3. **top-k**: the first `k` tokens of that order are kept (all when `k >= vocab`);
//! 4. **top-p**: among those, with `M` their total mass, token `j` (in order) is kept iff the
//!    mass strictly before it is `< p * M`: the smallest prefix whose cumulative mass reaches
//!    `p` of the top-k distribution, always at least one token (top-p applies to the top-k
//!    renormalized distribution, as in Hugging Face's warpers and vLLM);
//! 5. **selection** (inverse CDF): with `K` the kept mass, the chosen token is the first kept
//!    token, in order, whose cumulative mass exceeds `u * K`; if rounding leaves none (`u * K`
//!    rounds up to `K`), the kept token at which the cumulative mass reaches `K` (the last one
//!    that adds mass: never a token of probability 0).
//!
//! The order changes which token a given `u` picks, not the distribution: every kept token is
//! chosen with probability its share of `K` whatever the order.
//!
//! **Certification.** Both versions follow these steps with the same comparisons, so two
//! backends given the same logits and the same draws choose the same token, except where a
//! cumulative mass lies within the backends' numerical tolerance of the threshold it is
//! compared with (`u * K` in step 5, `p * M` in step 4), or where two probabilities tie on one
//! backend and not on the other (the sorted order only). The host version computes in f64; the
//! device version casts the logits to f32 first (the reference backend computes in f64 whatever
//! the dtype).

use alloc::format;
use alloc::vec::Vec;
use core::cmp::Ordering;

use num_traits::Float;

use crate::backend::{Backend, DType, ops};
use crate::{Error, Result};

/// Temperature, top-k and top-p: the sampling parameters of one generation run.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SamplingParams {
    /// Softmax temperature, finite and `>= 0`; 0 means greedy (argmax, ties to the lowest id).
    pub temperature: f64,
    /// Keep only the `k` most probable tokens (`k >= 1`); `None` keeps all.
    pub top_k: Option<usize>,
    /// Nucleus mass, `0 < p <= 1`; 1 keeps every token (top-p off).
    pub top_p: f64,
}

impl SamplingParams {
    /// Validated parameters (see [`SamplingParams::validate`]).
    pub fn new(temperature: f64, top_k: Option<usize>, top_p: f64) -> Result<Self> {
        let params = SamplingParams { temperature, top_k, top_p };
        params.validate()?;
        Ok(params)
    }

    /// Greedy decoding: temperature 0.
    pub fn greedy() -> Self {
        SamplingParams { temperature: 0.0, top_k: None, top_p: 1.0 }
    }

    /// Checks `temperature` finite and `>= 0`, `0 < top_p <= 1`, `top_k >= 1`; the error names
    /// the field and its value.
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "sampling params";
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(Error::invalid(
                OP,
                format!("temperature must be finite and >= 0, got {}", self.temperature),
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::invalid(OP, format!("top_p must lie in (0, 1], got {}", self.top_p)));
        }
        if self.top_k == Some(0) {
            return Err(Error::invalid(OP, "top_k must be >= 1 (use None to disable it), got 0"));
        }
        Ok(())
    }

    /// True when the temperature is 0 (argmax decoding).
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// True when top-k and top-p keep every token of a vocabulary of `vocab` tokens (no top-k or
    /// `k >= vocab`, and `top_p == 1`): sampling then keeps the token-id order, no sort (step 2 of
    /// the [pipeline](self)). ORZ's parameters are such.
    pub fn keeps_every_token(&self, vocab: usize) -> bool {
        self.top_p == 1.0 && self.top_k.is_none_or(|k| k >= vocab)
    }
}

impl Default for SamplingParams {
    /// ORZ's sampling: temperature 1, no top-k, top-p 1.
    fn default() -> Self {
        SamplingParams { temperature: 1.0, top_k: None, top_p: 1.0 }
    }
}

/// The tokens kept after temperature, top-k and top-p, in sampling order (probability
/// descending, ties by the lower id; token-id order when every token is kept, see
/// [`SamplingParams::keeps_every_token`]), with their probabilities under the top-k renormalized
/// distribution (so [`Nucleus::mass`] is the mass top-p kept, in `(0, 1]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Nucleus {
    /// Kept token ids in sampling order: most probable first, or every id in increasing order.
    pub ids: Vec<u32>,
    /// Probability of each kept token after top-k renormalization (not renormalized by top-p).
    pub probs: Vec<f64>,
}

impl Nucleus {
    /// The probability mass top-p kept (conformance level 5: "top-p keeps the right mass"):
    /// `>= top_p` up to rounding, and minimal (without its last token it would be `< top_p`).
    pub fn mass(&self) -> f64 {
        self.probs.iter().sum()
    }

    /// Inverse-CDF selection with the draw `u` in `[0, 1)`: the first kept token whose
    /// cumulative mass exceeds `u * mass`; if rounding leaves none, the token at which the
    /// cumulative mass reaches `mass` (the last one that adds mass).
    pub fn select(&self, u: f64) -> u32 {
        let threshold = u * self.mass();
        let mut cum = 0.0;
        // `ids` is never empty: a nucleus holds at least one token.
        let mut reached = self.ids.first().copied().unwrap_or(0);
        for (&id, &p) in self.ids.iter().zip(&self.probs) {
            let next = cum + p;
            if next > threshold {
                return id;
            }
            if next > cum {
                reached = id;
            }
            cum = next;
        }
        reached
    }
}

/// Checks a row of logits: non-empty, no NaN or `+inf` (`-inf` is a token of probability 0),
/// at least one finite value. `what` names the row in errors.
fn check_logits(op: &'static str, what: &str, logits: &[f64]) -> Result<()> {
    if logits.is_empty() {
        return Err(Error::invalid(op, format!("{what}: the logits are empty (vocabulary of size 0)")));
    }
    if let Some(i) = logits.iter().position(|x| x.is_nan() || *x == f64::INFINITY) {
        return Err(Error::invalid(op, format!("{what}: logit of token {i} is {}", logits[i])));
    }
    if logits.iter().all(|x| *x == f64::NEG_INFINITY) {
        return Err(Error::invalid(op, format!("{what}: every logit is -inf (no token can be sampled)")));
    }
    Ok(())
}

fn check_draw(op: &'static str, index: usize, u: f64) -> Result<()> {
    if (0.0..1.0).contains(&u) {
        Ok(())
    } else {
        Err(Error::invalid(op, format!("draw {index} is {u}, draws must lie in [0, 1)")))
    }
}

/// Argmax of a row, ties to the lowest index (the row is non-empty and NaN-free).
fn argmax_host(logits: &[f64]) -> u32 {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// The host oracle of steps 1-4 (f64 throughout): the nucleus kept from `logits` (one row,
/// `[vocab]`). Errors: invalid params, empty logits, a NaN or `+inf` logit, all logits `-inf`.
pub fn nucleus_host(logits: &[f64], params: &SamplingParams) -> Result<Nucleus> {
    const OP: &str = "sample_host";
    params.validate()?;
    check_logits(OP, "logits", logits)?;
    if params.is_greedy() {
        return Ok(Nucleus { ids: alloc::vec![argmax_host(logits)], probs: alloc::vec![1.0] });
    }
    // Step 1: softmax(logits / T), shifted by the (finite) maximum.
    let inv_t = 1.0 / params.temperature;
    let m = logits.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b)) * inv_t;
    let e: Vec<f64> = logits.iter().map(|&x| Float::exp(x * inv_t - m)).collect();
    let total: f64 = e.iter().sum();
    if !(total.is_finite() && total > 0.0) {
        return Err(Error::invalid(
            OP,
            format!("logits / temperature {} overflow: the probabilities are not finite", params.temperature),
        ));
    }
    let probs: Vec<f64> = e.iter().map(|&x| x / total).collect();
    if params.keeps_every_token(probs.len()) {
        // Step 2 without a sort: every token, in token-id order.
        return Ok(Nucleus { ids: (0..probs.len() as u32).collect(), probs });
    }
    // Step 2: order by probability descending, ties by the lower id (a stable sort of ids).
    let mut order: Vec<u32> = (0..probs.len() as u32).collect();
    order.sort_by(|&a, &b| probs[b as usize].partial_cmp(&probs[a as usize]).unwrap_or(Ordering::Equal));
    // Step 3: top-k.
    let k = params.top_k.map_or(order.len(), |k| k.min(order.len()));
    order.truncate(k);
    let sorted: Vec<f64> = order.iter().map(|&i| probs[i as usize]).collect();
    let top_k_mass: f64 = sorted.iter().sum();
    // Step 4: top-p over the top-k renormalized distribution: keep j iff mass before j < p * M.
    let bound = params.top_p * top_k_mass;
    let mut before = 0.0;
    let mut kept = 0;
    for &p in &sorted {
        if before < bound {
            kept += 1;
            before += p;
        } else {
            break;
        }
    }
    let kept = kept.max(1);
    let ids = order[..kept].to_vec();
    let probs = sorted[..kept].iter().map(|&p| p / top_k_mass).collect();
    Ok(Nucleus { ids, probs })
}

/// The host oracle (f64 throughout): the token sampled from one row of `logits` (`[vocab]`) with
/// the draw `u` in `[0, 1)`. Errors as [`nucleus_host`], plus a draw outside `[0, 1)`.
pub fn sample_host(logits: &[f64], params: &SamplingParams, u: f64) -> Result<u32> {
    check_draw("sample_host", 0, u)?;
    Ok(nucleus_host(logits, params)?.select(u))
}

/// The probability mass top-p keeps from `logits` (after temperature and top-k), computed by
/// the host oracle: `>= top_p` up to rounding, and minimal (see [`Nucleus::mass`]).
pub fn top_p_kept_mass(logits: &[f64], params: &SamplingParams) -> Result<f64> {
    Ok(nucleus_host(logits, params)?.mass())
}

/// The batched device version: one token per draw from `logits` (`[rows, vocab]`, any float
/// dtype) using backend ops (softmax, stable descending sort, cumsum, comparisons, `where_`,
/// sums, `index_select`; when every token is kept only softmax, cumsum, comparisons and sums:
/// no sort, no gather); a few numbers per row come back to the host. `rows` must equal
/// `draws.len()`, or be 1: every draw then samples from the one shared row (the `n` samples
/// of one prompt after its shared prefill). Computes in f32 (the logits are cast first).
///
/// Chooses the same tokens as [`sample_host`] on the same logits and draws, except within the
/// numerical tolerance described in the [module docs](self). Errors: invalid params, a
/// logits shape other than `[rows, vocab]` with `vocab >= 1`, a draw outside `[0, 1)`, a row
/// whose probabilities are not finite (a NaN or `+inf` logit, or every logit `-inf`).
pub fn sample_device<B: Backend>(
    b: &B,
    logits: &B::Tensor,
    params: &SamplingParams,
    draws: &[f64],
) -> Result<Vec<u32>> {
    const OP: &str = "sample_device";
    params.validate()?;
    let (rows, vocab) = rows_and_vocab(OP, b, logits)?;
    let shape = [rows, vocab];
    if rows != draws.len() && rows != 1 {
        return Err(Error::shape(
            OP,
            format!("logits {shape:?} need {rows} draws (or 1 shared row), got {} draws", draws.len()),
        ));
    }
    for (i, &u) in draws.iter().enumerate() {
        check_draw(OP, i, u)?;
    }
    if draws.is_empty() {
        return Ok(Vec::new());
    }
    ops::no_grad(b, || {
        let x = b.cast(logits, DType::F32)?;
        if params.is_greedy() {
            return greedy_device(b, &x, rows, draws.len());
        }
        if params.keeps_every_token(vocab) {
            return sample_every_token_device(b, &x, params, draws, vocab);
        }
        let n = top_p_device(b, &x, params, vocab)?;
        let k = n.k;
        let u = b.tensor_f64(draws, &[draws.len(), 1], DType::F32)?;
        let below = b.logical_and(&b.le(&n.cum, &b.mul(&u, &n.kept_mass)?)?, &n.keep)?;
        let below = b.sum(&b.cast(&below, DType::F32)?, 1, false)?; // [draws]
        let kept_mass = b.to_host_f64(&n.kept_mass)?;
        check_kept_mass(OP, &kept_mass)?;
        let (below, kept_count) = (b.to_host_f64(&below)?, b.to_host_f64(&n.kept_count)?);
        let flat: Vec<i64> = below
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let row = if rows == 1 { 0 } else { i };
                let last = (kept_count[row] as usize).saturating_sub(1);
                (row * k + (n as usize).min(last)) as i64
            })
            .collect();
        let chosen =
            b.index_select(&b.reshape(&n.order, &[rows * k])?, 0, &b.tensor_i64(&flat, &[flat.len()])?)?;
        to_token_ids(OP, &b.to_host_i64(&chosen)?)
    })
}

/// [`sample_device`] when every token is kept (no top-k, top-p 1): inverse CDF in token-id
/// order. With `cum` the cumulative probabilities `[rows, vocab]` and `K` their last column, the
/// token of draw `u` is the number of tokens with `cum <= u * K` (the first token whose
/// cumulative mass exceeds `u * K`), at most the number with `cum < K` (the token at which the
/// mass reaches `K`, when rounding leaves no token above `u * K`), as [`Nucleus::select`].
fn sample_every_token_device<B: Backend>(
    b: &B,
    x: &B::Tensor,
    params: &SamplingParams,
    draws: &[f64],
    vocab: usize,
) -> Result<Vec<u32>> {
    const OP: &str = "sample_device";
    let probs = b.softmax(&b.affine(x, 1.0 / params.temperature, 0.0)?, 1)?;
    let cum = b.cumsum(&probs, 1)?;
    let total = b.narrow(&cum, 1, vocab - 1, 1)?; // [rows, 1]
    let u = b.tensor_f64(draws, &[draws.len(), 1], DType::F32)?;
    let count = |mask: &B::Tensor| b.sum(&b.cast(mask, DType::F32)?, 1, false);
    let below = count(&b.le(&cum, &b.mul(&u, &total)?)?)?; // [draws]
    let reach = count(&b.lt(&cum, &total)?)?; // [rows]
    check_kept_mass(OP, &b.to_host_f64(&total)?)?;
    let (below, reach) = (b.to_host_f64(&below)?, b.to_host_f64(&reach)?);
    Ok(below
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let row = if reach.len() == 1 { 0 } else { i };
            // Counts of at most `vocab` < 2^24 are exact in f32.
            (n.min(reach[row]) as usize).min(vocab - 1) as u32
        })
        .collect())
}

/// Steps 1-4 on the device for f32 logits `[rows, vocab]`: what [`sample_device`] selects from.
struct DeviceTopP<T> {
    /// Tokens kept by top-k.
    k: usize,
    /// The top-k probabilities in sampling order, `[rows, k]`.
    sorted: T,
    /// Their token ids, I64 `[rows, k]`.
    order: T,
    /// Cumulative mass in that order, `[rows, k]`.
    cum: T,
    /// Whether top-p keeps each, Bool `[rows, k]`.
    keep: T,
    /// The mass top-p kept, `[rows, 1]`.
    kept_mass: T,
    /// How many tokens top-p kept, `[rows]`.
    kept_count: T,
    /// The top-k mass, `[rows, 1]`.
    top_k_mass: T,
}

fn top_p_device<B: Backend>(
    b: &B,
    x: &B::Tensor,
    params: &SamplingParams,
    vocab: usize,
) -> Result<DeviceTopP<B::Tensor>> {
    let probs = b.softmax(&b.affine(x, 1.0 / params.temperature, 0.0)?, 1)?;
    let (sorted, order) = b.sort(&probs, 1, true)?;
    let k = params.top_k.map_or(vocab, |k| k.min(vocab));
    let sorted = b.narrow(&sorted, 1, 0, k)?;
    let order = b.narrow(&order, 1, 0, k)?;
    let cum = b.cumsum(&sorted, 1)?;
    let top_k_mass = b.narrow(&cum, 1, k - 1, 1)?; // [rows, 1]
    let before = b.sub(&cum, &sorted)?;
    // Position 0 has nothing before it (`cum - sorted` is exactly 0 there), so it is kept
    // whenever the mass is positive; a non-finite row is reported by the callers.
    let keep = b.lt(&before, &b.affine(&top_k_mass, params.top_p, 0.0)?)?;
    let zero = b.zeros(&[], DType::F32)?;
    let kept_mass = b.sum(&b.where_(&keep, &sorted, &zero)?, 1, true)?; // [rows, 1]
    let kept_count = b.sum(&b.cast(&keep, DType::F32)?, 1, false)?;
    Ok(DeviceTopP { k, sorted, order, cum, keep, kept_mass, kept_count, top_k_mass })
}

fn check_kept_mass(op: &'static str, kept_mass: &[f64]) -> Result<()> {
    match kept_mass.iter().position(|m| !(m.is_finite() && *m > 0.0)) {
        None => Ok(()),
        Some(r) => Err(Error::invalid(
            op,
            format!("row {r}: the probabilities are not finite (a NaN or +inf logit, or all -inf)"),
        )),
    }
}

/// The nucleus [`sample_device`] selects from, per row of `logits` (`[rows, vocab]`, any float
/// dtype), computed with the same backend ops and brought to the host: the kept token ids in
/// sampling order and their probabilities under the top-k renormalized distribution (as
/// [`nucleus_host`]; greedy rows keep the argmax with probability 1). For conformance checks of
/// a backend's top-p selection against the oracle. Errors as [`sample_device`].
pub fn nucleus_device<B: Backend>(
    b: &B,
    logits: &B::Tensor,
    params: &SamplingParams,
) -> Result<Vec<Nucleus>> {
    const OP: &str = "nucleus_device";
    params.validate()?;
    let (rows, vocab) = rows_and_vocab(OP, b, logits)?;
    ops::no_grad(b, || {
        let x = b.cast(logits, DType::F32)?;
        if params.is_greedy() {
            let ids = greedy_device(b, &x, rows, rows)?;
            return Ok(ids
                .into_iter()
                .map(|id| Nucleus { ids: alloc::vec![id], probs: alloc::vec![1.0] })
                .collect());
        }
        if params.keeps_every_token(vocab) {
            let probs = b.softmax(&b.affine(&x, 1.0 / params.temperature, 0.0)?, 1)?;
            let total = b.sum(&probs, 1, false)?;
            check_kept_mass(OP, &b.to_host_f64(&total)?)?;
            let probs = b.to_host_f64(&probs)?;
            let ids: Vec<u32> = (0..vocab as u32).collect();
            return Ok(probs
                .chunks(vocab)
                .map(|row| Nucleus { ids: ids.clone(), probs: row.to_vec() })
                .collect());
        }
        let n = top_p_device(b, &x, params, vocab)?;
        check_kept_mass(OP, &b.to_host_f64(&n.kept_mass)?)?;
        let (sorted, order) = (b.to_host_f64(&n.sorted)?, b.to_host_i64(&n.order)?);
        let (count, total) = (b.to_host_f64(&n.kept_count)?, b.to_host_f64(&n.top_k_mass)?);
        let k = n.k;
        (0..rows)
            .map(|r| {
                let kept = (count[r] as usize).clamp(1, k);
                let ids = to_token_ids(OP, &order[r * k..r * k + kept])?;
                let probs = sorted[r * k..r * k + kept].iter().map(|&p| p / total[r]).collect();
                Ok(Nucleus { ids, probs })
            })
            .collect()
    })
}

/// `(rows, vocab)` of logits that must be `[rows >= 1, vocab >= 1]`.
fn rows_and_vocab<B: Backend>(op: &'static str, b: &B, logits: &B::Tensor) -> Result<(usize, usize)> {
    let shape = b.shape(logits);
    match shape[..] {
        [r, v] if v >= 1 && r >= 1 => Ok((r, v)),
        _ => Err(Error::shape(op, format!("logits must have shape [rows, vocab >= 1], got {shape:?}"))),
    }
}

/// Greedy rows on the device: the argmax (ties to the lowest id), replicated for a shared row.
fn greedy_device<B: Backend>(b: &B, x: &B::Tensor, rows: usize, draws: usize) -> Result<Vec<u32>> {
    // The row maximum propagates NaN and is +inf or -inf exactly when the host oracle rejects
    // the row (a NaN would otherwise win the descending sort behind `argmax`).
    let max = b.to_host_f64(&b.max(x, 1, false)?)?;
    if let Some(r) = max.iter().position(|m| !m.is_finite()) {
        return Err(Error::invalid(
            "sample_device",
            format!("row {r}: a logit is NaN or +inf, or every logit is -inf"),
        ));
    }
    let ids = to_token_ids("sample_device", &b.to_host_i64(&b.argmax(x, 1, false)?)?)?;
    Ok(if rows == 1 { alloc::vec![ids[0]; draws] } else { ids })
}

fn to_token_ids(op: &'static str, ids: &[i64]) -> Result<Vec<u32>> {
    ids.iter()
        .map(|&i| u32::try_from(i).map_err(|_| Error::backend(op, format!("backend returned token id {i}"))))
        .collect()
}
