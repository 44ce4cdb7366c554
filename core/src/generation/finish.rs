//! [`FinishReason`]: why the engine ended a completion.

use core::fmt;
use core::str::FromStr;

use crate::error::{Error, Result};

/// Why generation of a completion ended (vLLM's `finish_reason`); the reward reads it
/// ([`crate::reward::RewardInput`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum FinishReason {
    /// Stopped on EOS or a stop string (`stop`).
    Stop,
    /// Hit the token limit (`length`): the completion is truncated.
    Length,
}

impl FinishReason {
    /// The lowercase name, `"stop"` or `"length"`, as vLLM writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }

    /// True for [`FinishReason::Stop`].
    pub fn is_stop(self) -> bool {
        self == FinishReason::Stop
    }
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FinishReason {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "stop" => Ok(FinishReason::Stop),
            "length" => Ok(FinishReason::Length),
            other => Err(Error::invalid(
                "FinishReason::from_str",
                alloc::format!("expected `stop` or `length`, got {other:?}"),
            )),
        }
    }
}
