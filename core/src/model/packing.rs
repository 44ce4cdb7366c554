//! [`PackedBatch`]: the host-side layout of a forward pass over packed rows.
//!
//! A batch is `rows` rows of `seq_len` positions. Each row holds one or more samples (token
//! sequences) back to back, then padding up to the longest row:
//!
//! - **tokens** `[rows, seq_len]`: the samples' tokens; padding holds [`PAD_TOKEN`];
//! - **positions** `[rows, seq_len]`: the position of each token inside its own sample
//!   (restarting at 0 per sample, as ORZ packs), 0 on padding;
//! - **segments** `[rows, seq_len]`: the index of the sample inside its row (0, 1, ...), and
//!   [`PAD_SEGMENT`] on padding. Attention is causal and within one segment only
//!   ([`Backend::causal_attention`]), so a packed sample sees exactly what it would see alone,
//!   and no sample ever attends to or is attended by padding.
//!
//! The padded layout (one sample per row, right-padded) is the special case
//! [`PackedBatch::padded`]; [`PackedBatch::pack_greedy`] packs samples in order into rows of at
//! most `max_len` tokens.
//!
//! # Which positions mean what
//!
//! The model's output at position `t` predicts the token at `t + 1` of the same sample: the
//! log-prob of token `t + 1` and the value "before" token `t + 1` both live at position `t`
//! (ORZ's alignment). [`PackedBatch::next_tokens`] and [`PackedBatch::next_token_mask`] give
//! those targets; [`response_positions`] gives the positions that hold the log-probs and values
//! of a sample's response tokens.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use crate::backend::Backend;
use crate::{Error, Result};

/// The token id written at padding positions (any id in the vocabulary would do: padding is
/// masked out of attention and of every loss).
pub const PAD_TOKEN: u32 = 0;

/// The segment id of padding positions: a segment of its own, distinct from every sample's.
pub const PAD_SEGMENT: i64 = -1;

/// Where one sample sits in a [`PackedBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleSpan {
    /// The row holding the sample.
    pub row: usize,
    /// The position of its first token in that row.
    pub start: usize,
    /// Its number of tokens (at least 1).
    pub len: usize,
}

impl SampleSpan {
    /// The positions of the sample in its row.
    pub fn positions(&self) -> Range<usize> {
        self.start..self.start + self.len
    }
}

/// Host-side tokens, positions and segment ids of packed rows; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedBatch {
    rows: usize,
    seq_len: usize,
    tokens: Vec<u32>,
    positions: Vec<i64>,
    segments: Vec<i64>,
    samples: Vec<SampleSpan>,
}

impl PackedBatch {
    /// Packs `rows`, each a list of samples (token sequences), padded to the longest row.
    /// Samples are numbered row by row, in order ([`PackedBatch::samples`]). Errors: no rows,
    /// an empty sample (naming its row and index), or no token at all.
    pub fn pack<R: AsRef<[S]>, S: AsRef<[u32]>>(rows: &[R]) -> Result<PackedBatch> {
        const OP: &str = "packed batch";
        if rows.is_empty() {
            return Err(Error::Empty { op: OP, what: "rows" });
        }
        let mut seq_len = 0;
        for (r, row) in rows.iter().enumerate() {
            let row = row.as_ref();
            if let Some(i) = row.iter().position(|s| s.as_ref().is_empty()) {
                return Err(Error::invalid(OP, format!("sample {i} of row {r} is empty")));
            }
            seq_len = seq_len.max(row.iter().map(|s| s.as_ref().len()).sum::<usize>());
        }
        if seq_len == 0 {
            return Err(Error::Empty { op: OP, what: "tokens" });
        }
        let n = rows.len() * seq_len;
        let mut batch = PackedBatch {
            rows: rows.len(),
            seq_len,
            tokens: vec![PAD_TOKEN; n],
            positions: vec![0; n],
            segments: vec![PAD_SEGMENT; n],
            samples: Vec::new(),
        };
        for (r, row) in rows.iter().enumerate() {
            let mut start = 0;
            for (i, sample) in row.as_ref().iter().enumerate() {
                let sample = sample.as_ref();
                for (p, &tok) in sample.iter().enumerate() {
                    let at = r * seq_len + start + p;
                    batch.tokens[at] = tok;
                    batch.positions[at] = p as i64;
                    batch.segments[at] = i as i64;
                }
                batch.samples.push(SampleSpan { row: r, start, len: sample.len() });
                start += sample.len();
            }
        }
        Ok(batch)
    }

    /// The padded layout: one sample per row, right-padded to the longest sample.
    pub fn padded<S: AsRef<[u32]>>(samples: &[S]) -> Result<PackedBatch> {
        let rows: Vec<[&[u32]; 1]> = samples.iter().map(|s| [s.as_ref()]).collect();
        PackedBatch::pack(&rows)
    }

    /// Packs `samples` in order into rows of at most `max_len` tokens by the one greedy rule
    /// ([`greedy_packs`]): a sample goes into the current row if it fits, else it starts a new
    /// row. Errors: an empty sample or one longer than `max_len` (naming it).
    pub fn pack_greedy<S: AsRef<[u32]>>(samples: &[S], max_len: usize) -> Result<PackedBatch> {
        let lengths: Vec<usize> = samples.iter().map(|s| s.as_ref().len()).collect();
        let order: Vec<usize> = (0..samples.len()).collect();
        let rows: Vec<Vec<&[u32]>> = greedy_packs(&lengths, &order, max_len)?
            .into_iter()
            .map(|pack| pack.into_iter().map(|i| samples[i].as_ref()).collect())
            .collect();
        PackedBatch::pack(&rows)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Positions per row (the longest row's token count).
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// `[rows, seq_len]`, the shape of every per-position array of this batch.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.seq_len]
    }

    /// Token ids, row-major `[rows, seq_len]` ([`PAD_TOKEN`] on padding).
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Position of each token inside its sample, row-major (0 on padding).
    pub fn positions(&self) -> &[i64] {
        &self.positions
    }

    /// Segment ids, row-major: the sample's index in its row, [`PAD_SEGMENT`] on padding.
    pub fn segments(&self) -> &[i64] {
        &self.segments
    }

    /// Every sample's place, row by row and in order within a row.
    pub fn samples(&self) -> &[SampleSpan] {
        &self.samples
    }

    /// Whether position `at` (row-major index) holds a token of a sample, not padding.
    pub fn is_token(&self, at: usize) -> bool {
        self.segments.get(at).is_some_and(|&s| s != PAD_SEGMENT)
    }

    /// The next token of the same sample at each position, row-major `[rows, seq_len]`: the
    /// targets of [`super::Policy::selective_log_probs`]. [`PAD_TOKEN`] where there is none
    /// (a sample's last token, padding); see [`PackedBatch::next_token_mask`].
    pub fn next_tokens(&self) -> Vec<i64> {
        let mask = self.next_token_mask();
        (0..self.tokens.len())
            .map(|at| if mask[at] { i64::from(self.tokens[at + 1]) } else { i64::from(PAD_TOKEN) })
            .collect()
    }

    /// Where [`PackedBatch::next_tokens`] is meaningful: positions whose next position holds
    /// the next token of the same sample (every token but each sample's last).
    pub fn next_token_mask(&self) -> Vec<bool> {
        let mut mask = vec![false; self.tokens.len()];
        for s in &self.samples {
            let base = s.row * self.seq_len + s.start;
            mask[base..base + s.len - 1].fill(true);
        }
        mask
    }

    /// The token ids as an I64 tensor `[rows, seq_len]`.
    pub fn token_tensor<B: Backend + ?Sized>(&self, backend: &B) -> Result<B::Tensor> {
        let ids: Vec<i64> = self.tokens.iter().map(|&t| i64::from(t)).collect();
        backend.tensor_i64(&ids, &self.shape())
    }

    /// The segment ids as an I64 tensor `[rows, seq_len]`.
    pub fn segment_tensor<B: Backend + ?Sized>(&self, backend: &B) -> Result<B::Tensor> {
        backend.tensor_i64(&self.segments, &self.shape())
    }

    /// The next-token targets ([`PackedBatch::next_tokens`]) as an I64 tensor `[rows, seq_len]`.
    pub fn next_token_tensor<B: Backend + ?Sized>(&self, backend: &B) -> Result<B::Tensor> {
        backend.tensor_i64(&self.next_tokens(), &self.shape())
    }

    /// The per-response-token entries of sample `sample` from a row-major `[rows, seq_len]`
    /// array of per-position outputs (log-probs or values read back from the device), given
    /// the sample's prompt length: entry `j` is the output at the position before response
    /// token `j` ([`response_positions`]).
    pub fn response_entries<T: Copy>(
        &self,
        per_position: &[T],
        sample: usize,
        prompt_len: usize,
    ) -> Result<Vec<T>> {
        const OP: &str = "response entries";
        crate::error::check_len(
            OP,
            ("per_position", per_position.len()),
            ("rows * seq_len", self.tokens.len()),
        )?;
        let span = self.samples.get(sample).ok_or_else(|| {
            Error::invalid(
                OP,
                format!("sample {sample} does not exist (the batch has {})", self.samples.len()),
            )
        })?;
        let response_len = span.len.checked_sub(prompt_len).ok_or_else(|| {
            Error::invalid(
                OP,
                format!("prompt length {prompt_len} exceeds sample {sample}'s {} tokens", span.len),
            )
        })?;
        let range = response_positions(span.start, prompt_len, response_len)?;
        let base = span.row * self.seq_len;
        Ok(per_position[base + range.start..base + range.end].to_vec())
    }
}

/// The positions (in its row) holding the log-probs and values of a sample's response tokens,
/// for a sample starting at `sample_start` with a prompt of `prompt_len` tokens (at least 1)
/// followed by `response_len` response tokens: response token `j` sits at
/// `sample_start + prompt_len + j`, and its log-prob and its value (ORZ's critic alignment) are
/// the outputs at the position before it, `sample_start + prompt_len - 1 + j`.
pub fn response_positions(
    sample_start: usize,
    prompt_len: usize,
    response_len: usize,
) -> Result<Range<usize>> {
    if prompt_len == 0 {
        return Err(Error::invalid(
            "response positions",
            "the prompt must hold at least one token (the first response token is predicted from it)",
        ));
    }
    let first = sample_start + prompt_len - 1;
    Ok(first..first + response_len)
}

/// Greedy packing, the one rule every packer of orz-rs uses (ORZ
/// `_convert_prompts_outputs_to_batch_tensors_packing`): items of `lengths`, taken in `order`, go
/// into the current pack while the pack stays at most `max_len` tokens, else they open a new
/// pack. Returns the item indices of each pack. Errors: an unknown item, or one of length 0 or
/// longer than `max_len` (ORZ silently drops it; here it names the item).
pub fn greedy_packs(lengths: &[usize], order: &[usize], max_len: usize) -> Result<Vec<Vec<usize>>> {
    const OP: &str = "packing";
    let mut packs: Vec<Vec<usize>> = Vec::new();
    let mut used = 0;
    for &i in order {
        let len = *lengths.get(i).ok_or_else(|| {
            Error::invalid(OP, format!("item {i} does not exist ({} items)", lengths.len()))
        })?;
        if len == 0 || len > max_len {
            return Err(Error::invalid(
                OP,
                format!("sample {i} has {len} tokens; a pack holds 1 to {max_len}"),
            ));
        }
        match packs.last_mut() {
            Some(pack) if used + len <= max_len => pack.push(i),
            _ => {
                packs.push(vec![i]);
                used = 0;
            }
        }
        used += len;
    }
    Ok(packs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn packs_rows_with_restarting_positions_and_padding_segments() {
        let b = PackedBatch::pack(&[vec![vec![5, 6, 7], vec![8, 9]], vec![vec![3]]]).unwrap();
        assert_eq!(b.shape(), [2, 5]);
        assert_eq!(b.tokens(), &[5, 6, 7, 8, 9, 3, 0, 0, 0, 0]);
        assert_eq!(b.positions(), &[0, 1, 2, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(b.segments(), &[0, 0, 0, 1, 1, 0, -1, -1, -1, -1]);
        assert_eq!(b.samples()[1], SampleSpan { row: 0, start: 3, len: 2 });
        assert_eq!(b.next_tokens(), &[6, 7, 0, 9, 0, 0, 0, 0, 0, 0]);
        assert_eq!(b.next_token_mask(), &[true, true, false, true, false, false, false, false, false, false]);
        assert!(b.is_token(5) && !b.is_token(6) && !b.is_token(99));
    }

    #[test]
    fn padded_and_greedy_layouts() {
        let samples = [vec![1, 2, 3], vec![4], vec![5, 6]];
        let p = PackedBatch::padded(&samples).unwrap();
        assert_eq!(p.shape(), [3, 3]);
        assert_eq!(p.segments(), &[0, 0, 0, 0, -1, -1, 0, 0, -1]);
        let g = PackedBatch::pack_greedy(&samples, 4).unwrap();
        assert_eq!(g.shape(), [2, 4]);
        assert_eq!(g.samples()[1], SampleSpan { row: 0, start: 3, len: 1 });
        assert_eq!(g.samples()[2], SampleSpan { row: 1, start: 0, len: 2 });
        let err = PackedBatch::pack_greedy(&samples, 2).unwrap_err().to_string();
        assert!(err.contains("sample 0 has 3 tokens"), "{err}");
    }

    #[test]
    fn greedy_packs_fill_in_order() {
        let lengths = [3, 4, 2, 5, 1];
        assert_eq!(
            greedy_packs(&lengths, &[0, 1, 2, 3, 4], 7).unwrap(),
            vec![vec![0, 1], vec![2, 3], vec![4]]
        );
        assert_eq!(
            greedy_packs(&lengths, &[4, 3, 2, 1, 0], 6).unwrap(),
            vec![vec![4, 3], vec![2, 1], vec![0]]
        );
        let err = greedy_packs(&lengths, &[3], 4).unwrap_err();
        assert!(err.to_string().contains("sample 3 has 5 tokens"), "{err}");
        assert!(greedy_packs(&lengths, &[9], 4).is_err());
        assert!(greedy_packs(&[0], &[0], 4).is_err());
    }

    #[test]
    fn bad_layouts_are_named() {
        let none: [Vec<Vec<u32>>; 0] = [];
        assert!(PackedBatch::pack(&none).unwrap_err().to_string().contains("rows"));
        let err = PackedBatch::pack(&[vec![vec![1u32]], vec![vec![2], vec![]]]).unwrap_err().to_string();
        assert!(err.contains("sample 1 of row 1 is empty"), "{err}");
        let empty_rows: [Vec<Vec<u32>>; 2] = [vec![], vec![]];
        assert!(PackedBatch::pack(&empty_rows).unwrap_err().to_string().contains("tokens"));
    }

    #[test]
    fn response_entries_take_the_position_before_each_response_token() {
        // Row 0: sample 0 = prompt [1, 2] + response [3, 4, 5]; sample 1 = prompt [6] + [7].
        let b = PackedBatch::pack(&[vec![vec![1, 2, 3, 4, 5], vec![6, 7]]]).unwrap();
        let per_pos: Vec<usize> = (0..b.seq_len()).collect();
        assert_eq!(b.response_entries(&per_pos, 0, 2).unwrap(), vec![1, 2, 3]);
        assert_eq!(b.response_entries(&per_pos, 1, 1).unwrap(), vec![5]);
        assert_eq!(response_positions(5, 1, 1).unwrap(), 5..6);
        // The next-token targets at those positions are exactly the response tokens.
        let targets = b.next_tokens();
        assert_eq!(b.response_entries(&targets, 0, 2).unwrap(), vec![3, 4, 5]);
        assert!(response_positions(0, 0, 3).is_err());
        assert!(b.response_entries(&per_pos, 0, 6).unwrap_err().to_string().contains("prompt length 6"));
        assert!(b.response_entries(&per_pos, 2, 1).unwrap_err().to_string().contains("sample 2"));
        assert!(b.response_entries(&per_pos[1..], 0, 1).is_err());
    }
}
