//! [`FrozenShards`]: a model that is never trained (the KL options' reference model) sharded over
//! the ranks as ZeRO-3 shards the trained ones: each rank keeps its slice of every unit's flat
//! vector ([`UnitLayout`]) in the model's compute dtype, and the model is gathered whole only
//! for the pass that reads it, then freed. No masters, moments or gradients: it has none.

use alloc::rc::Rc;
use alloc::vec::Vec;

use super::layout::UnitLayout;
use crate::Result;
use crate::backend::Backend;
use crate::backend::ops::no_grad;
use crate::collective::Collective;
use crate::model::Qwen2;

/// This rank's slices of a frozen model, and the skeleton to gather them into.
pub struct FrozenShards<B: Backend> {
    skeleton: Qwen2<B>,
    /// Per unit: its layout and this rank's slice (compute dtype, storage of its own).
    units: Vec<(UnitLayout, B::Tensor)>,
    collective: Rc<dyn Collective<B>>,
}

impl<B: Backend> FrozenShards<B> {
    /// This rank's slices of `model` (resident, every rank holding the same weights) over the
    /// ranks of `collective`; the caller may drop the whole model afterwards. Communication-free.
    pub fn new(model: &Qwen2<B>, collective: Rc<dyn Collective<B>>) -> Result<Self> {
        let b = model.backend();
        let (world, rank) = (collective.world_size(), collective.rank());
        let params = model.parameters();
        let dtype = model.dtype();
        let units = no_grad(b, || {
            model
                .parameter_units()
                .into_iter()
                .map(|r| {
                    let tensors: Vec<Option<B::Tensor>> = params[r].iter().cloned().map(Some).collect();
                    let layout =
                        UnitLayout::new(tensors.iter().flatten().map(|t| b.shape(t)).collect(), world)?;
                    let flat = layout.flatten(b, &tensors)?;
                    let mine = layout.shard_range(rank);
                    // `cast` to the compute dtype copies out of the flat vector (a narrow alone
                    // would keep all of it alive); in f32 an explicit copy does.
                    let slice = b.cast(&b.narrow(&flat, 0, mine.start, mine.len())?, dtype)?;
                    let slice = if b.dtype(&flat) == dtype { b.affine(&slice, 1.0, 0.0)? } else { slice };
                    Ok((layout, slice))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        Ok(FrozenShards { skeleton: model.skeleton(), units, collective })
    }

    /// The skeleton the slices gather into (the architecture, no weights).
    pub fn skeleton(&self) -> &Qwen2<B> {
        &self.skeleton
    }

    /// The whole model gathered from every rank's slices (one all-gather per unit, in the
    /// compute dtype). Every rank must call it; the copy is freed when dropped.
    pub fn gather(&self) -> Result<Qwen2<B>> {
        let b = self.skeleton.backend();
        let mut ordered = Vec::new();
        no_grad(b, || {
            for (layout, slice) in &self.units {
                let full = self.collective.all_gather(b, slice)?;
                ordered.extend(layout.unflatten(b, &full)?);
            }
            Ok(())
        })?;
        self.skeleton.with_weights(ordered)
    }
}

impl<B: Backend> core::fmt::Debug for FrozenShards<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrozenShards")
            .field("units", &self.units.len())
            .field("rank", &self.collective.rank())
            .field("world_size", &self.collective.world_size())
            .finish()
    }
}
