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
    /// Poisson sampling at this rate in place of shuffled batches (see [`BatchLoader::to_poisson`]).
    poisson: Option<f64>,
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
            poisson: None,
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

    /// Switches to Poisson sampling, as DP-SGD's accounting assumes (Opacus's
    /// `UniformWithReplacementSampler`): each batch holds every index independently with
    /// probability `rate`, so batch sizes vary around `rate` times the indices. The state's
    /// `epoch` then counts batches drawn and `epoch_rng` is the sampling stream.
    pub fn to_poisson(&mut self, rate: f64) {
        self.poisson = Some(rate);
    }

    /// Poisson sampling at batch size / indices ([`BatchLoader::to_poisson`]); returns the
    /// number of indices.
    pub fn sample_poisson(&mut self) -> usize {
        let n = self.indices.len();
        self.to_poisson(self.batch_size as f64 / n.max(1) as f64);
        n
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
        if let Some(rate) = self.poisson {
            let rng = &mut self.state.epoch_rng;
            // A uniform double from the top 53 bits, so the rate is not rounded to a float's 24.
            let batch = self
                .indices
                .iter()
                .copied()
                .filter(|_| ((rng.next_u64() >> 11) as f64) < rate * (1u64 << 53) as f64)
                .collect();
            self.state.epoch += 1;
            return batch;
        }
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
        if self.poisson.is_none() {
            self.draw_order();
        }
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

    /// Poisson batches: each index in with probability q (the mean size within 5 standard errors
    /// over 400 batches, every index drawn about equally), ascending, and a restored loader
    /// continues with the same batches.
    #[test]
    fn poisson_batches_sample_each_index_at_the_rate() {
        let (n, q, draws) = (1000usize, 0.03, 400);
        let mut l = BatchLoader::new((0..n).collect(), 30, true, true, 4);
        l.to_poisson(q);
        let mut counts = vec![0usize; n];
        let mut total = 0usize;
        for _ in 0..draws {
            let b = l.next_batch();
            assert!(b.windows(2).all(|w| w[0] < w[1]));
            total += b.len();
            b.iter().for_each(|&i| counts[i] += 1);
        }
        let mean = total as f64 / draws as f64;
        let se = (n as f64 * q * (1.0 - q) / draws as f64).sqrt();
        assert!((mean - n as f64 * q).abs() < 5.0 * se, "mean batch {mean}");
        let halves = [counts[..n / 2].iter().sum::<usize>(), counts[n / 2..].iter().sum::<usize>()];
        assert!((halves[0] as f64 - halves[1] as f64).abs() < 5.0 * (total as f64).sqrt(), "{halves:?}");
        let saved = serde_json::to_string(l.state()).unwrap();
        let mut m = BatchLoader::new((0..n).collect(), 30, true, true, 4);
        m.to_poisson(q);
        m.restore(serde_json::from_str(&saved).unwrap()).unwrap();
        for _ in 0..5 {
            assert_eq!(l.next_batch(), m.next_batch());
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
