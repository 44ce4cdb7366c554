//! Loading Hugging Face safetensors checkpoints (one file or shards listed by
//! `model.safetensors.index.json`) straight into libtorch tensors.
//!
//! Names and shapes are checked against the model's specs (headers only, with orz-hf's
//! [`Checkpoint`] and its errors) before any data is read. Then each tensor's bytes are read with
//! a seek and `read_exact` into a buffer of that one tensor, handed to libtorch in the file's own
//! dtype (no widening to f32 on the host) and converted on the device: the host never holds more
//! than one tensor beyond libtorch's copy, whatever the size of the shards.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use orz_core::backend::DType;
use orz_core::model::{Head, ParamSpec, Qwen2Config, parameter_specs};
use orz_hf::tensors::MAX_HEADER_BYTES;
use orz_hf::{Checkpoint, Error, Result};
use safetensors::Dtype;
use safetensors::tensor::Metadata;
use tch::{Kind, Tensor};

use crate::convert::kind;
use crate::{Tch, TchTensor, dims};

/// One safetensors file: its header and the offset of its data.
struct RawFile {
    file: File,
    data_start: u64,
    metadata: Metadata,
}

impl RawFile {
    /// Opens `path` and parses its header (orz-hf's [`Checkpoint`] has validated the file's
    /// layout already; this only reads it).
    fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| Error::io(path, "opening", e))?;
        let mut len = [0u8; 8];
        file.read_exact(&mut len).map_err(|e| Error::io(path, "reading the header length of", e))?;
        let header_len = u64::from_le_bytes(len);
        if header_len > MAX_HEADER_BYTES {
            return Err(Error::invalid(
                path,
                format!("the safetensors header length {header_len} is impossible"),
            ));
        }
        let mut header = vec![0u8; usize::try_from(header_len).unwrap_or(0)];
        file.read_exact(&mut header).map_err(|e| Error::io(path, "reading the header of", e))?;
        let metadata: Metadata = serde_json::from_slice(&header)
            .map_err(|e| Error::invalid(path, format!("invalid safetensors header: {e}")))?;
        Ok(RawFile { file, data_start: 8 + header_len, metadata })
    }

    /// Reads tensor `name` into a CPU libtorch tensor of the file's dtype.
    fn read(&mut self, path: &Path, name: &str) -> Result<Tensor> {
        let info = self
            .metadata
            .info(name)
            .ok_or_else(|| Error::MissingTensor { name: name.into(), path: path.to_path_buf() })?
            .clone();
        let file_kind = match info.dtype {
            Dtype::F32 => Kind::Float,
            Dtype::BF16 => Kind::BFloat16,
            Dtype::F16 => Kind::Half,
            other => {
                return Err(Error::invalid(
                    path,
                    format!("tensor `{name}` has dtype {other:?}; orz-tch reads F32, BF16 and F16"),
                ));
            }
        };
        let (start, end) = info.data_offsets;
        let mut bytes = vec![0u8; end.saturating_sub(start)];
        let action = format!("reading tensor `{name}` from");
        self.file
            .seek(SeekFrom::Start(self.data_start + start as u64))
            .and_then(|_| self.file.read_exact(&mut bytes))
            .map_err(|e| Error::io(path, action, e))?;
        Tensor::f_from_data_size(&bytes, &dims(&info.shape), file_kind)
            .map_err(|e| Error::Core(orz_core::Error::backend("load_tensors", e.to_string())))
    }
}

/// Loads every tensor of `specs` from the model directory `dir` onto `b`'s device with dtype
/// `dtype` (plain tensors: wrap them with `param` to train). Every spec must be present with its
/// exact shape (checked on the headers before any data is read; the errors name the tensor and
/// the file); extra tensors in the checkpoint are ignored.
pub fn load_tensors(
    b: &Tch,
    dir: impl AsRef<Path>,
    specs: &[ParamSpec],
    dtype: DType,
) -> Result<BTreeMap<String, TchTensor>> {
    let dir = dir.as_ref();
    if !dtype.is_float() {
        return Err(Error::invalid(dir, format!("weights must be loaded with a float dtype, not {dtype}")));
    }
    let mut ckpt = Checkpoint::open(dir)?;
    let mut files: Vec<(PathBuf, Vec<&ParamSpec>)> = Vec::new();
    for spec in specs {
        ckpt.check_shape(&spec.name, &spec.shape)?;
        let path = ckpt.file_for(&spec.name)?.path().to_path_buf();
        match files.iter_mut().find(|(p, _)| *p == path) {
            Some((_, list)) => list.push(spec),
            None => files.push((path, vec![spec])),
        }
    }
    let mut out = BTreeMap::new();
    for (path, specs) in files {
        let mut file = RawFile::open(&path)?;
        // In data order, so that the reads go forward through the shard.
        let mut specs = specs;
        specs.sort_by_key(|s| file.metadata.info(&s.name).map(|i| i.data_offsets.0).unwrap_or(0));
        for spec in specs {
            let host = file.read(&path, &spec.name)?;
            let t = tch::no_grad(|| host.f_to_device_(b.device, kind(dtype), false, false))
                .map_err(|e| Error::Core(orz_core::Error::backend("load_tensors", e.to_string())))?;
            out.insert(spec.name.clone(), TchTensor::new(t));
        }
    }
    Ok(out)
}

/// Loads a model directory: its `config.json` and every parameter of
/// [`parameter_specs`]`(config, head)`, as [`load_tensors`] does.
pub fn load_model(
    b: &Tch,
    dir: impl AsRef<Path>,
    head: Head,
    dtype: DType,
) -> Result<(Qwen2Config, BTreeMap<String, TchTensor>)> {
    let config = orz_hf::read_config(&dir)?;
    let tensors = load_tensors(b, &dir, &parameter_specs(&config, head), dtype)?;
    Ok((config, tensors))
}
