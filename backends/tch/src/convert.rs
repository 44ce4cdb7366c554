//! Dtypes and host transfer: orz dtypes as libtorch kinds, host slices in and out.

use orz_core::backend::DType;
use orz_core::backend::shape::check_data_len;
use orz_core::{Error, Result};
use tch::{Device, Kind, Tensor};

use crate::{Tch, TchTensor, dims, tch_err};

/// The libtorch kind of an orz dtype.
pub(crate) fn kind(dtype: DType) -> Kind {
    match dtype {
        DType::F32 => Kind::Float,
        DType::BF16 => Kind::BFloat16,
        DType::F16 => Kind::Half,
        DType::I64 => Kind::Int64,
        DType::Bool => Kind::Bool,
    }
}

/// The orz dtype of a libtorch tensor (kinds this backend never creates read as f32).
pub(crate) fn dtype_of(t: &Tensor) -> DType {
    match t.f_kind() {
        Ok(Kind::BFloat16) => DType::BF16,
        Ok(Kind::Half) => DType::F16,
        Ok(Kind::Int64) => DType::I64,
        Ok(Kind::Bool) => DType::Bool,
        _ => DType::F32,
    }
}

/// The shape of a libtorch tensor as `usize`s.
pub(crate) fn shape_of(t: &Tensor) -> Vec<usize> {
    t.size().into_iter().map(|d| usize::try_from(d).unwrap_or(0)).collect()
}

impl Tch {
    /// Uploads host data of any tch element type, reshaped and converted to `kind`.
    pub(crate) fn upload<T: tch::kind::Element>(
        &self,
        op: &'static str,
        data: &[T],
        shape: &[usize],
        kind: Kind,
    ) -> Result<TchTensor> {
        check_data_len(op, data.len(), shape)?;
        let device = self.device;
        self.run(op, || {
            Tensor::f_from_slice(data)?.f_reshape(dims(shape))?.f_to_device_(device, kind, false, false)
        })
    }

    /// Uploads float host data after checking that `dtype` is a float dtype.
    pub(crate) fn upload_float<T: tch::kind::Element>(
        &self,
        op: &'static str,
        data: &[T],
        shape: &[usize],
        dtype: DType,
    ) -> Result<TchTensor> {
        if !dtype.is_float() {
            return Err(Error::dtype(
                op,
                format!("dtype {dtype} is not a float dtype; use tensor_i64 or tensor_bool"),
            ));
        }
        self.upload(op, data, shape, kind(dtype))
    }

    /// Copies a tensor to the host as `T` (converting to `T`'s kind on the device first).
    pub(crate) fn download<T: tch::kind::Element + Default + Clone>(
        &self,
        op: &'static str,
        t: &Tensor,
    ) -> Result<Vec<T>> {
        let _guard = tch::no_grad_guard();
        let n = t.numel();
        let host = t
            .f_to_device_(Device::Cpu, T::KIND, false, false)
            .and_then(|h| h.f_contiguous())
            .map_err(|e| tch_err(op, e))?;
        let mut out = Vec::new();
        out.try_reserve_exact(n)
            .map_err(|e| crate::out_of_memory(op, &format!("host buffer of {n} elements: {e}")))?;
        out.resize(n, T::default());
        host.f_copy_data(&mut out, n).map_err(|e| tch_err(op, e))?;
        Ok(out)
    }
}
