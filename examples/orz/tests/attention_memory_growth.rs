//! The growth law of packed attention's memory, measured: on candle (whose tensors live on the
//! Rust heap, counted by `PeakAlloc`), the peak of a causal attention forward and backward over
//! one packed row about doubles when the row doubles (fused, blockwise), where the default dense
//! composition about quadruples. A measurement of memory, not of time.

#![allow(clippy::unwrap_used, reason = "test helpers: a failed unwrap is a failed test")]

use orz::memory_plan::measure::PeakAlloc;
use orz_candle::Candle;
use orz_core::backend::{Backend, DType, nn};

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc::new();

/// Peak heap bytes of `attend` forward and backward over one row of `s` positions (two samples),
/// 4 query heads sharing 2 kv heads of 32 dimensions, f32.
fn peak(s: usize, dense: bool) -> usize {
    let b = Candle::cpu();
    let values = |n: usize, seed: usize| -> Vec<f32> {
        (0..n).map(|i| (((i * 7 + seed) % 13) as f32 - 6.0) / 6.0).collect()
    };
    let (hq, hkv, d) = (4, 2, 32);
    let q = b.param(&b.tensor_f32(&values(hq * s * d, 1), &[1, hq, s, d], DType::F32).unwrap()).unwrap();
    let k = b.param(&b.tensor_f32(&values(hkv * s * d, 2), &[1, hkv, s, d], DType::F32).unwrap()).unwrap();
    let v = b.param(&b.tensor_f32(&values(hkv * s * d, 3), &[1, hkv, s, d], DType::F32).unwrap()).unwrap();
    let seg: Vec<i64> = (0..s).map(|i| i64::from(i >= s / 2)).collect();
    let seg = b.tensor_i64(&seg, &[1, s]).unwrap();
    let (bytes, ()) = HEAP.peak_during(|| {
        let out = if dense {
            nn::causal_attention(&b, &q, &k, &v, &seg)
        } else {
            b.causal_attention(&q, &k, &v, &seg)
        };
        let grads = b.backward(&b.sum_all(&out.unwrap()).unwrap()).unwrap();
        assert!(b.grad(&grads, &q).unwrap().is_some());
    });
    bytes
}

#[test]
fn doubling_the_pack_about_doubles_fused_attention_memory() {
    let (small, large) = (peak(1024, false), peak(2048, false));
    let ratio = large as f64 / small as f64;
    assert!(ratio < 2.5, "fused: {small} -> {large} bytes, x{ratio:.2}");
    // The dense default on the same inputs grows with the square (this is what the check guards).
    let (small_d, large_d) = (peak(512, true), peak(1024, true));
    let ratio_d = large_d as f64 / small_d as f64;
    assert!(ratio_d > 3.0, "dense: {small_d} -> {large_d} bytes, x{ratio_d:.2}");
    eprintln!(
        "fused: {small} -> {large} bytes (x{ratio:.2}); dense: {small_d} -> {large_d} bytes (x{ratio_d:.2})"
    );
    assert!(large < large_d, "fused at 2048 ({large}) should need less than dense at 1024 ({large_d})");
}
