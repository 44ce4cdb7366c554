//! The composites working together as the model will use them: a tiny Qwen2-style block
//! differentiated end to end, and KV-cache decoding equal to the full causal forward.

use orz_core::Result;
use orz_core::backend::nn::rope_tables;
use orz_core::backend::{Backend, DType};

use super::{assert_close, check_grad, f32t, uniform, vals};
use crate::{Reference, Tensor};

const VOCAB: usize = 5;
const HIDDEN: usize = 4;
const HEAD_DIM: usize = 2;
const SEQ: usize = 3;

/// Embedding, RMSNorm, rotary GQA attention (2 query heads, 1 kv head) with a residual, a SiLU
/// MLP, the final norm and the LM head, then the PPO policy loss of the chosen tokens, per token.
fn block(b: &Reference, p: &[Tensor]) -> Result<Tensor> {
    let [embed, norm1, wq, wk, wv, wo, up, down, norm2, head] = p else { unreachable!() };
    let ids = b.tensor_i64(&[1, 4, 2], &[1, SEQ])?;
    let seg = b.tensor_i64(&[0, 0, 0], &[1, SEQ])?;
    let (cos, sin) = rope_tables(b, &[0, 1, 2], [1, SEQ], HEAD_DIM, 10000.0, DType::F32)?;
    let heads = |x: &Tensor, n: usize| b.transpose(&b.reshape(x, &[1, SEQ, n, HEAD_DIM])?, 1, 2);
    let x = b.embedding(embed, &ids)?;
    let h = b.rms_norm(&x, norm1, 1e-6)?;
    let q = b.rotary_embedding(&heads(&b.linear(&h, wq, None)?, 2)?, &cos, &sin)?;
    let k = b.rotary_embedding(&heads(&b.linear(&h, wk, None)?, 1)?, &cos, &sin)?;
    let v = heads(&b.linear(&h, wv, None)?, 1)?;
    let a = b.reshape(&b.transpose(&b.causal_attention(&q, &k, &v, &seg)?, 1, 2)?, &[1, SEQ, HIDDEN])?;
    let x = b.add(&x, &b.linear(&a, wo, None)?)?;
    let x = b.add(&x, &b.linear(&b.silu(&b.linear(&x, up, None)?)?, down, None)?)?;
    let logits = b.linear(&b.rms_norm(&x, norm2, 1e-6)?, head, None)?;
    let logp = b.selective_log_prob(&logits, &b.tensor_i64(&[4, 2, 0], &[1, SEQ])?)?;
    let old = f32t(b, &[-1.6, -1.7, -1.5], &[1, SEQ]);
    b.policy_loss(&logp, &old, &f32t(b, &[1.0, -0.5, 2.0], &[1, SEQ]), 0.2)
}

#[test]
fn tiny_block_gradients_match_finite_differences() {
    let shapes: [&[usize]; 10] = [
        &[VOCAB, HIDDEN],
        &[HIDDEN],
        &[HIDDEN, HIDDEN],
        &[HEAD_DIM, HIDDEN],
        &[HEAD_DIM, HIDDEN],
        &[HIDDEN, HIDDEN],
        &[6, HIDDEN],
        &[HIDDEN, 6],
        &[HIDDEN],
        &[VOCAB, HIDDEN],
    ];
    let values: Vec<Vec<f64>> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| uniform(70 + i as u64, s.iter().product(), -1.0, 1.0))
        .collect();
    let inputs: Vec<(&[f64], &[usize])> = values.iter().zip(shapes).map(|(v, s)| (&v[..], s)).collect();
    check_grad("tiny block", &inputs, block);
    // And no parameter's gradient vanishes.
    let b = Reference::new();
    let params: Vec<Tensor> = inputs.iter().map(|(v, s)| b.param(&f32t(&b, v, s)).unwrap()).collect();
    let grads = b.backward(&b.sum_all(&block(&b, &params).unwrap()).unwrap()).unwrap();
    for (i, p) in params.iter().enumerate() {
        let g = vals(&b.grad(&grads, p).unwrap().unwrap());
        assert!(g.iter().any(|x| x.abs() > 1e-6), "parameter {i} got a zero gradient: {g:?}");
    }
}

#[test]
fn kv_cache_decode_equals_full_forward() {
    let b = Reference::new();
    let (s, d) = (4, 2);
    let (q, k, v) =
        (uniform(80, 2 * s * d, -1.0, 1.0), uniform(81, s * d, -1.0, 1.0), uniform(82, s * d, -1.0, 1.0));
    let full = vals(
        &b.causal_attention(
            &f32t(&b, &q, &[1, 2, s, d]),
            &f32t(&b, &k, &[1, 1, s, d]),
            &f32t(&b, &v, &[1, 1, s, d]),
            &b.tensor_i64(&[0; 4], &[1, s]).unwrap(),
        )
        .unwrap(),
    );
    // Decode one position at a time into a cache with room for 6 (two unused slots masked).
    let cap = 6;
    let (kc, vc) =
        (b.zeros(&[1, 1, cap, d], DType::F32).unwrap(), b.zeros(&[1, 1, cap, d], DType::F32).unwrap());
    for t in 0..s {
        b.write_slice(&kc, 2, t, &f32t(&b, &k[t * d..(t + 1) * d], &[1, 1, 1, d])).unwrap();
        b.write_slice(&vc, 2, t, &f32t(&b, &v[t * d..(t + 1) * d], &[1, 1, 1, d])).unwrap();
        let qt: Vec<f64> = (0..2).flat_map(|h| q[(h * s + t) * d..(h * s + t + 1) * d].to_vec()).collect();
        let valid: Vec<bool> = (0..cap).map(|j| j <= t).collect();
        let mask = b.tensor_bool(&valid, &[1, 1, 1, cap]).unwrap();
        let out = vals(&b.attention(&f32t(&b, &qt, &[1, 2, 1, d]), &kc, &vc, &mask).unwrap());
        for h in 0..2 {
            let want = &full[(h * s + t) * d..(h * s + t + 1) * d];
            assert_close(&format!("decode step {t}, head {h}"), &out[h * d..(h + 1) * d], want, 1e-12, 1e-12);
        }
    }
}
