//! libtorch's fused optimizer kernels, which tch 0.24 does not expose, through the C++ shim in
//! `csrc/optim_shim.cpp` (built by `build.rs`): [`fused_adamw`] (`_fused_adamw_`, the kernel
//! of PyTorch's `AdamW(fused=True)`) and [`foreach_norm`] (`_foreach_norm`, the norms of
//! PyTorch's `clip_grad_norm_`).
#![allow(unsafe_code)] // The FFI to the shim: every call is wrapped here, once.

use std::ffi::{CStr, c_char, c_double, c_longlong};

use tch::{Kind, TchError, Tensor};
use torch_sys::C_tensor;

unsafe extern "C" {
    fn orz_optim_free_error(err: *mut c_char);
    fn orz_fused_adamw(
        param: *mut C_tensor,
        grad: *mut C_tensor,
        exp_avg: *mut C_tensor,
        exp_avg_sq: *mut C_tensor,
        step: *mut C_tensor,
        lr: c_double,
        beta1: c_double,
        beta2: c_double,
        weight_decay: c_double,
        eps: c_double,
    ) -> *mut c_char;
    fn orz_foreach_norm(tensors: *const *mut C_tensor, n: c_longlong, out: *mut *mut C_tensor)
    -> *mut c_char;
}

/// `Ok` for a null error, else the shim's message (freed here) as a libtorch error.
fn check(err: *mut c_char) -> Result<(), TchError> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null error is a NUL-terminated string malloc'd by the shim, freed once here.
    let message = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
    // SAFETY: as above.
    unsafe { orz_optim_free_error(err) };
    Err(TchError::Torch(message))
}

/// The hyper-parameters of one AdamW step: learning rate, β1, β2, decoupled weight decay, ε,
/// and the 1-based step count of the bias correction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamWArgs {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub eps: f64,
    pub step: u64,
}

/// One AdamW step of `param` with gradient `grad` in place, `exp_avg` and `exp_avg_sq` updated
/// in place (PyTorch's `_fused_adamw_`: `p ← p(1 - lr·wd)`, `m ← lerp(m, g, 1 - β1)`,
/// `v ← β2·v + (1 - β2)·g²`, `p ← p - lr/(1 - β1^t) · m / (√v / √(1 - β2^t) + ε)`). All four
/// contiguous, of one dtype and on one device.
pub(crate) fn fused_adamw(
    param: &Tensor,
    grad: &Tensor,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    a: AdamWArgs,
) -> Result<(), TchError> {
    // libtorch reads the step from a one-element f32 tensor on the parameter's device.
    let mut step = Tensor::f_from_slice(&[a.step as f32])?.f_to_device(param.device())?;
    let (mut p, mut g, mut m, mut v) =
        (param.shallow_clone(), grad.shallow_clone(), exp_avg.shallow_clone(), exp_avg_sq.shallow_clone());
    // SAFETY: five live tensor handles (checked by libtorch for dtype, device and size); the
    // shim writes into the storage of `p`, `m` and `v`, which the caller hands over for that.
    check(unsafe {
        orz_fused_adamw(
            p.as_mut_ptr(),
            g.as_mut_ptr(),
            m.as_mut_ptr(),
            v.as_mut_ptr(),
            step.as_mut_ptr(),
            a.lr,
            a.beta1,
            a.beta2,
            a.weight_decay,
            a.eps,
        )
    })
}

/// The L2 norm of each of `tensors`, computed in f32 whatever their dtype, as one 1-D f32
/// tensor (libtorch's `_foreach_norm`). `tensors` must not be empty.
pub(crate) fn foreach_norm(tensors: &[&Tensor]) -> Result<Tensor, TchError> {
    let mut handles: Vec<Tensor> = tensors.iter().map(|t| t.shallow_clone()).collect();
    let ptrs: Vec<*mut C_tensor> = handles.iter_mut().map(|t| t.as_mut_ptr()).collect();
    let n = c_longlong::try_from(ptrs.len()).map_err(|_| TchError::Torch("too many tensors".into()))?;
    let mut out: *mut C_tensor = std::ptr::null_mut();
    // SAFETY: `ptrs` holds `n` live handles (kept alive by `handles`), read only; `out` receives
    // a new tensor handle owned by the caller.
    check(unsafe { orz_foreach_norm(ptrs.as_ptr(), n, &mut out) })?;
    if out.is_null() {
        return Err(TchError::Torch("_foreach_norm returned no tensor".into()));
    }
    // SAFETY: a non-null `out` is a tensor handle the shim allocated for us; the returned
    // `Tensor` owns it and frees it once.
    let norms = unsafe { Tensor::from_ptr(out) };
    debug_assert_eq!(norms.kind(), Kind::Float);
    Ok(norms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn args() -> AdamWArgs {
        AdamWArgs { lr: 0.1, beta1: 0.9, beta2: 0.999, weight_decay: 0.01, eps: 1e-8, step: 1 }
    }

    /// One step from zero moments moves every element by about `lr` against its gradient's
    /// sign (`m̂ / √v̂ = sign(g)` at step 1), after the decay `p(1 - lr·wd)`.
    #[test]
    fn the_first_step_moves_by_the_learning_rate() {
        let p = Tensor::from_slice(&[1.0f32, -2.0, 0.5]);
        let g = Tensor::from_slice(&[0.3f32, -4.0, 1e-3]);
        let (m, v) = (p.zeros_like(), p.zeros_like());
        fused_adamw(&p, &g, &m, &v, args()).unwrap();
        let got: Vec<f32> = Vec::try_from(&p).unwrap();
        for (x, (p0, g0)) in got.iter().zip([(1.0f64, 0.3f64), (-2.0, -4.0), (0.5, 1e-3)]) {
            let want = p0 * (1.0 - 0.1 * 0.01) - 0.1 * g0.signum();
            assert!((f64::from(*x) - want).abs() < 1e-5, "{x} vs {want}");
        }
        assert!((m.double_value(&[1]) - 0.1 * -4.0).abs() < 1e-6);
    }

    /// A libtorch error (mixed dtypes) comes back as an error value, not an abort.
    #[test]
    fn a_dtype_mismatch_is_an_error() {
        let p = Tensor::from_slice(&[1.0f32, 2.0]);
        let g = Tensor::from_slice(&[1.0f64, 2.0]);
        let (m, v) = (p.zeros_like(), p.zeros_like());
        assert!(fused_adamw(&p, &g, &m, &v, args()).is_err());
    }

    /// `_foreach_norm` in f32 for f32 and bf16 tensors alike.
    #[test]
    fn norms_of_several_tensors() {
        let a = Tensor::from_slice(&[3.0f32, 4.0]);
        let b = Tensor::from_slice(&[1.0f32, 1.0, 1.0, 1.0]).to_kind(Kind::BFloat16).to_device(Device::Cpu);
        let norms = foreach_norm(&[&a, &b]).unwrap();
        assert_eq!(norms.kind(), Kind::Float);
        assert_eq!(Vec::<f32>::try_from(&norms).unwrap(), vec![5.0, 2.0]);
    }
}
