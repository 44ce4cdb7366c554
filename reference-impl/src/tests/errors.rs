//! Bad shapes, dtypes and indices are errors (never panics) that name the op and the shapes.

use orz_core::backend::{Backend, DType};
use orz_core::{Error, Result};

use super::f32t;
use crate::{Reference, Tensor};

fn message(r: Result<impl std::fmt::Debug>) -> (Error, String) {
    let e = r.expect_err("an error was expected");
    let m = e.to_string();
    (e, m)
}

fn zeros(b: &Reference, shape: &[usize]) -> Tensor {
    b.zeros(shape, DType::F32).unwrap()
}

#[test]
fn shape_errors_name_the_op_and_shapes() {
    let b = Reference::new();
    let cases: Vec<(Result<Tensor>, &str)> = vec![
        (
            b.matmul(&zeros(&b, &[2, 3]), &zeros(&b, &[4, 5])),
            "matmul: shapes [2, 3] and [4, 5] are incompatible",
        ),
        (b.matmul(&zeros(&b, &[3]), &zeros(&b, &[3, 1])), "matmul: shapes [3] and [3, 1] are incompatible"),
        (b.add(&zeros(&b, &[2, 3]), &zeros(&b, &[2])), "add: shapes [2, 3] and [2] do not broadcast"),
        (b.reshape(&zeros(&b, &[2, 3]), &[4]), "reshape: cannot reshape [2, 3] into [4]"),
        (b.narrow(&zeros(&b, &[2, 3]), 1, 2, 2), "narrow: range 2..2+2 exceeds dimension 1 of shape [2, 3]"),
        (b.sum(&zeros(&b, &[2, 3]), 2, false), "sum: dimension 2 is out of range for shape [2, 3] (rank 2)"),
        (
            b.transpose(&zeros(&b, &[2]), 0, 1),
            "transpose: dimension 1 is out of range for shape [2] (rank 1)",
        ),
        (
            b.cat(&[zeros(&b, &[2, 3]), zeros(&b, &[3, 3])], 1),
            "cat: shapes [2, 3] and [3, 3] differ outside dimension 1",
        ),
        (b.cat(&[], 0), "cat: no tensors to concatenate"),
        (
            b.tensor_f32(&[1.0; 5], &[2, 3], DType::F32),
            "tensor_f32: 5 values cannot fill shape [2, 3] (6 elements)",
        ),
        (b.max(&zeros(&b, &[2, 0]), 1, false), "max: dimension 1 of shape [2, 0] is empty"),
        (b.squeeze(&zeros(&b, &[2, 3]), 0), "squeeze: dimension 0 of shape [2, 3] does not have size 1"),
        (
            b.linear(&zeros(&b, &[2, 3]), &zeros(&b, &[4, 5]), None),
            "linear: input of shape [2, 3] does not fit weight of shape [4, 5]",
        ),
        (
            b.backward(&zeros(&b, &[2])).map(|_| zeros(&b, &[])),
            "backward: the loss must be one float element, got shape [2] of dtype f32",
        ),
    ];
    for (r, want) in cases {
        let (e, m) = message(r);
        assert_eq!(m, want);
        assert!(matches!(e, Error::Shape { .. }), "{m}: expected a shape error, got {e:?}");
    }
}

#[test]
fn index_errors_name_the_index_and_dimension() {
    let b = Reference::new();
    let x = zeros(&b, &[5, 3]);
    let (e, m) = message(b.index_select(&x, 0, &b.tensor_i64(&[1, 7], &[2]).unwrap()));
    assert_eq!(m, "index_select: index 7 is out of range for size 5 (dimension 0 of shape [5, 3])");
    assert!(matches!(e, Error::IndexOutOfRange { index: 7, size: 5, .. }));
    let (_, m) = message(b.gather(&x, 1, &b.tensor_i64(&[0, -1, 0, 0, 0], &[5, 1]).unwrap()));
    assert_eq!(m, "gather: index -1 is out of range for size 3 (dimension 1 of shape [5, 3])");
    let (_, m) = message(b.embedding(&x, &b.tensor_i64(&[5], &[1]).unwrap()));
    assert!(m.starts_with("index_select: index 5 is out of range"), "{m}");
    let (_, m) = message(b.gather(&x, 1, &b.tensor_i64(&[0, 0], &[2, 1]).unwrap()));
    assert_eq!(m, "gather: index of shape [2, 1] does not fit input of shape [5, 3] along dimension 1");
}

#[test]
fn dtype_errors() {
    let b = Reference::new();
    let f = zeros(&b, &[2]);
    let h = b.cast(&f, DType::BF16).unwrap();
    let i = b.tensor_i64(&[1, 2], &[2]).unwrap();
    let (e, m) = message(b.add(&f, &h));
    assert_eq!(m, "add: operands have dtypes f32 and bf16; they must match");
    assert!(matches!(e, Error::DType { .. }));
    let (_, m) = message(b.exp(&i));
    assert_eq!(m, "exp: the input has dtype i64, a float dtype (f32, bf16, f16) is required");
    let (_, m) = message(b.index_select(&f, 0, &f));
    assert_eq!(m, "index_select: indices have dtype f32, i64 is required");
    let (_, m) = message(b.where_(&f, &f, &f));
    assert_eq!(m, "where_: the condition has dtype f32, bool is required");
    let (_, m) = message(b.to_host_i64(&f));
    assert_eq!(m, "to_host_i64: tensor has dtype f32; cast it to i64 first");
    let (_, m) = message(b.tensor_f32(&[1.0], &[1], DType::I64));
    assert_eq!(m, "tensor_f32: dtype i64 is not a float dtype; use tensor_i64 or tensor_bool");
    let (_, m) = message(b.param(&i));
    assert!(m.starts_with("param: the initial value has dtype i64"), "{m}");
}

#[test]
fn misuse_errors() {
    let b = Reference::new();
    let x = zeros(&b, &[2]);
    let p = b.param(&x).unwrap();
    let (_, m) = message(b.assign_param(&x, &x));
    assert_eq!(m, "assign_param: the target is not a parameter (see Backend::param)");
    let (_, m) = message(b.assign_param(&p, &zeros(&b, &[3])));
    assert_eq!(m, "assign_param: parameter has shape [2] but the value has shape [3]");
    let (_, m) = message(b.write_slice(&p, 0, 0, &x));
    assert!(m.starts_with("write_slice: the destination is a parameter"), "{m}");
    let (_, m) = message(b.clamp(&x, 1.0, 0.0));
    assert_eq!(m, "clamp: bounds [1, 0] are not an interval");
    let (_, m) = message(b.full(&[1], 0.5, DType::I64));
    assert_eq!(m, "full: 0.5 is not an integer that i64 holds exactly");
    let (_, m) = message(b.cast(&f32t(&b, &[f64::NAN], &[1]), DType::I64));
    assert!(m.starts_with("cast: "), "{m}");
    let (_, m) = message(b.policy_loss(&x, &x, &x, -0.1));
    assert_eq!(m, "policy_loss: eps must be finite and non-negative, got -0.1");
}
