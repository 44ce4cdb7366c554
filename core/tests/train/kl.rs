//! The reference model and the KL options (issue 16): KL in the reward and as a loss, the
//! reference frozen and restored, the entropy bonus and DAPO's dynamic sampling, on the
//! reference backend.

use std::rc::Rc;

use orz_core::backend::Backend;
use orz_core::model::{MemoryOptions, Policy};
use orz_core::ppo::kl::KlEstimator;
use orz_core::train::{EstimatorChoice, PromptItem, TrainConfig, Trainer};
use orz_reference::Reference;

use super::support::{config, contains, detok, max_diff, models, prompts, snapshot, tiny, trainer};

/// The shrunk tiny config with KL in the reward (`k3`).
fn kl_reward(lr: f64) -> TrainConfig {
    let mut c = config(4, lr);
    (c.kl_coef, c.kl_estimator) = (0.1, KlEstimator::K3);
    c
}

/// The shrunk tiny config with the KL loss (GRPO, `k3`).
fn kl_loss(lr: f64) -> TrainConfig {
    let mut c = config(4, lr);
    c.estimator = EstimatorChoice::Grpo(orz_core::ppo::grpo::GroupStd::Unbiased);
    (c.use_kl_loss, c.kl_loss_coef, c.kl_loss_estimator) = (true, 0.5, KlEstimator::K3);
    c
}

#[test]
fn the_kl_is_exactly_zero_while_the_policy_is_the_reference() {
    let (prompts, reward) = (prompts(3), contains('e'));
    for c in [kl_reward(0.0), kl_loss(0.0)] {
        let mut t = trainer(c.clone(), 31);
        assert!(t.reference().is_some(), "a KL option keeps a reference");
        for k in 0..2 {
            let r = t.iteration(&prompts, &reward, &detok).unwrap();
            // No learning: the policy stays the reference, the same forward gives the same bits.
            assert_eq!(r.kl, Some(0.0), "iteration {k}");
            assert_eq!(r.kl_loss, c.use_kl_loss.then_some(0.0), "iteration {k}");
            assert_eq!(r.ppo_kl, 0.0);
        }
        // The reward's KL part is 0, so the advantages are those of the run without KL.
        let (mut with, mut without) = (trainer(c.clone(), 32), trainer(config(4, 0.0), 32));
        if c.use_kl_loss {
            without = trainer(TrainConfig { use_kl_loss: false, kl_loss_coef: 0.0, ..c.clone() }, 32);
        }
        let rollout = with.rollout(&prompts, &reward, &detok).unwrap();
        let a = with.experience(rollout.samples.clone()).unwrap();
        assert_eq!(a.logp_ref.as_ref(), Some(&a.logp_old));
        let b = without.experience(rollout.samples).unwrap();
        assert!(b.logp_ref.is_none(), "no KL option, no reference log-probs");
        assert_eq!(with.advantages(&a).unwrap(), without.advantages(&b).unwrap());
        let _ = with.update(&a, &with.advantages(&a).unwrap()).unwrap();
    }
    assert!(trainer(config(4, 0.0), 33).reference().is_none(), "no KL option, no reference model");
}

#[test]
fn the_reference_stays_frozen_and_the_kl_grows() {
    let (prompts, reward) = (prompts(3), contains('e'));
    for c in [kl_reward(5e-2), kl_loss(5e-2)] {
        let mut t = trainer(c.clone(), 34);
        let before = snapshot(&t.reference().unwrap().model().parameters());
        assert_eq!(max_diff(&before, &snapshot(&t.policy().model().parameters())), 0.0);
        let first = t.iteration(&prompts, &reward, &detok).unwrap();
        let second = t.iteration(&prompts, &reward, &detok).unwrap();
        let after = snapshot(&t.reference().unwrap().model().parameters());
        assert_eq!(max_diff(&before, &after), 0.0, "the reference never moves");
        assert!(max_diff(&after, &snapshot(&t.policy().model().parameters())) > 1e-4, "the policy moved");
        assert_eq!(first.kl, Some(0.0));
        // k3 is >= 0, and > 0 once the policy differs from the reference.
        assert!(second.kl.unwrap() > 0.0, "{:?}: {:?}", c.estimator, second.kl);
        if c.use_kl_loss {
            assert!(second.kl_loss.unwrap() > 0.0);
        }
    }
}

/// A GRPO policy step with the KL loss, by hand: the loss of one pack (ORZ's pack mean) is the
/// mean over its response tokens of `pg_t + coef · k3_t`; its gradient through the reference
/// backend's autograd must equal that of the same loss built from the host per-token formula

#[test]
fn the_kl_loss_enters_the_policy_step() {
    let (prompts, reward) = (prompts(2), contains('e'));
    let c = kl_loss(1e-2);
    let mut t = trainer(c.clone(), 35);
    let rollout = t.rollout(&prompts, &reward, &detok).unwrap();
    let experience = t.experience(rollout.samples).unwrap();
    // A reference that differs from the policy: perturb its log-probs by hand.
    let mut experience = experience;
    let shifted: Vec<Vec<f64>> = experience
        .logp_ref
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| s.iter().enumerate().map(|(i, l)| l - 0.1 * (i % 3) as f64).collect())
        .collect();
    experience.logp_ref = Some(shifted.clone());
    let advantages = t.advantages(&experience).unwrap();
    let out = t.update(&experience, &advantages).unwrap();
    // At the single step the policy is the old one: ratio 1, so per token
    // pg_t = −A_t and the KL term is k3(logp_old, logp_ref).
    let k3: f64 = experience
        .logp_old
        .iter()
        .flatten()
        .zip(shifted.iter().flatten())
        .map(|(&l, &r)| KlEstimator::K3.per_token(l, r))
        .sum();
    let tokens = experience.logp_old.iter().map(Vec::len).sum::<usize>();
    let kl_mean = out.policy.kl_loss_sum.unwrap() / tokens as f64;
    assert!((kl_mean - k3 / tokens as f64).abs() < 1e-6, "{kl_mean} vs {}", k3 / tokens as f64);
    assert!(kl_mean > 0.0);
    // The step's loss: the pack means of pg + coef · k3 averaged over the packs.
    let mut want = 0.0;
    for pack in &experience.packs {
        let (mut sum, mut n) = (0.0, 0);
        for &i in &pack.samples {
            for (j, &l) in experience.logp_old[i].iter().enumerate() {
                sum += -advantages.advantages[i][j]
                    + c.kl_loss_coef * KlEstimator::K3.per_token(l, shifted[i][j]);
                n += 1;
            }
        }
        want += sum / n as f64 / experience.packs.len() as f64;
    }
    let got = out.policy.losses[0];
    assert!((got - want).abs() < 1e-5, "step loss {got}, by hand {want}");
}

#[test]
fn a_restored_trainer_needs_the_initial_policy_as_reference() {
    let (prompts, reward) = (prompts(3), contains('e'));
    let c = kl_reward(5e-2);
    let (_, initial, critic) = models(36);
    let initial_copy = orz_core::train::reference::frozen_copy(&initial).unwrap();
    let mut original =
        Trainer::new(c.clone(), initial, Some(critic), orz_core::rng::Rng::seed_from_u64(37)).unwrap();
    original.iteration(&prompts, &reward, &detok).unwrap();
    let state = original.state().unwrap();
    let b = Rc::new(Reference::new());
    let copy = |p: &Policy<Reference>| {
        let t = p.model().named_tensors().into_iter().map(|(n, t)| {
            let v = b.to_host_f64(&t).unwrap();
            (n, b.tensor_f64(&v, &b.shape(&t), b.dtype(&t)).unwrap())
        });
        Policy::from_tensors(Rc::clone(&b), &tiny(), t.collect()).unwrap()
    };
    let critic = |t: &Trainer<Reference>| {
        let named = t.critic().unwrap().model().named_tensors().into_iter().map(|(n, t)| {
            let v = b.to_host_f64(&t).unwrap();
            (n, b.tensor_f64(&v, &b.shape(&t), b.dtype(&t)).unwrap())
        });
        orz_core::model::Critic::from_tensors(Rc::clone(&b), &tiny(), named.collect()).unwrap()
    };
    // Without a reference: a clear error, not a silent copy of the current policy.
    let mut bare =
        Trainer::restore(c.clone(), copy(original.policy()), Some(critic(&original)), &state).unwrap();
    assert!(bare.reference().is_none());
    let err = bare.iteration(&prompts, &reward, &detok).unwrap_err().to_string();
    assert!(err.contains("with_reference"), "{err}");
    // With the initial policy: the run continues as the original's.
    let mut resumed = Trainer::restore(c.clone(), copy(original.policy()), Some(critic(&original)), &state)
        .unwrap()
        .with_reference(copy(&initial_copy))
        .unwrap();
    let a = original.iteration(&prompts, &reward, &detok).unwrap();
    let r = resumed.iteration(&prompts, &reward, &detok).unwrap();
    assert_eq!(a.rollout, r.rollout);
    assert!(a.kl.unwrap() > 0.0);
    assert!((a.kl.unwrap() - r.kl.unwrap()).abs() < 1e-9, "{:?} vs {:?}", a.kl, r.kl);
    // The wrong reference (the current policy) gives another KL: 0.
    let mut wrong = Trainer::restore(c, copy(original.policy()), Some(critic(&original)), &state)
        .unwrap()
        .with_reference(copy(original.policy()))
        .unwrap();
    let w = wrong.iteration(&prompts, &reward, &detok).unwrap();
    assert_ne!(w.kl, r.kl);
}

#[test]
fn the_entropy_bonus_is_logged_and_chunking_does_not_change_the_step() {
    let (prompts, reward) = (prompts(3), contains('e'));
    let mut c = config(4, 1e-2);
    c.entropy_coef = 0.01;
    let mut plain = c.clone();
    plain.memory = MemoryOptions::PLAIN;
    let mut chunked = c.clone();
    chunked.memory = MemoryOptions { activation_checkpointing: true, head_chunk_tokens: 5 };
    let (mut a, mut b) = (trainer(plain, 38), trainer(chunked, 38));
    let ra = a.iteration(&prompts, &reward, &detok).unwrap();
    let rb = b.iteration(&prompts, &reward, &detok).unwrap();
    let h = ra.entropy.unwrap();
    // A random tiny model is close to uniform over its 32 tokens.
    assert!(h > 0.5 * 32f64.ln() && h <= 32f64.ln() + 1e-9, "entropy {h}");
    assert!((h - rb.entropy.unwrap()).abs() < 1e-9);
    assert!((ra.policy_loss - rb.policy_loss).abs() < 1e-9);
    let d =
        max_diff(&snapshot(&a.policy().model().parameters()), &snapshot(&b.policy().model().parameters()));
    assert!(d < 1e-9, "chunked and plain steps differ by {d}");
    // The bonus changes the step: without it the update differs.
    let mut none = trainer(TrainConfig { entropy_coef: 0.0, memory: MemoryOptions::PLAIN, ..c }, 38);
    let rn = none.iteration(&prompts, &reward, &detok).unwrap();
    assert!(rn.entropy.is_none());
    let d =
        max_diff(&snapshot(&a.policy().model().parameters()), &snapshot(&none.policy().model().parameters()));
    assert!(d > 1e-7, "the entropy bonus changed the step by only {d}");
    // The bonus's part of the loss: −coef · mean entropy (ORZ's single step, pack mean).
    assert!(ra.policy_loss < rn.policy_loss);
}

/// A source of more prompts that counts its calls.
fn source(count: &mut usize) -> impl FnMut() -> orz_core::Result<Vec<PromptItem>> + '_ {
    move || {
        *count += 1;
        Ok(prompts(3 + *count).split_off(3))
    }
}

#[test]
fn dynamic_sampling_keeps_informative_groups_deterministically() {
    let reward = contains('e');
    let mut c = config(4, 1e-3);
    c.dynamic_sampling = true;
    c.dynamic_sampling_max_rounds = 4;
    let run = |c: &TrainConfig| {
        let mut t = trainer(c.clone(), 40);
        let mut calls = 0;
        let r = t.iteration_dynamic(&prompts(3), &mut source(&mut calls), &reward, &detok, None).unwrap();
        (r, calls)
    };
    let (r, calls) = run(&c);
    let stats = r.dynamic_sampling.unwrap();
    assert_eq!(calls, stats.rounds - 1, "one call per extra round");
    assert!(stats.rounds <= 4 && stats.kept_groups <= 3);
    assert!(stats.kept_groups == 3 || stats.rounds == 4, "{stats:?}");
    assert!(stats.dropped_groups > 0, "the toy task has uniform groups: {stats:?}");
    assert_eq!(r.rollout.prompts, stats.kept_groups);
    assert_eq!(run(&c), (r.clone(), calls), "seeded: the same rounds and the same report");

    // Every group uniform: the cap stops the rounds, and nothing to train on is an error.
    let all_same = contains('#');
    let mut t = trainer(c.clone(), 40);
    let mut calls = 0;
    let err = t.iteration_dynamic(&prompts(3), &mut source(&mut calls), &all_same, &detok, None).unwrap_err();
    assert_eq!(calls, 3, "4 rounds, 3 asked for more");
    assert!(err.to_string().contains("kept no prompt group in 4 round(s)"), "{err}");
    // Off: the source is never asked and no stats are logged.
    c.dynamic_sampling = false;
    let mut t = trainer(c, 40);
    let mut calls = 0;
    let r = t.iteration_dynamic(&prompts(3), &mut source(&mut calls), &reward, &detok, None).unwrap();
    assert_eq!((calls, r.dynamic_sampling), (0, None));
}
