//! Tests of `orz_core::generation` on the reference backend: sampling (host oracle against the
//! batched device version), and the engine driving a mock `SlotDecoder`.

mod engine;
mod mock;
mod sampling;
