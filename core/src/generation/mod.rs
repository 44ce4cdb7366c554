//! The generation engine: batched sampling with a KV cache, shared prefill per prompt and
//! continuous batching, over any model that implements [`SlotDecoder`].

pub mod decoder;

pub use decoder::SlotDecoder;
