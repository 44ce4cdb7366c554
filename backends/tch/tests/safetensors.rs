//! Loading safetensors checkpoints into libtorch: sharded bf16 files written by orz-hf load with
//! the values orz-hf's generic loader gives, and bad checkpoints are errors naming the tensor.

use std::path::PathBuf;

use orz_core::backend::{Backend, DType};
use orz_core::model::ParamSpec;
use orz_tch::Tch;

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orz-tch-st-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn spec(name: &str, shape: &[usize]) -> ParamSpec {
    ParamSpec { name: name.into(), shape: shape.to_vec() }
}

#[test]
fn sharded_checkpoints_load_as_orz_hf_loads_them() {
    let b = Tch::cpu();
    let dir = temp_dir("sharded");
    let specs = vec![spec("a.weight", &[3, 4]), spec("b.bias", &[5]), spec("c.weight", &[2, 2, 2])];
    let named: Vec<(String, _)> = specs
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let n: usize = s.shape.iter().product();
            let data: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37 + k as f32).sin()).collect();
            (s.name.clone(), b.tensor_f32(&data, &s.shape, DType::F32).expect("tensor"))
        })
        .collect();
    // 40-byte shards: one tensor per shard, so the index path is exercised.
    let files = orz_hf::save_tensors(&b, &dir, &named, DType::BF16, Some(40)).expect("save");
    assert!(files.len() > 1, "expected several shards, got {files:?}");
    for dtype in [DType::F32, DType::BF16] {
        let ours = orz_tch::safetensors::load_tensors(&b, &dir, &specs, dtype).expect("load");
        let theirs = orz_hf::load_tensors(&b, &dir, &specs, dtype).expect("orz-hf load");
        for s in &specs {
            let (x, y) = (&ours[&s.name], &theirs[&s.name]);
            assert_eq!(b.shape(x), s.shape);
            assert_eq!(b.dtype(x), dtype);
            assert_eq!(b.to_host_f32(x).expect("host"), b.to_host_f32(y).expect("host"), "{}", s.name);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_tensors_and_wrong_shapes_are_named() {
    let b = Tch::cpu();
    let dir = temp_dir("errors");
    let w = b.tensor_f32(&[1.0; 6], &[2, 3], DType::F32).expect("tensor");
    orz_hf::save_tensors(&b, &dir, &[("w".into(), w)], DType::F32, None).expect("save");
    let missing = orz_tch::safetensors::load_tensors(&b, &dir, &[spec("v", &[2, 3])], DType::F32);
    let msg = missing.expect_err("missing tensor").to_string();
    assert!(msg.contains("`v`") || msg.contains("v"), "{msg}");
    let shape = orz_tch::safetensors::load_tensors(&b, &dir, &[spec("w", &[3, 2])], DType::F32);
    let msg = shape.expect_err("wrong shape").to_string();
    assert!(msg.contains("[3, 2]") && msg.contains("[2, 3]"), "{msg}");
    let int = orz_tch::safetensors::load_tensors(&b, &dir, &[spec("w", &[2, 3])], DType::I64);
    assert!(int.is_err(), "an integer dtype is refused");
    let _ = std::fs::remove_dir_all(&dir);
}
