//! The memory-lean backward ([`Qwen2::backprop`]): activation checkpointing and chunked heads
//! give the plain backward's loss and gradients (f64 reference: to rounding), for the policy
//! (tied and untied) and the critic, at chunk lengths that split samples and packs.

use orz_core::backend::{Backend, DType};
use orz_core::model::{Backprop, MemoryOptions, PackedBatch};
use orz_reference::Reference;

use super::support::{critic, policy, sequences, tiny, uniform, vals};

/// Every option set compared against [`MemoryOptions::PLAIN`].
const OPTIONS: [MemoryOptions; 4] = [
    MemoryOptions { activation_checkpointing: true, head_chunk_tokens: usize::MAX },
    MemoryOptions { activation_checkpointing: true, head_chunk_tokens: 1 },
    MemoryOptions { activation_checkpointing: false, head_chunk_tokens: 3 },
    MemoryOptions { activation_checkpointing: true, head_chunk_tokens: 4 },
];

fn batch(vocab: usize) -> PackedBatch {
    PackedBatch::pack(&[sequences(&[5, 4, 1], vocab, 21), sequences(&[7, 2], vocab, 22)]).unwrap()
}

/// Asserts that two backprops agree: loss and every gradient within 1e-12 relative.
fn assert_same(b: &Reference, what: &str, got: &Backprop<Reference>, want: &Backprop<Reference>) {
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * (1.0 + x.abs().max(y.abs()));
    assert!(close(got.loss, want.loss), "{what}: loss {} vs {}", got.loss, want.loss);
    assert_eq!(got.grads.len(), want.grads.len());
    for (i, (g, w)) in got.grads.iter().zip(&want.grads).enumerate() {
        let (g, w) = (g.as_ref().map(|t| vals(b, t)), w.as_ref().map(|t| vals(b, t)));
        let (g, w) = (g.unwrap_or_else(|| panic!("{what}: parameter {i} got no gradient")), w.unwrap());
        assert!(w.iter().any(|x| x.abs() > 1e-9), "{what}: parameter {i} has a zero gradient");
        for (k, (x, y)) in g.iter().zip(&w).enumerate() {
            assert!(close(*x, *y), "{what}: parameter {i}[{k}]: {x} vs {y}");
        }
    }
}

#[test]
fn policy_backprop_equals_the_plain_backward() {
    for tied in [false, true] {
        let c = tiny(tied);
        let (b, pol) = policy(&c, 41);
        let b = &*b;
        let batch = batch(c.vocab_size);
        let shape = batch.shape();
        let n = shape[0] * shape[1];
        let (weights, mask) = (uniform(3, n, -1.0, 1.0), batch.next_token_mask());
        let targets = batch.next_token_tensor(b).unwrap();
        let run = |options| {
            pol.backprop_log_probs(&batch, &targets, options, &mut |lp, range| {
                // A weighted, masked sum of the log-probs of the chunk (any loss will do).
                let cols: Vec<usize> =
                    (0..shape[0]).flat_map(|r| range.clone().map(move |t| r * shape[1] + t)).collect();
                let s = [shape[0], range.len()];
                let w =
                    b.tensor_f64(&cols.iter().map(|&i| weights[i]).collect::<Vec<_>>(), &s, DType::F32)?;
                let m = b.tensor_bool(&cols.iter().map(|&i| mask[i]).collect::<Vec<_>>(), &s)?;
                b.masked_sum(&b.mul(&b.mul(lp, lp)?, &w)?, &m, None)
            })
            .unwrap()
        };
        let plain = run(MemoryOptions::PLAIN);
        for options in OPTIONS {
            assert_same(b, &format!("policy (tied {tied}) {options:?}"), &run(options), &plain);
        }
        // The plain path is the ordinary backward of the whole loss.
        let lp = pol.next_token_log_probs(&batch).unwrap();
        let w = b.tensor_f64(&weights, &shape, DType::F32).unwrap();
        let m = b.tensor_bool(&mask, &shape).unwrap();
        let loss = b.masked_sum(&b.mul(&b.mul(&lp, &lp).unwrap(), &w).unwrap(), &m, None).unwrap();
        let grads = b.backward(&loss).unwrap();
        let direct = Backprop::<Reference> {
            loss: vals(b, &loss)[0],
            grads: pol.model().parameters().iter().map(|p| b.grad(&grads, p).unwrap()).collect(),
        };
        assert_same(b, "plain vs backward", &plain, &direct);
    }
}

#[test]
fn critic_backprop_equals_the_plain_backward() {
    let c = tiny(false);
    let (b, _) = policy(&c, 43);
    let cri = critic(&b, &c, 43);
    let b = &*b;
    let batch = batch(c.vocab_size);
    let shape = batch.shape();
    let returns = &uniform(5, shape[0] * shape[1], -1.0, 2.0);
    let run = |options| {
        cri.backprop_values(&batch, options, &mut |v, range| {
            let cols: Vec<f64> =
                (0..shape[0]).flat_map(|r| range.clone().map(move |t| returns[r * shape[1] + t])).collect();
            let ret = b.tensor_f64(&cols, &[shape[0], range.len()], DType::F32)?;
            let d = b.sub(v, &ret)?;
            b.sum_all(&b.mul(&d, &d)?)
        })
        .unwrap()
    };
    let plain = run(MemoryOptions::PLAIN);
    for options in OPTIONS {
        assert_same(b, &format!("critic {options:?}"), &run(options), &plain);
    }
}

#[test]
fn bad_options_and_tokens_are_errors() {
    let c = tiny(false);
    let (b, pol) = policy(&c, 47);
    let b = &*b;
    let batch = batch(c.vocab_size);
    let targets = batch.next_token_tensor(b).unwrap();
    let zero = MemoryOptions { activation_checkpointing: true, head_chunk_tokens: 0 };
    let err = pol.backprop_log_probs(&batch, &targets, zero, &mut |lp, _| b.sum_all(lp)).unwrap_err();
    assert!(err.to_string().contains("head_chunk_tokens"), "{err}");
    let wrong = b.zeros(&[1, 2], DType::I64).unwrap();
    let err = pol.backprop_log_probs(&batch, &wrong, MemoryOptions::default(), &mut |lp, _| b.sum_all(lp));
    assert!(err.unwrap_err().to_string().contains("targets have shape"));
    let outside = PackedBatch::pack(&[vec![vec![1u32, 2, c.vocab_size as u32]]]).unwrap();
    let t = outside.next_token_tensor(b).unwrap();
    let err = pol.backprop_log_probs(&outside, &t, MemoryOptions::default(), &mut |lp, _| b.sum_all(lp));
    assert!(err.unwrap_err().to_string().contains("outside the vocabulary"));
}
