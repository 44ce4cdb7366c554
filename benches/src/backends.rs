//! Every backend and device compiled in, handed one at a time to a generic visitor.
//!
//! Always: the f64 reference ([`Scale::Tiny`] workloads only: plain loops) and orz-candle on
//! the CPU. With the `tch` feature: orz-tch on the CPU, and on CUDA device 0 when libtorch sees
//! one. With `candle-cuda`: orz-candle on CUDA device 0 when there is one. Setting
//! `ORZ_BENCH_SCALE=tiny` runs every backend at [`Scale::Tiny`] (a quick check that every bench
//! runs); `ORZ_BENCH_THREADS=n` gives libtorch `n` intra-op threads (candle reads
//! `RAYON_NUM_THREADS`).

use orz_candle::Candle;
use orz_core::backend::Backend;
use orz_reference::Reference;

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
    v.visit(Reference::new(), "reference", Scale::Tiny);
    v.visit(Candle::cpu(), "candle-cpu", Scale::from_env(Scale::Full));
    #[cfg(feature = "candle-cuda")]
    if let Ok(c) = Candle::cuda(0) {
        v.visit(c, "candle-cuda", Scale::from_env(Scale::Full));
    }
    #[cfg(feature = "tch")]
    {
        if let Some(n) = std::env::var("ORZ_BENCH_THREADS").ok().and_then(|s| s.parse().ok()) {
            tch::set_num_threads(n);
        }
        v.visit(orz_tch::Tch::cpu(), "tch-cpu", Scale::from_env(Scale::Full));
        if let Ok(t) = orz_tch::Tch::cuda(0) {
            v.visit(t, "tch-cuda", Scale::from_env(Scale::Full));
        }
    }
}
