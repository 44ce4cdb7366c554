//! The blockwise kernel against a dense f64 implementation, at several tile sizes.

use super::{Dims, Problem, backward, forward};

/// Deterministic values in `[-2, 2)`.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f64 / (1u64 << 24) as f64 * 4.0 - 2.0) as f32
        })
        .collect()
}

/// Dense attention in f64: output, then `(dq, dk, dv)` for the output gradient `d_o`.
#[allow(clippy::type_complexity)]
fn dense(p: &Problem<'_>, d_o: &[f32]) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let Dims { batch, hq, hkv, s, d, dv } = p.dims;
    let rep = hq / hkv;
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0.0; batch * hq * s * dv];
    let (mut dq, mut dk, mut dvv) =
        (vec![0.0; batch * hq * s * d], vec![0.0; batch * hkv * s * d], vec![0.0; batch * hkv * s * dv]);
    for bi in 0..batch {
        let seg = &p.seg[bi * s..][..s];
        for h in 0..hq {
            let (u, g) = (bi * hq + h, bi * hkv + h / rep);
            let q = |i: usize, c: usize| f64::from(p.q[(u * s + i) * d + c]);
            let k = |j: usize, c: usize| f64::from(p.k[(g * s + j) * d + c]);
            let v = |j: usize, c: usize| f64::from(p.v[(g * s + j) * dv + c]);
            let go = |i: usize, c: usize| f64::from(d_o[(u * s + i) * dv + c]);
            for i in 0..s {
                let allowed: Vec<usize> = (0..=i).filter(|&j| seg[j] == seg[i]).collect();
                let scores: Vec<f64> =
                    allowed.iter().map(|&j| (0..d).map(|c| q(i, c) * k(j, c)).sum::<f64>() * scale).collect();
                let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                let probs: Vec<f64> = e.iter().map(|x| x / z).collect();
                for c in 0..dv {
                    out[(u * s + i) * dv + c] = allowed.iter().zip(&probs).map(|(&j, pr)| pr * v(j, c)).sum();
                }
                let dp: Vec<f64> =
                    allowed.iter().map(|&j| (0..dv).map(|c| go(i, c) * v(j, c)).sum()).collect();
                let mean: f64 = probs.iter().zip(&dp).map(|(a, b)| a * b).sum();
                for ((&j, pr), dpj) in allowed.iter().zip(&probs).zip(&dp) {
                    let ds = pr * (dpj - mean) * scale;
                    for c in 0..dv {
                        dvv[(g * s + j) * dv + c] += pr * go(i, c);
                    }
                    for c in 0..d {
                        dq[(u * s + i) * d + c] += ds * k(j, c);
                        dk[(g * s + j) * d + c] += ds * q(i, c);
                    }
                }
            }
        }
    }
    (out, dq, dk, dvv)
}

fn assert_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&x, &y)) in got.iter().zip(want).enumerate() {
        let tol = 2e-5 + 2e-4 * y.abs();
        assert!((f64::from(x) - y).abs() <= tol, "{what}[{i}]: kernel {x}, dense {y}");
    }
}

/// Runs the kernel at each block size against the dense version.
fn agrees(dims: Dims, seg: &[i64], blocks: &[usize]) {
    let Dims { batch, hq, hkv, s, d, dv } = dims;
    let (q, k, v) =
        (values(batch * hq * s * d, 1), values(batch * hkv * s * d, 2), values(batch * hkv * s * dv, 3));
    let d_o = values(batch * hq * s * dv, 4);
    let mut p = Problem { dims, q: &q, k: &k, v: &v, seg, block: 1 };
    let (out, dq, dk, dvv) = dense(&p, &d_o);
    for &block in blocks {
        p.block = block;
        let (o, lse) = forward(&p).unwrap_or_else(|e| panic!("{e}"));
        assert_close(&format!("out (block {block})"), &o, &out);
        let g = backward(&p, &o, &d_o, &lse).unwrap_or_else(|e| panic!("{e}"));
        assert_close(&format!("dq (block {block})"), &g.dq, &dq);
        assert_close(&format!("dk (block {block})"), &g.dk, &dk);
        assert_close(&format!("dv (block {block})"), &g.dv, &dvv);
    }
}

#[test]
fn one_segment_gqa_matches_dense_at_every_block_size() {
    let dims = Dims { batch: 1, hq: 4, hkv: 2, s: 37, d: 12, dv: 5 };
    agrees(dims, &[0; 37], &[1, 3, 4, 8, 16, 37, 64]);
}

#[test]
fn packed_rows_match_dense() {
    // Two rows: several segments incl. single tokens; the second ends with a padding segment.
    let mut seg: Vec<i64> = [vec![0; 9], vec![1], vec![2; 14], vec![3], vec![4; 5]].concat();
    seg.extend([vec![0; 3], vec![1; 20], vec![2], vec![3; 6]].concat());
    let dims = Dims { batch: 2, hq: 3, hkv: 1, s: 30, d: 9, dv: 7 };
    agrees(dims, &seg, &[1, 2, 4, 7, 8, 64]);
}

#[test]
fn non_contiguous_segment_ids_match_dense() {
    // Ids that recur after another segment: the mask is `seg[i] == seg[j] && j <= i` all the same.
    let seg: Vec<i64> = (0..25).map(|i| [5, 5, 7, 5, 7, 9, 9, 5][i % 8]).collect();
    let dims = Dims { batch: 1, hq: 2, hkv: 2, s: 25, d: 4, dv: 4 };
    agrees(dims, &seg, &[1, 4, 8, 32]);
}

#[test]
fn bad_lengths_are_errors() {
    let dims = Dims { batch: 1, hq: 2, hkv: 1, s: 3, d: 2, dv: 2 };
    let x = [0.0f32; 12];
    let p = Problem { dims, q: &x, k: &x[..5], v: &x[..6], seg: &[0, 0, 0], block: 4 };
    assert!(forward(&p).is_err());
    let p = Problem { k: &x[..6], ..p };
    let (o, lse) = forward(&p).unwrap_or_else(|e| panic!("{e}"));
    assert!(backward(&p, &o, &o[..5], &lse).is_err());
    assert!(forward(&Problem { block: 0, ..p }).is_err());
}
