//! The generation engine: batched sampling with a KV cache, shared prefill per prompt and
//! continuous batching, over any model that implements [`SlotDecoder`].
//!
//! - [`sampling`]: sampling as a pure function of (logits, [`SamplingParams`], a uniform draw),
//!   a host oracle in f64 and a batched backend version that agree up to a stated tolerance;
//! - [`stop`]: [`StopCriteria`] (EOS ids, stop strings kept in the text, length limits) and the
//!   per-completion [`StopChecker`];
//! - [`detok`]: the [`Detokenize`] callback and incremental detokenization;
//! - [`completion`]: [`Request`], [`Completion`] and the run's [`GenerationStats`];
//! - [`engine`]: [`Generator`], which drives a [`SlotDecoder`].
//!
//! ```
//! use orz_core::generation::{SamplingParams, sample_host, top_p_kept_mass};
//!
//! let logits = [2.0, 1.0, 0.0, -1.0];
//! assert_eq!(sample_host(&logits, &SamplingParams::greedy(), 0.7).unwrap(), 0);
//! let nucleus = SamplingParams::new(1.0, None, 0.9).unwrap();
//! assert!(top_p_kept_mass(&logits, &nucleus).unwrap() >= 0.9);
//! ```

pub mod completion;
pub mod decoder;
pub mod detok;
pub mod engine;
pub mod finish;
pub mod sampling;
pub mod stop;

pub use completion::{Completion, GenerationOutput, GenerationStats, Request};
pub use decoder::SlotDecoder;
pub use detok::{Detokenize, IncrementalText};
pub use engine::{EngineConfig, Generator, generate};
pub use finish::FinishReason;
pub use sampling::{
    Nucleus, SamplingParams, nucleus_device, nucleus_host, sample_device, sample_host, top_p_kept_mass,
};
pub use stop::{StopChecker, StopCriteria};
