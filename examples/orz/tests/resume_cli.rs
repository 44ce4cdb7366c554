//! `orz train --resume` is exact: 2 iterations, stop, resume to 3, gives the same checkpoint
//! bytes and the same metrics as an uninterrupted 3-iteration run (candle CPU, f32).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod support;

use std::path::Path;

use clap::Parser;
use orz::cli::Cli;
use support::{temp_dir, write_small_model};

const SMALL: &str = "\
rollout_batch_size = 3
save_interval = 2
prompt_template = \"Q: {question}\\nA:\"
[train]
n_samples_per_prompt = 2
prompt_max_len = 40
packing_max_len = 96
critic_update_steps = 2
stop = { max_new_tokens = 6, max_total_len = 48 }
policy_optimizer.schedule.WarmupConstant.warmup_steps = 0
critic_optimizer.schedule.WarmupConstant.warmup_steps = 0
";

fn train(root: &Path, out: &str, iterations: usize, resume: Option<&Path>) {
    train_with(root, out, iterations, resume, true, &[]);
}

/// `orz train` with `--model` (or, resuming, without it when `model` is false) and `extra`
/// arguments.
fn train_with(root: &Path, out: &str, iterations: usize, resume: Option<&Path>, model: bool, extra: &[&str]) {
    let p = |x: &Path| x.display().to_string();
    let mut args = vec!["orz".to_string(), "train".into()];
    if model {
        args.extend(["--model".into(), p(&root.join("model"))]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend([
        "--data".into(),
        p(&root.join("data.json")),
        "--config".into(),
        p(&root.join("small.toml")),
        "--out".into(),
        p(&root.join(out)),
        "--iterations".into(),
        iterations.to_string(),
        "--seed".into(),
        "11".into(),
        "--quiet".into(),
    ]);
    if let Some(r) = resume {
        args.extend(["--resume".into(), p(r)]);
    }
    let cli = Cli::try_parse_from(&args).unwrap();
    orz::commands::train(&cli.common).unwrap();
}

fn bytes(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
}

/// The small model, config and seven problems in ORZ's training format (the data order wraps
/// into a second epoch) under a fresh `root`.
fn setup(tag: &str) -> std::path::PathBuf {
    let root = temp_dir(tag);
    write_small_model(&root.join("model"));
    std::fs::write(root.join("small.toml"), SMALL).unwrap();
    let records: Vec<_> = (0..7)
        .map(|i| {
            serde_json::json!([
                {"from": "human", "value": format!("{i} + {i}?")},
                {"from": "assistant", "ground_truth": {"value": format!("{}", 2 * i)}}
            ])
        })
        .collect();
    std::fs::write(root.join("data.json"), serde_json::Value::Array(records).to_string()).unwrap();
    root
}

/// Every iteration's metrics of a run, without the clock's fields.
fn metrics_without_clock(root: &Path, dir: &str) -> Vec<serde_json::Value> {
    let ms = orz::metrics::read_metrics(&root.join(dir).join("metrics.jsonl")).unwrap();
    ms.into_iter()
        .map(|m| {
            let mut v = serde_json::to_value(m).unwrap();
            for k in ["phase_seconds", "wall_seconds", "generation_tokens_per_s", "training_tokens_per_s"] {
                v.as_object_mut().unwrap().remove(k);
            }
            v
        })
        .collect()
}

#[test]
fn a_kl_run_resumes_with_the_base_model_as_reference() {
    let root = setup("resume-cli-kl");
    let kl =
        ["--set", "train.kl_coef=0.05", "--set", "train.use_kl_loss=true", "--set", "train.kl_loss_coef=0.1"];
    train_with(&root, "straight", 2, None, true, &kl);
    train_with(&root, "split", 1, None, true, &kl);
    // Resumed without --model: the checkpoint's recorded base model is the reference, not the
    // checkpoint's own (trained) policy.
    train_with(&root, "split", 2, Some(&root.join("split/checkpoint-000001")), false, &kl);
    let (a, b) = (root.join("straight/checkpoint-000002"), root.join("split/checkpoint-000002"));
    for file in ["policy/model.safetensors", "critic/model.safetensors"] {
        assert!(bytes(&a, file) == bytes(&b, file), "{file} differs after resuming");
    }
    let (straight, split) = (metrics_without_clock(&root, "straight"), metrics_without_clock(&root, "split"));
    assert_eq!(straight, split);
    assert!(straight[1]["kl"].as_f64().is_some_and(|k| k > 0.0), "{:?}", straight[1]);
    let state = std::fs::read_to_string(b.join("trainer_state/trainer_state.json")).unwrap();
    assert!(state.contains("reference_model"), "{state}");
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn resumed_run_equals_the_uninterrupted_one() {
    let root = setup("resume-cli");

    train(&root, "straight", 3, None);
    train(&root, "split", 2, None);
    train(&root, "split", 3, Some(&root.join("split/checkpoint-000002")));

    let (a, b) = (root.join("straight/checkpoint-000003"), root.join("split/checkpoint-000003"));
    for file in [
        "policy/model.safetensors",
        "critic/model.safetensors",
        "trainer_state/policy_optimizer.safetensors",
        "trainer_state/critic_optimizer.safetensors",
    ] {
        assert!(bytes(&a, file) == bytes(&b, file), "{file} differs after resuming");
    }
    // The metrics of every iteration agree except for the clock.
    let (straight, split) = (metrics_without_clock(&root, "straight"), metrics_without_clock(&root, "split"));
    assert_eq!(straight.len(), 3);
    assert_eq!(straight, split);

    // Resuming with another config is refused, naming the field.
    let mut args: Vec<String> =
        ["orz", "train", "--quiet", "--set", "train.eps_clip=0.3", "--iterations", "4", "--seed", "11"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let p = |x: &Path| x.display().to_string();
    args.extend(["--model".into(), p(&root.join("model")), "--data".into(), p(&root.join("data.json"))]);
    args.extend(["--config".into(), p(&root.join("small.toml")), "--out".into(), p(&root.join("other"))]);
    args.extend(["--resume".into(), p(&b)]);
    let cli = Cli::try_parse_from(&args).unwrap();
    let e = format!("{:#}", orz::commands::train(&cli.common).unwrap_err());
    assert!(e.contains("eps_clip"), "{e}");
    let _ = std::fs::remove_dir_all(&root);
}
