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
    let n = nucleus_host(&logits, &SamplingParams::default()).unwrap();
    assert_eq!(n.ids, [2, 3, 0, 4, 1]);
    assert!((n.mass() - 1.0).abs() < 1e-12);
}

#[test]
fn hand_computed_inverse_cdf_in_probability_order() {
    // Probabilities 0.2, 0.5, 0.3: order ids 1, 2, 0 with cumulative mass 0.5, 0.8, 1.0.
    let logits = ln(&[0.2, 0.5, 0.3]);
    let p = SamplingParams::default();
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
    let all = nucleus_host(logits, &SamplingParams { top_p: 1.0, ..*p }).expect("nucleus");
    let kept = nucleus_host(logits, p).expect("nucleus");
    let (mut cum, mut near) = (0.0, false);
    for &q in &all.probs {
        near |= (cum - p.top_p).abs() < tol;
        cum += q;
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
            prop_assert!(n.probs.windows(2).all(|w| w[0] >= w[1]));
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
        let ids = sample_device(&b, &t, &SamplingParams::default(), &[0.3, 0.6, 0.9]).expect("sample");
        assert_eq!(ids, [1, 2, 0], "{dtype:?}");
    }
}
