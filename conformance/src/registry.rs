//! The one list of checks, by level, shared by [`all_checks`] (the report) and
//! [`crate::conformance_tests!`] (one `#[test]` per check and dtype).

use orz_core::backend::{Backend, DType};

use crate::runner::{CheckOutcome, Level};

/// One registered check: its name, its level and the generic function instantiated for `B`.
pub struct Check<B: Backend> {
    /// The check's name, e.g. `"softmax"` (its function is `check_softmax`).
    pub name: &'static str,
    /// Its level.
    pub level: Level,
    /// The check itself.
    pub run: fn(&B, DType) -> CheckOutcome,
}

impl<B: Backend> Check<B> {
    /// Runs the check on `backend` in `dtype`.
    pub fn run(&self, backend: &B, dtype: DType) -> CheckOutcome {
        (self.run)(backend, dtype)
    }
}

/// Calls the macro `$callback` with every check, grouped by level:
/// `$callback!(($($args)*) Level: [module::function, ...], ...)`. The single source of the list.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_checks {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! { ($($args)*)
            Primitives: [
                primitives::check_host_transfer, primitives::check_autodiff,
                primitives::check_add, primitives::check_sub, primitives::check_mul, primitives::check_div,
                primitives::check_maximum, primitives::check_minimum,
                primitives::check_neg, primitives::check_exp, primitives::check_log, primitives::check_sqrt,
                primitives::check_sigmoid, primitives::check_tanh, primitives::check_powf,
                primitives::check_affine, primitives::check_clamp,
                primitives::check_eq, primitives::check_gt, primitives::check_ge, primitives::check_where,
                primitives::check_sum, primitives::check_max, primitives::check_cumsum, primitives::check_sort,
                primitives::check_cast,
                layout::check_reshape, layout::check_transpose, layout::check_narrow, layout::check_cat,
                layout::check_index_select, layout::check_gather, layout::check_write_slice,
                layout::check_matmul,
                errors::check_errors_shape, errors::check_errors_index, errors::check_errors_dtype,
            ],
            Composites: [
                composites::check_softmax, composites::check_log_softmax, composites::check_logsumexp,
                composites::check_mean, composites::check_masked_sum, composites::check_masked_mean,
                composites::check_silu, composites::check_rms_norm, composites::check_rotary_embedding,
                composites::check_linear, composites::check_attention, composites::check_causal_attention,
                composites::check_selective_log_prob, composites::check_embedding, composites::check_helpers,
            ],
            Ppo: [
                ppo::check_policy_loss, ppo::check_value_loss, ppo::check_whitening, ppo::check_aggregation,
                ppo::check_adamw, ppo::check_clip_grad_norm,
            ],
            Model: [
                model::check_model_logits, model::check_packed_equals_padded,
                model::check_kv_decode_equals_forward, model::check_value_head,
                training::check_model_ppo_gradients, training::check_model_lean_gradients,
                training::check_adamw_step,
            ],
            Sampling: [
                sampling::check_sampling_same_tokens, sampling::check_top_p_mass,
                engine::check_stop_handling, engine::check_generation_deterministic,
            ],
            Iteration: [iteration::check_ppo_iteration_updates, iteration::check_ppo_iteration_rollout],
        }
    };
}

/// Builds the registry from the list of [`__with_checks`].
#[doc(hidden)]
#[macro_export]
macro_rules! __registry {
    (($b:ty) $($level:ident: [$($module:ident :: $check:ident),* $(,)?]),* $(,)?) => {
        vec![$($($crate::registry::Check::<$b> {
            name: $crate::registry::strip_prefix(stringify!($check)),
            level: $crate::Level::$level,
            run: $crate::checks::$module::$check::<$b>,
        },)*)*]
    };
}

/// `"check_softmax"` → `"softmax"`.
#[doc(hidden)]
pub fn strip_prefix(function: &'static str) -> &'static str {
    function.strip_prefix("check_").unwrap_or(function)
}

/// Every check, by level (1 to 6), in the order the report prints them.
pub fn all_checks<B: Backend>() -> Vec<Check<B>> {
    crate::__with_checks!(__registry!(B))
}
