//! One iteration end to end: metrics, parameter changes, warmup from lr 0, determinism, the
//! critic's step grouping, GRPO, and errors.

use std::cell::Cell;

use orz_core::ppo::grpo::GroupStd;
use orz_core::reward::FinishReason;
use orz_core::rng::Rng;
use orz_core::train::overlong::soft_overlong_penalty;
use orz_core::train::{EstimatorChoice, PromptItem, PromptOverflow, Trainer, step_groups};

use super::support::{config, contains, detok, max_diff, models, prompts, snapshot, trainer};

#[test]
fn one_iteration_reports_sane_metrics_and_moves_both_models() {
    let mut t = trainer(config(4, 1e-3), 7);
    let before = (
        snapshot(t.policy().model().parameters().as_slice()),
        snapshot(&t.critic().unwrap().model().parameters()),
    );
    let clock = Cell::new(0.0);
    let tick = || {
        clock.set(clock.get() + 1.0);
        clock.get()
    };
    let r = t.iteration_timed(&prompts(3), &contains('e'), &detok, Some(&tick)).unwrap();
    let m = &r.rollout;
    assert_eq!((r.iteration, m.prompts, m.generated), (0, 3, 12));
    assert_eq!(m.samples + m.dropped_empty, 12);
    assert!((0.0..=1.0).contains(&m.mean_reward) && (0.0..=1.0).contains(&m.pass_at_n));
    assert!(m.response_length_mean >= 1.0 && m.response_length_mean <= 4.0, "{m:?}");
    assert!(m.response_length_std >= 0.0 && (0.0..=1.0).contains(&m.stop_ratio));
    assert_eq!(m.correct_length_mean.is_some(), m.correct_fraction > 0.0);
    assert!(
        r.packs >= 1
            && r.tokens_generated >= m.samples
            && r.tokens_generated == r.generation.tokens_generated
    );
    // ORZ's single policy step sees ratio 1: nothing is clipped.
    assert_eq!((r.policy_steps.len(), r.clip_fraction), (1, 0.0));
    // One model definition samples and trains: on the f64 reference the log-probs at sampling
    // and at training are the same numbers (the rollout/train mismatch is exactly 0).
    let mismatch = r.mismatch.expect("measured by default");
    assert!(mismatch.tokens > 0 && mismatch.tokens <= r.tokens_generated, "{mismatch:?}");
    assert_eq!((mismatch.max_abs, mismatch.mean_abs, mismatch.kl), (0.0, 0.0, 0.0), "{mismatch:?}");
    assert_eq!(r.critic_steps.len(), r.packs.min(12));
    assert!(r.policy_loss.is_finite() && r.value_loss.is_some_and(f64::is_finite));
    let (norm, lr) = r.policy_last_step().unwrap();
    assert!(norm.is_finite() && norm > 0.0 && lr == 1e-3);
    assert!(r.critic_last_step().is_some_and(|(n, lr)| n > 0.0 && lr == 1e-3));
    assert!(r.skipped_steps.is_empty());
    let times = r.phase_seconds.unwrap();
    assert!(
        times.rollout > 0.0
            && times.policy_update > 0.0
            && times.total >= times.rollout + times.critic_update
    );
    // Both models changed.
    let after =
        (snapshot(&t.policy().model().parameters()), snapshot(&t.critic().unwrap().model().parameters()));
    assert!(max_diff(&before.0, &after.0) > 1e-6, "the policy did not move");
    assert!(max_diff(&before.1, &after.1) > 1e-6, "the critic did not move");
    assert_eq!(t.iterations(), 1);
    // Without a clock there are no timings.
    assert!(t.iteration(&prompts(3), &contains('e'), &detok).unwrap().phase_seconds.is_none());
}

#[test]
fn orz_warmup_gives_lr_zero_at_the_first_step_and_moves_at_the_second() {
    let mut c = config(4, 1e-3);
    // ORZ's schedule shape: warmup from 0 over 50 steps.
    for opt in [&mut c.policy_optimizer, &mut c.critic_optimizer] {
        opt.schedule = orz_core::schedule::LrSchedule::WarmupConstant { peak: 1e-3, warmup_steps: 50 };
    }
    let mut t = trainer(c, 11);
    let p0 = snapshot(&t.policy().model().parameters());
    let r = t.iteration(&prompts(3), &contains('e'), &detok).unwrap();
    assert_eq!(r.policy_steps[0].lr, 0.0);
    assert!(r.policy_steps[0].applied);
    let p1 = snapshot(&t.policy().model().parameters());
    assert_eq!(max_diff(&p0, &p1), 0.0, "step 0 has lr 0: the policy must not move");
    // The critic's second step (k = 1) already has lr peak / 50.
    if r.critic_steps.len() > 1 {
        assert!((r.critic_steps[1].lr - 1e-3 / 50.0).abs() < 1e-18);
    }
    let r = t.iteration(&prompts(3), &contains('e'), &detok).unwrap();
    assert!((r.policy_steps[0].lr - 1e-3 / 50.0).abs() < 1e-18);
    let p2 = snapshot(&t.policy().model().parameters());
    assert!(max_diff(&p1, &p2) > 0.0, "step 1 has lr > 0: the policy must move");
}

#[test]
fn same_seed_gives_identical_parameters_after_two_iterations() {
    let run = || {
        let mut t = trainer(config(3, 1e-3), 5);
        let reports: Vec<_> =
            (0..2).map(|_| t.iteration(&prompts(4), &contains('k'), &detok).unwrap()).collect();
        (
            snapshot(&t.policy().model().parameters()),
            snapshot(&t.critic().unwrap().model().parameters()),
            reports,
        )
    };
    let (a, b) = (run(), run());
    assert_eq!(a.0, b.0);
    assert_eq!(a.1, b.1);
    assert_eq!(a.2, b.2);
    // Another generator seed samples differently.
    let (_, policy, critic) = models(5);
    let mut t = Trainer::new(config(3, 1e-3), policy, Some(critic), Rng::seed_from_u64(99)).unwrap();
    t.iteration(&prompts(4), &contains('k'), &detok).unwrap();
    t.iteration(&prompts(4), &contains('k'), &detok).unwrap();
    assert_ne!(snapshot(&t.policy().model().parameters()), a.0);
}

#[test]
fn critic_steps_follow_the_grouping_rule_through_the_trainer() {
    let mut t = trainer(config(8, 1e-3), 3);
    let r = t.iteration(&prompts(6), &contains('e'), &detok).unwrap();
    let groups = step_groups(r.packs, 12);
    assert_eq!(r.critic_steps.len(), groups.len());
    for (step, g) in r.critic_steps.iter().zip(&groups) {
        assert_eq!(step.micro_batches, g.len());
    }
    assert_eq!(r.policy_steps[0].micro_batches, r.packs);
    assert!(r.packs > 1, "the test wants several packs, got {}", r.packs);
}

#[test]
fn the_policy_clip_options_train_and_change_only_what_they_should() {
    // Two policy steps, so that the second sees ratios away from 1.
    let run = |high: Option<f64>, dual: Option<f64>, clamp: Option<f64>| {
        let mut c = config(4, 5e-2);
        (c.policy_update_steps, c.eps_clip_high, c.dual_clip, c.log_ratio_clamp) = (2, high, dual, clamp);
        let mut t = trainer(c, 7);
        let r = t.iteration(&prompts(3), &contains('e'), &detok).unwrap();
        assert!(r.skipped_steps.is_empty() && r.policy_loss.is_finite());
        (r, snapshot(&t.policy().model().parameters()))
    };
    let (plain, w0) = run(None, None, None);
    // A clamp far outside the ratios seen, and a dual clip no loss reaches, change nothing.
    let (same, w1) = run(None, Some(1e6), Some(50.0));
    assert_eq!((same.policy_loss, max_diff(&w0, &w1)), (plain.policy_loss, 0.0));
    // The upper bound is its own: at 1 + 0 every ratio above 1 with a positive advantage
    // binds, so more tokens are clipped and the run differs.
    let (tight, w2) = run(Some(0.0), None, None);
    assert!(tight.clip_fraction > plain.clip_fraction, "{} vs {}", tight.clip_fraction, plain.clip_fraction);
    assert!(max_diff(&w0, &w2) > 0.0);
}

#[test]
fn dapo_overlong_rules_punish_and_filter_the_samples_cut_at_the_limit() {
    let plain = trainer(config(4, 1e-3), 7).rollout(&prompts(3), &contains('e'), &detok).unwrap();
    // Soft punishment over the whole budget (L_cache = L_max = 4): score − n / 4.
    let mut c = config(4, 1e-3);
    c.overlong_soft_cache = Some(c.stop.max_new_tokens);
    let punished = trainer(c, 7).rollout(&prompts(3), &contains('e'), &detok).unwrap();
    assert_eq!(plain.samples.len(), punished.samples.len());
    for (a, b) in plain.samples.iter().zip(&punished.samples) {
        assert_eq!(a.response, b.response, "the punishment changes scores, not sampling");
        let want = a.score + soft_overlong_penalty(a.response.len(), 4, 4);
        assert_eq!(b.score, want);
    }
    // Filtering: the experience holds only the samples that stopped.
    let mut c = config(4, 1e-3);
    c.overlong_filter = true;
    let t = trainer(c, 7);
    let stopped = plain.samples.iter().filter(|s| s.finish_reason == FinishReason::Stop).count();
    assert!(stopped > 0 && stopped < plain.samples.len(), "the toy run mixes both: {stopped}");
    let e = t.experience(plain.samples.clone()).unwrap();
    assert_eq!(e.samples.len(), stopped);
    assert!(e.samples.iter().all(|s| s.finish_reason == FinishReason::Stop));
    let cut: Vec<_> = plain.samples.into_iter().filter(|s| s.finish_reason == FinishReason::Length).collect();
    let err = t.experience(cut).unwrap_err().to_string();
    assert!(err.contains("cut at the length limit"), "{err}");
}

#[test]
fn grpo_runs_without_a_critic() {
    let mut c = config(4, 1e-3);
    c.estimator = EstimatorChoice::Grpo(GroupStd::Unbiased);
    let (_, policy, critic) = models(2);
    let err = Trainer::new(c.clone(), policy, Some(critic), Rng::seed_from_u64(0)).unwrap_err().to_string();
    assert!(err.contains("`grpo` estimator uses no critic"), "{err}");
    let (_, policy, _) = models(2);
    let mut t = Trainer::new(c, policy, None, Rng::seed_from_u64(0)).unwrap();
    let p0 = snapshot(&t.policy().model().parameters());
    let r = t.iteration(&prompts(3), &contains('e'), &detok).unwrap();
    assert!(r.value_loss.is_none() && r.critic_steps.is_empty() && r.policy_steps.len() == 1);
    assert!(max_diff(&p0, &snapshot(&t.policy().model().parameters())) > 0.0);
    // GAE needs a critic.
    let (_, policy, _) = models(2);
    let err = Trainer::new(config(4, 1e-3), policy, None, Rng::seed_from_u64(0)).unwrap_err().to_string();
    assert!(err.contains("needs a critic"), "{err}");
}

#[test]
fn bad_inputs_are_named_errors() {
    let mut t = trainer(config(2, 1e-3), 1);
    let err = t.iteration(&[], &contains('e'), &detok).unwrap_err().to_string();
    assert!(err.contains("prompt list is empty"), "{err}");
    // A detokenizer that writes nothing: every completion is empty and dropped.
    let silent = |_: &[u32]| String::new();
    let err = t.iteration(&prompts(2), &contains('e'), &silent).unwrap_err().to_string();
    assert!(err.contains("all 4 completions have empty text"), "{err}");
    let long = PromptItem { tokens: vec![5; 9], text: "long".into(), reference: String::new() };
    // KeepFirst (ORZ) cuts it to prompt_max_len = 6 tokens; Reject refuses it.
    assert!(t.iteration(std::slice::from_ref(&long), &contains('e'), &detok).is_ok());
    let mut c = config(2, 1e-3);
    c.prompt_overflow = PromptOverflow::Reject;
    let mut t = trainer(c, 1);
    let err = t.iteration(&[long], &contains('e'), &detok).unwrap_err().to_string();
    assert!(err.contains("prompt 0 has 9 tokens, more than prompt_max_len = 6"), "{err}");
    assert_eq!(t.iterations(), 0);
    // Config errors name the field.
    let mut c = config(2, 1e-3);
    c.packing_max_len = 8;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("packing_max_len"), "{err}");
    let mut c = config(2, 1e-3);
    c.critic_update_steps = 0;
    assert!(c.validate().unwrap_err().to_string().contains("critic_update_steps"));
}

#[test]
fn a_borrowed_backend_trains_exactly_as_the_owned_one() {
    use orz_core::backend::DType;
    use orz_core::model::{Critic, Policy};
    use orz_reference::Reference;
    use std::rc::Rc;

    // `&B` is a backend delegating to `B`: models on `Rc<&Reference>` (what a check holding only
    // `&B` builds) train exactly as on `Rc<Reference>`.
    let r = Reference::new();
    let mut rng = Rng::seed_from_u64(7);
    let policy = Policy::random(Rc::new(&r), &super::support::tiny(), DType::F32, &mut rng).unwrap();
    let critic = Critic::random(Rc::new(&r), &super::support::tiny(), DType::F32, &mut rng).unwrap();
    let mut borrowed = Trainer::new(config(4, 1e-3), policy, Some(critic), Rng::seed_from_u64(8)).unwrap();
    let mut owned = trainer(config(4, 1e-3), 7);
    let a = borrowed.iteration(&prompts(3), &contains('e'), &detok).unwrap();
    let b = owned.iteration(&prompts(3), &contains('e'), &detok).unwrap();
    assert_eq!((a.policy_loss, a.value_loss, a.packs), (b.policy_loss, b.value_loss, b.packs));
    let params = |p: Vec<orz_reference::Tensor>| snapshot(&p);
    let (pa, pb) =
        (params(borrowed.policy().model().parameters()), params(owned.policy().model().parameters()));
    assert_eq!(max_diff(&pa, &pb), 0.0);
}
