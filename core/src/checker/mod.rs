//! Answer extraction and mathematical equivalence checking.
//!
//! PLACEHOLDER (being replaced in this session by the real checker): signatures only, with
//! trivial bodies so that dependent modules compile.

use alloc::string::String;

/// ORZ's prediction extraction: inside the first `<answer>`...`</answer>` block, the content of
/// the last `\boxed{...}` (brace-balanced; `\fbox{...}` as a fallback); empty if there is none.
pub fn extract_answer(completion: &str) -> String {
    let _ = completion;
    String::new()
}

/// ORZ's reference extraction: the last `\boxed{...}` content if the reference has one,
/// otherwise the reference as is.
pub fn extract_reference(reference: &str) -> String {
    String::from(reference)
}

/// True if two extracted answers are equivalent (stage 1 string normalization, then stage 2
/// mathematical equality). The empty answer is never equivalent to anything.
pub fn is_equivalent(prediction: &str, reference: &str) -> bool {
    !prediction.is_empty() && prediction.trim() == reference.trim()
}
