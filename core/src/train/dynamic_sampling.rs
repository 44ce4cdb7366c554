//! DAPO's dynamic sampling (Yu et al. 2025, "DAPO", §3.2; veRL's DAPO recipe
//! `algorithm.filter_groups`): a prompt group whose samples all got the same score carries no
//! group-relative signal, so it is dropped, and new prompt groups are generated until the batch
//! holds as many groups as the iteration started with, for at most
//! `dynamic_sampling_max_rounds` generation rounds (DAPO `max_num_gen_batches`). Off in ORZ.
//!
//! Conventions:
//! - "the same score": exact equality of the final scores ([`Sample::score`], after the soft
//!   overlong penalty when on: DAPO filters on its `seq_final_reward` or `acc` metric); a group
//!   left with one sample (the others empty, recipe step 4) counts as uniform.
//! - Kept groups are taken in generation order and the batch is cut to the wanted number of
//!   groups (DAPO: `batch[:traj_bsz]`); kept groups are renumbered `0..` in that order.
//! - The cap: after `dynamic_sampling_max_rounds` rounds the iteration trains on the groups it
//!   kept, fewer than wanted (DAPO raises an error instead; orz-rs logs the shortfall in
//!   [`DynamicSamplingStats`]); keeping no group at all is an error.
//! - Determinism: round 0 samples from the iteration's usual generation stream; round `r >= 1`
//!   from `rng.fork(k).fork(DYNAMIC_ROUNDS).fork(r)` ([`super::trainer::stream`]), and the extra
//!   prompts come from the caller's source in its (seeded) order. Over several ranks every rank
//!   gathers the whole rollout of a round ([`super::data_parallel`]), so every rank drops the
//!   same groups and runs the same rounds, provided the source gives every rank the same prompts.

use alloc::vec::Vec;

use super::rollout::{Rollout, Sample};
use crate::generation::GenerationStats;

/// What dynamic sampling did in one iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DynamicSamplingStats {
    /// Generation rounds run (1 when the first round filled the batch).
    pub rounds: usize,
    /// Prompt groups dropped because all their samples had the same score.
    pub dropped_groups: usize,
    /// Prompt groups kept (at most the wanted number; fewer when the cap was reached).
    pub kept_groups: usize,
    /// Prompt groups generated over all rounds.
    pub generated_groups: usize,
}

/// Whether every sample of a group has the same score (a group of one included).
pub fn is_uniform(group: &[Sample]) -> bool {
    group.windows(2).all(|w| w[0].score == w[1].score)
}

/// The samples of `samples` (in prompt order) cut into runs of one prompt each.
pub fn prompt_groups(samples: Vec<Sample>) -> Vec<Vec<Sample>> {
    let mut groups: Vec<Vec<Sample>> = Vec::new();
    for s in samples {
        match groups.last_mut() {
            Some(g) if g.last().is_some_and(|l| l.prompt == s.prompt) => g.push(s),
            _ => groups.push(alloc::vec![s]),
        }
    }
    groups
}

/// One round's filter: appends to `kept` the groups of `samples` whose scores differ, until
/// `kept` holds `wanted` groups; returns the number of groups dropped as uniform (groups beyond
/// `wanted` are neither kept nor counted as dropped).
pub fn keep_informative(samples: Vec<Sample>, kept: &mut Vec<Vec<Sample>>, wanted: usize) -> usize {
    let mut dropped = 0;
    for group in prompt_groups(samples) {
        if kept.len() >= wanted {
            break;
        }
        if is_uniform(&group) {
            dropped += 1;
        } else {
            kept.push(group);
        }
    }
    dropped
}

/// The kept groups as one batch, renumbered `0..` in order (the estimators need samples in
/// prompt order).
pub fn renumbered(kept: Vec<Vec<Sample>>) -> Vec<Sample> {
    kept.into_iter()
        .enumerate()
        .flat_map(|(p, group)| group.into_iter().map(move |s| Sample { prompt: p, ..s }))
        .collect()
}

/// The counters of two generation runs together (slots: the larger).
pub fn add_stats(a: GenerationStats, b: &GenerationStats) -> GenerationStats {
    GenerationStats {
        slots: a.slots.max(b.slots),
        prefills: a.prefills + b.prefills,
        slot_copies: a.slot_copies + b.slot_copies,
        decode_steps: a.decode_steps + b.decode_steps,
        decode_rows: a.decode_rows + b.decode_rows,
        tokens_generated: a.tokens_generated + b.tokens_generated,
    }
}

/// Accumulates the rounds of one iteration.
#[derive(Debug, Default)]
pub struct Rounds {
    kept: Vec<Vec<Sample>>,
    stats: DynamicSamplingStats,
    generated: usize,
    dropped_empty: usize,
    engine: GenerationStats,
}

impl Rounds {
    /// Adds one round's rollout over `prompts` prompts, keeping groups until `wanted`.
    pub fn add(&mut self, rollout: Rollout, prompts: usize, wanted: usize) {
        self.stats.rounds += 1;
        self.stats.generated_groups += prompts;
        self.generated += rollout.generated;
        self.dropped_empty += rollout.dropped_empty;
        self.engine = add_stats(self.engine, &rollout.stats);
        self.stats.dropped_groups += keep_informative(rollout.samples, &mut self.kept, wanted);
        self.stats.kept_groups = self.kept.len();
    }

    /// Groups kept so far.
    pub fn kept_groups(&self) -> usize {
        self.kept.len()
    }

    /// The rounds' rollout (kept groups renumbered) and what the filter did.
    pub fn finish(self) -> (Rollout, DynamicSamplingStats) {
        let rollout = Rollout {
            samples: renumbered(self.kept),
            generated: self.generated,
            dropped_empty: self.dropped_empty,
            stats: self.engine,
        };
        (rollout, self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generation::FinishReason;
    use alloc::string::String;
    use alloc::vec;
    use proptest::prelude::*;

    fn sample(prompt: usize, sample: usize, score: f64) -> Sample {
        Sample {
            prompt,
            sample,
            prompt_tokens: vec![1],
            response: vec![2],
            text: String::from("x"),
            finish_reason: FinishReason::Stop,
            score,
            label: "",
            sampling_log_probs: Vec::new(),
        }
    }

    fn batch(scores: &[&[f64]]) -> Vec<Sample> {
        scores
            .iter()
            .enumerate()
            .flat_map(|(p, g)| g.iter().enumerate().map(move |(i, &s)| sample(p, i, s)))
            .collect()
    }

    #[test]
    fn drops_exactly_the_uniform_groups() {
        let mut kept = Vec::new();
        let dropped =
            keep_informative(batch(&[&[1.0, 1.0], &[0.0, 1.0], &[0.0, 0.0], &[0.5]]), &mut kept, 10);
        assert_eq!(dropped, 3);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].iter().map(|s| s.prompt).collect::<Vec<_>>(), [1, 1]);
        // The cut at `wanted`: the third informative group is neither kept nor dropped.
        let mut kept = Vec::new();
        let dropped =
            keep_informative(batch(&[&[0.0, 1.0], &[1.0, 1.0], &[1.0, 0.0], &[0.0, 1.0]]), &mut kept, 2);
        assert_eq!((dropped, kept.len()), (1, 2));
        let flat = renumbered(kept);
        assert_eq!(
            flat.iter().map(|s| (s.prompt, s.score)).collect::<Vec<_>>(),
            [(0, 0.0), (0, 1.0), (1, 1.0), (1, 0.0)]
        );
    }

    proptest! {
        #[test]
        fn rounds_fill_the_batch_or_stop_at_the_cap(
            rounds in proptest::collection::vec(proptest::collection::vec(proptest::collection::vec(0u8..2, 1..4), 1..5), 1..5),
            wanted in 1usize..6,
        ) {
            let mut acc = Rounds::default();
            for r in &rounds {
                if acc.kept_groups() >= wanted { break; }
                let scores: Vec<Vec<f64>> = r.iter().map(|g| g.iter().map(|&x| f64::from(x)).collect()).collect();
                let refs: Vec<&[f64]> = scores.iter().map(Vec::as_slice).collect();
                let samples = batch(&refs);
                let rollout = Rollout { generated: samples.len(), samples, dropped_empty: 0, stats: GenerationStats::default() };
                acc.add(rollout, r.len(), wanted);
            }
            let ran = acc.stats.rounds;
            let (rollout, stats) = acc.finish();
            let informative: usize = rounds[..ran].iter().flatten().filter(|g| g.windows(2).any(|w| w[0] != w[1])).count();
            prop_assert_eq!(stats.kept_groups, informative.min(wanted));
            prop_assert!(stats.kept_groups <= wanted);
            // Every kept group has two different scores; prompts are 0.. in order.
            let groups = prompt_groups(rollout.samples);
            prop_assert_eq!(groups.len(), stats.kept_groups);
            for (p, g) in groups.iter().enumerate() {
                prop_assert!(!is_uniform(g));
                prop_assert!(g.iter().all(|s| s.prompt == p));
            }
            prop_assert!(stats.dropped_groups + stats.kept_groups <= stats.generated_groups);
        }
    }
}
