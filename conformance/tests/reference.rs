//! The suite on the reference against itself, in f32 and bf16: the values agree trivially, but
//! every check runs end to end. The template for every backend: one line.

use orz_reference::Reference;

orz_conformance::conformance_tests!(reference, Reference::new, [F32, BF16]);
