//! Hugging Face safetensors checkpoints (one file or many shards) memory-mapped by candle.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::Tensor;
use candle_core::safetensors::MmapedSafetensors;
use orz_core::backend::DType;
use orz_core::model::ParamSpec;
use orz_core::{Error, Result};

use crate::{Candle, candle_dtype};

const OP: &str = "load_safetensors";

/// Loads every tensor of `specs` from the safetensors files `paths` (a checkpoint's shards, in
/// any order) into `b` with dtype `dtype`, as plain tensors (wrap them with `Backend::param` to
/// train). The files are memory-mapped (candle's `MmapedSafetensors`): only the requested
/// tensors' bytes are read, so multi-GB shards are never read whole into memory. Every spec
/// must be present with its exact shape and a float dtype (F32, BF16, F16); all names, shapes
/// and dtypes are checked (headers only) before any tensor is loaded. Extra tensors are ignored.
pub fn load_safetensors<P: AsRef<Path>>(
    b: &Candle,
    paths: &[P],
    specs: &[ParamSpec],
    dtype: DType,
) -> Result<BTreeMap<String, Tensor>> {
    if !dtype.is_float() {
        return Err(Error::invalid(OP, format!("weights must be loaded with a float dtype, not {dtype}")));
    }
    if paths.is_empty() {
        return Err(Error::invalid(OP, "no safetensors files given"));
    }
    let shown: Vec<String> = paths.iter().map(|p| p.as_ref().display().to_string()).collect();
    let files = map_files(paths, &shown)?;
    for spec in specs {
        let view = files
            .get(&spec.name)
            .map_err(|_| Error::invalid(OP, format!("tensor `{}` is missing from {shown:?}", spec.name)))?;
        if view.shape() != spec.shape.as_slice() {
            return Err(Error::invalid(
                OP,
                format!(
                    "tensor `{}` has shape {:?} in {shown:?}, the model expects {:?}",
                    spec.name,
                    view.shape(),
                    spec.shape
                ),
            ));
        }
        let stored = view.dtype();
        if !matches!(stored, safetensors::Dtype::F32 | safetensors::Dtype::BF16 | safetensors::Dtype::F16) {
            return Err(Error::invalid(
                OP,
                format!("tensor `{}` has dtype {stored:?}; F32, BF16 and F16 are read", spec.name),
            ));
        }
    }
    let mut out = BTreeMap::new();
    for spec in specs {
        let t = files
            .load(&spec.name, b.candle_device())
            .and_then(|t| t.to_dtype(candle_dtype(dtype)))
            .map_err(|e| Error::backend(OP, format!("reading tensor `{}` from {shown:?}: {e}", spec.name)))?;
        out.insert(spec.name.clone(), t);
    }
    Ok(out)
}

/// Memory-maps the files and parses their headers.
#[allow(unsafe_code)]
fn map_files<P: AsRef<Path>>(paths: &[P], shown: &[String]) -> Result<MmapedSafetensors> {
    // SAFETY: `MmapedSafetensors::multi` memory-maps the files; the mapping is only sound while
    // no one modifies or truncates them. The files are checkpoints this process only reads, and
    // the caller must not rewrite them while the returned tensors are being loaded (loading
    // copies each tensor out of the mapping, which is dropped when this function's caller
    // returns).
    unsafe { MmapedSafetensors::multi(paths) }
        .map_err(|e| Error::backend(OP, format!("memory-mapping {shown:?}: {e}")))
}
