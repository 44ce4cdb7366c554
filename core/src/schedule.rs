//! Learning-rate schedules, as functions of the optimizer step (counting from 0; each model
//! counts its own steps).
//!
//! ORZ: linear warmup from 0 over 50 steps, multiplier `k / 50` at step `k`, so step 0 has
//! learning rate 0 and step 50 the full rate, then constant ([`LrSchedule::WarmupConstant`]).
//! PyTorch/HF warmup schedulers usually start at step 1 (their first optimizer step already
//! has `1 / warmup` of the rate). The 32B paper run adds an annealing stage that decays the
//! policy LR linearly to 3e-7 over 100 steps ([`LrSchedule::LinearDecay`]; not in ORZ's
//! scripts, so its exact endpoints are ours). Cosine with warmup is offered as an option.

use num_traits::Float;

/// ORZ's warmup length in optimizer steps (every preset).
pub const ORZ_WARMUP_STEPS: usize = 50;
/// ORZ's policy learning rate.
pub const ORZ_POLICY_LR: f64 = 1e-6;
/// ORZ's critic learning rate.
pub const ORZ_CRITIC_LR: f64 = 5e-6;
/// The policy learning rate the 32B annealing stage decays to.
pub const ORZ_32B_ANNEAL_FLOOR: f64 = 3e-7;
/// Length of the 32B annealing stage in optimizer steps.
pub const ORZ_32B_ANNEAL_STEPS: usize = 100;

/// A learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum LrSchedule {
    /// ORZ: `peak · min(1, k / warmup_steps)` at step `k` (`warmup_steps = 0`: constant).
    WarmupConstant {
        /// Rate after warmup.
        peak: f64,
        /// Warmup length in steps.
        warmup_steps: usize,
    },
    /// Linear from `start` at step 0 to `end` at step `steps`, then `end` (the 32B annealing
    /// stage: `start` = 1e-6, `end` = 3e-7, `steps` = 100).
    LinearDecay {
        /// Rate at step 0.
        start: f64,
        /// Rate from step `steps` on.
        end: f64,
        /// Decay length in steps.
        steps: usize,
    },
    /// Linear warmup from 0 as ORZ's, then a half cosine from `peak` at step `warmup_steps` to
    /// `floor` at step `total_steps`, then `floor` (HF `get_cosine_schedule_with_warmup` has
    /// floor 0).
    WarmupCosine {
        /// Rate at the end of warmup.
        peak: f64,
        /// Rate from `total_steps` on.
        floor: f64,
        /// Warmup length in steps.
        warmup_steps: usize,
        /// Step at which the cosine reaches `floor`.
        total_steps: usize,
    },
}

impl LrSchedule {
    /// ORZ's policy schedule: warmup over 50 steps to 1e-6, then constant.
    pub const ORZ_POLICY: LrSchedule =
        LrSchedule::WarmupConstant { peak: ORZ_POLICY_LR, warmup_steps: ORZ_WARMUP_STEPS };
    /// ORZ's critic schedule: warmup over 50 steps to 5e-6, then constant.
    pub const ORZ_CRITIC: LrSchedule =
        LrSchedule::WarmupConstant { peak: ORZ_CRITIC_LR, warmup_steps: ORZ_WARMUP_STEPS };
    /// The 32B annealing stage: 1e-6 decaying linearly to 3e-7 over 100 steps.
    pub const ORZ_32B_ANNEAL: LrSchedule = LrSchedule::LinearDecay {
        start: ORZ_POLICY_LR,
        end: ORZ_32B_ANNEAL_FLOOR,
        steps: ORZ_32B_ANNEAL_STEPS,
    };

    /// The highest learning rate of the schedule (for summaries).
    pub fn peak(&self) -> f64 {
        match *self {
            LrSchedule::WarmupConstant { peak, .. } | LrSchedule::WarmupCosine { peak, .. } => peak,
            LrSchedule::LinearDecay { start, end, .. } => start.max(end),
        }
    }

    /// The learning rate of optimizer step `step` (counting from 0).
    pub fn lr(&self, step: usize) -> f64 {
        match *self {
            LrSchedule::WarmupConstant { peak, warmup_steps } => peak * warmup(step, warmup_steps),
            LrSchedule::LinearDecay { start, end, steps } => start + (end - start) * progress(step, steps),
            LrSchedule::WarmupCosine { peak, floor, warmup_steps, total_steps } => {
                if step < warmup_steps {
                    return peak * warmup(step, warmup_steps);
                }
                let t = progress(step - warmup_steps, total_steps.saturating_sub(warmup_steps));
                let half_cosine = 0.5 * (1.0 + Float::cos(core::f64::consts::PI * t));
                floor + (peak - floor) * half_cosine
            }
        }
    }
}

/// `min(1, k / n)`, 1 when `n` is 0.
fn progress(k: usize, n: usize) -> f64 {
    if k >= n { 1.0 } else { k as f64 / n as f64 }
}

/// ORZ's warmup multiplier at step `k` (from 0): `k / n`, reaching 1 at `k = n`.
fn warmup(k: usize, n: usize) -> f64 {
    progress(k, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orz_warmup_from_zero() {
        // ORZ_RECIPE.md "Learning rate": multiplier k/50 at step k, from 0.
        let s = LrSchedule::ORZ_POLICY;
        assert_eq!(s.lr(0), 0.0);
        assert_eq!(s.lr(25), 0.5e-6);
        assert_eq!(s.lr(50), 1e-6);
        assert_eq!(s.lr(10_000), 1e-6);
        assert_eq!(LrSchedule::WarmupConstant { peak: 2.0, warmup_steps: 0 }.lr(0), 2.0);
    }

    #[test]
    fn anneal_and_cosine() {
        let a = LrSchedule::ORZ_32B_ANNEAL;
        assert_eq!(a.lr(0), 1e-6);
        assert!((a.lr(50) - 6.5e-7).abs() < 1e-20);
        assert_eq!(a.lr(100), 3e-7);
        assert_eq!(a.lr(1000), 3e-7);
        let c = LrSchedule::WarmupCosine { peak: 1.0, floor: 0.1, warmup_steps: 10, total_steps: 110 };
        assert_eq!(c.lr(0), 0.0);
        assert_eq!(c.lr(10), 1.0);
        assert!((c.lr(60) - 0.55).abs() < 1e-12);
        assert!((c.lr(110) - 0.1).abs() < 1e-12);
        assert!((c.lr(500) - 0.1).abs() < 1e-12);
    }
}
