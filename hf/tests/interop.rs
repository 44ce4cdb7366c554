//! Interop with the Python `safetensors` package: a fixture it wrote (see
//! `fixtures/gen_python_fixture.py`) loads here; and, on demand (`--ignored`), model directories
//! written here for `fixtures/check_rust_files.py` to load in Python.

use std::path::PathBuf;

use orz_core::backend::{Backend, DType};
use orz_core::model::{Head, ParamSpec, Qwen2Config, parameter_specs};
use orz_core::rng::Rng;
use orz_hf::{Error, SafetensorsFile, load_tensors, save_model};
use orz_reference::Reference;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn file_written_by_python_safetensors_loads() {
    let path = fixture().join("python_tiny.safetensors");
    let mut file = SafetensorsFile::open(&path).unwrap();
    assert_eq!(file.user_metadata().unwrap()["format"], "pt");
    let (shape, emb) = file.read_f32("model.embed_tokens.weight").unwrap();
    assert_eq!(shape, vec![4, 6]);
    assert_eq!(emb, (0..24).map(|i| i as f32 * 0.25 - 3.0).collect::<Vec<_>>());
    let (shape, norm) = file.read_f32("model.norm.weight").unwrap();
    assert_eq!(shape, vec![16]);
    let want: Vec<f32> = (0..16).map(|i| DType::F16.round((f64::from(i) - 8.0) / 3.0) as f32).collect();
    assert_eq!(norm, want);
    let err = file.read_f32("position_ids").unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }));
    let msg = err.to_string();
    assert!(msg.contains("`position_ids`") && msg.contains("I64") && msg.contains("python_tiny"), "{msg}");

    // Through the directory API too (a single-file checkpoint), with an exact shape check.
    let dir = std::env::temp_dir().join(format!("orz-hf-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&path, dir.join("model.safetensors")).unwrap();
    let b = Reference::new();
    let specs = [ParamSpec { name: "model.norm.weight".into(), shape: vec![16] }];
    let t = load_tensors(&b, &dir, &specs, DType::F16).unwrap();
    assert_eq!(b.to_host_f32(&t["model.norm.weight"]).unwrap(), want);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes `f32/`, `f16/` (one file each) and `bf16/` (shards) of one random tiny model under
/// `$ORZ_HF_INTEROP_DIR` for `fixtures/check_rust_files.py`.
#[test]
#[ignore = "writes files for a manual Python check; set ORZ_HF_INTEROP_DIR"]
fn write_models_for_python() {
    let root = PathBuf::from(std::env::var("ORZ_HF_INTEROP_DIR").expect("set ORZ_HF_INTEROP_DIR"));
    let b = Reference::new();
    let config = Qwen2Config::tiny_test();
    let mut rng = Rng::seed_from_u64(42);
    let named: Vec<(String, _)> = parameter_specs(&config, Head::Lm)
        .into_iter()
        .map(|s| {
            let n: usize = s.shape.iter().product();
            let data: Vec<f32> = (0..n).map(|_| (rng.normal() * 0.5) as f32).collect();
            (s.name, b.tensor_f32(&data, &s.shape, DType::F32).unwrap())
        })
        .collect();
    save_model(&b, root.join("f32"), &config, Head::Lm, &named, DType::F32, None).unwrap();
    save_model(&b, root.join("f16"), &config, Head::Lm, &named, DType::F16, None).unwrap();
    save_model(&b, root.join("bf16"), &config, Head::Lm, &named, DType::BF16, Some(10_000)).unwrap();
}
