//! Default bodies of the transformer building blocks of [`Backend`] (Qwen2 as implemented by
//! Hugging Face `transformers`), and the host-side rotary tables.

use alloc::format;
use alloc::vec::Vec;

use num_traits::Float;

use super::ops::{arange, last_dim};

use super::{Backend, DType};
use crate::{Error, Result};

/// Default of [`Backend::embedding`]: `index_select` of the flattened ids, reshaped.
pub fn embedding<B: Backend + ?Sized>(b: &B, weight: &B::Tensor, ids: &B::Tensor) -> Result<B::Tensor> {
    let ws = b.shape(weight);
    if ws.len() != 2 {
        return Err(Error::shape("embedding", format!("weight must be [vocab, hidden], got shape {ws:?}")));
    }
    let mut shape = b.shape(ids);
    let n = super::shape::numel("embedding", &shape)?;
    let rows = b.index_select(weight, 0, &b.reshape(ids, &[n])?)?;
    shape.push(ws[1]);
    b.reshape(&rows, &shape)
}

/// Default of [`Backend::linear`]: `matmul(x, transpose(w)) + bias`.
pub fn linear<B: Backend + ?Sized>(
    b: &B,
    x: &B::Tensor,
    w: &B::Tensor,
    bias: Option<&B::Tensor>,
) -> Result<B::Tensor> {
    let xs = b.shape(x);
    let wt = b.transpose(w, 0, 1)?;
    let y =
        if xs.len() == 1 { b.squeeze(&b.matmul(&b.unsqueeze(x, 0)?, &wt)?, 0)? } else { b.matmul(x, &wt)? };
    match bias {
        Some(bias) => b.add(&y, bias),
        None => Ok(y),
    }
}

/// Default of [`Backend::rms_norm`] (Qwen2RMSNorm).
pub fn rms_norm<B: Backend + ?Sized>(
    b: &B,
    x: &B::Tensor,
    weight: &B::Tensor,
    eps: f64,
) -> Result<B::Tensor> {
    let last = last_dim(b, "rms_norm", x)?;
    let x32 = b.cast(x, DType::F32)?;
    let var = b.mean(&b.mul(&x32, &x32)?, last, true)?;
    let inv = b.powf(&b.affine(&var, 1.0, eps)?, -0.5)?;
    let y = b.cast(&b.mul(&x32, &inv)?, b.dtype(x))?;
    b.mul(weight, &y)
}

/// Rotary tables for positions `positions` (row-major `[batch, seq]`), head dimension
/// `head_dim` (even) and base `theta`, on the host: `(cos, sin)`, each row-major
/// `[batch, seq, head_dim]`, with `angle[.., j] = pos * theta^(-2 (j mod d/2) / d)`
/// (Hugging Face's `cat(freqs, freqs)` layout). Computed in f64, so exact where HF's f32 angles
/// drift at long positions: a deliberate improvement every backend shares.
pub fn rope_tables_host(positions: &[i64], head_dim: usize, theta: f64) -> Result<(Vec<f64>, Vec<f64>)> {
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        return Err(Error::invalid(
            "rope_tables",
            format!("head_dim must be even and positive, got {head_dim}"),
        ));
    }
    if !(theta.is_finite() && theta > 0.0) {
        return Err(Error::invalid("rope_tables", format!("theta must be finite and positive, got {theta}")));
    }
    let half = head_dim / 2;
    let inv_freq: Vec<f64> =
        (0..half).map(|i| 1.0 / Float::powf(theta, (2 * i) as f64 / head_dim as f64)).collect();
    let mut cos = Vec::with_capacity(positions.len() * head_dim);
    let mut sin = Vec::with_capacity(positions.len() * head_dim);
    for &p in positions {
        for j in 0..head_dim {
            let angle = p as f64 * inv_freq[j % half];
            cos.push(Float::cos(angle));
            sin.push(Float::sin(angle));
        }
    }
    Ok((cos, sin))
}

/// [`rope_tables_host`] uploaded as two `[batch, seq, head_dim]` tensors of dtype `dtype`.
pub fn rope_tables<B: Backend + ?Sized>(
    b: &B,
    positions: &[i64],
    batch_seq: [usize; 2],
    head_dim: usize,
    theta: f64,
    dtype: DType,
) -> Result<(B::Tensor, B::Tensor)> {
    let (cos, sin) = rope_tables_host(positions, head_dim, theta)?;
    let shape = [batch_seq[0], batch_seq[1], head_dim];
    Ok((b.tensor_f64(&cos, &shape, dtype)?, b.tensor_f64(&sin, &shape, dtype)?))
}

/// Default of [`Backend::rotary_embedding`]. Also accepts `cos`, `sin` of shape `[seq, d]`,
/// shared by the batch.
pub fn rotary_embedding<B: Backend + ?Sized>(
    b: &B,
    x: &B::Tensor,
    cos: &B::Tensor,
    sin: &B::Tensor,
) -> Result<B::Tensor> {
    let (xs, cs, ss) = (b.shape(x), b.shape(cos), b.shape(sin));
    let fits = xs.len() == 4
        && xs[3].is_multiple_of(2)
        && cs == ss
        && ((cs.len() == 3 && cs[..] == [xs[0], xs[2], xs[3]]) || (cs.len() == 2 && cs[..] == xs[2..]));
    if !fits {
        return Err(Error::shape(
            "rotary_embedding",
            format!(
                "x of shape {xs:?} (needs [b, h, s, even d]) does not fit cos {cs:?} / sin {ss:?} ([b, s, d] or [s, d])"
            ),
        ));
    }
    let (cos, sin) =
        if cs.len() == 3 { (b.unsqueeze(cos, 1)?, b.unsqueeze(sin, 1)?) } else { (cos.clone(), sin.clone()) };
    let half = xs[3] / 2;
    let (x1, x2) = (b.narrow(x, 3, 0, half)?, b.narrow(x, 3, half, half)?);
    let rotated = b.cat(&[b.neg(&x2)?, x1], 3)?;
    b.add(&b.mul(x, &cos)?, &b.mul(&rotated, &sin)?)
}

/// Default of [`Backend::attention`]. As in Hugging Face's eager path, the softmax runs in f32
/// and its result is cast back to `q`'s dtype.
pub fn attention<B: Backend + ?Sized>(
    b: &B,
    q: &B::Tensor,
    k: &B::Tensor,
    v: &B::Tensor,
    mask: &B::Tensor,
) -> Result<B::Tensor> {
    let (qs, ks) = (b.shape(q), b.shape(k));
    let dtype = b.dtype(q);
    let (k, v) = if qs[1] == ks[1] {
        (k.clone(), v.clone())
    } else {
        let rep = qs[1] / ks[1];
        let heads: Vec<i64> = (0..qs[1]).map(|h| (h / rep) as i64).collect();
        let idx = b.tensor_i64(&heads, &[qs[1]])?;
        (b.index_select(k, 1, &idx)?, b.index_select(v, 1, &idx)?)
    };
    let scale = 1.0 / (qs[3] as f64).sqrt();
    let scores = b.affine(&b.matmul(q, &b.transpose(&k, 2, 3)?)?, scale, 0.0)?;
    let fill = b.full(&[], dtype.min_finite().unwrap_or(f64::MIN), dtype)?;
    let scores = b.cast(&b.where_(mask, &scores, &fill)?, DType::F32)?;
    let probs = b.cast(&b.softmax(&scores, 3)?, dtype)?;
    b.matmul(&probs, &v)
}

/// Default of [`Backend::causal_attention`]: builds the block-diagonal causal mask
/// `(j <= i) && seg[i] == seg[j]` and calls [`Backend::attention`].
pub fn causal_attention<B: Backend + ?Sized>(
    b: &B,
    q: &B::Tensor,
    k: &B::Tensor,
    v: &B::Tensor,
    segment_ids: &B::Tensor,
) -> Result<B::Tensor> {
    let ss = b.shape(segment_ids);
    let (batch, s) = (ss[0], ss[1]);
    let pos = arange(b, s)?;
    let causal = b.ge(&b.reshape(&pos, &[s, 1])?, &b.reshape(&pos, &[1, s])?)?;
    let same =
        b.eq(&b.reshape(segment_ids, &[batch, 1, s, 1])?, &b.reshape(segment_ids, &[batch, 1, 1, s])?)?;
    b.attention(q, k, v, &b.logical_and(&same, &causal)?)
}
