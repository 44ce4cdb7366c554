//! Initialization (HF rules, ORZ's value head), parameter listing, round trips.

use std::rc::Rc;

use orz_core::backend::{Backend, DType};
use orz_core::model::{
    Critic, Head, INIT_STD, PackedBatch, Policy, Qwen2, VALUE_HEAD, parameter_specs, value_head_std,
};
use orz_core::rng::Rng;
use orz_reference::Reference;

use super::support::{assert_close, host_weights, policy, sequences, tensors, tiny, vals};

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    (mean, (xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt())
}

#[test]
fn value_head_init_is_normal_with_std_one_over_hidden_plus_one() {
    let b = Rc::new(Reference::new());
    let c = tiny(false);
    let base = tensors(&b, &host_weights(&c, Head::Lm, 5));
    let mut rng = Rng::seed_from_u64(9);
    let mut draws = Vec::new();
    for _ in 0..250 {
        let critic = Critic::from_pretrained(Rc::clone(&b), &c, base.clone(), &mut rng).unwrap();
        let named = critic.model().named_tensors();
        let (name, head) = named.last().unwrap();
        assert_eq!(name, VALUE_HEAD);
        draws.extend(vals(&b, head));
    }
    let (mean, std) = mean_std(&draws);
    let want = value_head_std(c.hidden_size);
    assert_eq!(want, 1.0 / 17.0);
    assert_eq!(draws.len(), 4000);
    // 4000 draws: the sample std is within ~1.1% of the truth (1 sigma); allow 5%.
    assert!((std / want - 1.0).abs() < 0.05, "std {std}, want {want}");
    assert!(mean.abs() < 4.0 * want / (draws.len() as f64).sqrt(), "mean {mean}");
}

#[test]
fn random_init_follows_hugging_face() {
    let b = Rc::new(Reference::new());
    let c = tiny(false);
    let model =
        Qwen2::random(Rc::clone(&b), &c, Head::Value, DType::F32, &mut Rng::seed_from_u64(3)).unwrap();
    for (name, t) in model.named_tensors() {
        let v = vals(&b, &t);
        if name.ends_with("norm.weight") {
            assert!(v.iter().all(|&x| x == 1.0), "{name}");
        } else if name.ends_with(".bias") {
            assert!(v.iter().all(|&x| x == 0.0), "{name}");
        } else if name == "model.embed_tokens.weight" {
            let (_, std) = mean_std(&v);
            assert!((std / INIT_STD - 1.0).abs() < 0.1, "{name}: std {std}");
        }
    }
    // Same seed, same model.
    let again =
        Qwen2::random(Rc::clone(&b), &c, Head::Value, DType::F32, &mut Rng::seed_from_u64(3)).unwrap();
    let (x, y) = (model.parameters(), again.parameters());
    assert!(x.iter().zip(&y).all(|(p, q)| vals(&b, p) == vals(&b, q)));
    assert_eq!(model.dtype(), DType::F32);
    assert!(Qwen2::random(b, &c, Head::Lm, DType::I64, &mut Rng::seed_from_u64(3)).is_err());
}

#[test]
fn named_tensors_follow_the_specs_and_round_trip() {
    for tied in [false, true] {
        let c = tiny(tied);
        let (b, pol) = policy(&c, 6);
        let named = pol.model().named_tensors();
        let names: Vec<String> = named.iter().map(|(n, _)| n.clone()).collect();
        let specs: Vec<String> = parameter_specs(&c, Head::Lm).into_iter().map(|s| s.name).collect();
        assert_eq!(names, specs);
        assert_eq!(pol.model().parameters().len(), specs.len());
        for ((name, t), spec) in named.iter().zip(parameter_specs(&c, Head::Lm)) {
            assert_eq!(b.shape(t), spec.shape, "{name}");
        }
        // Saving and loading gives the same model.
        let reloaded = Policy::from_tensors(Rc::clone(&b), &c, named.into_iter().collect()).unwrap();
        let batch = PackedBatch::padded(&sequences(&[5, 3], c.vocab_size, 2)).unwrap();
        assert_close(
            "reloaded logits",
            &vals(&b, &reloaded.logits(&batch).unwrap()),
            &vals(&b, &pol.logits(&batch).unwrap()),
            0.0,
        );
    }
}

#[test]
fn a_critic_from_a_policy_checkpoint_shares_the_backbone_values() {
    let c = tiny(false);
    let (b, pol) = policy(&c, 7);
    let named: std::collections::BTreeMap<_, _> = pol.model().named_tensors().into_iter().collect();
    let critic = Critic::from_pretrained(Rc::clone(&b), &c, named, &mut Rng::seed_from_u64(1)).unwrap();
    let batch = PackedBatch::padded(&sequences(&[4], c.vocab_size, 3)).unwrap();
    assert_close(
        "hidden states",
        &vals(&b, &critic.model().hidden_states(&batch).unwrap()),
        &vals(&b, &pol.model().hidden_states(&batch).unwrap()),
        0.0,
    );
    assert_eq!(critic.model().parameters().len(), pol.model().parameters().len());
    assert_eq!(b.shape(&critic.values(&batch).unwrap()), vec![1, 4]);
}
