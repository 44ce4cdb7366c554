//! [`Settings`]: a preset's [`RecipeConfig`] (the run's knobs and its one [`TrainConfig`]) with
//! any field overridden from a TOML file (`--config FILE.toml`) or `--set KEY=VALUE`, and the
//! model's EOS ids in place.
//!
//! One tree, one namespace: the TOML file's top-level keys are the run's fields, its `[train]`
//! table the iteration's ([`TrainConfig`]: samples, lengths, sampling, packing, GAE, clips,
//! steps, optimizers, engine, memory); `--set` names the same fields with dots, and
//! `orz presets NAME` prints exactly this tree. Example:
//!
//! ```toml
//! rollout_batch_size = 32
//! [train]
//! aggregation = "TokenMean"
//! engine = { max_batch_slots = 64, kv_budget_bytes = 1073741824 }
//! [train.policy_optimizer.schedule.WarmupConstant]
//! peak = 2e-4
//! ```
//!
//! is `--set rollout_batch_size=32 --set train.aggregation='"TokenMean"'
//! --set train.engine.max_batch_slots=64 --set train.policy_optimizer.schedule.WarmupConstant.peak=2e-4`.
//! An unknown key, a key of the recipe before the tree was unified (`eps_clip`, `policy_lr`:
//! the error names the new key, [`RENAMED`]) or a value of the wrong type is an error naming the
//! key and the source, before any work starts.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use orz_core::recipe::{Preset, RecipeConfig};
use orz_core::train::TrainConfig;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The configuration of one run after every override: the recipe, whose `train` is the
/// iteration's config with the model's EOS ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The run's knobs and, in `recipe.train`, the iteration's.
    pub recipe: RecipeConfig,
}

/// Keys of the recipe before it held one [`TrainConfig`], and where each knob lives now.
pub const RENAMED: &[(&str, &str)] = &[
    ("n_samples_per_prompt", "train.n_samples_per_prompt"),
    ("packing_max_len", "train.packing_max_len"),
    ("prompt_max_len", "train.prompt_max_len"),
    ("generate_max_len", "train.stop.max_new_tokens"),
    ("max_len", "train.stop.max_total_len"),
    ("stop_strings", "train.stop.stop_strings"),
    ("temperature", "train.sampling.temperature"),
    ("top_p", "train.sampling.top_p"),
    ("top_k", "train.sampling.top_k"),
    ("gamma", "train.gamma"),
    ("lambda", "train.lambda"),
    ("advantage_normalize", "train.advantage_normalize"),
    ("eps_clip", "train.eps_clip"),
    ("value_clip", "train.value_clip"),
    ("critic_update_steps", "train.critic_update_steps"),
    ("policy_update_steps", "train.policy_update_steps"),
    ("pack_shuffle_seed", "train.pack_shuffle_seed"),
    ("policy_lr", "train.policy_optimizer.schedule.WarmupConstant.peak"),
    ("critic_lr", "train.critic_optimizer.schedule.WarmupConstant.peak"),
    (
        "warmup_steps",
        "train.policy_optimizer.schedule.WarmupConstant.warmup_steps (and the critic_optimizer's)",
    ),
    ("adam_betas", "train.policy_optimizer.adamw.beta1 and .beta2 (and the critic_optimizer's)"),
    ("adam_eps", "train.policy_optimizer.adamw.eps (and the critic_optimizer's)"),
    ("weight_decay", "train.policy_optimizer.adamw.weight_decay (and the critic_optimizer's)"),
    ("max_grad_norm", "train.policy_optimizer.max_grad_norm (and the critic_optimizer's)"),
];

/// Overrides of one source (a file or the command line), kept apart for error messages.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Where they came from (`path/to/file.toml`, `--set`).
    pub source: String,
    /// The fields to change, as a (partial) tree of the recipe.
    pub values: Map<String, Value>,
}

impl Overrides {
    /// Reads a TOML file; errors name the file (and the line, for a syntax error).
    pub fn from_file(path: &Path) -> Result<Overrides> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        Overrides::from_toml(&text, &path.display().to_string())
    }

    /// Parses TOML text; `source` names it in errors.
    pub fn from_toml(text: &str, source: &str) -> Result<Overrides> {
        let table: toml::Table =
            toml::from_str(text).map_err(|e| anyhow!("{source}: not valid TOML: {e}"))?;
        let Value::Object(values) = serde_json::to_value(table)? else {
            bail!("{source}: a TOML document is a table");
        };
        Ok(Overrides { source: source.to_string(), values })
    }

    /// `KEY=VALUE` pairs from the command line; a dotted key names a nested field
    /// (`train.engine.max_batch_slots=64`). The value is read as TOML (`3`, `1e-4`,
    /// `"TokenMean"`, `true`, `{ ... }`), or as a string if that fails.
    pub fn from_assignments(pairs: &[String]) -> Result<Overrides> {
        let mut out = Overrides { source: "--set".into(), ..Overrides::default() };
        for pair in pairs {
            let (key, raw) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("--set {pair}: expected KEY=VALUE, e.g. train.eps_clip=0.3"))?;
            let value: Value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
                Ok(mut t) => serde_json::to_value(t.remove("v"))?,
                Err(_) => Value::String(raw.to_string()),
            };
            let path: Vec<&str> = key.trim().split('.').collect();
            if path.iter().any(|p| p.is_empty()) {
                bail!("--set {pair}: `{}` is not a field path (e.g. train.eps_clip)", key.trim());
            }
            let nested = path[1..]
                .iter()
                .rev()
                .fold(value, |v, k| Value::Object(Map::from_iter([(k.to_string(), v)])));
            merge_into(&mut out.values, path[0], nested);
        }
        Ok(out)
    }
}

impl Settings {
    /// The preset's settings with the model's `eos_token_ids` and `overrides` applied in order.
    pub fn resolve(preset: Preset, overrides: &[Overrides], eos_token_ids: Vec<u32>) -> Result<Settings> {
        let mut recipe = preset.config();
        recipe.train.stop.eos_token_ids = eos_token_ids;
        for o in overrides {
            recipe = apply(&recipe, &o.values, &o.source)?;
        }
        recipe
            .train
            .validate()
            .map_err(|e| anyhow!("the [train] config after overrides is not valid: {e}"))?;
        Ok(Settings { recipe })
    }

    /// The iteration's config (the recipe's `train`).
    pub fn train(&self) -> &TrainConfig {
        &self.recipe.train
    }

    /// The dotted paths of the fields that are unset (`None`, so absent from [`Self::to_toml`]:
    /// TOML has no null), e.g. `train.reward_clip_range`, in tree order.
    pub fn unset_fields(&self) -> Result<Vec<String>> {
        fn walk(v: &Value, prefix: &str, out: &mut Vec<String>) {
            if let Value::Object(m) = v {
                for (k, v) in m {
                    let path = format!("{prefix}{k}");
                    match v {
                        Value::Null => out.push(path),
                        Value::Object(_) => walk(v, &format!("{path}."), out),
                        _ => {}
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&serde_json::to_value(&self.recipe)?, "", &mut out);
        Ok(out)
    }

    /// The full configuration as TOML, in the format `--config` reads.
    pub fn to_toml(&self) -> Result<String> {
        let top = strip_nulls(serde_json::to_value(&self.recipe)?);
        Ok(toml::to_string_pretty(&top)?)
    }
}

/// `base` with the keys of `changes` replaced (tables merged key by key); a key `base` does not
/// have (at any depth), or a value that does not deserialize, is an error naming the key's path
/// and `source`.
fn apply<T: Serialize + DeserializeOwned>(base: &T, changes: &Map<String, Value>, source: &str) -> Result<T> {
    let base_json = serde_json::to_value(base)?;
    check_keys(&base_json, changes, source, "")?;
    let mut merged = base_json.clone();
    for (key, value) in changes {
        // Try each top-level key alone first, so that the error names the one at fault.
        let mut single = base_json.clone();
        merge(&mut single, key, value.clone());
        if let Err(e) = serde_json::from_value::<T>(single) {
            bail!("{source}: config field `{key}` = {value}: {e}");
        }
        merge(&mut merged, key, value.clone());
    }
    serde_json::from_value(merged).with_context(|| format!("{source}: applying the overrides"))
}

/// Errors on the first key of `changes` that `base` lacks, naming its path (`prefix` + key) and,
/// for a key of the recipe before the tree was unified, its new path ([`RENAMED`]). An enum's
/// table (one CamelCase key, e.g. `WarmupConstant`) may name another variant, so its keys are not
/// checked.
fn check_keys(base: &Value, changes: &Map<String, Value>, source: &str, prefix: &str) -> Result<()> {
    let Value::Object(fields) = base else { bail!("{source}: `{prefix}` is not a table") };
    if fields.len() == 1 && fields.keys().all(|k| k.starts_with(|c: char| c.is_ascii_uppercase())) {
        return Ok(());
    }
    for (key, value) in changes {
        let path = format!("{prefix}{key}");
        match (fields.get(key), value) {
            (None, _) => {
                if let Some((_, new)) = RENAMED.iter().find(|(old, _)| *old == path) {
                    bail!(
                        "{source}: `{path}` is now `{new}` (the iteration's knobs live once, under [train])"
                    );
                }
                let mut known: Vec<&str> = fields.keys().map(String::as_str).collect();
                known.sort_unstable();
                bail!("{source}: unknown config field `{path}`; known fields: {}", known.join(", "));
            }
            (Some(sub @ Value::Object(_)), Value::Object(inner)) => {
                check_keys(sub, inner, source, &format!("{path}."))?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Sets `key` of the map `target`, merging objects recursively.
fn merge_into(target: &mut Map<String, Value>, key: &str, value: Value) {
    match (target.get_mut(key), value) {
        (Some(Value::Object(existing)), Value::Object(sub)) => {
            for (k, v) in sub {
                merge_into(existing, &k, v);
            }
        }
        (_, value) => {
            target.insert(key.to_string(), value);
        }
    }
}

/// Sets `key` of the object `target`; objects merge recursively, anything else is replaced.
fn merge(target: &mut Value, key: &str, value: Value) {
    if let Value::Object(fields) = target {
        merge_into(fields, key, value);
    }
}

/// TOML has no null: drop `None` fields (they deserialize back to `None`).
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k, strip_nulls(v))).collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orz_core::schedule::LrSchedule;
    use orz_core::train::Aggregation;

    fn toml(text: &str) -> Overrides {
        Overrides::from_toml(text, "test.toml").unwrap()
    }

    #[test]
    fn no_overrides_is_the_preset_with_the_models_eos() {
        let s = Settings::resolve(Preset::Orz7b, &[], vec![151643]).unwrap();
        assert_eq!(s.recipe.train, Preset::Orz7b.config().train_config(vec![151643]).unwrap());
        assert_eq!(s.recipe.rollout_batch_size, Preset::Orz7b.config().rollout_batch_size);
    }

    #[test]
    fn run_and_train_fields_are_overridden() {
        let o = toml(
            "rollout_batch_size = 3\n[train]\naggregation = \"TokenMean\"\nengine = { max_batch_slots = 7 }\n\
             sampling = { top_k = 5 }\n[train.policy_optimizer.schedule.WarmupConstant]\npeak = 2e-4\n",
        );
        let s = Settings::resolve(Preset::Tiny, &[o], vec![0]).unwrap();
        let t = s.train();
        assert_eq!((s.recipe.rollout_batch_size, t.sampling.top_k), (3, Some(5)));
        assert_eq!(t.aggregation, Aggregation::TokenMean);
        assert_eq!(t.engine.max_batch_slots, 7);
        // Untouched fields of a merged table keep their value.
        assert_eq!(t.engine.kv_budget_bytes, orz_core::train::DEFAULT_ENGINE.kv_budget_bytes);
        assert_eq!(t.policy_optimizer.schedule, LrSchedule::WarmupConstant { peak: 2e-4, warmup_steps: 5 });
    }

    #[test]
    fn later_sources_win_and_set_parses_dotted_paths() {
        let set = Overrides::from_assignments(&[
            "train.n_samples_per_prompt=4".into(),
            "train.eps_clip=0.3".into(),
            "train.engine.max_batch_slots=9".into(),
            "train.memory={activation_checkpointing=true}".into(),
        ])
        .unwrap();
        let file = toml("[train]\nn_samples_per_prompt = 2");
        let s = Settings::resolve(Preset::Tiny, &[file, set], vec![0]).unwrap();
        let t = s.train();
        assert_eq!((t.n_samples_per_prompt, t.eps_clip, t.engine.max_batch_slots), (4, 0.3, 9));
        assert!(t.memory.activation_checkpointing);
        assert!(Overrides::from_assignments(&["oops".into()]).unwrap_err().to_string().contains("KEY=VALUE"));
        let e = Overrides::from_assignments(&["train..x=1".into()]).unwrap_err().to_string();
        assert!(e.contains("not a field path"), "{e}");
    }

    #[test]
    fn bad_keys_and_types_are_named() {
        let err = |o: Overrides| Settings::resolve(Preset::Tiny, &[o], vec![0]).unwrap_err().to_string();
        let e = err(toml("rollout_batch_sise = 3"));
        assert!(e.contains("test.toml") && e.contains("unknown config field `rollout_batch_sise`"), "{e}");
        let e = err(toml("rollout_batch_size = \"many\""));
        assert!(e.contains("`rollout_batch_size`") && e.contains("invalid type"), "{e}");
        let e = err(toml("[train]\naggregation = \"Median\""));
        assert!(e.contains("`train`") && e.contains("Median"), "{e}");
        let e = err(toml("[train]\nengine = { max_batch_slotz = 3 }"));
        assert!(e.contains("unknown config field `train.engine.max_batch_slotz`"), "{e}");
        let e = err(toml("[train]\nprompt_max_len = 100000"));
        assert!(e.contains("prompt_max_len"), "{e}");
        let e = Overrides::from_toml("x = [", "bad.toml").unwrap_err().to_string();
        assert!(e.contains("bad.toml: not valid TOML"), "{e}");
    }

    #[test]
    fn old_spellings_name_the_new_key() {
        let err = |o: Overrides| Settings::resolve(Preset::Tiny, &[o], vec![0]).unwrap_err().to_string();
        let e = err(Overrides::from_assignments(&["eps_clip=0.3".into()]).unwrap());
        assert!(e.contains("`eps_clip` is now `train.eps_clip`"), "{e}");
        let e = err(toml("policy_lr = 1e-4"));
        assert!(
            e.contains("`policy_lr` is now `train.policy_optimizer.schedule.WarmupConstant.peak`"),
            "{e}"
        );
        let e = err(toml("generate_max_len = 10"));
        assert!(e.contains("train.stop.max_new_tokens"), "{e}");
        // Every old spelling names a path that exists in the tree.
        let tree = serde_json::to_value(Preset::Orz7b.config()).unwrap();
        for (old, new) in RENAMED {
            assert!(tree.get(old).is_none(), "`{old}` is still a field");
            let path = new.split_whitespace().next().unwrap();
            let found = path.split('.').try_fold(&tree, |v, k| v.get(k));
            assert!(found.is_some(), "`{old}` -> `{path}` is not in the tree");
        }
    }

    #[test]
    fn the_kl_entropy_and_sampling_options_are_settable_and_checked() {
        let set = Overrides::from_assignments(&[
            "train.kl_coef=0.05".into(),
            "train.kl_estimator=\"k2\"".into(),
            "train.reward_clip_range=[-1.0, 1.0]".into(),
            "train.entropy_coef=0.001".into(),
        ])
        .unwrap();
        let file = toml(
            "[train]\nuse_kl_loss = true\nkl_loss_coef = 0.001\nkl_loss_estimator = \"k1\"\n\
             dynamic_sampling = true\ndynamic_sampling_max_rounds = 3\n",
        );
        let s = Settings::resolve(Preset::Tiny, &[file, set], vec![0]).unwrap();
        let t = s.train();
        use orz_core::ppo::kl::KlEstimator;
        assert_eq!(
            (t.kl_coef, t.kl_estimator, t.reward_clip_range),
            (0.05, KlEstimator::K2, Some([-1.0, 1.0]))
        );
        assert_eq!((t.use_kl_loss, t.kl_loss_coef, t.kl_loss_estimator), (true, 0.001, KlEstimator::K1));
        assert_eq!((t.entropy_coef, t.dynamic_sampling, t.dynamic_sampling_max_rounds), (0.001, true, 3));
        // The dump shows them and reads back.
        let text = s.to_toml().unwrap();
        assert!(
            text.contains("kl_estimator = \"k2\"") && text.contains("dynamic_sampling_max_rounds = 3"),
            "{text}"
        );
        assert_eq!(Settings::resolve(Preset::Tiny, &[toml(&text)], vec![0]).unwrap(), s);
        // The defaults: all off; unset optional fields are listed.
        let d = Settings::resolve(Preset::Orz7b, &[], vec![0]).unwrap();
        assert!(!d.train().uses_reference() && d.train().entropy_coef == 0.0 && !d.train().dynamic_sampling);
        assert!(d.unset_fields().unwrap().contains(&"train.reward_clip_range".to_string()));
        // Bad values are named.
        let err = |o: Overrides| Settings::resolve(Preset::Tiny, &[o], vec![0]).unwrap_err().to_string();
        let e = err(toml("[train]\nkl_coef = -0.1"));
        assert!(e.contains("kl_coef"), "{e}");
        let e = err(toml("[train]\nkl_estimator = \"k4\""));
        assert!(e.contains("k4") && e.contains("k1"), "{e}");
        let e = err(toml("[train]\nreward_clip_range = [1.0, -1.0]"));
        assert!(e.contains("reward_clip_range"), "{e}");
        let e = err(toml("[train]\ndynamic_sampling_max_rounds = 0"));
        assert!(e.contains("dynamic_sampling_max_rounds"), "{e}");
    }

    #[test]
    fn toml_dump_round_trips() {
        for p in Preset::ALL {
            let s = Settings::resolve(p, &[], vec![1, 2]).unwrap();
            let text = s.to_toml().unwrap();
            let back = Settings::resolve(p, &[toml(&text)], vec![1, 2]).unwrap();
            assert_eq!(back, s, "{p}:\n{text}");
        }
    }
}
