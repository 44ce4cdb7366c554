//! The tensor forms of the KL estimators and of the entropy (what the trainer differentiates)
//! against their host oracles, values and gradients, through the reference backend's autograd.

use orz_core::backend::{Backend, DType};
use orz_core::ppo::entropy::{entropy_from_logits, entropy_host};
use orz_core::ppo::kl::KlEstimator;
use orz_reference::Reference;
use proptest::prelude::*;

proptest! {
    #[test]
    fn kl_tensor_and_its_gradient_match_the_host_oracle(
        pairs in proptest::collection::vec((-5.0f64..0.0, -5.0f64..0.0), 1..10),
    ) {
        let b = Reference::new();
        let (logp, logp_ref): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
        let n = logp.len();
        for k in [KlEstimator::K1, KlEstimator::K2, KlEstimator::K3] {
            let x = b.param(&b.tensor_f64(&logp, &[1, n], DType::F32).unwrap()).unwrap();
            let r = b.tensor_f64(&logp_ref, &[1, n], DType::F32).unwrap();
            // The oracle sees the values the backend holds (F32 storage may round them).
            let (logp, logp_ref) = (b.to_host_f64(&x).unwrap(), b.to_host_f64(&r).unwrap());
            let kl = k.tensor(&b, &x, &r).unwrap();
            let values = b.to_host_f64(&kl).unwrap();
            let grads = b.backward(&b.sum_all(&kl).unwrap()).unwrap();
            let g = b.to_host_f64(&b.grad(&grads, &x).unwrap().unwrap()).unwrap();
            for t in 0..n {
                let (want, dwant) = (k.per_token(logp[t], logp_ref[t]), k.grad_logp(logp[t], logp_ref[t]));
                prop_assert!((values[t] - want).abs() <= 1e-9 * (1.0 + want.abs()), "{:?} value {}", k, t);
                prop_assert!((g[t] - dwant).abs() <= 1e-9 * (1.0 + dwant.abs()), "{:?} grad {}: {} vs {}", k, t, g[t], dwant);
            }
        }
    }

    #[test]
    fn entropy_tensor_and_its_gradient_match_the_host_oracle(
        rows in proptest::collection::vec(proptest::collection::vec(-4.0f64..4.0, 5), 1..4),
    ) {
        let b = Reference::new();
        let (n, v) = (rows.len(), 5);
        let flat: Vec<f64> = rows.concat();
        let z = b.param(&b.tensor_f64(&flat, &[1, n, v], DType::F32).unwrap()).unwrap();
        let held = b.to_host_f64(&z).unwrap();
        let rows: Vec<&[f64]> = held.chunks(v).collect();
        let h = entropy_from_logits(&b, &z).unwrap();
        prop_assert_eq!(b.shape(&h), vec![1, n]);
        let values = b.to_host_f64(&h).unwrap();
        let grads = b.backward(&b.sum_all(&h).unwrap()).unwrap();
        let g = b.to_host_f64(&b.grad(&grads, &z).unwrap().unwrap()).unwrap();
        for (i, row) in rows.iter().enumerate() {
            let (want, dwant) = entropy_host(row).unwrap();
            prop_assert!((values[i] - want).abs() < 1e-9);
            for j in 0..v {
                prop_assert!((g[i * v + j] - dwant[j]).abs() < 1e-9, "row {} logit {}", i, j);
            }
        }
    }
}

#[test]
fn uniform_logits_give_ln_v_through_the_backend() {
    let b = Reference::new();
    let z = b.tensor_f64(&[0.7; 64], &[1, 2, 32], DType::F32).unwrap();
    for h in b.to_host_f64(&entropy_from_logits(&b, &z).unwrap()).unwrap() {
        assert!((h - 32f64.ln()).abs() < 1e-6, "{h}");
    }
}
