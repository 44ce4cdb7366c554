//! Proptest strategies for the inputs of PPO math.
