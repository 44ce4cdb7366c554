//! [`DataOrder`]: which training problems each iteration takes: a fresh seeded shuffle per
//! epoch, `rollout_batch_size` problems at a time, wrapping into the next epoch (ORZ shuffles its
//! dataset and draws `rollout_batch_size` prompts per iteration). Its cursor is part of a
//! checkpoint, so a resumed run takes exactly the prompts the uninterrupted run would.

use orz_core::rng::Rng;
use serde::{Deserialize, Serialize};

/// The position in the shuffled data: epoch and index within the epoch's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DataCursor {
    /// Completed passes over the data.
    pub epoch: u64,
    /// Problems of the current epoch already taken.
    pub position: usize,
}

/// A seeded, resumable order over `len` problems.
#[derive(Debug, Clone)]
pub struct DataOrder {
    seed: u64,
    len: usize,
    cursor: DataCursor,
    order: Vec<usize>,
}

impl DataOrder {
    /// The order over `len` problems for `seed`, at `cursor`.
    pub fn new(seed: u64, len: usize, cursor: DataCursor) -> DataOrder {
        let order = Self::epoch_order(seed, len, cursor.epoch);
        DataOrder { seed, len, cursor, order }
    }

    fn epoch_order(seed: u64, len: usize, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..len).collect();
        Rng::seed_from_u64(seed).fork(epoch).shuffle(&mut order);
        order
    }

    /// Where the next batch starts.
    pub fn cursor(&self) -> DataCursor {
        self.cursor
    }

    /// The indices of the next `n` problems (empty data gives an empty batch).
    pub fn next_batch(&mut self, n: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n && self.len > 0 {
            if self.cursor.position == self.len {
                self.cursor = DataCursor { epoch: self.cursor.epoch + 1, position: 0 };
                self.order = Self::epoch_order(self.seed, self.len, self.cursor.epoch);
            }
            out.push(self.order[self.cursor.position]);
            self.cursor.position += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_epoch_is_a_permutation_and_epochs_differ() {
        let mut o = DataOrder::new(7, 10, DataCursor::default());
        let (mut a, mut b) = (o.next_batch(10), o.next_batch(10));
        assert_ne!(a, b);
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, (0..10).collect::<Vec<_>>());
        assert_eq!(a, b);
        assert_eq!(o.cursor(), DataCursor { epoch: 1, position: 10 });
    }

    #[test]
    fn resuming_at_a_cursor_continues_the_same_sequence() {
        let mut full = DataOrder::new(3, 7, DataCursor::default());
        let all: Vec<usize> = (0..5).flat_map(|_| full.next_batch(4)).collect();
        let mut first = DataOrder::new(3, 7, DataCursor::default());
        let mut head: Vec<usize> = (0..2).flat_map(|_| first.next_batch(4)).collect();
        let mut resumed = DataOrder::new(3, 7, first.cursor());
        head.extend((0..3).flat_map(|_| resumed.next_batch(4)));
        assert_eq!(head, all);
        assert!(DataOrder::new(0, 0, DataCursor::default()).next_batch(3).is_empty());
    }
}
