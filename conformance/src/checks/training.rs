//! Level 4, training through the model: gradients of a PPO policy loss (policy) and of a value
//! loss (critic) with respect to every parameter of the tiny 2-layer model, against the
//! reference (itself spot-checked against finite differences in f32); the same through the
//! memory-lean backward (activation checkpointing, chunked heads); and one [`Optimizer`]
//! step (two accumulated micro-batches, global-norm clipping, AdamW with weight decay, f32
//! masters for bf16/f16) against a hand computation in f64 and against the reference's
//! optimizer, all fed the backend's own gradients.

use orz_core::backend::{AdamWConfig, Backend, DType};
use orz_core::model::{Critic, MemoryOptions, PackedBatch, Policy, Qwen2};
use orz_core::optimizer::clip::clip_factor;
use orz_core::optimizer::{Optimizer, OptimizerConfig};
use orz_core::rng::Rng;
use orz_core::schedule::LrSchedule;
use orz_reference::Reference;
use proptest::collection::vec;
use proptest::prelude::*;

use super::tiny::{
    GRADIENT_TOLERANCE_SCALE, MODEL_CASES, Pair, Report, config, failed, kit, model_tol, seed, token_mask,
    tokens,
};
use crate::harness::compare;
use crate::runner::{CheckOutcome, run_cases};
use crate::tolerance::{ErrorStats, Tolerance};

/// The PPO clip range of the policy loss and the value clip of the value loss.
const CLIP: f64 = 0.2;

/// Host inputs of the PPO losses of one batch, aligned with its `[rows, seq_len]` positions and
/// rounded to the dtype: old log-probs (or old values), advantages (or returns), and the mask.
#[derive(Debug, Clone)]
struct LossInputs {
    shape: [usize; 2],
    old: Vec<f64>,
    target: Vec<f64>,
    mask: Vec<bool>,
}

impl LossInputs {
    /// Inputs of the policy loss around the reference's log-probs `logp`: old log-probs shifted by
    /// up to ±0.4 (so that some ratios are clipped), advantages in ±2. A token whose ratio lies
    /// within the model tolerance of a clip bound gets `old = logp` (ratio 1): near a kink the
    /// gradient legitimately jumps.
    fn policy(batch: &PackedBatch, logp: &[f64], dtype: DType, rng: &mut Rng) -> LossInputs {
        let tol = model_tol(dtype);
        let mut old = Vec::with_capacity(logp.len());
        for &lp in logp {
            let o = dtype.round(lp + 0.8 * rng.uniform() - 0.4);
            let r = (lp - o).exp();
            let margin = 2.0 * tol.allowed(lp, lp) * r + 1e-3;
            let near = [1.0 - CLIP, 1.0 + CLIP].iter().any(|k| (r - k).abs() < margin);
            old.push(if near { dtype.round(lp) } else { o });
        }
        let target = (0..logp.len()).map(|_| dtype.round(4.0 * rng.uniform() - 2.0)).collect();
        LossInputs { shape: batch.shape(), old, target, mask: batch.next_token_mask() }
    }

    /// Inputs of the value loss around the reference's values `v`: old values shifted by up to
    /// ±0.4, returns in -1..2; a token near a kink (`|v - old|` near the clip, or the clipped
    /// and unclipped errors near a tie outside the clip range) gets `old = v`.
    fn value(batch: &PackedBatch, v: &[f64], dtype: DType, rng: &mut Rng) -> LossInputs {
        let tol = model_tol(dtype);
        let (mut old, mut target) = (Vec::with_capacity(v.len()), Vec::with_capacity(v.len()));
        for &x in v {
            let (o, ret) =
                (dtype.round(x + 0.8 * rng.uniform() - 0.4), dtype.round(3.0 * rng.uniform() - 1.0));
            let margin = 2.0 * tol.allowed(x, x) + 1e-3;
            let d = x - o;
            let clipped = o + d.clamp(-CLIP, CLIP);
            let near = (d.abs() - CLIP).abs() < margin
                || (d.abs() > CLIP && ((clipped - ret).abs() - (x - ret).abs()).abs() < 2.0 * margin);
            old.push(if near { dtype.round(x) } else { o });
            target.push(ret);
        }
        LossInputs { shape: batch.shape(), old, target, mask: token_mask(batch) }
    }

    /// The chunk `range` (positions of every row) of the masked mean of [`LossInputs::loss`]:
    /// the masked sum of the chunk's per-token losses over the whole batch's mask count, so
    /// that the chunks add up to the mean.
    fn chunk_loss<C: Backend>(
        &self,
        b: &C,
        x: &C::Tensor,
        range: std::ops::Range<usize>,
        policy: bool,
        dtype: DType,
    ) -> orz_core::Result<C::Tensor> {
        let [rows, seq] = self.shape;
        let at = |r: usize| r * seq + range.start..r * seq + range.end;
        let pick = |v: &[f64]| (0..rows).flat_map(|r| v[at(r)].to_vec()).collect::<Vec<f64>>();
        let shape = [rows, range.len()];
        let old = b.tensor_f64(&pick(&self.old), &shape, dtype)?;
        let target = b.tensor_f64(&pick(&self.target), &shape, dtype)?;
        let mask: Vec<bool> = (0..rows).flat_map(|r| self.mask[at(r)].to_vec()).collect();
        let count = self.mask.iter().filter(|&&m| m).count().max(1) as f64;
        let per_token = if policy {
            b.policy_loss(x, &old, &target, CLIP)?
        } else {
            b.value_loss(x, &old, &target, CLIP)?
        };
        b.affine(&b.masked_sum(&per_token, &b.tensor_bool(&mask, &shape)?, None)?, 1.0 / count, 0.0)
    }

    /// The masked mean of the per-token policy (or value) loss of `x` on `b`.
    fn loss<C: Backend>(
        &self,
        b: &C,
        x: &C::Tensor,
        policy: bool,
        dtype: DType,
    ) -> orz_core::Result<C::Tensor> {
        let old = b.tensor_f64(&self.old, &self.shape, dtype)?;
        let target = b.tensor_f64(&self.target, &self.shape, dtype)?;
        let mask = b.tensor_bool(&self.mask, &self.shape)?;
        let per_token = if policy {
            b.policy_loss(x, &old, &target, CLIP)?
        } else {
            b.value_loss(x, &old, &target, CLIP)?
        };
        b.masked_mean(&per_token, &mask, None)
    }
}

/// The policy loss of `batch` on `policy`.
fn policy_loss<C: Backend>(
    p: &Policy<C>,
    batch: &PackedBatch,
    inputs: &LossInputs,
) -> orz_core::Result<C::Tensor> {
    let lp = p.next_token_log_probs(batch)?;
    inputs.loss(p.model().backend(), &lp, true, p.model().dtype())
}

/// The value loss of `batch` on `critic`.
fn value_loss<C: Backend>(
    c: &Critic<C>,
    batch: &PackedBatch,
    inputs: &LossInputs,
) -> orz_core::Result<C::Tensor> {
    let v = c.values(batch)?;
    inputs.loss(c.model().backend(), &v, false, c.model().dtype())
}

/// The host gradient of every parameter of `model` in `grads`, `None` where the backend gives
/// none.
fn host_grads<C: Backend>(
    model: &Qwen2<C>,
    grads: &C::Grads,
) -> orz_core::Result<Vec<(String, Option<Vec<f64>>)>> {
    let b = model.backend();
    let read = model.parameters().iter().map(|p| b.grad(grads, p)).collect::<orz_core::Result<Vec<_>>>()?;
    named_host_grads(model, &read)
}

/// The reference's plain-backward gradient of `loss` for every parameter of `model`, zeros
/// where the loss does not reach it.
fn reference_grads(
    model: &Qwen2<Reference>,
    loss: &orz_reference::Tensor,
) -> Result<Vec<(String, Vec<f64>)>, String> {
    let r = model.backend();
    let grads = host_grads(model, &r.backward(loss).map_err(kit)?).map_err(kit)?;
    Ok(or_zeros(&grads, &sizes(model)))
}

/// The gradients with zeros for missing ones (`n` the parameter sizes).
fn or_zeros(grads: &[(String, Option<Vec<f64>>)], sizes: &[usize]) -> Vec<(String, Vec<f64>)> {
    grads
        .iter()
        .zip(sizes)
        .map(|((n, g), &k)| (n.clone(), g.clone().unwrap_or_else(|| vec![0.0; k])))
        .collect()
}

/// The element count of every parameter of `model`.
fn sizes<C: Backend>(model: &Qwen2<C>) -> Vec<usize> {
    model.parameters().iter().map(|p| model.backend().shape(p).iter().product()).collect()
}

/// Compares the gradients of every parameter, by name.
fn compare_grads(
    what: &str,
    got: &[(String, Vec<f64>)],
    want: &[(String, Vec<f64>)],
    tol: Tolerance,
    stats: &mut ErrorStats,
) -> Report {
    for ((name, g), (_, w)) in got.iter().zip(want) {
        compare(&format!("{what}: gradient of `{name}`"), &[g.len()], g, w, tol, stats)?;
    }
    Ok(())
}

/// Central finite differences of `loss` at a few entries of a few parameters of the reference
/// model against its autodiff gradients `grads` (the oracle's own check, cheap at this size).
fn finite_differences(
    r: &Reference,
    model: &Qwen2<Reference>,
    grads: &[(String, Vec<f64>)],
    loss: &dyn Fn() -> orz_core::Result<orz_reference::Tensor>,
) -> Report {
    let h = 1e-5;
    let named = model.named_tensors();
    for (k, ((name, p), (_, g))) in named.iter().zip(grads).enumerate().filter(|(k, _)| k % 7 == 0) {
        let base = p.to_vec();
        let shape = p.shape().to_vec();
        let i = (k * 31) % base.len();
        let at = |delta: f64| -> orz_core::Result<f64> {
            let mut v = base.clone();
            v[i] += delta;
            r.assign_param(p, &r.tensor_f64(&v, &shape, p.dtype())?)?;
            Ok(loss()?.to_vec()[0])
        };
        let fd = (at(h).map_err(kit)? - at(-h).map_err(kit)?) / (2.0 * h);
        r.assign_param(p, &r.tensor_f64(&base, &shape, p.dtype()).map_err(kit)?).map_err(kit)?;
        if (fd - g[i]).abs() > 1e-6 + 1e-4 * fd.abs().max(g[i].abs()) {
            return Err(format!(
                "kit bug: the reference's gradient of `{name}`[{i}] is {}, finite differences give {fd}",
                g[i]
            ));
        }
    }
    Ok(())
}

/// Samples of the given lengths, packed greedily into rows of at most 10 tokens.
fn batch(seed: u64, lengths: &[usize], vocab: usize) -> Result<PackedBatch, String> {
    let mut rng = Rng::seed_from_u64(seed ^ 0xBA7C);
    let samples: Vec<Vec<u32>> = lengths.iter().map(|&n| tokens(&mut rng, n, vocab)).collect();
    PackedBatch::pack_greedy(&samples, 10).map_err(kit)
}

/// Gradients of a clipped PPO policy loss (masked token mean, some ratios clipped) through the
/// policy, tied and untied, and of a clipped value loss through the critic, with respect to
/// every parameter, against the reference; in f32 the reference's gradients are also spot-checked
/// against central finite differences.
pub fn check_model_ppo_gradients<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let pair = Pair::new(backend, dtype);
    let strategy = (seed(), any::<bool>(), vec(2..=6usize, 2..=4));
    run_cases("model_ppo_gradients", dtype, MODEL_CASES, strategy, |(seed, tied, lengths), stats| {
        let c = config(*tied);
        let (policies, critics) = (pair.policies(&c, *seed)?, pair.critics(&c, seed + 1)?);
        let batch = batch(*seed, lengths, c.vocab_size)?;
        let r = &*pair.reference;
        let b = &*pair.backend;
        let mut rng = Rng::seed_from_u64(seed ^ 0x6AAD);
        let tol = Tolerance::for_dtype(dtype).scaled(GRADIENT_TOLERANCE_SCALE);
        let context =
            |e: String| format!("{e}\n  batch tokens {:?} of shape {:?}", batch.tokens(), batch.shape());

        let logp =
            r.to_host_f64(&policies.reference.next_token_log_probs(&batch).map_err(kit)?).map_err(kit)?;
        let inputs = LossInputs::policy(&batch, &logp, dtype, &mut rng);
        let loss_r = || policy_loss(&policies.reference, &batch, &inputs);
        let n = sizes(policies.reference.model());
        let want = reference_grads(policies.reference.model(), &loss_r().map_err(kit)?)?;
        let loss_b = policy_loss(&policies.backend, &batch, &inputs).map_err(failed("policy loss"))?;
        let grads = b.backward(&loss_b).map_err(failed("backward of the policy loss"))?;
        let got = host_grads(policies.backend.model(), &grads).map_err(failed("policy gradients"))?;
        let got = or_zeros(&got, &n);
        compare_grads("policy loss", &got, &want, tol, stats).map_err(context)?;
        if dtype == DType::F32 {
            finite_differences(r, policies.reference.model(), &want, &loss_r)?;
        }

        let values = r.to_host_f64(&critics.reference.values(&batch).map_err(kit)?).map_err(kit)?;
        let inputs = LossInputs::value(&batch, &values, dtype, &mut rng);
        let loss_r = || value_loss(&critics.reference, &batch, &inputs);
        let n = sizes(critics.reference.model());
        let want = reference_grads(critics.reference.model(), &loss_r().map_err(kit)?)?;
        let loss_b = value_loss(&critics.backend, &batch, &inputs).map_err(failed("value loss"))?;
        let grads = b.backward(&loss_b).map_err(failed("backward of the value loss"))?;
        let got = host_grads(critics.backend.model(), &grads).map_err(failed("critic gradients"))?;
        let got = or_zeros(&got, &n);
        compare_grads("value loss", &got, &want, tol, stats).map_err(context)?;
        if dtype == DType::F32 {
            finite_differences(r, critics.reference.model(), &want, &loss_r)?;
        }
        Ok(())
    })
}

/// The AdamW hyper-parameters of [`check_adamw_step`]: ORZ's betas, weight decay 0.1, constant
/// learning rate 0.05 (visible in bf16), clipping at half the gradient norm.
fn adamw_config(max_norm: f64) -> OptimizerConfig {
    OptimizerConfig {
        adamw: AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 },
        schedule: LrSchedule::WarmupConstant { peak: 0.05, warmup_steps: 0 },
        max_grad_norm: Some(max_norm),
    }
}

/// One parameter after the step, by hand in f64 (PyTorch AdamW at step 1 on the clipped sum of
/// the micro-batch gradients): `(param, master, m, v)`.
fn by_hand(p0: &[f64], g: &[f64], factor: f64, config: &OptimizerConfig, dtype: DType) -> [Vec<f64>; 4] {
    let AdamWConfig { beta1, beta2, eps, weight_decay } = config.adamw;
    let lr = config.schedule.lr(0);
    let mut out: [Vec<f64>; 4] = Default::default();
    for (&p, &g) in p0.iter().zip(g) {
        let g = g * factor;
        let (m, v) = ((1.0 - beta1) * g, (1.0 - beta2) * g * g);
        let (m_hat, v_hat) = (m / (1.0 - beta1), v / (1.0 - beta2));
        let master = p * (1.0 - lr * weight_decay) - lr * m_hat / (v_hat.sqrt() + eps);
        for (k, x) in [dtype.round(master), master, m, v].into_iter().enumerate() {
            out[k].push(x);
        }
    }
    out
}

/// The sum of two optional gradients (`None` only when both are).
fn add(a: Option<&[f64]>, b: Option<&[f64]>) -> Option<Vec<f64>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.iter().zip(b).map(|(x, y)| x + y).collect()),
        (a, b) => a.or(b).map(<[f64]>::to_vec),
    }
}

/// What an optimizer holds after its step, per parameter: `(param, master, m, v)` on the host.
fn optimizer_state<C: Backend>(b: &C, opt: &Optimizer<C>) -> orz_core::Result<Vec<[Vec<f64>; 4]>> {
    (0..opt.params().len())
        .map(|i| {
            let p = b.to_host_f64(&opt.params()[i])?;
            let master = opt.master(i).map(|m| b.to_host_f64(m)).transpose()?.unwrap_or_else(|| p.clone());
            let (m, v) = match opt.moments(i) {
                Some(s) => (b.to_host_f64(&s.m)?, b.to_host_f64(&s.v)?),
                None => (vec![0.0; p.len()], vec![0.0; p.len()]),
            };
            Ok([p, master, m, v])
        })
        .collect()
}

/// Compares two optimizer states parameter by parameter: values in the dtype's tolerance,
/// masters and moments (f32) in f32's.
fn compare_states(
    what: &str,
    names: &[String],
    got: &[[Vec<f64>; 4]],
    want: &[[Vec<f64>; 4]],
    dtype: DType,
    stats: &mut ErrorStats,
) -> Report {
    let tols = [
        Tolerance::for_dtype(dtype),
        Tolerance::for_dtype(DType::F32),
        Tolerance::for_dtype(DType::F32),
        Tolerance::for_dtype(DType::F32),
    ];
    for ((name, g), w) in names.iter().zip(got).zip(want) {
        for (k, part) in ["value", "f32 master", "first moment", "second moment"].iter().enumerate() {
            compare(&format!("{what}: {part} of `{name}`"), &[g[k].len()], &g[k], &w[k], tols[k], stats)?;
        }
    }
    Ok(())
}

/// One [`Optimizer`] step on the backend's policy over two accumulated micro-batches of a PPO
/// policy loss, clipped at half the global gradient norm: the reported norm and clip factor, the
/// new parameters, f32 masters and moments against a hand computation in f64 (PyTorch AdamW)
/// from the backend's own gradients, and against the reference's optimizer fed the same
/// gradients.
pub fn check_adamw_step<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let pair = Pair::new(backend, dtype);
    let strategy = (seed(), vec(2..=5usize, 2..=3), vec(2..=5usize, 1..=3));
    run_cases("adamw_step", dtype, MODEL_CASES, strategy, |(seed, first, second), stats| {
        let c = config(false);
        let m = pair.policies(&c, *seed)?;
        let (b, r) = (&*pair.backend, &*pair.reference);
        let mut rng = Rng::seed_from_u64(seed ^ 0xADA3);
        let mut micro = Vec::new();
        for (k, lengths) in [first, second].into_iter().enumerate() {
            let batch = batch(seed + k as u64, lengths, c.vocab_size)?;
            let logp = r.to_host_f64(&m.reference.next_token_log_probs(&batch).map_err(kit)?).map_err(kit)?;
            let inputs = LossInputs::policy(&batch, &logp, dtype, &mut rng);
            let loss = policy_loss(&m.backend, &batch, &inputs).map_err(failed("policy loss"))?;
            let grads = b.backward(&loss).map_err(failed("backward"))?;
            let host = host_grads(m.backend.model(), &grads).map_err(failed("gradients"))?;
            micro.push((grads, host));
        }
        let names: Vec<String> = micro[0].1.iter().map(|(n, _)| n.clone()).collect();
        // The accumulated gradient of each parameter; `None` when neither micro-batch reached it.
        let sums: Vec<Option<Vec<f64>>> = micro[0]
            .1
            .iter()
            .zip(&micro[1].1)
            .map(|((_, a), (_, b))| add(a.as_deref(), b.as_deref()))
            .collect();
        let norm = sums.iter().flatten().flatten().map(|g| g * g).sum::<f64>().sqrt();
        let config = adamw_config(0.5 * norm);
        let factor = clip_factor(norm, 0.5 * norm).map_err(failed("clip factor"))?;
        let p0: Vec<Vec<f64>> = m.reference.model().parameters().iter().map(|p| p.to_vec()).collect();

        let mut opt =
            Optimizer::new(b, m.backend.model().parameters(), config).map_err(failed("Optimizer::new"))?;
        for (grads, _) in &micro {
            opt.accumulate(b, grads).map_err(failed("accumulate"))?;
        }
        let report = opt.step(b).map_err(failed("step"))?;
        let f32_tol = Tolerance::for_dtype(DType::F32);
        let scalars = [report.grad_norm, report.clip_factor, f64::from(u8::from(report.applied))];
        compare(
            "step report (grad_norm, clip_factor, applied)",
            &[3],
            &scalars,
            &[norm, factor, 1.0],
            f32_tol,
            stats,
        )?;
        let got = optimizer_state(b, &opt).map_err(failed("optimizer state"))?;
        let hand: Vec<[Vec<f64>; 4]> = p0
            .iter()
            .zip(&sums)
            .map(|(p, g)| match g {
                Some(g) => by_hand(p, g, factor, &config, dtype),
                // PyTorch's AdamW skips a parameter without gradient (no decay, no moments).
                None => [p.clone(), p.clone(), vec![0.0; p.len()], vec![0.0; p.len()]],
            })
            .collect();
        compare_states("backend vs hand computation", &names, &got, &hand, dtype, stats)?;

        // The reference's optimizer, fed the same gradients through the linear losses Σ p ⊙ g.
        let params = m.reference.model().parameters();
        let mut opt_r = Optimizer::new(r, params.clone(), config).map_err(kit)?;
        for (_, host) in &micro {
            let mut loss = r.zeros(&[], DType::F32).map_err(kit)?;
            for (p, (_, g)) in params.iter().zip(host) {
                let Some(g) = g else { continue };
                let g = r.tensor_f64(g, p.shape(), dtype).map_err(kit)?;
                let term =
                    r.cast(&r.sum_all(&r.mul(p, &g).map_err(kit)?).map_err(kit)?, DType::F32).map_err(kit)?;
                loss = r.add(&loss, &term).map_err(kit)?;
            }
            opt_r.accumulate(r, &r.backward(&loss).map_err(kit)?).map_err(kit)?;
        }
        opt_r.step(r).map_err(kit)?;
        let want = optimizer_state(r, &opt_r).map_err(kit)?;
        compare_states("backend vs reference", &names, &got, &want, dtype, stats)
    })
}

/// The memory-lean backward ([`orz_core::model::Qwen2::backprop`]) on the backend: activation
/// checkpointing with the head in chunks of 3 positions (cutting samples and rows), for the PPO
/// policy loss (tied and untied) and the value loss, against the reference's plain backward of
/// the whole loss, every parameter.
pub fn check_model_lean_gradients<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let pair = Pair::new(backend, dtype);
    let lean = MemoryOptions { activation_checkpointing: true, head_chunk_tokens: 3 };
    let strategy = (seed(), any::<bool>(), vec(2..=6usize, 2..=4));
    run_cases("model_lean_gradients", dtype, MODEL_CASES, strategy, |(seed, tied, lengths), stats| {
        let c = config(*tied);
        let (policies, critics) = (pair.policies(&c, *seed)?, pair.critics(&c, seed + 1)?);
        let batch = batch(*seed, lengths, c.vocab_size)?;
        let r = &*pair.reference;
        let b = &*pair.backend;
        let mut rng = Rng::seed_from_u64(seed ^ 0x1EA4);
        let tol = Tolerance::for_dtype(dtype).scaled(GRADIENT_TOLERANCE_SCALE);
        let context =
            |e: String| format!("{e}\n  batch tokens {:?} of shape {:?}", batch.tokens(), batch.shape());

        let logp =
            r.to_host_f64(&policies.reference.next_token_log_probs(&batch).map_err(kit)?).map_err(kit)?;
        let inputs = LossInputs::policy(&batch, &logp, dtype, &mut rng);
        let n = sizes(policies.reference.model());
        let loss_r = policy_loss(&policies.reference, &batch, &inputs).map_err(kit)?;
        let want = reference_grads(policies.reference.model(), &loss_r)?;
        let targets = batch.next_token_tensor(b).map_err(failed("targets"))?;
        let got = policies
            .backend
            .backprop_log_probs(&batch, &targets, lean, &mut |lp, range| {
                inputs.chunk_loss(b, lp, range, true, dtype)
            })
            .map_err(failed("lean backprop of the policy loss"))?;
        let got =
            named_host_grads(policies.backend.model(), &got.grads).map_err(failed("policy gradients"))?;
        compare_grads("lean policy loss", &or_zeros(&got, &n), &want, tol, stats).map_err(context)?;

        let values = r.to_host_f64(&critics.reference.values(&batch).map_err(kit)?).map_err(kit)?;
        let inputs = LossInputs::value(&batch, &values, dtype, &mut rng);
        let n = sizes(critics.reference.model());
        let loss_r = value_loss(&critics.reference, &batch, &inputs).map_err(kit)?;
        let want = reference_grads(critics.reference.model(), &loss_r)?;
        let got = critics
            .backend
            .backprop_values(&batch, lean, &mut |v, range| inputs.chunk_loss(b, v, range, false, dtype))
            .map_err(failed("lean backprop of the value loss"))?;
        let got =
            named_host_grads(critics.backend.model(), &got.grads).map_err(failed("critic gradients"))?;
        compare_grads("lean value loss", &or_zeros(&got, &n), &want, tol, stats).map_err(context)
    })
}

/// [`host_grads`] of gradients already read out in [`Qwen2::parameters`] order.
fn named_host_grads<C: Backend>(
    model: &Qwen2<C>,
    grads: &[Option<C::Tensor>],
) -> orz_core::Result<Vec<(String, Option<Vec<f64>>)>> {
    let b = model.backend();
    model
        .named_tensors()
        .into_iter()
        .zip(grads)
        .map(|((name, _), g)| Ok((name, g.as_ref().map(|g| b.to_host_f64(g)).transpose()?)))
        .collect()
}
