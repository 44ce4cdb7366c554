//! The reference's operations, by family. Each is a plain loop over row-major f64 values that
//! records its vector-Jacobian product as a closure over snapshots of its inputs.

pub(crate) mod elementwise;
pub(crate) mod index;
pub(crate) mod layout;
pub(crate) mod linalg;
pub(crate) mod reduce;
