//! `attention` and `causal_attention` on libtorch's `scaled_dot_product_attention`.
//!
//! `causal_attention` over packed rows (segment ids that form contiguous runs, as every ORZ pack
//! does) runs one `is_causal` SDPA per segment, so libtorch picks its fused kernels (flash on the
//! CPU; flash or memory-efficient on CUDA) and memory stays linear in the sequence length. Other
//! segment ids (an id that comes back after a different one) take the masked path: an explicit
//! `[b, 1, s, s]` block-diagonal causal mask as an additive bias, quadratic in memory.

use std::collections::HashSet;

use orz_core::Result;
use orz_core::backend::DType;
use tch::Tensor;

use crate::convert::{dtype_of, kind, shape_of};
use crate::{Tch, TchTensor, i64_of, scalar, tch_err};

impl Tch {
    /// SDPA with the additive mask of `mask`. With `empty_rows`, rows where `mask` allows no key
    /// are made exactly uniform: libtorch's kernels save `logsumexp = max + log(sum)` for the
    /// backward pass, and with every score at the dtype's minimum the `log(sum)` is lost to
    /// rounding (the value gradient of such a row came out `n` times too large). So those rows get
    /// a zero bias and a zero query (scores all 0: the uniform average, and, as with a constant
    /// fill, no gradient to `q` or `k`).
    pub(crate) fn sdpa_masked(
        &self,
        q: &TchTensor,
        k: &TchTensor,
        v: &TchTensor,
        mask: &Tensor,
        empty_rows: bool,
    ) -> Result<TchTensor> {
        let dtype = dtype_of(&q.t);
        let fill = dtype.min_finite().unwrap_or(f64::MIN);
        let options = (kind(dtype), self.device);
        let head_dim = q.t.size().last().copied().unwrap_or(1).max(1);
        let scale = 1.0 / (head_dim as f64).sqrt();
        let gqa = q.t.size()[1] != k.t.size()[1];
        let zero = Tensor::f_zeros([], options).map_err(|e| tch_err("attention", e))?;
        let (bias, any) = {
            let _guard = tch::no_grad_guard();
            let build = || {
                let bias = zero.f_where_self(mask, &scalar::full(&[], fill, options)?)?;
                if !empty_rows {
                    return Ok((bias, None));
                }
                let any = mask.f_any_dim(-1, true)?;
                Ok((bias.f_where_self(&any, &zero)?, Some(any)))
            };
            build().map_err(|e| tch_err("attention", e))?
        };
        self.run("attention", || {
            let q = match &any {
                Some(any) => q.t.f_where_self(any, &zero)?,
                None => q.t.shallow_clone(),
            };
            Tensor::f_scaled_dot_product_attention(&q, &k.t, &v.t, Some(&bias), 0.0, false, scale, gqa)
        })
    }

    /// `causal_attention`: one `is_causal` SDPA per segment when each row's segment ids form
    /// contiguous runs (memory linear in `s`), otherwise [`Tch::causal_attention_masked`].
    pub(crate) fn sdpa_causal(
        &self,
        q: &TchTensor,
        k: &TchTensor,
        v: &TchTensor,
        segment_ids: &TchTensor,
    ) -> Result<TchTensor> {
        let s = shape_of(&segment_ids.t)[1];
        if s == 0 || shape_of(&q.t)[0] == 0 {
            return self.masked_causal(q, k, v, segment_ids);
        }
        let ids: Vec<i64> = self.download(CAUSAL, &segment_ids.t)?;
        match ids.chunks(s).map(contiguous_runs).collect::<Option<Vec<_>>>() {
            Some(rows) => self.segmented_causal(q, k, v, &rows, self.native_gqa(q)),
            None => self.masked_causal(q, k, v, segment_ids),
        }
    }

    /// `causal_attention` on `scaled_dot_product_attention` with the explicit block-diagonal
    /// causal mask `(j <= i) && seg[i] == seg[j]` as an additive bias: exact for any segment ids,
    /// but quadratic in memory (the fallback of the fused path; public for tests and benchmarks).
    pub fn causal_attention_masked(
        &self,
        q: &TchTensor,
        k: &TchTensor,
        v: &TchTensor,
        segment_ids: &TchTensor,
    ) -> Result<TchTensor> {
        orz_core::backend::check::causal_attention(self, q, k, v, segment_ids)?;
        self.masked_causal(q, k, v, segment_ids)
    }

    /// The masked path of `causal_attention`, on checked arguments.
    fn masked_causal(
        &self,
        q: &TchTensor,
        k: &TchTensor,
        v: &TchTensor,
        segment_ids: &TchTensor,
    ) -> Result<TchTensor> {
        let ss = shape_of(&segment_ids.t);
        let (batch, s) = (i64_of(ss[0]), i64_of(ss[1]));
        let mask = {
            let _guard = tch::no_grad_guard();
            let build = || {
                let pos = scalar::arange(s, self.device)?;
                let causal = pos.f_reshape([s, 1])?.f_ge_tensor(&pos.f_reshape([1, s])?)?;
                let seg = &segment_ids.t;
                let same = seg.f_reshape([batch, 1, s, 1])?.f_eq_tensor(&seg.f_reshape([batch, 1, 1, s])?)?;
                same.f_logical_and(&causal)
            };
            build().map_err(|e| tch_err(CAUSAL, e))?
        };
        // Every row attends at least to itself: no empty rows.
        self.sdpa_masked(q, k, v, &mask, false)
    }

    /// Whether the per-segment calls hand grouped kv heads to the kernel as they are
    /// (`enable_gqa`) rather than repeating them first: on the CPU (libtorch 2.11's flash kernel
    /// takes them; measured against repeating, 2-20% less time and half the extra memory at
    /// s = 2048 and 8192), and on CUDA only for f16 / bf16, where the flash kernel runs. On CUDA
    /// `enable_gqa` works only with the flash and math kernels (PyTorch's SDPA documentation), so
    /// f32, which flash does not take, would fall to the quadratic math kernel; repeated heads go
    /// to the memory-efficient kernel instead. The CUDA rule is NOT verified on a GPU.
    fn native_gqa(&self, q: &TchTensor) -> bool {
        self.device == tch::Device::Cpu || matches!(dtype_of(&q.t), DType::BF16 | DType::F16)
    }

    /// One `is_causal` SDPA per segment (`rows[b]` lists the `(start, len)` runs of batch row
    /// `b`), concatenated along the sequence and the batch. The splits are `split_with_sizes`
    /// (skipped for a single part), whose backward is one `cat` (not a zero-filled full-size
    /// gradient per segment as with `narrow`). Grouped kv heads (kv head `h / (hq / hkv)`, as
    /// `repeat_kv`) go to the kernel through `enable_gqa` when `native_gqa`, else repeated.
    fn segmented_causal(
        &self,
        q: &TchTensor,
        k: &TchTensor,
        v: &TchTensor,
        rows: &[Vec<(usize, usize)>],
        native_gqa: bool,
    ) -> Result<TchTensor> {
        let qs = shape_of(&q.t);
        let scale = 1.0 / (qs[3].max(1) as f64).sqrt();
        let gqa = native_gqa && qs[1] != shape_of(&k.t)[1];
        self.run(CAUSAL, || {
            let (k, v) = if native_gqa {
                (k.t.shallow_clone(), v.t.shallow_clone())
            } else {
                (repeat_kv(&k.t, qs[1])?, repeat_kv(&v.t, qs[1])?)
            };
            let batch = vec![1; rows.len()];
            let (qr, kr, vr) = (split(&q.t, &batch, 0)?, split(&k, &batch, 0)?, split(&v, &batch, 0)?);
            let mut outs = Vec::with_capacity(rows.len());
            for (((q, k), v), runs) in qr.iter().zip(&kr).zip(&vr).zip(rows) {
                let lens: Vec<i64> = runs.iter().map(|&(_, len)| i64_of(len)).collect();
                let (qp, kp, vp) = (split(q, &lens, 2)?, split(k, &lens, 2)?, split(v, &lens, 2)?);
                let parts = qp
                    .iter()
                    .zip(&kp)
                    .zip(&vp)
                    .map(|((q, k), v)| {
                        Tensor::f_scaled_dot_product_attention(
                            q,
                            k,
                            v,
                            None::<&Tensor>,
                            0.0,
                            true,
                            scale,
                            gqa,
                        )
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                outs.push(cat_or_single(parts, 2)?);
            }
            cat_or_single(outs, 0)
        })
    }
}

/// The operation name of `causal_attention`'s errors.
const CAUSAL: &str = "causal_attention";

/// The `(start, len)` runs of equal ids in `row`, or `None` when an id comes back after a
/// different one (the segments are then not contiguous).
pub(crate) fn contiguous_runs(row: &[i64]) -> Option<Vec<(usize, usize)>> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut seen = HashSet::new();
    for (i, &id) in row.iter().enumerate() {
        match runs.last_mut() {
            Some((start, len)) if row[*start] == id => *len += 1,
            _ => {
                if !seen.insert(id) {
                    return None;
                }
                runs.push((i, 1));
            }
        }
    }
    Some(runs)
}

/// `kv` (`[b, hkv, s, d]`) with each head repeated to `hq` heads, head `h` being kv head
/// `h / (hq / hkv)` (Hugging Face's `repeat_kv`); the tensor itself when `hkv == hq`.
fn repeat_kv(kv: &Tensor, hq: usize) -> std::result::Result<Tensor, tch::TchError> {
    let [b, hkv, s, d] = kv.size()[..] else { return Ok(kv.shallow_clone()) };
    let hq = i64_of(hq);
    if hkv == hq {
        return Ok(kv.shallow_clone());
    }
    kv.f_unsqueeze(2)?.f_expand([b, hkv, hq / hkv, s, d], false)?.f_reshape([b, hq, s, d])
}

/// `t` split along `dim` into parts of `sizes` (`split_with_sizes`), or `t` itself for one part
/// (no copy of its gradient in the backward pass).
fn split(t: &Tensor, sizes: &[i64], dim: i64) -> std::result::Result<Vec<Tensor>, tch::TchError> {
    if sizes.len() == 1 {
        return Ok(vec![t.shallow_clone()]);
    }
    t.f_split_with_sizes(sizes, dim)
}

/// `parts` concatenated along `dim`, or the only part itself.
fn cat_or_single(mut parts: Vec<Tensor>, dim: i64) -> std::result::Result<Tensor, tch::TchError> {
    if parts.len() == 1 {
        return Ok(parts.swap_remove(0));
    }
    Tensor::f_cat(&parts, dim)
}

#[cfg(test)]
mod tests {
    use tch::Kind;

    use super::*;

    #[test]
    fn runs_of_contiguous_ids() {
        assert_eq!(contiguous_runs(&[]), Some(vec![]));
        assert_eq!(contiguous_runs(&[4]), Some(vec![(0, 1)]));
        assert_eq!(contiguous_runs(&[0, 0, 1, 2, 2, 2]), Some(vec![(0, 2), (2, 1), (3, 3)]));
        assert_eq!(contiguous_runs(&[9, 9, -1, 3]), Some(vec![(0, 2), (2, 1), (3, 1)]));
        assert_eq!(contiguous_runs(&[0, 1, 0]), None, "id 0 comes back");
        assert_eq!(contiguous_runs(&[0, 0, 1, 1, 2, 1]), None, "id 1 comes back");
    }

    #[test]
    fn kv_heads_repeat_as_repeat_kv() {
        let kv = Tensor::arange(2 * 2 * 3, (Kind::Float, tch::Device::Cpu)).reshape([1, 2, 2, 3]);
        let r = repeat_kv(&kv, 6).unwrap();
        assert_eq!(r.size(), [1, 6, 2, 3]);
        for h in 0..6 {
            assert!(r.get(0).get(h).equal(&kv.get(0).get(h / 3)), "head {h} is kv head {}", h / 3);
        }
    }

    /// `sdpa_causal` takes the per-segment path exactly when every row's ids are contiguous.
    #[test]
    fn contiguous_ids_take_the_per_segment_path() {
        let b = Tch::cpu();
        let t = |shape: [i64; 4]| TchTensor::new(Tensor::randn(shape, (Kind::Float, tch::Device::Cpu)));
        let (q, k, v) = (t([2, 4, 9, 8]), t([2, 2, 9, 8]), t([2, 2, 9, 8]));
        let ids =
            |rows: [[i64; 9]; 2]| TchTensor::new(Tensor::from_slice(rows.as_flattened()).reshape([2, 9]));
        let same = |a: &TchTensor, b: &TchTensor| a.t.equal(&b.t);
        let contiguous = ids([[0, 0, 0, 1, 1, 2, 2, 2, 2], [5, 5, 5, 5, 5, 5, 5, 5, 3]]);
        let rows = vec![vec![(0, 3), (3, 2), (5, 4)], vec![(0, 8), (8, 1)]];
        let got = b.sdpa_causal(&q, &k, &v, &contiguous).unwrap();
        assert!(same(&got, &b.segmented_causal(&q, &k, &v, &rows, true).unwrap()));
        // The repeated-heads variant (CUDA f32) agrees with `enable_gqa`.
        let repeated = b.segmented_causal(&q, &k, &v, &rows, false).unwrap();
        assert!(repeated.t.allclose(&got.t, 1e-5, 1e-6, false));
        let scattered = ids([[0, 0, 0, 1, 1, 2, 2, 2, 2], [0, 0, 1, 1, 0, 0, 1, 1, 1]]);
        let got = b.sdpa_causal(&q, &k, &v, &scattered).unwrap();
        assert!(same(&got, &b.masked_causal(&q, &k, &v, &scattered).unwrap()));
    }

    /// The per-segment calls run libtorch's fused flash kernel on the CPU (`SDPBackend` 1, as
    /// `torch._fused_sdp_choice` reports), not the quadratic math kernel (0), on a segment
    /// split out of a longer row (a strided view) with grouped kv heads (`enable_gqa`).
    #[test]
    fn segments_run_the_flash_kernel_on_the_cpu() {
        for kind in [Kind::Float, Kind::BFloat16] {
            let opts = (kind, tch::Device::Cpu);
            let (q, kv) = (Tensor::randn([1, 14, 96, 64], opts), Tensor::randn([1, 2, 96, 64], opts));
            let (qp, kp) = (q.split_with_sizes([40, 56], 2), kv.split_with_sizes([40, 56], 2));
            let choice = Tensor::f_internal_fused_sdp_choice(
                &qp[1],
                &kp[1],
                &kp[1],
                None::<&Tensor>,
                0.0,
                true,
                0.125,
                true,
            )
            .unwrap();
            assert_eq!(choice, 1, "{kind:?}: SDPBackend::flash_attention");
        }
    }
}
