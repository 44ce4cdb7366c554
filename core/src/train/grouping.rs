//! Pure bookkeeping of an iteration: which samples share a pack (recipe step 6) and which packs
//! each optimizer step accumulates (recipe steps 9 and 10).

use alloc::vec::Vec;
use core::ops::Range;

use crate::rng::Rng;

/// The packing order: sample indices `0..n` shuffled by a generator seeded with `seed` afresh
/// (ORZ shuffles its rollout list with `random.Random(42)` every iteration, so the permutation
/// depends only on the seed and the count; ours is Fisher-Yates over [`Rng`], not Python's).
/// ORZ shuffles the `prompts × n` list before generation and packs in that order; orz-rs
/// shuffles the kept samples after generation (sampling does not depend on the order here, each
/// sample has its own random stream), which gives the same kind of packs.
pub fn shuffled_order(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    Rng::seed_from_u64(seed).shuffle(&mut order);
    order
}

/// The packs (positions in the shuffled pack order) each of `steps` optimizer steps accumulates,
/// given `packs` packs (ORZ_RECIPE.md steps 9 and 10): every step takes `max(1, packs / steps)`
/// consecutive packs (integer division); the `packs − steps · per_step` leftover packs are not
/// used; with fewer packs than steps there are `packs` steps of one pack. ORZ's critic: 30
/// packs over 12 steps give 12 steps of 2 packs and 6 unused packs; 5 packs give 5 steps of 1.
/// The policy's single step (`steps = 1`) takes every pack; more policy steps (an option) split
/// the packs by the same rule. No step for 0 packs or 0 steps.
pub fn step_groups(packs: usize, steps: usize) -> Vec<Range<usize>> {
    if packs == 0 || steps == 0 {
        return Vec::new();
    }
    let per_step = (packs / steps).max(1);
    (0..steps.min(packs)).map(|s| s * per_step..(s + 1) * per_step).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn critic_grouping_follows_the_recipe() {
        let g = step_groups(30, 12);
        assert_eq!(g.len(), 12);
        assert!(g.iter().all(|r| r.len() == 2));
        assert_eq!(g.last(), Some(&(22..24))); // packs 24..30 (6) unused
        assert_eq!(step_groups(5, 12), (0..5).map(|i| i..i + 1).collect::<Vec<_>>());
        assert_eq!(step_groups(12, 12).len(), 12);
        assert_eq!(step_groups(25, 12).iter().map(|r| r.len()).sum::<usize>(), 24);
        assert_eq!(step_groups(7, 1), vec![0..7]);
        assert_eq!(step_groups(7, 2), vec![0..3, 3..6]);
        assert!(step_groups(0, 12).is_empty() && step_groups(3, 0).is_empty());
    }

    #[test]
    fn shuffle_depends_only_on_the_seed() {
        let a = shuffled_order(50, 42);
        assert_eq!(a, shuffled_order(50, 42));
        assert_ne!(a, shuffled_order(50, 43));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }
}
