//! DAPO's rules for completions that run long (Yu et al. 2025, "DAPO", §3.4), both off by
//! default (ORZ has neither):
//!
//! - **overlong filtering** ([`TrainConfig::overlong_filter`]): samples cut at the length limit
//!   (`finish_reason = length`) are left out of the loss (they still count in the rollout's
//!   metrics), so that a reasoning chain that was merely cut short is not punished as wrong;
//! - **soft overlong punishment** ([`TrainConfig::overlong_soft_cache`] = `L_cache`): with
//!   `L_max` = `stop.max_new_tokens`, a response of `n` tokens gets
//!   `0` if `n <= L_max − L_cache`, `((L_max − L_cache) − n) / L_cache` (from 0 down to −1)
//!   up to `L_max`, added to its score ([`soft_overlong_penalty`]; DAPO: `L_max` 20,480,
//!   `L_cache` 4,096).

use alloc::vec::Vec;

use super::config::TrainConfig;
use super::rollout::Sample;
use crate::reward::FinishReason;
use crate::{Error, Result};

/// DAPO's soft overlong punishment of a response of `tokens` tokens, for a limit of `max`
/// tokens and a punishment interval of the last `cache` tokens (see the [module docs](self)).
pub fn soft_overlong_penalty(tokens: usize, max: usize, cache: usize) -> f64 {
    let start = max.saturating_sub(cache);
    if tokens <= start || cache == 0 {
        0.0
    } else if tokens <= max {
        (start as f64 - tokens as f64) / cache as f64
    } else {
        -1.0
    }
}

/// A sample's score with the soft overlong punishment of `config` added (the score itself
/// when it is off).
pub fn scored(config: &TrainConfig, score: f64, response_tokens: usize) -> f64 {
    match config.overlong_soft_cache {
        Some(cache) => score + soft_overlong_penalty(response_tokens, config.stop.max_new_tokens, cache),
        None => score,
    }
}

/// The samples the update trains on: all of them, or with overlong filtering those that
/// stopped. Errors when filtering leaves none.
pub fn trained_samples(config: &TrainConfig, samples: Vec<Sample>) -> Result<Vec<Sample>> {
    if !config.overlong_filter {
        return Ok(samples);
    }
    let total = samples.len();
    let kept: Vec<Sample> = samples.into_iter().filter(|s| s.finish_reason != FinishReason::Length).collect();
    if kept.is_empty() {
        return Err(Error::invalid(
            "overlong filter",
            alloc::format!("all {total} samples were cut at the length limit: nothing is left to train on"),
        ));
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_punishment_falls_linearly_over_the_cache_then_stays_at_minus_one() {
        // DAPO's figures: L_max 20480, L_cache 4096.
        let p = |n| soft_overlong_penalty(n, 20_480, 4_096);
        assert_eq!((p(0), p(16_384)), (0.0, 0.0));
        assert_eq!(p(16_384 + 1_024), -0.25);
        assert_eq!(p(20_480), -1.0);
        assert_eq!(p(30_000), -1.0);
        assert_eq!(soft_overlong_penalty(10, 8, 0), 0.0, "no cache: no punishment");
        for n in 16_384..20_480 {
            assert!(p(n + 1) <= p(n) && (-1.0..=0.0).contains(&p(n)), "monotone and bounded at {n}");
        }
    }
}
