//! PPO math on host slices: GAE, advantage whitening, the clipped policy and value losses and
//! their gradients, loss aggregation, GRPO group advantages and the global-norm clip factor.
