//! orz-candle beyond the conformance suite: recording switch, parameter assignment, the fused
//! (no-backward) paths against the differentiable ones, and memory-mapped safetensors loading.

use std::collections::HashMap;

use orz_candle::{Candle, load_safetensors};
use orz_core::Error;
use orz_core::backend::{Backend, DType};
use orz_core::model::{Head, Qwen2Config, parameter_specs};

type R = orz_core::Result<()>;

#[test]
fn recording_off_detaches_and_assignment_is_seen_by_clones() -> R {
    let b = Candle::cpu();
    let x = b.param(&b.tensor_f32(&[1.0, -2.0, 3.0], &[3], DType::F32)?)?;
    let previous = b.set_grad_enabled(false);
    let y = b.sum_all(&b.mul(&x, &x)?)?;
    b.set_grad_enabled(previous);
    assert_eq!(b.grad(&b.backward(&y)?, &x)?.map(|g| b.shape(&g)), None);
    let g = b.grad(&b.backward(&b.sum_all(&b.mul(&x, &x)?)?)?, &x)?.ok_or(Error::backend("t", "no grad"))?;
    assert_eq!(b.to_host_f32(&g)?, vec![2.0, -4.0, 6.0]);
    let alias = x.clone();
    b.assign_param(&x, &b.tensor_f32(&[5.0, 6.0, 7.0], &[3], DType::F32)?)?;
    assert_eq!(b.to_host_f32(&alias)?, vec![5.0, 6.0, 7.0]);
    // Assigning a parameter its own (detached, storage-sharing) value works too.
    b.assign_param(&x, &b.detach(&alias)?)?;
    let not_param = b.tensor_f32(&[1.0], &[1], DType::F32)?;
    assert!(matches!(b.assign_param(&not_param, &not_param), Err(Error::InvalidArgument { .. })));
    Ok(())
}

#[test]
fn fused_inference_paths_agree_with_the_differentiable_ones() -> R {
    let b = Candle::cpu();
    let data: Vec<f32> = (0..2 * 4 * 3 * 8).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
    let x = b.tensor_f32(&data, &[2, 4, 3, 8], DType::F32)?;
    let w = b.tensor_f32(&[0.5, 1.0, 1.5, 2.0, -1.0, 0.25, 3.0, 1.0], &[8], DType::F32)?;
    let k = b.narrow(&x, 1, 0, 2)?;
    let mask = b.tensor_bool(&[true, false, true, true, true, false, true, true, true], &[1, 1, 3, 3])?;
    let run = |record: bool| -> orz_core::Result<Vec<Vec<f32>>> {
        // Parameters make every op record; plain tensors take the fused kernels.
        let (x, w, k) = if record {
            (b.param(&x)?, b.param(&w)?, b.param(&k)?)
        } else {
            (x.clone(), w.clone(), k.clone())
        };
        Ok(vec![
            b.to_host_f32(&b.softmax(&x, 3)?)?,
            b.to_host_f32(&b.rms_norm(&x, &w, 1e-6)?)?,
            b.to_host_f32(&b.attention(&x, &k, &k, &mask)?)?,
            b.to_host_f32(&b.log_softmax(&x, 3)?)?,
        ])
    };
    for (fused, composed) in run(false)?.iter().zip(&run(true)?) {
        for (f, c) in fused.iter().zip(composed) {
            assert!((f - c).abs() <= 1e-5 * (1.0 + c.abs()), "{f} vs {c}");
        }
    }
    Ok(())
}

#[test]
fn out_of_range_indices_are_errors_not_panics() -> R {
    let b = Candle::cpu();
    let w = b.zeros(&[4, 2], DType::F32)?;
    let ids = b.tensor_i64(&[0, 4], &[2])?;
    assert!(matches!(b.index_select(&w, 0, &ids), Err(Error::IndexOutOfRange { index: 4, size: 4, .. })));
    let neg = b.tensor_i64(&[-1, 0], &[1, 2])?;
    let row = b.zeros(&[1, 2], DType::F32)?;
    assert!(matches!(b.gather(&row, 1, &neg), Err(Error::IndexOutOfRange { index: -1, .. })));
    Ok(())
}

/// Writes `tensors` (name, shape) filled with `i / 8` as an F32 safetensors file.
fn write_file(path: &std::path::Path, tensors: &[(String, Vec<usize>)]) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, s)| (0..s.iter().product()).flat_map(|i: usize| (i as f32 / 8.0).to_le_bytes()).collect())
        .collect();
    let views: HashMap<String, safetensors::tensor::TensorView<'_>> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s), d)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d);
            (n.clone(), view.expect("a valid view"))
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).expect("written");
}

#[test]
fn loads_sharded_safetensors_by_spec_and_names_bad_tensors() -> R {
    let dir = std::env::temp_dir().join(format!("orz-candle-st-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::backend("test", e.to_string()))?;
    let specs = parameter_specs(&Qwen2Config::tiny_test(), Head::Lm);
    let all: Vec<(String, Vec<usize>)> = specs.iter().map(|s| (s.name.clone(), s.shape.clone())).collect();
    let (first, second) = all.split_at(all.len() / 2);
    let paths = [dir.join("model-00001-of-00002.safetensors"), dir.join("model-00002-of-00002.safetensors")];
    write_file(&paths[0], first);
    write_file(&paths[1], second);
    let b = Candle::cpu();
    let loaded = load_safetensors(&b, &paths, &specs, DType::BF16)?;
    assert_eq!(loaded.len(), specs.len());
    let embed = &loaded["model.embed_tokens.weight"];
    assert_eq!((b.shape(embed), b.dtype(embed)), (vec![64, 32], DType::BF16));
    assert_eq!(b.to_host_f32(&b.narrow(&b.reshape(embed, &[64 * 32])?, 0, 0, 3)?)?, vec![0.0, 0.125, 0.25]);

    let missing = load_safetensors(&b, &paths[..1], &specs, DType::F32).map(|_| ()).unwrap_err().to_string();
    assert!(missing.contains(&second[0].0), "{missing}");
    let mut wrong = specs.clone();
    wrong[0].shape = vec![65, 32];
    let shape = load_safetensors(&b, &paths, &wrong, DType::F32).map(|_| ()).unwrap_err().to_string();
    assert!(shape.contains("model.embed_tokens.weight") && shape.contains("[64, 32]"), "{shape}");
    let absent = load_safetensors(&b, &[dir.join("absent.safetensors")], &specs, DType::F32);
    assert!(matches!(absent, Err(Error::Backend { .. })));
    std::fs::remove_dir_all(&dir).map_err(|e| Error::backend("test", e.to_string()))?;
    Ok(())
}
