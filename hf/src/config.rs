//! `config.json` of a Hugging Face Qwen2 / Qwen2.5 model to and from [`Qwen2Config`].

use std::path::Path;

use orz_core::backend::DType;
use orz_core::model::Qwen2Config;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::fs::write_atomic;

/// The file name of a model's configuration.
pub const CONFIG_FILE: &str = "config.json";

/// Reads `dir/config.json` into a validated [`Qwen2Config`].
///
/// Required fields: `model_type` (`"qwen2"`), `vocab_size`, `hidden_size`, `intermediate_size`,
/// `num_hidden_layers`, `num_attention_heads`, `max_position_embeddings`, `rope_theta`,
/// `rms_norm_eps` (or, as transformers 5 writes it, `rope_parameters: {"rope_theta": ..,
/// "rope_type": "default"}`). Optional, with Hugging Face's defaults: `num_key_value_heads` (=
/// `num_attention_heads`), `tie_word_embeddings` (false), `bos_token_id` (none; `null` allowed),
/// `eos_token_id` (one id or a list; none when absent), `hidden_act` (must be `"silu"`).
/// Features orz-rs does not implement are rejected: `use_sliding_window: true`, a non-null
/// `rope_scaling`, a `rope_type` other than `"default"`, `layer_types` other than
/// `"full_attention"`. Other fields are ignored. Errors name the file and the field.
pub fn read_config(dir: impl AsRef<Path>) -> Result<Qwen2Config> {
    let path = dir.as_ref().join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, "reading", e))?;
    parse_config(&text, &path)
}

/// Parses the text of a `config.json` (see [`read_config`]); `path` only names the file in errors.
pub fn parse_config(text: &str, path: &Path) -> Result<Qwen2Config> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| Error::invalid(path, format!("malformed JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(Error::invalid(path, format!("expected a JSON object, got {}", describe(&value))));
    };
    let f = Fields { obj: &obj, path };
    let model_type = f.string("model_type")?.ok_or_else(|| f.missing("model_type"))?;
    if model_type != "qwen2" {
        return Err(Error::invalid(
            path,
            format!(
                "`model_type` is \"{model_type}\", but orz-rs implements only \"qwen2\" (Qwen2 / Qwen2.5)"
            ),
        ));
    }
    if let Some(act) = f.string("hidden_act")?
        && act != "silu"
    {
        return Err(Error::invalid(path, format!("`hidden_act` is \"{act}\", but Qwen2 needs \"silu\"")));
    }
    if f.opt_bool("use_sliding_window")? == Some(true) {
        return Err(Error::invalid(path, "`use_sliding_window` is true, which orz-rs does not implement"));
    }
    if let Some(v) = obj.get("rope_scaling").filter(|v| !v.is_null()) {
        return Err(Error::invalid(
            path,
            format!("`rope_scaling` is {}, but orz-rs implements only plain RoPE (null)", describe(v)),
        ));
    }
    if let Some(kinds) = f.get("layer_types") {
        let full = |k: &Value| k.as_str() == Some("full_attention");
        if !kinds.as_array().is_some_and(|ks| ks.iter().all(full)) {
            return Err(Error::invalid(
                path,
                format!(
                    "`layer_types` is {}, but orz-rs implements only \"full_attention\"",
                    describe(kinds)
                ),
            ));
        }
    }
    let num_attention_heads = f.usize("num_attention_heads")?;
    let config = Qwen2Config {
        vocab_size: f.usize("vocab_size")?,
        hidden_size: f.usize("hidden_size")?,
        intermediate_size: f.usize("intermediate_size")?,
        num_hidden_layers: f.usize("num_hidden_layers")?,
        num_attention_heads,
        num_key_value_heads: f.opt_usize("num_key_value_heads")?.unwrap_or(num_attention_heads),
        rope_theta: f.rope_theta()?,
        rms_norm_eps: f.f64("rms_norm_eps")?,
        tie_word_embeddings: f.opt_bool("tie_word_embeddings")?.unwrap_or(false),
        max_position_embeddings: f.usize("max_position_embeddings")?,
        bos_token_id: f.opt_token("bos_token_id")?,
        eos_token_ids: f.eos_ids()?,
    };
    config.validate().map_err(|e| Error::invalid(path, e.to_string()))?;
    Ok(config)
}

/// Writes `dir/config.json` (atomically: a temporary file renamed) in the form transformers'
/// `Qwen2Config` loads: `architectures: ["Qwen2ForCausalLM"]`, `model_type: "qwen2"`,
/// `hidden_act: "silu"`, `torch_dtype` from `dtype` (a float dtype), and every field of `config`.
/// `eos_token_id` is written as one id when there is one, else as a list.
pub fn write_config(dir: impl AsRef<Path>, config: &Qwen2Config, dtype: DType) -> Result<()> {
    let path = dir.as_ref().join(CONFIG_FILE);
    config.validate().map_err(|e| Error::invalid(&path, e.to_string()))?;
    let text = serde_json::to_string_pretty(&config_json(config, dtype, &path)?)
        .map_err(|e| Error::invalid(&path, format!("serializing the config: {e}")))?;
    write_atomic(&path, format!("{text}\n").as_bytes())
}

/// The JSON object [`write_config`] writes.
pub fn config_json(config: &Qwen2Config, dtype: DType, path: &Path) -> Result<Value> {
    let eos = match config.eos_token_ids.as_slice() {
        [one] => json!(one),
        many => json!(many),
    };
    Ok(json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_act": "silu",
        "torch_dtype": torch_dtype_name(dtype, path)?,
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "max_position_embeddings": config.max_position_embeddings,
        "rope_theta": config.rope_theta,
        "rms_norm_eps": config.rms_norm_eps,
        "tie_word_embeddings": config.tie_word_embeddings,
        "bos_token_id": config.bos_token_id,
        "eos_token_id": eos,
        "rope_scaling": null,
        "use_sliding_window": false,
        "sliding_window": config.max_position_embeddings,
        "max_window_layers": config.num_hidden_layers,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
        "use_cache": true,
    }))
}

/// PyTorch's name of a float dtype, as in `torch_dtype` (`"bfloat16"`, `"float16"`, `"float32"`).
pub fn torch_dtype_name(dtype: DType, path: &Path) -> Result<&'static str> {
    match dtype {
        DType::F32 => Ok("float32"),
        DType::BF16 => Ok("bfloat16"),
        DType::F16 => Ok("float16"),
        other => Err(Error::invalid(path, format!("weights must have a float dtype, not {other}"))),
    }
}

/// A short rendering of a JSON value for error messages (strings quoted, long values cut).
fn describe(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 { format!("{}...", s.chars().take(60).collect::<String>()) } else { s }
}

/// Typed access to the fields of one config object, with errors naming the file and field.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: &'a Path,
}

impl Fields<'_> {
    fn missing(&self, name: &str) -> Error {
        Error::invalid(self.path, format!("missing field `{name}`"))
    }

    fn wrong(&self, name: &str, expected: &str, got: &Value) -> Error {
        Error::invalid(
            self.path,
            format!("field `{name}` has the wrong type: expected {expected}, got {}", describe(got)),
        )
    }

    /// The value of a field, `None` when absent or `null`.
    fn get(&self, name: &str) -> Option<&Value> {
        self.obj.get(name).filter(|v| !v.is_null())
    }

    fn opt_usize(&self, name: &str) -> Result<Option<usize>> {
        self.get(name)
            .map(|v| {
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| self.wrong(name, "a non-negative integer", v))
            })
            .transpose()
    }

    fn usize(&self, name: &str) -> Result<usize> {
        self.opt_usize(name)?.ok_or_else(|| self.missing(name))
    }

    fn f64(&self, name: &str) -> Result<f64> {
        let v = self.get(name).ok_or_else(|| self.missing(name))?;
        v.as_f64().ok_or_else(|| self.wrong(name, "a number", v))
    }

    /// `rope_theta` (transformers 4) or `rope_parameters.rope_theta` with `rope_type` `"default"`
    /// (transformers 5 writes only the latter).
    fn rope_theta(&self) -> Result<f64> {
        const NAME: &str = "rope_parameters";
        let Some(params) = self.get(NAME).filter(|_| self.get("rope_theta").is_none()) else {
            return self.f64("rope_theta");
        };
        let obj = params.as_object().ok_or_else(|| self.wrong(NAME, "an object", params))?;
        let inner = Fields { obj, path: self.path };
        let kind = inner.string("rope_type").map_err(|_| self.wrong(NAME, "a `rope_type` string", params))?;
        if kind.is_some_and(|k| k != "default") {
            return Err(Error::invalid(
                self.path,
                format!(
                    "`{NAME}` is {}, but orz-rs implements only plain RoPE (\"default\")",
                    describe(params)
                ),
            ));
        }
        let v = inner.get("rope_theta").ok_or_else(|| self.missing("rope_parameters.rope_theta"))?;
        v.as_f64().ok_or_else(|| self.wrong("rope_parameters.rope_theta", "a number", v))
    }

    fn opt_bool(&self, name: &str) -> Result<Option<bool>> {
        self.get(name).map(|v| v.as_bool().ok_or_else(|| self.wrong(name, "a boolean", v))).transpose()
    }

    fn string(&self, name: &str) -> Result<Option<&str>> {
        self.get(name).map(|v| v.as_str().ok_or_else(|| self.wrong(name, "a string", v))).transpose()
    }

    fn token(&self, name: &str, v: &Value) -> Result<u32> {
        v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| self.wrong(name, "a token id", v))
    }

    fn opt_token(&self, name: &str) -> Result<Option<u32>> {
        self.get(name).map(|v| self.token(name, v)).transpose()
    }

    /// `eos_token_id`: one id, a list of ids, or absent (no ids).
    fn eos_ids(&self) -> Result<Vec<u32>> {
        const NAME: &str = "eos_token_id";
        match self.get(NAME) {
            None => Ok(Vec::new()),
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|v| {
                    self.token(NAME, v).map_err(|_| self.wrong(NAME, "a token id or a list of token ids", v))
                })
                .collect(),
            Some(v) => self
                .token(NAME, v)
                .map(|id| vec![id])
                .map_err(|_| self.wrong(NAME, "a token id or a list of token ids", v)),
        }
    }
}
