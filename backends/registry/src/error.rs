//! [`Error`]: why a backend could not be named, built or opened.

use std::fmt;

use crate::{BackendKind, Cuda, DeviceSpec};

/// Why a backend could not be named, built or opened; its message says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No backend has this name.
    UnknownBackend(String),
    /// Not a device (`cpu`, `cuda` or `cuda:N`).
    UnknownDevice(String),
    /// The backend is known but this build does not have its cargo feature.
    NotCompiled(BackendKind),
    /// The backend cannot use this (CUDA) device in this build, or ever.
    NoCuda {
        /// The backend.
        kind: BackendKind,
        /// The device asked for.
        device: DeviceSpec,
    },
    /// The device did not open (absent, no driver): what the backend said.
    Open {
        /// The backend.
        kind: BackendKind,
        /// The device asked for.
        device: DeviceSpec,
        /// The backend's own message.
        message: String,
    },
}

impl Error {
    /// [`Error::Open`] from the backend's error.
    pub fn open(kind: BackendKind, device: DeviceSpec, e: impl fmt::Display) -> Error {
        Error::Open { kind, device, message: e.to_string() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnknownBackend(s) => {
                write!(f, "unknown backend `{s}`: expected {}", BackendKind::choices())
            }
            Error::UnknownDevice(s) => write!(f, "unknown device `{s}`: expected cpu, cuda or cuda:N"),
            Error::NotCompiled(kind) => {
                let entry = kind.entry();
                write!(
                    f,
                    "backend `{kind}` is not compiled in: build with `--features {}`",
                    entry.feature.unwrap_or("?")
                )?;
                if !entry.setup.is_empty() {
                    write!(f, " ({})", entry.setup)?;
                }
                Ok(())
            }
            Error::NoCuda { kind, device } => match kind.entry().cuda {
                Cuda::WithFeature { feature, setup, .. } => {
                    write!(
                        f,
                        "backend `{kind}` on {device} needs a build with CUDA: `--features {feature}` ({setup})"
                    )
                }
                Cuda::Never | Cuda::Always => {
                    write!(f, "backend `{kind}` runs on the CPU only, not on {device}")
                }
            },
            Error::Open { kind, device, message } => write!(f, "backend `{kind}` on {device}: {message}"),
        }
    }
}

impl std::error::Error for Error {}
