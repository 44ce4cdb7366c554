//! Running one check: seeded proptest cases (shrinking on failure), panics turned into
//! failures, and the [`CheckOutcome`] that the macro asserts and the report prints.

use core::fmt;
use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use orz_core::backend::DType;
use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::tolerance::ErrorStats;

/// Cases a check draws unless it says otherwise: enough to hit broadcasting, ties and kinks,
/// few enough that the suite on the reference runs in seconds.
pub const DEFAULT_CASES: u32 = 32;

/// The levels of DESIGN.md's conformance suite, in the order a backend author climbs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// 1: every primitive, forward and gradient, and its errors on bad input.
    Primitives = 1,
    /// 2: every provided composite, the backend's method and the default body alike.
    Composites = 2,
    /// 3: PPO math (losses, whitening, aggregation, AdamW, clipping) against the host math.
    Ppo = 3,
    /// 4: the model (logits, packed = padded, KV-cache decode, gradients through the model).
    Model = 4,
    /// 5: sampling (same logits and draws give the same tokens, top-p mass, stops).
    Sampling = 5,
    /// 6: one full tiny ORZ iteration.
    Iteration = 6,
}

impl Level {
    /// All six levels, in order.
    pub const ALL: [Level; 6] =
        [Level::Primitives, Level::Composites, Level::Ppo, Level::Model, Level::Sampling, Level::Iteration];

    /// A short lowercase name, as in `"primitives"`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Primitives => "primitives",
            Level::Composites => "composites",
            Level::Ppo => "ppo",
            Level::Model => "model",
            Level::Sampling => "sampling",
            Level::Iteration => "iteration",
        }
    }
}

/// What one check found for one backend and dtype.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOutcome {
    /// The check's name, e.g. `"softmax"`.
    pub check: &'static str,
    /// The dtype it ran in.
    pub dtype: DType,
    /// Cases drawn (shrinking steps not counted).
    pub cases: u32,
    /// The largest errors over every compared value of every case run, shrinking included.
    pub stats: ErrorStats,
    /// The failure report (first bad index, both values, tolerance, shrunk input); `None` when
    /// every case passed.
    pub failure: Option<String>,
    /// What the check left uncompared and why, when it did (the report prints it under the row).
    pub note: Option<String>,
}

impl CheckOutcome {
    /// Whether every case passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// Panics with the full report unless the check passed (what the generated tests call).
    #[track_caller]
    pub fn assert_passed(&self) {
        if let Some(failure) = &self.failure {
            panic!("conformance check `{}` failed in {}:\n{failure}", self.check, self.dtype);
        }
    }
}

impl fmt::Display for CheckOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed() { "pass" } else { "FAIL" };
        write!(
            f,
            "{} [{}] {verdict}: {} cases, max abs {:.1e}, max rel {:.1e}",
            self.check, self.dtype, self.cases, self.stats.max_abs, self.stats.max_rel
        )?;
        if let Some(note) = &self.note {
            write!(f, "\nnote: {note}")?;
        }
        if let Some(failure) = &self.failure {
            write!(f, "\n{failure}")?;
        }
        Ok(())
    }
}

/// A fixed 32-byte ChaCha seed per (check, dtype): FNV-1a of the name, spread over the bytes.
fn seed(check: &str, dtype: DType) -> [u8; 32] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in check.bytes().chain(dtype.name().bytes()) {
        h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&h.rotate_left(17 * i as u32).to_le_bytes());
    }
    out
}

/// The panic payload as text.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_string())
}

/// Runs `case` on `cases` inputs drawn from `strategy` with a fixed seed derived from the check's
/// name and dtype. A case fails by returning `Err(report)` or by panicking; proptest then shrinks
/// the input, and the outcome carries the last report and the shrunk input. `case` records the
/// errors it measures in the [`ErrorStats`] it is given.
pub fn run_cases<S>(
    check: &'static str,
    dtype: DType,
    cases: u32,
    strategy: S,
    case: impl Fn(&S::Value, &mut ErrorStats) -> Result<(), String>,
) -> CheckOutcome
where
    S: Strategy,
    S::Value: fmt::Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        max_shrink_iters: 512,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed(check, dtype));
    let mut runner = TestRunner::new_with_rng(config, rng);
    let stats = RefCell::new(ErrorStats::default());
    let result = runner.run(&strategy, |value| {
        let mut local = ErrorStats::default();
        let outcome = catch_unwind(AssertUnwindSafe(|| case(&value, &mut local)));
        stats.borrow_mut().merge(&local);
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(report)) => Err(TestCaseError::fail(report)),
            Err(payload) => Err(TestCaseError::fail(format!("panicked: {}", panic_message(&*payload)))),
        }
    });
    let failure = match result {
        Ok(()) => None,
        Err(TestError::Fail(reason, value)) => Some(format!("{reason}\n  shrunk input: {value:?}")),
        Err(TestError::Abort(reason)) => Some(format!("aborted: {reason}")),
    };
    CheckOutcome { check, dtype, cases, stats: stats.into_inner(), failure, note: None }
}
