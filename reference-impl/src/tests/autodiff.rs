//! autodiff tests.
