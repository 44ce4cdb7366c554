//! Recipe steps 5 and 8, the advantage phase: the configured [`AdvantageEstimator`] over the
//! experience, then ORZ's whitening over every response token of the iteration, as
//! [`Advantages`].

use alloc::format;
use alloc::vec::Vec;

use super::experience::Experience;
use crate::ppo::estimator::{AdvantageEstimator, EstimatorInput};
use crate::ppo::whitening::{WhiteningConvention, whiten};
use crate::{Error, Result};

/// The advantage phase's output: per sample, the advantage of each response token (whitened
/// when configured) and, for estimators with a critic, the return (never whitened).
#[derive(Debug, Clone, PartialEq)]
pub struct Advantages {
    /// Per sample, the advantage of each response token.
    pub advantages: Vec<Vec<f64>>,
    /// Per sample, the critic's target of each response token (`None` without a critic).
    pub returns: Option<Vec<Vec<f64>>>,
}

/// Recipe steps 5 and 8: `estimator` over the experience's scores (and values), then, when
/// `normalize`, whitening over every response token of the iteration with ORZ's biased
/// convention ([`WhiteningConvention::OrzBiased`]). Errors: the estimator's, and an estimator
/// with a critic that gives no returns (or one without that gives some).
pub fn compute_advantages(
    experience: &Experience,
    estimator: &dyn AdvantageEstimator,
    normalize: bool,
) -> Result<Advantages> {
    let lengths = experience.response_lengths();
    let (scores, prompts) = (experience.scores(), experience.prompts());
    let values: Option<Vec<f64>> = experience.values.as_ref().map(|v| v.concat());
    let input = EstimatorInput {
        scores: &scores,
        prompts: &prompts,
        response_lengths: &lengths,
        values: values.as_deref(),
    };
    input.validate()?;
    let estimate = estimator.estimate(&input)?;
    let name = estimator.name();
    if estimate.advantages.len() != input.tokens() {
        return Err(Error::invalid(
            "advantages",
            format!(
                "`{name}` gave {} advantages for {} response tokens",
                estimate.advantages.len(),
                input.tokens()
            ),
        ));
    }
    match (estimator.uses_critic(), estimate.returns.is_some()) {
        (true, false) => {
            return Err(Error::invalid("advantages", format!("`{name}` uses a critic but gave no returns")));
        }
        (false, true) => {
            return Err(Error::invalid("advantages", format!("`{name}` uses no critic but gave returns")));
        }
        _ => {}
    }
    let advantages = if normalize {
        whiten(&estimate.advantages, WhiteningConvention::OrzBiased, true)?
    } else {
        estimate.advantages
    };
    let returns = estimate.returns.map(|r| split(&r, &lengths, name)).transpose()?;
    Ok(Advantages { advantages: split(&advantages, &lengths, name)?, returns })
}

/// Cuts a flat per-token list into one list per sample.
fn split(flat: &[f64], lengths: &[usize], estimator: &str) -> Result<Vec<Vec<f64>>> {
    if flat.len() != lengths.iter().sum::<usize>() {
        return Err(Error::invalid(
            "advantages",
            format!(
                "`{estimator}` gave {} entries for {} response tokens",
                flat.len(),
                lengths.iter().sum::<usize>()
            ),
        ));
    }
    let mut start = 0;
    Ok(lengths
        .iter()
        .map(|&len| {
            let part = flat[start..start + len].to_vec();
            start += len;
            part
        })
        .collect())
}
