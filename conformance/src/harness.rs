//! Running a tensor program on the backend under test and on the reference, and comparing
//! everything it produces: values, shapes, dtypes and the gradients of every float input.

use core::fmt;

use orz_core::Result;
use orz_core::backend::{Backend, DType};
use orz_reference::Reference;
use proptest::strategy::Strategy;

use crate::runner::{CheckOutcome, run_cases};
use crate::tolerance::{ErrorStats, Tolerance};

/// One input tensor of a check, on the host. Float data is rounded to its dtype on construction
/// ([`DType::round`]), so the backend and the reference see identical values.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A float tensor (a parameter when gradients are checked).
    Float {
        /// Its dtype.
        dtype: DType,
        /// Its shape.
        shape: Vec<usize>,
        /// Its values, row-major, already rounded to `dtype`.
        data: Vec<f64>,
    },
    /// An I64 tensor (indices, segment ids).
    Index {
        /// Its shape.
        shape: Vec<usize>,
        /// Its values, row-major.
        data: Vec<i64>,
    },
    /// A Bool tensor (a mask).
    Mask {
        /// Its shape.
        shape: Vec<usize>,
        /// Its values, row-major.
        data: Vec<bool>,
    },
}

impl Input {
    /// A float input of `dtype`, its values rounded to it.
    pub fn float(dtype: DType, shape: &[usize], data: &[f64]) -> Input {
        Input::Float { dtype, shape: shape.to_vec(), data: data.iter().map(|&x| dtype.round(x)).collect() }
    }

    /// An I64 input.
    pub fn index(shape: &[usize], data: &[i64]) -> Input {
        Input::Index { shape: shape.to_vec(), data: data.to_vec() }
    }

    /// A Bool input.
    pub fn mask(shape: &[usize], data: &[bool]) -> Input {
        Input::Mask { shape: shape.to_vec(), data: data.to_vec() }
    }

    /// Creates the tensor on `b`; float inputs become parameters when `param`.
    pub fn upload<C: Backend + ?Sized>(&self, b: &C, param: bool) -> Result<C::Tensor> {
        match self {
            Input::Float { dtype, shape, data } => {
                let t = b.tensor_f64(data, shape, *dtype)?;
                if param { b.param(&t) } else { Ok(t) }
            }
            Input::Index { shape, data } => b.tensor_i64(data, shape),
            Input::Mask { shape, data } => b.tensor_bool(data, shape),
        }
    }
}

/// A tensor program run alike on the backend under test and on the reference: a generic method,
/// so one description (usually an enum variant with its parameters, printed in failure reports)
/// serves both.
pub trait TensorOp: fmt::Debug {
    /// Runs the program on `b` with the uploaded inputs, returning the tensors to compare.
    fn apply<C: Backend + ?Sized>(&self, b: &C, xs: &[C::Tensor]) -> Result<Vec<C::Tensor>>;
}

/// Whether a comparison also checks gradients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Outputs only (inputs are constants).
    Forward,
    /// Outputs, then the gradient of `Σ_k sum(w_k ⊙ out_k)` over the float outputs, for fixed
    /// pseudo-random weights `w_k` in `[-1, 1)` rounded to each output's dtype, with respect to
    /// every float input (a missing gradient counts as zeros).
    Grad,
}

/// Pseudo-random weights in `[-1, 1)` for output `k` (splitmix64), the same for both sides.
pub fn weights(k: usize, n: usize, dtype: DType) -> Vec<f64> {
    let mut state = 0x5EED_0000_u64 + 7919 * k as u64;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            dtype.round(2.0 * (z >> 11) as f64 / (1u64 << 53) as f64 - 1.0)
        })
        .collect()
}

/// `index` of a row-major tensor of `shape` as a multi-index.
fn coordinates(shape: &[usize], mut index: usize) -> Vec<usize> {
    let mut out = vec![0; shape.len()];
    for (d, &size) in shape.iter().enumerate().rev() {
        if size > 0 {
            out[d] = index % size;
            index /= size;
        }
    }
    out
}

/// Compares `got` (backend) with `want` (reference) value by value under `tol`, recording every
/// pair in `stats`; on the first disagreement, a report naming `what`, the index (flat and as
/// coordinates in `shape`), both values and the tolerance.
pub fn compare(
    what: &str,
    shape: &[usize],
    got: &[f64],
    want: &[f64],
    tol: Tolerance,
    stats: &mut ErrorStats,
) -> core::result::Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{what}: {} values from the backend, {} from the reference",
            got.len(),
            want.len()
        ));
    }
    let mut first_bad = None;
    for (i, (&x, &y)) in got.iter().zip(want).enumerate() {
        stats.record(x, y, tol);
        if first_bad.is_none() && !tol.agrees(x, y) {
            first_bad = Some(i);
        }
    }
    match first_bad {
        None => Ok(()),
        Some(i) => {
            let (x, y) = (got[i], want[i]);
            Err(format!(
                "{what}: first bad index {i} (at {:?} of shape {shape:?}): backend {x:e}, reference {y:e}, \
                 |diff| {:.3e} > allowed {:.3e} ({tol})",
                coordinates(shape, i),
                (x - y).abs(),
                tol.allowed(x, y)
            ))
        }
    }
}

/// The backend under test, the reference, and the dtype of one check.
#[derive(Debug)]
pub struct Harness<'a, B: Backend> {
    /// The backend under test.
    pub backend: &'a B,
    /// The oracle.
    pub reference: Reference,
    /// The dtype the check runs in.
    pub dtype: DType,
}

impl<'a, B: Backend> Harness<'a, B> {
    /// A harness for `backend` in `dtype`.
    pub fn new(backend: &'a B, dtype: DType) -> Self {
        Harness { backend, reference: Reference::new(), dtype }
    }

    /// The tolerance for a result of dtype `out`: the looser of the check's dtype and `out`'s;
    /// I64 and Bool results are compared exactly.
    pub fn tol(&self, out: DType) -> Tolerance {
        if !out.is_float() {
            return Tolerance::EXACT;
        }
        Tolerance::for_dtype(self.dtype).looser(Tolerance::for_dtype(out))
    }

    /// A float input of the check's dtype.
    pub fn float(&self, shape: &[usize], data: &[f64]) -> Input {
        Input::float(self.dtype, shape, data)
    }

    /// Runs [`run_cases`] for this harness's dtype with [`crate::runner::DEFAULT_CASES`] cases.
    pub fn run<S>(
        &self,
        check: &'static str,
        strategy: S,
        case: impl Fn(&S::Value, &mut ErrorStats) -> core::result::Result<(), String>,
    ) -> CheckOutcome
    where
        S: Strategy,
        S::Value: fmt::Debug,
    {
        run_cases(check, self.dtype, crate::runner::DEFAULT_CASES, strategy, case)
    }

    /// Compares one backend tensor with one reference tensor: shape, dtype, then values
    /// (exactly for I64 and Bool).
    pub fn compare_tensors(
        &self,
        what: &str,
        got: &B::Tensor,
        want: &orz_reference::Tensor,
        stats: &mut ErrorStats,
    ) -> core::result::Result<(), String> {
        let b = self.backend;
        let (gs, ws) = (b.shape(got), want.shape().to_vec());
        if gs != ws {
            return Err(format!("{what}: backend shape {gs:?}, reference shape {ws:?}"));
        }
        let (gd, wd) = (b.dtype(got), want.dtype());
        if gd != wd {
            return Err(format!("{what}: backend dtype {gd}, reference dtype {wd}"));
        }
        let values = b.to_host_f64(got).map_err(|e| format!("{what}: to_host_f64 failed: {e}"))?;
        compare(what, &ws, &values, &want.to_vec(), self.tol(wd), stats)
    }

    /// Runs `op` on both sides with `inputs` and compares every output, then (in
    /// [`Mode::Grad`]) every float input's gradient. Reports name the op and show the inputs.
    pub fn check_op<O: TensorOp>(
        &self,
        op: &O,
        inputs: &[Input],
        mode: Mode,
        stats: &mut ErrorStats,
    ) -> core::result::Result<(), String> {
        self.check_op_inner(op, inputs, mode, stats).map_err(|e| format!("{op:?}: {e}\n  inputs: {inputs:?}"))
    }

    fn check_op_inner<O: TensorOp>(
        &self,
        op: &O,
        inputs: &[Input],
        mode: Mode,
        stats: &mut ErrorStats,
    ) -> core::result::Result<(), String> {
        let (b, r) = (self.backend, &self.reference);
        let grad = mode == Mode::Grad;
        let xs_r: Vec<_> = inputs
            .iter()
            .map(|i| i.upload(r, grad))
            .collect::<Result<_>>()
            .map_err(|e| format!("kit bug: the reference rejected an input: {e}"))?;
        let outs_r = op.apply(r, &xs_r).map_err(|e| format!("kit bug: the reference failed: {e}"))?;
        let xs_b: Vec<_> = inputs
            .iter()
            .map(|i| i.upload(b, grad))
            .collect::<Result<_>>()
            .map_err(|e| format!("uploading the inputs failed: {e}"))?;
        let outs_b = op.apply(b, &xs_b).map_err(|e| format!("the backend returned an error: {e}"))?;
        if outs_b.len() != outs_r.len() {
            return Err(format!(
                "{} outputs from the backend, {} from the reference",
                outs_b.len(),
                outs_r.len()
            ));
        }
        for (k, (got, want)) in outs_b.iter().zip(&outs_r).enumerate() {
            self.compare_tensors(&format!("output {k}"), got, want, stats)?;
        }
        if !grad {
            return Ok(());
        }
        let grads_r =
            weighted_backward(r, &outs_r).map_err(|e| format!("kit bug: reference backward: {e}"))?;
        let Some(grads_r) = grads_r else { return Ok(()) };
        let grads_b = weighted_backward(b, &outs_b)
            .map_err(|e| format!("backward failed: {e}"))?
            .ok_or("the backend's outputs have no float dtype")?;
        for (i, (input, (xb, xr))) in inputs.iter().zip(xs_b.iter().zip(&xs_r)).enumerate() {
            let Input::Float { shape, .. } = input else { continue };
            let what = format!("gradient of input {i}");
            let want = r.grad(&grads_r, xr).map_err(|e| format!("kit bug: {e}"))?;
            let want = want.map_or_else(|| vec![0.0; shape.iter().product()], |t| t.to_vec());
            let got = match b.grad(&grads_b, xb).map_err(|e| format!("{what}: grad failed: {e}"))? {
                Some(t) => {
                    let gs = b.shape(&t);
                    if gs != *shape {
                        return Err(format!("{what}: shape {gs:?}, the input's is {shape:?}"));
                    }
                    b.to_host_f64(&t).map_err(|e| format!("{what}: {e}"))?
                }
                None if want.iter().all(|&g| g == 0.0) => vec![0.0; want.len()],
                None => {
                    return Err(format!("{what}: the backend gives no gradient (None); the reference does"));
                }
            };
            compare(&what, shape, &got, &want, self.tol(self.dtype), stats)?;
        }
        Ok(())
    }
}

/// What [`Harness::evaluate`] measured on the backend alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    /// Each output's values.
    pub outputs: Vec<Vec<f64>>,
    /// For each input, the gradient of `Σ_k sum(w_k ⊙ out_k)` ([`weights`]); `None` for inputs
    /// that are not float, outside [`Mode::Grad`], or where the backend reports none.
    pub grads: Vec<Option<Vec<f64>>>,
}

impl<B: Backend> Harness<'_, B> {
    /// Runs `op` on the backend alone (for comparisons with host math) and returns its outputs
    /// and, in [`Mode::Grad`], the gradients of its float inputs; errors are reports naming `op`.
    pub fn evaluate<O: TensorOp>(
        &self,
        op: &O,
        inputs: &[Input],
        mode: Mode,
    ) -> core::result::Result<Evaluated, String> {
        let b = self.backend;
        let grad = mode == Mode::Grad;
        let run = || -> Result<Evaluated> {
            let xs: Vec<_> = inputs.iter().map(|i| i.upload(b, grad)).collect::<Result<_>>()?;
            let outs = op.apply(b, &xs)?;
            let outputs = outs.iter().map(|o| b.to_host_f64(o)).collect::<Result<_>>()?;
            let mut grads = vec![None; inputs.len()];
            if let (true, Some(g)) = (grad, weighted_backward(b, &outs)?) {
                for ((slot, x), input) in grads.iter_mut().zip(&xs).zip(inputs) {
                    if matches!(input, Input::Float { .. }) {
                        *slot = b.grad(&g, x)?.map(|t| b.to_host_f64(&t)).transpose()?;
                    }
                }
            }
            Ok(Evaluated { outputs, grads })
        };
        run().map_err(|e| format!("{op:?}: the backend returned an error: {e}\n  inputs: {inputs:?}"))
    }
}

/// `backward(Σ_k sum_all(out_k ⊙ w_k))` over the float outputs with [`weights`]; `None` when no
/// output is a float tensor.
fn weighted_backward<C: Backend + ?Sized>(b: &C, outs: &[C::Tensor]) -> Result<Option<C::Grads>> {
    let mut loss: Option<C::Tensor> = None;
    for (k, out) in outs.iter().enumerate() {
        let dtype = b.dtype(out);
        if !dtype.is_float() {
            continue;
        }
        let shape = b.shape(out);
        let w = b.tensor_f64(&weights(k, shape.iter().product(), dtype), &shape, dtype)?;
        let term = b.cast(&b.sum_all(&b.mul(out, &w)?)?, DType::F32)?;
        loss = Some(match loss {
            None => term,
            Some(l) => b.add(&l, &term)?,
        });
    }
    loss.map(|l| b.backward(&l)).transpose()
}
