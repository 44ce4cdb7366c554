//! Level 1, bad input: shape mismatches, wrong dtypes and out-of-range indices give an `Err` of
//! the right kind whose message names the op (and the shapes), never a panic.

use std::panic::{AssertUnwindSafe, catch_unwind};

use orz_core::backend::{Backend, DType};
use orz_core::{Error, Result};
use proptest::prelude::*;

use crate::ErrorStats;
use crate::runner::{CheckOutcome, panic_message, run_cases};

/// The kind of error a bad call must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Shape,
    DType,
    Index,
}

/// Runs `call` (catching panics) and checks that it fails with an error of `kind` whose message
/// contains every string of `names` (the op, the shapes).
fn expect_error<T>(
    what: &str,
    kind: Kind,
    names: &[String],
    call: impl FnOnce() -> Result<T>,
) -> core::result::Result<(), String> {
    let result = catch_unwind(AssertUnwindSafe(call))
        .map_err(|p| format!("{what}: panicked instead of returning an error: {}", panic_message(&*p)))?;
    let Err(e) = result else { return Err(format!("{what}: succeeded, an error was expected")) };
    let right_kind = match kind {
        Kind::Shape => matches!(e, Error::Shape { .. }),
        Kind::DType => matches!(e, Error::DType { .. }),
        Kind::Index => matches!(e, Error::IndexOutOfRange { .. }),
    };
    let message = e.to_string();
    if !right_kind {
        return Err(format!("{what}: expected a {kind:?} error, got {e:?}"));
    }
    match names.iter().find(|n| !message.contains(n.as_str())) {
        Some(missing) => Err(format!("{what}: the message `{message}` does not name `{missing}`")),
        None => Ok(()),
    }
}

fn zeros<B: Backend>(b: &B, shape: &[usize], dtype: DType) -> Result<B::Tensor> {
    b.zeros(shape, dtype)
}

/// Shape mismatches in `add`, `matmul`, `cat` and `reshape` are `Error::Shape` naming the op and
/// both shapes.
pub fn check_errors_shape<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    let dims = (1..=4usize, 1..=4usize, 1..=4usize, 1..=3usize);
    run_cases("errors_shape", dtype, 8, dims, |&(m, k, n, extra), _: &mut ErrorStats| {
        let (x, y) = (vec![m, k], vec![k + extra, n]);
        let names =
            |op: &str, a: &[usize], c: &[usize]| vec![op.to_string(), format!("{a:?}"), format!("{c:?}")];
        expect_error("matmul", Kind::Shape, &names("matmul", &x, &y), || {
            b.matmul(&zeros(b, &x, dtype)?, &zeros(b, &y, dtype)?)
        })?;
        let (p, q) = (vec![m, k + 1], vec![k + 1 + extra]);
        expect_error("add", Kind::Shape, &names("add", &p, &q), || {
            b.add(&zeros(b, &p, dtype)?, &zeros(b, &q, dtype)?)
        })?;
        let z = vec![m + extra, k];
        expect_error("cat", Kind::Shape, &names("cat", &x, &z), || {
            b.cat(&[zeros(b, &x, dtype)?, zeros(b, &z, dtype)?], 1)
        })?;
        let to = vec![m * k + extra];
        expect_error("reshape", Kind::Shape, &names("reshape", &x, &to), || {
            b.reshape(&zeros(b, &x, dtype)?, &to)
        })
    })
}

/// Out-of-range indices in `index_select`, `gather` and `embedding`, and targets outside the
/// vocabulary in `selective_log_prob`, are `Error::IndexOutOfRange` naming the index (and the op
/// for the first two).
pub fn check_errors_index<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    run_cases(
        "errors_index",
        dtype,
        8,
        (1..=4usize, 1..=4usize, 0..3i64, any::<bool>()),
        |&(rows, cols, over, neg), _: &mut ErrorStats| {
            let bad = if neg { -1 - over } else { rows as i64 + over };
            let names = |op: &str| vec![op.to_string(), bad.to_string()];
            let x = || zeros(b, &[rows, cols], dtype);
            expect_error("index_select", Kind::Index, &names("index_select"), || {
                b.index_select(&x()?, 0, &b.tensor_i64(&[0, bad], &[2])?)
            })?;
            expect_error("gather", Kind::Index, &names("gather"), || {
                b.gather(&x()?, 0, &b.tensor_i64(&vec![bad; cols], &[1, cols])?)
            })?;
            expect_error("embedding", Kind::Index, &[bad.to_string()], || {
                b.embedding(&x()?, &b.tensor_i64(&[bad], &[1])?)
            })?;
            // A target outside the vocabulary (the last dimension), in the last row.
            let bad_target = if neg { -1 - over } else { cols as i64 + over };
            let targets: Vec<i64> = (0..rows).map(|r| if r + 1 == rows { bad_target } else { 0 }).collect();
            expect_error("selective_log_prob", Kind::Index, &[bad_target.to_string()], || {
                b.selective_log_prob(&x()?, &b.tensor_i64(&targets, &[rows])?)
            })
        },
    )
}

/// Wrong dtypes (mixed float operands, arithmetic on I64, float indices, a float condition) are
/// `Error::DType` naming the op.
pub fn check_errors_dtype<B: Backend>(b: &B, dtype: DType) -> CheckOutcome {
    let other = if dtype == DType::F32 { DType::BF16 } else { DType::F32 };
    run_cases("errors_dtype", dtype, 8, 1..=4usize, |&n, _: &mut ErrorStats| {
        let names = |op: &str| vec![op.to_string()];
        let x = || zeros(b, &[n], dtype);
        expect_error("add", Kind::DType, &names("add"), || b.add(&x()?, &zeros(b, &[n], other)?))?;
        expect_error("matmul", Kind::DType, &names("matmul"), || {
            b.matmul(&zeros(b, &[n, n], dtype)?, &zeros(b, &[n, n], other)?)
        })?;
        expect_error("exp", Kind::DType, &names("exp"), || b.exp(&zeros(b, &[n], DType::I64)?))?;
        expect_error("index_select", Kind::DType, &names("index_select"), || {
            b.index_select(&x()?, 0, &x()?)
        })?;
        expect_error("where_", Kind::DType, &names("where_"), || b.where_(&x()?, &x()?, &x()?))
    })
}
