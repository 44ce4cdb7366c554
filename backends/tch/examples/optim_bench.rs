//! Time of one AdamW update and one `clip_grad_norm` over 24 f32 parameters of 896 x 4864 (a
//! Qwen2.5-0.5B MLP's size), through `Tch`'s overrides and through core's default bodies:
//!
//! ```console
//! $ eval "$(./scripts/setup-libtorch.sh)"
//! $ cargo run --release -p orz-tch --example optim_bench -- [--params N] [--reps N] [--threads N]
//! ```
//!
//! Wall time and process CPU time (`/proc/self/stat`, 10 ms ticks) are both reported: on a busy
//! machine the CPU time is the steadier figure.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a benchmark program, not a library")]

use std::time::Instant;

use orz_core::backend::{Backend, DType};
use orz_core::optimizer::adamw::{self, AdamWConfig, AdamWStep};
use orz_core::optimizer::clip;
use orz_tch::Tch;

/// The value after `flag` on the command line, or `default`.
fn arg(flag: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map_or(default, |v| v.parse().unwrap())
}

/// The CPU time of this process so far (all threads, user + system; `/proc/self/stat`), in ms.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 =
        fields.get(11..13).map_or(0.0, |f| f.iter().map(|t| t.parse::<f64>().unwrap_or(0.0)).sum());
    ticks * 10.0
}

/// Best wall time and best CPU time (ms) of `reps` runs of `f`, as `"wall W ms, cpu C ms"`.
fn best(reps: usize, mut f: impl FnMut()) -> String {
    let (mut wall, mut cpu) = (f64::MAX, f64::MAX);
    for _ in 0..reps {
        let (start, c0) = (Instant::now(), cpu_ms());
        f();
        wall = wall.min(start.elapsed().as_secs_f64() * 1e3);
        cpu = cpu.min(cpu_ms() - c0);
    }
    format!("wall {wall:.0} ms, cpu {cpu:.0} ms")
}

fn main() {
    let (n, reps) = (arg("--params", 24), arg("--reps", 3));
    tch::set_num_threads(i32::try_from(arg("--threads", 2)).unwrap());
    let b = Tch::cpu();
    let shape = [896, 4864];
    let rand = |seed: i64| {
        tch::manual_seed(seed);
        let t = tch::Tensor::randn(shape.map(|d| d as i64), (tch::Kind::Float, tch::Device::Cpu));
        b.tensor_f32(&Vec::<f32>::try_from(&t.flatten(0, -1)).unwrap(), &shape, DType::F32).unwrap()
    };
    let params: Vec<_> = (0..n).map(|i| b.param(&rand(i as i64)).unwrap()).collect();
    let grads: Vec<_> = (0..n).map(|i| rand(1000 + i as i64)).collect();
    let mut m: Vec<_> = (0..n).map(|_| b.zeros(&shape, DType::F32).unwrap()).collect();
    let mut v: Vec<_> = (0..n).map(|_| b.zeros(&shape, DType::F32).unwrap()).collect();
    let hp =
        AdamWStep { lr: 1e-6, config: AdamWConfig { weight_decay: 0.01, ..AdamWConfig::default() }, step: 3 };
    println!("{n} f32 parameters of {shape:?}, best of {reps}, {} threads", tch::get_num_threads());
    // As `AdamW::step`: the new moments replace the old ones (which are then freed).
    let method = best(reps, || {
        for i in 0..n {
            (m[i], v[i]) = b.adamw_update(&params[i], &grads[i], m[i].clone(), v[i].clone(), &hp).unwrap();
        }
    });
    let default = best(reps, || {
        for i in 0..n {
            (m[i], v[i]) = adamw::adamw_update(&b, &params[i], &grads[i], &m[i], &v[i], &hp).unwrap();
        }
    });
    println!("adamw_update: Tch override {method}; core default {default}");
    let method = best(reps, || drop(b.clip_grad_norm(&grads, 1.0).unwrap()));
    let default = best(reps, || drop(clip::clip_grad_norm(&b, &grads, 1.0).unwrap()));
    println!("clip_grad_norm: Tch override {method}; core default {default}");
}
