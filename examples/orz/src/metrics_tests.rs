use std::cell::Cell;
use std::rc::Rc;

use orz_conformance::checks::iteration::{HasE, detok};
use orz_core::backend::DType;
use orz_core::generation::GenerationStats;
use orz_core::model::{Critic, Policy, Qwen2Config};
use orz_core::recipe::Preset;
use orz_core::rng::Rng;
use orz_core::train::{ModelKind, PromptItem, ReflectionCounts, RolloutMetrics, Trainer};
use orz_reference::Reference;

use super::*;

/// A fresh empty directory under the system temp dir, unique to `name` and this process.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orz-metrics-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Metrics of a plain timed (`seconds`) iteration: 4 prompts, 16 samples, reward 0.4124,
/// pass@n 0.75, length 123.4 ± 40.2, stop ratio 0.9375.
pub(crate) fn simple(iteration: u64, seconds: Option<f64>) -> IterationMetrics {
    let report = IterationReport {
        iteration,
        rollout: RolloutMetrics {
            prompts: 4,
            samples: 16,
            generated: 16,
            mean_reward: 0.4124,
            pass_at_n: 0.75,
            response_length_mean: 123.4,
            response_length_std: 40.2,
            stop_ratio: 0.9375,
            ..Default::default()
        },
        packs: 1,
        tokens_generated: 0,
        training_tokens: 0,
        generation: GenerationStats::default(),
        clip_fraction: 0.0,
        clip_ratio: 0.0,
        mismatch: None,
        kl: None,
        kl_loss: None,
        ppo_kl: 0.0,
        entropy: None,
        dynamic_sampling: None,
        policy_loss: 0.0,
        value_loss: None,
        policy_steps: vec![],
        critic_steps: vec![],
        skipped_steps: vec![],
        phase_seconds: seconds.map(|total| PhaseTimes { total, ..Default::default() }),
    };
    IterationMetrics::from_report(&report)
}

fn step(grad_norm: f64, lr: f64, applied: bool) -> StepReport {
    StepReport {
        applied,
        skipped_reason: (!applied).then(|| "non-finite gradient norm".to_string()),
        grad_norm,
        clip_factor: 1.0,
        lr,
        step: 0,
        micro_batches: 1,
    }
}

fn hand_report() -> IterationReport {
    IterationReport {
        iteration: 4,
        rollout: RolloutMetrics {
            prompts: 2,
            generated: 8,
            dropped_empty: 1,
            samples: 7,
            mean_reward: 3.0 / 7.0,
            pass_at_n: 0.5,
            correct_fraction: 3.0 / 7.0,
            response_length_mean: 12.5,
            response_length_std: 2.25,
            correct_length_mean: Some(10.0),
            incorrect_length_mean: Some(14.375),
            stop_ratio: 6.0 / 7.0,
            reflection: ReflectionCounts { wait: 3, however: 1, responses_with_any: 2, ..Default::default() },
        },
        packs: 3,
        tokens_generated: 900,
        training_tokens: 1200,
        generation: GenerationStats { slots: 8, decode_steps: 10, decode_rows: 64, ..Default::default() },
        clip_fraction: 0.125,
        clip_ratio: 0.25,
        mismatch: Some(orz_core::train::Mismatch { max_abs: 2e-6, mean_abs: 5e-7, kl: 1e-12, tokens: 9 }),
        kl: Some(0.03),
        kl_loss: Some(f64::NAN),
        ppo_kl: -1e-4,
        entropy: Some(1.5),
        dynamic_sampling: Some(orz_core::train::DynamicSamplingStats {
            rounds: 2,
            dropped_groups: 3,
            kept_groups: 2,
            generated_groups: 5,
        }),
        policy_loss: f64::NAN,
        value_loss: Some(0.75),
        policy_steps: vec![step(f64::NAN, 1e-6, false)],
        critic_steps: vec![step(2.0, 4e-6, true), step(6.0, 5e-6, true), step(f64::INFINITY, 5e-6, false)],
        skipped_steps: vec![SkippedStep {
            model: ModelKind::Policy,
            index: 0,
            reason: "non-finite gradient norm".to_string(),
        }],
        phase_seconds: Some(PhaseTimes {
            rollout: 4.5,
            experience: 1.0,
            advantages: 0.25,
            critic_update: 2.0,
            policy_update: 0.75,
            total: 8.5,
        }),
    }
}

#[test]
fn derived_numbers_of_a_hand_built_report() {
    let m = IterationMetrics::from_report(&hand_report());
    assert_eq!((m.iteration, m.rollout.prompts, m.rollout.samples, m.rollout.dropped_empty), (4, 2, 7, 1));
    assert_eq!(
        (m.rollout.pass_at_n, m.rollout.response_length_std, m.rollout.stop_ratio),
        (0.5, 2.25, 6.0 / 7.0)
    );
    assert_eq!((m.rollout.correct_length_mean, m.rollout.incorrect_length_mean), (Some(10.0), Some(14.375)));
    // Tokens per second: 900 generated over 4.5 s of rollout; 1200 trained over 1 + 0.25 + 2 + 0.75.
    assert_eq!(m.generation_tokens_per_s, Some(200.0));
    assert_eq!(m.training_tokens_per_s, Some(300.0));
    assert_eq!(m.seconds(), Some(8.5));
    // A NaN loss and norms of skipped steps are absent, not NaN; the critic's mean and max are
    // over its two applied steps; learning rates are the last steps'.
    assert_eq!((m.policy_loss, m.value_loss), (None, Some(0.75)));
    // The KL statistics pass through, a NaN one absent; so do entropy and dynamic sampling.
    assert_eq!((m.kl, m.kl_loss, m.ppo_kl, m.entropy), (Some(0.03), None, Some(-1e-4), Some(1.5)));
    assert_eq!(m.dynamic_sampling.map(|d| (d.rounds, d.dropped_groups, d.kept_groups)), Some((2, 3, 2)));
    assert_eq!(
        (m.policy_grad_norm, m.critic_grad_norm, m.critic_grad_norm_max),
        (None, Some(4.0), Some(6.0))
    );
    assert_eq!((m.policy_lr, m.critic_lr, m.policy_steps, m.critic_steps), (Some(1e-6), Some(5e-6), 1, 3));
    assert_eq!(m.decode_batch_mean, 6.4);
    assert_eq!(
        (m.rollout.reflection.wait, m.rollout.reflection.however, m.rollout.reflection.total()),
        (3, 1, 4)
    );
    assert_eq!(m.skipped_steps.len(), 1);
    assert!(m.eval.is_empty() && m.wall_seconds.is_none());
    // Without timings there are no rates.
    let untimed = IterationReport { phase_seconds: None, ..hand_report() };
    let m = IterationMetrics::from_report(&untimed);
    assert_eq!((m.generation_tokens_per_s, m.training_tokens_per_s, m.seconds()), (None, None, None));
}

#[test]
fn lines_round_trip_and_append() {
    let dir = temp_dir("round-trip").join("nested");
    let mut a = IterationMetrics::from_report(&hand_report());
    a.eval = BTreeMap::from([("math500".to_string(), 0.314), ("aime2024".to_string(), 1.0 / 30.0)]);
    a.wall_seconds = Some(123.456789);
    let mut b = IterationMetrics {
        iteration: 5,
        phase_seconds: None,
        ..IterationMetrics::from_report(&hand_report())
    };
    b.rollout.mean_reward = 0.1 + 0.2;
    {
        let mut w = MetricsWriter::create(&dir).unwrap();
        assert_eq!(w.path(), dir.join(METRICS_FILE));
        w.write(&a).unwrap();
    }
    // A second writer (a resumed run) appends.
    MetricsWriter::create(&dir).unwrap().write(&b).unwrap();
    let text = std::fs::read_to_string(dir.join(METRICS_FILE)).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.lines().next().unwrap().contains("\"math500\":0.314"), "{text}");
    assert!(!text.contains("NaN"));
    assert_eq!(read_metrics(&dir.join(METRICS_FILE)).unwrap(), vec![a, b]);
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}

#[test]
fn errors_name_the_file_and_line() {
    let dir = temp_dir("errors");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(METRICS_FILE);
    let good = serde_json::to_string(&IterationMetrics::from_report(&hand_report())).unwrap();
    std::fs::write(&path, format!("{good}\n\n{{\"iteration\": 1}}\n")).unwrap();
    let err = format!("{:#}", read_metrics(&path).unwrap_err());
    assert!(err.contains(&path.display().to_string()) && err.contains("line 3"), "{err}");
    let missing = dir.join("absent.jsonl");
    let err = format!("{:#}", read_metrics(&missing).unwrap_err());
    assert!(err.contains("absent.jsonl"), "{err}");
    // A directory that cannot be created (a file is in the way).
    let blocked = path.join("sub");
    let err = format!("{:#}", MetricsWriter::create(&blocked).unwrap_err());
    assert!(err.contains(&blocked.display().to_string()), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn metrics_of_a_real_tiny_iteration() {
    let model = Qwen2Config::tiny_test();
    let mut config = Preset::Tiny.config().train_config(model.eos_token_ids.clone()).unwrap();
    config.n_samples_per_prompt = 4;
    let c = &mut config;
    (c.stop.max_new_tokens, c.stop.max_total_len, c.prompt_max_len, c.packing_max_len) = (4, 12, 6, 24);
    c.set_learning_rates(1e-3, 1e-3, 0);
    c.critic_update_steps = 3;
    let b = Rc::new(Reference::new());
    let mut rng = Rng::seed_from_u64(3);
    let policy = Policy::random(Rc::clone(&b), &model, DType::F32, &mut rng).unwrap();
    let critic = Critic::random(Rc::clone(&b), &model, DType::F32, &mut rng).unwrap();
    let mut trainer = Trainer::new(config, policy, Some(critic), Rng::seed_from_u64(4)).unwrap();
    let prompts: Vec<PromptItem> = (0..3u32)
        .map(|i| {
            let tokens = vec![2 + i, 9 + i, 20 + i];
            PromptItem { text: detok(&tokens), tokens, reference: String::new() }
        })
        .collect();
    // A clock that advances 0.5 s per reading.
    let clock = Cell::new(0.0);
    let tick = || {
        clock.set(clock.get() + 0.5);
        clock.get()
    };
    let report = trainer.iteration_timed(&prompts, &HasE, &detok, Some(&tick)).unwrap();
    let m = IterationMetrics::from_report(&report);
    let r = &report.rollout;
    assert_eq!((m.iteration, m.rollout.prompts, m.rollout.samples), (0, 3, r.samples));
    assert_eq!(
        (m.rollout.mean_reward, m.rollout.pass_at_n, m.rollout.stop_ratio),
        (r.mean_reward, r.pass_at_n, r.stop_ratio)
    );
    let times = report.phase_seconds.unwrap();
    assert_eq!(m.generation_tokens_per_s, Some(report.tokens_generated as f64 / times.rollout));
    // The fake clock gives each of the four training phases 0.5 s.
    assert_eq!(m.training_tokens_per_s, Some(report.training_tokens as f64 / 2.0));
    let (norm, lr) = report.policy_last_step().unwrap();
    assert_eq!((m.policy_grad_norm, m.policy_lr), (Some(norm), Some(lr)));
    assert!(m.critic_grad_norm.is_some_and(|n| n > 0.0) && m.critic_steps == report.critic_steps.len());
    assert!(m.critic_grad_norm_max >= m.critic_grad_norm);
    // It survives the file.
    let dir = temp_dir("tiny");
    MetricsWriter::create(&dir).unwrap().write(&m).unwrap();
    assert_eq!(read_metrics(&dir.join(METRICS_FILE)).unwrap(), vec![m]);
    std::fs::remove_dir_all(&dir).unwrap();
}
