//! PPO math on host slices: the advantage-estimator extension point ([`estimator`]), GAE, advantage whitening, the clipped policy and value losses and
//! their gradients, loss aggregation, GRPO group advantages and the global-norm clip factor.
//! Learning-rate schedules.
//!
//! Packed layouts: per-token inputs are flat slices covering every token of a batch (or of one
//! pack), cut into samples by `sample_lengths`; an optional `mask` marks the valid (response)
//! tokens. Masked positions get 0 in every per-token output and never reach a sum, a mean, a
//! variance or a gradient, so a NaN stored there never leaks.

pub mod aggregation;
pub mod autograd;
pub mod estimator;
pub mod gae;
pub mod grad_clip;
pub mod grpo;
pub mod layout;
pub mod policy_loss;
pub mod value_loss;
pub mod whitening;

mod sum;
