//! The operations of [`crate::Candle`], by family: validation with `orz_core::backend::shape`,
//! then candle. [`adamw`] is the optimizer's update, [`fused`] holds the overrides of provided composites, [`causal`] the blockwise
//! `causal_attention` (its kernel in [`flash`]).

pub mod adamw;
pub mod causal;
pub(crate) mod elementwise;
pub mod flash;
pub mod fused;
pub(crate) mod layout;
pub mod log_prob;
pub(crate) mod reduce;
