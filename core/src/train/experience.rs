//! Recipe steps 6 and 7, the experience phase: the rollout's samples packed (step 6), and the
//! old log-probs and values of every response token (step 7), as an [`Experience`].

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use super::data_parallel::{owned, share_per_sample};
use super::grouping::shuffled_order;
use super::rollout::Sample;
use crate::backend::Backend;
use crate::backend::ops::no_grad;
use crate::collective::{Collective, Single};
use crate::model::packing::greedy_packs;
use crate::model::{Critic, PackedBatch, Policy, response_positions};
use crate::ppo::aggregation::PackLayout;
use crate::{Error, Result};

/// One pack (ORZ: one packed row of at most `packing_max_len` tokens, a micro-batch of its own):
/// the samples it holds, back to back, and which positions carry the log-probs and values of
/// response tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Pack {
    /// The one-row packed batch (no padding: its length is the sum of its samples' lengths).
    pub batch: PackedBatch,
    /// Indices of its samples in the iteration's sample list, in row order.
    pub samples: Vec<usize>,
    /// Per position: true where the position holds a response token's log-prob and value (the
    /// position before the token, [`response_positions`]).
    pub response_mask: Vec<bool>,
    /// Tokens of each sample, in row order.
    pub sample_lengths: Vec<usize>,
    /// Positions of each sample's response log-probs and values in the row, in row order.
    pub response_ranges: Vec<Range<usize>>,
}

impl Pack {
    /// A pack of `members` (indices into `samples`), in that order.
    pub fn new(samples: &[Sample], members: Vec<usize>) -> Result<Pack> {
        let seqs: Vec<Vec<u32>> = members.iter().map(|&i| samples[i].sequence()).collect();
        let batch = PackedBatch::pack(&[seqs])?;
        let mut response_mask = vec![false; batch.seq_len()];
        let mut response_ranges = Vec::with_capacity(members.len());
        for (span, &i) in batch.samples().iter().zip(&members) {
            let s = &samples[i];
            let range = response_positions(span.start, s.prompt_tokens.len(), s.response.len())?;
            response_mask[range.clone()].fill(true);
            response_ranges.push(range);
        }
        let sample_lengths = batch.samples().iter().map(|s| s.len).collect();
        Ok(Pack { batch, samples: members, response_mask, sample_lengths, response_ranges })
    }

    /// The layout [`crate::ppo::aggregation`] weighs tokens by.
    pub fn layout(&self) -> PackLayout<'_> {
        PackLayout { mask: &self.response_mask, sample_lengths: &self.sample_lengths }
    }

    /// Response tokens in the pack.
    pub fn response_tokens(&self) -> usize {
        self.response_mask.iter().filter(|&&m| m).count()
    }

    /// A per-position array of the pack: each member's per-response-token entries
    /// (`per_sample[i]` for sample `i` of the iteration) at the positions of its response
    /// tokens' log-probs, 0 elsewhere. Errors if an entry does not hold one value per response
    /// token.
    pub fn scatter(&self, per_sample: &[Vec<f64>]) -> Result<Vec<f64>> {
        let mut out = vec![0.0; self.batch.seq_len()];
        for (range, &i) in self.response_ranges.iter().zip(&self.samples) {
            let values = per_sample.get(i).ok_or_else(|| {
                Error::invalid(
                    "pack scatter",
                    format!("no entries for sample {i} ({} given)", per_sample.len()),
                )
            })?;
            if values.len() != range.len() {
                return Err(Error::invalid(
                    "pack scatter",
                    format!("sample {i} has {} entries for {} response tokens", values.len(), range.len()),
                ));
            }
            out[range.clone()].copy_from_slice(values);
        }
        Ok(out)
    }

    /// The inverse of [`Pack::scatter`]: each member's entries of a per-position array of the
    /// pack, in row order.
    pub fn gather(&self, per_position: &[f64]) -> Result<Vec<Vec<f64>>> {
        crate::error::check_len(
            "pack gather",
            ("per_position", per_position.len()),
            ("seq_len", self.batch.seq_len()),
        )?;
        Ok(self.response_ranges.iter().map(|r| per_position[r.clone()].to_vec()).collect())
    }
}

/// Recipe step 6: the samples in a fixed-seed shuffled order ([`shuffled_order`]), packed
/// greedily into packs of at most `packing_max_len` tokens ([`greedy_packs`]).
pub fn build_packs(samples: &[Sample], packing_max_len: usize, seed: u64) -> Result<Vec<Pack>> {
    let lengths: Vec<usize> = samples.iter().map(Sample::len).collect();
    let order = shuffled_order(samples.len(), seed);
    greedy_packs(&lengths, &order, packing_max_len)?.into_iter().map(|m| Pack::new(samples, m)).collect()
}

/// The experience phase's output (recipe steps 6 and 7): the rollout's samples, their packs,
/// and what the policy and the critic said of every response token before the update.
#[derive(Debug, Clone, PartialEq)]
pub struct Experience {
    /// The kept samples of the rollout, in (prompt, sample) order.
    pub samples: Vec<Sample>,
    /// The packs, in packing order.
    pub packs: Vec<Pack>,
    /// Per sample, the old log-prob of each response token (recipe step 7).
    pub logp_old: Vec<Vec<f64>>,
    /// Per sample, the critic's value of each response token (`None` without a critic).
    pub values: Option<Vec<Vec<f64>>>,
    /// Per sample, the frozen reference model's log-prob of each response token (`None`
    /// without a KL option, [`super::reference`]).
    pub logp_ref: Option<Vec<Vec<f64>>>,
}

impl Experience {
    /// Each sample's response length in tokens.
    pub fn response_lengths(&self) -> Vec<usize> {
        self.samples.iter().map(|s| s.response.len()).collect()
    }

    /// Each sample's score.
    pub fn scores(&self) -> Vec<f64> {
        self.samples.iter().map(|s| s.score).collect()
    }

    /// Each sample's prompt index.
    pub fn prompts(&self) -> Vec<usize> {
        self.samples.iter().map(|s| s.prompt).collect()
    }

    /// Prompt plus response tokens over all samples (what the update trains on).
    pub fn training_tokens(&self) -> usize {
        self.samples.iter().map(Sample::len).sum()
    }
}

/// Recipe steps 6 and 7: packs `samples` ([`build_packs`]), then reads the old log-prob
/// (policy) and, with a critic, the value of every response token, pack by pack, without
/// recording gradients. ORZ's alignment: both are read at the position before each response
/// token ([`response_positions`]).
pub fn make_experience<B: Backend>(
    policy: &Policy<B>,
    critic: Option<&Critic<B>>,
    samples: Vec<Sample>,
    packing_max_len: usize,
    pack_shuffle_seed: u64,
) -> Result<Experience> {
    make_experience_shared(policy, critic, None, samples, packing_max_len, pack_shuffle_seed, &Single)
}

/// [`make_experience`] over the ranks of `collective` (every rank passes the same samples),
/// with the reference model's log-probs when a `reference` is given (read by the same
/// no-gradient forward as the old log-probs): each rank reads the packs it owns (pack `p` on
/// rank `p mod W`) and the ranks exchange the results ([`super::data_parallel`]), so every rank
/// ends with the whole experience.
pub fn make_experience_shared<B: Backend>(
    policy: &Policy<B>,
    critic: Option<&Critic<B>>,
    reference: Option<&Policy<B>>,
    samples: Vec<Sample>,
    packing_max_len: usize,
    pack_shuffle_seed: u64,
    collective: &dyn Collective<B>,
) -> Result<Experience> {
    let models = ExperienceModels {
        policy: || Ok(policy),
        critic: critic.map(|c| move || Ok(c)),
        reference: reference.map(|r| move || Ok(r)),
    };
    make_experience_staged(models, samples, packing_max_len, pack_shuffle_seed, collective)
}

/// The models of the experience pass, each opened when its pass begins and dropped when it ends
/// (the policy's pass, the reference's, then the critic's), so that a rank whose weights are
/// sharded (ZeRO-3) holds one gathered model at a time instead of all of them.
pub struct ExperienceModels<P, R, C> {
    /// Opens the policy (a gather under ZeRO-3; the resident model otherwise).
    pub policy: P,
    /// Opens the frozen reference model, when the recipe reads its log-probs (KL options).
    pub reference: Option<R>,
    /// Opens the critic; `None` without one (GRPO and the other critic-free estimators).
    pub critic: Option<C>,
}

/// [`make_experience_shared`] with each model opened only for its own pass
/// ([`ExperienceModels`]): the per-token numbers are the same, read in another order.
pub fn make_experience_staged<B, P, R, C, PM, RM, CM>(
    models: ExperienceModels<P, R, C>,
    samples: Vec<Sample>,
    packing_max_len: usize,
    pack_shuffle_seed: u64,
    collective: &dyn Collective<B>,
) -> Result<Experience>
where
    B: Backend,
    P: FnOnce() -> Result<PM>,
    R: FnOnce() -> Result<RM>,
    C: FnOnce() -> Result<CM>,
    PM: core::ops::Deref<Target = Policy<B>>,
    RM: core::ops::Deref<Target = Policy<B>>,
    CM: core::ops::Deref<Target = Critic<B>>,
{
    let packs = build_packs(&samples, packing_max_len, pack_shuffle_seed)?;
    let mine_packs = owned(packs.len(), collective.rank(), collective.world_size());
    let mut mine = vec![false; samples.len()];
    for &i in mine_packs.iter().flat_map(|&p| &packs[p].samples) {
        mine[i] = true;
    }
    let n = samples.len();
    // Each model is opened for its own pass and dropped at its end; the backend handle outlives
    // the policy's pass (it holds no weights).
    let (b, logp_old) = {
        let policy = (models.policy)()?;
        let b = policy.model().backend_rc();
        let logp_old = read_packs(&*b, &packs, &mine_packs, n, |batch| policy.next_token_log_probs(batch))?;
        (b, logp_old)
    };
    let read = |per_pack: &dyn Fn(&PackedBatch) -> Result<B::Tensor>| {
        read_packs(&*b, &packs, &mine_packs, n, per_pack)
    };
    let logp_ref = models
        .reference
        .map(|open| open().and_then(|reference| read(&|batch| reference.next_token_log_probs(batch))))
        .transpose()?;
    let values = models
        .critic
        .map(|open| open().and_then(|critic| read(&|batch| critic.values(batch))))
        .transpose()?;
    let lengths: Vec<usize> = samples.iter().map(|s| s.response.len()).collect();
    let logp_old = share_per_sample(collective, logp_old, &lengths, &mine)?;
    let values = values.map(|v| share_per_sample(collective, v, &lengths, &mine)).transpose()?;
    let logp_ref = logp_ref.map(|v| share_per_sample(collective, v, &lengths, &mine)).transpose()?;
    Ok(Experience { samples, packs, logp_old, values, logp_ref })
}

/// One model's per-token numbers on the packs this rank owns (`read` gives a pack's
/// per-position values), without recording gradients, as per-sample lists (empty for the
/// samples of other ranks' packs).
fn read_packs<B: Backend>(
    b: &B,
    packs: &[Pack],
    owned: &[usize],
    n_samples: usize,
    read: impl Fn(&PackedBatch) -> Result<B::Tensor>,
) -> Result<Vec<Vec<f64>>> {
    let mut out = vec![Vec::new(); n_samples];
    no_grad(b, || {
        for &p in owned {
            let pack = &packs[p];
            let per_position = b.to_host_f64(&read(&pack.batch)?)?;
            for (&i, entries) in pack.samples.iter().zip(pack.gather(&per_position)?) {
                out[i] = entries;
            }
        }
        Ok(())
    })?;
    Ok(out)
}
