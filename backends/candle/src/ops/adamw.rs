//! Candle's override of [`Backend::adamw_update`].
//!
//! On the CPU, for an f32 parameter (the f32 master weights of every preset), the update runs as
//! three in-place passes over contiguous f32 slices, with no temporary tensor: the first moment
//! (`m ← β1 m + (1 − β1) g`), the second (`v ← β2 v + (1 − β2) g²`), then the parameter. The
//! moments are consumed (the trait's contract), so their storage holds the new moments.
//! Elsewhere (CUDA, a 16-bit parameter, a strided layout) the same formula runs as candle ops
//! into fresh tensors. Both paths evaluate the same f32 expressions in the same order, so they
//! agree bit for bit (tested below).

use candle_core::{CpuStorage, DType as CDType, Device, InplaceOp2, InplaceOp3, Layout, Tensor};
use orz_core::Result;
use orz_core::backend::Backend;
use orz_core::optimizer::adamw::{AdamWConfig, AdamWStep};

use crate::{Candle, OrBackend};

/// The step's f32 constants, each converted from f64 once, as candle's `affine` converts its
/// factors: `affine(x, a, b) = x · a + b` in f32.
#[derive(Debug, Clone, Copy)]
struct Coefficients {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    /// `1 / sqrt(1 − β2^t)`.
    inv_sqrt_bc2: f32,
    eps: f32,
    /// `lr / (1 − β1^t)`.
    step_size: f32,
    /// `1 − lr · weight_decay`.
    decay: f32,
}

impl Coefficients {
    fn new(hp: &AdamWStep) -> Self {
        let AdamWStep { lr, config: AdamWConfig { beta1, beta2, eps, weight_decay }, step } = *hp;
        let t = i32::try_from(step).unwrap_or(i32::MAX);
        let (bc1, bc2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
        Coefficients {
            beta1: beta1 as f32,
            one_minus_beta1: (1.0 - beta1) as f32,
            beta2: beta2 as f32,
            one_minus_beta2: (1.0 - beta2) as f32,
            inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
            eps: eps as f32,
            step_size: (lr / bc1) as f32,
            decay: (1.0 - lr * weight_decay) as f32,
        }
    }
}

/// Override of [`Backend::adamw_update`].
pub fn adamw_update(
    b: &Candle,
    param: &Tensor,
    grad: &Tensor,
    m: Tensor,
    v: Tensor,
    hp: &AdamWStep,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "adamw_update";
    let c = Coefficients::new(hp);
    let in_place = matches!(param.device(), Device::Cpu)
        && param.dtype() == CDType::F32
        && [param, &m, &v].iter().all(|t| t.is_contiguous());
    if in_place {
        let g = grad.detach().to_dtype(CDType::F32).and_then(|g| g.contiguous()).or_backend(OP)?;
        let (m, v) = (m.detach(), v.detach());
        m.inplace_op2(&g, &Moment::first(c)).or_backend(OP)?;
        v.inplace_op2(&g, &Moment::second(c)).or_backend(OP)?;
        param.inplace_op3(&m, &v, &Apply(c)).or_backend(OP)?;
        return Ok((m, v));
    }
    let (p, m, v) = composed(param, grad, &m, &v, c).or_backend(OP)?;
    b.assign_param(param, &p)?;
    Ok((m, v))
}

/// The update as candle ops into fresh tensors: `(p, m, v)`.
fn composed(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    c: Coefficients,
) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
    let affine = |x: &Tensor, a: f32, b: f32| x.affine(f64::from(a), f64::from(b));
    let p = param.detach().to_dtype(CDType::F32)?;
    let g = grad.detach().to_dtype(CDType::F32)?;
    let m = affine(&m.detach(), c.beta1, 0.0)?.add(&affine(&g, c.one_minus_beta1, 0.0)?)?;
    let v = affine(&v.detach(), c.beta2, 0.0)?.add(&affine(&g.sqr()?, c.one_minus_beta2, 0.0)?)?;
    let denom = affine(&v.sqrt()?, c.inv_sqrt_bc2, c.eps)?;
    let update = affine(&m.div(&denom)?, c.step_size, 0.0)?;
    let p = affine(&p, c.decay, 0.0)?.sub(&update)?;
    Ok((p, m, v))
}

/// A contiguous f32 CPU slice of `s` under `l`, or an error naming `op`.
fn slice<'a>(op: &str, s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let (start, end) =
        l.contiguous_offsets().ok_or_else(|| candle_core::Error::msg(format!("{op}: strided")))?;
    Ok(&s.as_slice::<f32>()?[start..end])
}

/// The mutable counterpart of [`slice`].
fn slice_mut<'a>(op: &str, s: &'a mut CpuStorage, l: &Layout) -> candle_core::Result<&'a mut [f32]> {
    let (start, end) =
        l.contiguous_offsets().ok_or_else(|| candle_core::Error::msg(format!("{op}: strided")))?;
    match s {
        CpuStorage::F32(data) => Ok(&mut data[start..end]),
        _ => Err(candle_core::Error::msg(format!("{op}: f32 storage expected"))),
    }
}

/// A moment's update in place: `x ← (x · β + 0) + (f(g) · (1 − β) + 0)`, with `f(g) = g` for
/// the first moment and `g · g` for the second.
struct Moment {
    /// `β` as f32.
    beta: f32,
    /// `1 − β` as f32.
    weight: f32,
    /// Whether `f(g) = g · g`.
    squared: bool,
}

impl Moment {
    fn first(c: Coefficients) -> Self {
        Moment { beta: c.beta1, weight: c.one_minus_beta1, squared: false }
    }
    fn second(c: Coefficients) -> Self {
        Moment { beta: c.beta2, weight: c.one_minus_beta2, squared: true }
    }
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        if self.squared { "adamw_second_moment" } else { "adamw_first_moment" }
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let Moment { beta, weight, squared } = *self;
        let g = slice(self.name(), s2, l2)?;
        let x = slice_mut(self.name(), s1, l1)?;
        let update = |x: &mut f32, f: f32| *x = (*x * beta + 0.0) + (f * weight + 0.0);
        if squared {
            x.iter_mut().zip(g).for_each(|(x, &g)| update(x, g * g));
        } else {
            x.iter_mut().zip(g).for_each(|(x, &g)| update(x, g));
        }
        Ok(())
    }
}

/// `p ← (p · decay + 0) − ((m / (sqrt(v) · 1/sqrt(bc2) + eps)) · lr/bc1 + 0)`, in place on `p`.
struct Apply(Coefficients);

impl InplaceOp3 for Apply {
    fn name(&self) -> &'static str {
        "adamw_apply"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<()> {
        let Coefficients { inv_sqrt_bc2, eps, step_size, decay, .. } = self.0;
        let (m, v) = (slice(self.name(), s2, l2)?, slice(self.name(), s3, l3)?);
        for ((p, &m), &v) in slice_mut(self.name(), s1, l1)?.iter_mut().zip(m).zip(v) {
            let denom = v.sqrt() * inv_sqrt_bc2 + eps;
            *p = (*p * decay + 0.0) - ((m / denom) * step_size + 0.0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use orz_core::backend::{Backend, DType};

    use super::*;

    /// The in-place CPU path and the composed path give the same bits, over several steps with
    /// weight decay and gradients of both signs (including zeros).
    #[test]
    fn in_place_and_composed_paths_agree_bitwise() {
        let b = Candle::cpu();
        let n = 1000;
        let values = |seed: u32| -> Vec<f32> {
            (0..n)
                .map(|i| {
                    ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32 / 1000.0 - 1.0
                })
                .collect()
        };
        let init = values(1);
        let fused = b.param(&b.tensor_f32(&init, &[n], DType::F32).unwrap()).unwrap();
        let (mut m, mut v) = (b.zeros(&[n], DType::F32).unwrap(), b.zeros(&[n], DType::F32).unwrap());
        let mut p = Tensor::from_vec(init, n, &Device::Cpu).unwrap();
        let (mut mc, mut vc) = (p.zeros_like().unwrap(), p.zeros_like().unwrap());
        for step in 1..=4u64 {
            let hp = AdamWStep {
                lr: 1e-3 * step as f64,
                config: AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 },
                step,
            };
            let g = b.tensor_f32(&values(step as u32 * 7), &[n], DType::F32).unwrap();
            (m, v) = b.adamw_update(&fused, &g, m, v, &hp).unwrap();
            (p, mc, vc) = composed(&p, &g, &mc, &vc, Coefficients::new(&hp)).unwrap();
        }
        let bits = |t: &Tensor| t.to_vec1::<f32>().unwrap().into_iter().map(f32::to_bits).collect::<Vec<_>>();
        assert_eq!(bits(&fused), bits(&p), "parameters");
        assert_eq!(bits(&m), bits(&mc), "first moments");
        assert_eq!(bits(&v), bits(&vc), "second moments");
    }
}
