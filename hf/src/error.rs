//! The error type of orz-hf: every error names the file (and the tensor or field) at fault.

use std::fmt;
use std::path::PathBuf;

/// Result alias of orz-hf.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while reading or writing a model directory.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O failure on `path` while doing `action` (e.g. `"reading"`).
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done, e.g. `"opening"`, `"reading tensor `x`"`.
        action: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The content of `path` is invalid (malformed JSON, a missing or mistyped field, a broken
    /// safetensors header, an unsupported dtype, an inconsistent config).
    Invalid {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong, naming the field or tensor.
        message: String,
    },
    /// A tensor the model needs is not in the checkpoint.
    MissingTensor {
        /// The tensor's Hugging Face name.
        name: String,
        /// Where it was looked for (the safetensors file, the shard index or the directory).
        path: PathBuf,
    },
    /// A tensor has another shape than the model needs.
    ShapeMismatch {
        /// The tensor's Hugging Face name.
        name: String,
        /// The file holding it.
        path: PathBuf,
        /// The shape the model needs.
        expected: Vec<usize>,
        /// The shape in the file.
        actual: Vec<usize>,
    },
    /// An error of orz-core (a backend call, a config validation).
    Core(orz_core::Error),
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Invalid { path: path.into(), message: message.into() }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, action: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), action: action.into(), source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, action, source } => write!(f, "{}: {action} failed: {source}", path.display()),
            Error::Invalid { path, message } => write!(f, "{}: {message}", path.display()),
            Error::MissingTensor { name, path } => {
                write!(f, "{}: tensor `{name}` is missing", path.display())
            }
            Error::ShapeMismatch { name, path, expected, actual } => {
                write!(f, "{}: tensor `{name}` has shape {actual:?}, expected {expected:?}", path.display())
            }
            Error::Core(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Core(e) => Some(e),
            _ => None,
        }
    }
}

impl From<orz_core::Error> for Error {
    fn from(e: orz_core::Error) -> Self {
        Error::Core(e)
    }
}
