//! [`Trainer::state`] and [`Trainer::restore`]: a restored trainer carries the same optimizer
//! states, generator and counter, and continues the run as the original does; mismatched
//! states are refused.

use std::collections::BTreeMap;
use std::rc::Rc;

use orz_core::backend::Backend;
use orz_core::model::{Critic, Policy};
use orz_core::rng::Rng;
use orz_core::train::{Trainer, TrainerState};
use orz_reference::Reference;

use super::support::{config, contains, detok, max_diff, prompts, snapshot, tiny, trainer};

/// Copies of a model's named tensors on a fresh reference backend (host values, so the copy
/// shares no storage with the original).
fn copy_tensors(
    b: &Reference,
    named: Vec<(String, orz_reference::Tensor)>,
) -> BTreeMap<String, orz_reference::Tensor> {
    named
        .into_iter()
        .map(|(n, t)| {
            let values = b.to_host_f64(&t).unwrap();
            (n, b.tensor_f64(&values, &b.shape(&t), b.dtype(&t)).unwrap())
        })
        .collect()
}

/// A trainer over copies of `t`'s models, restored from `state`.
fn restored(t: &Trainer<Reference>, state: &TrainerState) -> orz_core::Result<Trainer<Reference>> {
    let b = Rc::new(Reference::new());
    let policy =
        Policy::from_tensors(Rc::clone(&b), &tiny(), copy_tensors(&b, t.policy().model().named_tensors()))?;
    let critic = t.critic().map(|c| copy_tensors(&b, c.model().named_tensors()));
    let critic = critic.map(|c| Critic::from_tensors(Rc::clone(&b), &tiny(), c)).transpose()?;
    Trainer::restore(t.config().clone(), policy, critic, state)
}

#[test]
fn a_restored_trainer_continues_the_run() {
    let (prompts, reward) = (prompts(3), contains('e'));
    let mut original = trainer(config(4, 1e-3), 21);
    for _ in 0..2 {
        original.iteration(&prompts, &reward, &detok).unwrap();
    }
    let state = original.state().unwrap();
    assert_eq!(state.iteration, 2);
    assert_eq!(state.policy_optimizer.step, 2);
    assert!(state.critic_optimizer.as_ref().is_some_and(|c| c.step > 2));
    let mut resumed = restored(&original, &state).unwrap();
    assert_eq!(resumed.state().unwrap(), state, "restore must give back exactly the saved state");
    // A control without the policy's moments: its continuation must differ.
    let mut no_moments = state.clone();
    no_moments.policy_optimizer.params.iter_mut().for_each(|p| p.moments = None);
    let mut cold = restored(&original, &no_moments).unwrap();

    let a = original.iteration(&prompts, &reward, &detok).unwrap();
    let b = resumed.iteration(&prompts, &reward, &detok).unwrap();
    cold.iteration(&prompts, &reward, &detok).unwrap();
    assert_eq!(a.iteration, 2);
    assert_eq!((b.iteration, resumed.iterations()), (2, 3));
    // Same draws: the same completions and scores.
    assert_eq!(a.rollout, b.rollout);
    // The reference keeps moments in f64; the state holds them as f32, so the two runs agree
    // to f32 rounding of the moments, far below what losing the moments changes.
    let policy = |t: &Trainer<Reference>| snapshot(&t.policy().model().parameters());
    let critic = |t: &Trainer<Reference>| snapshot(&t.critic().unwrap().model().parameters());
    let d =
        max_diff(&policy(&original), &policy(&resumed)).max(max_diff(&critic(&original), &critic(&resumed)));
    assert!(d < 1e-7, "resumed weights differ by {d}");
    let d = max_diff(&policy(&original), &policy(&cold));
    assert!(d > 1e-5, "dropping the moments changed the next update by only {d}");
}

#[test]
fn mismatched_states_are_refused() {
    let t = trainer(config(4, 1e-3), 22);
    let state = t.state().unwrap();
    let b = Rc::new(Reference::new());
    let mut rng = Rng::seed_from_u64(1);
    let policy =
        || Policy::random(Rc::clone(&b), &tiny(), orz_core::backend::DType::F32, &mut Rng::seed_from_u64(2));
    let critic = Critic::random(Rc::clone(&b), &tiny(), orz_core::backend::DType::F32, &mut rng).unwrap();

    let no_critic_state = TrainerState { critic_optimizer: None, ..state.clone() };
    let e =
        Trainer::restore(t.config().clone(), policy().unwrap(), Some(critic), &no_critic_state).unwrap_err();
    assert!(e.to_string().contains("no critic optimizer state"), "{e}");

    let mut wrong_shape = state.clone();
    wrong_shape.policy_optimizer.params[0].shape = vec![1, 2];
    let critic = Critic::random(Rc::clone(&b), &tiny(), orz_core::backend::DType::F32, &mut rng).unwrap();
    let e = Trainer::restore(t.config().clone(), policy().unwrap(), Some(critic), &wrong_shape).unwrap_err();
    assert!(e.to_string().contains("policy optimizer state") && e.to_string().contains("shape"), "{e}");
}
