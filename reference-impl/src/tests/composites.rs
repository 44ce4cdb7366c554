//! Forward values of the composites against golden numbers (PyTorch / Hugging Face
//! conventions) and against independent plain-loop oracles.

use orz_core::backend::nn::rope_tables;
use orz_core::backend::{AdamW, AdamWConfig, Backend, DType};

use super::{assert_close, f32t, uniform, vals};
use crate::{Reference, Tensor};

const TOL: f64 = 1e-12;

#[test]
fn log_softmax_softmax_logsumexp_golden() {
    let b = Reference::new();
    let x = f32t(&b, &[1.0, 2.0, 3.0, -1e4, 0.0, 1e4], &[2, 3]);
    // torch.log_softmax(torch.tensor([1., 2., 3.], dtype=torch.float64), 0)
    let want = [-2.4076059644443806, -1.4076059644443806, -0.4076059644443806, -2e4, -1e4, 0.0];
    assert_close("log_softmax", &vals(&b.log_softmax(&x, 1).unwrap()), &want, TOL, TOL);
    let sm = vals(&b.softmax(&x, 1).unwrap());
    assert_close(
        "softmax",
        &sm[..3],
        &[0.09003057317038046, 0.24472847105479764, 0.6652409557748219],
        TOL,
        TOL,
    );
    assert_close(
        "logsumexp",
        &vals(&b.logsumexp(&x, 1, false).unwrap()),
        &[3.4076059644443806, 1e4],
        TOL,
        TOL,
    );
    // A huge shared offset does not swallow the log term.
    let big = f32t(&b, &[f64::from(f32::MIN); 2], &[2]);
    assert_close("offset log_softmax", &vals(&b.log_softmax(&big, 0).unwrap()), &[-(2f64.ln()); 2], TOL, TOL);
    // A row of -inf has logsumexp -inf, not NaN.
    let inf = f32t(&b, &[f64::NEG_INFINITY; 2], &[2]);
    assert_eq!(vals(&b.logsumexp(&inf, 0, false).unwrap()), [f64::NEG_INFINITY]);
}

#[test]
fn rms_norm_golden() {
    let b = Reference::new();
    let x = f32t(&b, &[1.0, 2.0, 3.0, 4.0], &[1, 4]);
    let w = f32t(&b, &[1.0, 2.0, 0.5, -1.0], &[4]);
    // x / sqrt(mean(x²)) = x / sqrt(7.5), times the weight.
    let want = [0.3651483716701107, 1.4605934866804429, 0.5477225575051661, -1.4605934866804429];
    assert_close("rms_norm", &vals(&b.rms_norm(&x, &w, 0.0).unwrap()), &want, TOL, TOL);
    let y = b.rms_norm(&b.cast(&x, DType::BF16).unwrap(), &b.cast(&w, DType::BF16).unwrap(), 1e-6).unwrap();
    assert_eq!(y.dtype(), DType::BF16, "rms_norm returns the input dtype");
}

#[test]
fn rope_rotate_half_golden() {
    let b = Reference::new();
    let x = f32t(&b, &[1.0, 2.0, 3.0, 4.0, 1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 4]);
    let (cos, sin) = rope_tables(&b, &[0, 1], [1, 2], 4, 10000.0, DType::F32).unwrap();
    // Position 0 is the identity; position 1 rotates pairs (0, 2) by 1 rad and (1, 3) by 0.01 rad
    // (inv_freq = [1, 1/100]), rotate_half([1, 2, 3, 4]) = [-3, -4, 1, 2].
    let (c1, s1, c2, s2) = (1f64.cos(), 1f64.sin(), 0.01f64.cos(), 0.01f64.sin());
    let want = [1.0, 2.0, 3.0, 4.0, c1 - 3.0 * s1, 2.0 * c2 - 4.0 * s2, 3.0 * c1 + s1, 4.0 * c2 + 2.0 * s2];
    assert_close("rope", &vals(&b.rotary_embedding(&x, &cos, &sin).unwrap()), &want, TOL, TOL);
}

/// Plain-loop attention for one batch row and head: `softmax(q kᵀ / sqrt(d))` over the allowed
/// keys, then the weighted sum of values.
fn naive_attention(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    s: usize,
    d: usize,
    allowed: impl Fn(usize, usize) -> bool,
) -> Vec<f64> {
    let mut out = vec![0.0; s * d];
    for i in 0..s {
        let scores: Vec<f64> = (0..s)
            .map(|j| {
                if allowed(i, j) {
                    (0..d).map(|c| q[i * d + c] * k[j * d + c]).sum::<f64>() / (d as f64).sqrt()
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect();
        let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = scores.iter().map(|x| (x - m).exp()).collect();
        let z: f64 = e.iter().sum();
        for j in 0..s {
            for c in 0..d {
                out[i * d + c] += e[j] / z * v[j * d + c];
            }
        }
    }
    out
}

#[test]
fn causal_attention_packed_equals_separate_and_naive() {
    let b = Reference::new();
    let (s, d) = (5, 4);
    let (q, k, v) =
        (uniform(1, s * d, -1.0, 1.0), uniform(2, s * d, -1.0, 1.0), uniform(3, s * d, -1.0, 1.0));
    let t = |x: &[f64], n: usize| f32t(&b, x, &[1, 1, n, d]);
    let seg = b.tensor_i64(&[0, 0, 0, 1, 1], &[1, s]).unwrap();
    let packed = vals(&b.causal_attention(&t(&q, s), &t(&k, s), &t(&v, s), &seg).unwrap());
    let segs = [0, 0, 0, 1, 1];
    let want = naive_attention(&q, &k, &v, s, d, |i, j| j <= i && segs[i] == segs[j]);
    assert_close("packed vs naive", &packed, &want, TOL, TOL);
    // The two samples alone.
    for (start, len) in [(0, 3), (3, 2)] {
        let r = start * d..(start + len) * d;
        let alone_seg = b.tensor_i64(&vec![7; len], &[1, len]).unwrap();
        let alone = b.causal_attention(
            &t(&q[r.clone()], len),
            &t(&k[r.clone()], len),
            &t(&v[r.clone()], len),
            &alone_seg,
        );
        assert_close("packed vs separate", &packed[r], &vals(&alone.unwrap()), TOL, TOL);
    }
}

#[test]
fn gqa_repeats_kv_heads_like_hf_repeat_kv() {
    let b = Reference::new();
    let (s, d) = (3, 2);
    let q = uniform(4, 4 * s * d, -1.0, 1.0);
    let (k, v) = (uniform(5, 2 * s * d, -1.0, 1.0), uniform(6, 2 * s * d, -1.0, 1.0));
    let seg = b.tensor_i64(&[0; 3], &[1, s]).unwrap();
    let out = vals(
        &b.causal_attention(
            &f32t(&b, &q, &[1, 4, s, d]),
            &f32t(&b, &k, &[1, 2, s, d]),
            &f32t(&b, &v, &[1, 2, s, d]),
            &seg,
        )
        .unwrap(),
    );
    for h in 0..4 {
        let kv = (h / 2) * s * d..(h / 2 + 1) * s * d;
        let want =
            naive_attention(&q[h * s * d..(h + 1) * s * d], &k[kv.clone()], &v[kv], s, d, |i, j| j <= i);
        assert_close("gqa head", &out[h * s * d..(h + 1) * s * d], &want, TOL, TOL);
    }
}

#[test]
fn selective_log_prob_and_masks() {
    let b = Reference::new();
    let x = f32t(&b, &[1.0, 2.0, 3.0, 0.5, 0.5, 0.5], &[2, 3]);
    let lp = vals(&b.selective_log_prob(&x, &b.tensor_i64(&[2, 1], &[2]).unwrap()).unwrap());
    assert_close("selective_log_prob", &lp, &[-0.4076059644443806, -(3f64.ln())], TOL, TOL);

    // A NaN at a masked position leaks neither into the value nor into the gradient.
    let p = b.param(&f32t(&b, &[1.0, f64::NAN, 3.0, f64::INFINITY], &[4])).unwrap();
    let mask = b.tensor_bool(&[true, false, true, false], &[4]).unwrap();
    let m = b.masked_mean(&p, &mask, None).unwrap();
    assert_eq!(vals(&m), [2.0]);
    assert_eq!(vals(&b.masked_sum(&p, &mask, None).unwrap()), [4.0]);
    let g = b.grad(&b.backward(&m).unwrap(), &p).unwrap().unwrap();
    assert_eq!(vals(&g), [0.5, 0.0, 0.5, 0.0]);
    // Nothing selected: 0, not NaN.
    let none = b.tensor_bool(&[false; 4], &[4]).unwrap();
    assert_eq!(vals(&b.masked_mean(&p, &none, None).unwrap()), [0.0]);
}

fn grad_of(b: &Reference, p: &Tensor, out: &Tensor) -> Vec<f64> {
    vals(&b.grad(&b.backward(&b.sum_all(out).unwrap()).unwrap(), p).unwrap().unwrap())
}

#[test]
fn policy_loss_golden_and_kinks() {
    let b = Reference::new();
    // ratios 1.5, 1.5, 0.5, 0.5, 1.0 with advantages 2, -2, 1, -1, 3.
    let ratios = [1.5f64, 1.5, 0.5, 0.5, 1.0];
    let logp = b.param(&f32t(&b, &ratios.map(f64::ln), &[5])).unwrap();
    let (old, adv) = (f32t(&b, &[0.0; 5], &[5]), f32t(&b, &[2.0, -2.0, 1.0, -1.0, 3.0], &[5]));
    let loss = b.policy_loss(&logp, &old, &adv, 0.2).unwrap();
    assert_close("policy_loss", &vals(&loss), &[-2.4, 3.0, -0.5, 0.8, -3.0], TOL, TOL);
    // Clipped branches have zero gradient; the others -A * r; at r = 1 (both branches equal,
    // inside the clip range) the halves add up to the full -A * r.
    assert_close("policy_loss grad", &grad_of(&b, &logp, &loss), &[0.0, 3.0, -0.5, 0.0, -3.0], TOL, TOL);
}

#[test]
fn value_loss_golden_and_kinks() {
    let b = Reference::new();
    let v = b.param(&f32t(&b, &[1.0, 0.6, 0.0], &[3])).unwrap();
    let (old, ret) = (f32t(&b, &[0.5, 0.5, 0.0], &[3]), f32t(&b, &[0.0, 1.0, 2.0], &[3]));
    let loss = b.value_loss(&v, &old, &ret, 0.2).unwrap();
    // 1: V_clip = 0.7, max(0.49, 1.0) / 2; 2: inside the clip, both 0.16; 3: both 4.
    assert_close("value_loss", &vals(&loss), &[0.5, 0.08, 2.0], TOL, TOL);
    assert_close("value_loss grad", &grad_of(&b, &v, &loss), &[1.0, -0.4, -2.0], TOL, TOL);
}

#[test]
fn tie_conventions_follow_pytorch() {
    let b = Reference::new();
    let x = b.param(&f32t(&b, &[1.0, 3.0, 3.0, 2.0], &[4])).unwrap();
    let two = f32t(&b, &[2.0], &[1]);
    assert_eq!(grad_of(&b, &x, &b.max(&x, 0, false).unwrap()), [0.0, 0.5, 0.5, 0.0], "amax splits evenly");
    assert_eq!(grad_of(&b, &x, &b.maximum(&x, &two).unwrap()), [0.0, 1.0, 1.0, 0.5], "maximum halves ties");
    assert_eq!(grad_of(&b, &x, &b.minimum(&x, &two).unwrap()), [1.0, 0.0, 0.0, 0.5], "minimum halves ties");
    assert_eq!(grad_of(&b, &x, &b.clamp(&x, 1.0, 2.0).unwrap()), [1.0, 0.0, 0.0, 1.0], "clamp is inclusive");
}

#[test]
fn sort_cumsum_argmax_cast() {
    let b = Reference::new();
    let x = f32t(&b, &[2.0, f64::NAN, 1.0, 2.0, -1.0], &[5]);
    let (v, i) = b.sort(&x, 0, true).unwrap();
    assert!(vals(&v)[0].is_nan());
    assert_eq!(b.to_host_i64(&i).unwrap(), [1, 0, 3, 2, 4], "descending, NaN first, ties in input order");
    let (_, i) = b.sort(&x, 0, false).unwrap();
    assert_eq!(b.to_host_i64(&i).unwrap(), [4, 2, 0, 3, 1]);
    let y = f32t(&b, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    assert_eq!(vals(&b.cumsum(&y, 1).unwrap()), [1.0, 3.0, 6.0, 4.0, 9.0, 15.0]);
    assert_eq!(b.to_host_i64(&b.argmax(&f32t(&b, &[1.0, 5.0, 5.0], &[3]), 0, false).unwrap()).unwrap(), [1]);
    let c = b.cast(&f32t(&b, &[-1.7, 2.9, 0.0], &[3]), DType::I64).unwrap();
    assert_eq!(b.to_host_i64(&c).unwrap(), [-1, 2, 0], "float to i64 truncates toward zero");
    assert_eq!(b.to_host_i64(&b.cast(&c, DType::Bool).unwrap()).unwrap(), [1, 1, 0]);
}

#[test]
fn adamw_matches_pytorch_formula() {
    let b = Reference::new();
    let p = b.param(&f32t(&b, &[1.0, -2.0], &[2])).unwrap();
    let g = f32t(&b, &[0.5, 0.1], &[2]);
    let config = AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 };
    let mut opt = AdamW::<Reference>::new(config);
    let lr = 0.1;
    opt.step(&b, std::slice::from_ref(&p), &[Some(g.clone())], lr).unwrap();
    opt.step(&b, std::slice::from_ref(&p), &[Some(g)], lr).unwrap();
    // Host replay of torch.optim.AdamW for two steps.
    let want: Vec<f64> = [(1.0f64, 0.5f64), (-2.0, 0.1)]
        .iter()
        .map(|&(mut p, g)| {
            let (mut m, mut v) = (0.0, 0.0);
            for t in 1..=2 {
                p *= 1.0 - lr * 0.1;
                m = 0.9 * m + 0.1 * g;
                v = 0.95 * v + 0.05 * g * g;
                let denom = v.sqrt() / (1.0 - 0.95f64.powi(t)).sqrt() + 1e-8;
                p -= lr / (1.0 - 0.9f64.powi(t)) * m / denom;
            }
            p
        })
        .collect();
    assert_close("adamw", &vals(&p), &want, TOL, TOL);
    let state = opt.state(0).unwrap();
    assert_eq!((state.step, state.m.dtype()), (2, DType::F32));
}

#[test]
fn clip_grad_norm_matches_pytorch() {
    let b = Reference::new();
    let grads = [f32t(&b, &[3.0, 4.0], &[2]), f32t(&b, &[12.0], &[1])];
    let (clipped, norm) = b.clip_grad_norm(&grads, 1.0).unwrap();
    assert_close("norm", &[norm], &[13.0], TOL, TOL);
    let f = 1.0 / (13.0 + 1e-6);
    assert_close("clipped", &vals(&clipped[0]), &[3.0 * f, 4.0 * f], TOL, TOL);
    let (kept, _) = b.clip_grad_norm(&grads, 100.0).unwrap();
    assert_eq!(vals(&kept[1]), [12.0], "below max_norm the factor is 1");
    let nan = [f32t(&b, &[f64::NAN], &[1])];
    let (back, norm) = b.clip_grad_norm(&nan, 1.0).unwrap();
    assert!(
        norm.is_nan() && vals(&back[0])[0].is_nan(),
        "a non-finite norm is reported, gradients untouched"
    );
}

#[test]
fn attention_row_without_allowed_keys_averages_instead_of_nan() {
    let b = Reference::new();
    let q = f32t(&b, &[1.0, 0.0, 0.0, 1.0], &[1, 1, 2, 2]);
    let k = f32t(&b, &[1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2]);
    let v = f32t(&b, &[1.0, 10.0, 3.0, 20.0], &[1, 1, 2, 2]);
    let mask = b.tensor_bool(&[false, false, true, false], &[1, 1, 2, 2]).unwrap();
    let out = vals(&b.attention(&q, &k, &v, &mask).unwrap());
    assert_close("masked attention", &out, &[2.0, 15.0, 1.0, 10.0], TOL, TOL);
}
