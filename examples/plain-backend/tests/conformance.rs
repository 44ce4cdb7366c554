//! The conformance suite certifies the example backend against the reference in f32, bf16 and
//! f16 (every check passes in each): the plain kernels (forward only) with core's tape
//! (autodiff) and core's default composites.

orz_conformance::conformance_tests!(plain_cpu, orz_plain_backend::Plain::default, [F32, BF16, F16]);
