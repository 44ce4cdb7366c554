//! An optimizer's tensors in a safetensors file: per parameter `exp_avg.<name>`,
//! `exp_avg_sq.<name>` (the AdamW moments, once it was updated) and `master.<name>` (its f32
//! master, when the parameter is not F32), all F32 with the parameter's shape. Written as a
//! stream (one tensor on the host at a time); read back into an [`OptimizerState`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use orz_core::backend::{Backend, DType};
use orz_core::model::ParamSpec;
use orz_core::optimizer::{MomentsState, OptimizerState, ParamState};
use orz_core::train::ModelOptimizer;
use serde_json::{Map, Value, json};

use super::state::OptimizerRecord;
use crate::{Error, Result, SafetensorsFile};

/// Name prefix of the first moments.
pub const EXP_AVG: &str = "exp_avg.";
/// Name prefix of the second moments.
pub const EXP_AVG_SQ: &str = "exp_avg_sq.";
/// Name prefix of the f32 master weights.
pub const MASTER: &str = "master.";

/// Which tensor of parameter `index` an entry holds.
#[derive(Clone, Copy)]
enum Kind {
    ExpAvg,
    ExpAvgSq,
    Master,
}

/// Writes `opt`'s tensors to `path` (`names[i]` names parameter `i`) and returns its record.
/// A sharded optimizer is written in the same layout, one unit at a time: every rank must call
/// [`gather_sharded`] meanwhile (the units are all-gathered).
pub(crate) fn write_optimizer<B: Backend>(
    b: &B,
    path: &Path,
    opt: &ModelOptimizer<B>,
    names: &[String],
) -> Result<OptimizerRecord> {
    let shapes = opt.param_shapes(b);
    if names.len() != shapes.len() {
        return Err(Error::invalid(
            path,
            format!("the optimizer has {} parameters but the model names {}", shapes.len(), names.len()),
        ));
    }
    // Per parameter: its AdamW step count (when it has moments) and whether it has a master.
    let layout: Vec<(Option<u64>, bool)> = match opt {
        ModelOptimizer::Local(o) => {
            (0..shapes.len()).map(|i| (o.moments(i).map(|m| m.step), o.master(i).is_some())).collect()
        }
        ModelOptimizer::Sharded(o) => {
            let mut out = Vec::with_capacity(shapes.len());
            let master = o.param_dtype(b) != DType::F32;
            for (u, unit) in o.units().iter().enumerate() {
                let step = o.moments_shard(u).map(|m| m.step);
                out.extend(unit.clone().map(|_| (step, master)));
            }
            out
        }
    };
    let mut entries = Vec::new();
    let mut param_steps = BTreeMap::new();
    for (i, (name, &(step, master))) in names.iter().zip(&layout).enumerate() {
        if let Some(step) = step {
            param_steps.insert(name.clone(), step);
            entries.push((format!("{EXP_AVG}{name}"), i, Kind::ExpAvg));
            entries.push((format!("{EXP_AVG_SQ}{name}"), i, Kind::ExpAvgSq));
        }
        if master {
            entries.push((format!("{MASTER}{name}"), i, Kind::Master));
        }
    }
    let mut header = Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut offset = 0usize;
    for (name, i, _) in &entries {
        let shape = &shapes[*i];
        let end = offset + 4 * shape.iter().product::<usize>();
        header.insert(name.clone(), json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, end]}));
        offset = end;
    }
    let mut header = serde_json::to_string(&Value::Object(header))
        .map_err(|e| Error::invalid(path, format!("serializing the header: {e}")))?
        .into_bytes();
    header.resize(header.len().next_multiple_of(8), b' ');

    let io = |e: std::io::Error| Error::io(path, "writing", e);
    let file = File::create(path).map_err(|e| Error::io(path, "creating", e))?;
    let mut w = BufWriter::new(file);
    w.write_all(&(header.len() as u64).to_le_bytes()).map_err(io)?;
    w.write_all(&header).map_err(io)?;
    let mut write = |values: &[f32]| -> Result<()> {
        let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        w.write_all(&bytes).map_err(io)
    };
    let read = |name: &str, t: Option<&B::Tensor>| -> Result<Vec<f32>> {
        let t = t.ok_or_else(|| Error::invalid(path, format!("tensor `{name}` vanished")))?;
        b.to_host_f32(t).map_err(|e| Error::invalid(path, format!("reading tensor `{name}`: {e}")))
    };
    match opt {
        ModelOptimizer::Local(o) => {
            for (name, i, kind) in &entries {
                let tensor = match kind {
                    Kind::ExpAvg => o.moments(*i).map(|m| &m.m),
                    Kind::ExpAvgSq => o.moments(*i).map(|m| &m.v),
                    Kind::Master => o.master(*i),
                };
                write(&read(name, tensor)?)?;
            }
        }
        ModelOptimizer::Sharded(o) => {
            let mut pending = entries.iter().peekable();
            for (u, unit) in o.units().iter().enumerate() {
                let state = o
                    .gather_unit(b, u)
                    .map_err(|e| Error::invalid(path, format!("gathering unit {u}: {e}")))?;
                let mut at = 0;
                for i in unit.clone() {
                    let n: usize = shapes[i].iter().product();
                    while let Some((_, _, kind)) = pending.next_if(|(_, j, _)| *j == i) {
                        let values = match kind {
                            Kind::ExpAvg => &state.m,
                            Kind::ExpAvgSq => &state.v,
                            Kind::Master => &state.master,
                        };
                        write(&values[at..at + n])?;
                    }
                    at += n;
                }
            }
        }
    }
    let file = w.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(OptimizerRecord {
        file: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        steps: opt.steps(),
        param_steps,
    })
}

/// A rank other than 0's part in [`write_optimizer`] of a sharded optimizer: the same unit
/// gathers, nothing written.
pub(crate) fn gather_sharded<B: Backend>(b: &B, opt: &ModelOptimizer<B>) -> orz_core::Result<()> {
    if let ModelOptimizer::Sharded(o) = opt {
        for u in 0..o.units().len() {
            o.gather_unit(b, u)?;
        }
    }
    Ok(())
}

/// Reads one F32 tensor of `spec`'s shape from `file`, naming file and tensor in errors.
fn read(file: &mut SafetensorsFile, name: &str, spec: &ParamSpec) -> Result<Vec<f32>> {
    let (shape, values) = file.read_f32(name)?;
    if shape != spec.shape {
        return Err(Error::invalid(
            file.path(),
            format!(
                "tensor `{name}` has shape {shape:?}, but parameter `{}` has shape {:?}",
                spec.name, spec.shape
            ),
        ));
    }
    Ok(values)
}

/// Reads the optimizer state of a model with parameters `specs` from `dir/record.file`: moments
/// for the parameters `record.param_steps` lists, masters where the file holds them. Errors
/// name the file and the tensor: a missing or extra tensor, another shape, a step count for a
/// parameter the model does not have.
pub(crate) fn read_optimizer(
    dir: &Path,
    record: &OptimizerRecord,
    specs: &[ParamSpec],
) -> Result<OptimizerState> {
    let mut file = open_optimizer(dir, record, specs)?;
    let params = specs.iter().map(|spec| read_param_state(&mut file, record, spec)).collect::<Result<_>>()?;
    Ok(OptimizerState { step: record.steps, params })
}

/// Opens the optimizer file `dir/record.file` of a model with parameters `specs`, after
/// checking that its tensors and `record.param_steps` name only those parameters.
pub(crate) fn open_optimizer(
    dir: &Path,
    record: &OptimizerRecord,
    specs: &[ParamSpec],
) -> Result<SafetensorsFile> {
    let path = dir.join(&record.file);
    let file = SafetensorsFile::open(&path)?;
    if let Some(name) = record.param_steps.keys().find(|n| !specs.iter().any(|s| &&s.name == n)) {
        return Err(Error::invalid(
            dir.join(super::STATE_FILE),
            format!(
                "`param_steps` names `{name}`, which is not a parameter of the model (another model config?)"
            ),
        ));
    }
    Ok(file)
}

/// Checks that every tensor of an optimizer file belongs to a parameter of `specs`: a master
/// for any, moments for those `record` lists a step count for.
pub(crate) fn check_no_extra(
    file: &SafetensorsFile,
    record: &OptimizerRecord,
    specs: &[ParamSpec],
) -> Result<()> {
    // Every parameter may have a master; moments only where a step count is recorded.
    let mut expected = std::collections::BTreeSet::new();
    for spec in specs {
        expected.insert(format!("{MASTER}{}", spec.name));
        if record.param_steps.contains_key(&spec.name) {
            expected.extend([format!("{EXP_AVG}{}", spec.name), format!("{EXP_AVG_SQ}{}", spec.name)]);
        }
    }
    if let Some(extra) = file.names().into_iter().find(|n| !expected.contains(n)) {
        return Err(Error::invalid(
            file.path(),
            format!("tensor `{extra}` belongs to no parameter of the model (another model config?)"),
        ));
    }
    Ok(())
}

/// One parameter's saved state from an open optimizer file: its moments when `record` lists
/// a step count for it, its master when the file holds one.
pub(crate) fn read_param_state(
    file: &mut SafetensorsFile,
    record: &OptimizerRecord,
    spec: &ParamSpec,
) -> Result<ParamState> {
    let moments = match record.param_steps.get(&spec.name) {
        Some(&step) => {
            let m = read(file, &format!("{EXP_AVG}{}", spec.name), spec)?;
            let v = read(file, &format!("{EXP_AVG_SQ}{}", spec.name), spec)?;
            Some(MomentsState { m, v, step })
        }
        None => None,
    };
    let master_name = format!("{MASTER}{}", spec.name);
    let master = match file.shape(&master_name) {
        Some(_) => Some(read(file, &master_name, spec)?),
        None => None,
    };
    Ok(ParamState { shape: spec.shape.clone(), moments, master })
}
