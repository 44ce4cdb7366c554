//! KV-cache decode = full forward: prefill, shared prefill through `copy_slot`, slots of
//! different lengths in one decode call, and the graph-recording switch.

use orz_core::backend::Backend;
use orz_core::generation::SlotDecoder;
use orz_core::model::{PackedBatch, Policy};
use orz_reference::Reference;

use super::support::{assert_close, policy, sequences, tiny, vals};

/// Full-forward logits of `seq` at position `t`.
fn full_logits(b: &Reference, pol: &Policy<Reference>, seq: &[u32], t: usize) -> Vec<f64> {
    let v = pol.vocab_size();
    let logits = vals(b, &pol.logits(&PackedBatch::padded(&[seq]).unwrap()).unwrap());
    logits[t * v..(t + 1) * v].to_vec()
}

#[test]
fn prefill_then_decode_equals_the_full_forward() {
    for tied in [false, true] {
        let c = tiny(tied);
        let (b, pol) = policy(&c, 21);
        let seq = sequences(&[9], c.vocab_size, 8).remove(0);
        let prompt = 4;
        let mut cache = pol.new_cache(2, 12).unwrap();
        let first = vals(&b, &pol.prefill(&mut cache, 1, &seq[..prompt]).unwrap());
        assert_close("prefill", &first, &full_logits(&b, &pol, &seq, prompt - 1), 1e-10);
        assert_eq!(pol.slot_len(&cache, 1).unwrap(), prompt);
        for t in prompt..seq.len() {
            let step = vals(&b, &pol.decode(&mut cache, &[1], &[seq[t]]).unwrap());
            assert_close(
                &format!("tied={tied}, decode at {t}"),
                &step,
                &full_logits(&b, &pol, &seq, t),
                1e-10,
            );
        }
        assert_eq!(pol.slot_len(&cache, 1).unwrap(), seq.len());
        assert_eq!(pol.slot_len(&cache, 0).unwrap(), 0);
    }
}

#[test]
fn shared_prefill_and_slots_of_different_lengths_decode_together() {
    let c = tiny(false);
    let (b, pol) = policy(&c, 22);
    let v = c.vocab_size;
    // Slot 0: prompt A; slots 2 and 3 are copies of slot 0 (shared prefill); slot 1: prompt B.
    let prompts = sequences(&[3, 6], v, 30);
    let mut cache = pol.new_cache(4, 16).unwrap();
    pol.prefill(&mut cache, 0, &prompts[0]).unwrap();
    pol.prefill(&mut cache, 1, &prompts[1]).unwrap();
    pol.copy_slot(&mut cache, 0, 2).unwrap();
    pol.copy_slot(&mut cache, 0, 3).unwrap();
    assert_eq!(cache.lens(), &[3, 6, 3, 3]);
    let mut seqs = [prompts[0].clone(), prompts[1].clone(), prompts[0].clone(), prompts[0].clone()];
    // Each step lists a different subset of slots, in varying order; the copies diverge.
    let schedule: [&[usize]; 5] = [&[0, 1, 2, 3], &[2, 0], &[3, 1, 0], &[1], &[2, 3, 1, 0]];
    for (step, slots) in schedule.iter().enumerate() {
        let tokens: Vec<u32> = slots.iter().map(|&s| 2 + ((step * 7 + s * 5) % (v - 2)) as u32).collect();
        let logits = vals(&b, &pol.decode(&mut cache, slots, &tokens).unwrap());
        for (i, (&s, &tok)) in slots.iter().zip(&tokens).enumerate() {
            seqs[s].push(tok);
            let want = full_logits(&b, &pol, &seqs[s], seqs[s].len() - 1);
            assert_close(&format!("step {step}, slot {s}"), &logits[i * v..(i + 1) * v], &want, 1e-10);
        }
    }
    let lens: Vec<usize> = seqs.iter().map(Vec::len).collect();
    assert_eq!(cache.lens(), &lens[..]);
    // Re-prefilling a slot resets it.
    pol.prefill(&mut cache, 3, &prompts[1][..2]).unwrap();
    let logits = vals(&b, &pol.decode(&mut cache, &[3], &[5]).unwrap());
    let mut seq = prompts[1][..2].to_vec();
    seq.push(5);
    assert_close("re-prefilled slot", &logits, &full_logits(&b, &pol, &seq, 2), 1e-10);
    // Copying a short slot over a longer one: the target's stale tail is never read.
    assert!(cache.lens()[1] > cache.lens()[3]);
    pol.copy_slot(&mut cache, 3, 1).unwrap();
    let logits = vals(&b, &pol.decode(&mut cache, &[1, 3], &[7, 8]).unwrap());
    let (mut s1, mut s3) = (seq.clone(), seq);
    s1.push(7);
    s3.push(8);
    assert_close("copied over a longer slot", &logits[..v], &full_logits(&b, &pol, &s1, 3), 1e-10);
    assert_close("copy source", &logits[v..], &full_logits(&b, &pol, &s3, 3), 1e-10);
}

#[test]
fn decoding_records_no_graph_and_restores_the_switch() {
    let c = tiny(false);
    let (b, pol) = policy(&c, 23);
    let mut cache = pol.new_cache(1, 4).unwrap();
    assert!(b.set_grad_enabled(true));
    let logits = pol.prefill(&mut cache, 0, &[3, 4]).unwrap();
    assert!(b.set_grad_enabled(true), "prefill must restore graph recording");
    // A loss built on decode logits reaches no parameter.
    let grads = b.backward(&b.sum_all(&logits).unwrap()).unwrap();
    assert!(pol.model().parameters().iter().all(|p| b.grad(&grads, p).unwrap().is_none()));
    let logits = pol.decode(&mut cache, &[0], &[5]).unwrap();
    assert!(b.set_grad_enabled(true), "decode must restore graph recording");
    let grads = b.backward(&b.sum_all(&logits).unwrap()).unwrap();
    assert!(pol.model().parameters().iter().all(|p| b.grad(&grads, p).unwrap().is_none()));
    // With recording off, it stays off.
    b.set_grad_enabled(false);
    pol.decode(&mut cache, &[0], &[6]).unwrap();
    assert!(!b.set_grad_enabled(true));
}

#[test]
fn cache_bytes_counts_keys_and_values_of_every_layer() {
    let c = tiny(false);
    let (_, pol) = policy(&c, 24);
    // 2 (k, v) x 2 layers x 2 kv heads x 4 head_dim x 4 bytes (f32) per token.
    assert_eq!(pol.cache_bytes(3, 10), 2 * 2 * 2 * 4 * 4 * 3 * 10);
    let cache = pol.new_cache(3, 10).unwrap();
    assert_eq!((cache.slots(), cache.max_len()), (3, 10));
}

#[test]
fn a_bf16_model_runs_every_path_in_bf16() {
    let c = tiny(true);
    let b = std::rc::Rc::new(Reference::new());
    let mut rng = orz_core::rng::Rng::seed_from_u64(5);
    let pol = Policy::random(std::rc::Rc::clone(&b), &c, orz_core::backend::DType::BF16, &mut rng).unwrap();
    let batch = PackedBatch::pack(&[vec![vec![3, 4, 5], vec![6, 7]]]).unwrap();
    assert_eq!(b.dtype(&pol.next_token_log_probs(&batch).unwrap()), orz_core::backend::DType::BF16);
    let mut cache = pol.new_cache(2, 8).unwrap();
    pol.prefill(&mut cache, 0, &[3, 4]).unwrap();
    pol.copy_slot(&mut cache, 0, 1).unwrap();
    let logits = pol.decode(&mut cache, &[0, 1], &[5, 6]).unwrap();
    assert_eq!((b.shape(&logits), b.dtype(&logits)), (vec![2, c.vocab_size], orz_core::backend::DType::BF16));
    assert_eq!(pol.cache_bytes(2, 8), 2 * 2 * 2 * 4 * 2 * 2 * 8);
}
