//! Level 2: every provided composite of the `Backend` trait, through the backend's method
//! (possibly an override) and through the default body in `orz_core::backend::{ops, nn}` on the
//! same backend, forward and gradient, against the reference.

use orz_core::Result;
use orz_core::backend::nn::rope_tables_host;
use orz_core::backend::{Backend, DType, nn, ops};
use proptest::collection::vec;
use proptest::prelude::*;

use super::{mask, shape, tensor, tensor_and_dim, values};
use crate::ErrorStats;
use crate::harness::{Harness, Input, Mode, TensorOp};
use crate::runner::CheckOutcome;

/// Which implementation of a composite runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The backend's trait method (its override, if any).
    Method,
    /// The default body, the public free function in `ops` / `nn`.
    Default,
}

/// A provided composite with its parameters, applied to the inputs in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Comp {
    /// `softmax(x0, dim)`.
    Softmax(usize),
    /// `log_softmax(x0, dim)`.
    LogSoftmax(usize),
    /// `logsumexp(x0, dim, keepdim)`.
    Logsumexp(usize, bool),
    /// `mean(x0, dim, keepdim)`.
    Mean(usize, bool),
    /// `masked_sum(x0, x1, dim)`.
    MaskedSum(Option<usize>),
    /// `masked_mean(x0, x1, dim)`.
    MaskedMean(Option<usize>),
    /// `silu(x0)`.
    Silu,
    /// `rms_norm(x0, x1, eps)`.
    RmsNorm(f64),
    /// `rotary_embedding(x0, cos = x1, sin = x2)`.
    Rotary,
    /// `linear(x0, x1, x2?)`.
    Linear,
    /// `attention(q, k, v, mask)`.
    Attention,
    /// `causal_attention(q, k, v, segment_ids)`.
    CausalAttention,
    /// `selective_log_prob(x0, x1)`.
    SelectiveLogProb,
    /// `embedding(x0, x1)`.
    Embedding,
    /// `unsqueeze`, `squeeze`, `sum_all`, `argmax(dim, keepdim)` of `x0`, `broadcast_to` of `x0`
    /// to `x1`'s shape, `lt`/`le` of `x0` and `x1`, `logical_and` of `x2` and `x3`.
    Helpers(usize, bool),
}

/// A composite and the implementation to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Composite(pub Comp, pub Via);

impl TensorOp for Composite {
    fn apply<C: Backend + ?Sized>(&self, b: &C, xs: &[C::Tensor]) -> Result<Vec<C::Tensor>> {
        let m = self.1 == Via::Method;
        let x = &xs[0];
        let one = |t: Result<C::Tensor>| t.map(|t| vec![t]);
        match self.0 {
            Comp::Softmax(d) => one(if m { b.softmax(x, d) } else { ops::softmax(b, x, d) }),
            Comp::LogSoftmax(d) => one(if m { b.log_softmax(x, d) } else { ops::log_softmax(b, x, d) }),
            Comp::Logsumexp(d, k) => one(if m { b.logsumexp(x, d, k) } else { ops::logsumexp(b, x, d, k) }),
            Comp::Mean(d, k) => one(if m { b.mean(x, d, k) } else { ops::mean(b, x, d, k) }),
            Comp::MaskedSum(d) => {
                one(if m { b.masked_sum(x, &xs[1], d) } else { ops::masked_sum(b, x, &xs[1], d) })
            }
            Comp::MaskedMean(d) => {
                one(if m { b.masked_mean(x, &xs[1], d) } else { ops::masked_mean(b, x, &xs[1], d) })
            }
            Comp::Silu => one(if m { b.silu(x) } else { ops::silu(b, x) }),
            Comp::RmsNorm(eps) => {
                one(if m { b.rms_norm(x, &xs[1], eps) } else { nn::rms_norm(b, x, &xs[1], eps) })
            }
            Comp::Rotary => one(if m {
                b.rotary_embedding(x, &xs[1], &xs[2])
            } else {
                nn::rotary_embedding(b, x, &xs[1], &xs[2])
            }),
            Comp::Linear => {
                let bias = xs.get(2);
                one(if m { b.linear(x, &xs[1], bias) } else { nn::linear(b, x, &xs[1], bias) })
            }
            Comp::Attention => one(if m {
                b.attention(x, &xs[1], &xs[2], &xs[3])
            } else {
                nn::attention(b, x, &xs[1], &xs[2], &xs[3])
            }),
            Comp::CausalAttention => one(if m {
                b.causal_attention(x, &xs[1], &xs[2], &xs[3])
            } else {
                nn::causal_attention(b, x, &xs[1], &xs[2], &xs[3])
            }),
            Comp::SelectiveLogProb => {
                one(if m { b.selective_log_prob(x, &xs[1]) } else { ops::selective_log_prob(b, x, &xs[1]) })
            }
            Comp::Embedding => one(if m { b.embedding(x, &xs[1]) } else { nn::embedding(b, x, &xs[1]) }),
            Comp::Helpers(d, k) => {
                let to = b.shape(&xs[1]);
                let (y, p, q) = (&xs[1], &xs[2], &xs[3]);
                if m {
                    let u = b.unsqueeze(x, d)?;
                    Ok(vec![
                        u.clone(),
                        b.squeeze(&u, d)?,
                        b.sum_all(x)?,
                        b.argmax(x, d, k)?,
                        b.broadcast_to(x, &to)?,
                        b.lt(x, y)?,
                        b.le(x, y)?,
                        b.logical_and(p, q)?,
                    ])
                } else {
                    let u = ops::unsqueeze(b, x, d)?;
                    Ok(vec![
                        u.clone(),
                        ops::squeeze(b, &u, d)?,
                        ops::sum_all(b, x)?,
                        ops::argmax(b, x, d, k)?,
                        ops::broadcast_to(b, x, &to)?,
                        b.gt(y, x)?,
                        b.ge(y, x)?,
                        ops::logical_and(b, p, q)?,
                    ])
                }
            }
        }
    }
}

/// Checks `op` through the method and through the default, forward and gradient.
fn both<B: Backend>(
    h: &Harness<'_, B>,
    op: Comp,
    inputs: &[Input],
    stats: &mut ErrorStats,
) -> core::result::Result<(), String> {
    h.check_op(&Composite(op.clone(), Via::Method), inputs, Mode::Grad, stats)?;
    h.check_op(&Composite(op, Via::Default), inputs, Mode::Grad, stats)
}

/// A composite of one float tensor and one of its dimensions (plus a keepdim flag).
fn along<B: Backend>(
    backend: &B,
    dtype: DType,
    check: &'static str,
    op: fn(usize, bool) -> Comp,
) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    h.run(check, (tensor_and_dim(3, 5, -4.0, 4.0), any::<bool>()), |((s, d, x), k), stats| {
        both(&h, op(*d, *k), &[h.float(s, x)], stats)
    })
}

/// `softmax` along a dimension.
pub fn check_softmax<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    along(b, dtype, "softmax", |d, _| Comp::Softmax(d))
}
/// `log_softmax` along a dimension.
pub fn check_log_softmax<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    along(b, dtype, "log_softmax", |d, _| Comp::LogSoftmax(d))
}
/// `logsumexp` along a dimension.
pub fn check_logsumexp<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    along(b, dtype, "logsumexp", Comp::Logsumexp)
}
/// `mean` along a dimension.
pub fn check_mean<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    along(b, dtype, "mean", Comp::Mean)
}

/// `silu`.
pub fn check_silu<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    h.run("silu", tensor(3, 5, -5.0, 5.0), |(s, x), stats| both(&h, Comp::Silu, &[h.float(s, x)], stats))
}

/// `masked_sum` or `masked_mean` over a dimension or everything, with NaN stored at some masked
/// positions (it must reach neither the result nor the gradient) and all-false rows.
fn masked<B: Backend>(
    backend: &B,
    dtype: DType,
    check: &'static str,
    op: fn(Option<usize>) -> Comp,
) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let strategy =
        (tensor_and_dim(3, 4, -3.0, 3.0), any::<bool>(), any::<bool>()).prop_flat_map(|(t, all, nan)| {
            let n = t.0.iter().product();
            (Just(t), Just(all), Just(nan), mask(n))
        });
    h.run(check, strategy, |((s, d, x), all, nan, m), stats| {
        let x: Vec<f64> =
            x.iter().zip(m).map(|(&v, &keep)| if keep || !nan { v } else { f64::NAN }).collect();
        let dim = if *all { None } else { Some(*d) };
        both(&h, op(dim), &[h.float(s, &x), Input::mask(s, m)], stats)
    })
}

/// `masked_sum`, NaN at masked positions not leaking.
pub fn check_masked_sum<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    masked(b, dtype, "masked_sum", Comp::MaskedSum)
}
/// `masked_mean` (0 where nothing is selected), NaN at masked positions not leaking.
pub fn check_masked_mean<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    masked(b, dtype, "masked_mean", Comp::MaskedMean)
}

/// `rms_norm` over the last dimension with eps 1e-6 (Qwen2) or 1e-2.
pub fn check_rms_norm<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let strategy =
        (tensor(3, 6, -3.0, 3.0), prop_oneof![Just(1e-6), Just(1e-2)]).prop_flat_map(|((s, x), eps)| {
            let hidden = s[s.len() - 1];
            (Just(s), Just(x), values(hidden, 0.5, 1.5), Just(eps))
        });
    h.run("rms_norm", strategy, |(s, x, w, eps), stats| {
        let inputs = [h.float(s, x), h.float(&s[s.len() - 1..], w)];
        both(&h, Comp::RmsNorm(*eps), &inputs, stats)
    })
}

/// `rotary_embedding` with tables for random positions, `[b, s, d]` or shared `[s, d]`.
pub fn check_rotary_embedding<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let dims = (1..=2usize, 1..=2usize, 1..=4usize, 1..=3usize, any::<bool>());
    let strategy = dims.prop_flat_map(|(b, heads, s, half, shared)| {
        let d = 2 * half;
        let rows = if shared { 1 } else { b };
        (
            Just([b, heads, s, d]),
            Just(shared),
            values(b * heads * s * d, -2.0, 2.0),
            vec(0i64..4096, rows * s),
        )
    });
    h.run("rotary_embedding", strategy, |(xs, shared, x, pos), stats| {
        let (cos, sin) = rope_tables_host(pos, xs[3], 1e6).map_err(|e| format!("kit bug: {e}"))?;
        let table = if *shared { vec![xs[2], xs[3]] } else { vec![xs[0], xs[2], xs[3]] };
        let inputs = [h.float(xs, x), h.float(&table, &cos), h.float(&table, &sin)];
        both(&h, Comp::Rotary, &inputs, stats)
    })
}

/// `linear` with and without bias, inputs of rank 1 to 3.
pub fn check_linear<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let strategy =
        (shape(2, 3), 1..=5usize, 1..=4usize, any::<bool>()).prop_flat_map(|(lead, i, o, bias)| {
            let xs = [&lead[..], &[i]].concat();
            let n = xs.iter().product();
            (
                Just(xs),
                values(n, -2.0, 2.0),
                Just([o, i]),
                values(o * i, -1.0, 1.0),
                Just(bias),
                values(o, -1.0, 1.0),
            )
        });
    h.run("linear", strategy, |(xs, x, ws, w, bias, bv), stats| {
        let mut inputs = vec![h.float(xs, x), h.float(ws, w)];
        if *bias {
            inputs.push(h.float(&[ws[0]], bv));
        }
        both(&h, Comp::Linear, &inputs, stats)
    })
}

/// `attention` with grouped kv heads and a random Bool mask of shape `[b, hq, sq, skv]`,
/// `[b, 1, sq, skv]` or `[sq, skv]` (fully masked rows average the values uniformly).
pub fn check_attention<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let dims = (1..=2usize, 1..=2usize, 1..=2usize, 1..=3usize, 1..=4usize, 1..=4usize, 0..3usize);
    let strategy = dims.prop_flat_map(|(b, hkv, rep, sq, skv, d, mask_kind)| {
        let hq = hkv * rep;
        let ms = match mask_kind {
            0 => vec![b, hq, sq, skv],
            1 => vec![b, 1, sq, skv],
            _ => vec![sq, skv],
        };
        let (nq, nk, nm) = (b * hq * sq * d, b * hkv * skv * d, ms.iter().product());
        let shapes = (vec![b, hq, sq, d], vec![b, hkv, skv, d], ms);
        (Just(shapes), values(nq, -2.0, 2.0), values(nk, -2.0, 2.0), values(nk, -2.0, 2.0), mask(nm))
    });
    h.run("attention", strategy, |((qs, ks, ms), q, k, v, m), stats| {
        let inputs = [h.float(qs, q), h.float(ks, k), h.float(ks, v), Input::mask(ms, m)];
        both(&h, Comp::Attention, &inputs, stats)
    })
}

/// `causal_attention` over packed rows: segment ids of consecutive samples per row, rows of up
/// to 40 positions (so that blockwise overrides with small tiles cross several blocks), sparse or
/// dense sample starts (long segments, or many single-token ones), grouped kv heads (`hq / hkv` up
/// to 3), and sometimes a last segment of padding (id -1, as packing writes it).
pub fn check_causal_attention<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let dims = (1..=2usize, 1..=2usize, 1..=3usize, 1..=40usize, 1..=4usize, 0..3usize, 0..=4usize);
    let strategy = dims.prop_flat_map(|(b, hkv, rep, s, d, density, pad)| {
        let hq = hkv * rep;
        let (nq, nk) = (b * hq * s * d, b * hkv * s * d);
        let shapes = (vec![b, hq, s, d], vec![b, hkv, s, d], vec![b, s]);
        // The chance that a position starts a new sample: long segments, mixed, single tokens.
        let p_start = [0.05, 0.25, 0.6][density];
        let starts = vec(proptest::bool::weighted(p_start), b * s);
        (Just(shapes), values(nq, -2.0, 2.0), values(nk, -2.0, 2.0), values(nk, -2.0, 2.0), starts, Just(pad))
    });
    h.run("causal_attention", strategy, |((qs, ks, ss), q, k, v, starts, pad), stats| {
        let s = ss[1];
        // The last `pad` positions (at most s - 1) of every row are padding.
        let pad = (*pad).min(s - 1);
        let mut seg = Vec::with_capacity(starts.len());
        for row in starts.chunks(s) {
            let mut id = 0i64;
            for (i, &start) in row.iter().enumerate() {
                id += i64::from(start && i > 0);
                seg.push(if i >= s - pad { -1 } else { id });
            }
        }
        let inputs = [h.float(qs, q), h.float(ks, k), h.float(ks, v), Input::index(ss, &seg)];
        both(&h, Comp::CausalAttention, &inputs, stats)
    })
}

/// `selective_log_prob` of logits `[..., vocab]` at random targets.
pub fn check_selective_log_prob<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let strategy = (shape(2, 3), 1..=8usize).prop_flat_map(|(lead, vocab)| {
        let n: usize = lead.iter().product();
        (Just(lead), Just(vocab), values(n * vocab, -5.0, 5.0), vec(0..vocab as i64, n))
    });
    h.run("selective_log_prob", strategy, |(lead, vocab, logits, targets), stats| {
        let ls = [&lead[..], &[*vocab]].concat();
        both(&h, Comp::SelectiveLogProb, &[h.float(&ls, logits), Input::index(lead, targets)], stats)
    })
}

/// `embedding` of ids of any shape, repeated ids accumulating their gradient.
pub fn check_embedding<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let strategy = (1..=6usize, 1..=4usize, shape(2, 4)).prop_flat_map(|(vocab, hidden, ids)| {
        let n: usize = ids.iter().product();
        (Just([vocab, hidden]), values(vocab * hidden, -2.0, 2.0), Just(ids), vec(0..vocab as i64, n))
    });
    h.run("embedding", strategy, |(ws, w, is, ids), stats| {
        both(&h, Comp::Embedding, &[h.float(ws, w), Input::index(is, ids)], stats)
    })
}

/// The provided helpers: `unsqueeze`, `squeeze`, `sum_all`, `argmax` (first on ties),
/// `broadcast_to`, `lt`, `le`, `logical_and`.
pub fn check_helpers<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let strategy =
        (tensor_and_dim(3, 4, -2.0, 2.0), any::<bool>(), 1..=3usize).prop_flat_map(|((s, d, x), k, lead)| {
            let big = [&[lead][..], &s[..]].concat();
            let n = big.iter().product();
            let m = s.iter().product();
            (Just((s, d, x, k)), Just(big), values(n, -2.0, 2.0), mask(m), mask(m))
        });
    h.run("helpers", strategy, |((s, d, x, k), big, y, p, q), stats| {
        let inputs = [h.float(s, x), h.float(big, y), Input::mask(s, p), Input::mask(s, q)];
        both(&h, Comp::Helpers(*d, *k), &inputs, stats)
    })
}
