//! Engine tests on the reference backend with the mock decoder.

use orz_core::generation::*;
use orz_core::reward::FinishReason;
use orz_core::rng::Rng;
use orz_reference::Reference;
use proptest::prelude::*;

use crate::mock::{BYTES_PER_TOKEN, MockDecoder, detok};

const VOCAB: usize = 16;

fn model() -> MockDecoder<Reference> {
    MockDecoder::new(Reference::new(), VOCAB, 11)
}

fn stop() -> StopCriteria {
    StopCriteria {
        eos_token_ids: vec![0],
        stop_strings: vec!["</answer>".to_string(), "User:".to_string(), "aAnz".to_string()],
        max_new_tokens: 12,
        max_total_len: 20,
    }
}

fn requests() -> Vec<Request> {
    vec![
        Request::new(vec![1, 2, 3], 3),
        Request::new(vec![4], 1),
        Request::new(vec![5, 6, 7, 8, 9, 10, 11, 12, 13, 14], 5),
        Request::new(vec![2, 2], 2),
        Request::new(vec![15, 1, 4], 4),
    ]
}

fn config(slots: usize) -> EngineConfig {
    EngineConfig { max_batch_slots: slots, kv_budget_bytes: usize::MAX }
}

fn run(
    m: &MockDecoder<Reference>,
    reqs: &[Request],
    params: SamplingParams,
    slots: usize,
    seed: u64,
) -> orz_core::Result<GenerationOutput> {
    let g = Generator::new(params, stop(), config(slots))?;
    g.generate(&Reference::new(), m, reqs, &detok, &Rng::seed_from_u64(seed))
}

/// The engine's contract written as a plain sequential loop on the host oracle: sample `s` of
/// request `r` draws from `rng.fork(r).fork(s)` and sees the mock's logits of its own sequence.
fn sequential(
    m: &MockDecoder<Reference>,
    reqs: &[Request],
    params: &SamplingParams,
    seed: u64,
) -> Vec<Completion> {
    let (rng, stop) = (Rng::seed_from_u64(seed), stop());
    let mut out = Vec::new();
    for (r, req) in reqs.iter().enumerate() {
        for s in 0..req.n {
            let mut draws = rng.fork(r as u64).fork(s as u64);
            let mut seq = req.prompt.clone();
            let mut checker = StopChecker::new(&req.prompt, &stop);
            loop {
                let token = sample_host(&m.logits_for(&seq), params, draws.uniform()).expect("host sampling");
                seq.push(token);
                if checker.push(token, &stop, &detok).is_some() {
                    break;
                }
            }
            let (tokens, text, finish_reason) = checker.into_parts(&stop, &detok);
            out.push(Completion {
                request: r,
                sample: s,
                tokens,
                text,
                finish_reason,
                log_probs: Vec::new(),
            });
        }
    }
    out
}

#[test]
fn same_seed_same_completions_whatever_the_number_of_slots() {
    for params in [SamplingParams::default(), SamplingParams::new(0.8, Some(5), 0.9).unwrap()] {
        let expected = sequential(&model(), &requests(), &params, 3);
        for slots in [1, 3, 8, 100] {
            let got = run(&model(), &requests(), params, slots, 3).unwrap();
            assert_eq!(got.completions, expected, "slots = {slots}, {params:?}");
        }
        let other = run(&model(), &requests(), params, 3, 4).unwrap();
        assert_ne!(other.completions, expected, "another seed gives other completions");
    }
}

#[test]
fn completions_come_in_request_sample_order_and_respect_the_stop_rules() {
    let out = run(&model(), &requests(), SamplingParams::default(), 4, 9).unwrap();
    let order: Vec<(usize, usize)> = out.completions.iter().map(|c| (c.request, c.sample)).collect();
    let expected: Vec<(usize, usize)> =
        requests().iter().enumerate().flat_map(|(r, q)| (0..q.n).map(move |s| (r, s))).collect();
    assert_eq!(order, expected);
    let stop = stop();
    let mut reasons = (0, 0, 0);
    for c in &out.completions {
        let full = detok(&c.tokens);
        let max_new = stop.max_new_for(requests()[c.request].prompt.len());
        let ends_with_stop = stop.stop_strings.iter().any(|s| c.text.ends_with(s.as_str()));
        assert!(full.starts_with(&c.text), "{c:?}");
        match c.finish_reason {
            FinishReason::Stop if c.tokens.last() == Some(&0) => reasons.0 += 1,
            FinishReason::Stop => {
                assert!(ends_with_stop, "{c:?}");
                reasons.1 += 1;
            }
            FinishReason::Length => {
                assert_eq!((c.tokens.len(), c.text.as_str()), (max_new, full.as_str()), "{c:?}");
                reasons.2 += 1;
            }
        }
        // Nothing before the last token already stopped.
        let before = detok(&c.tokens[..c.tokens.len() - 1]);
        assert!(!stop.stop_strings.iter().any(|s| before.contains(s.as_str())), "{c:?}");
        assert!(!c.tokens[..c.tokens.len() - 1].contains(&0), "{c:?}");
    }
    assert_eq!(out.stats.tokens_generated, out.completions.iter().map(|c| c.tokens.len()).sum::<usize>());
    assert!(
        reasons.0 > 0 && reasons.1 > 0 && reasons.2 > 0,
        "EOS, stop strings and length occur: {reasons:?}"
    );
}

#[test]
fn greedy_samples_of_one_prompt_are_identical() {
    let out = run(&model(), &requests(), SamplingParams::greedy(), 5, 1).unwrap();
    for c in &out.completions {
        assert_eq!(c.tokens, out.completions.iter().find(|d| d.request == c.request).unwrap().tokens);
    }
}

#[test]
fn each_prompt_is_prefilled_once_and_copied_to_its_samples() {
    for slots in [2, 3, 8, 17] {
        let m = model();
        let out = run(&m, &requests(), SamplingParams::default(), slots, 2).unwrap();
        let prompts: Vec<Vec<u32>> = m.prefills.borrow().iter().map(|(_, p)| p.clone()).collect();
        let expected: Vec<Vec<u32>> = requests().into_iter().map(|r| r.prompt).collect();
        assert_eq!(prompts, expected, "slots = {slots}");
        assert_eq!(out.stats.prefills, requests().len());
        let samples: usize = requests().iter().map(|r| r.n).sum();
        assert_eq!(m.copies.get(), samples - requests().len());
        assert_eq!(out.stats.slot_copies, m.copies.get());
    }
    // One slot leaves no room for a template: every sample prefills (documented).
    let m = model();
    let out = run(&m, &requests(), SamplingParams::default(), 1, 2).unwrap();
    assert_eq!(out.stats.prefills, requests().iter().map(|r| r.n).sum::<usize>());
}

/// Decode batch sizes stay at least `full` until work runs out, then only shrink.
fn assert_full_then_draining(sizes: &[usize], full: usize) {
    let drop = sizes.iter().position(|&s| s < full).unwrap_or(sizes.len());
    assert!(sizes[drop..].windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
}

#[test]
fn continuous_batching_keeps_the_batch_full_while_work_remains() {
    // Many single-sample requests: every free slot is refilled at once.
    let reqs: Vec<Request> = (0..40).map(|i| Request::new(vec![1 + (i % 15) as u32, 2], 1)).collect();
    for slots in [1, 4, 7] {
        let m = model();
        let out = run(&m, &reqs, SamplingParams::default(), slots, 5).unwrap();
        let sizes = m.decode_sizes.borrow().clone();
        assert_full_then_draining(&sizes, slots);
        assert!(sizes.iter().all(|&s| s <= slots));
        assert_eq!(out.stats.decode_rows, sizes.iter().sum::<usize>());
        assert_eq!(out.stats.decode_steps, sizes.len());
        assert!(out.stats.mean_occupancy() > 0.6, "{:?}", out.stats);
    }
    // Several samples per request: a waiting request's template holds at most one slot.
    for slots in [2, 3, 8] {
        let m = model();
        run(&m, &requests(), SamplingParams::default(), slots, 5).unwrap();
        assert_full_then_draining(&m.decode_sizes.borrow(), slots - 1);
    }
}

#[test]
fn kv_budget_bounds_the_slots_and_too_small_a_budget_is_a_clear_error() {
    let m = model();
    let g = |budget| {
        let c = EngineConfig { max_batch_slots: 8, kv_budget_bytes: budget };
        Generator::new(SamplingParams::default(), stop(), c).unwrap()
    };
    let rng = Rng::seed_from_u64(0);
    // Slot length: min(max_total_len 20, longest prompt 10 + max_new 12) = 20 tokens.
    let per_slot = 20 * BYTES_PER_TOKEN;
    let out = g(3 * per_slot + 5).generate(&Reference::new(), &m, &requests(), &detok, &rng).unwrap();
    assert_eq!(out.stats.slots, 3);
    assert!(m.decode_sizes.borrow().iter().all(|&s| s <= 3));
    let e = g(per_slot - 1).generate(&Reference::new(), &m, &requests(), &detok, &rng).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("fits no slot") && msg.contains(&per_slot.to_string()), "{msg}");
}

#[test]
fn bad_inputs_are_errors_naming_the_request_and_call_no_model() {
    let cases: Vec<(Vec<Request>, &str)> = vec![
        (vec![], "request list is empty"),
        (vec![Request::new(vec![1], 1), Request::new(vec![], 2)], "request 1: the prompt is empty"),
        (vec![Request::new(vec![1], 1), Request::new(vec![1], 1), Request::new(vec![1; 20], 1)], "request 2"),
        (vec![Request::new(vec![1], 0)], "request 0: n must be >= 1"),
        (vec![Request::new(vec![1], 1), Request::new(vec![3, 99], 1)], "request 1: prompt token 1 is 99"),
    ];
    for (reqs, needle) in cases {
        let m = model();
        let e = run(&m, &reqs, SamplingParams::default(), 4, 0).unwrap_err();
        assert!(e.to_string().contains(needle), "{e} (expected {needle:?})");
        assert!(m.prefills.borrow().is_empty());
    }
    // A prompt of exactly max_total_len - 1 tokens is fine: one new token, `length`.
    let out = run(&model(), &[Request::new(vec![1; 19], 2)], SamplingParams::greedy(), 4, 0).unwrap();
    assert!(out.completions.iter().all(|c| c.tokens.len() == 1));
    let bad = EngineConfig { max_batch_slots: 0, kv_budget_bytes: 1 };
    assert!(
        Generator::new(SamplingParams::default(), stop(), bad)
            .unwrap_err()
            .to_string()
            .contains("max_batch_slots")
    );
}

#[test]
fn the_free_function_matches_the_generator() {
    let (b, m, rng) = (Reference::new(), model(), Rng::seed_from_u64(8));
    let params = SamplingParams::default();
    let out = generate(&b, &m, &requests(), &params, &stop(), &detok, &rng, &config(3)).unwrap();
    assert_eq!(out.completions, run(&model(), &requests(), params, 5, 8).unwrap().completions);
    let texts: Vec<String> = out.completions.iter().map(|c| c.text.clone()).collect();
    assert!(texts.iter().any(|t| !t.is_empty()));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any requests, any slot count: the engine equals the sequential oracle, prefills each
    /// prompt once (given two slots or more) and never exceeds its slots.
    #[test]
    fn engine_equals_the_sequential_oracle(
        reqs in proptest::collection::vec(
            (proptest::collection::vec(1u32..16, 1..9), 1usize..5).prop_map(|(p, n)| Request::new(p, n)),
            1..6,
        ),
        slots in 1usize..10,
        seed in 0u64..1000,
        top_k in proptest::option::of(1usize..6),
    ) {
        let params = SamplingParams::new(1.0, top_k, 0.95).expect("valid params");
        let m = model();
        let out = run(&m, &reqs, params, slots, seed).expect("generation");
        prop_assert_eq!(&out.completions, &sequential(&model(), &reqs, &params, seed));
        if slots >= 2 {
            prop_assert_eq!(out.stats.prefills, reqs.len());
        }
        prop_assert!(m.decode_sizes.borrow().iter().all(|&s| s <= slots));
    }
}
