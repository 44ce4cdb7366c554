//! The tiny default learns as ORZ does: a shortened `tiny` run (ORZ's algorithm unchanged: PPO,
//! GAE λ = γ = 1, the `orz_math` reward, no KL, 12 critic steps and 1 policy step per iteration)
//! from the embedded base model raises the training reward and the mean response length
//! together, by clear margins.
//!
//! Shortened: 16 prompts × 8 samples per iteration (the preset's batch halved), ITERATIONS
//! iterations; everything else is the tiny task's. The mean reward (and length) of the last 3
//! iterations must exceed the first 3 iterations' by more than [`REWARD_MARGIN`] (and
//! [`LENGTH_MARGIN`] tokens).
//!
//! FROZEN_AND_MEASURED

mod support;

use clap::Parser;
use orz::cli::Cli;
use support::temp_dir;

/// Iterations of the shortened run.
const ITERATIONS: usize = 15;
/// How much the last iterations' mean reward must exceed the first iterations'.
const REWARD_MARGIN: f64 = 0.2;
/// How many tokens the last iterations' mean response length must exceed the first iterations'.
const LENGTH_MARGIN: f64 = 8.0;

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// The means of the first and of the last 3 values.
fn first_last(xs: &[f64]) -> (f64, f64) {
    (mean(&xs[..3]), mean(&xs[xs.len() - 3..]))
}

#[test]
fn tiny_preset_raises_the_training_reward_and_the_response_length() {
    // `orz train` with no model, data or eval: the embedded base model, the generated task and
    // its held-out eval set, exactly what `cargo run --release -p orz` runs.
    let out = temp_dir("tiny-learns");
    let start = std::time::Instant::now();
    let iterations = ITERATIONS.to_string();
    let cli = Cli::try_parse_from([
        "orz",
        "train",
        "--iterations",
        &iterations,
        "--set",
        "rollout_batch_size=16",
        "--set",
        "eval_samples=1",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ])
    .unwrap();
    orz::commands::train(&cli.common).expect("the tiny run trains");
    let metrics = orz::metrics::read_metrics(&out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.len(), ITERATIONS);
    let rewards: Vec<f64> = metrics.iter().map(|m| m.rollout.mean_reward).collect();
    let lengths: Vec<f64> = metrics.iter().map(|m| m.rollout.response_length_mean).collect();
    let reflection: Vec<f64> = metrics.iter().map(|m| m.rollout.reflection.total() as f64).collect();
    let (r0, r1) = first_last(&rewards);
    let (l0, l1) = first_last(&lengths);
    let (w0, w1) = first_last(&reflection);
    eprintln!(
        "reward {r0:.3} -> {r1:.3}, length {l0:.1} -> {l1:.1}, reflection {w0:.1} -> {w1:.1}, {:.0} s\n\
         rewards {rewards:.3?}\nlengths {lengths:.1?}\nreflection {reflection:?}",
        start.elapsed().as_secs_f64()
    );
    assert!((0.1..0.6).contains(&r0), "the base model's reward {r0:.3} should be low but not zero");
    assert!(
        r1 > r0 + REWARD_MARGIN,
        "reward {r0:.3} -> {r1:.3} did not rise by {REWARD_MARGIN}: {rewards:?}"
    );
    assert!(
        l1 > l0 + LENGTH_MARGIN,
        "length {l0:.1} -> {l1:.1} did not rise by {LENGTH_MARGIN}: {lengths:?}"
    );
    assert!(metrics.iter().all(|m| m.skipped_steps.is_empty()), "no step may be skipped");
    assert!(
        out.join("training.png").is_file()
            && out.join(format!("checkpoint-{ITERATIONS:06}/policy/model.safetensors")).is_file()
    );
    let _ = std::fs::remove_dir_all(&out);
}
