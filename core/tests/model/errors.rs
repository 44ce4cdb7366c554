//! Bad input gets errors that name the field, the tensor, the shape or the token.

use std::rc::Rc;

use orz_core::backend::{Backend, DType};
use orz_core::generation::SlotDecoder;
use orz_core::model::{Critic, Head, PackedBatch, Policy, Qwen2};
use orz_reference::Reference;

use super::support::{host_weights, policy, tensors, tiny};

fn message<T: std::fmt::Debug>(r: orz_core::Result<T>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn config_errors_name_the_field() {
    let b = Rc::new(Reference::new());
    let mut c = tiny(false);
    let host = host_weights(&c, Head::Lm, 1);
    c.num_key_value_heads = 3;
    let err = message(Policy::from_tensors(Rc::clone(&b), &c, tensors(&b, &host)));
    assert!(err.contains("num_key_value_heads"), "{err}");
    let mut c = tiny(false);
    c.rms_norm_eps = 0.0;
    let err = message(Qwen2::random(
        Rc::clone(&b),
        &c,
        Head::Lm,
        DType::F32,
        &mut orz_core::rng::Rng::seed_from_u64(0),
    ));
    assert!(err.contains("rms_norm_eps"), "{err}");
}

#[test]
fn missing_misshapen_and_mistyped_tensors_are_named() {
    let b = Rc::new(Reference::new());
    let c = tiny(false);
    let host = host_weights(&c, Head::Lm, 1);
    let mut ts = tensors(&b, &host);
    ts.remove("model.layers.1.mlp.up_proj.weight");
    let err = message(Policy::from_tensors(Rc::clone(&b), &c, ts));
    assert!(
        err.contains("missing tensor `model.layers.1.mlp.up_proj.weight` (expected shape [24, 16])"),
        "{err}"
    );

    let mut ts = tensors(&b, &host);
    ts.insert("model.layers.0.self_attn.k_proj.bias".into(), b.zeros(&[16], DType::F32).unwrap());
    let err = message(Policy::from_tensors(Rc::clone(&b), &c, ts));
    assert!(err.contains("`model.layers.0.self_attn.k_proj.bias` has shape [16], expected [8]"), "{err}");

    let mut ts = tensors(&b, &host);
    ts.insert("model.norm.weight".into(), b.zeros(&[16], DType::BF16).unwrap());
    let err = message(Policy::from_tensors(Rc::clone(&b), &c, ts));
    assert!(err.contains("tensor `model.norm.weight`: it has dtype bf16, the embeddings have f32"), "{err}");

    let mut ts = tensors(&b, &host);
    ts.insert("model.embed_tokens.weight".into(), b.tensor_i64(&[0; 40 * 16], &[40, 16]).unwrap());
    let err = message(Policy::from_tensors(Rc::clone(&b), &c, ts));
    assert!(err.contains("`model.embed_tokens.weight`: a float dtype is required, got i64"), "{err}");

    // The critic needs its value head; a policy checkpoint lacks it.
    let err = message(Critic::from_tensors(Rc::clone(&b), &c, tensors(&b, &host)));
    assert!(err.contains("missing tensor `value_head.weight` (expected shape [1, 16])"), "{err}");

    // Unknown extras (HF buffers) are ignored.
    let mut ts = tensors(&b, &host);
    ts.insert("model.layers.0.self_attn.rotary_emb.inv_freq".into(), b.zeros(&[2], DType::F32).unwrap());
    assert!(Policy::from_tensors(Rc::clone(&b), &c, ts).is_ok());

    // A model with the wrong head is refused by the wrapper.
    let critic =
        Qwen2::random(Rc::clone(&b), &c, Head::Value, DType::F32, &mut orz_core::rng::Rng::seed_from_u64(1));
    assert!(message(Policy::new(critic.unwrap())).contains("LM head"));
}

#[test]
fn token_ids_outside_the_vocabulary_are_named() {
    let c = tiny(false);
    let (_, pol) = policy(&c, 2);
    let batch = PackedBatch::pack(&[vec![vec![3, 4], vec![40, 5]]]).unwrap();
    let err = message(pol.logits(&batch));
    assert!(err.contains("index 40 is out of range for size 40") && err.contains("position 2"), "{err}");
    let mut cache = pol.new_cache(2, 4).unwrap();
    assert!(message(pol.prefill(&mut cache, 0, &[1, 99])).contains("index 99"));
    pol.prefill(&mut cache, 0, &[1, 2]).unwrap();
    assert!(message(pol.decode(&mut cache, &[0], &[41])).contains("index 41"));
    // A failed decode leaves the slot as it was.
    assert_eq!(pol.slot_len(&cache, 0).unwrap(), 2);
}

#[test]
fn slot_errors_are_named() {
    let c = tiny(false);
    let (_, pol) = policy(&c, 3);
    let mut cache = pol.new_cache(2, 3).unwrap();
    let err = message(pol.prefill(&mut cache, 0, &[2, 3, 4, 5]));
    assert!(err.contains("prompt of 4 tokens does not fit a slot of 3 tokens"), "{err}");
    assert!(message(pol.prefill(&mut cache, 0, &[])).contains("`prompt` is empty"));
    assert!(message(pol.prefill(&mut cache, 2, &[2])).contains("slot index"));
    pol.prefill(&mut cache, 0, &[2, 3, 4]).unwrap();
    assert!(message(pol.decode(&mut cache, &[0], &[5])).contains("slot 0 is full (3 tokens)"));
    assert!(message(pol.decode(&mut cache, &[1, 1], &[5, 6])).contains("slot 1 is listed twice"));
    assert!(message(pol.decode(&mut cache, &[1], &[5, 6])).contains("length mismatch"));
    assert!(message(pol.decode(&mut cache, &[5], &[5])).contains("slot index"));
    assert!(message(pol.decode(&mut cache, &[], &[])).contains("`slots` is empty"));
    assert!(message(pol.copy_slot(&mut cache, 0, 7)).contains("slot index"));
    assert!(message(pol.slot_len(&cache, 2)).contains("slot index"));
    assert!(pol.new_cache(0, 4).is_err() && pol.new_cache(1, 0).is_err());
}
