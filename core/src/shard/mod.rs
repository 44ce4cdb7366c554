//! Sharded data-parallel training state (ZeRO / FSDP full-shard semantics for the optimizer),
//! written once over [`crate::backend::Backend`] and [`crate::collective::Collective`]: the
//! flat layout of a sharding unit ([`UnitLayout`]) and the optimizer whose f32 masters, AdamW
//! moments and gradient sums are split over the ranks ([`ShardedOptimizer`]).
//!
//! A unit is what FSDP wraps and DeepSpeed ZeRO-3 partitions together: one decoder layer, the
//! embedding, the final norm with the model's head ([`crate::model::Qwen2::parameter_units`]).
//! Its parameters are flattened into one f32 vector padded to a multiple of the world size;
//! rank `r` owns the `r`-th equal slice. Gradients are reduce-scattered in f32 (veRL's FSDP
//! reduces in f32 as well), the clip's sum of squares is all-reduced, AdamW runs on the slice,
//! and the updated weights are all-gathered in the parameters' dtype.

pub mod layout;
pub mod optimizer;

pub use layout::UnitLayout;
pub use optimizer::{ShardedOptimizer, UnitState};
