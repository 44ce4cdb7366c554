//! Forward + backward time (and peak memory) of `causal_attention` on the CPU: the per-segment
//! path (`Backend::causal_attention`) against the masked path (`Tch::causal_attention_masked`),
//! 14 query heads, 2 kv heads, head size 64, one packed row of `--segs` equal segments:
//!
//! ```console
//! $ eval "$(./scripts/setup-libtorch.sh)"
//! $ cargo run --release -p orz-tch --example attention_bench -- [--s 512,2048] [--segs 1,4]
//!       [--dtype f32,bf16] [--path new,old] [--reps 3] [--threads 2]
//! ```
//!
//! Each line gives the best wall time and the best process CPU time (all threads, 10 ms ticks;
//! the steadier figure on a busy machine) of `--reps` runs, and the process's peak resident
//! memory so far (`VmHWM`); run one configuration per process (`--s 8192 --segs 4 --dtype f32 --path new
//! --reps 1`) to read its peak memory.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a benchmark program, not a library")]

use std::time::Instant;

use orz_core::backend::{Backend, DType};
use orz_tch::Tch;

/// The comma-separated values after `flag` on the command line, or `default`.
fn list(flag: &str, default: &str) -> Vec<String> {
    let args: Vec<String> = std::env::args().collect();
    let value =
        args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map_or(default, String::as_str);
    value.split(',').map(str::to_owned).collect()
}

/// A process memory figure from `/proc/self/status` (`VmHWM`, `VmRSS`), in MiB.
fn mem_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status.lines().find_map(|l| {
        l.strip_prefix(key)?.trim_start_matches(':').trim().strip_suffix("kB")?.trim().parse::<f64>().ok()
    });
    kib.unwrap_or(f64::NAN) / 1024.0
}

/// The CPU time of this process so far (all threads, user + system; `/proc/self/stat`), in ms.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 =
        fields.get(11..13).map_or(0.0, |f| f.iter().map(|t| t.parse::<f64>().unwrap_or(0.0)).sum());
    ticks * 10.0
}

fn main() {
    let (hq, hkv, d) = (14, 2, 64);
    let reps: usize = list("--reps", "3")[0].parse().unwrap();
    tch::set_num_threads(list("--threads", "2")[0].parse().unwrap());
    let b = Tch::cpu();
    println!("hq {hq}, hkv {hkv}, d {d}, best of {reps}, {} threads", tch::get_num_threads());
    for s in list("--s", "512,2048") {
        let s: usize = s.parse().unwrap();
        for dtype in list("--dtype", "f32,bf16") {
            let dtype = if dtype == "bf16" { DType::BF16 } else { DType::F32 };
            for segs in list("--segs", "1,4") {
                let segs: usize = segs.parse().unwrap();
                let seg: Vec<i64> = (0..s).map(|i| (i * segs / s) as i64).collect();
                let seg = b.tensor_i64(&seg, &[1, s]).unwrap();
                let rand = |shape: &[usize], seed: i64| {
                    tch::manual_seed(seed);
                    let n: usize = shape.iter().product();
                    let t = tch::Tensor::randn([n as i64], (tch::Kind::Float, tch::Device::Cpu));
                    let x = b.tensor_f32(&Vec::<f32>::try_from(&t).unwrap(), shape, DType::F32).unwrap();
                    b.param(&b.cast(&x, dtype).unwrap()).unwrap()
                };
                let (q, k, v) = (rand(&[1, hq, s, d], 1), rand(&[1, hkv, s, d], 2), rand(&[1, hkv, s, d], 3));
                for path in list("--path", "new,old") {
                    let before = mem_mib("VmRSS");
                    let (mut best, mut cpu) = (f64::MAX, f64::MAX);
                    for _ in 0..reps {
                        let (start, c0) = (Instant::now(), cpu_ms());
                        let out = if path == "old" {
                            b.causal_attention_masked(&q, &k, &v, &seg).unwrap()
                        } else {
                            b.causal_attention(&q, &k, &v, &seg).unwrap()
                        };
                        let loss = b.sum_all(&b.cast(&out, DType::F32).unwrap()).unwrap();
                        let grads = b.backward(&loss).unwrap();
                        assert!(b.grad(&grads, &q).unwrap().is_some());
                        best = best.min(start.elapsed().as_secs_f64());
                        cpu = cpu.min(cpu_ms() - c0);
                    }
                    println!(
                        "s {s:5} {dtype:?} segs {segs} {path}: wall {:8.1} ms, cpu {cpu:8.0} ms fwd+bwd; RSS before {before:.0} MiB, peak {:.0} MiB",
                        best * 1e3,
                        mem_mib("VmHWM")
                    );
                }
            }
        }
    }
}
