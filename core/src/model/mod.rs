//! The Qwen2 model, written once over [`Backend`](crate::backend::Backend): configuration,
//! parameter names (identical to Hugging Face's, so checkpoints move both ways), the policy
//! (transformer + LM head) and the critic (transformer + value head).
//!
//! - [`Qwen2`]: the backbone and its head's weight; built from named tensors
//!   ([`Qwen2::from_tensors`]) or a seeded random init ([`Qwen2::random`]); lists its
//!   parameters in spec order ([`Qwen2::parameters`], [`Qwen2::named_tensors`]).
//! - [`PackedBatch`]: the host-side packed (or padded) layout of a forward pass: tokens,
//!   positions restarting per sample, segment ids; and which position holds what.
//! - [`Policy`]: logits and selective log-probs of next tokens; KV-cache decoding through
//!   [`SlotDecoder`](crate::generation::SlotDecoder) with a [`KvCache`].
//! - [`Critic`]: values per position, aligned as ORZ (the value of a response token is taken at
//!   the position before it).
//!
//! Models hold their backend as an `Rc<B>`, so that a policy, a critic and the trainer can share
//! one backend (and its graph-recording switch).

pub mod config;
pub mod critic;
pub mod kv_cache;
pub mod packing;
pub mod policy;
pub mod qwen2;
pub mod spec;
pub mod weights;

pub use config::Qwen2Config;
pub use critic::Critic;
pub use kv_cache::KvCache;
pub use packing::{PackedBatch, SampleSpan, response_positions};
pub use policy::Policy;
pub use qwen2::Qwen2;
pub use spec::{Head, ParamSpec, VALUE_HEAD, parameter_specs};
pub use weights::{INIT_STD, value_head_std};
