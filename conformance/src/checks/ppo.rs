//! Level 3: PPO math. The backend's policy and value losses (method and default) against their
//! host oracles in the same modules of `orz_core::ppo` (values and gradients, kinks included);
//! whitening and the three loss aggregations composed from backend ops against the host math;
//! one AdamW step and global gradient clipping against the reference.

use orz_core::Result;
use orz_core::backend::{Backend, DType};
use orz_core::optimizer::adamw::{self, AdamWConfig, AdamWStep};
use orz_core::optimizer::clip;
use orz_core::ppo::aggregation::{Aggregation, PackLayout, StepTotals};
use orz_core::ppo::policy_loss::{self, policy_loss_host};
use orz_core::ppo::value_loss::{self, value_loss_host};
use orz_core::ppo::whitening::{WhiteningConvention, whiten_masked};
use proptest::collection::vec;
use proptest::prelude::*;

use super::composites::Via;
use super::{element, tensor, values};
use crate::ErrorStats;
use crate::harness::{Harness, Input, Mode, TensorOp, compare, weights};
use crate::runner::CheckOutcome;
use crate::strategies::{PackedBatch, packed_batch, packs};
use crate::tolerance::Tolerance;

type Report = core::result::Result<(), String>;

/// A per-token PPO loss on three aligned 1-D tensors, through the method or the default.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PpoLoss {
    /// `policy_loss(logp, logp_old, advantages, eps)`.
    Policy(f64, Via),
    /// `value_loss(values, values_old, returns, clip)`.
    Value(f64, Via),
}

impl TensorOp for PpoLoss {
    fn apply<C: Backend + ?Sized>(&self, b: &C, xs: &[C::Tensor]) -> Result<Vec<C::Tensor>> {
        let (x, y, z) = (&xs[0], &xs[1], &xs[2]);
        let out = match *self {
            PpoLoss::Policy(eps, Via::Method) => b.policy_loss(x, y, z, eps),
            PpoLoss::Policy(eps, Via::Default) => policy_loss::policy_loss(b, x, y, z, eps),
            PpoLoss::Value(clip, Via::Method) => b.value_loss(x, y, z, clip),
            PpoLoss::Value(clip, Via::Default) => value_loss::value_loss(b, x, y, z, clip),
        };
        out.map(|t| vec![t])
    }
}

/// Whether `a` lies within the dtype's error of the kink `k` without sitting exactly on it:
/// such tokens are moved off the kink by the checks (a backend's rounding may put them on either
/// side, where the gradients differ by design).
fn near_kink(a: f64, k: f64, dtype: DType) -> bool {
    a != k && (a - k).abs() < 2.0 * Tolerance::for_dtype(dtype).rel * (1.0 + a.abs().max(k.abs()))
}

/// Compares an evaluation's output `k` and the gradients of its inputs with host math: output
/// `k` with `want`, input `i`'s gradient with `w_k ⊙ want_grads[i]` (`None`: no gradient or
/// zeros). Reports name `what` and show the inputs.
fn against_host<B: Backend>(
    h: &Harness<'_, B>,
    what: &str,
    got: &crate::harness::Evaluated,
    want: &[f64],
    want_grads: &[Option<&[f64]>],
    inputs: &[Input],
    stats: &mut ErrorStats,
) -> Report {
    let n = want.len();
    let tol = h.tol(h.dtype);
    let context = |e: String| format!("{what} vs host math: {e}\n  inputs: {inputs:?}");
    compare("value", &[n], &got.outputs[0], want, tol, stats).map_err(context)?;
    for (i, want_grad) in want_grads.iter().enumerate() {
        let len = got.grads[i].as_ref().map_or(0, Vec::len);
        let g = got.grads[i].clone().unwrap_or_else(|| vec![0.0; len]);
        match want_grad {
            Some(wg) => {
                // d Σ w ⊙ out / d input: elementwise for per-token outputs, scaled for a scalar.
                let w = weights(0, n, h.dtype);
                let wg: Vec<f64> =
                    wg.iter().enumerate().map(|(j, g)| g * if n == 1 { w[0] } else { w[j] }).collect();
                let g = if g.is_empty() { vec![0.0; wg.len()] } else { g };
                compare(&format!("gradient of input {i}"), &[wg.len()], &g, &wg, tol, stats)
                    .map_err(context)?;
            }
            None if g.iter().any(|&x| x != 0.0) => {
                return Err(context(format!("input {i} is detached but received the gradient {g:?}")));
            }
            None => {}
        }
    }
    Ok(())
}

/// Checks a per-token loss, method and default, against host losses and gradients.
fn loss_vs_host<B: Backend>(
    h: &Harness<'_, B>,
    op: impl Fn(Via) -> PpoLoss,
    xs: [&[f64]; 3],
    host: (Vec<f64>, Vec<f64>),
    stats: &mut ErrorStats,
) -> Report {
    let n = host.0.len();
    let inputs: Vec<Input> = xs.iter().map(|x| h.float(&[n], x)).collect();
    for via in [Via::Method, Via::Default] {
        let got = h.evaluate(&op(via), &inputs, Mode::Grad)?;
        against_host(
            h,
            &format!("{:?}", op(via)),
            &got,
            &host.0,
            &[Some(&host.1), None, None],
            &inputs,
            stats,
        )?;
    }
    Ok(())
}

/// The rounded per-token inputs of a batch: `(a, b, c)` from three of its fields.
fn rounded(dtype: DType, xs: &[f64]) -> Vec<f64> {
    xs.iter().map(|&x| dtype.round(x)).collect()
}

/// `policy_loss` against its host oracle (`orz_core::ppo::policy_loss::policy_loss_host`): eps
/// 0.2, 0 or random; some tokens with `logp_old = logp`, so that with eps 0 the ratio 1 sits
/// exactly on both clip bounds (the clamp passes the gradient there and the tied surrogates
/// share it: the full `-A` results).
pub fn check_policy_loss<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let eps = prop_oneof![Just(0.2), Just(0.0), 0.05..0.3];
    let strategy = (packed_batch(3, 6), eps).prop_flat_map(|(batch, eps)| {
        let n = batch.len();
        (Just(batch), Just(eps), vec(any::<bool>(), n))
    });
    h.run("policy_loss", strategy, |(batch, eps, same), stats| {
        let (logp, adv) = (rounded(dtype, &batch.logp), rounded(dtype, &batch.advantages));
        let mut old = rounded(dtype, &batch.logp_old);
        for i in 0..old.len() {
            let r = (logp[i] - old[i]).exp();
            if same[i] || near_kink(r, 1.0 - eps, dtype) || near_kink(r, 1.0 + eps, dtype) {
                old[i] = logp[i];
            }
        }
        let host = policy_loss_host(&logp, &old, &adv, None, *eps).map_err(|e| format!("kit bug: {e}"))?;
        let host = host.iter().map(|t| (t.loss, t.grad_logp)).unzip();
        let eps = *eps;
        loss_vs_host(&h, |via| PpoLoss::Policy(eps, via), [&logp, &old, &adv], host, stats)
    })
}

/// `value_loss` against its host oracle (`orz_core::ppo::value_loss::value_loss_host`): clip 0.2,
/// 0.25, 0 or random; values on a grid of 1/4 so that `V − V_old` lands exactly on `±clip` and
/// the squared errors tie.
pub fn check_value_loss<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let clip = prop_oneof![Just(0.2), Just(0.25), Just(0.0), 0.05..0.5];
    let strategy = (1..=16usize, clip).prop_flat_map(|(n, clip)| {
        (values(n, -1.0, 2.0), values(n, -1.0, 2.0), values(n, -1.0, 2.0), Just(clip))
    });
    h.run("value_loss", strategy, |(v, old, ret, clip), stats| {
        let (v, ret) = (rounded(dtype, v), rounded(dtype, ret));
        let mut old = rounded(dtype, old);
        for i in 0..v.len() {
            let diff = v[i] - old[i];
            let clipped = old[i] + diff.clamp(-clip, *clip);
            let kink = near_kink(diff.abs(), *clip, dtype)
                || near_kink((clipped - ret[i]).abs(), (v[i] - ret[i]).abs(), dtype);
            if kink {
                old[i] = v[i];
            }
        }
        let host = value_loss_host(&v, &old, &ret, None, *clip).map_err(|e| format!("kit bug: {e}"))?;
        let host = host.iter().map(|t| (t.loss, t.grad_value)).unzip();
        let clip = *clip;
        loss_vs_host(&h, |via| PpoLoss::Value(clip, via), [&v, &old, &ret], host, stats)
    })
}

/// ORZ whitening composed from backend ops, in f32 (the floor 1e-8 underflows in f16): biased
/// variance over the valid tokens, floor 1e-8, masked positions 0, cast back to the input dtype.
#[derive(Debug)]
pub struct Whiten;

impl TensorOp for Whiten {
    fn apply<C: Backend + ?Sized>(&self, b: &C, xs: &[C::Tensor]) -> Result<Vec<C::Tensor>> {
        let (m, dtype) = (&xs[1], b.dtype(&xs[0]));
        let x = &b.cast(&xs[0], DType::F32)?;
        let zero = b.zeros(&[], DType::F32)?;
        let mean = b.masked_mean(x, m, None)?;
        let centered = b.where_(m, &b.sub(x, &mean)?, &zero)?;
        let var = b.masked_mean(&b.mul(&centered, &centered)?, m, None)?;
        let floor = b.full(&[], orz_core::ppo::whitening::ORZ_VAR_FLOOR, DType::F32)?;
        let scale = b.powf(&b.maximum(&var, &floor)?, -0.5)?;
        Ok(vec![b.cast(&b.mul(&centered, &scale)?, dtype)?])
    }
}

/// Whitening with backend ops against `whiten_masked(.., OrzBiased, ..)`, NaN stored at masked
/// tokens, and its gradient against the reference.
pub fn check_whitening<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    h.run("whitening", packed_batch(4, 6), |batch, stats| {
        let x: Vec<f64> = batch
            .advantages
            .iter()
            .zip(&batch.mask)
            .map(|(&a, &m)| if m { dtype.round(a) } else { f64::NAN })
            .collect();
        let n = x.len();
        let inputs = [h.float(&[n], &x), Input::mask(&[n], &batch.mask)];
        let want = whiten_masked(&x, &batch.mask, WhiteningConvention::OrzBiased, true)
            .map_err(|e| format!("kit bug: {e}"))?;
        let got = h.evaluate(&Whiten, &inputs, Mode::Forward)?;
        against_host(&h, "whitening", &got, &want, &[], &inputs, stats)?;
        h.check_op(&Whiten, &inputs, Mode::Grad, stats)
    })
}

/// One of the step aggregations composed from backend ops on padded packs `[P, T]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aggregate(pub Aggregation);

impl TensorOp for Aggregate {
    /// Inputs: losses `[P, T]` (NaN at masked and padded tokens), mask `[P, T]`, and for
    /// the per-sample aggregations the valid tokens of each sample `[P, S, T]` and the samples with one
    /// `[P, S]`.
    fn apply<C: Backend + ?Sized>(&self, b: &C, xs: &[C::Tensor]) -> Result<Vec<C::Tensor>> {
        let (l, m) = (&xs[0], &xs[1]);
        let out = match self.0 {
            Aggregation::OrzPackMean => b.mean(&b.masked_mean(l, m, Some(1))?, 0, false)?,
            Aggregation::TokenMean => b.masked_mean(l, m, None)?,
            Aggregation::SeqMeanTokenMean => {
                let per_sample = b.broadcast_to(&b.unsqueeze(l, 1)?, &b.shape(&xs[2]))?;
                b.masked_mean(&b.masked_mean(&per_sample, &xs[2], Some(2))?, &xs[3], None)?
            }
            Aggregation::SeqMeanTokenSumNorm { norm } => {
                let per_sample = b.broadcast_to(&b.unsqueeze(l, 1)?, &b.shape(&xs[2]))?;
                let sums = b.masked_sum(&per_sample, &xs[2], Some(2))?;
                b.masked_mean(&b.affine(&sums, 1.0 / norm as f64, 0.0)?, &xs[3], None)?
            }
        };
        Ok(vec![out])
    }
}

/// The inputs of [`Aggregate`] for some packs: per-token losses from each pack's advantages.
fn aggregate_inputs(h_dtype: DType, packs: &[PackedBatch]) -> (Vec<Input>, Vec<Vec<f64>>) {
    let (p, t) = (packs.len(), packs.iter().map(PackedBatch::len).max().unwrap_or(0));
    let s = packs.iter().map(|b| b.lengths.len()).max().unwrap_or(0);
    let (mut loss, mut mask) = (vec![f64::NAN; p * t], vec![false; p * t]);
    let (mut sample_mask, mut has) = (vec![false; p * s * t], vec![false; p * s]);
    let mut host = Vec::new();
    for (i, pack) in packs.iter().enumerate() {
        host.push(pack.advantages.iter().map(|&a| h_dtype.round(a)).collect::<Vec<_>>());
        for (j, range) in pack.sample_ranges().into_iter().enumerate() {
            for k in range.filter(|&k| pack.mask[k]) {
                loss[i * t + k] = host[i][k];
                mask[i * t + k] = true;
                sample_mask[(i * s + j) * t + k] = true;
                has[i * s + j] = true;
            }
        }
    }
    let inputs = vec![
        Input::float(h_dtype, &[p, t], &loss),
        Input::mask(&[p, t], &mask),
        Input::mask(&[p, s, t], &sample_mask),
        Input::mask(&[p, s], &has),
    ];
    (inputs, host)
}

/// The loss aggregations composed from backend ops (masked means, NaN at masked and padded
/// tokens) against `Aggregation::aggregate`, and their gradients against the host token weights.
pub fn check_aggregation<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    h.run("aggregation", packs(3, 3, 5), |packs, stats| {
        let (inputs, host) = aggregate_inputs(dtype, packs);
        let layouts: Vec<PackLayout<'_>> =
            packs.iter().map(|b| PackLayout { mask: &b.mask, sample_lengths: &b.lengths }).collect();
        let losses: Vec<&[f64]> = host.iter().map(Vec::as_slice).collect();
        let t = inputs_width(&inputs);
        let dr_grpo = Aggregation::SeqMeanTokenSumNorm { norm: 5 };
        for agg in [Aggregation::OrzPackMean, Aggregation::TokenMean, Aggregation::SeqMeanTokenMean, dr_grpo]
        {
            let kit = |e: orz_core::Error| format!("kit bug: {e}");
            let want = agg.aggregate(&layouts, &losses).map_err(kit)?;
            let totals = StepTotals::of(&layouts).map_err(kit)?;
            let mut weights = vec![0.0; inputs_len(&inputs)];
            for (i, w) in agg.token_weights::<f64>(&totals, &layouts).map_err(kit)?.iter().enumerate() {
                weights[i * t..i * t + w.len()].copy_from_slice(w);
            }
            let got = h.evaluate(&Aggregate(agg), &inputs, Mode::Grad)?;
            against_host(&h, &format!("{agg:?}"), &got, &[want], &[Some(&weights)], &inputs, stats)?;
        }
        Ok(())
    })
}

fn inputs_width(inputs: &[Input]) -> usize {
    match &inputs[0] {
        Input::Float { shape, .. } => shape[1],
        _ => 0,
    }
}

fn inputs_len(inputs: &[Input]) -> usize {
    match &inputs[0] {
        Input::Float { data, .. } => data.len(),
        _ => 0,
    }
}

/// One AdamW update of a parameter of the check's dtype with f32 moments, through the method or
/// the default; outputs the new parameter values and moments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWUpdate(pub AdamWStep, pub Via);

impl TensorOp for AdamWUpdate {
    fn apply<C: Backend + ?Sized>(&self, b: &C, xs: &[C::Tensor]) -> Result<Vec<C::Tensor>> {
        let p = b.param(&xs[0])?;
        // Fresh moments: the update consumes them and may write into their storage.
        let fresh = |t: &C::Tensor| b.tensor_f32(&b.to_host_f32(t)?, &b.shape(t), DType::F32);
        let (m, v) = match self.1 {
            Via::Method => b.adamw_update(&p, &xs[1], fresh(&xs[2])?, fresh(&xs[3])?, &self.0)?,
            Via::Default => adamw::adamw_update(b, &p, &xs[1], &xs[2], &xs[3], &self.0)?,
        };
        Ok(vec![b.detach(&p)?, m, v])
    }
}

/// One AdamW step (weight decay, bias correction at steps 1 to 5) against the reference.
pub fn check_adamw<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    let hp = (
        prop_oneof![Just(1e-3), Just(1e-2), Just(0.1)],
        prop_oneof![Just(0.0), Just(0.1)],
        1..=5u64,
        any::<bool>(),
    );
    let strategy = (tensor(2, 4, -2.0, 2.0), hp).prop_flat_map(|((s, p), hp)| {
        let n = s.iter().product();
        (Just(s), Just(p), values(n, -1.0, 1.0), values(n, -0.1, 0.1), vec(1e-4..0.1, n), Just(hp))
    });
    h.run("adamw", strategy, |(s, p, g, m, v, (lr, wd, step, orz)), stats| {
        let (beta1, beta2) = if *orz { (0.9, 0.95) } else { (0.8, 0.999) };
        let config = AdamWConfig { beta1, beta2, eps: 1e-8, weight_decay: *wd };
        let hp = AdamWStep { lr: *lr, config, step: *step };
        let inputs =
            [h.float(s, p), h.float(s, g), Input::float(DType::F32, s, m), Input::float(DType::F32, s, v)];
        for via in [Via::Method, Via::Default] {
            h.check_op(&AdamWUpdate(hp, via), &inputs, Mode::Forward, stats)?;
        }
        Ok(())
    })
}

/// Global-norm gradient clipping through the method or the default: the scaled gradients and
/// the norm (as an f32 scalar).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClipGradNorm(pub f64, pub Via);

impl TensorOp for ClipGradNorm {
    fn apply<C: Backend + ?Sized>(&self, b: &C, xs: &[C::Tensor]) -> Result<Vec<C::Tensor>> {
        let (mut out, norm) = match self.1 {
            Via::Method => b.clip_grad_norm(xs, self.0)?,
            Via::Default => clip::clip_grad_norm(b, xs, self.0)?,
        };
        out.push(b.tensor_f64(&[norm], &[], DType::F32)?);
        Ok(out)
    }
}

/// `clip_grad_norm` of one to three gradients, with and without clipping, against the reference.
pub fn check_clip_grad_norm<B: Backend>(backend: &B, dtype: DType) -> CheckOutcome {
    let h = Harness::new(backend, dtype);
    h.run(
        "clip_grad_norm",
        (vec(tensor(2, 4, -2.0, 2.0), 1..=3), element(0.25, 6.0)),
        |(grads, max), stats| {
            let inputs: Vec<Input> = grads.iter().map(|(s, g)| h.float(s, g)).collect();
            for via in [Via::Method, Via::Default] {
                h.check_op(&ClipGradNorm(*max, via), &inputs, Mode::Forward, stats)?;
            }
            Ok(())
        },
    )
}
