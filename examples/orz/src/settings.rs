//! [`Settings`]: a preset's [`RecipeConfig`] and the [`TrainConfig`] derived from it, with any
//! field overridden from a TOML file (`--config FILE.toml`) or `--set key=value`.
//!
//! The TOML file's top-level keys are [`RecipeConfig`] fields; its `[train]` table overrides
//! [`TrainConfig`] fields after the recipe is applied (aggregation, estimator, engine, sampling,
//! optimizers...). Example:
//!
//! ```toml
//! rollout_batch_size = 32
//! policy_lr = 2e-4
//! [train]
//! aggregation = "TokenMean"
//! engine = { max_batch_slots = 64, kv_budget_bytes = 1073741824 }
//! ```
//!
//! An unknown key or a value of the wrong type is an error naming the key and the file, before
//! any work starts.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use orz_core::recipe::{Preset, RecipeConfig};
use orz_core::train::TrainConfig;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The recipe and the iteration config of one run, after every override.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The recipe (preset values plus top-level overrides).
    pub recipe: RecipeConfig,
    /// The iteration config: `TrainConfig::from_recipe` plus `[train]` overrides.
    pub train: TrainConfig,
}

/// Overrides of one source (a file or the command line), kept apart for error messages.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Where they came from (`path/to/file.toml`, `--set`).
    pub source: String,
    /// Top-level keys: [`RecipeConfig`] fields.
    pub recipe: Map<String, Value>,
    /// The `[train]` table: [`TrainConfig`] fields.
    pub train: Map<String, Value>,
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
        let Value::Object(mut recipe) = serde_json::to_value(table)? else {
            bail!("{source}: a TOML document is a table");
        };
        let train = match recipe.remove("train") {
            None => Map::new(),
            Some(Value::Object(t)) => t,
            Some(other) => bail!("{source}: `train` must be a table, got {other}"),
        };
        Ok(Overrides { source: source.to_string(), recipe, train })
    }

    /// `key=value` pairs from the command line; `train.key=value` goes to the `[train]` table.
    /// The value is read as TOML (`3`, `1e-4`, `"TokenMean"`, `true`), or as a string if that
    /// fails.
    pub fn from_assignments(pairs: &[String]) -> Result<Overrides> {
        let mut out = Overrides { source: "--set".into(), ..Overrides::default() };
        for pair in pairs {
            let (key, raw) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("--set {pair}: expected KEY=VALUE, e.g. policy_lr=1e-4"))?;
            let value: Value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
                Ok(mut t) => serde_json::to_value(t.remove("v"))?,
                Err(_) => Value::String(raw.to_string()),
            };
            match key.trim().strip_prefix("train.") {
                Some(k) => out.train.insert(k.to_string(), value),
                None => out.recipe.insert(key.trim().to_string(), value),
            };
        }
        Ok(out)
    }
}

impl Settings {
    /// The preset's settings with `overrides` applied in order; `eos_token_ids` come from the
    /// model's config.
    pub fn resolve(preset: Preset, overrides: &[Overrides], eos_token_ids: Vec<u32>) -> Result<Settings> {
        let mut recipe = preset.config();
        for o in overrides {
            recipe = apply(&recipe, &o.recipe, &o.source, "")?;
        }
        let mut train = TrainConfig::from_recipe(&recipe, eos_token_ids)
            .map_err(|e| anyhow!("the recipe after overrides is not valid: {e}"))?;
        for o in overrides {
            train = apply(&train, &o.train, &o.source, "train.")?;
        }
        train.validate().map_err(|e| anyhow!("the [train] config after overrides is not valid: {e}"))?;
        Ok(Settings { recipe, train })
    }

    /// The full configuration as TOML, in the format `--config` reads.
    pub fn to_toml(&self) -> Result<String> {
        let Value::Object(mut top) = serde_json::to_value(&self.recipe)? else {
            bail!("the recipe does not serialize to a table");
        };
        top.insert("train".into(), serde_json::to_value(&self.train)?);
        let top = strip_nulls(Value::Object(top));
        Ok(toml::to_string_pretty(&top)?)
    }
}

/// `base` with the keys of `changes` replaced (tables merged key by key); a key `base` does not
/// have, or a value that does not deserialize, is an error naming `prefix` + key and `source`.
fn apply<T: Serialize + DeserializeOwned>(
    base: &T,
    changes: &Map<String, Value>,
    source: &str,
    prefix: &str,
) -> Result<T> {
    let base_json = serde_json::to_value(base)?;
    let mut merged = base_json.clone();
    for (key, value) in changes {
        let Value::Object(fields) = &base_json else { bail!("{source}: the config is not a table") };
        if !fields.contains_key(key) {
            let mut known: Vec<&str> = fields.keys().map(String::as_str).collect();
            known.sort_unstable();
            bail!("{source}: unknown config field `{prefix}{key}`; known fields: {}", known.join(", "));
        }
        // Try each key alone first, so that the error names the one at fault.
        let mut single = base_json.clone();
        merge(&mut single, key, value.clone());
        if let Err(e) = serde_json::from_value::<T>(single) {
            bail!("{source}: config field `{prefix}{key}` = {value}: {e}");
        }
        merge(&mut merged, key, value.clone());
    }
    serde_json::from_value(merged).with_context(|| format!("{source}: applying the overrides"))
}

/// Sets `key` of the object `target`; objects merge recursively, anything else is replaced.
fn merge(target: &mut Value, key: &str, value: Value) {
    let Value::Object(fields) = target else { return };
    match (fields.get_mut(key), value) {
        (Some(existing @ Value::Object(_)), Value::Object(sub)) => {
            for (k, v) in sub {
                merge(existing, &k, v);
            }
        }
        (_, value) => {
            fields.insert(key.to_string(), value);
        }
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
    use orz_core::train::Aggregation;

    fn toml(text: &str) -> Overrides {
        Overrides::from_toml(text, "test.toml").unwrap()
    }

    #[test]
    fn no_overrides_is_the_preset() {
        let s = Settings::resolve(Preset::Orz7b, &[], vec![151643]).unwrap();
        assert_eq!(s.recipe, Preset::Orz7b.config());
        assert_eq!(s.train, TrainConfig::from_recipe(&Preset::Orz7b.config(), vec![151643]).unwrap());
    }

    #[test]
    fn recipe_and_train_fields_are_overridden() {
        let o = toml(
            "rollout_batch_size = 3\npolicy_lr = 2e-4\ntop_k = 5\n[train]\naggregation = \"TokenMean\"\nengine = { max_batch_slots = 7 }\n",
        );
        let s = Settings::resolve(Preset::Tiny, &[o], vec![0]).unwrap();
        assert_eq!((s.recipe.rollout_batch_size, s.recipe.policy_lr, s.recipe.top_k), (3, 2e-4, Some(5)));
        assert_eq!(s.train.aggregation, Aggregation::TokenMean);
        assert_eq!(s.train.engine.max_batch_slots, 7);
        // Untouched fields of a merged table keep their value.
        assert_eq!(s.train.engine.kv_budget_bytes, orz_core::train::DEFAULT_ENGINE.kv_budget_bytes);
        assert_eq!(s.train.sampling.top_k, Some(5));
    }

    #[test]
    fn later_sources_win_and_set_parses_values() {
        let set =
            Overrides::from_assignments(&["n_samples_per_prompt=4".into(), "train.eps_clip=0.3".into()])
                .unwrap();
        let s = Settings::resolve(Preset::Tiny, &[toml("n_samples_per_prompt = 2"), set], vec![0]).unwrap();
        assert_eq!((s.recipe.n_samples_per_prompt, s.train.eps_clip), (4, 0.3));
        assert!(Overrides::from_assignments(&["oops".into()]).unwrap_err().to_string().contains("KEY=VALUE"));
    }

    #[test]
    fn bad_keys_and_types_are_named() {
        let err = |o: Overrides| Settings::resolve(Preset::Tiny, &[o], vec![0]).unwrap_err().to_string();
        let e = err(toml("rollout_batch_sise = 3"));
        assert!(e.contains("test.toml") && e.contains("unknown config field `rollout_batch_sise`"), "{e}");
        let e = err(toml("rollout_batch_size = \"many\""));
        assert!(e.contains("`rollout_batch_size`") && e.contains("invalid type"), "{e}");
        let e = err(toml("[train]\naggregation = \"Median\""));
        assert!(e.contains("`train.aggregation`"), "{e}");
        let e = err(toml("prompt_max_len = 100000"));
        assert!(e.contains("prompt_max_len"), "{e}");
        let e = Overrides::from_toml("x = [", "bad.toml").unwrap_err().to_string();
        assert!(e.contains("bad.toml: not valid TOML"), "{e}");
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
