//! composites tests.
