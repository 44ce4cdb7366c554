//! The frozen reference model of the KL options: a copy of the initial policy, kept only when
//! `kl_coef > 0` or `use_kl_loss` ([`TrainConfig::uses_reference`]).
//!
//! Its log-prob of every response token is read in the experience phase by the same
//! no-gradient, chunked forward as the old log-probs
//! ([`make_experience_shared`]; over several ranks
//! each rank reads its own packs). Then:
//!
//! - **KL in the reward** (`kl_coef`): `−kl_coef · kl_t` on every response token with
//!   `kl_t = kl_estimator(logp_old_t, logp_ref_t)`, the score on the last token (ORZ's and
//!   OpenRLHF's `compute_reward`, [`crate::ppo::kl_reward`]), applied by
//!   [`super::advantages::compute_advantages`].
//! - **KL as a loss** (`use_kl_loss`, GRPO/veRL): the policy loss gains `kl_loss_coef ·
//!   kl_loss_estimator(logp_t, logp_ref_t)` per token with the current log-prob (its gradient
//!   flows through `logp`), weighted as the policy loss ([`super::update::policy_update`]).
//!
//! Metrics ([`super::IterationReport`]): `kl` is the mean per-token KL of the sampling policy
//! to the reference over the iteration's response tokens, with the reward's estimator under
//! `kl_coef > 0` and the loss's otherwise (what OpenRLHF logs as `kl`, a token mean per sample
//! averaged over samples there: orz-rs takes the token mean); `kl_loss` is the mean KL-loss term
//! over the policy steps' tokens (veRL's `actor/kl_loss`). `ppo_kl` is something else: the
//! mean `logp_old − logp` over the policy steps' tokens, the k1 KL of the current policy from
//! the one that sampled (veRL's `actor/ppo_kl`; OpenRLHF's trainer logs the same quantity as
//! `ppo_kl` in its policy loss status), 0 at ORZ's single policy step.
//!
//! On resume the reference must again be the *initial* policy, not the checkpoint's:
//! [`Trainer::restore`] builds no reference, and the caller hands it over with
//! [`Trainer::with_reference`] (the `orz` program loads the base model directory the run started
//! from, recorded in the checkpoint); an iteration of a trainer that needs one and has none is
//! an error.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::vec::Vec;

use super::config::TrainConfig;
use super::experience::Experience;
use crate::backend::Backend;
use crate::backend::ops::no_grad;
use crate::model::Policy;
use crate::{Error, Result};

#[cfg(doc)]
use super::Trainer;
#[cfg(doc)]
use super::experience::make_experience_shared;

/// A frozen copy of `policy`: every tensor copied (not shared, so the policy's updates do not
/// reach it), on the same backend, in the same dtype.
pub fn frozen_copy<B: Backend>(policy: &Policy<B>) -> Result<Policy<B>> {
    let model = policy.model();
    let b = model.backend();
    let tensors = no_grad(b, || {
        model
            .named_tensors()
            .into_iter()
            .map(|(name, t)| Ok((name, b.affine(&t, 1.0, 0.0)?)))
            .collect::<Result<BTreeMap<_, _>>>()
    })?;
    Policy::from_tensors(model.backend_rc(), model.config(), tensors)
}

/// Checks that `reference` can serve `policy` (same vocabulary, so their log-probs of a token
/// compare), naming the mismatch.
pub fn check_reference<B: Backend>(policy: &Policy<B>, reference: &Policy<B>) -> Result<()> {
    let (p, r) = (policy.model().config(), reference.model().config());
    if p.vocab_size != r.vocab_size {
        return Err(Error::invalid(
            "reference model",
            format!("vocabulary of {} tokens, the policy's has {}", r.vocab_size, p.vocab_size),
        ));
    }
    Ok(())
}

/// The error of a trainer that needs the reference model and has none (a restored trainer).
pub fn missing_reference() -> Error {
    Error::invalid(
        "reference model",
        "`kl_coef` > 0 or `use_kl_loss` needs the frozen reference model, and this trainer has none: \
         a restored trainer gets it with `Trainer::with_reference` (the initial policy, loaded from \
         the base model directory the run started from)",
    )
}

/// The per-token KL of the experience's old log-probs to the reference's, per sample, with
/// the estimator the config's KL option uses (the reward's under `kl_coef > 0`, else the
/// loss's); `None` without reference log-probs.
pub fn experience_kl(experience: &Experience, config: &TrainConfig) -> Result<Option<Vec<Vec<f64>>>> {
    let Some(logp_ref) = &experience.logp_ref else { return Ok(None) };
    let estimator = if config.kl_coef > 0.0 { config.kl_estimator } else { config.kl_loss_estimator };
    experience
        .logp_old
        .iter()
        .zip(logp_ref)
        .map(|(old, r)| estimator.host(old, r))
        .collect::<Result<_>>()
        .map(Some)
}

/// The mean of per-sample per-token values over all tokens (NaN without tokens).
pub fn token_mean(per_sample: &[Vec<f64>]) -> f64 {
    let n: usize = per_sample.iter().map(Vec::len).sum();
    per_sample.iter().flatten().sum::<f64>() / n as f64
}
