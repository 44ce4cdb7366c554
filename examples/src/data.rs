//! Training and evaluation data: ORZ's JSON formats, and the in-memory [`Problem`] every task
//! (ORZ math, Countdown, the tiny default) is turned into.

/// One question with its reference answer, whatever file or generator it came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// The question, inserted into the recipe's prompt template.
    pub question: String,
    /// The reference answer the reward compares against.
    pub answer: String,
}
