//! The training optimizer ([`orz_core::optimizer`]) on the reference backend: AdamW against a
//! hand computation, accumulation, clipping, the NaN/Inf guard, warmup from lr 0, f32 masters and
//! checkpoint state.

use orz_core::Result;
use orz_core::backend::{
    AdamW, AdamWConfig, Autodiff, Backend, BinaryOp, CompareOp, Composites, DType, Primitives, ReduceOp,
    UnaryOp,
};
use orz_core::optimizer::{Optimizer, OptimizerConfig};
use orz_core::schedule::LrSchedule;
use orz_reference::{Grads, Reference, Tensor};

/// A parameter holding `values` (1-D) with dtype `dtype`.
fn param<B: Backend>(b: &B, values: &[f64], dtype: DType) -> B::Tensor {
    b.param(&b.tensor_f64(values, &[values.len()], dtype).expect("tensor")).expect("param")
}

fn host<B: Backend>(b: &B, t: &B::Tensor) -> Vec<f64> {
    b.to_host_f64(t).expect("host values")
}

/// The gradients of `sum(p · c)` (gradient `c`) for a 1-D parameter.
fn linear_grads<B: Backend>(b: &B, p: &B::Tensor, c: &[f64]) -> B::Grads {
    let c = b.tensor_f64(c, &[c.len()], b.dtype(p)).expect("tensor");
    b.backward(&b.sum_all(&b.mul(p, &c).expect("mul")).expect("sum")).expect("backward")
}

/// Constant learning rate `lr`, no clipping, AdamW `adamw`.
fn constant(lr: f64, adamw: AdamWConfig) -> OptimizerConfig {
    OptimizerConfig {
        adamw,
        schedule: LrSchedule::WarmupConstant { peak: lr, warmup_steps: 0 },
        max_grad_norm: None,
    }
}

fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * w.abs().max(1.0), "index {i}: got {g}, want {w}");
    }
}

#[test]
fn adamw_steps_match_a_hand_computation() {
    // PyTorch AdamW: p *= 1 - lr·wd; m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²;
    // p -= lr · (m / (1-β1^t)) / (sqrt(v / (1-β2^t)) + eps).
    let b = Reference::new();
    let hp = AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 };
    let (lr, p0) = (0.01, [0.5, -1.0, 2.0]);
    let p = param(&b, &p0, DType::F32);
    let mut opt = Optimizer::new(&b, vec![p.clone()], constant(lr, hp)).unwrap();
    let gs = [[0.3, -0.2, 4.0], [-0.1, 0.5, 2.0]];
    let (mut want_p, mut m, mut v) = (p0.to_vec(), [0.0; 3], [0.0; 3]);
    for (t, g) in gs.iter().enumerate() {
        opt.accumulate(&b, &linear_grads(&b, &p, g)).unwrap();
        let report = opt.step(&b).unwrap();
        assert!(report.applied && report.skipped_reason.is_none());
        assert_eq!((report.lr, report.step, report.clip_factor), (lr, t as u64, 1.0));
        let t = t as i32 + 1;
        for i in 0..3 {
            want_p[i] *= 1.0 - lr * hp.weight_decay;
            m[i] = hp.beta1 * m[i] + (1.0 - hp.beta1) * g[i];
            v[i] = hp.beta2 * v[i] + (1.0 - hp.beta2) * g[i] * g[i];
            let (m_hat, v_hat) = (m[i] / (1.0 - hp.beta1.powi(t)), v[i] / (1.0 - hp.beta2.powi(t)));
            want_p[i] -= lr * m_hat / (v_hat.sqrt() + hp.eps);
        }
        assert_close(&host(&b, &p), &want_p, 1e-12);
        let s = opt.moments(0).unwrap();
        assert_close(&host(&b, &s.m), &m, 1e-12);
        assert_close(&host(&b, &s.v), &v, 1e-12);
        assert_eq!(s.step, t as u64);
    }
    assert_eq!(opt.steps(), 2);
}

/// Two parameters, a nonlinear loss `Σ c·p² + Σ exp(q)·d`.
fn nonlinear_loss(b: &Reference, p: &Tensor, q: &Tensor, c: f64, d: f64) -> Result<Tensor> {
    let a = b.affine(&b.sum_all(&b.mul(p, p)?)?, c, 0.0)?;
    let e = b.affine(&b.sum_all(&b.exp(q)?)?, d, 0.0)?;
    b.add(&a, &e)
}

#[test]
fn two_micro_batches_equal_one_backward_over_the_summed_loss() {
    let b = Reference::new();
    let config = OptimizerConfig { max_grad_norm: Some(0.5), ..constant(0.05, AdamWConfig::default()) };
    let make = || {
        let (p, q) = (param(&b, &[0.3, -0.7], DType::F32), param(&b, &[1.5, 0.2, -0.4], DType::F32));
        let opt = Optimizer::new(&b, vec![p.clone(), q.clone()], config).unwrap();
        (p, q, opt)
    };
    let (p1, q1, mut split) = make();
    let (p2, q2, mut whole) = make();
    for _ in 0..3 {
        for (c, d) in [(1.0, 0.5), (-0.3, 2.0)] {
            let grads: Grads = b.backward(&nonlinear_loss(&b, &p1, &q1, c, d).unwrap()).unwrap();
            split.accumulate(&b, &grads).unwrap();
        }
        let l = b
            .add(
                &nonlinear_loss(&b, &p2, &q2, 1.0, 0.5).unwrap(),
                &nonlinear_loss(&b, &p2, &q2, -0.3, 2.0).unwrap(),
            )
            .unwrap();
        whole.accumulate(&b, &b.backward(&l).unwrap()).unwrap();
        assert_eq!(split.pending_micro_batches(), 2);
        let (r1, r2) = (split.step(&b).unwrap(), whole.step(&b).unwrap());
        assert!(r1.clip_factor < 1.0, "{r1:?}");
        assert!(
            (r1.grad_norm - r2.grad_norm).abs() < 1e-12 && (r1.clip_factor - r2.clip_factor).abs() < 1e-12
        );
        assert_close(&host(&b, &p1), &host(&b, &p2), 1e-12);
        assert_close(&host(&b, &q1), &host(&b, &q2), 1e-12);
    }
}

#[test]
fn parameters_without_gradient_are_skipped_and_the_others_get_their_own_gradients() {
    // p gets no gradient; q and r do (same shapes, so a misassignment would go unnoticed by
    // shape checks). PyTorch: p is untouched (no decay, no state); q and r see their own.
    let b = Reference::new();
    let (p, q, r) = (
        param(&b, &[1.0, 2.0], DType::F32),
        param(&b, &[3.0, 4.0], DType::F32),
        param(&b, &[5.0, 6.0], DType::F32),
    );
    let config = OptimizerConfig {
        max_grad_norm: Some(100.0),
        ..constant(0.1, AdamWConfig { weight_decay: 0.1, ..AdamWConfig::default() })
    };
    let mut opt = Optimizer::new(&b, vec![p.clone(), q.clone(), r.clone()], config).unwrap();
    let cq = b.tensor_f64(&[0.5, -1.0], &[2], DType::F32).unwrap();
    let cr = b.tensor_f64(&[2.0, 0.25], &[2], DType::F32).unwrap();
    let loss = b
        .add(&b.sum_all(&b.mul(&q, &cq).unwrap()).unwrap(), &b.sum_all(&b.mul(&r, &cr).unwrap()).unwrap())
        .unwrap();
    opt.accumulate(&b, &b.backward(&loss).unwrap()).unwrap();
    assert!(opt.step(&b).unwrap().applied);
    assert_eq!(host(&b, &p), [1.0, 2.0]);
    assert!(opt.moments(0).is_none());
    assert_close(&host(&b, &opt.moments(1).unwrap().m), &[0.05, -0.1], 1e-12);
    assert_close(&host(&b, &opt.moments(2).unwrap().m), &[0.2, 0.025], 1e-12);
}

#[test]
fn clipping_scales_like_pytorch() {
    // ‖(3, 4, 12)‖ = 13; max_norm 1 → factor 1 / (13 + 1e-6); AdamW sees the scaled gradient,
    // visible in the first moment m = (1 − β1) · g · factor.
    let b = Reference::new();
    let p = param(&b, &[0.0, 0.0, 0.0], DType::F32);
    let config = OptimizerConfig { max_grad_norm: Some(1.0), ..constant(0.1, AdamWConfig::default()) };
    let mut opt = Optimizer::new(&b, vec![p.clone()], config).unwrap();
    opt.accumulate(&b, &linear_grads(&b, &p, &[3.0, 4.0, 12.0])).unwrap();
    let r = opt.step(&b).unwrap();
    let factor = 1.0 / (13.0 + 1e-6);
    assert_eq!(r.grad_norm, 13.0);
    assert!((r.clip_factor - factor).abs() < 1e-15);
    assert_close(&host(&b, &opt.moments(0).unwrap().m), &[0.3 * factor, 0.4 * factor, 1.2 * factor], 1e-12);
    // Below max_norm nothing is scaled.
    opt.accumulate(&b, &linear_grads(&b, &p, &[0.3, 0.4, 0.0])).unwrap();
    let r = opt.step(&b).unwrap();
    assert!((r.grad_norm - 0.5).abs() < 1e-12 && r.clip_factor == 1.0);
}

#[test]
fn a_non_finite_gradient_or_loss_skips_the_step_and_changes_nothing() {
    let b = Reference::new();
    let p = param(&b, &[0.5, -0.5], DType::F32);
    let mut opt = Optimizer::new(&b, vec![p.clone()], constant(0.1, AdamWConfig::default())).unwrap();
    opt.accumulate(&b, &linear_grads(&b, &p, &[1.0, 2.0])).unwrap();
    assert!(opt.step(&b).unwrap().applied);
    let before = (host(&b, &p), opt.state(&b).unwrap());
    for bad in [f64::NAN, f64::INFINITY] {
        opt.accumulate(&b, &linear_grads(&b, &p, &[1.0, bad])).unwrap();
        let r = opt.step(&b).unwrap();
        assert!(!r.applied, "{r:?}");
        let reason = r.skipped_reason.unwrap();
        assert!(
            reason.contains("gradient norm") && reason.contains(if bad.is_nan() { "NaN" } else { "inf" }),
            "{reason}"
        );
        assert_eq!((r.step, opt.steps(), opt.pending_micro_batches()), (1, 1, 0));
        assert_eq!((host(&b, &p), opt.state(&b).unwrap()), before);
    }
    // A non-finite loss skips too, even with finite gradients.
    opt.accumulate(&b, &linear_grads(&b, &p, &[1.0, 1.0])).unwrap();
    opt.observe_loss(1.5);
    opt.accumulate(&b, &linear_grads(&b, &p, &[1.0, 1.0])).unwrap();
    opt.observe_loss(f64::NAN);
    let r = opt.step(&b).unwrap();
    assert_eq!(r.skipped_reason.as_deref(), Some("the loss of micro-batch 2 is NaN"));
    assert_eq!((host(&b, &p), opt.state(&b).unwrap()), before);
    // The next good step is step 1 of the schedule and moves the parameters.
    opt.accumulate(&b, &linear_grads(&b, &p, &[1.0, 1.0])).unwrap();
    let r = opt.step(&b).unwrap();
    assert!(r.applied && r.step == 1 && host(&b, &p) != before.0);
    // Stepping with nothing accumulated is an error, not a silent no-op.
    assert!(opt.step(&b).unwrap_err().to_string().contains("no micro-batch gradients"));
}

#[test]
fn warmup_first_step_has_lr_zero_but_updates_the_moments() {
    // ORZ's schedule: lr 0 at step 0. As PyTorch's AdamW with lr = 0, the parameters stay put
    // while the moments and the bias-correction step count advance.
    let b = Reference::new();
    let p0 = [0.25, -4.0];
    let p = param(&b, &p0, DType::F32);
    let mut opt = Optimizer::new(&b, vec![p.clone()], OptimizerConfig::ORZ_POLICY).unwrap();
    opt.accumulate(&b, &linear_grads(&b, &p, &[0.5, -0.25])).unwrap();
    let r = opt.step(&b).unwrap();
    assert!(r.applied && r.lr == 0.0 && r.step == 0);
    assert_eq!(host(&b, &p), p0);
    let s = opt.moments(0).unwrap();
    assert_close(&host(&b, &s.m), &[0.05, -0.025], 1e-12);
    assert_eq!(s.step, 1);
    assert_eq!(opt.next_lr(), 1e-6 / 50.0);
    opt.accumulate(&b, &linear_grads(&b, &p, &[0.5, -0.25])).unwrap();
    opt.step(&b).unwrap();
    assert!(host(&b, &p).iter().zip(p0).all(|(x, y)| *x != y));
}

#[test]
fn bf16_parameters_keep_f32_masters() {
    // On a backend that really stores bf16 (the reference, rounding on creation, cast and
    // assignment), steps of 1e-4 at 1.0 (bf16 spacing below 1 is 2^-8) vanish in a bf16 parameter
    // but accumulate in the f32 master until the parameter moves.
    let b = Bf16Storing(Reference::new());
    let c = [1.0];
    let p = param(&b, &[1.0], DType::BF16);
    let mut opt = Optimizer::new(&b, vec![p.clone()], constant(1e-4, AdamWConfig::default())).unwrap();
    let master = opt.master(0).unwrap().clone();
    assert_eq!((b.dtype(&master), b.dtype(&p)), (DType::F32, DType::BF16));
    let mut first_move = None;
    for k in 1..=30 {
        opt.accumulate(&b, &linear_grads(&b, &p, &c)).unwrap();
        assert!(opt.step(&b).unwrap().applied);
        let (m, v) = (host(&b, &master)[0], host(&b, &p)[0]);
        assert!((m - (1.0 - 1e-4 * k as f64)).abs() < 1e-6, "step {k}: master {m}");
        assert_eq!(v, DType::BF16.round(m), "step {k}");
        assert_eq!(b.dtype(&p), DType::BF16);
        if v != 1.0 && first_move.is_none() {
            first_move = Some(k);
        }
    }
    // 1 − 20e-4 = 0.998 is the first master value past the midpoint 1 − 2^-9 between 1 and 1 − 2^-8.
    assert_eq!(first_move, Some(20));
    let s = opt.moments(0).unwrap();
    assert_eq!((b.dtype(&s.m), b.dtype(&s.v)), (DType::F32, DType::F32));

    // Weights replaced from outside (a checkpoint load): the master follows on request.
    b.assign_param(&p, &b.tensor_f64(&[2.0], &[1], DType::BF16).unwrap()).unwrap();
    opt.refresh_masters(&b).unwrap();
    assert_eq!(host(&b, &master), vec![2.0]);

    // Without masters (plain AdamW on the bf16 parameter) the same updates are lost forever.
    let q = param(&b, &[1.0], DType::BF16);
    let mut plain = AdamW::new(AdamWConfig::default());
    for _ in 0..30 {
        let g = b.grad(&linear_grads(&b, &q, &c), &q).unwrap();
        plain.step(&b, std::slice::from_ref(&q), &[g], 1e-4).unwrap();
    }
    assert_eq!(host(&b, &q), vec![1.0]);
}

#[test]
fn state_round_trips_through_host_data() {
    let b = Reference::new();
    let fresh = || vec![param(&b, &[0.5, 1.5], DType::BF16), param(&b, &[-1.0], DType::F32)];
    let config = OptimizerConfig::ORZ_CRITIC;
    let train = |opt: &mut Optimizer<Reference>, n: usize| {
        for _ in 0..n {
            let ps = opt.params().to_vec();
            opt.accumulate(&b, &linear_grads(&b, &ps[0], &[0.5, -2.0])).unwrap();
            opt.accumulate(&b, &linear_grads(&b, &ps[1], &[3.0])).unwrap();
            opt.step(&b).unwrap();
        }
    };
    let mut a = Optimizer::new(&b, fresh(), config).unwrap();
    train(&mut a, 3);
    let state = a.state(&b).unwrap();
    assert_eq!(state.step, 3);
    assert!(state.params[0].master.is_some() && state.params[1].master.is_none());
    assert_eq!(state.params[0].moments.as_ref().unwrap().step, 3);
    let mut restored = Optimizer::new(&b, fresh(), config).unwrap();
    restored.load_state(&b, &state).unwrap();
    // The mastered parameter takes its master's value (the reference keeps f64 values, which the
    // host state holds as f32); the f32 one is the trainer's to restore.
    assert_close(&host(&b, &restored.params()[0]), &host(&b, &a.params()[0]), 1e-7);
    b.assign_param(
        &restored.params()[1],
        &b.tensor_f64(&host(&b, &a.params()[1]), &[1], DType::F32).unwrap(),
    )
    .unwrap();
    train(&mut a, 2);
    train(&mut restored, 2);
    let (sa, sr) = (a.state(&b).unwrap(), restored.state(&b).unwrap());
    assert_eq!(sa.step, sr.step);
    for (x, y) in sa.params.iter().zip(&sr.params) {
        let (mx, my) = (x.moments.as_ref().unwrap(), y.moments.as_ref().unwrap());
        assert_eq!(mx.step, my.step);
        let f = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
        assert_close(&f(&mx.m), &f(&my.m), 1e-6);
        assert_close(&f(&mx.v), &f(&my.v), 1e-6);
        assert_close(&f(x.master.as_deref().unwrap_or(&[])), &f(y.master.as_deref().unwrap_or(&[])), 1e-6);
    }
    // A state of other parameters is refused before anything changes.
    let mut other = Optimizer::new(&b, vec![param(&b, &[0.0; 3], DType::BF16)], config).unwrap();
    assert!(other.load_state(&b, &state).unwrap_err().to_string().contains("length mismatch"));
    let mut wrong = state.clone();
    wrong.params[0].shape = vec![3];
    assert!(restored.load_state(&b, &wrong).unwrap_err().to_string().contains("parameter 0"));
}

#[test]
fn bad_configs_and_parameters_are_named() {
    let b = Reference::new();
    let bad = OptimizerConfig { max_grad_norm: Some(0.0), ..OptimizerConfig::ORZ_POLICY };
    let err = Optimizer::new(&b, vec![], bad).unwrap_err().to_string();
    assert!(err.contains("max_grad_norm"), "{err}");
    let bad = OptimizerConfig { adamw: AdamWConfig { beta2: 1.0, ..AdamWConfig::default() }, ..bad };
    assert!(Optimizer::new(&b, vec![], bad).unwrap_err().to_string().contains("beta2"));
    let ids = b.tensor_i64(&[1], &[1]).unwrap();
    let err = Optimizer::new(&b, vec![ids], OptimizerConfig::ORZ_POLICY).unwrap_err().to_string();
    assert!(err.contains("parameter 0") && err.contains("i64"), "{err}");
}

/// The reference backend, except that BF16/F16 tensors hold values rounded to their dtype (on
/// creation, `cast` and `assign_param`), as a backend that really stores bf16 does. Its `cast`
/// to a half dtype records no gradient (enough for the optimizer, which casts under no-grad).
struct Bf16Storing(Reference);

impl Bf16Storing {
    fn rounded(&self, t: Tensor, dtype: DType) -> Result<Tensor> {
        if !matches!(dtype, DType::BF16 | DType::F16) {
            return Ok(t);
        }
        let values: Vec<f64> = self.0.to_host_f64(&t)?.into_iter().map(|x| dtype.round(x)).collect();
        self.0.tensor_f64(&values, t.shape(), dtype)
    }
}

/// Forwards kernels to the wrapped reference backend unchanged.
macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> $ret { self.0.$name($($arg),*) })*
    };
}

impl Primitives for Bf16Storing {
    type Tensor = Tensor;
    type Device = <Reference as Primitives>::Device;

    fn tensor_f32_impl(&self, data: &[f32], shape: &[usize], dtype: DType) -> Result<Tensor> {
        self.rounded(self.0.tensor_f32_impl(data, shape, dtype)?, dtype)
    }
    fn tensor_f64_impl(&self, data: &[f64], shape: &[usize], dtype: DType) -> Result<Tensor> {
        self.rounded(self.0.tensor_f64_impl(data, shape, dtype)?, dtype)
    }
    fn cast_impl(&self, x: &Tensor, dtype: DType) -> Result<Tensor> {
        self.rounded(self.0.cast_impl(x, dtype)?, dtype)
    }

    forward! {
        name_impl() -> &'static str;
        device_impl() -> Self::Device;
        sync_impl() -> Result<()>;
        tensor_i64_impl(data: &[i64], shape: &[usize]) -> Result<Tensor>;
        to_host_f32_impl(t: &Tensor) -> Result<Vec<f32>>;
        to_host_f64_impl(t: &Tensor) -> Result<Vec<f64>>;
        to_host_i64_impl(t: &Tensor) -> Result<Vec<i64>>;
        shape_impl(t: &Tensor) -> Vec<usize>;
        dtype_impl(t: &Tensor) -> DType;
        full_impl(shape: &[usize], value: f64, dtype: DType) -> Result<Tensor>;
        unary(op: UnaryOp, x: &Tensor) -> Result<Tensor>;
        binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor>;
        compare(op: CompareOp, a: &Tensor, b: &Tensor) -> Result<Tensor>;
        where_impl(c: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor>;
        reduce(op: ReduceOp, x: &Tensor, dim: usize, keepdim: bool) -> Result<Tensor>;
        cumsum_impl(x: &Tensor, dim: usize) -> Result<Tensor>;
        sort_impl(x: &Tensor, dim: usize, descending: bool) -> Result<(Tensor, Tensor)>;
        reshape_impl(x: &Tensor, shape: &[usize]) -> Result<Tensor>;
        transpose_impl(x: &Tensor, d0: usize, d1: usize) -> Result<Tensor>;
        narrow_impl(x: &Tensor, dim: usize, start: usize, len: usize) -> Result<Tensor>;
        cat_impl(xs: &[Tensor], dim: usize) -> Result<Tensor>;
        index_select_impl(x: &Tensor, dim: usize, idx: &Tensor) -> Result<Tensor>;
        gather_impl(x: &Tensor, dim: usize, idx: &Tensor) -> Result<Tensor>;
        write_slice_impl(dst: &Tensor, dim: usize, start: usize, src: &Tensor) -> Result<()>;
        matmul_impl(a: &Tensor, b: &Tensor) -> Result<Tensor>;
    }
}

impl Autodiff for Bf16Storing {
    type Grads = Grads;

    fn assign_param_impl(&self, p: &Tensor, value: &Tensor) -> Result<()> {
        self.0.assign_param_impl(p, &self.rounded(value.clone(), p.dtype())?)
    }

    forward! {
        param_impl(t: &Tensor) -> Result<Tensor>;
        detach_impl(t: &Tensor) -> Result<Tensor>;
        backward_impl(loss: &Tensor) -> Result<Grads>;
        grad_impl(grads: &Grads, p: &Tensor) -> Result<Option<Tensor>>;
        is_param(t: &Tensor) -> bool;
        requires_grad(t: &Tensor) -> bool;
        set_grad_enabled_impl(enabled: bool) -> bool;
    }
}

impl Composites for Bf16Storing {}
