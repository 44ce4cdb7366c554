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
//!
//! ```
//! use std::rc::Rc;
//! use orz_core::backend::{Backend, DType};
//! use orz_core::generation::SlotDecoder;
//! use orz_core::model::{Critic, PackedBatch, Policy, Qwen2Config};
//! use orz_core::rng::Rng;
//! use orz_reference::Reference;
//!
//! # fn main() -> orz_core::Result<()> {
//! let (backend, config) = (Rc::new(Reference::new()), Qwen2Config::tiny_test());
//! let mut rng = Rng::seed_from_u64(0);
//! let policy = Policy::random(Rc::clone(&backend), &config, DType::F32, &mut rng)?;
//! let critic = Critic::random(Rc::clone(&backend), &config, DType::F32, &mut rng)?;
//! // Two samples (prompt 2 tokens + response) packed into one row.
//! let batch = PackedBatch::pack(&[vec![vec![5, 6, 7, 8], vec![9, 10, 11]]])?;
//! let logp = backend.to_host_f64(&policy.next_token_log_probs(&batch)?)?;
//! let values = backend.to_host_f64(&critic.values(&batch)?)?;
//! // Per response token of sample 1: log-probs and values from the position before it.
//! assert_eq!(batch.response_entries(&logp, 1, 2)?.len(), 1);
//! assert_eq!(batch.response_entries(&values, 1, 2)?, vec![values[5]]);
//! // Generation: prefill once, share it, decode both slots.
//! let mut cache = policy.new_cache(2, 16)?;
//! policy.prefill(&mut cache, 0, &[5, 6])?;
//! policy.copy_slot(&mut cache, 0, 1)?;
//! let logits = policy.decode(&mut cache, &[0, 1], &[7, 12])?;
//! assert_eq!(backend.shape(&logits), vec![2, config.vocab_size]);
//! # Ok(())
//! # }
//! ```

pub mod backprop;
pub mod config;
pub mod critic;
pub mod kv_cache;
pub mod packing;
pub mod policy;
pub mod qwen2;
pub mod spec;
pub mod weights;

pub use backprop::{Backprop, ChunkLoss, HeadLoss, MemoryOptions, ResidentUnits, UnitStore};
pub use config::Qwen2Config;
pub use critic::Critic;
pub use kv_cache::KvCache;
pub use packing::{PackedBatch, SampleSpan, response_positions};
pub use policy::Policy;
pub use qwen2::Qwen2;
pub use spec::{Head, ParamSpec, VALUE_HEAD, parameter_specs};
pub use weights::{INIT_STD, value_head_std};
