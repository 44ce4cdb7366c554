//! Data-parallel `orz train` launched the way clusters launch it (built with `--features
//! c10d`): `orz launch --nproc 2`, `torchrun --no-python` and two torchrun agents meeting
//! through the c10d rendezvous (two "nodes" on this host) start two ranks of the real program
//! on the tiny task (tch on the CPU, Gloo), which train as the single process does: the same
//! rewards, response lengths and eval results (the eval questions split across the ranks give
//! the same files byte for byte), losses within f32 rounding, one metrics file and one
//! checkpoint (written by rank 0) that loads in one process. A bad input fails every rank and
//! the launcher with it.

#![cfg(feature = "c10d")]
#![allow(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use orz::metrics::{IterationMetrics, read_metrics};
use support::temp_dir;

/// `orz train` arguments of a short tiny run writing to `out`.
fn train_args(out: &Path) -> Vec<String> {
    [
        "train",
        "--backend",
        "tch",
        "--iterations",
        "2",
        "--set",
        "rollout_batch_size=4",
        "--set",
        "train.n_samples_per_prompt=4",
        "--set",
        "eval_samples=1",
        "--quiet",
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.display().to_string()])
    .collect()
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.env("OMP_NUM_THREADS", "1").env("ORZ_COLLECTIVE_TIMEOUT", "120").output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn orz() -> Command {
    Command::new(env!("CARGO_BIN_EXE_orz"))
}

fn assert_same_training(one: &[IterationMetrics], many: &[IterationMetrics], what: &str) {
    assert_eq!(one.len(), many.len(), "{what}: metrics lines");
    for (a, b) in one.iter().zip(many) {
        assert_eq!(a.rollout.mean_reward, b.rollout.mean_reward, "{what}: iteration {}", a.iteration);
        assert_eq!(a.rollout.response_length_mean, b.rollout.response_length_mean, "{what}");
        assert_eq!(a.eval, b.eval, "{what}: eval accuracy (questions split across the ranks)");
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-4 * x.abs().max(1e-2);
        let (x, y) = (a.policy_loss.unwrap(), b.policy_loss.unwrap());
        assert!(close(x, y), "{what}: policy loss {x} vs {y}");
    }
}

#[test]
fn two_ranks_through_orz_launch_and_torchrun_train_as_one_process() {
    let root = temp_dir("launch");
    let single = root.join("single");
    run(orz().args(train_args(&single)));
    let one = read_metrics(&single.join("metrics.jsonl")).unwrap();

    let launched = root.join("launched");
    let mut args = vec!["launch".to_string(), "--nproc".into(), "2".into(), "--".into()];
    args.extend(train_args(&launched));
    run(orz().args(&args));
    let many = read_metrics(&launched.join("metrics.jsonl")).unwrap();
    assert_same_training(&one, &many, "orz launch");
    for file in ["eval/iter-000000.jsonl", "eval/final.json"] {
        let read = |dir: &Path| std::fs::read(dir.join(file)).unwrap();
        assert!(read(&single) == read(&launched), "orz launch: {file} differs from the single process's");
    }
    assert!(launched.join("training.png").is_file());
    let ckpt = launched.join("checkpoint-000002");
    assert!(ckpt.join("policy").join("model.safetensors").is_file());
    // The data-parallel checkpoint resumes in one process (same layout).
    let resumed = root.join("resumed");
    let mut resume = train_args(&resumed);
    resume[4] = "3".into();
    resume.extend(["--resume".into(), ckpt.display().to_string()]);
    run(orz().args(&resume));
    assert_eq!(read_metrics(&resumed.join("metrics.jsonl")).unwrap().len(), 1);

    // torchrun (in the project's venv) starts the same binary unchanged.
    let torchrun = std::env::var("VIRTUAL_ENV").map(|v| PathBuf::from(v).join("bin").join("torchrun"));
    match torchrun {
        Ok(t) if t.is_file() => {
            let out = root.join("torchrun");
            let mut cmd = Command::new(&t);
            cmd.args(["--standalone", "--nproc-per-node", "2", "--no-python", env!("CARGO_BIN_EXE_orz")]);
            run(cmd.args(train_args(&out)));
            assert_same_training(&one, &read_metrics(&out.join("metrics.jsonl")).unwrap(), "torchrun");
            // Two "machines": two torchrun agents of one rank each meeting through the c10d
            // rendezvous, as the multi-node command in the README (here both on this host).
            let out = root.join("two-nodes");
            let port = 29_400 + std::process::id() % 1000;
            let agents: Vec<_> = (0..2)
                .map(|_| {
                    let mut cmd = Command::new(&t);
                    cmd.args(["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d"])
                        .args(["--rdzv-endpoint", &format!("127.0.0.1:{port}"), "--rdzv-id", "orz-test"])
                        .args(["--no-python", env!("CARGO_BIN_EXE_orz")])
                        .args(train_args(&out))
                        .stdout(std::process::Stdio::null());
                    cmd.spawn().unwrap()
                })
                .collect();
            for mut agent in agents {
                assert!(agent.wait().unwrap().success(), "a torchrun agent of the two-node run failed");
            }
            assert_same_training(
                &one,
                &read_metrics(&out.join("metrics.jsonl")).unwrap(),
                "torchrun, 2 nodes",
            );
        }
        _ => eprintln!("torchrun not found in $VIRTUAL_ENV/bin: skipped its half"),
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_bad_input_fails_every_rank_and_the_launcher() {
    let root = temp_dir("launch-bad");
    let mut args = vec!["launch".to_string(), "--nproc".into(), "2".into(), "--".into()];
    args.extend(train_args(&root.join("out")));
    args.extend(["--data".into(), root.join("missing.json").display().to_string()]);
    let out = orz().args(&args).env("ORZ_COLLECTIVE_TIMEOUT", "30").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.json") && err.contains("failed (exit status 1)"), "{err}");
    let _ = std::fs::remove_dir_all(&root);
}
