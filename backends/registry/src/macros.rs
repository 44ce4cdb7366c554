//! The `registry!` macro: turns the table of [`crate::entries`] into [`crate::BackendKind`], its
//! entries and the function that opens one, each backend behind its cargo feature.

/// `Some(feature)`, or `None` for an entry with no feature.
macro_rules! optional_feature {
    () => {
        None
    };
    ($feature:literal) => {
        Some($feature)
    };
}

/// Expands the table of backends (see [`crate::entries`] for its shape).
macro_rules! registry {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident {
            feature: [$($feature:literal)?],
            open: $open:path,
            $($field:ident: $value:expr),* $(,)?
        }
    )*) => {
        /// A backend the registry knows, compiled in or not ([`BackendKind::ALL`]); parse one
        /// from its name (`"candle".parse()`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum BackendKind {
            $($(#[doc = $doc])* $variant,)*
        }

        /// Every backend of the table, in its order.
        pub(crate) const ALL: &[BackendKind] = &[$(BackendKind::$variant),*];

        impl BackendKind {
            /// Its entry in the table.
            pub fn entry(self) -> $crate::Entry {
                match self {
                    $(BackendKind::$variant => $crate::Entry {
                        feature: optional_feature!($($feature)?),
                        $($field: $value,)*
                    },)*
                }
            }

            /// Whether this build has it (its cargo feature is on, or it needs none).
            pub fn is_compiled(self) -> bool {
                match self {
                    $(BackendKind::$variant => cfg!(all($(feature = $feature)?)),)*
                }
            }
        }

        /// Opens `opened` (checked by [`BackendKind::check`]) and hands it to `visitor`.
        pub(crate) fn open_and_visit<V: $crate::BackendVisitor>(
            opened: $crate::Opened,
            visitor: V,
        ) -> Result<V::Output, $crate::Error> {
            match opened.kind {
                $(
                    #[cfg(all($(feature = $feature)?))]
                    BackendKind::$variant => Ok(visitor.visit($open(opened.device)?, opened)),
                    #[cfg(not(all($(feature = $feature)?)))]
                    BackendKind::$variant => Err($crate::Error::NotCompiled(opened.kind)),
                )*
            }
        }
    };
}
