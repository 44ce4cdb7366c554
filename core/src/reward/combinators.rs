//! Reward combinators: sum, scale, gate on the finish reason, clip and a format bonus.
//!
//! Each combinator keeps the label of its inner (first) reward, except the gate, which labels
//! a truncated completion [`label::TRUNCATED`]. Names compose, e.g.
//! `clip(0.5 * gate_on_stop(answer_correct), 0, 1)`. Constructors that take a number reject
//! non-finite values, so a combinator of finite rewards stays finite.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::{BoxedReward, Reward, RewardInput, RewardOutcome, label};
use crate::error::{Error, Result};

fn require_finite(op: &'static str, what: &str, x: f64) -> Result<()> {
    if x.is_finite() { Ok(()) } else { Err(Error::invalid(op, format!("`{what}` must be finite, got {x}"))) }
}

/// `a + b`, labelled by `a`.
#[derive(Debug, Clone)]
pub struct Plus<A, B> {
    a: A,
    b: B,
    name: String,
}

impl<A: Reward, B: Reward> Plus<A, B> {
    /// The sum of two rewards.
    pub fn new(a: A, b: B) -> Self {
        let name = format!("{} + {}", a.name(), b.name());
        Plus { a, b, name }
    }
}

impl<A: Reward, B: Reward> Reward for Plus<A, B> {
    fn score(&self, input: &RewardInput<'_>) -> RewardOutcome {
        let a = self.a.score(input);
        RewardOutcome::new(a.score + self.b.score(input).score, a.label)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// The sum of any number of boxed rewards, labelled by the first (0 and
/// [`label::EMPTY_SUM`] when there is none).
pub struct Sum {
    parts: Vec<BoxedReward>,
    name: String,
}

impl Sum {
    /// The sum of `parts`, in order.
    pub fn new(parts: Vec<BoxedReward>) -> Self {
        let names: Vec<&str> = parts.iter().map(|p| p.name()).collect();
        let name = format!("sum({})", names.join(", "));
        Sum { parts, name }
    }
}

impl fmt::Debug for Sum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sum").field("name", &self.name).finish()
    }
}

impl Reward for Sum {
    fn score(&self, input: &RewardInput<'_>) -> RewardOutcome {
        let mut outcomes = self.parts.iter().map(|p| p.score(input));
        match outcomes.next() {
            None => RewardOutcome::new(0.0, label::EMPTY_SUM),
            Some(first) => {
                RewardOutcome::new(outcomes.fold(first.score, |acc, o| acc + o.score), first.label)
            }
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// `factor * r`.
#[derive(Debug, Clone)]
pub struct Scaled<R> {
    inner: R,
    factor: f64,
    name: String,
}

impl<R: Reward> Scaled<R> {
    /// `factor * inner`; an error if `factor` is not finite.
    pub fn new(inner: R, factor: f64) -> Result<Self> {
        require_finite("Scaled::new", "factor", factor)?;
        let name = format!("{factor} * {}", inner.name());
        Ok(Scaled { inner, factor, name })
    }
}

impl<R: Reward> Reward for Scaled<R> {
    fn score(&self, input: &RewardInput<'_>) -> RewardOutcome {
        let o = self.inner.score(input);
        RewardOutcome::new(self.factor * o.score, o.label)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// `r` where the completion stopped (`stop`); 0 labelled [`label::TRUNCATED`] where it hit the
/// length limit, without evaluating `r`.
#[derive(Debug, Clone)]
pub struct GateOnStop<R> {
    inner: R,
    name: String,
}

impl<R: Reward> GateOnStop<R> {
    /// Gates `inner` on the `stop` finish reason.
    pub fn new(inner: R) -> Self {
        let name = format!("gate_on_stop({})", inner.name());
        GateOnStop { inner, name }
    }
}

impl<R: Reward> Reward for GateOnStop<R> {
    fn score(&self, input: &RewardInput<'_>) -> RewardOutcome {
        if input.finish_reason.is_stop() {
            self.inner.score(input)
        } else {
            RewardOutcome::new(0.0, label::TRUNCATED)
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// `r` clamped to `[lo, hi]`.
#[derive(Debug, Clone)]
pub struct Clipped<R> {
    inner: R,
    lo: f64,
    hi: f64,
    name: String,
}

impl<R: Reward> Clipped<R> {
    /// Clamps `inner` to `[lo, hi]`; an error unless both bounds are finite and `lo <= hi`.
    pub fn new(inner: R, lo: f64, hi: f64) -> Result<Self> {
        require_finite("Clipped::new", "lo", lo)?;
        require_finite("Clipped::new", "hi", hi)?;
        if lo > hi {
            return Err(Error::invalid("Clipped::new", format!("lo = {lo} exceeds hi = {hi}")));
        }
        let name = format!("clip({}, {lo}, {hi})", inner.name());
        Ok(Clipped { inner, lo, hi, name })
    }
}

impl<R: Reward> Reward for Clipped<R> {
    fn score(&self, input: &RewardInput<'_>) -> RewardOutcome {
        let o = self.inner.score(input);
        RewardOutcome::new(o.score.clamp(self.lo, self.hi), o.label)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

/// `r + bonus` where a format predicate holds, else `r`.
#[derive(Clone)]
pub struct FormatBonus<R, P> {
    inner: R,
    bonus: f64,
    predicate: P,
    name: String,
}

impl<R: Reward, P: Fn(&RewardInput<'_>) -> bool> FormatBonus<R, P> {
    /// Adds `bonus` to `inner` where `predicate` holds (named `predicate_name` in the reward's
    /// name); an error if `bonus` is not finite.
    pub fn new(inner: R, bonus: f64, predicate_name: &str, predicate: P) -> Result<Self> {
        require_finite("FormatBonus::new", "bonus", bonus)?;
        let name = format!("{} + {bonus} * [{predicate_name}]", inner.name());
        Ok(FormatBonus { inner, bonus, predicate, name })
    }
}

impl<R: Reward, P: Fn(&RewardInput<'_>) -> bool> Reward for FormatBonus<R, P> {
    fn score(&self, input: &RewardInput<'_>) -> RewardOutcome {
        let o = self.inner.score(input);
        let bonus = if (self.predicate)(input) { self.bonus } else { 0.0 };
        RewardOutcome::new(o.score + bonus, o.label)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::FinishReason;
    use alloc::boxed::Box;
    use alloc::vec;
    use proptest::prelude::*;

    /// A constant reward for the algebra tests.
    #[derive(Debug, Clone, Copy)]
    struct Const(f64);

    impl Reward for Const {
        fn score(&self, _: &RewardInput<'_>) -> RewardOutcome {
            RewardOutcome::new(self.0, "const")
        }
        fn name(&self) -> &str {
            "const"
        }
    }

    fn input(stop: bool) -> RewardInput<'static> {
        let fr = if stop { FinishReason::Stop } else { FinishReason::Length };
        RewardInput::new("p", "c", fr, "r")
    }

    fn s<R: Reward>(r: &R, stop: bool) -> f64 {
        r.score(&input(stop)).score
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn names_compose() {
        let r = Const(1.0).gate_on_stop().scaled(0.5).unwrap().clipped(0.0, 1.0).unwrap();
        assert_eq!(r.name(), "clip(0.5 * gate_on_stop(const), 0, 1)");
        assert_eq!(Const(1.0).plus(Const(2.0)).name(), "const + const");
        assert_eq!(Sum::new(vec![Const(1.0).boxed(), Const(2.0).boxed()]).name(), "sum(const, const)");
    }

    #[test]
    fn constructors_reject_non_finite_and_inverted_bounds() {
        assert!(Const(1.0).scaled(f64::NAN).is_err());
        assert!(Const(1.0).scaled(f64::INFINITY).is_err());
        assert!(Const(1.0).clipped(1.0, 0.0).is_err());
        assert!(Const(1.0).clipped(f64::NAN, 0.0).is_err());
        assert!(Const(1.0).clipped(0.0, f64::INFINITY).is_err());
        assert!(Const(1.0).with_format_bonus(f64::NAN, "p", |_| true).is_err());
        assert!(Const(1.0).clipped(0.5, 0.5).is_ok());
    }

    #[test]
    fn gate_labels_truncated_and_keeps_inner_label_on_stop() {
        let g = Const(3.0).gate_on_stop();
        assert_eq!(g.score(&input(false)), RewardOutcome::new(0.0, label::TRUNCATED));
        assert_eq!(g.score(&input(true)), RewardOutcome::new(3.0, "const"));
    }

    #[test]
    fn empty_sum_is_zero() {
        let e = Sum::new(vec![]);
        assert_eq!(e.score(&input(true)), RewardOutcome::new(0.0, label::EMPTY_SUM));
        assert_eq!(e.name(), "sum()");
    }

    #[test]
    fn format_bonus_reads_the_input() {
        let r = Const(1.0).with_format_bonus(0.25, "has_x", |i| i.completion.contains('x')).unwrap();
        assert_eq!(r.score(&RewardInput::new("", "x", FinishReason::Stop, "")).score, 1.25);
        assert_eq!(r.score(&RewardInput::new("", "y", FinishReason::Stop, "")).score, 1.0);
    }

    #[test]
    fn boxed_combinators_nest() {
        let inner: BoxedReward = Box::new(Const(2.0).gate_on_stop());
        let r = inner.scaled(2.0).unwrap();
        assert_eq!(s(&r, true), 4.0);
        assert_eq!(s(&r, false), 0.0);
    }

    fn val() -> impl Strategy<Value = f64> {
        -1e6f64..1e6
    }

    proptest! {
        #[test]
        fn plus_is_commutative_and_sum_folds(a in val(), b in val(), c in val(), stop: bool) {
            prop_assert_eq!(s(&Const(a).plus(Const(b)), stop), s(&Const(b).plus(Const(a)), stop));
            let sum = Sum::new(vec![Const(a).boxed(), Const(b).boxed(), Const(c).boxed()]);
            prop_assert_eq!(s(&sum, stop), s(&Const(a).plus(Const(b)).plus(Const(c)), stop));
        }

        #[test]
        fn scale_laws(a in val(), b in val(), k in -100.0f64..100.0, m in -100.0f64..100.0, stop: bool) {
            prop_assert_eq!(s(&Const(a).scaled(1.0).unwrap(), stop), a);
            prop_assert_eq!(s(&Const(a).scaled(0.0).unwrap(), stop), 0.0);
            let twice = Const(a).scaled(k).unwrap().scaled(m).unwrap();
            prop_assert!(close(s(&twice, stop), s(&Const(a).scaled(k * m).unwrap(), stop)));
            let distributed = Const(a).scaled(k).unwrap().plus(Const(b).scaled(k).unwrap());
            prop_assert!(close(s(&Const(a).plus(Const(b)).scaled(k).unwrap(), stop), s(&distributed, stop)));
        }

        #[test]
        fn clip_laws(a in val(), lo in -10.0f64..10.0, width in 0.0f64..10.0, stop: bool) {
            let hi = lo + width;
            let c = Const(a).clipped(lo, hi).unwrap();
            let v = s(&c, stop);
            prop_assert!(lo <= v && v <= hi);
            prop_assert_eq!(s(&c.clone().clipped(lo, hi).unwrap(), stop), v);
            if lo <= a && a <= hi {
                prop_assert_eq!(v, a);
            }
        }

        #[test]
        fn gate_laws(a in val(), k in -100.0f64..100.0, stop: bool) {
            let g = Const(a).gate_on_stop();
            prop_assert_eq!(s(&g, stop), if stop { a } else { 0.0 });
            prop_assert_eq!(s(&g.clone().gate_on_stop(), stop), s(&g, stop));
            let scaled_then_gated = Const(a).scaled(k).unwrap().gate_on_stop();
            prop_assert_eq!(s(&scaled_then_gated, stop), s(&g.scaled(k).unwrap(), stop));
        }

        #[test]
        fn format_bonus_law(a in val(), bonus in -1.0f64..1.0, holds: bool, stop: bool) {
            let r = Const(a).with_format_bonus(bonus, "p", move |_| holds).unwrap();
            prop_assert_eq!(s(&r, stop), a + if holds { bonus } else { 0.0 });
        }
    }
}
