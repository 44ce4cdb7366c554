//! Save → load round trips of tiny random Qwen2 models, and the errors bad model directories get.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use orz_core::backend::{Backend, DType};
use orz_core::model::{Head, Qwen2Config, VALUE_HEAD, parameter_specs};
use orz_core::rng::Rng;
use orz_hf::{
    Error, INDEX_FILE, SINGLE_FILE, load_model, load_tensors, load_tensors_report, read_config, save_model,
    save_tensors, write_config,
};
use orz_reference::{Reference, Tensor};

/// A fresh empty directory under the system temp dir, unique per test, removed on drop.
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(test: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("orz-hf-test-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    TempDir(dir)
}

/// Every parameter of `head` for `config`, with seeded normal values (some large, to exercise
/// bf16 rounding over many binades).
fn random_model(b: &Reference, config: &Qwen2Config, head: Head, seed: u64) -> Vec<(String, Tensor)> {
    let mut rng = Rng::seed_from_u64(seed);
    parameter_specs(config, head)
        .into_iter()
        .map(|s| {
            let n: usize = s.shape.iter().product();
            let data: Vec<f32> =
                (0..n).map(|i| (rng.normal() * if i % 7 == 0 { 300.0 } else { 0.1 }) as f32).collect();
            (s.name, b.tensor_f32(&data, &s.shape, DType::F32).expect("tensor"))
        })
        .collect()
}

fn values(b: &Reference, t: &Tensor) -> Vec<f64> {
    b.to_host_f64(t).expect("host values")
}

/// Checks that `loaded` holds every tensor of `original`, each value mapped through `round`.
fn assert_loaded(
    b: &Reference,
    original: &[(String, Tensor)],
    loaded: &BTreeMap<String, Tensor>,
    round: impl Fn(f64) -> f64,
) {
    assert_eq!(loaded.len(), original.len());
    for (name, t) in original {
        let l = &loaded[name];
        assert_eq!(b.shape(l), b.shape(t), "{name}");
        let want: Vec<f64> = values(b, t).into_iter().map(&round).collect();
        assert_eq!(values(b, l), want, "{name}");
    }
}

/// F32 is exact; BF16 and F16 round each value once ([`DType::round`]), and saving what was
/// loaded changes nothing.
#[test]
fn single_file_round_trips_in_every_float_dtype() {
    let b = Reference::new();
    let config = Qwen2Config::tiny_test();
    let model = random_model(&b, &config, Head::Lm, 2);
    for dtype in DType::FLOATS {
        let dir = temp_dir(&format!("single-{dtype}"));
        save_model(&b, &dir, &config, Head::Lm, &model, dtype, None).unwrap();
        assert!(dir.join(SINGLE_FILE).is_file() && !dir.join(INDEX_FILE).exists());
        let (c, loaded) = load_model(&b, &dir, Head::Lm, dtype).unwrap();
        assert_eq!(c, config);
        assert_loaded(&b, &model, &loaded, |x| dtype.round(x));
        assert!(loaded.values().all(|t| b.dtype(t) == dtype));
        let again: Vec<(String, Tensor)> = loaded.clone().into_iter().collect();
        save_tensors(&b, &dir, &again, dtype, None).unwrap();
        let reloaded = load_tensors(&b, &dir, &parameter_specs(&config, Head::Lm), DType::F32).unwrap();
        for (name, t) in &loaded {
            assert_eq!(values(&b, &reloaded[name]), values(&b, t), "{name}");
        }
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let torch = orz_hf::config::torch_dtype_name(dtype, &dir).unwrap();
        assert!(text.contains(&format!("\"torch_dtype\": \"{torch}\"")), "{text}");
    }
}

#[test]
fn sharded_round_trip() {
    let b = Reference::new();
    let config = Qwen2Config::tiny_test();
    let model = random_model(&b, &config, Head::Value, 3);
    let dir = temp_dir("sharded");
    // A stale single file from an earlier save must go, or it would shadow the shards.
    save_tensors(&b, &dir, &model, DType::F32, None).unwrap();
    let written = save_tensors(&b, &dir, &model, DType::BF16, Some(8 * 1024)).unwrap();
    let shards: Vec<_> = written.iter().filter(|p| !p.ends_with(INDEX_FILE)).collect();
    assert!(shards.len() >= 3, "{written:?}");
    assert!(!dir.join(SINGLE_FILE).exists());
    let n = shards.len();
    for (i, p) in shards.iter().enumerate() {
        let name = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
        assert!(p.ends_with(&name), "{p:?}");
        assert!(std::fs::metadata(p).unwrap().len() <= 8 * 1024 + 4096, "{p:?}");
    }
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(INDEX_FILE)).unwrap()).unwrap();
    let total: u64 = model.iter().map(|(_, t)| b.shape(t).iter().product::<usize>() as u64 * 2).sum();
    assert_eq!(index["metadata"]["total_size"], total);
    assert_eq!(index["weight_map"].as_object().unwrap().len(), model.len());
    write_config(&dir, &config, DType::BF16).unwrap();
    let (_, loaded) = load_model(&b, &dir, Head::Value, DType::F32).unwrap();
    assert_loaded(&b, &model, &loaded, |x| DType::BF16.round(x));
    // Back to one file: the index and shards are removed.
    save_tensors(&b, &dir, &model, DType::F32, None).unwrap();
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn config_round_trip() {
    let dir = temp_dir("config");
    let configs = [
        Qwen2Config::tiny_test(),
        Qwen2Config {
            tie_word_embeddings: true,
            bos_token_id: Some(3),
            eos_token_ids: vec![1, 2],
            rope_theta: 1_000_000.0,
            rms_norm_eps: 1e-5,
            ..Qwen2Config::tiny_test()
        },
    ];
    for c in configs {
        write_config(&dir, &c, DType::F32).unwrap();
        assert_eq!(read_config(&dir).unwrap(), c);
    }
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    for needle in
        ["\"Qwen2ForCausalLM\"", "\"model_type\": \"qwen2\"", "\"hidden_act\": \"silu\"", "\"float32\""]
    {
        assert!(text.contains(needle), "{needle} in {text}");
    }
}

#[test]
fn tied_embeddings_need_no_lm_head_and_extras_are_reported() {
    let b = Reference::new();
    let config = Qwen2Config { tie_word_embeddings: true, ..Qwen2Config::tiny_test() };
    let untied = random_model(&b, &Qwen2Config::tiny_test(), Head::Lm, 4);
    let dir = temp_dir("tied");
    // A checkpoint with lm_head.weight and a buffer: both unused by a tied policy.
    let mut named = untied.clone();
    named.push(("model.rotary_emb.inv_freq".into(), b.tensor_f32(&[1.0; 4], &[4], DType::F32).unwrap()));
    save_tensors(&b, &dir, &named, DType::F32, None).unwrap();
    let specs = parameter_specs(&config, Head::Lm);
    let loaded = load_tensors_report(&b, &dir, &specs, DType::F32).unwrap();
    assert_eq!(loaded.tensors.len(), specs.len());
    assert_eq!(loaded.unused, vec!["lm_head.weight".to_string(), "model.rotary_emb.inv_freq".to_string()]);
    // Saving a tied model writes no lm_head.
    let tied_model: Vec<_> = untied.into_iter().filter(|(n, _)| n != "lm_head.weight").collect();
    let dir2 = temp_dir("tied2");
    save_model(&b, &dir2, &config, Head::Lm, &tied_model, DType::F32, None).unwrap();
    let (_, loaded) = load_model(&b, &dir2, Head::Lm, DType::F32).unwrap();
    assert!(!loaded.contains_key("lm_head.weight"));
}

/// The message of an error, checked to contain every needle.
fn assert_message(err: Error, needles: &[&str]) {
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "`{n}` not in: {msg}");
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

/// A valid config.json text for the tiny model, with `edit` applied to its JSON object.
fn config_text(edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> String {
    let mut v = orz_hf::config::config_json(&Qwen2Config::tiny_test(), DType::BF16, Path::new("x"))
        .expect("config json");
    edit(v.as_object_mut().expect("an object"));
    v.to_string()
}

#[test]
fn config_errors_name_file_and_field() {
    let dir = temp_dir("config-errors");
    let path = dir.join("config.json");
    let p = path.to_str().unwrap();
    assert_message(read_config(&dir).unwrap_err(), &[p, "reading failed"]);
    write(&dir, "config.json", "{\"vocab_size\": 64,");
    assert_message(read_config(&dir).unwrap_err(), &[p, "malformed JSON"]);
    write(&dir, "config.json", &config_text(|o| drop(o.remove("hidden_size"))));
    assert_message(read_config(&dir).unwrap_err(), &[p, "missing field `hidden_size`"]);
    write(&dir, "config.json", &config_text(|o| drop(o.insert("rope_theta".into(), "abc".into()))));
    assert_message(
        read_config(&dir).unwrap_err(),
        &[p, "field `rope_theta` has the wrong type: expected a number, got \"abc\""],
    );
    write(&dir, "config.json", &config_text(|o| drop(o.insert("num_hidden_layers".into(), (-2).into()))));
    assert_message(
        read_config(&dir).unwrap_err(),
        &[p, "`num_hidden_layers`", "non-negative integer, got -2"],
    );
    write(&dir, "config.json", &config_text(|o| drop(o.insert("model_type".into(), "llama".into()))));
    assert_message(read_config(&dir).unwrap_err(), &[p, "\"llama\"", "qwen2"]);
    write(&dir, "config.json", &config_text(|o| drop(o.insert("hidden_act".into(), "gelu".into()))));
    assert_message(read_config(&dir).unwrap_err(), &[p, "hidden_act", "gelu"]);
    write(&dir, "config.json", &config_text(|o| drop(o.insert("num_key_value_heads".into(), 3.into()))));
    assert_message(read_config(&dir).unwrap_err(), &[p, "num_key_value_heads"]);
    write(
        &dir,
        "config.json",
        &config_text(|o| drop(o.insert("eos_token_id".into(), serde_json::json!([1, "x"])))),
    );
    assert_message(read_config(&dir).unwrap_err(), &[p, "eos_token_id", "\"x\""]);
    write(
        &dir,
        "config.json",
        &config_text(|o| drop(o.insert("rope_scaling".into(), serde_json::json!({"type": "yarn"})))),
    );
    assert_message(read_config(&dir).unwrap_err(), &[p, "rope_scaling"]);
    write(
        &dir,
        "config.json",
        &config_text(|o| drop(o.insert("layer_types".into(), serde_json::json!(["sliding_attention"])))),
    );
    assert_message(read_config(&dir).unwrap_err(), &[p, "layer_types", "sliding_attention"]);
    // transformers 5 writes `rope_parameters` instead of `rope_theta`.
    let v5 = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transformers_v5_config.json"),
    )
    .unwrap();
    std::fs::write(&path, &v5).unwrap();
    let c = read_config(&dir).unwrap();
    assert_eq!(c, Qwen2Config::tiny_test());
    std::fs::write(&path, v5.replace("\"rope_type\": \"default\"", "\"rope_type\": \"yarn\"")).unwrap();
    assert_message(read_config(&dir).unwrap_err(), &[p, "rope_parameters", "yarn"]);
    std::fs::write(&path, v5.replace("\"rope_theta\": 10000.0", "\"rope_theta\": \"x\"")).unwrap();
    assert_message(read_config(&dir).unwrap_err(), &[p, "`rope_parameters.rope_theta` has the wrong type"]);
    // Optional fields: eos as an int, bos null, kv heads absent (= attention heads).
    write(
        &dir,
        "config.json",
        &config_text(|o| {
            o.insert("eos_token_id".into(), 5.into());
            o.insert("bos_token_id".into(), serde_json::Value::Null);
            o.remove("num_key_value_heads");
        }),
    );
    let c = read_config(&dir).unwrap();
    assert_eq!((c.eos_token_ids, c.bos_token_id, c.num_key_value_heads), (vec![5], None, 4));
}

#[test]
fn tensor_errors_name_file_and_tensor() {
    let b = Reference::new();
    let config = Qwen2Config::tiny_test();
    let model = random_model(&b, &config, Head::Lm, 5);
    let specs = parameter_specs(&config, Head::Lm);
    let dir = temp_dir("tensor-errors");
    let file = dir.join(SINGLE_FILE);
    let f = file.to_str().unwrap();
    assert_message(
        load_tensors(&b, &dir, &specs, DType::F32).unwrap_err(),
        &[dir.to_str().unwrap(), SINGLE_FILE],
    );

    // Missing tensor.
    let without: Vec<_> =
        model.iter().filter(|(n, _)| !n.ends_with("1.mlp.up_proj.weight")).cloned().collect();
    save_tensors(&b, &dir, &without, DType::F32, None).unwrap();
    let err = load_tensors(&b, &dir, &specs, DType::F32).unwrap_err();
    assert!(matches!(&err, Error::MissingTensor { name, .. } if name == "model.layers.1.mlp.up_proj.weight"));
    assert_message(err, &[f, "tensor `model.layers.1.mlp.up_proj.weight` is missing"]);

    // Mis-shaped tensor.
    let mut wrong = model.clone();
    let k = wrong.iter().position(|(n, _)| n == "model.layers.0.self_attn.k_proj.bias").unwrap();
    wrong[k].1 = b.tensor_f32(&[0.0; 17], &[17], DType::F32).unwrap();
    save_tensors(&b, &dir, &wrong, DType::F32, None).unwrap();
    assert_message(
        load_tensors(&b, &dir, &specs, DType::F32).unwrap_err(),
        &[f, "`model.layers.0.self_attn.k_proj.bias` has shape [17], expected [16]"],
    );

    // Truncated file.
    save_tensors(&b, &dir, &model, DType::F32, None).unwrap();
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 10]).unwrap();
    assert_message(load_tensors(&b, &dir, &specs, DType::F32).unwrap_err(), &[f, "truncated"]);

    // Absurd header length.
    let mut absurd = bytes.clone();
    absurd[..8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    std::fs::write(&file, &absurd).unwrap();
    assert_message(
        load_tensors(&b, &dir, &specs, DType::F32).unwrap_err(),
        &[f, "header length 1152921504606846976"],
    );

    // Garbage header and a file too short to hold a header length.
    let mut garbage = bytes.clone();
    garbage[8..16].copy_from_slice(b"not json");
    std::fs::write(&file, &garbage).unwrap();
    assert_message(
        load_tensors(&b, &dir, &specs, DType::F32).unwrap_err(),
        &[f, "invalid safetensors header"],
    );
    std::fs::write(&file, b"abc").unwrap();
    assert_message(load_tensors(&b, &dir, &specs, DType::F32).unwrap_err(), &[f, "not a safetensors file"]);

    // Sharded: a tensor absent from the index names the index; a missing shard names the shard.
    std::fs::remove_file(&file).unwrap();
    let written = save_tensors(&b, &dir, &without, DType::F32, Some(4096)).unwrap();
    let index = dir.join(INDEX_FILE);
    assert_message(
        load_tensors(&b, &dir, &specs, DType::F32).unwrap_err(),
        &[index.to_str().unwrap(), "`model.layers.1.mlp.up_proj.weight` is missing"],
    );
    std::fs::remove_file(&written[1]).unwrap();
    let specs_without: Vec<_> =
        specs.iter().filter(|s| !s.name.ends_with("1.mlp.up_proj.weight")).cloned().collect();
    assert_message(
        load_tensors(&b, &dir, &specs_without, DType::F32).unwrap_err(),
        &[written[1].to_str().unwrap(), "opening failed"],
    );
}

#[test]
fn save_model_rejects_incomplete_or_foreign_tensors() {
    let b = Reference::new();
    let config = Qwen2Config::tiny_test();
    let dir = temp_dir("save-errors");
    let mut model = random_model(&b, &config, Head::Lm, 6);
    let err = save_model(&b, &dir, &config, Head::Value, &model, DType::F32, None).unwrap_err();
    assert_message(err, &[VALUE_HEAD, "missing"]);
    model.pop();
    let err = save_model(&b, &dir, &config, Head::Lm, &model, DType::F32, None).unwrap_err();
    assert_message(err, &["lm_head.weight", "missing"]);
    let dup = vec![model[0].clone(), model[0].clone()];
    assert_message(save_tensors(&b, &dir, &dup, DType::F32, None).unwrap_err(), &["given twice"]);
    assert_message(save_tensors(&b, &dir, &dup[..1], DType::I64, None).unwrap_err(), &["float dtype"]);
}
