//! The Qwen2 model, written once over [`Backend`](crate::backend::Backend): configuration,
//! parameter names (identical to Hugging Face's, so checkpoints move both ways), the policy
//! (transformer + LM head) and the critic (transformer + value head).

pub mod config;
pub mod spec;

pub use config::Qwen2Config;
pub use spec::{Head, ParamSpec, VALUE_HEAD, parameter_specs};
