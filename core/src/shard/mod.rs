//! Sharded data-parallel training state (ZeRO-3 / FSDP `FULL_SHARD` semantics, or ZeRO-2 with
//! the weights kept whole), written once over [`crate::backend::Backend`] and
//! [`crate::collective::Collective`]: the flat layout of a sharding unit ([`UnitLayout`]), the
//! optimizer whose f32 masters, AdamW moments and gradient sums are split over the ranks
//! ([`ShardedOptimizer`]), a frozen model's slices ([`FrozenShards`]: the KL options' reference),
//! and a model gathered for one use ([`Gathered`]).
//!
//! A unit is what FSDP wraps and DeepSpeed ZeRO-3 partitions together: one decoder layer, the
//! embedding, the final norm with the model's head ([`crate::model::Qwen2::parameter_units`]).
//! Its parameters are flattened into one f32 vector padded to a multiple of the world size;
//! rank `r` owns the `r`-th equal slice. Gradients are reduce-scattered in f32 (veRL's FSDP
//! reduces in f32 as well), the clip's sum of squares is all-reduced, AdamW runs on the slice.
//! With sharded weights a rank keeps only its slices and a [`crate::model::Qwen2::skeleton`];
//! a training step gathers each unit in the compute dtype when it opens it and frees it after
//! ([`crate::model::UnitStore`]), generation and scoring gather the whole model once per phase.

pub mod frozen;
pub mod layout;
pub mod optimizer;

pub use frozen::FrozenShards;
pub use layout::UnitLayout;
pub use optimizer::{ShardedOptimizer, UnitState};

/// A model with its weights at hand: the caller's own (resident) model, or a copy gathered
/// from the ranks' slices for one use and freed when dropped (ZeRO-3).
#[derive(Debug)]
pub enum Gathered<'a, T> {
    /// The resident model itself.
    Resident(&'a T),
    /// A gathered copy.
    Gathered(T),
}

impl<T> core::ops::Deref for Gathered<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self {
            Gathered::Resident(t) => t,
            Gathered::Gathered(t) => t,
        }
    }
}
