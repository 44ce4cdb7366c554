//! The conformance suite for candle on the CPU, in f32, bf16 and f16; with the `cuda` feature,
//! also on CUDA device 0 in f32 and bf16 (a GPU machine: without a device these tests fail with
//! the error `Candle::cuda` returns).

orz_conformance::conformance_tests!(candle_cpu, orz_candle::Candle::cpu, [F32, BF16, F16]);

#[cfg(feature = "cuda")]
fn cuda0() -> orz_candle::Candle {
    match orz_candle::Candle::cuda(0) {
        Ok(b) => b,
        Err(e) => panic!("the CUDA conformance tests need a CUDA device: {e}"),
    }
}

#[cfg(feature = "cuda")]
orz_conformance::conformance_tests!(candle_cuda, cuda0, [F32, BF16]);
