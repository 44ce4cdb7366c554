//! The operations of [`crate::Candle`], by family: validation with `orz_core::backend::shape`,
//! then candle. [`fused`] holds the overrides of provided composites, [`causal`] the blockwise
//! `causal_attention` (its kernel in [`flash`]).

pub mod causal;
pub(crate) mod elementwise;
pub mod flash;
pub mod fused;
pub(crate) mod layout;
pub(crate) mod reduce;
