//! `cargo run -p orz-conformance -- report [--broken] [--dtype f32|bf16|f16]... [--device
//! cpu|cuda:N]`: prints the conformance matrix of every backend compiled in (and, with
//! `--broken`, of the deliberately broken ones and of the rounding backend that calibrates the
//! tolerances). With `--device cuda:N` the backends that run on CUDA (tch) are certified there
//! instead, against the reference on the CPU.

use orz_conformance::broken::{
    AssignDropsLargeWrites, ClampOffByOneHundredth, CumsumExclusive, RmsNormDropsGradient, RoundsToDType,
    SoftmaxSlightlySharp, Tweaked, WriteSliceAtZero,
};
use orz_conformance::report::{Row, render, run_backend, timed};
use orz_core::backend::DType;
use orz_reference::Reference;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("report") {
        eprintln!("usage: orz-conformance report [--broken] [--dtype f32|bf16|f16]... [--device cpu|cuda:N]");
        std::process::exit(2);
    }
    let mut dtypes: Vec<DType> = Vec::new();
    let mut broken = false;
    let mut cuda: Option<usize> = None;
    let mut rest = args[1..].iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--broken" => broken = true,
            "--device" => match rest.next().map(String::as_str) {
                Some("cpu") => cuda = None,
                Some(d) if d.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()).is_some() => {
                    cuda = d.strip_prefix("cuda:").and_then(|n| n.parse().ok());
                }
                _ => {
                    eprintln!("--device takes cpu or cuda:N");
                    std::process::exit(2);
                }
            },
            "--dtype" => match rest.next().and_then(|d| DType::FLOATS.into_iter().find(|t| t.name() == d)) {
                Some(d) => dtypes.push(d),
                None => {
                    eprintln!("--dtype takes f32, bf16 or f16");
                    std::process::exit(2);
                }
            },
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    if dtypes.is_empty() {
        dtypes = DType::FLOATS.to_vec();
    }
    if let (Some(n), false) = (cuda, cfg!(feature = "tch")) {
        eprintln!("--device cuda:{n}: no backend compiled in runs on CUDA (build with --features tch)");
        std::process::exit(2);
    }
    let (rows, seconds) = timed(|| {
        let mut rows: Vec<Row> = Vec::new();
        // Every backend compiled in: one line each, behind its cargo feature (tch joins the same way).
        rows.extend(run_backend(&Reference::new(), &dtypes));
        #[cfg(feature = "tch")]
        match cuda {
            None => rows.extend(run_backend(&orz_tch::Tch::cpu(), &dtypes)),
            Some(n) => match orz_tch::Tch::cuda(n) {
                Ok(b) => rows.extend(run_backend(&b, &dtypes)),
                Err(e) => {
                    eprintln!("orz-conformance: tch on cuda:{n}: {e}");
                    std::process::exit(1);
                }
            },
        }
        #[cfg(feature = "candle")]
        if cuda.is_none() {
            rows.extend(run_backend(&orz_candle::Candle::cpu(), &dtypes));
        }
        if broken {
            rows.extend(run_backend(&Tweaked::<RoundsToDType>::new(), &dtypes));
            rows.extend(run_backend(&Tweaked::<ClampOffByOneHundredth>::new(), &[DType::F32]));
            rows.extend(run_backend(&Tweaked::<RmsNormDropsGradient>::new(), &[DType::F32]));
            rows.extend(run_backend(&Tweaked::<SoftmaxSlightlySharp>::new(), &[DType::F32]));
            rows.extend(run_backend(&Tweaked::<WriteSliceAtZero>::new(), &[DType::F32]));
            rows.extend(run_backend(&Tweaked::<CumsumExclusive>::new(), &[DType::F32]));
            rows.extend(run_backend(&Tweaked::<AssignDropsLargeWrites>::new(), &[DType::F32]));
        }
        rows
    });
    print!("{}", render(&rows, seconds));
    let reference_failed = rows.iter().any(|r| r.backend == "reference" && !r.outcome.passed());
    std::process::exit(i32::from(reference_failed));
}
