//! `causal_attention`'s per-segment path (one `is_causal` SDPA per segment) against the masked
//! path and against the reference backend (core's default body in pure Rust), values and
//! gradients, on multi-segment packs with grouped kv heads, single-token segments, f32 and bf16.

#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use orz_core::backend::{Backend, DType};
use orz_reference::Reference;
use orz_tch::Tch;

/// Shapes and segment ids of one case: `[b, hq, s, d]` queries, `hkv` kv heads.
struct Case {
    b: usize,
    hq: usize,
    hkv: usize,
    s: usize,
    d: usize,
    seg: Vec<i64>,
}

/// Deterministic values in `[-1, 1)` (a linear congruential generator).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Segment ids of one row from its segment lengths (ids 0, 1, ...).
fn row(lens: &[usize]) -> Vec<i64> {
    lens.iter().enumerate().flat_map(|(i, &n)| std::iter::repeat_n(i as i64, n)).collect()
}

/// Which implementation computes the attention.
#[derive(Clone, Copy, Debug)]
enum Path {
    /// `Backend::causal_attention` (the per-segment path for contiguous ids).
    Method,
    /// `Tch::causal_attention_masked`.
    Masked,
}

/// The output and the gradients of `sum(out * w)` for q, k and v, all as f32 host vectors.
fn run<B: Backend>(
    b: &B,
    case: &Case,
    dtype: DType,
    attend: impl Fn(&B, &B::Tensor, &B::Tensor, &B::Tensor, &B::Tensor) -> orz_core::Result<B::Tensor>,
) -> [Vec<f32>; 4] {
    let Case { b: batch, hq, hkv, s, d, .. } = *case;
    let (qs, ks) = ([batch, hq, s, d], [batch, hkv, s, d]);
    let float = |n: usize, seed: u64, shape: &[usize]| {
        let x = b.tensor_f32(&values(n, seed), shape, DType::F32).unwrap();
        b.cast(&x, dtype).unwrap()
    };
    let nq = batch * hq * s * d;
    let nk = batch * hkv * s * d;
    let q = b.param(&float(nq, 1, &qs)).unwrap();
    let k = b.param(&float(nk, 2, &ks)).unwrap();
    let v = b.param(&float(nk, 3, &ks)).unwrap();
    let w = float(nq, 4, &qs);
    let seg = b.tensor_i64(&case.seg, &[batch, s]).unwrap();
    let out = attend(b, &q, &k, &v, &seg).unwrap();
    let loss = b.sum_all(&b.cast(&b.mul(&out, &w).unwrap(), DType::F32).unwrap()).unwrap();
    let grads = b.backward(&loss).unwrap();
    let host = |t: &B::Tensor| b.to_host_f32(&b.cast(t, DType::F32).unwrap()).unwrap();
    let grad = |p: &B::Tensor| host(&b.grad(&grads, p).unwrap().expect("a gradient"));
    [host(&out), grad(&q), grad(&k), grad(&v)]
}

/// `case` on `Tch` through `path` in `dtype`.
fn tch(case: &Case, path: Path, dtype: DType) -> [Vec<f32>; 4] {
    run(&Tch::cpu(), case, dtype, |b, q, k, v, seg| match path {
        Path::Method => b.causal_attention(q, k, v, seg),
        Path::Masked => b.causal_attention_masked(q, k, v, seg),
    })
}

/// `case` on the reference backend in f32 (core's default body: explicit mask, f32 softmax).
fn reference(case: &Case) -> [Vec<f32>; 4] {
    run(&Reference::new(), case, DType::F32, |b, q, k, v, seg| b.causal_attention(q, k, v, seg))
}

/// The largest absolute difference of each of the four results, with a check that every value
/// is finite.
fn max_diff(a: &[Vec<f32>; 4], b: &[Vec<f32>; 4]) -> [f32; 4] {
    std::array::from_fn(|i| {
        assert_eq!(a[i].len(), b[i].len());
        a[i].iter().zip(&b[i]).map(|(x, y)| (x - y).abs()).fold(0.0, |m: f32, d| m.max(d))
    })
}

/// The per-segment path, the masked path and the reference agree within `tol` (values, then
/// gradients of q, k, v).
fn check(case: &Case, dtype: DType, tol: f32) {
    let want = reference(case);
    let fused = tch(case, Path::Method, dtype);
    let masked = tch(case, Path::Masked, dtype);
    for (name, got) in [("per-segment", &fused), ("masked", &masked)] {
        assert!(got.iter().flatten().all(|x| x.is_finite()), "{name}: non-finite values");
        let diff = max_diff(got, &want);
        eprintln!("{name} {dtype:?} vs reference: out, dq, dk, dv differ by {diff:?}");
        assert!(
            diff.iter().all(|&d| d <= tol),
            "{name} {dtype:?} vs reference: out, dq, dk, dv differ by {diff:?}"
        );
    }
    let diff = max_diff(&fused, &masked);
    assert!(diff.iter().all(|&d| d <= tol), "per-segment vs masked ({dtype:?}): {diff:?}");
}

/// Two packed rows of 120 tokens with 14/2-style grouped heads (6 q heads, 2 kv heads), one
/// single-token segment in each row.
fn packs() -> Case {
    let mut seg = row(&[40, 1, 29, 50]);
    seg.extend(row(&[1, 119]));
    Case { b: 2, hq: 6, hkv: 2, s: 120, d: 16, seg }
}

#[test]
fn per_segment_path_matches_masked_and_reference_f32() {
    check(&packs(), DType::F32, 1e-5);
}

#[test]
fn per_segment_path_matches_masked_and_reference_bf16() {
    check(&packs(), DType::BF16, 0.04);
}

#[test]
fn one_segment_rows_and_plain_heads() {
    let mut seg = row(&[200]);
    seg.extend(row(&[199, 1]));
    seg.extend(row(&[1; 200]));
    let case = Case { b: 3, hq: 3, hkv: 3, s: 200, d: 8, seg };
    check(&case, DType::F32, 1e-5);
}

#[test]
fn arbitrary_contiguous_ids() {
    // Ids need not count from 0 nor increase.
    let seg: Vec<i64> = [vec![7; 20], vec![-3; 17], vec![5; 1], vec![0; 12]].concat();
    let case = Case { b: 1, hq: 4, hkv: 1, s: 50, d: 16, seg };
    check(&case, DType::F32, 1e-5);
    check(&case, DType::BF16, 0.04);
}

#[test]
fn non_contiguous_ids_take_the_masked_path() {
    // Row 1's id 0 comes back after id 1: the whole batch takes the masked path.
    let mut seg: Vec<i64> = [vec![7; 20], vec![-3; 17], vec![5; 13]].concat();
    seg.extend([vec![0; 10], vec![1; 15], vec![0; 25]].concat());
    let case = Case { b: 2, hq: 4, hkv: 2, s: 50, d: 16, seg };
    check(&case, DType::F32, 1e-5);
    check(&case, DType::BF16, 0.04);
}

#[test]
fn segments_do_not_see_each_other() {
    // The same tokens as one segment and as two: the first segment's outputs agree, the second's
    // differ (it no longer attends to the first), so a path that ignored the ids would fail.
    let pack = |lens: &[usize]| Case { b: 1, hq: 2, hkv: 1, s: 60, d: 8, seg: row(lens) };
    let [a, ..] = tch(&pack(&[60]), Path::Method, DType::F32);
    let [b, ..] = tch(&pack(&[30, 30]), Path::Method, DType::F32);
    // Layout [1, 2, 60, 8]: head h, position i at (h * 60 + i) * 8.
    for h in 0..2 {
        let at = |x: &[f32], i: usize| x[(h * 60 + i) * 8..(h * 60 + i + 1) * 8].to_vec();
        let d: f32 = at(&a, 29).iter().zip(at(&b, 29)).map(|(x, y)| (x - y).abs()).sum();
        assert!(d < 1e-5, "position 29 of head {h} sees the same keys (diff {d})");
        let d: f32 = at(&a, 45).iter().zip(at(&b, 45)).map(|(x, y)| (x - y).abs()).sum();
        assert!(d > 1e-3, "position 45 of head {h} must not see the first segment (diff {d})");
    }
}
