//! orz-backends: the one registry of orz-rs backends, read by the `orz` program (`--backend`,
//! `--device`), the benches (one run per backend and device) and the conformance report (one
//! row per backend).
//!
//! Every backend the project knows is one entry of the table in [`entries`]: its name, the cargo
//! feature that compiles it in, whether it runs on CUDA, what the memory planner needs to know
//! about it, and the function that opens it on a device. Code written once, generic over
//! [`Backend`], receives the opened backend through a [`BackendVisitor`]:
//!
//! ```
//! use orz_backends::{BackendKind, BackendVisitor, DeviceSpec, Opened, with_backend};
//! use orz_core::backend::{Backend, DType};
//!
//! struct Sum;
//! impl BackendVisitor for Sum {
//!     type Output = orz_core::Result<f64>;
//!     fn visit<B: Backend + 'static>(self, b: B, _: Opened) -> orz_core::Result<f64> {
//!         let t = b.tensor_f64(&[1.0, 2.0], &[2], DType::F32)?;
//!         Ok(b.to_host_f64(&t)?.iter().sum())
//!     }
//! }
//!
//! let kind: BackendKind = "reference".parse()?;
//! assert_eq!(with_backend(kind, DeviceSpec::Cpu, Sum)??, 3.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Adding a backend: its crate, one entry in [`entries`] (and, when it is optional, one cargo
//! feature of this crate that the callers forward).
//!
//! Features: `candle` (orz-candle on the CPU), `candle-cuda` (and on CUDA), `candle-nccl`
//! (orz-candle's NCCL groups), `tch` (orz-tch, CPU and CUDA), `c10d` and `nccl` (orz-tch's
//! process groups). The reference is always compiled in.

#[macro_use]
mod macros;
mod device;
pub mod entries;
mod error;
mod memory;

pub use device::DeviceSpec;
pub use entries::BackendKind;
pub use error::Error;
pub use memory::{AttentionKernel, MemoryFacts};
pub use orz_core::backend::Backend;

/// The candle backend crate (with the `candle` feature), for its own extras.
#[cfg(feature = "candle")]
pub use orz_candle;
/// The reference backend crate.
pub use orz_reference;
/// The libtorch backend crate (with the `tch` feature), for its own extras (c10d, thread count).
#[cfg(feature = "tch")]
pub use orz_tch;

use std::fmt;

use orz_core::backend::DType;

/// Whether a backend runs on CUDA devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cuda {
    /// Never: a host-only backend.
    Never,
    /// Whenever the backend is compiled in.
    Always,
    /// Only when this crate is built with the cargo feature `feature` (`compiled` says whether
    /// it was); `setup` is what building it needs, for the error message.
    WithFeature {
        /// The cargo feature, e.g. `"candle-cuda"`.
        feature: &'static str,
        /// Whether this build has it (`cfg!(feature = ...)`).
        compiled: bool,
        /// What the build needs besides the feature, e.g. `"see scripts/build-candle-cuda.sh"`.
        setup: &'static str,
    },
}

/// What one entry of the registry says about its backend (see [`BackendKind::entry`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    /// The name on the command line and in labels: `"candle"`.
    pub name: &'static str,
    /// What it is, in a few words (for help texts).
    pub about: &'static str,
    /// The cargo feature of this crate that compiles it in; `None`: always compiled in.
    pub feature: Option<&'static str>,
    /// What building with that feature needs besides it (empty when nothing), e.g. libtorch.
    pub setup: &'static str,
    /// Whether it runs on CUDA devices.
    pub cuda: Cuda,
    /// Whether it is the slow f64 oracle (plain loops): benches run it at test sizes only.
    pub oracle: bool,
    /// What the memory planner needs to know about it.
    pub memory: MemoryFacts,
}

/// A backend opened on a device, as handed to a [`BackendVisitor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// Which backend.
    pub kind: BackendKind,
    /// On which device.
    pub device: DeviceSpec,
}

impl Opened {
    /// The benches' label: the name alone for a CPU-only backend (`"reference"`), else the name
    /// and the device kind (`"candle-cpu"`, `"tch-cuda"`).
    pub fn label(&self) -> String {
        match (self.kind.entry().cuda, self.device) {
            (Cuda::Never, _) => self.kind.name().to_string(),
            (_, DeviceSpec::Cpu) => format!("{}-cpu", self.kind.name()),
            (_, DeviceSpec::Cuda(_)) => format!("{}-cuda", self.kind.name()),
        }
    }
}

/// `candle/cpu`, `tch/cuda:1`: the backend and its device, for logs.
impl fmt::Display for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.name(), self.device)
    }
}

/// Work written once for any backend, run by [`with_backend`] on the backend it opens.
pub trait BackendVisitor {
    /// What the work returns.
    type Output;
    /// Runs the work on `backend`, opened as `opened` says.
    fn visit<B: Backend + 'static>(self, backend: B, opened: Opened) -> Self::Output;
}

impl BackendKind {
    /// Every backend the registry knows, compiled in or not, in the table's order.
    pub const ALL: &'static [BackendKind] = entries::ALL;

    /// The backends compiled into this build, in the table's order.
    pub fn compiled() -> impl Iterator<Item = BackendKind> {
        BackendKind::ALL.iter().copied().filter(|k| k.is_compiled())
    }

    /// Its name: `"candle"`.
    pub fn name(self) -> &'static str {
        self.entry().name
    }

    /// What the memory planner needs to know about it (its table entry, before [`MemoryFacts::on`]
    /// picks the device's and dtype's head).
    pub fn memory(self) -> MemoryFacts {
        self.entry().memory
    }

    /// What the memory planner needs to know about it on `device` in `dtype`.
    pub fn memory_on(self, device: DeviceSpec, dtype: DType) -> MemoryFacts {
        self.memory().on(device, dtype)
    }

    /// Whether this build can open it on `device` (compiled in, and with CUDA support for a
    /// CUDA device); whether the device is present is only known by opening it.
    pub fn runs_on(self, device: DeviceSpec) -> bool {
        self.is_compiled()
            && match (device, self.entry().cuda) {
                (DeviceSpec::Cpu, _) | (_, Cuda::Always) => true,
                (_, Cuda::Never) => false,
                (_, Cuda::WithFeature { compiled, .. }) => compiled,
            }
    }

    /// `Ok` when this build can try to open it on `device`, else why not.
    pub fn check(self, device: DeviceSpec) -> Result<(), Error> {
        if !self.is_compiled() {
            return Err(Error::NotCompiled(self));
        }
        if !self.runs_on(device) {
            return Err(Error::NoCuda { kind: self, device });
        }
        Ok(())
    }

    /// The names of every backend known, for messages: `"reference, candle, tch or plain"`.
    pub fn choices() -> String {
        let names: Vec<&str> = BackendKind::ALL.iter().map(|k| k.name()).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BackendKind {
    type Err = Error;

    /// A backend by its name, compiled in or not (opening one that is not says how to build it).
    fn from_str(s: &str) -> Result<BackendKind, Error> {
        BackendKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| Error::UnknownBackend(s.to_string()))
    }
}

/// Opens `kind` on `device` and runs `visitor` on it. An error, before any work starts, names a
/// backend that is not compiled in (and the feature to build with), a device it cannot use in
/// this build, or the device that failed to open (absent, no driver).
pub fn with_backend<V: BackendVisitor>(
    kind: BackendKind,
    device: DeviceSpec,
    visitor: V,
) -> Result<V::Output, Error> {
    kind.check(device)?;
    entries::open_and_visit(Opened { kind, device }, visitor)
}

/// Every backend compiled in, paired with each of `devices` it can run on in this build (in the
/// table's order, then the order of `devices`): what the report and the benches iterate over.
/// A CUDA device may still fail to open ([`with_backend`] says so).
pub fn compiled_on(devices: &[DeviceSpec]) -> Vec<Opened> {
    BackendKind::compiled()
        .flat_map(|kind| {
            devices.iter().filter(move |&&d| kind.runs_on(d)).map(move |&device| Opened { kind, device })
        })
        .collect()
}

#[cfg(test)]
mod tests;
