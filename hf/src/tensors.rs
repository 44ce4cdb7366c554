//! Safetensors checkpoints (one `model.safetensors`, or shards `model-0000i-of-0000n.safetensors`
//! listed by `model.safetensors.index.json`) to and from a [`Backend`].
//!
//! Reading never loads a whole file: the header is parsed, checked against the file's length,
//! and each tensor's byte range is read with a seek and `read_exact`, then converted to f32 host
//! data (from BF16, F16 or F32; other dtypes are an error naming the tensor) and handed to the
//! backend. Writing converts each tensor to the requested dtype as it streams it out, into a
//! temporary file that is renamed into place.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use orz_core::backend::{Backend, DType};
use orz_core::model::ParamSpec;
use safetensors::Dtype;
use safetensors::tensor::{Metadata, TensorInfo};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::fs::{write_atomic, write_file_atomic};

/// The file name of an unsharded checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The file name of the shard index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// The largest safetensors header accepted (the safetensors crate's limit).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One safetensors file whose header has been read; tensor data is read on demand.
#[derive(Debug)]
pub struct SafetensorsFile {
    path: PathBuf,
    file: File,
    data_start: u64,
    metadata: Metadata,
}

impl SafetensorsFile {
    /// Opens `path` and parses its header, checking that the header length is plausible and that
    /// the file holds exactly the tensor data the header describes (a truncated file is an error).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut file = File::open(&path).map_err(|e| Error::io(&path, "opening", e))?;
        let file_len = file.metadata().map_err(|e| Error::io(&path, "reading the size of", e))?.len();
        let mut len_bytes = [0u8; 8];
        if file_len < 8 {
            return Err(Error::invalid(
                &path,
                format!("not a safetensors file: {file_len} bytes, shorter than the 8-byte header length"),
            ));
        }
        file.read_exact(&mut len_bytes).map_err(|e| Error::io(&path, "reading the header length of", e))?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER_BYTES || header_len > file_len - 8 {
            return Err(Error::invalid(
                &path,
                format!(
                    "the safetensors header length {header_len} is impossible for a file of {file_len} bytes \
                     (at most {} and {MAX_HEADER_BYTES})",
                    file_len - 8
                ),
            ));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header).map_err(|e| Error::io(&path, "reading the header of", e))?;
        let metadata: Metadata = serde_json::from_slice(&header)
            .map_err(|e| Error::invalid(&path, format!("invalid safetensors header: {e}")))?;
        let data_start = 8 + header_len;
        let data_len = metadata.data_len() as u64;
        if data_start + data_len != file_len {
            let held = file_len - data_start;
            let what = if held < data_len { "truncated" } else { "longer than its header says" };
            return Err(Error::invalid(
                &path,
                format!(
                    "the file is {what}: its header describes {data_len} bytes of tensor data, it holds {held}"
                ),
            ));
        }
        Ok(SafetensorsFile { path, file, data_start, metadata })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The names of the tensors in the file, in the order of their data.
    pub fn names(&self) -> Vec<String> {
        self.metadata.offset_keys()
    }

    /// The shape of tensor `name`, if the file holds it.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.metadata.info(name).map(|i| i.shape.as_slice())
    }

    /// The `__metadata__` string map of the header (`{"format": "pt"}` for PyTorch checkpoints).
    pub fn user_metadata(&self) -> Option<&HashMap<String, String>> {
        self.metadata.metadata().as_ref()
    }

    /// Reads tensor `name` as f32 values (row-major) with its shape; BF16 and F16 are widened
    /// exactly. Errors: the tensor is absent, has another dtype, or cannot be read.
    pub fn read_f32(&mut self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let info = self
            .metadata
            .info(name)
            .ok_or_else(|| Error::MissingTensor { name: name.into(), path: self.path.clone() })?;
        let TensorInfo { dtype, shape, data_offsets: (start, end) } = info.clone();
        let convert: fn(&[u8]) -> f32 = match dtype {
            Dtype::F32 => |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Dtype::BF16 => |b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32(),
            Dtype::F16 => |b| half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            other => {
                return Err(Error::invalid(
                    &self.path,
                    format!("tensor `{name}` has dtype {other:?}; orz-hf reads F32, BF16 and F16"),
                ));
            }
        };
        let mut bytes = vec![0u8; end - start];
        let action = format!("reading tensor `{name}` from");
        self.file
            .seek(SeekFrom::Start(self.data_start + start as u64))
            .and_then(|_| self.file.read_exact(&mut bytes))
            .map_err(|e| Error::io(&self.path, action, e))?;
        let values = bytes.chunks_exact(dtype.bitsize() / 8).map(convert).collect();
        Ok((shape, values))
    }
}

/// Where a checkpoint's tensors live.
#[derive(Debug)]
enum Layout {
    /// One `model.safetensors`.
    Single,
    /// Shards listed by an index: tensor name to shard file name.
    Sharded { index: PathBuf, weight_map: BTreeMap<String, String> },
}

/// A checkpoint directory opened for reading: its layout, and the files opened so far.
#[derive(Debug)]
pub struct Checkpoint {
    layout: Layout,
    dir: PathBuf,
    files: BTreeMap<String, SafetensorsFile>,
}

impl Checkpoint {
    /// Opens the tensors of the model directory `dir`: `model.safetensors` when present (as
    /// transformers prefers it), else `model.safetensors.index.json` and its shards.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let single = dir.join(SINGLE_FILE);
        let index = dir.join(INDEX_FILE);
        let layout = if single.is_file() {
            Layout::Single
        } else if index.is_file() {
            Layout::Sharded { weight_map: read_index(&index)?, index }
        } else {
            return Err(Error::invalid(
                &dir,
                format!("no {SINGLE_FILE} and no {INDEX_FILE} in this directory"),
            ));
        };
        Ok(Checkpoint { layout, dir, files: BTreeMap::new() })
    }

    /// Every tensor name of the checkpoint (opening all files when unsharded; from the index
    /// when sharded), sorted.
    pub fn names(&mut self) -> Result<Vec<String>> {
        match &self.layout {
            Layout::Single => {
                let mut names = self.open_file(SINGLE_FILE)?.names();
                names.sort();
                Ok(names)
            }
            Layout::Sharded { weight_map, .. } => Ok(weight_map.keys().cloned().collect()),
        }
    }

    /// The file that holds tensor `name` (opened on first use; the error names the index or the
    /// file when the tensor is absent).
    pub fn file_for(&mut self, name: &str) -> Result<&mut SafetensorsFile> {
        let file_name = match &self.layout {
            Layout::Single => SINGLE_FILE.to_string(),
            Layout::Sharded { index, weight_map } => weight_map
                .get(name)
                .cloned()
                .ok_or_else(|| Error::MissingTensor { name: name.into(), path: index.clone() })?,
        };
        let file = self.open_file(&file_name)?;
        if file.shape(name).is_none() {
            return Err(Error::MissingTensor { name: name.into(), path: file.path.clone() });
        }
        Ok(file)
    }

    /// The file `file_name` of the checkpoint directory, opened (header parsed) on first use.
    fn open_file(&mut self, file_name: &str) -> Result<&mut SafetensorsFile> {
        match self.files.entry(file_name.to_string()) {
            std::collections::btree_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::btree_map::Entry::Vacant(e) => {
                Ok(e.insert(SafetensorsFile::open(self.dir.join(file_name))?))
            }
        }
    }

    /// Checks that tensor `name` is present with shape `expected`, naming the file otherwise.
    pub fn check_shape(&mut self, name: &str, expected: &[usize]) -> Result<()> {
        let file = self.file_for(name)?;
        let actual = file.shape(name).unwrap_or_default();
        if actual != expected {
            return Err(Error::ShapeMismatch {
                name: name.into(),
                path: file.path.clone(),
                expected: expected.to_vec(),
                actual: actual.to_vec(),
            });
        }
        Ok(())
    }

    /// Reads tensor `name` as f32 host data with its shape.
    pub fn read_f32(&mut self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        self.file_for(name)?.read_f32(name)
    }
}

/// Reads a shard index's `weight_map`, rejecting file names that leave the directory.
fn read_index(path: &Path) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "reading", e))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| Error::invalid(path, format!("malformed JSON: {e}")))?;
    let map = value
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::invalid(path, "missing field `weight_map` (an object)"))?;
    map.iter()
        .map(|(name, file)| {
            let file = file.as_str().filter(|f| is_plain_file_name(f)).ok_or_else(|| {
                Error::invalid(path, format!("`weight_map` entry of `{name}` is not a file name: {file}"))
            })?;
            Ok((name.clone(), file.to_string()))
        })
        .collect()
}

/// A file name without directory parts (so an index cannot point outside its directory).
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\'])
}

/// The tensors loaded by [`load_tensors_report`], and the checkpoint's tensors nobody asked for.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// Every requested tensor by name.
    pub tensors: BTreeMap<String, T>,
    /// Tensors of the checkpoint that no spec asked for (ignored, as transformers ignores
    /// unexpected buffers), sorted.
    pub unused: Vec<String>,
}

/// Loads every tensor of `specs` from the model directory `dir` into backend `b` with dtype
/// `dtype` (plain tensors: wrap them with [`Backend::param`] to train). Every spec must be
/// present with its exact shape; all names and shapes are checked (headers only) before any data
/// is read. Extra tensors are ignored.
pub fn load_tensors<B: Backend>(
    b: &B,
    dir: impl AsRef<Path>,
    specs: &[ParamSpec],
    dtype: DType,
) -> Result<BTreeMap<String, B::Tensor>> {
    Ok(load_tensors_report(b, dir, specs, dtype)?.tensors)
}

/// As [`load_tensors`], also listing the checkpoint's tensors that no spec asked for.
pub fn load_tensors_report<B: Backend>(
    b: &B,
    dir: impl AsRef<Path>,
    specs: &[ParamSpec],
    dtype: DType,
) -> Result<Loaded<B::Tensor>> {
    let dir = dir.as_ref();
    if !dtype.is_float() {
        return Err(Error::invalid(dir, format!("weights must be loaded with a float dtype, not {dtype}")));
    }
    let mut ckpt = Checkpoint::open(dir)?;
    for spec in specs {
        ckpt.check_shape(&spec.name, &spec.shape)?;
    }
    let mut tensors = BTreeMap::new();
    for spec in specs {
        let (shape, values) = ckpt.read_f32(&spec.name)?;
        tensors.insert(spec.name.clone(), b.tensor_f32(&values, &shape, dtype)?);
    }
    let unused = ckpt.names()?.into_iter().filter(|n| !tensors.contains_key(n)).collect();
    Ok(Loaded { tensors, unused })
}

/// The safetensors dtype and element size of a float dtype.
fn file_dtype(dtype: DType, dir: &Path) -> Result<Dtype> {
    match dtype {
        DType::F32 => Ok(Dtype::F32),
        DType::BF16 => Ok(Dtype::BF16),
        DType::F16 => Ok(Dtype::F16),
        other => Err(Error::invalid(dir, format!("weights must be saved with a float dtype, not {other}"))),
    }
}

/// The name of shard `i` (from 1) of `n`, as transformers names them.
pub fn shard_name(i: usize, n: usize) -> String {
    format!("model-{i:05}-of-{n:05}.safetensors")
}

/// Whether `name` looks like a shard file name (`model-<digits>-of-<digits>.safetensors`).
fn is_shard_name(name: &str) -> bool {
    let Some(mid) = name.strip_prefix("model-").and_then(|s| s.strip_suffix(".safetensors")) else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    mid.split_once("-of-").is_some_and(|(i, n)| digits(i) && digits(n))
}

/// Splits tensors (by byte size, in order) into shards of at most `max` bytes (a larger tensor
/// gets a shard of its own), as transformers' `save_pretrained(max_shard_size=...)` does.
fn plan_shards(sizes: &[u64], max: Option<u64>) -> Vec<(usize, usize)> {
    let Some(max) = max else { return vec![(0, sizes.len())] };
    let mut shards = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, &size) in sizes.iter().enumerate() {
        if i > start && bytes + size > max {
            shards.push((start, i));
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    shards.push((start, sizes.len()));
    shards
}

/// Saves named tensors into `dir` (created if needed) as `dtype` (F32, BF16 or F16): one
/// `model.safetensors`, or, when `max_shard_bytes` splits them into several files, shards
/// `model-0000i-of-0000n.safetensors` plus `model.safetensors.index.json` (with
/// `metadata.total_size`). Each file is written to a temporary name in `dir` and renamed; files
/// of an earlier save in the other layout (a stale single file, index or shards) are removed
/// after the new ones are in place. Headers carry `{"format": "pt"}` as transformers expects.
/// Returns the paths written.
pub fn save_tensors<B: Backend>(
    b: &B,
    dir: impl AsRef<Path>,
    named: &[(String, B::Tensor)],
    dtype: DType,
    max_shard_bytes: Option<u64>,
) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let st_dtype = file_dtype(dtype, dir)?;
    let mut seen = BTreeSet::new();
    if let Some((name, _)) = named.iter().find(|(n, _)| n.is_empty() || !seen.insert(n.as_str())) {
        return Err(Error::invalid(dir, format!("tensor name `{name}` is empty or given twice")));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "creating the directory", e))?;
    let shapes: Vec<Vec<usize>> = named.iter().map(|(_, t)| b.shape(t)).collect();
    let sizes: Vec<u64> =
        shapes.iter().map(|s| (s.iter().product::<usize>() * (st_dtype.bitsize() / 8)) as u64).collect();
    let shards = plan_shards(&sizes, max_shard_bytes);
    let n = shards.len();
    let mut written = Vec::new();
    let mut weight_map = serde_json::Map::new();
    for (i, (start, end)) in shards.into_iter().enumerate() {
        let file_name = if n == 1 { SINGLE_FILE.to_string() } else { shard_name(i + 1, n) };
        let path = dir.join(&file_name);
        let items: Vec<_> = (start..end).map(|k| (&named[k].0, &named[k].1, &shapes[k])).collect();
        write_safetensors(b, &path, &items, st_dtype)?;
        for (name, _, _) in &items {
            weight_map.insert((*name).clone(), Value::String(file_name.clone()));
        }
        written.push(path);
    }
    if n > 1 {
        let index = json!({"metadata": {"total_size": sizes.iter().sum::<u64>()}, "weight_map": weight_map});
        let path = dir.join(INDEX_FILE);
        let text = serde_json::to_string_pretty(&index)
            .map_err(|e| Error::invalid(&path, format!("serializing the index: {e}")))?;
        write_atomic(&path, format!("{text}\n").as_bytes())?;
        written.push(path);
    }
    remove_stale(dir, &written)?;
    Ok(written)
}

/// Removes checkpoint files of another layout or shard count than the ones just `written`.
fn remove_stale(dir: &Path, written: &[PathBuf]) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "listing", e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, "listing", e))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let ours = name == SINGLE_FILE || name == INDEX_FILE || is_shard_name(&name);
        if ours && !written.contains(&path) {
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, "removing the stale file", e))?;
        }
    }
    Ok(())
}

/// Writes one safetensors file (atomically) holding `items` converted to `dtype`.
fn write_safetensors<B: Backend>(
    b: &B,
    path: &Path,
    items: &[(&String, &B::Tensor, &Vec<usize>)],
    dtype: Dtype,
) -> Result<()> {
    let mut offset = 0;
    let infos = items
        .iter()
        .map(|(name, _, shape)| {
            let len = shape.iter().product::<usize>() * (dtype.bitsize() / 8);
            let info = TensorInfo { dtype, shape: shape.to_vec(), data_offsets: (offset, offset + len) };
            offset += len;
            ((*name).clone(), info)
        })
        .collect();
    let format = HashMap::from([("format".to_string(), "pt".to_string())]);
    let metadata = Metadata::new(Some(format), infos)
        .map_err(|e| Error::invalid(path, format!("building the safetensors header: {e}")))?;
    let mut header = serde_json::to_vec(&metadata)
        .map_err(|e| Error::invalid(path, format!("serializing the header: {e}")))?;
    header.resize(header.len().next_multiple_of(8), b' ');
    write_file_atomic(path, |file| {
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let io = |e| Error::io(path, "writing", e);
        w.write_all(&(header.len() as u64).to_le_bytes()).map_err(io)?;
        w.write_all(&header).map_err(io)?;
        for (_, tensor, _) in items {
            let values = b.to_host_f32(tensor)?;
            let bytes: Vec<u8> = match dtype {
                Dtype::BF16 => values.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect(),
                Dtype::F16 => values.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect(),
                _ => values.iter().flat_map(|&x| x.to_le_bytes()).collect(),
            };
            w.write_all(&bytes).map_err(io)?;
        }
        w.flush().map_err(io)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_plan_follows_transformers() {
        assert_eq!(plan_shards(&[4, 4, 4], None), vec![(0, 3)]);
        assert_eq!(plan_shards(&[4, 4, 4], Some(8)), vec![(0, 2), (2, 3)]);
        assert_eq!(plan_shards(&[10, 1, 1], Some(4)), vec![(0, 1), (1, 3)]);
        assert_eq!(plan_shards(&[], Some(4)), vec![(0, 0)]);
        assert!(is_shard_name(&shard_name(2, 13)));
        assert!(!is_shard_name("model-a-of-2.safetensors") && !is_shard_name(SINGLE_FILE));
    }
}
