//! The blockwise causal attention at pack lengths where a `T × T` buffer cannot exist: a pack of
//! 131,072 positions (a dense f32 score matrix would take 68 GB, and visiting every key block
//! would take minutes) runs forward and backward, and each sample in it equals that sample alone;
//! with recording off (generation prefill) the op gives the same values and records nothing.

use orz_candle::Candle;
use orz_core::Error;
use orz_core::backend::{Backend, DType};

type R = orz_core::Result<()>;

/// Deterministic values in `[-2, 2)`.
fn values(n: usize, seed: u64) -> Vec<f32> {
    (0..n).map(|i| ((i as u64 * 2_654_435_761 + seed * 97) % 4001) as f32 / 1000.25 - 2.0).collect()
}

/// `sum(out * w)` for `out = causal_attention(q, k, v, seg)`, and `(out, ∂/∂q, ∂/∂k)`.
fn run(b: &Candle, s: usize, d: usize, seg: &[i64], data: [&[f32]; 4]) -> orz_core::Result<[Vec<f32>; 3]> {
    let [q, k, v, w] = data;
    let shape = [1, 1, s, d];
    let q = b.param(&b.tensor_f32(q, &shape, DType::F32)?)?;
    let k = b.param(&b.tensor_f32(k, &shape, DType::F32)?)?;
    let v = b.tensor_f32(v, &shape, DType::F32)?;
    let out = b.causal_attention(&q, &k, &v, &b.tensor_i64(seg, &[1, s])?)?;
    let loss = b.sum_all(&b.mul(&out, &b.tensor_f32(w, &shape, DType::F32)?)?)?;
    let grads = b.backward(&loss)?;
    let grad = |p| b.grad(&grads, p)?.ok_or(Error::backend("test", "no gradient"));
    Ok([b.to_host_f32(&out)?, b.to_host_f32(&grad(&q)?)?, b.to_host_f32(&grad(&k)?)?])
}

#[test]
fn a_pack_of_131072_positions_runs_in_linear_memory_and_equals_its_samples_alone() -> R {
    let (s, d, sample) = (1 << 17, 8, 64);
    let seg: Vec<i64> = (0..s).map(|i| (i / sample) as i64).collect();
    let (q, k, v, w) = (values(s * d, 1), values(s * d, 2), values(s * d, 3), values(s * d, 4));
    let b = Candle::cpu();
    let packed = run(&b, s, d, &seg, [&q, &k, &v, &w])?;
    for at in [0, 777, s / sample - 1] {
        let r = at * sample * d..(at + 1) * sample * d;
        let alone =
            run(&b, sample, d, &[0; 64], [&q[r.clone()], &k[r.clone()], &v[r.clone()], &w[r.clone()]])?;
        for (what, (p, a)) in ["output", "dq", "dk"].iter().zip(packed.iter().zip(&alone)) {
            for (x, y) in p[r.clone()].iter().zip(a) {
                assert!((x - y).abs() <= 1e-5 + 1e-5 * y.abs(), "sample {at}: {what} {x} packed, {y} alone");
            }
        }
    }
    Ok(())
}

#[test]
fn recording_off_gives_the_same_values_and_no_graph() -> R {
    let (s, d) = (50, 8);
    let seg: Vec<i64> = (0..s).map(|i| [0, 0, 0, 1, 2, 2][i * 6 / s]).collect();
    let shape = [1, 2, s, d];
    let b = Candle::cpu().with_attention_block(8);
    let q = b.param(&b.tensor_f32(&values(2 * s * d, 1), &shape, DType::BF16)?)?;
    let k = b.param(&b.tensor_f32(&values(s * d, 2), &[1, 1, s, d], DType::BF16)?)?;
    let v = b.tensor_f32(&values(s * d, 3), &[1, 1, s, d], DType::BF16)?;
    let seg = b.tensor_i64(&seg, &[1, s])?;
    let recorded = b.causal_attention(&q, &k, &v, &seg)?;
    let previous = b.set_grad_enabled(false);
    let plain = b.causal_attention(&q, &k, &v, &seg)?;
    b.set_grad_enabled(previous);
    assert_eq!(b.dtype(&plain), DType::BF16);
    assert_eq!(b.to_host_f32(&plain)?, b.to_host_f32(&recorded)?);
    let grads = b.backward(&b.sum_all(&b.cast(&plain, DType::F32)?)?)?;
    assert!(b.grad(&grads, &q)?.is_none(), "recording was off: no gradient may reach q");
    let grads = b.backward(&b.sum_all(&b.cast(&recorded, DType::F32)?)?)?;
    let gq = b.grad(&grads, &q)?.ok_or(Error::backend("test", "no gradient"))?;
    assert_eq!((b.dtype(&gq), b.shape(&gq)), (DType::BF16, shape.to_vec()));
    Ok(())
}
