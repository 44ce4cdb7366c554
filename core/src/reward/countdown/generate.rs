//! A seeded generator of Countdown instances that are solvable by construction.
//!
//! TinyZero trains on `Jiayi-Pan/Countdown-Tasks-3to4` (3 or 4 numbers, small targets); its own
//! `gen_dataset` draws the target and the numbers independently, so many of those instances have
//! no solution. This generator builds each instance from a random expression tree instead, so
//! that a solution (the *witness*) is known:
//!
//! 1. the count `k` is uniform in `min_numbers..=max_numbers` (default 3 or 4);
//! 2. the `k` numbers are independent and uniform in `min_number..=max_number` (default 1..=99),
//!    listed in the order drawn;
//! 3. while more than one value remains in the pool, two distinct pool entries are drawn
//!    uniformly (in order), and an operation uniformly among those that keep every intermediate
//!    a **positive integer**: `+` and `*` always, `-` when the two differ (larger minus smaller),
//!    `/` when the smaller divides the larger (larger over smaller); the result joins the pool;
//! 4. the last value is the target; if it lies outside `min_target..=max_target` (default
//!    1..=100) the attempt is thrown away and the next attempt draws everything again (up to
//!    `max_attempts`, then an error).
//!
//! So the distribution is that of the numbers of steps 1-2 conditioned on the random tree of
//! step 3 landing in the target range (rejection sampling): small targets and trees with `-`
//! and `/` are favoured over a uniform target, as with hand-made puzzles.
//!
//! Instance `i` of [`generate`] is drawn from `Rng::seed_from_u64(seed).fork(i)`, so it does not
//! depend on how many instances are asked for. The reference of an instance is its
//! [`CountdownProblem`] written `target=T;numbers=a,b,c` (what the [`Countdown`](super::Countdown)
//! reward reads); the question is TinyZero's wording ([`CountdownInstance::question`]).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{CountdownProblem, MAX_NUMBERS};
use crate::error::{Error, Result};
use crate::rng::Rng;

const OP: &str = "countdown generator";

/// TinyZero's `base` prompt template (`examples/data_preprocess/countdown.py`, `make_prefix`),
/// with [`QUESTION_SLOT`](crate::recipe::QUESTION_SLOT) where [`CountdownInstance::question`]
/// goes; usable as a [`RecipeConfig::prompt_template`](crate::recipe::RecipeConfig). It ends
/// with `<think>`, no newline after it.
pub const TINYZERO_PROMPT_TEMPLATE: &str = "A conversation between User and Assistant. The user asks a \
question, and the Assistant solves it. The assistant first thinks about the reasoning process in the mind \
and then provides the user with the answer.
User: {question}
Assistant: Let me solve this step by step.
<think>";

/// The distribution of generated instances (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GeneratorConfig {
    /// Fewest numbers per instance (at least 1).
    pub min_numbers: usize,
    /// Most numbers per instance (at most [`MAX_NUMBERS`]).
    pub max_numbers: usize,
    /// Smallest number (at least 1).
    pub min_number: u64,
    /// Largest number.
    pub max_number: u64,
    /// Smallest target (at least 1).
    pub min_target: i64,
    /// Largest target.
    pub max_target: i64,
    /// Attempts per instance before giving up with an error (at least 1).
    pub max_attempts: usize,
}

impl Default for GeneratorConfig {
    /// TinyZero-like: 3 or 4 numbers in 1..=99, a target in 1..=100, 10 000 attempts.
    fn default() -> Self {
        GeneratorConfig {
            min_numbers: 3,
            max_numbers: 4,
            min_number: 1,
            max_number: 99,
            min_target: 1,
            max_target: 100,
            max_attempts: 10_000,
        }
    }
}

impl GeneratorConfig {
    /// Checks the bounds, naming the bad field.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::invalid(OP, msg));
        if self.min_numbers == 0 || self.min_numbers > self.max_numbers || self.max_numbers > MAX_NUMBERS {
            return bad(format!(
                "need 1 <= min_numbers <= max_numbers <= {MAX_NUMBERS}, got {}..={}",
                self.min_numbers, self.max_numbers
            ));
        }
        if self.min_number == 0 || self.min_number > self.max_number {
            return bad(format!(
                "need 1 <= min_number <= max_number, got {}..={}",
                self.min_number, self.max_number
            ));
        }
        if self.min_target < 1 || self.min_target > self.max_target {
            return bad(format!(
                "need 1 <= min_target <= max_target, got {}..={}",
                self.min_target, self.max_target
            ));
        }
        if self.max_attempts == 0 {
            return bad("max_attempts must be >= 1, got 0".to_string());
        }
        Ok(())
    }
}

/// A generated instance: the problem and one expression that solves it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct CountdownInstance {
    /// The numbers (in the order drawn) and the target.
    pub problem: CountdownProblem,
    /// An equation using each number once that evaluates to the target, e.g. `(7 - 3) * 6`.
    pub witness: String,
}

impl CountdownInstance {
    /// TinyZero's question: `Using the numbers [3, 4, 5, 6], create an equation that equals 24.
    /// You can use basic arithmetic operations (+, -, *, /) and each number can only be used
    /// once. Show your work in <think> </think> tags. And return the final answer in <answer>
    /// </answer> tags, for example <answer> (1 + 2) / 3 </answer>.` (the numbers as a Python
    /// list prints them). Put it into [`TINYZERO_PROMPT_TEMPLATE`] (or ORZ's template).
    pub fn question(&self) -> String {
        let numbers: Vec<String> = self.problem.numbers().iter().map(|n| n.to_string()).collect();
        format!(
            "Using the numbers [{}], create an equation that equals {}. You can use basic arithmetic \
             operations (+, -, *, /) and each number can only be used once. Show your work in <think> \
             </think> tags. And return the final answer in <answer> </answer> tags, for example \
             <answer> (1 + 2) / 3 </answer>.",
            numbers.join(", "),
            self.problem.target()
        )
    }

    /// The reference the [`Countdown`](super::Countdown) reward reads: `target=T;numbers=a,b,c`.
    pub fn reference(&self) -> String {
        self.problem.to_string()
    }
}

/// `count` instances; instance `i` comes from `Rng::seed_from_u64(seed).fork(i)` (see the
/// [module docs](self)). Errors: a bad config, or an instance not found in `max_attempts`.
pub fn generate(config: &GeneratorConfig, seed: u64, count: usize) -> Result<Vec<CountdownInstance>> {
    config.validate()?;
    let root = Rng::seed_from_u64(seed);
    (0..count).map(|i| generate_one(config, &mut root.fork(i as u64))).collect()
}

/// One instance drawn from `rng` (see the [module docs](self)).
pub fn generate_one(config: &GeneratorConfig, rng: &mut Rng) -> Result<CountdownInstance> {
    config.validate()?;
    for _ in 0..config.max_attempts {
        if let Some(instance) = attempt(config, rng)? {
            return Ok(instance);
        }
    }
    Err(Error::invalid(
        OP,
        format!(
            "no instance with a target in {}..={} after {} attempts; widen the ranges",
            config.min_target, config.max_target, config.max_attempts
        ),
    ))
}

/// A uniform draw in `lo..=hi` (`lo <= hi`).
fn uniform_in(rng: &mut Rng, lo: u64, hi: u64) -> u64 {
    lo + rng.below((hi - lo).saturating_add(1))
}

/// One entry of the pool: a value and the expression that computes it.
struct Node {
    value: u64,
    expr: String,
    leaf: bool,
}

impl Node {
    /// The expression as an operand: parenthesized unless it is a single number.
    fn operand(&self) -> String {
        if self.leaf { self.expr.clone() } else { format!("({})", self.expr) }
    }
}

/// One attempt of steps 1-4: `Some` if the target lands in range.
fn attempt(config: &GeneratorConfig, rng: &mut Rng) -> Result<Option<CountdownInstance>> {
    let k = uniform_in(rng, config.min_numbers as u64, config.max_numbers as u64) as usize;
    let numbers: Vec<u64> = (0..k).map(|_| uniform_in(rng, config.min_number, config.max_number)).collect();
    let mut pool: Vec<Node> =
        numbers.iter().map(|&n| Node { value: n, expr: n.to_string(), leaf: true }).collect();
    while pool.len() > 1 {
        let i = rng.below(pool.len() as u64) as usize;
        let mut j = rng.below(pool.len() as u64 - 1) as usize;
        if j >= i {
            j += 1;
        }
        let (hi, lo) = (i.max(j), i.min(j));
        let b = pool.swap_remove(hi);
        let a = pool.swap_remove(lo);
        let (big, small) = if a.value >= b.value { (&a, &b) } else { (&b, &a) };
        let mut ops: Vec<char> = alloc::vec!['+', '*'];
        if big.value != small.value {
            ops.push('-');
        }
        if big.value.is_multiple_of(small.value) {
            ops.push('/');
        }
        let op = ops[rng.below(ops.len() as u64) as usize];
        let (value, x, y) = match op {
            '+' => (a.value.checked_add(b.value), &a, &b),
            '*' => (a.value.checked_mul(b.value), &a, &b),
            '-' => (Some(big.value - small.value), big, small),
            _ => (Some(big.value / small.value), big, small),
        };
        let Some(value) = value else { return Ok(None) }; // overflow: try again
        let expr = format!("{} {op} {}", x.operand(), y.operand());
        pool.push(Node { value, expr, leaf: false });
    }
    let Some(last) = pool.pop() else { return Ok(None) };
    let target = match i64::try_from(last.value) {
        Ok(t) if (config.min_target..=config.max_target).contains(&t) => t,
        _ => return Ok(None),
    };
    Ok(Some(CountdownInstance { problem: CountdownProblem::new(target, numbers)?, witness: last.expr }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::QUESTION_SLOT;
    use crate::reward::countdown::{CORRECT_SCORE, Countdown};
    use crate::reward::{FinishReason, Reward, RewardInput};
    use proptest::prelude::*;

    /// The witness, answered in TinyZero's layout after the TinyZero prompt, scored by the reward.
    fn witness_score(instance: &CountdownInstance) -> f64 {
        let prompt = TINYZERO_PROMPT_TEMPLATE.replace(QUESTION_SLOT, &instance.question());
        let completion = format!(" I found it. </think>\n<answer> {} </answer>", instance.witness);
        let reference = instance.reference();
        Countdown::new().score(&RewardInput::new(&prompt, &completion, FinishReason::Stop, &reference)).score
    }

    fn check_instance(config: &GeneratorConfig, instance: &CountdownInstance) {
        let p = &instance.problem;
        assert!((config.min_numbers..=config.max_numbers).contains(&p.numbers().len()), "{instance:?}");
        assert!(p.numbers().iter().all(|n| (config.min_number..=config.max_number).contains(n)));
        assert!((config.min_target..=config.max_target).contains(&p.target()), "{instance:?}");
        assert_eq!(CountdownProblem::parse(&instance.reference()).as_ref(), Ok(p));
        assert_eq!(witness_score(instance), CORRECT_SCORE, "{instance:?}");
    }

    #[test]
    fn golden_first_instance_of_seed_0() {
        // Regression golden: fixed by the algorithm of the module docs and xoshiro256++; a change
        // here changes every generated data set.
        let first = &generate(&GeneratorConfig::default(), 0, 1).unwrap()[0];
        assert_eq!(first.reference(), GOLDEN_REFERENCE);
        assert_eq!(first.witness, GOLDEN_WITNESS);
        check_instance(&GeneratorConfig::default(), first);
    }

    // (66 - 15) - (87 - 86) = 51 - 1 = 50, checked by hand.
    const GOLDEN_REFERENCE: &str = "target=50;numbers=15,87,66,86";
    const GOLDEN_WITNESS: &str = "(66 - 15) - (87 - 86)";

    #[test]
    fn same_seed_same_instances_and_prefix_stable() {
        let c = GeneratorConfig::default();
        let ten = generate(&c, 7, 10).unwrap();
        assert_eq!(ten, generate(&c, 7, 10).unwrap());
        assert_eq!(ten[..4], generate(&c, 7, 4).unwrap()[..]);
        assert_ne!(ten, generate(&c, 8, 10).unwrap());
        assert!(generate(&c, 7, 0).unwrap().is_empty());
    }

    #[test]
    fn question_is_tinyzero_wording() {
        let instance = CountdownInstance {
            problem: CountdownProblem::new(24, alloc::vec![3, 4, 5, 6]).unwrap(),
            witness: "(3 + 5 - 4) * 6".into(),
        };
        assert_eq!(
            instance.question(),
            "Using the numbers [3, 4, 5, 6], create an equation that equals 24. You can use basic \
             arithmetic operations (+, -, *, /) and each number can only be used once. Show your work \
             in <think> </think> tags. And return the final answer in <answer> </answer> tags, for \
             example <answer> (1 + 2) / 3 </answer>."
        );
        assert_eq!(instance.reference(), "target=24;numbers=3,4,5,6");
        assert_eq!(witness_score(&instance), CORRECT_SCORE);
        assert!(TINYZERO_PROMPT_TEMPLATE.ends_with("step by step.\n<think>"));
    }

    #[test]
    fn the_distribution_covers_counts_and_operations() {
        let c = GeneratorConfig::default();
        let all = generate(&c, 1, 400).unwrap();
        for k in [3, 4] {
            assert!(all.iter().any(|i| i.problem.numbers().len() == k), "no instance with {k} numbers");
        }
        for op in ['+', '-', '*', '/'] {
            assert!(all.iter().any(|i| i.witness.contains(op)), "no witness uses {op}");
        }
        let distinct: alloc::collections::BTreeSet<i64> = all.iter().map(|i| i.problem.target()).collect();
        assert!(distinct.len() > 50, "only {} distinct targets", distinct.len());
    }

    #[test]
    fn bad_configs_and_impossible_ranges_are_errors() {
        let d = GeneratorConfig::default();
        let cases = [
            (GeneratorConfig { min_numbers: 0, ..d }, "min_numbers"),
            (GeneratorConfig { min_numbers: 5, ..d }, "min_numbers"),
            (GeneratorConfig { max_numbers: MAX_NUMBERS + 1, ..d }, "max_numbers"),
            (GeneratorConfig { min_number: 0, ..d }, "min_number"),
            (GeneratorConfig { min_number: 100, ..d }, "min_number"),
            (GeneratorConfig { min_target: 0, ..d }, "min_target"),
            (GeneratorConfig { max_target: 0, ..d }, "min_target"),
            (GeneratorConfig { max_attempts: 0, ..d }, "max_attempts"),
        ];
        for (config, field) in cases {
            let err = generate(&config, 0, 1).unwrap_err().to_string();
            assert!(err.contains(field), "{field}: {err}");
        }
        // One number of at least 50 can never hit a target of at most 10.
        let impossible = GeneratorConfig {
            min_numbers: 1,
            max_numbers: 1,
            min_number: 50,
            max_target: 10,
            max_attempts: 20,
            ..d
        };
        let err = generate(&impossible, 0, 1).unwrap_err().to_string();
        assert!(err.contains("after 20 attempts"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn every_instance_is_solved_by_its_witness(seed in any::<u64>()) {
            let c = GeneratorConfig::default();
            for instance in generate(&c, seed, 8).unwrap() {
                check_instance(&c, &instance);
            }
        }

        #[test]
        fn other_ranges_stay_solvable(
            seed in any::<u64>(),
            min_numbers in 1usize..=6,
            extra in 0usize..=2,
            max_number in 1u64..=1000,
            max_target in 1i64..=1000,
        ) {
            let c = GeneratorConfig {
                min_numbers,
                max_numbers: min_numbers + extra,
                max_number,
                max_target,
                ..GeneratorConfig::default()
            };
            match generate(&c, seed, 3) {
                Ok(all) => all.iter().for_each(|i| check_instance(&c, i)),
                // Only a narrow range may run out of attempts, and then it says so.
                Err(e) => prop_assert!(e.to_string().contains("attempts"), "{e}"),
            }
        }
    }
}
