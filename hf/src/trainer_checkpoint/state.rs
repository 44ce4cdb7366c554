//! `trainer_state/trainer_state.json`: the format version, the iteration counter, the seed
//! generator, the optimizers' step counters, the [`TrainConfig`] and the caller's [`RunState`];
//! and [`check_config`], which names the fields two configs differ in.

use std::collections::BTreeMap;
use std::path::Path;

use orz_core::backend::DType;
use orz_core::train::TrainConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// The version of the checkpoint layout this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// Where a run stands beyond the trainer (the caller's part of a checkpoint, saved verbatim).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunState {
    /// The run's seed.
    pub seed: u64,
    /// The preset the run started from (e.g. `tiny`, `orz-0.5b`).
    pub preset: String,
    /// Data cursor: the epoch being read, from 0.
    pub epoch: u64,
    /// Data cursor: prompts of this epoch's shuffled order already consumed.
    pub position: u64,
    /// Anything else the caller keeps (metric history, paths); `null` when unused.
    #[serde(default)]
    pub extras: Value,
}

/// One optimizer's record: its tensors' file and its step counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OptimizerRecord {
    /// The safetensors file (in `trainer_state/`) with `exp_avg.<param>`, `exp_avg_sq.<param>`
    /// and `master.<param>`.
    pub file: String,
    /// Optimizer steps applied (the schedule index of the next step).
    pub steps: u64,
    /// AdamW updates each parameter received (bias correction), for the parameters with moments.
    pub param_steps: BTreeMap<String, u64>,
}

/// The content of `trainer_state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TrainerStateFile {
    /// [`FORMAT_VERSION`].
    pub format_version: u64,
    /// The index of the next iteration.
    pub iteration: u64,
    /// The seed generator's state ([`orz_core::rng::Rng::state`]).
    pub rng: [u64; 4],
    /// The policy's parameter dtype when saved.
    pub policy_dtype: DType,
    /// The critic's parameter dtype when saved (none under GRPO).
    pub critic_dtype: Option<DType>,
    /// The policy optimizer.
    pub policy_optimizer: OptimizerRecord,
    /// The critic optimizer (none under GRPO).
    pub critic_optimizer: Option<OptimizerRecord>,
    /// The iteration's configuration.
    pub config: TrainConfig,
    /// The caller's state.
    pub run: RunState,
}

impl TrainerStateFile {
    /// Writes the file (pretty JSON) and syncs it.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::invalid(path, format!("serializing: {e}")))?;
        let mut file = std::fs::File::create(path).map_err(|e| Error::io(path, "creating", e))?;
        std::io::Write::write_all(&mut file, format!("{text}\n").as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(path, "writing", e))
    }

    /// Reads and checks the file: its format version first, then every field.
    pub fn read(path: &Path) -> Result<TrainerStateFile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "reading", e))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| Error::invalid(path, format!("not valid JSON: {e}")))?;
        match value.get("format_version").and_then(Value::as_u64) {
            Some(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(Error::invalid(
                    path,
                    format!(
                        "`format_version` is {v}, but this build reads checkpoints of version {FORMAT_VERSION}"
                    ),
                ));
            }
            None => return Err(Error::invalid(path, "`format_version` is missing or not an integer")),
        }
        serde_json::from_value(value).map_err(|e| Error::invalid(path, format!("invalid trainer state: {e}")))
    }
}

/// The fields (dotted JSON paths with both values) in which `saved` and `wanted` differ.
pub fn config_differences(saved: &TrainConfig, wanted: &TrainConfig) -> Result<Vec<String>> {
    let json = |c: &TrainConfig| {
        serde_json::to_value(c).map_err(|e| Error::invalid("TrainConfig", format!("serializing: {e}")))
    };
    let mut out = Vec::new();
    diff("", &json(saved)?, &json(wanted)?, &mut out);
    Ok(out)
}

fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                diff(&p, x.get(k).unwrap_or(&Value::Null), y.get(k).unwrap_or(&Value::Null), out);
            }
        }
        _ if a != b => out.push(format!("`{path}`: {a} in the checkpoint, {b} now")),
        _ => {}
    }
}

/// Errors when a run resumed from checkpoint `dir` would use another configuration than the
/// one saved, naming every differing field; the generation engine's limits (`engine.*`,
/// hardware, not recipe) may change.
pub fn check_config(dir: &Path, saved: &TrainConfig, wanted: &TrainConfig) -> Result<()> {
    let differences: Vec<String> =
        config_differences(saved, wanted)?.into_iter().filter(|d| !d.starts_with("`engine.")).collect();
    if differences.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(
        dir.join(super::STATE_DIR).join(super::STATE_FILE),
        format!(
            "the checkpoint's training config differs from the requested one: {}",
            differences.join("; ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use orz_core::recipe::Preset;

    fn config() -> TrainConfig {
        Preset::Tiny.config().train_config(vec![1]).unwrap()
    }

    #[test]
    fn check_config_names_fields_and_ignores_the_engine() {
        let saved = config();
        let mut wanted = saved.clone();
        wanted.engine.max_batch_slots += 1;
        check_config(Path::new("ck"), &saved, &wanted).unwrap();
        wanted.eps_clip = 0.3;
        wanted.n_samples_per_prompt += 1;
        let e = check_config(Path::new("ck"), &saved, &wanted).unwrap_err().to_string();
        assert!(e.contains("ck/trainer_state/trainer_state.json"), "{e}");
        assert!(e.contains("`eps_clip`: 0.2 in the checkpoint, 0.3 now"), "{e}");
        assert!(e.contains("`n_samples_per_prompt`"), "{e}");
    }

    #[test]
    fn another_format_version_is_refused() {
        let dir = std::env::temp_dir().join(format!("orz-state-version-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("trainer_state.json");
        let record = OptimizerRecord { file: "p.safetensors".into(), steps: 3, param_steps: BTreeMap::new() };
        let state = TrainerStateFile {
            format_version: FORMAT_VERSION,
            iteration: 2,
            rng: [1, 2, 3, u64::MAX],
            policy_dtype: DType::BF16,
            critic_dtype: None,
            policy_optimizer: record,
            critic_optimizer: None,
            config: config(),
            run: RunState {
                seed: 7,
                preset: "tiny".into(),
                extras: serde_json::json!({"a": 1}),
                ..Default::default()
            },
        };
        state.write(&path).unwrap();
        assert_eq!(TrainerStateFile::read(&path).unwrap(), state);
        let text =
            std::fs::read_to_string(&path).unwrap().replace("\"format_version\": 1", "\"format_version\": 2");
        std::fs::write(&path, text).unwrap();
        let e = TrainerStateFile::read(&path).unwrap_err().to_string();
        assert!(e.contains("trainer_state.json: `format_version` is 2"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
