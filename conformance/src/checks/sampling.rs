//! Level 5, sampling: the backend's `sample_device` chooses the tokens of the f64 host oracle
//! `sample_host` given the same logits and draws, and its top-p selection (`nucleus_device`)
//! keeps the oracle's nucleus, with a mass `>= p` and minimal.
//!
//! **Borderline draws.** Two correct backends may choose differently where a decision of the
//! pipeline is within their numerical error of its threshold: a cumulative mass near the draw's
//! `u · K` or near `p · M`, two nearly tied probabilities (when the order is by probability, not
//! when every token is kept in token-id order), or (greedy) two nearly tied top logits.
//! [`borderline`] detects these on the oracle's values; such comparisons are skipped and
//! counted (`ErrorStats::skipped`, shown by the report), and a check that skips more than half
//! of its comparisons fails.

use orz_core::backend::{Backend, DType};
use orz_core::generation::{SamplingParams, nucleus_device, nucleus_host, sample_device, sample_host};
use orz_core::rng::Rng;
use proptest::prelude::*;

use super::tiny::seed;
use crate::runner::{CheckOutcome, run_cases};
use crate::tolerance::{ErrorStats, Tolerance};

/// Cases per sampling check (each samples several rows).
pub const SAMPLING_CASES: u32 = 24;

/// Whether sampling `logits` with `params` and the draw `u` is borderline when each logit may be
/// off by `logit_error(l)`: see the [module docs](self).
pub fn borderline(logits: &[f64], params: &SamplingParams, u: f64, logit_error: impl Fn(f64) -> f64) -> bool {
    let e = logits.iter().map(|&l| logit_error(l)).fold(0.0, f64::max);
    if params.is_greedy() {
        let mut sorted = logits.to_vec();
        sorted.sort_by(|a, b| b.total_cmp(a));
        return sorted.len() > 1 && sorted[0] - sorted[1] <= 2.0 * e;
    }
    // A relative error of the probabilities from logits off by `e` (softmax of logits / T).
    let margin = (2.0 * e / params.temperature).exp() - 1.0;
    let (Ok(all), Ok(kept)) =
        (nucleus_host(logits, &SamplingParams { top_p: 1.0, ..*params }), nucleus_host(logits, params))
    else {
        return true;
    };
    // The decisions: the top-p bound `p · M` over the top-k order, the draw `u · K` over the
    // kept tokens. A token whose inclusion moves the kept mass by less than the margin only
    // shifts `u · K` by that much, hence the draw's doubled margin.
    let (bound, draw) = (params.top_p * all.mass(), u * kept.mass());
    let near = |x: f64, target: f64, m: f64| (x - target).abs() <= m;
    if params.keeps_every_token(logits.len()) {
        // Token-id order, no sort and no top-p: the draw is the only decision.
        let mut cum = 0.0;
        return kept.probs.iter().any(|&q| {
            cum += q;
            near(cum, draw, 2.0 * margin)
        });
    }
    // Otherwise the order is by probability (the top-k distribution `all`, kept at top-p 1, is
    // in token-id order when its top-k keeps every token).
    let mut sorted = all.probs;
    sorted.sort_by(|a, b| b.total_cmp(a));
    let mut before = 0.0;
    for (i, &q) in sorted.iter().enumerate() {
        let after = before + q;
        if q > margin && near(before, bound, margin) {
            return true;
        }
        if i < kept.probs.len() && near(after, draw, 2.0 * margin) {
            return true;
        }
        // Two nearly tied tokens may swap: it matters if a decision falls within the pair.
        if let Some(&next) = sorted.get(i + 1) {
            let end = after + next;
            let straddles = |t: f64| before - 2.0 * margin <= t && t <= end + 2.0 * margin;
            if q != next && q - next <= margin * q && (straddles(bound) || straddles(draw)) {
                return true;
            }
        }
        before = after;
    }
    false
}

/// The f32 error of a logit: sampling runs in f32 whatever the logits' dtype.
fn f32_error(l: f64) -> f64 {
    Tolerance::for_dtype(DType::F32).allowed(l, l)
}

/// Sampling parameters of every kind: greedy, temperatures 0.7 to 1.5, top-k, top-p.
fn params(vocab: usize) -> impl Strategy<Value = SamplingParams> {
    (
        prop_oneof![Just(0.0), Just(0.7), Just(1.0), Just(1.5)],
        proptest::option::of(1..=vocab),
        prop_oneof![Just(1.0), 0.3f64..1.0],
    )
        .prop_map(|(temperature, top_k, top_p)| SamplingParams { temperature, top_k, top_p })
}

/// Rows of logits `[rows, vocab]` from `seed`, rounded to `dtype`: Gaussian with scale 2, every
/// third row on a grid of 1/2 (exact ties).
fn logits(seed: u64, rows: usize, vocab: usize, dtype: DType) -> Vec<f64> {
    let mut rng = Rng::seed_from_u64(seed);
    (0..rows * vocab)
        .map(|i| {
            let x = 2.0 * rng.normal();
            dtype.round(if (i / vocab) % 3 == 2 { (2.0 * x).round() / 2.0 } else { x })
        })
        .collect()
}

/// Fails `outcome` when more than half of its comparisons were skipped as borderline.
fn too_many_skipped(mut outcome: CheckOutcome) -> CheckOutcome {
    let ErrorStats { compared, skipped, .. } = outcome.stats;
    if outcome.failure.is_none() && skipped * 2 > compared + skipped {
        outcome.failure = Some(format!(
            "{skipped} of {} comparisons were borderline and skipped: the check certified almost nothing",
            compared + skipped
        ));
    }
    outcome
}

/// Per row (or for several draws from one shared row), `sample_device` on the backend with
/// logits of the check's dtype chooses `sample_host`'s token for the same draw, except at
/// borderline draws (skipped and counted).
pub fn check_sampling_same_tokens<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let strategy = (seed(), 1..=4usize, 2..=64usize, any::<bool>())
        .prop_flat_map(|(seed, rows, vocab, shared)| (Just((seed, rows, vocab, shared)), params(vocab)));
    let outcome = run_cases(
        "sampling_same_tokens",
        dtype,
        SAMPLING_CASES,
        strategy,
        |&((seed, rows, vocab, shared), p), stats| {
            let table_rows = if shared { 1 } else { rows };
            let host = logits(seed, table_rows, vocab, dtype);
            let mut rng = Rng::seed_from_u64(seed ^ 0xD4A3);
            let draws: Vec<f64> = (0..rows).map(|_| rng.uniform()).collect();
            let t = backend
                .tensor_f64(&host, &[table_rows, vocab], dtype)
                .map_err(|e| format!("uploading the logits failed: {e}"))?;
            let got =
                sample_device(backend, &t, &p, &draws).map_err(|e| format!("sample_device failed: {e}"))?;
            for (i, &u) in draws.iter().enumerate() {
                let r = if shared { 0 } else { i };
                let row = &host[r * vocab..(r + 1) * vocab];
                if borderline(row, &p, u, f32_error) {
                    stats.skipped += 1;
                    continue;
                }
                let want =
                    sample_host(row, &p, u).map_err(|e| format!("kit bug: sample_host failed: {e}"))?;
                stats.record(f64::from(got[i]), f64::from(want), Tolerance::EXACT);
                if got[i] != want {
                    return Err(format!(
                        "draw {i} (u = {u}) from row {r} with {p:?}: the backend chose token {}, the oracle {want}\n  logits row: {row:?}",
                        got[i]
                    ));
                }
            }
            Ok(())
        },
    );
    too_many_skipped(outcome)
}

/// Per row, the nucleus the backend's top-p selection keeps (`nucleus_device`: the ops
/// `sample_device` selects with) holds a mass `>= p` that is minimal (without its last token it
/// is `< p`; one token always stays), and equals the oracle's nucleus (same ids, mass within f32
/// tolerance), except on borderline rows (skipped and counted).
pub fn check_top_p_mass<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let strategy = (seed(), 1..=3usize, 2..=64usize).prop_flat_map(|(seed, rows, vocab)| {
        let p = (
            prop_oneof![Just(0.7), Just(1.0), Just(1.5)],
            proptest::option::of(1..=vocab),
            prop_oneof![Just(0.9), 0.2f64..1.0],
        )
            .prop_map(|(temperature, top_k, top_p)| SamplingParams { temperature, top_k, top_p });
        (Just((seed, rows, vocab)), p)
    });
    let outcome = run_cases(
        "top_p_mass",
        dtype,
        SAMPLING_CASES,
        strategy,
        |&((seed, rows, vocab), p), stats| {
            let host = logits(seed, rows, vocab, dtype);
            let t = backend
                .tensor_f64(&host, &[rows, vocab], dtype)
                .map_err(|e| format!("uploading the logits failed: {e}"))?;
            let got = nucleus_device(backend, &t, &p).map_err(|e| format!("nucleus_device failed: {e}"))?;
            let tol = Tolerance::for_dtype(DType::F32);
            for (r, n) in got.iter().enumerate() {
                let row = &host[r * vocab..(r + 1) * vocab];
                let what = format!("row {r} with {p:?}: logits {row:?}");
                if n.ids.is_empty() || n.ids.len() != n.probs.len() {
                    return Err(format!(
                        "{what}: the backend kept {:?} with probabilities {:?}",
                        n.ids, n.probs
                    ));
                }
                let (mass, last) = (n.mass(), n.probs[n.probs.len() - 1]);
                if mass < p.top_p - tol.allowed(mass, p.top_p) {
                    return Err(format!("{what}: the backend's nucleus {:?} keeps mass {mass} < p", n.ids));
                }
                if n.ids.len() > 1 && mass - last >= p.top_p + tol.allowed(mass - last, p.top_p) {
                    return Err(format!(
                        "{what}: the backend's nucleus {:?} is not minimal: without its last token it keeps {} >= p",
                        n.ids,
                        mass - last
                    ));
                }
                if borderline(row, &p, 0.0, f32_error) {
                    stats.skipped += 1;
                    continue;
                }
                let want = nucleus_host(row, &p).map_err(|e| format!("kit bug: nucleus_host failed: {e}"))?;
                stats.record(mass, want.mass(), tol);
                if n.ids != want.ids || !tol.agrees(mass, want.mass()) {
                    return Err(format!(
                        "{what}: the backend keeps {:?} (mass {mass}), the oracle {:?} (mass {})",
                        n.ids,
                        want.ids,
                        want.mass()
                    ));
                }
            }
            Ok(())
        },
    );
    too_many_skipped(outcome)
}
