//! Answer extraction and mathematical equivalence checking.
