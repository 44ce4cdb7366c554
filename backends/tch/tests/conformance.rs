//! The conformance suite for the libtorch backend on the CPU, in f32 and bf16.

use orz_tch::Tch;

orz_conformance::conformance_tests!(tch_cpu, Tch::cpu, [F32, BF16]);
