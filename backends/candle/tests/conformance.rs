//! The conformance suite for candle on the CPU, in f32, bf16 and f16.

orz_conformance::conformance_tests!(candle_cpu, orz_candle::Candle::cpu, [F32, BF16, F16]);
