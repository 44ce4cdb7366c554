//! PPO math: per-token KL estimators ([`kl`]) and KL in the reward ([`kl_reward`]), the entropy bonus ([`entropy`]), the advantage-estimator extension point ([`estimator`]) with its members (GAE,
//! GRPO and Dr. GRPO, RLOO, REINFORCE++), advantage whitening and loss aggregation on host slices; the clipped policy and
//! value losses twice, side by side in one module each: the tensor version the trainer trains
//! with (the default of [`crate::backend::Backend::policy_loss`] and
//! [`crate::backend::Backend::value_loss`]) and its host oracle with hand-written gradients,
//! which the conformance suite compares backends against. Gradient-norm clipping lives with the
//! optimizer ([`crate::optimizer::clip`]), greedy packing with the packed layout
//! ([`crate::model::packing::greedy_packs`]).
//!
//! Packed layouts: per-token inputs are flat slices covering every token of a batch (or of one
//! pack), cut into samples by `sample_lengths`; an optional `mask` marks the valid (response)
//! tokens. Masked positions get 0 in every per-token output and never reach a sum, a mean, a
//! variance or a gradient, so a NaN stored there never leaks.

pub mod aggregation;
pub mod autograd;
pub mod entropy;
pub mod estimator;
pub mod gae;
pub mod grpo;
pub mod kl;
pub mod kl_reward;
pub mod layout;
pub mod policy_loss;
pub mod reinforce;
pub mod rloo;
pub mod value_loss;
pub mod whitening;

pub(crate) mod sum;
