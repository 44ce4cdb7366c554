//! Level 4, the model's forward paths: policy logits of packed rows, packed = padded (log-probs
//! and values), KV-cache decoding = the full forward, and the critic's values with ORZ's
//! alignment. The tiny 2-layer model of [`super::tiny`] gets the same weights on both sides;
//! whole-model outputs are compared with [`model_tol`].

use orz_core::backend::{Backend, DType};
use orz_core::generation::SlotDecoder;
use orz_core::model::{PackedBatch, Policy};
use orz_core::rng::Rng;
use proptest::collection::vec;
use proptest::prelude::*;

use super::tiny::{
    MODEL_CASES, Pair, compare_where, config, failed, kit, model_tol, seed, token_mask, tokens,
};
use crate::harness::compare;
use crate::runner::{CheckOutcome, run_cases};
use crate::tolerance::Tolerance;

/// Token sequences of the given lengths from `seed`, in `2..vocab`.
fn sequences(seed: u64, lengths: &[usize], vocab: usize) -> Vec<Vec<u32>> {
    let mut rng = Rng::seed_from_u64(seed ^ 0x70C3);
    lengths.iter().map(|&n| tokens(&mut rng, n, vocab)).collect()
}

/// Policy logits `[rows, seq_len, vocab]` of packed rows (1 to 3 rows of 1 to 3 samples), tied
/// and untied LM heads, against the reference at every token position (padding is not
/// compared: its logits are meaningless).
pub fn check_model_logits<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let pair = Pair::new(backend, dtype);
    let layout = vec(vec(1..=6usize, 1..=3), 1..=3);
    run_cases(
        "model_logits",
        dtype,
        MODEL_CASES,
        (seed(), any::<bool>(), layout),
        |(seed, tied, rows), stats| {
            let c = config(*tied);
            let m = pair.policies(&c, *seed)?;
            let rows: Vec<Vec<Vec<u32>>> =
                rows.iter().enumerate().map(|(i, r)| sequences(seed + i as u64, r, c.vocab_size)).collect();
            let batch = PackedBatch::pack(&rows).map_err(kit)?;
            let want = m.reference.logits(&batch).map_err(kit)?;
            let got = m.backend.logits(&batch).map_err(failed("policy logits"))?;
            let what = format!("logits of the rows {rows:?}");
            let (got, want, shape) = pair.fetch(&what, &got, &want)?;
            compare_where(&what, &shape, (&got, &want), &token_mask(&batch), model_tol(dtype), stats)
        },
    )
}

/// Per sample, in sample order, the entries of `per_position` (`[rows, seq_len]` values) at the
/// positions of its tokens, without the last `drop_last` of them.
fn per_sample(batch: &PackedBatch, per_position: &[f64], drop_last: usize) -> Vec<f64> {
    let seq = batch.seq_len();
    let mut out = Vec::new();
    for s in batch.samples() {
        let start = s.row * seq + s.start;
        out.extend_from_slice(&per_position[start..start + s.len - drop_last]);
    }
    out
}

/// On the backend alone, the log-probs of each sample's next tokens and the critic's values
/// are the same whether the samples are packed several per row (positions restarting, attention
/// within a sample) or padded one per row, under the dtype's tolerance; and both layouts match
/// the reference.
pub fn check_packed_equals_padded<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let pair = Pair::new(backend, dtype);
    let strategy = (seed(), vec(2..=6usize, 3..=5));
    run_cases("packed_equals_padded", dtype, MODEL_CASES, strategy, |(seed, lengths), stats| {
        let c = config(false);
        let (policies, critics) = (pair.policies(&c, *seed)?, pair.critics(&c, seed + 1)?);
        let samples = sequences(*seed, lengths, c.vocab_size);
        let layouts = [
            ("packed", PackedBatch::pack_greedy(&samples, 10).map_err(kit)?),
            ("padded", PackedBatch::padded(&samples).map_err(kit)?),
        ];
        let mut backend_sides: Vec<[Vec<f64>; 2]> = Vec::new();
        for (name, batch) in &layouts {
            let lp_r = policies.reference.next_token_log_probs(batch).map_err(kit)?;
            let lp_b = policies.backend.next_token_log_probs(batch).map_err(failed("log-probs"))?;
            let v_r = critics.reference.values(batch).map_err(kit)?;
            let v_b = critics.backend.values(batch).map_err(failed("values"))?;
            let (lp_b, lp_r, _) = pair.fetch(&format!("{name} log-probs"), &lp_b, &lp_r)?;
            let (v_b, v_r, _) = pair.fetch(&format!("{name} values"), &v_b, &v_r)?;
            let (lp_b, lp_r) = (per_sample(batch, &lp_b, 1), per_sample(batch, &lp_r, 1));
            let (v_b, v_r) = (per_sample(batch, &v_b, 0), per_sample(batch, &v_r, 0));
            let tol = model_tol(dtype);
            let context = |e: String| format!("{name} layout of the samples {samples:?}: {e}");
            compare("log-probs vs reference", &[lp_b.len()], &lp_b, &lp_r, tol, stats).map_err(context)?;
            compare("values vs reference", &[v_b.len()], &v_b, &v_r, tol, stats).map_err(context)?;
            backend_sides.push([lp_b, v_b]);
        }
        let tol = Tolerance::for_dtype(dtype);
        for (k, what) in ["log-probs", "values"].into_iter().enumerate() {
            let (packed, padded) = (&backend_sides[0][k], &backend_sides[1][k]);
            compare(
                &format!("backend {what}, packed vs padded"),
                &[packed.len()],
                packed,
                padded,
                tol,
                stats,
            )
            .map_err(|e| format!("{e}\n  samples (sample order): {samples:?}"))?;
        }
        Ok(())
    })
}

/// The decode schedule of one case: prompts prefilled into slots `0..n`, slot `n` a copy of
/// slot 0, then per step the slots to decode (varying subsets and orders) and their tokens.
#[derive(Debug, Clone)]
struct Schedule {
    prompts: Vec<Vec<u32>>,
    steps: Vec<(Vec<usize>, Vec<u32>)>,
}

impl Schedule {
    fn new(seed: u64, prompt_lens: &[usize], steps: usize, vocab: usize) -> Schedule {
        let prompts = sequences(seed, prompt_lens, vocab);
        let slots = prompts.len() + 1;
        let mut rng = Rng::seed_from_u64(seed ^ 0xDEC0);
        let steps = (0..steps)
            .map(|step| {
                let mut listed: Vec<usize> =
                    (0..slots).filter(|s| step == 0 || (s + step) % 3 != 0).collect();
                if step % 2 == 1 {
                    listed.reverse();
                }
                let toks = tokens(&mut rng, listed.len(), vocab);
                (listed, toks)
            })
            .collect();
        Schedule { prompts, steps }
    }

    /// Runs the schedule on `policy`: per prefill and per decoded row, `(slot, position, logits)`
    /// (the logits after the token at `position` of the slot's sequence), and the final
    /// sequences of every slot.
    #[allow(clippy::type_complexity)]
    fn run<C: Backend>(
        &self,
        policy: &Policy<C>,
    ) -> orz_core::Result<(Vec<(usize, usize, Vec<f64>)>, Vec<Vec<u32>>)> {
        let b = policy.model().backend();
        let n = self.prompts.len();
        let longest = self.prompts.iter().map(Vec::len).max().unwrap_or(0);
        let mut cache = policy.new_cache(n + 1, longest + self.steps.len())?;
        let mut records = Vec::new();
        let mut seqs = self.prompts.clone();
        for (slot, prompt) in self.prompts.iter().enumerate() {
            let logits = policy.prefill(&mut cache, slot, prompt)?;
            records.push((slot, prompt.len() - 1, b.to_host_f64(&logits)?));
        }
        policy.copy_slot(&mut cache, 0, n)?;
        seqs.push(self.prompts[0].clone());
        for (slots, toks) in &self.steps {
            let logits = b.to_host_f64(&policy.decode(&mut cache, slots, toks)?)?;
            let vocab = logits.len() / slots.len();
            for (i, (&s, &t)) in slots.iter().zip(toks).enumerate() {
                seqs[s].push(t);
                records.push((s, seqs[s].len() - 1, logits[i * vocab..(i + 1) * vocab].to_vec()));
            }
        }
        Ok((records, seqs))
    }
}

/// Prefill of 2 or 3 prompts of different lengths, a `copy_slot` (shared prefill), then 2 to 4
/// decode steps over varying subsets of the slots: on the backend, every prefill and decode
/// row's logits equal the full forward's at that position of the slot's sequence, and the same
/// calls on the reference give the same logits.
pub fn check_kv_decode_equals_forward<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let pair = Pair::new(backend, dtype);
    let strategy = (seed(), vec(1..=5usize, 2..=3), 2..=4usize);
    run_cases("kv_decode_equals_forward", dtype, MODEL_CASES, strategy, |(seed, lens, steps), stats| {
        let c = config(false);
        let m = pair.policies(&c, *seed)?;
        let schedule = Schedule::new(*seed, lens, *steps, c.vocab_size);
        let (want, _) = schedule.run(&m.reference).map_err(kit)?;
        let (got, seqs) = schedule.run(&m.backend).map_err(failed("prefill / copy_slot / decode"))?;
        let batch = PackedBatch::padded(&seqs).map_err(kit)?;
        let full = pair.host("full forward", &m.backend.logits(&batch).map_err(failed("full forward"))?)?;
        let (v, seq) = (c.vocab_size, batch.seq_len());
        let tol = model_tol(dtype);
        let context = |e: String| format!("{e}\n  {schedule:?}");
        for ((slot, t, row), (_, _, reference)) in got.iter().zip(&want) {
            let what = format!("slot {slot}, logits after position {t}");
            compare(&format!("{what}, decode vs reference"), &[v], row, reference, tol, stats)
                .map_err(context)?;
            let at = (slot * seq + t) * v;
            compare(
                &format!("{what}, decode vs the backend's full forward"),
                &[v],
                row,
                &full[at..at + v],
                tol,
                stats,
            )
            .map_err(context)?;
        }
        Ok(())
    })
}

/// The critic's values of packed samples (prompt + response), read with ORZ's alignment (the
/// value of response token `j` at the position before it), against the reference; and, on the
/// backend, each such value equals the last value of the sample cut right before token `j` (the
/// state it is chosen from).
pub fn check_value_head<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let pair = Pair::new(backend, dtype);
    let strategy = (seed(), vec((1..=3usize, 1..=4usize), 2..=4));
    run_cases("value_head", dtype, MODEL_CASES, strategy, |(seed, parts), stats| {
        let c = config(false);
        let m = pair.critics(&c, *seed)?;
        let lengths: Vec<usize> = parts.iter().map(|(p, r)| p + r).collect();
        let samples = sequences(*seed, &lengths, c.vocab_size);
        let batch = PackedBatch::pack_greedy(&samples, 9).map_err(kit)?;
        let want = m.reference.values(&batch).map_err(kit)?;
        let got = m.backend.values(&batch).map_err(failed("critic values"))?;
        let (got, want, _) = pair.fetch("critic values", &got, &want)?;
        let mut prefixes = Vec::new();
        let (mut aligned_b, mut aligned_r) = (Vec::new(), Vec::new());
        for (i, ((prompt, response), sample)) in parts.iter().zip(&samples).enumerate() {
            aligned_b.extend(batch.response_entries(&got, i, *prompt).map_err(kit)?);
            aligned_r.extend(batch.response_entries(&want, i, *prompt).map_err(kit)?);
            prefixes.extend((0..*response).map(|j| sample[..prompt + j].to_vec()));
        }
        let tol = model_tol(dtype);
        let context =
            |e: String| format!("{e}\n  samples {samples:?} as (prompt, response) lengths {parts:?}");
        compare("response values vs reference", &[aligned_b.len()], &aligned_b, &aligned_r, tol, stats)
            .map_err(context)?;
        let cut = PackedBatch::padded(&prefixes).map_err(kit)?;
        let alone = pair.host("values", &m.backend.values(&cut).map_err(failed("critic values"))?)?;
        let last: Vec<f64> =
            prefixes.iter().enumerate().map(|(k, p)| alone[k * cut.seq_len() + p.len() - 1]).collect();
        compare(
            "response values vs the last value of the cut sample",
            &[last.len()],
            &aligned_b,
            &last,
            tol,
            stats,
        )
        .map_err(context)
    })
}
