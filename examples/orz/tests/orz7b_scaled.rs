//! The orz-7b preset's code path, end to end, scaled down: a small random Qwen2 written to disk
//! in Hugging Face format (with a byte-level tokenizer.json) is trained for one full iteration
//! of `orz train --preset orz-7b` on the real ORZ training data with ORZ's prompt template,
//! with only the sizes overridden (issue 7, item 8); and the dry run checks the same inputs.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod support;

use std::path::Path;

use clap::Parser;
use orz::cli::Cli;
use support::{repo, temp_dir, write_small_model};

const SCALED: &str = "\
rollout_batch_size = 2
eval_interval = 1
[train]
n_samples_per_prompt = 3
prompt_max_len = 900
packing_max_len = 2048
engine = { max_batch_slots = 6 }
stop = { max_new_tokens = 12, max_total_len = 912 }
";

#[test]
fn one_full_iteration_of_the_orz_7b_code_path() {
    let root = temp_dir("orz7b");
    let (model, out) = (root.join("model"), root.join("out"));
    write_small_model(&model);
    std::fs::write(root.join("scaled.toml"), SCALED).unwrap();
    // Three real MATH500 questions as the eval set.
    let math500: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("data/orz/eval/math500.json")).unwrap())
            .unwrap();
    let three = serde_json::Value::Array(math500.as_array().unwrap()[..3].to_vec());
    std::fs::write(root.join("math3.json"), three.to_string()).unwrap();
    let data = repo().join("data/orz/orz_math_57k_subset.json");
    let arg = |p: &Path| p.display().to_string();
    let args = [
        "orz".to_string(),
        "train".into(),
        "--preset".into(),
        "orz-7b".into(),
        "--model".into(),
        arg(&model),
        "--data".into(),
        arg(&data),
        "--eval".into(),
        arg(&root.join("math3.json")),
        "--config".into(),
        arg(&root.join("scaled.toml")),
        "--out".into(),
        arg(&out),
        "--iterations".into(),
        "1".into(),
        "--quiet".into(),
    ];
    let cli = Cli::try_parse_from(&args).unwrap();
    orz::commands::train(&cli.common).unwrap();

    let metrics = orz::metrics::read_metrics(&out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.len(), 1);
    let m = &metrics[0];
    // Every knob but the sizes is ORZ-7B's: the prompt is ORZ's template (about 650 bytes, one
    // token per byte here, before the question), so every trained sequence is that long.
    assert_eq!((m.rollout.prompts, m.rollout.samples), (2, 6), "{m:?}");
    let per_sample = m.training_tokens as f64 / m.rollout.samples as f64;
    assert!(per_sample > 650.0 && per_sample <= 912.0, "{per_sample}");
    let gens = std::fs::read_to_string(out.join("eval/iter-000000.jsonl")).unwrap();
    assert_eq!(gens.lines().count(), 3);
    assert!(m.eval.contains_key("math3"), "{m:?}");
    // A random model never answers: reward 0, but the iteration ran every phase.
    assert_eq!(m.rollout.mean_reward, 0.0);
    assert!(out.join("training.png").is_file());
    assert!(out.join("checkpoint-000001").join("policy").join("config.json").is_file());

    // The dry run checks the same inputs and prints the memory plan.
    let mut dry = args.to_vec();
    dry.push("--dry-run".into());
    let cli = Cli::try_parse_from(&dry).unwrap();
    orz::commands::train(&cli.common).unwrap();
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn bad_inputs_fail_before_any_work_and_say_where() {
    let root = temp_dir("badinputs");
    let model = root.join("model");
    write_small_model(&model);
    let run = |extra: &[&str]| {
        let mut args = vec!["orz", "train", "--preset", "orz-7b", "--quiet", "--dry-run"];
        args.extend_from_slice(extra);
        let cli = Cli::try_parse_from(&args).unwrap();
        format!("{:#}", orz::commands::train(&cli.common).unwrap_err())
    };
    let m = model.display().to_string();
    let data = repo().join("data/orz/orz_math_57k_subset.json").display().to_string();
    // Without --model a dry run plans with the published Qwen2.5-7B shape; a real run refuses.
    let cli =
        Cli::try_parse_from(["orz", "train", "--preset", "orz-7b", "--dry-run", "--data", &data]).unwrap();
    orz::commands::train(&cli.common).unwrap();
    let cli = Cli::try_parse_from(["orz", "train", "--preset", "orz-7b", "--data", &data]).unwrap();
    let e = format!("{:#}", orz::commands::train(&cli.common).unwrap_err());
    assert!(e.contains("--model is required"), "{e}");
    let e = run(&["--model", "/nonexistent/model", "--data", &data]);
    assert!(e.contains("/nonexistent/model"), "{e}");
    let e = run(&["--model", &m, "--data", "/nonexistent/data.json"]);
    assert!(e.contains("/nonexistent/data.json"), "{e}");
    let e = run(&["--model", &m, "--data", &data, "--set", "rollout_batch_size=\"x\""]);
    assert!(e.contains("rollout_batch_size"), "{e}");
    let e = run(&["--model", &m, "--data", &data, "--out", "/proc/orz-cannot-write"]);
    assert!(e.contains("/proc/orz-cannot-write"), "{e}");
    std::fs::remove_file(model.join("tokenizer.json")).unwrap();
    let e = run(&["--model", &m, "--data", &data]);
    assert!(e.contains("tokenizer.json"), "{e}");
    let _ = std::fs::remove_dir_all(&root);
}
