//! Host PPO math over a large batch: GAE + whitening, and the policy loss with its gradient, over
//! 8,192 samples of 1,000 response tokens (one ORZ iteration's 8,192 completions at a 1,000-token
//! mean; `ORZ_BENCH_SCALE=tiny`: 64 x 100). The math is orz-core's host code, the same for every
//! backend (the device losses are in the `backends` bench).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use orz_core::ppo::gae::{ORZ_GAMMA, ORZ_LAMBDA, gae};
use orz_core::ppo::policy_loss::{ORZ_CLIP_EPS, policy_loss_host};
use orz_core::ppo::whitening::{WhiteningConvention, whiten};
use std::hint::black_box;

/// `(samples, tokens per sample)`.
fn sizes() -> (usize, usize) {
    match std::env::var("ORZ_BENCH_SCALE").as_deref() {
        Ok("tiny") => (64, 100),
        _ => (8192, 1000),
    }
}

/// A deterministic pseudo-random value in `[0, 1)` (splitmix64), so the bench needs no RNG crate.
fn unit(i: usize) -> f32 {
    let mut z = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
}

fn bench_ppo_math(c: &mut Criterion) {
    let (samples, tokens_per_sample) = sizes();
    let n = samples * tokens_per_sample;
    let lengths = vec![tokens_per_sample; samples];
    let mut rewards = vec![0.0f32; n];
    for s in 0..samples {
        rewards[(s + 1) * tokens_per_sample - 1] = if unit(s) < 0.5 { 1.0 } else { 0.0 };
    }
    let values: Vec<f32> = (0..n).map(|i| unit(n + i)).collect();
    let logp: Vec<f32> = (0..n).map(|i| -4.0 * unit(2 * n + i)).collect();
    let logp_old: Vec<f32> = logp.iter().enumerate().map(|(i, l)| l + 0.4 * unit(3 * n + i) - 0.2).collect();
    let advantages: Vec<f32> = (0..n).map(|i| 2.0 * unit(4 * n + i) - 1.0).collect();

    let mut group = c.benchmark_group(format!("ppo_math_f32_{samples}x{tokens_per_sample}"));
    group.throughput(Throughput::Elements(n as u64)).sample_size(10);
    group.bench_function("gae_then_whiten", |b| {
        b.iter(|| {
            let g =
                gae(black_box(&rewards), black_box(&values), &lengths, ORZ_GAMMA as f32, ORZ_LAMBDA as f32);
            let g = g.expect("valid inputs");
            whiten(&g.advantages, WhiteningConvention::OrzBiased, true).expect("valid inputs")
        })
    });
    group.bench_function("policy_loss_and_grad", |b| {
        b.iter(|| {
            policy_loss_host(
                black_box(&logp),
                black_box(&logp_old),
                black_box(&advantages),
                None,
                ORZ_CLIP_EPS as f32,
            )
            .expect("valid inputs")
        })
    });
    group.finish();
}

criterion_group!(benches, bench_ppo_math);
criterion_main!(benches);
