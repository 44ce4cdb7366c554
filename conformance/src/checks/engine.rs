//! Level 5, the generation engine driven by the backend's policy (the tiny model of
//! [`super::tiny`], KV cache, shared prefill, continuous batching): stop handling (EOS ids, stop
//! strings kept in the text, `max_new_tokens`, finish reasons) equal to the reference's run, and
//! completions that do not depend on the number of slots.
//!
//! A completion may legitimately diverge where the oracle's logits make the choice borderline
//! under the model tolerance ([`super::sampling::borderline`]); such completions are skipped
//! and counted, and a check that skips more than half of them fails.

use orz_core::backend::{Backend, DType};
use orz_core::generation::{Completion, EngineConfig, Generator, Request, SamplingParams, StopCriteria};
use orz_core::model::{PackedBatch, Policy};
use orz_core::rng::Rng;
use orz_reference::Reference;
use proptest::collection::vec;

use super::sampling::borderline;
use super::tiny::{MODEL_CASES, Pair, Report, config, failed, kit, model_tol, seed, tokens};
use crate::runner::{CheckOutcome, run_cases};
use crate::tolerance::{ErrorStats, Tolerance};

/// The toy detokenizer: token `t` is `PIECES[t % 8]` (so stop strings can span tokens).
const PIECES: [&str; 8] = ["a", "b", "ab", " ", "</", "x>", "y", "ba"];

fn detok(tokens: &[u32]) -> String {
    tokens.iter().map(|&t| PIECES[t as usize % PIECES.len()]).collect()
}

/// The completions of `requests` on `policy` (slots `slots`, draws from `seed`).
fn generate<C: Backend>(
    policy: &Policy<C>,
    params: SamplingParams,
    stop: &StopCriteria,
    slots: usize,
    requests: &[Request],
    seed: u64,
) -> orz_core::Result<Vec<Completion>> {
    let config = EngineConfig { max_batch_slots: slots, kv_budget_bytes: 1 << 24 };
    let engine = Generator::new(params, stop.clone(), config)?;
    let b = policy.model().backend();
    Ok(engine.generate(b, policy, requests, &detok, &Rng::seed_from_u64(seed))?.completions)
}

/// Compares completions `got` with `want` (same requests and samples): equal, or diverging first
/// at a token whose choice is borderline on the reference's logits (skipped and counted).
fn compare_completions(
    what: &str,
    reference: &Policy<Reference>,
    (requests, params, seed): (&[Request], SamplingParams, u64),
    got: &[Completion],
    want: &[Completion],
    dtype: DType,
    stats: &mut ErrorStats,
) -> Report {
    if got.len() != want.len() {
        return Err(format!("{what}: {} completions, the oracle's run gives {}", got.len(), want.len()));
    }
    let tol = model_tol(dtype);
    for (g, w) in got.iter().zip(want) {
        if g == w {
            stats.record(0.0, 0.0, Tolerance::EXACT);
            continue;
        }
        let j = g.tokens.iter().zip(&w.tokens).take_while(|(a, b)| a == b).count();
        let prompt = &requests[w.request].prompt;
        let diverges = j < g.tokens.len().min(w.tokens.len());
        if diverges {
            let mut seq = prompt.clone();
            seq.extend_from_slice(&w.tokens[..j]);
            let batch = PackedBatch::padded(&[&seq]).map_err(kit)?;
            let logits = reference.logits(&batch).map_err(kit)?.to_vec();
            let v = logits.len() / seq.len();
            let row = &logits[(seq.len() - 1) * v..];
            let mut rng = Rng::seed_from_u64(seed).fork(w.request as u64).fork(w.sample as u64);
            let u = (0..=j).map(|_| rng.uniform()).last().unwrap_or(0.0);
            if borderline(row, &params, u, |l| tol.allowed(l, l)) {
                stats.skipped += 1;
                continue;
            }
        }
        return Err(format!(
            "{what}: request {} sample {} (prompt {prompt:?}) differs from token {j} on:\n  got  {:?} {:?} {:?}\n  want {:?} {:?} {:?}",
            w.request, w.sample, g.tokens, g.text, g.finish_reason, w.tokens, w.text, w.finish_reason
        ));
    }
    Ok(())
}

/// Fails `outcome` when more than half of its completions were skipped as borderline.
fn too_many_skipped(mut outcome: CheckOutcome) -> CheckOutcome {
    let ErrorStats { compared, skipped, .. } = outcome.stats;
    if outcome.failure.is_none() && skipped * 2 > compared + skipped {
        outcome.failure =
            Some(format!("{skipped} of {} completions were borderline and skipped", compared + skipped));
    }
    outcome
}

/// Prompts of the given lengths from `seed`, one request each with `n` samples.
fn requests(seed: u64, lengths: &[usize], n: usize, vocab: usize) -> Vec<Request> {
    let mut rng = Rng::seed_from_u64(seed ^ 0x9E4);
    lengths.iter().map(|&l| Request::new(tokens(&mut rng, l, vocab), n)).collect()
}

/// Greedy generation through the engine with the backend's policy, with an EOS id and a stop
/// string chosen from an unconstrained run of the reference (so that both occur, the stop string
/// across token boundaries) and `max_new_tokens` 8: the completions (tokens, text with the stop
/// string kept, finish reason `stop` or `length`) equal the reference's run.
pub fn check_stop_handling<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let pair = Pair::new(backend, dtype);
    let strategy = (seed(), vec(1..=4usize, 3..=5));
    let outcome = run_cases("stop_handling", dtype, MODEL_CASES, strategy, |(seed, lengths), stats| {
        let c = config(false);
        let m = pair.policies(&c, *seed)?;
        let requests = requests(*seed, lengths, 1, c.vocab_size);
        let greedy = SamplingParams::greedy();
        let free = StopCriteria {
            eos_token_ids: vec![],
            stop_strings: vec![],
            max_new_tokens: 10,
            max_total_len: 32,
        };
        let run = generate(&m.reference, greedy, &free, 4, &requests, *seed).map_err(kit)?;
        // An EOS id from the first completion, a 3-byte stop string from the last one's text.
        let eos = run[0].tokens.get(4).copied().unwrap_or(1);
        let text = &run[run.len() - 1].text;
        let stop = text.get(3..6).or(text.get(..3)).unwrap_or("ab").to_string();
        let criteria = StopCriteria {
            eos_token_ids: vec![eos],
            stop_strings: vec![stop],
            max_new_tokens: 8,
            max_total_len: 32,
        };
        let want = generate(&m.reference, greedy, &criteria, 4, &requests, *seed).map_err(kit)?;
        let got = generate(&m.backend, greedy, &criteria, 4, &requests, *seed).map_err(failed("generate"))?;
        let what = format!("greedy with {criteria:?}");
        compare_completions(&what, &m.reference, (&requests, greedy, *seed), &got, &want, dtype, stats)
    });
    too_many_skipped(outcome)
}

/// Seeded sampling (temperature 1, top-p 0.9) of 2 or 3 samples per prompt through the engine
/// on the backend: with 1 slot (no shared prefill, one row per decode) and with 4 slots (shared
/// prefill, continuous batching) the completions are identical.
pub fn check_generation_deterministic<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let pair = Pair::new(backend, dtype);
    let strategy = (seed(), vec(1..=4usize, 2..=3), 2..=3usize);
    let outcome =
        run_cases("generation_deterministic", dtype, MODEL_CASES, strategy, |(seed, lengths, n), stats| {
            let c = config(false);
            let m = pair.policies(&c, *seed)?;
            let requests = requests(*seed, lengths, *n, c.vocab_size);
            let params = SamplingParams { temperature: 1.0, top_k: None, top_p: 0.9 };
            let stop = StopCriteria {
                eos_token_ids: vec![1],
                stop_strings: vec!["x>".into()],
                max_new_tokens: 8,
                max_total_len: 32,
            };
            let one = generate(&m.backend, params, &stop, 1, &requests, *seed)
                .map_err(failed("generate, 1 slot"))?;
            let four = generate(&m.backend, params, &stop, 4, &requests, *seed)
                .map_err(failed("generate, 4 slots"))?;
            let what = format!("4 slots vs 1 slot, {params:?}");
            compare_completions(&what, &m.reference, (&requests, params, *seed), &four, &one, dtype, stats)
        });
    too_many_skipped(outcome)
}
