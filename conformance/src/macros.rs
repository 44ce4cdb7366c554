//! [`conformance_tests!`](crate::conformance_tests): every check as a `#[test]`, for one backend,
//! in one line.

/// Instantiates every registered check as a `#[test]` for a backend, per dtype:
///
/// ```ignore
/// orz_conformance::conformance_tests!(reference, orz_reference::Reference::new, [F32, BF16]);
/// ```
///
/// generates `mod reference { mod F32 { #[test] fn check_softmax() { .. } .. } mod BF16 { .. } }`;
/// each test builds the backend with the constructor (any expression callable with no
/// arguments, evaluated in the scope of the invocation), runs the generic check in
/// `DType::<name>` and panics with the check's report (first bad index, both values, tolerance,
/// shrunk input) when it fails. Run one with `cargo test reference::BF16::check_softmax`.
#[macro_export]
macro_rules! conformance_tests {
    ($module:ident, $ctor:expr, [$($dtype:ident),+ $(,)?]) => {
        #[allow(non_snake_case)]
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::__with_checks!(__conformance_dtypes!(($ctor) [$($dtype),+]));
        }
    };
}

/// One module per dtype (recursing over the dtypes so that the two lists do not nest).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_dtypes {
    ((($ctor:expr) [$dtype:ident $(, $rest:ident)*]) $($checks:tt)*) => {
        #[allow(non_snake_case)]
        mod $dtype {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_checks!(($ctor, $dtype) $($checks)*);
        }
        $crate::__conformance_dtypes!((($ctor) [$($rest),*]) $($checks)*);
    };
    ((($ctor:expr) []) $($checks:tt)*) => {};
}

/// One `#[test]` per check.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_checks {
    (($ctor:expr, $dtype:ident) $($level:ident: [$($module:ident :: $check:ident),* $(,)?]),* $(,)?) => {
        $($(
            #[test]
            fn $check() {
                let backend = ($ctor)();
                $crate::checks::$module::$check(&backend, $crate::__dtype!($dtype)).assert_passed();
            }
        )*)*
    };
}

/// `F32` → `orz_core::backend::DType::F32`.
#[doc(hidden)]
#[macro_export]
macro_rules! __dtype {
    ($dtype:ident) => {
        $crate::__private::DType::$dtype
    };
}
