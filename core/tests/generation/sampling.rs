//! Sampling: golden cases, the host oracle against the device version, top-p mass.

use orz_core::Result;
use orz_core::backend::{Backend, DType};
use orz_core::generation::sampling::*;
use orz_reference::Reference;
use proptest::prelude::*;

fn ln(ps: &[f64]) -> Vec<f64> {
    ps.iter().map(|p| p.ln()).collect()
}

fn params(t: f64, k: Option<usize>, p: f64) -> SamplingParams {
    SamplingParams::new(t, k, p).expect("valid sampling params")
}

fn device(logits: &[f64], rows: usize, p: &SamplingParams, draws: &[f64]) -> Result<Vec<u32>> {
    let b = Reference::new();
    let t = b.tensor_f64(logits, &[rows, logits.len() / rows], DType::F32)?;
    sample_device(&b, &t, p, draws)
}

#[test]
fn greedy_is_argmax_with_ties_to_the_lowest_id() {
    let logits = [1.0, 3.0, 3.0, 2.0, f64::NEG_INFINITY];
    for u in [0.0, 0.5, 0.999] {
        assert_eq!(sample_host(&logits, &SamplingParams::greedy(), u).unwrap(), 1);
    }
    assert_eq!(device(&logits, 1, &SamplingParams::greedy(), &[0.1, 0.9]).unwrap(), [1, 1]);
    let rows = [0.0, 1.0, 1.0, 0.5, 2.0, 2.0];
    assert_eq!(device(&rows, 2, &SamplingParams::greedy(), &[0.3, 0.3]).unwrap(), [1, 1]);
}

#[test]
fn top_k_one_and_tiny_top_p_keep_the_most_probable_token() {
    let logits = [0.5, 2.0, 2.0, -1.0];
    for u in [0.0, 0.3, 0.999_999] {
        assert_eq!(sample_host(&logits, &params(1.0, Some(1), 1.0), u).unwrap(), 1);
        assert_eq!(sample_host(&logits, &params(3.0, None, 1e-9), u).unwrap(), 1);
        assert_eq!(device(&logits, 1, &params(1.0, Some(1), 1.0), &[u]).unwrap(), [1]);
        assert_eq!(device(&logits, 1, &params(3.0, None, 1e-9), &[u]).unwrap(), [1]);
    }
    let n = nucleus_host(&logits, &params(1.0, None, 1e-9)).unwrap();
    assert_eq!(n.ids, [1]);
}

#[test]
fn top_p_one_keeps_every_token() {
    let logits = [0.1, -0.3, 2.0, 1.0, 0.0];
    // No top-k and top-p 1 keep every token in token-id order (no sort); so does a top-k that
    // is at least the vocabulary.
    for p in [SamplingParams::default(), params(0.7, Some(5), 1.0), params(1.0, Some(9), 1.0)] {
        assert!(p.keeps_every_token(logits.len()));
        let n = nucleus_host(&logits, &p).unwrap();
        assert_eq!(n.ids, [0, 1, 2, 3, 4]);
        assert!((n.mass() - 1.0).abs() < 1e-12);
        let b = Reference::new();
        let t = b.tensor_f64(&logits, &[1, 5], DType::F32).unwrap();
        assert_eq!(nucleus_device(&b, &t, &p).unwrap()[0].ids, n.ids);
    }
    // A top-k below the vocabulary, or top-p < 1, sorts by probability.
    for p in [params(1.0, Some(4), 1.0), params(1.0, None, 1.0 - 1e-12)] {
        assert!(!p.keeps_every_token(logits.len()));
        assert_eq!(nucleus_host(&logits, &p).unwrap().ids[..4], [2, 3, 0, 4]);
    }
}

#[test]
fn hand_computed_inverse_cdf_in_token_id_and_probability_order() {
    // Probabilities 0.2, 0.5, 0.3. Every token kept (top-p 1): token-id order, cumulative mass
    // 0.2, 0.7, 1.0.
    let logits = ln(&[0.2, 0.5, 0.3]);
    let p = SamplingParams::default();
    for (u, id) in [(0.0, 0), (0.19, 0), (0.21, 1), (0.69, 1), (0.71, 2), (0.999, 2)] {
        assert_eq!(sample_host(&logits, &p, u).unwrap(), id, "u = {u}");
        assert_eq!(device(&logits, 1, &p, &[u]).unwrap(), [id], "u = {u}");
    }
    // top-p 0.999 also keeps all three, in probability order: ids 1, 2, 0 with cumulative mass
    // 0.5, 0.8, 1.0.
    let p = params(1.0, None, 0.999);
    for (u, id) in [(0.0, 1), (0.49, 1), (0.51, 2), (0.79, 2), (0.81, 0), (0.999, 0)] {
        assert_eq!(sample_host(&logits, &p, u).unwrap(), id, "u = {u}");
        assert_eq!(device(&logits, 1, &p, &[u]).unwrap(), [id], "u = {u}");
    }
    // top-p 0.7 keeps ids 1 and 2 (mass 0.8): threshold u * 0.8.
    let p = params(1.0, None, 0.7);
    assert!((top_p_kept_mass(&logits, &p).unwrap() - 0.8).abs() < 1e-12);
    for (u, id) in [(0.6, 1), (0.7, 2), (0.99, 2)] {
        assert_eq!(sample_host(&logits, &p, u).unwrap(), id, "u = {u}");
        assert_eq!(device(&logits, 1, &p, &[u]).unwrap(), [id], "u = {u}");
    }
    // top-k 2 renormalizes to 0.625 / 0.375; top-p 0.6 then keeps id 1 alone.
    let p = params(1.0, Some(2), 0.6);
    let n = nucleus_host(&logits, &p).unwrap();
    assert_eq!(n.ids, [1]);
    assert!((n.mass() - 0.625).abs() < 1e-12);
}

#[test]
fn temperature_scales_the_logits() {
    let logits = [0.3, -1.2, 2.2, 0.9];
    let halved: Vec<f64> = logits.iter().map(|x| x / 2.0).collect();
    for i in 0..50 {
        let u = f64::from(i) / 50.0;
        let a = sample_host(&logits, &params(2.0, None, 1.0), u).unwrap();
        assert_eq!(a, sample_host(&halved, &SamplingParams::default(), u).unwrap());
    }
}

#[test]
fn bad_inputs_are_errors_naming_the_field() {
    for (t, k, p, field) in [
        (-1.0, None, 1.0, "temperature"),
        (f64::NAN, None, 1.0, "temperature"),
        (f64::INFINITY, None, 1.0, "temperature"),
        (1.0, None, 0.0, "top_p"),
        (1.0, None, 1.5, "top_p"),
        (1.0, Some(0), 1.0, "top_k"),
    ] {
        let e = SamplingParams::new(t, k, p).unwrap_err();
        assert!(e.to_string().contains(field), "{e}");
    }
    let p = SamplingParams::default();
    assert!(sample_host(&[], &p, 0.5).is_err());
    assert!(sample_host(&[0.0, f64::NAN], &p, 0.5).unwrap_err().to_string().contains("token 1"));
    assert!(sample_host(&[f64::NEG_INFINITY; 3], &p, 0.5).is_err());
    assert!(sample_host(&[0.0, 1.0], &p, 1.0).unwrap_err().to_string().contains("[0, 1)"));
    assert!(
        device(&[0.0, f64::NAN, 0.0, 1.0], 2, &p, &[0.1, 0.2]).unwrap_err().to_string().contains("row 0")
    );
    let greedy = SamplingParams::greedy();
    for row in [[0.0, f64::NAN], [f64::INFINITY, 0.0], [f64::NEG_INFINITY; 2]] {
        let logits = [0.0, 1.0, row[0], row[1]];
        let e = device(&logits, 2, &greedy, &[0.1, 0.2]).unwrap_err();
        assert!(e.to_string().contains("row 1"), "{e}");
        assert!(sample_host(&row, &greedy, 0.1).is_err());
        assert!(device(&logits, 2, &p, &[0.1, 0.2]).unwrap_err().to_string().contains("row 1"));
    }
    assert!(device(&[0.0, 1.0, 0.0, 1.0], 2, &p, &[0.1, 0.2, 0.3]).is_err());
    let b = Reference::new();
    let t = b.tensor_f64(&[0.0, 1.0], &[2], DType::F32).unwrap();
    assert!(sample_device(&b, &t, &p, &[0.5]).unwrap_err().to_string().contains("[rows, vocab"));
}

/// Random logits with some exact ties, and sampling parameters of every kind.
fn case() -> impl Strategy<Value = (Vec<f64>, SamplingParams, Vec<f64>)> {
    (1usize..40, 1usize..5).prop_flat_map(|(vocab, rows)| {
        (
            proptest::collection::vec((-8i32..8).prop_map(|x| f64::from(x) * 0.37), vocab * rows),
            prop_oneof![Just(0.0), Just(0.5), Just(1.0), Just(1.7)],
            proptest::option::of(1usize..50),
            prop_oneof![Just(1.0), 0.01f64..1.0],
            proptest::collection::vec(0.0f64..1.0, rows),
        )
            .prop_map(|(logits, t, k, p, draws)| (logits, params(t, k, p), draws))
    })
}

/// True when a comparison of the pipeline lies within `tol` of its threshold for this row
/// and draw (where two correct backends may legitimately disagree).
fn borderline(logits: &[f64], p: &SamplingParams, u: f64, tol: f64) -> bool {
    if p.is_greedy() {
        return false;
    }
    let kept = nucleus_host(logits, p).expect("nucleus");
    let (mut cum, mut near) = (0.0, false);
    if !p.keeps_every_token(logits.len()) {
        // Top-p decides over the top-k distribution in probability order.
        let mut all = nucleus_host(logits, &SamplingParams { top_p: 1.0, ..*p }).expect("nucleus").probs;
        all.sort_by(|a, b| b.total_cmp(a));
        for &q in &all {
            near |= (cum - p.top_p).abs() < tol;
            cum += q;
        }
    }
    cum = 0.0;
    for &q in &kept.probs {
        cum += q;
        near |= (cum - u * kept.mass()).abs() < tol;
    }
    near
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn host_and_device_choose_the_same_tokens((logits, p, draws) in case()) {
        let rows = draws.len();
        let vocab = logits.len() / rows;
        let got = device(&logits, rows, &p, &draws).unwrap();
        for (r, &u) in draws.iter().enumerate() {
            let row = &logits[r * vocab..(r + 1) * vocab];
            prop_assume!(!borderline(row, &p, u, 1e-9));
            prop_assert_eq!(got[r], sample_host(row, &p, u).unwrap(), "row {}", r);
        }
        // A shared row (rows = 1) with several draws samples each draw from that row.
        let row = &logits[..vocab];
        let shared = device(row, 1, &p, &draws).unwrap();
        for (r, &u) in draws.iter().enumerate() {
            prop_assume!(!borderline(row, &p, u, 1e-9));
            prop_assert_eq!(shared[r], sample_host(row, &p, u).unwrap(), "draw {}", r);
        }
    }

    #[test]
    fn device_nucleus_equals_the_host_nucleus((logits, p, draws) in case()) {
        let rows = draws.len();
        let vocab = logits.len() / rows;
        let b = Reference::new();
        let t = b.tensor_f64(&logits, &[rows, vocab], DType::F32).unwrap();
        let got = nucleus_device(&b, &t, &p).unwrap();
        prop_assert_eq!(got.len(), rows);
        for (r, n) in got.iter().enumerate() {
            let row = &logits[r * vocab..(r + 1) * vocab];
            prop_assume!(!borderline(row, &p, 0.0, 1e-9));
            let want = nucleus_host(row, &p).unwrap();
            prop_assert_eq!(&n.ids, &want.ids, "row {}", r);
            prop_assert!((n.mass() - want.mass()).abs() < 1e-9, "row {}: {} vs {}", r, n.mass(), want.mass());
        }
    }

    #[test]
    fn top_p_keeps_at_least_p_and_no_more_than_needed((logits, p, _d) in case()) {
        let n = nucleus_host(&logits, &p).unwrap();
        prop_assert!(!n.ids.is_empty());
        if p.is_greedy() {
            prop_assert_eq!(n.mass(), 1.0);
        } else {
            prop_assert!(n.mass() >= p.top_p - 1e-12, "mass {} < p {}", n.mass(), p.top_p);
            let without_last = n.mass() - n.probs[n.probs.len() - 1];
            prop_assert!(n.ids.len() == 1 || without_last < p.top_p + 1e-12);
            if p.keeps_every_token(logits.len()) {
                prop_assert!(n.ids.iter().enumerate().all(|(i, &id)| id as usize == i));
                prop_assert_eq!(n.ids.len(), logits.len());
            } else {
                prop_assert!(n.probs.windows(2).all(|w| w[0] >= w[1]));
            }
        }
    }
}

#[test]
fn selection_frequencies_follow_the_kept_distribution() {
    let logits = ln(&[0.1, 0.6, 0.3]);
    let p = params(1.0, None, 0.8); // keeps ids 1 and 2: 2/3 and 1/3
    let mut rng = orz_core::rng::Rng::seed_from_u64(5);
    let draws: Vec<f64> = (0..3000).map(|_| rng.uniform()).collect();
    let ids = device(&logits, 1, &p, &draws).unwrap();
    let ones = ids.iter().filter(|&&i| i == 1).count() as f64 / 3000.0;
    assert!(ids.iter().all(|&i| i != 0));
    assert!((ones - 2.0 / 3.0).abs() < 0.03, "{ones}");
}

#[test]
fn half_precision_logits_are_sampled_in_f32() {
    let b = Reference::new();
    let logits = ln(&[0.2, 0.5, 0.3]);
    for dtype in [DType::BF16, DType::F16, DType::F32] {
        let t = b.tensor_f64(&logits, &[1, 3], dtype).expect("tensor");
        // Token-id order: cumulative mass 0.2, 0.7, 1.0.
        let ids = sample_device(&b, &t, &SamplingParams::default(), &[0.1, 0.6, 0.9]).expect("sample");
        assert_eq!(ids, [0, 1, 2], "{dtype:?}");
    }
}

/// Logits of `vocab` tokens with probabilities spread over two orders of magnitude (the smallest
/// far above the `1e-12` the sorted path's top-p may drop), in no particular order.
fn spread_logits(vocab: usize) -> Vec<f64> {
    (0..vocab).map(|i| ((i * 7919) % vocab) as f64 * 4.6 / vocab as f64 - 2.0).collect()
}

fn softmax(logits: &[f64]) -> Vec<f64> {
    let e: Vec<f64> = logits.iter().map(|x| x.exp()).collect();
    let total: f64 = e.iter().sum();
    e.iter().map(|x| x / total).collect()
}

#[test]
fn keep_every_token_and_sorted_paths_sample_the_same_distribution() {
    let vocab = 40;
    let logits = spread_logits(vocab);
    let want = softmax(&logits);
    let fast = SamplingParams::default();
    // The sorted path over (almost) every token: top-p just below 1, or top-k one below the
    // vocabulary with the rest of the mass moved onto a token it keeps.
    let sorted = params(1.0, None, 1.0 - 1e-12);
    assert!(fast.keeps_every_token(vocab) && !sorted.keeps_every_token(vocab));
    assert_eq!(nucleus_host(&logits, &sorted).unwrap().ids.len(), vocab);
    // Stratified draws: each token owns an interval of `u` of length its probability in both
    // orders (different intervals), so each path picks it for `n * p` of `n` evenly spaced
    // draws, up to one draw at each end.
    let n = 100_000;
    let grid: Vec<f64> = (0..n).map(|i| (i as f64 + 0.5) / n as f64).collect();
    for p in [fast, sorted] {
        let mut counts = vec![0usize; vocab];
        for &u in &grid {
            counts[sample_host(&logits, &p, u).unwrap() as usize] += 1;
        }
        for (id, (&c, &q)) in counts.iter().zip(&want).enumerate() {
            assert!((c as f64 - q * n as f64).abs() <= 2.0, "{p:?}: token {id}: {c} draws, p = {q}");
        }
    }
    // Random draws: host and device (the reference backend) agree draw for draw on each path,
    // and the fast path's frequencies pass a chi-square test against softmax.
    let mut rng = orz_core::rng::Rng::seed_from_u64(11);
    let draws: Vec<f64> = (0..20_000).map(|_| rng.uniform()).collect();
    for p in [fast, sorted] {
        let got = device(&logits, 1, &p, &draws).unwrap();
        let mut counts = vec![0usize; vocab];
        for (&id, &u) in got.iter().zip(&draws) {
            if !borderline(&logits, &p, u, 1e-9) {
                assert_eq!(id, sample_host(&logits, &p, u).unwrap(), "{p:?}, u = {u}");
            }
            counts[id as usize] += 1;
        }
        let expected = |q: f64| q * draws.len() as f64;
        let chi2: f64 =
            counts.iter().zip(&want).map(|(&c, &q)| (c as f64 - expected(q)).powi(2) / expected(q)).sum();
        // 39 degrees of freedom: P(chi2 > 72.1) = 0.001.
        assert!(chi2 < 72.1, "{p:?}: chi-square {chi2}");
    }
}

#[test]
fn keep_every_token_path_handles_zero_probabilities_and_draws_near_one() {
    // -inf logits are tokens of probability 0: never chosen, also when `u * K` rounds up to
    // `K` (the device casts the draws to f32, where `1 - 2^-53` is 1; the token where the mass
    // reaches `K` is chosen then, the last with mass, as the host's first above `u * K`).
    let logits = [f64::NEG_INFINITY, 0.0, f64::NEG_INFINITY, 1.0, f64::NEG_INFINITY];
    let p = SamplingParams::default();
    let below_one = 1.0 - f64::EPSILON / 2.0;
    for u in [0.0, 0.1, 0.5, 0.9, below_one] {
        let host = sample_host(&logits, &p, u).unwrap();
        assert!(host == 1 || host == 3, "u = {u}: {host}");
        assert_eq!(device(&logits, 1, &p, &[u]).unwrap(), [host], "u = {u}");
    }
    assert_eq!(sample_host(&logits, &p, 0.0).unwrap(), 1);
    assert_eq!(sample_host(&logits, &p, below_one).unwrap(), 3);
}
