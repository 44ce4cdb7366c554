//! Blockwise causal attention over packed rows (FlashAttention-2 style) on host f32 buffers: the
//! kernel behind [`crate::ops::causal::causal_attention`].
//!
//! Position `i` of a row attends to `j` iff `j <= i` and `seg[i] == seg[j]`; query head `h` reads
//! kv head `h / (hq / hkv)` in place (no repeated kv heads); scores are scaled by `1 / sqrt(d)`.
//! The forward keeps only the output and the per-row logsumexp: scores live in one
//! `block × block` tile at a time (online softmax). The backward recomputes the probabilities
//! tile by tile from `q`, `k`, the saved logsumexp and `D = rowsum(dO ⊙ O)`.
//!
//! Each query block visits only the keys from the first position of its earliest segment up to
//! its own last row, so a pack costs about `Σ segment_len² / 2` dot products, and memory is
//! linear in the pack length. Work is split over `(batch, query head)` pairs on scoped threads.

use std::collections::HashMap;

/// The geometry of one call; buffers are row-major and contiguous: `q [batch, hq, s, d]`,
/// `k [batch, hkv, s, d]`, `v [batch, hkv, s, dv]`, segment ids `[batch, s]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Batch rows.
    pub batch: usize,
    /// Query heads (a multiple of `hkv`).
    pub hq: usize,
    /// Key / value heads.
    pub hkv: usize,
    /// Sequence length (of queries and keys alike).
    pub s: usize,
    /// Query / key head size.
    pub d: usize,
    /// Value head size.
    pub dv: usize,
}

impl Dims {
    /// Query heads per kv head.
    fn rep(&self) -> usize {
        self.hq / self.hkv.max(1)
    }
    /// The score scale `1 / sqrt(d)`.
    fn scale(&self) -> f32 {
        (1.0 / (self.d as f64).sqrt()) as f32
    }
}

/// The inputs of one call (see [`Dims`] for the layouts) and the tile size.
#[derive(Debug, Clone, Copy)]
pub struct Problem<'a> {
    /// The shapes.
    pub dims: Dims,
    /// Queries.
    pub q: &'a [f32],
    /// Keys.
    pub k: &'a [f32],
    /// Values.
    pub v: &'a [f32],
    /// Segment ids, one per position of each row.
    pub seg: &'a [i64],
    /// Rows per query block and keys per key block (at least 1).
    pub block: usize,
}

/// The gradients of one call with respect to `q`, `k` and `v` (their layouts).
#[derive(Debug, Clone, PartialEq)]
pub struct Grads {
    /// `∂L/∂q`.
    pub dq: Vec<f32>,
    /// `∂L/∂k`.
    pub dk: Vec<f32>,
    /// `∂L/∂v`.
    pub dv: Vec<f32>,
}

/// For each position of a row, the first position of its segment (ids need not be contiguous).
fn segment_starts(seg: &[i64]) -> Vec<usize> {
    let mut first = HashMap::new();
    seg.iter().enumerate().map(|(i, id)| *first.entry(*id).or_insert(i)).collect()
}

/// `Σ a_i b_i` with eight independent partial sums (so that it vectorizes).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for t in 0..8 {
            acc[t] += x[t] * y[t];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += a x`.
#[inline]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// One `(batch, query head)` pair: offsets of its rows in `q`/`out` and of its kv head in `k`/`v`.
struct Unit<'p> {
    /// Its queries `[s, d]`.
    q: &'p [f32],
    /// Its kv head's keys `[s, d]`.
    k: &'p [f32],
    /// Its kv head's values `[s, dv]`.
    v: &'p [f32],
    /// Its row's segment ids `[s]`.
    seg: &'p [i64],
    /// Its row's segment starts `[s]`.
    starts: &'p [usize],
}

impl<'a> Problem<'a> {
    /// Unit `u` (`u = batch_index * hq + head`), given each row's segment starts.
    fn unit<'p>(&'p self, u: usize, starts: &'p [Vec<usize>]) -> Unit<'p> {
        let Dims { hq, s, d, dv, .. } = self.dims;
        let (bi, h) = (u / hq, u % hq);
        let kv = bi * self.dims.hkv + h / self.dims.rep();
        Unit {
            q: &self.q[u * s * d..][..s * d],
            k: &self.k[kv * s * d..][..s * d],
            v: &self.v[kv * s * dv..][..s * dv],
            seg: &self.seg[bi * s..][..s],
            starts: &starts[bi],
        }
    }

    /// Each row's segment starts.
    fn starts(&self) -> Vec<Vec<usize>> {
        let s = self.dims.s;
        (0..self.dims.batch).map(|bi| segment_starts(&self.seg[bi * s..][..s])).collect()
    }

    /// The query blocks `(q0, q1, lo)`: rows `q0..q1` attend to keys in `lo..q1` at most
    /// (`lo` is the first position of the block's earliest segment).
    fn query_blocks<'s>(&self, starts: &'s [usize]) -> impl Iterator<Item = (usize, usize, usize)> + 's {
        let (s, block) = (self.dims.s, self.block.max(1));
        (0..s).step_by(block).map(move |q0| {
            let q1 = (q0 + block).min(s);
            (q0, q1, starts[q0..q1].iter().copied().min().unwrap_or(q0))
        })
    }

    /// Checks that the buffers have the lengths `dims` and `block` require.
    fn check(&self) -> Result<(), String> {
        let Dims { batch, hq, hkv, s, d, dv } = self.dims;
        let want = [batch * hq * s * d, batch * hkv * s * d, batch * hkv * s * dv, batch * s];
        let got = [self.q.len(), self.k.len(), self.v.len(), self.seg.len()];
        if hkv == 0 || !hq.is_multiple_of(hkv) || want != got || self.block == 0 {
            return Err(format!(
                "flash attention: {:?} with block {} needs q, k, v, segment lengths {want:?}, got {got:?}",
                self.dims, self.block
            ));
        }
        Ok(())
    }
}

/// Runs `f(unit, outputs...)` for every unit, each unit writing its own chunk (of `lens[i]`
/// elements per unit) of every output buffer; units are split over up to
/// `available_parallelism` scoped threads when the work is large enough.
fn for_units<const N: usize>(
    units: usize,
    work_per_unit: usize,
    outs: [&mut [f32]; N],
    lens: [usize; N],
    f: impl Fn(usize, [&mut [f32]; N]) + Sync,
) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = cores.min(units).min(1 + units * work_per_unit / (1 << 20)).max(1);
    let per = units.div_ceil(threads).max(1);
    let mut outs = outs.map(Some);
    std::thread::scope(|scope| {
        let f = &f;
        let mut u0 = 0;
        while u0 < units {
            let n = per.min(units - u0);
            let mut chunks: [&mut [f32]; N] = core::array::from_fn(|i| {
                let (head, tail) = outs[i].take().unwrap_or_default().split_at_mut(n * lens[i]);
                outs[i] = Some(tail);
                head
            });
            let first = u0;
            let mut run = move || {
                for u in 0..n {
                    let views = core::array::from_fn(|i| {
                        let chunk = core::mem::take(&mut chunks[i]);
                        let (mine, rest) = chunk.split_at_mut(lens[i]);
                        chunks[i] = rest;
                        mine
                    });
                    f(first + u, views);
                }
            };
            u0 += n;
            if u0 < units {
                scope.spawn(run);
            } else {
                run()
            }
        }
    });
}

/// The forward pass: the output `[batch, hq, s, dv]` and the logsumexp of each query row's
/// scaled, masked scores `[batch, hq, s]`.
pub fn forward(p: &Problem<'_>) -> Result<(Vec<f32>, Vec<f32>), String> {
    p.check()?;
    let Dims { batch, hq, s, d, dv, .. } = p.dims;
    let (scale, block) = (p.dims.scale(), p.block);
    let mut out = vec![0.0f32; batch * hq * s * dv];
    let mut lse = vec![0.0f32; batch * hq * s];
    let starts = p.starts();
    for_units(batch * hq, s * s * d, [&mut out, &mut lse], [s * dv, s], |u, [out, lse]| {
        let unit = p.unit(u, &starts);
        let mut scores = vec![0.0f32; block];
        let mut acc = vec![0.0f32; block * dv];
        let (mut m, mut l) = (vec![0.0f32; block], vec![0.0f32; block]);
        for (q0, q1, lo) in p.query_blocks(unit.starts) {
            acc.fill(0.0);
            m.fill(f32::NEG_INFINITY);
            l.fill(0.0);
            for k0 in (lo..q1).step_by(block) {
                let k1 = (k0 + block).min(q1);
                for qi in q0..q1 {
                    let i = qi - q0;
                    let (qrow, sid) = (&unit.q[qi * d..][..d], unit.seg[qi]);
                    let mut row_max = f32::NEG_INFINITY;
                    for (kj, sc) in (k0..k1).zip(scores.iter_mut()) {
                        *sc = if kj <= qi && unit.seg[kj] == sid {
                            dot(qrow, &unit.k[kj * d..][..d]) * scale
                        } else {
                            f32::NEG_INFINITY
                        };
                        row_max = row_max.max(*sc);
                    }
                    if row_max == f32::NEG_INFINITY {
                        continue;
                    }
                    let m_new = m[i].max(row_max);
                    let arow = &mut acc[i * dv..][..dv];
                    if m[i] != m_new && m[i] != f32::NEG_INFINITY {
                        let alpha = (m[i] - m_new).exp();
                        arow.iter_mut().for_each(|a| *a *= alpha);
                        l[i] *= alpha;
                    }
                    m[i] = m_new;
                    for (kj, &sc) in (k0..k1).zip(scores.iter()) {
                        if sc != f32::NEG_INFINITY {
                            let pr = (sc - m_new).exp();
                            l[i] += pr;
                            axpy(arow, pr, &unit.v[kj * dv..][..dv]);
                        }
                    }
                }
            }
            // Every row attends at least to itself, so `l >= 1` here.
            for qi in q0..q1 {
                let i = qi - q0;
                let inv = 1.0 / l[i];
                for (o, a) in out[qi * dv..][..dv].iter_mut().zip(&acc[i * dv..][..dv]) {
                    *o = a * inv;
                }
                lse[qi] = m[i] + l[i].ln();
            }
        }
    });
    Ok((out, lse))
}

/// The backward pass from the forward's output `o`, its logsumexp `lse` and the output's
/// gradient `d_o` (both `[batch, hq, s, dv]`).
pub fn backward(p: &Problem<'_>, o: &[f32], d_o: &[f32], lse: &[f32]) -> Result<Grads, String> {
    p.check()?;
    let Dims { batch, hq, hkv, s, d, dv } = p.dims;
    let (n_out, n_lse) = (batch * hq * s * dv, batch * hq * s);
    if o.len() != n_out || d_o.len() != n_out || lse.len() != n_lse {
        return Err(format!(
            "flash attention backward: output, its gradient and logsumexp need lengths {n_out}, {n_out}, {n_lse}, got {}, {}, {}",
            o.len(),
            d_o.len(),
            lse.len()
        ));
    }
    let (scale, block) = (p.dims.scale(), p.block);
    let starts = p.starts();
    // dk and dv per query head; summed over each kv head's query heads below.
    let mut dq = vec![0.0f32; batch * hq * s * d];
    let mut dk_h = vec![0.0f32; batch * hq * s * d];
    let mut dv_h = vec![0.0f32; batch * hq * s * dv];
    let lens = [s * d, s * d, s * dv];
    for_units(batch * hq, 2 * s * s * d, [&mut dq, &mut dk_h, &mut dv_h], lens, |u, [dq, dk, dvv]| {
        let unit = p.unit(u, &starts);
        let (o, d_o, lse) = (&o[u * s * dv..][..s * dv], &d_o[u * s * dv..][..s * dv], &lse[u * s..][..s]);
        let delta: Vec<f32> = (0..s).map(|i| dot(&d_o[i * dv..][..dv], &o[i * dv..][..dv])).collect();
        for (q0, q1, lo) in p.query_blocks(unit.starts) {
            for k0 in (lo..q1).step_by(block) {
                let k1 = (k0 + block).min(q1);
                for qi in q0..q1 {
                    let (qrow, dorow, sid) = (&unit.q[qi * d..][..d], &d_o[qi * dv..][..dv], unit.seg[qi]);
                    let dqrow = &mut dq[qi * d..][..d];
                    for kj in k0..k1.min(qi + 1) {
                        if unit.seg[kj] != sid {
                            continue;
                        }
                        let (krow, vrow) = (&unit.k[kj * d..][..d], &unit.v[kj * dv..][..dv]);
                        let pr = (dot(qrow, krow) * scale - lse[qi]).exp();
                        axpy(&mut dvv[kj * dv..][..dv], pr, dorow);
                        let ds = pr * (dot(dorow, vrow) - delta[qi]) * scale;
                        axpy(dqrow, ds, krow);
                        axpy(&mut dk[kj * d..][..d], ds, qrow);
                    }
                }
            }
        }
    });
    let rep = p.dims.rep();
    if rep == 1 {
        return Ok(Grads { dq, dk: dk_h, dv: dv_h });
    }
    let sum_groups = |per_head: &[f32], len: usize| -> Vec<f32> {
        let mut total = vec![0.0f32; batch * hkv * len];
        for (g, t) in total.chunks_mut(len).enumerate() {
            for part in per_head[g * rep * len..][..rep * len].chunks(len) {
                t.iter_mut().zip(part).for_each(|(t, x)| *t += x);
            }
        }
        total
    };
    Ok(Grads { dk: sum_groups(&dk_h, s * d), dv: sum_groups(&dv_h, s * dv), dq })
}

#[cfg(test)]
#[path = "flash_tests.rs"]
mod tests;
