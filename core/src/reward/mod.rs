//! The reward algebra: a reward over (prompt, completion, finish reason, reference) and its
//! combinators, with the ORZ math, Countdown and format rewards.
