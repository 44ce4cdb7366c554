//! One forward against an independent, straightforward f64 implementation written with plain
//! loops from the Hugging Face Qwen2 definition, so the model is validated against something
//! that is not itself (nor the backend's composites).

use std::collections::BTreeMap;

use orz_core::model::{Head, PackedBatch, Qwen2Config};

use super::support::{assert_close, host_weights, policy, sequences, tiny, vals};

type Weights = BTreeMap<String, (Vec<f64>, Vec<usize>)>;

fn w<'a>(ws: &'a Weights, name: &str) -> &'a [f64] {
    &ws[name].0
}

/// `y = W x (+ b)` for `W [out, in]`.
fn linear(x: &[f64], wt: &[f64], bias: Option<&[f64]>) -> Vec<f64> {
    let out = wt.len() / x.len();
    (0..out)
        .map(|o| {
            let dot: f64 = (0..x.len()).map(|i| wt[o * x.len() + i] * x[i]).sum();
            dot + bias.map_or(0.0, |b| b[o])
        })
        .collect()
}

fn rms_norm(x: &[f64], wt: &[f64], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let inv = 1.0 / (ms + eps).sqrt();
    x.iter().zip(wt).map(|(v, g)| g * v * inv).collect()
}

/// Rotate-half RoPE of one head vector at position `pos`.
fn rope(x: &[f64], pos: usize, theta: f64) -> Vec<f64> {
    let d = x.len();
    let half = d / 2;
    (0..d)
        .map(|j| {
            let angle = pos as f64 * theta.powf(-2.0 * (j % half) as f64 / d as f64);
            let rotated = if j < half { -x[j + half] } else { x[j - half] };
            x[j] * angle.cos() + rotated * angle.sin()
        })
        .collect()
}

/// Logits `[seq, vocab]` of one sequence.
fn forward(c: &Qwen2Config, ws: &Weights, tokens: &[u32]) -> Vec<Vec<f64>> {
    let (h, d) = (c.hidden_size, c.head_dim());
    let (hq, hkv) = (c.num_attention_heads, c.num_key_value_heads);
    let embed = w(ws, "model.embed_tokens.weight");
    let mut xs: Vec<Vec<f64>> =
        tokens.iter().map(|&t| embed[t as usize * h..(t as usize + 1) * h].to_vec()).collect();
    for l in 0..c.num_hidden_layers {
        let p = |n: &str| format!("model.layers.{l}.{n}");
        let normed: Vec<Vec<f64>> =
            xs.iter().map(|x| rms_norm(x, w(ws, &p("input_layernorm.weight")), c.rms_norm_eps)).collect();
        let proj = |n: &str, x: &[f64]| {
            linear(
                x,
                w(ws, &p(&format!("self_attn.{n}_proj.weight"))),
                Some(w(ws, &p(&format!("self_attn.{n}_proj.bias")))),
            )
        };
        let split = |v: Vec<f64>, heads: usize, pos: Option<usize>| -> Vec<Vec<f64>> {
            (0..heads)
                .map(|k| {
                    let head = v[k * d..(k + 1) * d].to_vec();
                    pos.map_or(head.clone(), |pos| rope(&head, pos, c.rope_theta))
                })
                .collect()
        };
        let qs: Vec<Vec<Vec<f64>>> =
            normed.iter().enumerate().map(|(t, x)| split(proj("q", x), hq, Some(t))).collect();
        let ks: Vec<Vec<Vec<f64>>> =
            normed.iter().enumerate().map(|(t, x)| split(proj("k", x), hkv, Some(t))).collect();
        let vs: Vec<Vec<Vec<f64>>> = normed.iter().map(|x| split(proj("v", x), hkv, None)).collect();
        for t in 0..xs.len() {
            let mut attn = vec![0.0; hq * d];
            for head in 0..hq {
                let kv = head / (hq / hkv);
                let scores: Vec<f64> = (0..=t)
                    .map(|j| (0..d).map(|e| qs[t][head][e] * ks[j][kv][e]).sum::<f64>() / (d as f64).sqrt())
                    .collect();
                let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
                for (j, s) in scores.iter().enumerate() {
                    for e in 0..d {
                        attn[head * d + e] += (s - m).exp() / z * vs[j][kv][e];
                    }
                }
            }
            let o = linear(&attn, w(ws, &p("self_attn.o_proj.weight")), None);
            for (x, y) in xs[t].iter_mut().zip(o) {
                *x += y;
            }
        }
        for x in xs.iter_mut() {
            let n = rms_norm(x, w(ws, &p("post_attention_layernorm.weight")), c.rms_norm_eps);
            let gate = linear(&n, w(ws, &p("mlp.gate_proj.weight")), None);
            let up = linear(&n, w(ws, &p("mlp.up_proj.weight")), None);
            let act: Vec<f64> = gate.iter().zip(&up).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
            for (x, y) in x.iter_mut().zip(linear(&act, w(ws, &p("mlp.down_proj.weight")), None)) {
                *x += y;
            }
        }
    }
    let head = if c.tie_word_embeddings { embed } else { w(ws, "lm_head.weight") };
    xs.iter().map(|x| linear(&rms_norm(x, w(ws, "model.norm.weight"), c.rms_norm_eps), head, None)).collect()
}

#[test]
fn forward_matches_a_plain_loop_implementation() {
    for tied in [false, true] {
        let c = tiny(tied);
        let (b, model) = policy(&c, 11);
        let seqs = sequences(&[7, 4], c.vocab_size, 5);
        // Two samples packed in one row: each must match its own plain-loop forward.
        let batch = PackedBatch::pack(std::slice::from_ref(&seqs)).unwrap();
        let logits = vals(&b, &model.logits(&batch).unwrap());
        let ws = host_weights(&c, Head::Lm, 11);
        let v = c.vocab_size;
        for (span, seq) in batch.samples().iter().zip(&seqs) {
            let want: Vec<f64> = forward(&c, &ws, seq).concat();
            let got = &logits[span.start * v..(span.start + span.len) * v];
            assert_close(&format!("tied={tied}, sample at {}", span.start), got, &want, 1e-10);
        }
        // The logits are far from uniform, so the comparison has teeth.
        let spread = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
            - logits.iter().cloned().fold(f64::INFINITY, f64::min);
        assert!(spread > 1.0, "logits too flat: {spread}");
    }
}
