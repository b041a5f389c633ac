//! The batch loader: a seeded shuffle of a subset of indices, `drop_last`, and a state (epoch,
//! position, the shuffle stream at the epoch's start) that a checkpoint stores, so a resumed run
//! sees exactly the batches the uninterrupted run would have seen.

use genlab_core::SeededRng;
use serde::{Deserialize, Serialize};

/// Where a loader is: enough to rebuild its epoch order and continue from the next batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoaderState {
    pub epoch: u64,
    pub position: usize,
    /// The shuffle stream as it was when this epoch's order was drawn.
    pub epoch_rng: SeededRng,
}

#[derive(Debug, Clone)]
pub struct BatchLoader {
    indices: Vec<usize>,
    batch_size: usize,
    shuffle: bool,
    drop_last: bool,
    order: Vec<usize>,
    state: LoaderState,
    next_rng: SeededRng,
}

impl BatchLoader {
    /// A loader over `indices` (the dataset rows of one split). `batch_size` must be at least 1 and,
    /// with `drop_last`, at most `indices.len()`; the caller checks this against the config.
    pub fn new(indices: Vec<usize>, batch_size: usize, shuffle: bool, drop_last: bool, seed: u64) -> Self {
        assert!(batch_size >= 1, "batch size should have been checked to be at least 1");
        let mut l = BatchLoader {
            indices,
            batch_size,
            shuffle,
            drop_last,
            order: Vec::new(),
            state: LoaderState { epoch: 0, position: 0, epoch_rng: SeededRng::stream(seed, 0x10ad) },
            next_rng: SeededRng::new(0),
        };
        l.draw_order();
        l
    }

    fn draw_order(&mut self) {
        let mut rng = self.state.epoch_rng.clone();
        self.order = self.indices.clone();
        if self.shuffle {
            rng.shuffle(&mut self.order);
        }
        self.next_rng = rng;
    }

    /// Batches in one epoch.
    pub fn batches_per_epoch(&self) -> usize {
        if self.drop_last {
            self.indices.len() / self.batch_size
        } else {
            self.indices.len().div_ceil(self.batch_size)
        }
    }

    /// The dataset rows of the next batch; starts a new epoch (a new shuffle) when this one is done.
    pub fn next_batch(&mut self) -> Vec<usize> {
        let remaining = self.order.len() - self.state.position;
        let exhausted = remaining == 0 || (self.drop_last && remaining < self.batch_size);
        if exhausted {
            self.state = LoaderState { epoch: self.state.epoch + 1, position: 0, epoch_rng: self.next_rng.clone() };
            self.draw_order();
        }
        let end = (self.state.position + self.batch_size).min(self.order.len());
        let batch = self.order[self.state.position..end].to_vec();
        self.state.position = end;
        batch
    }

    pub fn state(&self) -> &LoaderState {
        &self.state
    }

    /// Continues from a saved state. Fails when the state cannot belong to this loader's data
    /// (its position lies beyond the end of an epoch).
    pub fn restore(&mut self, state: LoaderState) -> Result<(), String> {
        if state.position > self.indices.len() {
            return Err(format!(
                "the saved loader position {} is beyond the {} examples of this dataset: the data changed since the checkpoint",
                state.position,
                self.indices.len()
            ));
        }
        self.state = state;
        self.draw_order();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_every_index_once_per_epoch_and_drops_the_tail() {
        let mut l = BatchLoader::new((0..10).collect(), 3, true, true, 5);
        assert_eq!(l.batches_per_epoch(), 3);
        let mut seen: Vec<usize> = (0..3).flat_map(|_| l.next_batch()).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 9);
        assert_eq!(l.next_batch().len(), 3);
        assert_eq!(l.state().epoch, 1);
        let mut keep = BatchLoader::new((0..10).collect(), 4, false, false, 5);
        assert_eq!([keep.next_batch().len(), keep.next_batch().len(), keep.next_batch().len()], [4, 4, 2]);
    }

    #[test]
    fn restored_loader_continues_identically() {
        let mut a = BatchLoader::new((0..17).collect(), 4, true, false, 9);
        for _ in 0..6 {
            a.next_batch();
        }
        let saved = serde_json::to_string(a.state()).unwrap();
        let mut b = BatchLoader::new((0..17).collect(), 4, true, false, 9);
        b.restore(serde_json::from_str(&saved).unwrap()).unwrap();
        for _ in 0..12 {
            assert_eq!(a.next_batch(), b.next_batch());
        }
    }

    #[test]
    fn a_state_from_other_data_is_refused() {
        let mut big = BatchLoader::new((0..100).collect(), 30, true, false, 1);
        for _ in 0..3 {
            big.next_batch();
        }
        let mut small = BatchLoader::new((0..50).collect(), 30, true, false, 1);
        let e = small.restore(big.state().clone()).unwrap_err();
        assert!(e.contains("position 90") && e.contains("50 examples"), "{e}");
    }

    #[test]
    fn seeds_give_different_orders() {
        let mut a = BatchLoader::new((0..100).collect(), 100, true, false, 1);
        let mut b = BatchLoader::new((0..100).collect(), 100, true, false, 2);
        assert_ne!(a.next_batch(), b.next_batch());
    }
}
