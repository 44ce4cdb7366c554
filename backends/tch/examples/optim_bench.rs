//! Time of one AdamW update and one `clip_grad_norm` over 24 f32 parameters of 896 x 4864 (a
//! Qwen2.5-0.5B MLP's size), through `Tch`'s overrides and through core's default bodies:
//!
//! ```console
//! $ eval "$(./scripts/setup-libtorch.sh)"
//! $ cargo run --release -p orz-tch --example optim_bench -- [--params N] [--reps N]
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a benchmark program, not a library")]

use std::time::Instant;

use orz_core::backend::optim::{self, AdamWConfig, AdamWStep};
use orz_core::backend::{Backend, DType};
use orz_tch::Tch;

/// The value after `flag` on the command line, or `default`.
fn arg(flag: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map_or(default, |v| v.parse().unwrap())
}

/// Best wall time of `reps` runs of `f`, in milliseconds.
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let (n, reps) = (arg("--params", 24), arg("--reps", 3));
    let b = Tch::cpu();
    let shape = [896, 4864];
    let rand = |seed: i64| {
        tch::manual_seed(seed);
        let t = tch::Tensor::randn(shape.map(|d| d as i64), (tch::Kind::Float, tch::Device::Cpu));
        b.tensor_f32(&Vec::<f32>::try_from(&t.flatten(0, -1)).unwrap(), &shape, DType::F32).unwrap()
    };
    let params: Vec<_> = (0..n).map(|i| b.param(&rand(i as i64)).unwrap()).collect();
    let grads: Vec<_> = (0..n).map(|i| rand(1000 + i as i64)).collect();
    let m: Vec<_> = (0..n).map(|_| b.zeros(&shape, DType::F32).unwrap()).collect();
    let v: Vec<_> = (0..n).map(|_| b.zeros(&shape, DType::F32).unwrap()).collect();
    let hp =
        AdamWStep { lr: 1e-6, config: AdamWConfig { weight_decay: 0.01, ..AdamWConfig::default() }, step: 3 };
    println!("{n} f32 parameters of {shape:?}, best of {reps}, {} threads", tch::get_num_threads());
    let method = best(reps, || {
        for i in 0..n {
            b.adamw_update(&params[i], &grads[i], &m[i], &v[i], &hp).unwrap();
        }
    });
    let default = best(reps, || {
        for i in 0..n {
            optim::adamw_update(&b, &params[i], &grads[i], &m[i], &v[i], &hp).unwrap();
        }
    });
    println!("adamw_update: Tch override {method:.1} ms, core default {default:.1} ms");
    let method = best(reps, || drop(b.clip_grad_norm(&grads, 1.0).unwrap()));
    let default = best(reps, || drop(optim::clip_grad_norm(&b, &grads, 1.0).unwrap()));
    println!("clip_grad_norm: Tch override {method:.1} ms, core default {default:.1} ms");
}
