//! The typed phases: rollout -> experience -> advantages -> update composes to
//! [`Trainer::iteration`], and a custom advantage estimator plugs in with no trainer code.

use orz_core::ppo::estimator::{AdvantageEstimator, Estimate, EstimatorInput};
use orz_core::rng::Rng;
use orz_core::train::{Trainer, Updates};

use super::support::{config, contains, detok, max_diff, models, prompts, snapshot, trainer};

const SEED: u64 = 5;

#[test]
fn the_phases_compose_to_the_iteration() {
    let c = config(4, 1e-3);
    let mut whole = trainer(c.clone(), SEED);
    let report = whole.iteration(&prompts(3), &contains('e'), &detok).unwrap();

    // The four phases called one by one.
    let mut phased = trainer(c.clone(), SEED);
    let rollout = phased.rollout(&prompts(3), &contains('e'), &detok).unwrap();
    assert_eq!(rollout.generated, report.rollout.generated);
    let experience = phased.experience(rollout.samples).unwrap();
    assert_eq!(experience.packs.len(), report.packs);
    assert_eq!(experience.logp_old.len(), experience.samples.len());
    let advantages = phased.advantages(&experience).unwrap();
    let Updates { critic, policy } = phased.update(&experience, &advantages).unwrap();
    assert_eq!(policy.steps, report.policy_steps);
    assert_eq!(critic.unwrap().steps, report.critic_steps);
    assert_eq!(phased.iterations(), 0, "the phases do not advance the counter");
    for (a, b) in [
        (whole.policy().model().parameters(), phased.policy().model().parameters()),
        (whole.critic().unwrap().model().parameters(), phased.critic().unwrap().model().parameters()),
    ] {
        assert_eq!(max_diff(&snapshot(&a), &snapshot(&b)), 0.0);
    }

    // The last three phases on a rollout sampled beforehand.
    let mut from_rollout = trainer(c, SEED);
    let rollout = from_rollout.rollout(&prompts(3), &contains('e'), &detok).unwrap();
    let again = from_rollout.iteration_from_rollout(3, rollout).unwrap();
    assert_eq!(again, report);
    assert_eq!(from_rollout.iterations(), 1);
}

/// Every response token of a sample gets its score (no baseline, no critic).
#[derive(Debug)]
struct RawScore;

impl AdvantageEstimator for RawScore {
    fn name(&self) -> &str {
        "raw_score"
    }
    fn uses_critic(&self) -> bool {
        false
    }
    fn estimate(&self, input: &EstimatorInput<'_>) -> orz_core::Result<Estimate> {
        Estimate::spread(input.scores, input.response_lengths)
    }
}

/// Claims no critic but returns value targets: the trainer refuses its output.
#[derive(Debug)]
struct Inconsistent;

impl AdvantageEstimator for Inconsistent {
    fn name(&self) -> &str {
        "inconsistent"
    }
    fn uses_critic(&self) -> bool {
        false
    }
    fn estimate(&self, input: &EstimatorInput<'_>) -> orz_core::Result<Estimate> {
        let tokens = input.tokens();
        Ok(Estimate { advantages: vec![0.0; tokens], returns: Some(vec![0.0; tokens]) })
    }
}

#[test]
fn a_custom_estimator_plugs_in_without_trainer_code() {
    let mut c = config(4, 1e-3);
    c.advantage_normalize = false;
    let (_, policy, critic) = models(SEED);
    let err =
        Trainer::with_estimator(c.clone(), policy, Some(critic), Rng::seed_from_u64(1), Box::new(RawScore))
            .unwrap_err()
            .to_string();
    assert!(err.contains("`raw_score` estimator uses no critic"), "{err}");

    let (_, policy, _) = models(SEED);
    let mut t =
        Trainer::with_estimator(c.clone(), policy, None, Rng::seed_from_u64(1), Box::new(RawScore)).unwrap();
    assert_eq!(t.estimator().name(), "raw_score");
    let rollout = t.rollout(&prompts(3), &contains('e'), &detok).unwrap();
    let experience = t.experience(rollout.samples).unwrap();
    assert!(experience.values.is_none());
    let advantages = t.advantages(&experience).unwrap();
    for (s, a) in experience.samples.iter().zip(&advantages.advantages) {
        assert!(a.len() == s.response.len() && a.iter().all(|&x| x == s.score), "{a:?} vs {}", s.score);
    }
    let p0 = snapshot(&t.policy().model().parameters());
    let report = t.iteration(&prompts(3), &contains('e'), &detok).unwrap();
    assert!(report.value_loss.is_none() && report.policy_steps.len() == 1);
    assert!(max_diff(&p0, &snapshot(&t.policy().model().parameters())) > 0.0);

    let (_, policy, _) = models(SEED);
    let mut t =
        Trainer::with_estimator(c, policy, None, Rng::seed_from_u64(1), Box::new(Inconsistent)).unwrap();
    let err = t.iteration(&prompts(3), &contains('e'), &detok).unwrap_err().to_string();
    assert!(err.contains("`inconsistent` uses no critic but gave returns"), "{err}");
    assert_eq!(t.iterations(), 0);
}

#[test]
fn orz_clip_ratio_counts_at_least_the_binding_tokens() {
    let mut c = config(4, 5e-2);
    c.policy_update_steps = 4; // after the first step the ratio moves away from 1
    let mut t = trainer(c, SEED);
    let r = t.iteration(&prompts(3), &contains('e'), &detok).unwrap();
    assert!(r.clip_ratio > 0.0 && r.clip_ratio >= r.clip_fraction, "{} vs {}", r.clip_ratio, r.clip_fraction);
    assert!(r.clip_ratio <= 1.0);
}
