//! Gradients of PPO losses through the 2-layer tiny model against central finite differences.

use orz_core::backend::{Backend, DType};
use orz_core::model::{PackedBatch, Qwen2};
use orz_reference::{Reference, Tensor};

use super::support::{critic, policy, sequences, tiny, uniform, vals};

/// For a few entries of each named parameter, `(L(θ + h) - L(θ - h)) / 2h` against the
/// autodiff gradient, perturbing the parameter in place with `assign_param`.
fn check(b: &Reference, model: &Qwen2<Reference>, names: &[&str], loss: &dyn Fn() -> Tensor) {
    let h = 1e-6;
    let grads = b.backward(&loss()).unwrap();
    let named = model.named_tensors();
    for name in names {
        let (_, p) = named.iter().find(|(n, _)| n == name).unwrap();
        let g = vals(b, &b.grad(&grads, p).unwrap().unwrap_or_else(|| panic!("{name}: no gradient")));
        let base = vals(b, p);
        let shape = b.shape(p);
        assert!(g.iter().any(|x| x.abs() > 1e-8), "{name}: zero gradient");
        for i in (0..base.len()).step_by(base.len().div_ceil(3)) {
            let at = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                b.assign_param(p, &b.tensor_f64(&v, &shape, DType::F32).unwrap()).unwrap();
                vals(b, &loss())[0]
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            b.assign_param(p, &b.tensor_f64(&base, &shape, DType::F32).unwrap()).unwrap();
            assert!(
                (fd - g[i]).abs() <= 1e-6 + 1e-5 * fd.abs().max(g[i].abs()),
                "{name}[{i}]: fd {fd}, autodiff {}",
                g[i]
            );
        }
    }
}

#[test]
fn ppo_policy_and_value_losses_match_finite_differences() {
    let c = tiny(false);
    let (b, pol) = policy(&c, 31);
    let batch = PackedBatch::pack(&[sequences(&[5, 4], c.vocab_size, 12), sequences(&[6], c.vocab_size, 13)])
        .unwrap();
    let shape = batch.shape();
    let n = shape[0] * shape[1];
    let mask = b.tensor_bool(&batch.next_token_mask(), &shape).unwrap();
    let advantages = b.tensor_f64(&uniform(1, n, -2.0, 2.0), &shape, DType::F32).unwrap();
    // Old log-probs near the current ones, so some ratios fall outside the clip range.
    let lp0 = vals(&b, &pol.next_token_log_probs(&batch).unwrap());
    let shift = uniform(2, n, -0.4, 0.4);
    let old: Vec<f64> = lp0.iter().zip(&shift).map(|(l, s)| l + s).collect();
    let old = b.tensor_f64(&old, &shape, DType::F32).unwrap();
    let policy_loss = || {
        let lp = pol.next_token_log_probs(&batch).unwrap();
        b.masked_mean(&b.policy_loss(&lp, &old, &advantages, 0.2).unwrap(), &mask, None).unwrap()
    };
    let names = [
        "model.embed_tokens.weight",
        "model.layers.0.self_attn.q_proj.bias",
        "model.layers.0.self_attn.k_proj.weight",
        "model.layers.0.input_layernorm.weight",
        "model.layers.1.self_attn.v_proj.weight",
        "model.layers.1.mlp.down_proj.weight",
        "model.norm.weight",
        "lm_head.weight",
    ];
    check(&b, pol.model(), &names, &policy_loss);

    let cri = critic(&b, &c, 32);
    let token_mask = b.tensor_bool(&(0..n).map(|i| batch.is_token(i)).collect::<Vec<_>>(), &shape).unwrap();
    let v0 = vals(&b, &cri.values(&batch).unwrap());
    let old_v: Vec<f64> = v0.iter().zip(&shift).map(|(v, s)| v - s).collect();
    let old_v = b.tensor_f64(&old_v, &shape, DType::F32).unwrap();
    let returns = b.tensor_f64(&uniform(3, n, -1.0, 2.0), &shape, DType::F32).unwrap();
    let value_loss = || {
        let v = cri.values(&batch).unwrap();
        b.masked_mean(&b.value_loss(&v, &old_v, &returns, 0.2).unwrap(), &token_mask, None).unwrap()
    };
    let names = [
        "model.layers.0.self_attn.o_proj.weight",
        "model.layers.1.mlp.gate_proj.weight",
        "model.layers.1.post_attention_layernorm.weight",
        "value_head.weight",
    ];
    check(&b, cri.model(), &names, &value_loss);
}
