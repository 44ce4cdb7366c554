//! Pure bookkeeping of an iteration: which samples share a pack (recipe step 6) and which packs
//! each optimizer step accumulates (recipe steps 9 and 10).

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use crate::rng::Rng;
use crate::{Error, Result};

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

/// Greedy packing (ORZ `_convert_prompts_outputs_to_batch_tensors_packing`, and
/// [`crate::model::PackedBatch::pack_greedy`]'s rule): items of `lengths`, taken in `order`, go
/// into the current pack while the pack stays at most `max_len` tokens, else they open a new
/// pack. Returns the item indices of each pack. Errors: an item longer than `max_len` (ORZ
/// silently drops it; here it names the item) or of length 0.
pub fn greedy_packs(lengths: &[usize], order: &[usize], max_len: usize) -> Result<Vec<Vec<usize>>> {
    const OP: &str = "packing";
    let mut packs: Vec<Vec<usize>> = Vec::new();
    let mut used = 0;
    for &i in order {
        let len = *lengths.get(i).ok_or_else(|| {
            Error::invalid(OP, format!("item {i} does not exist ({} items)", lengths.len()))
        })?;
        if len == 0 || len > max_len {
            return Err(Error::invalid(
                OP,
                format!("sample {i} has {len} tokens; a pack holds 1 to {max_len} (packing_max_len)"),
            ));
        }
        match packs.last_mut() {
            Some(pack) if used + len <= max_len => pack.push(i),
            _ => {
                packs.push(vec![i]);
                used = 0;
            }
        }
        used += len;
    }
    Ok(packs)
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
    fn greedy_packs_fill_in_order() {
        let lengths = [3, 4, 2, 5, 1];
        assert_eq!(
            greedy_packs(&lengths, &[0, 1, 2, 3, 4], 7).unwrap(),
            vec![vec![0, 1], vec![2, 3], vec![4]]
        );
        assert_eq!(
            greedy_packs(&lengths, &[4, 3, 2, 1, 0], 6).unwrap(),
            vec![vec![4, 3], vec![2, 1], vec![0]]
        );
        let err = greedy_packs(&lengths, &[3], 4).unwrap_err();
        assert!(alloc::string::ToString::to_string(&err).contains("sample 3 has 5 tokens"), "{err}");
        assert!(greedy_packs(&lengths, &[9], 4).is_err());
        assert!(greedy_packs(&[0], &[0], 4).is_err());
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
