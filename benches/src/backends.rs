//! Every backend and device compiled in, handed one at a time to a generic visitor: the
//! registry's backends (orz-backends) on the CPU and on CUDA device 0, each where this build
//! supports it and the device opens.
//!
//! Always: the f64 reference ([`Scale::Tiny`] workloads only: plain loops) and orz-candle on
//! the CPU. With the `tch` feature: orz-tch on the CPU, and on CUDA device 0 when libtorch sees
//! one. With `candle-cuda`: orz-candle on CUDA device 0 when there is one. Setting
//! `ORZ_BENCH_SCALE=tiny` runs every backend at [`Scale::Tiny`] (a quick check that every bench
//! runs); `ORZ_BENCH_THREADS=n` gives libtorch `n` intra-op threads (candle reads
//! `RAYON_NUM_THREADS`).

use orz_backends::{DeviceSpec, Opened};
use orz_core::backend::Backend;

/// How large a backend's workloads are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Test sizes: what the reference (f64 loops) and the CI check run.
    Tiny,
    /// The benchmark sizes of the fast backends.
    Full,
}

impl Scale {
    /// `requested`, unless `ORZ_BENCH_SCALE=tiny` asks for tiny runs everywhere.
    pub fn from_env(requested: Scale) -> Scale {
        match std::env::var("ORZ_BENCH_SCALE").as_deref() {
            Ok("tiny") => Scale::Tiny,
            _ => requested,
        }
    }
}

/// Receives each backend with a label (`"candle-cpu"`, `"tch-cuda"`, ...) and its scale.
pub trait BackendVisitor {
    /// Called once per backend and device.
    fn visit<B: Backend + 'static>(&mut self, backend: B, label: &str, scale: Scale);
}

/// Calls `v` with every backend and device compiled in and present (see the module docs).
pub fn for_each_backend<V: BackendVisitor>(v: &mut V) {
    #[cfg(feature = "tch")]
    if let Some(n) = std::env::var("ORZ_BENCH_THREADS").ok().and_then(|s| s.parse().ok()) {
        orz_backends::orz_tch::tch::set_num_threads(n);
    }
    for opened in orz_backends::compiled_on(&[DeviceSpec::Cpu, DeviceSpec::Cuda(0)]) {
        let scale = if opened.kind.entry().oracle { Scale::Tiny } else { Scale::from_env(Scale::Full) };
        // A CUDA device that does not open (none on this machine) is skipped.
        let _ = orz_backends::with_backend(opened.kind, opened.device, Visit { v: &mut *v, scale });
    }
}

/// One call of a [`BackendVisitor`], as the registry's visitor.
struct Visit<'a, V> {
    /// The benches' visitor.
    v: &'a mut V,
    /// The scale of this backend's workloads.
    scale: Scale,
}

impl<V: BackendVisitor> orz_backends::BackendVisitor for Visit<'_, V> {
    type Output = ();

    fn visit<B: Backend + 'static>(self, backend: B, opened: Opened) {
        self.v.visit(backend, &opened.label(), self.scale);
    }
}
