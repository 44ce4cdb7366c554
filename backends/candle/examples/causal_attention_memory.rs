//! Time and peak memory of candle `causal_attention`, forward + backward on the CPU: the dense
//! default (`orz_core::backend::nn::causal_attention`, a `T × T` mask and probabilities) against
//! the blockwise override (`Candle::causal_attention`).
//!
//! ```text
//! cargo run --release -p orz-candle --example causal_attention_memory -- [s ...]
//! ```
//!
//! Each run is a fresh process; its peak memory is the peak resident set (`VmHWM`, reset through
//! `/proc/self/clear_refs` once the inputs exist; Linux only) above the resident set at that
//! point: every page the pass touches, inputs excluded. 14 query heads, 2 kv heads, d = 64, f32,
//! one segment (the worst case) and two equal segments; the dense path is skipped above 2048.

use std::time::Instant;

use orz_candle::Candle;
use orz_core::Result;
use orz_core::backend::{Backend, DType, nn};

/// A field of `/proc/self/status` in KiB (0 where it cannot be read).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or(0)
}

/// One forward + backward; returns (seconds, peak MiB above the start).
fn measure(b: &Candle, s: usize, segments: usize, dense: bool) -> Result<(f64, f64)> {
    let (hq, hkv, d) = (14, 2, 64);
    let data = |n: usize, seed: usize| -> Vec<f32> {
        (0..n).map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5 - 1.0).collect()
    };
    let q = b.param(&b.tensor_f32(&data(hq * s * d, 1), &[1, hq, s, d], DType::F32)?)?;
    let k = b.param(&b.tensor_f32(&data(hkv * s * d, 2), &[1, hkv, s, d], DType::F32)?)?;
    let v = b.param(&b.tensor_f32(&data(hkv * s * d, 3), &[1, hkv, s, d], DType::F32)?)?;
    let seg: Vec<i64> = (0..s).map(|i| (i * segments / s) as i64).collect();
    let seg = b.tensor_i64(&seg, &[1, s])?;
    // Resets the peak resident set to the current one.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let base = status_kib("VmRSS:");
    let start = Instant::now();
    let out = if dense {
        nn::causal_attention(b, &q, &k, &v, &seg)?
    } else {
        b.causal_attention(&q, &k, &v, &seg)?
    };
    let grads = b.backward(&b.sum_all(&out)?)?;
    let dq = b.grad(&grads, &q)?;
    let secs = start.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:").saturating_sub(base) as f64 / 1024.0;
    drop((dq, grads, out));
    Ok((secs, peak))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `--one s segments dense`: one measurement in this (fresh) process.
    if let [flag, s, segments, dense] = &args[..]
        && flag == "--one"
    {
        let parse =
            |a: &String| a.parse::<usize>().map_err(|e| orz_core::Error::invalid("args", e.to_string()));
        let (s, segments, dense) = (parse(s)?, parse(segments)?, dense == "dense");
        let (secs, peak) = measure(&Candle::cpu(), s, segments, dense)?;
        let path = if dense { "dense" } else { "blockwise" };
        println!("{s:>6} {segments:>4} {path:>10} {secs:>10.3} {peak:>12.1}");
        return Ok(());
    }
    let lengths: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let lengths = if lengths.is_empty() { vec![512, 2048, 8192] } else { lengths };
    let me = std::env::current_exe().map_err(|e| orz_core::Error::invalid("exe", e.to_string()))?;
    println!("{:>6} {:>4} {:>10} {:>10} {:>12}", "s", "segs", "path", "fwd+bwd s", "peak MiB");
    for &s in &lengths {
        for segments in [1, 2] {
            for path in ["dense", "blockwise"] {
                if path == "dense" && s > 2048 {
                    continue;
                }
                // A fresh process per run, so that no run reuses pages another made resident.
                let args = ["--one".to_string(), s.to_string(), segments.to_string(), path.to_string()];
                let status = std::process::Command::new(&me).args(args).status();
                if !status.as_ref().is_ok_and(|st| st.success()) {
                    println!("{s:>6} {segments:>4} {path:>10} failed: {status:?}");
                }
            }
        }
    }
    Ok(())
}
