//! What the conformance suite does not cover: device selection and the grad-mode flag's scope.

use orz_core::backend::{Backend, DType};
use orz_tch::Tch;

#[test]
fn cuda_is_an_error_without_a_gpu_and_names_the_reason() {
    if Tch::cuda_is_available() {
        assert!(Tch::cuda(usize::MAX).is_err(), "an ordinal beyond the device count is an error");
        return;
    }
    let err = Tch::cuda(0).expect_err("no CUDA on this machine").to_string();
    assert!(err.contains("CUDA is not available"), "{err}");
}

#[test]
fn grad_mode_is_per_backend_and_results_stay_detached() {
    let (b, other) = (Tch::cpu(), Tch::cpu());
    let x = b.param(&b.tensor_f32(&[1.0, 2.0], &[2], DType::F32).unwrap()).unwrap();
    assert!(b.set_grad_enabled(false));
    let y = b.mul(&x, &x).unwrap();
    assert!(!y.inner().requires_grad(), "no graph while recording is off");
    // Another backend instance (and libtorch's own grad mode) is unaffected.
    let z = other.mul(&x, &x).unwrap();
    assert!(z.inner().requires_grad());
    assert!(!b.set_grad_enabled(true));
    let loss = b.sum_all(&b.mul(&x, &x).unwrap()).unwrap();
    let g = b.grad(&b.backward(&loss).unwrap(), &x).unwrap().expect("a gradient");
    assert_eq!(b.to_host_f32(&g).unwrap(), vec![2.0, 4.0]);
    assert!(x.inner().grad().defined().then_some(()).is_none(), "nothing accumulates into .grad");
}

#[test]
fn bad_indices_are_errors_not_aborts() {
    let b = Tch::cpu();
    let w = b.tensor_f32(&[0.0; 6], &[3, 2], DType::F32).unwrap();
    let idx = b.tensor_i64(&[0, 3], &[2]).unwrap();
    let err = b.index_select(&w, 0, &idx).expect_err("index 3 of 3 rows").to_string();
    assert!(err.contains('3'), "{err}");
}

#[test]
fn out_of_memory_is_a_recognisable_error_not_an_abort() {
    let b = Tch::cpu();
    // 2^60 f32 elements are 2^62 bytes: libtorch's allocator throws `c10::OutOfMemoryError`.
    let err = b.full(&[1 << 60], 1.0, DType::F32).expect_err("an allocation of 2^62 bytes fails");
    assert!(orz_tch::is_out_of_memory(&err), "{err}");
    assert_eq!(err.op(), "full");
    assert!(err.to_string().starts_with("full: out of memory: "), "{err}");
    // The same inside an op: a [2^30, 2^30] product (2^62 bytes) of two broadcast scalars.
    let x = b.tensor_f32(&[1.0], &[1, 1], DType::F32).unwrap();
    let (rows, cols) =
        (b.broadcast_to(&x, &[1 << 30, 1]).unwrap(), b.broadcast_to(&x, &[1, 1 << 30]).unwrap());
    let err = b.mul(&rows, &cols).expect_err("a 2^62-element result");
    assert!(orz_tch::is_out_of_memory(&err), "{err}");
    // Other libtorch errors are not out-of-memory errors.
    let w = b.tensor_f32(&[0.0; 6], &[3, 2], DType::F32).unwrap();
    let err = b.index_select(&w, 0, &b.tensor_i64(&[3], &[1]).unwrap()).unwrap_err();
    assert!(!orz_tch::is_out_of_memory(&err), "{err}");
}
