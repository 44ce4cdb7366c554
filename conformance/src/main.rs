//! `cargo run -p orz-conformance -- report [--broken] [--dtype f32|bf16|f16]... [--device
//! cpu|cuda:N]`: prints the conformance matrix of every backend compiled in (and, with
//! `--broken`, of the deliberately broken ones and of the rounding backend that calibrates the
//! tolerances). The backends are the registry's (orz-backends), each behind its cargo feature.
//! With `--device cuda:N` the backends that run on CUDA in this build (tch; candle with
//! `candle-cuda`) are certified there instead, against the reference on the CPU.

use orz_backends::{BackendKind, BackendVisitor, DeviceSpec, Opened};
use orz_conformance::broken::{
    AssignDropsLargeWrites, ClampOffByOneHundredth, CumsumExclusive, RmsNormDropsGradient, RoundsToDType,
    SoftmaxSlightlySharp, Tweaked, WriteSliceAtZero,
};
use orz_conformance::report::{Row, render, run_backend, timed};
use orz_core::backend::{Backend, DType};

/// The registry's visitor: the conformance rows of the backend it opens.
struct Rows<'a>(&'a [DType]);

impl BackendVisitor for Rows<'_> {
    type Output = Vec<Row>;

    fn visit<B: Backend + 'static>(self, backend: B, _: Opened) -> Vec<Row> {
        run_backend(&backend, self.0)
    }
}

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
    let device = cuda.map_or(DeviceSpec::Cpu, DeviceSpec::Cuda);
    // Every backend compiled in that runs on the device, one line each (the reference is always
    // one of them on the CPU; on CUDA it stays on the CPU as the oracle).
    let mut backends = orz_backends::compiled_on(&[device]);
    if backends.is_empty() {
        let cuda: Vec<String> = BackendKind::ALL
            .iter()
            .filter_map(|k| match k.entry().cuda {
                orz_backends::Cuda::Never => None,
                orz_backends::Cuda::Always => k.entry().feature.map(|f| format!("--features {f}")),
                orz_backends::Cuda::WithFeature { feature, .. } => Some(format!("--features {feature}")),
            })
            .collect();
        eprintln!(
            "--device {device}: no backend compiled in runs on CUDA (build with {})",
            cuda.join(" or ")
        );
        std::process::exit(2);
    }
    if device != DeviceSpec::Cpu {
        backends.insert(0, Opened { kind: BackendKind::Reference, device: DeviceSpec::Cpu });
    }
    let (rows, seconds) = timed(|| {
        let mut rows: Vec<Row> = Vec::new();
        for opened in backends {
            match orz_backends::with_backend(opened.kind, opened.device, Rows(&dtypes)) {
                Ok(r) => rows.extend(r),
                Err(e) => {
                    eprintln!("orz-conformance: {e}");
                    std::process::exit(1);
                }
            }
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
