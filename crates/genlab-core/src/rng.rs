//! Seeded random streams whose whole state is serialisable, so a checkpoint can carry them and a
//! resumed run draws exactly the numbers the uninterrupted run would have drawn.
//!
//! genlab draws its own noise (reparameterisation, binarisation, shuffles, parameter init) on the
//! host instead of using a backend's global RNG: backend RNGs are process-global (tests in parallel
//! threads would disturb each other) and differ between backends.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

/// A ChaCha8 stream. Streams for different purposes come from one seed via [`SeededRng::fork`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeededRng(ChaCha8Rng);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        SeededRng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// An independent stream for `purpose`, derived from `seed` (ChaCha's stream id keeps them apart).
    pub fn stream(seed: u64, purpose: u64) -> Self {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(purpose);
        SeededRng(r)
    }

    /// `n` draws from N(0, 1).
    pub fn normal_vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.0.sample::<f32, _>(StandardNormal)).collect()
    }

    /// `n` draws from U[0, 1).
    pub fn uniform_vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.0.gen::<f32>()).collect()
    }

    /// `n` draws from U[-bound, bound).
    pub fn symmetric_uniform_vec(&mut self, n: usize, bound: f32) -> Vec<f32> {
        (0..n).map(|_| self.0.gen_range(-bound..bound.max(f32::MIN_POSITIVE))).collect()
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.gen()
    }

    pub fn uniform(&mut self) -> f32 {
        self.0.gen()
    }

    /// A uniform index in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.0.gen_range(0..n)
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.0.gen_range(0..=i);
            v.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_json() {
        let mut a = SeededRng::new(7);
        a.normal_vec(13);
        let saved = serde_json::to_string(&a).unwrap();
        let mut b: SeededRng = serde_json::from_str(&saved).unwrap();
        assert_eq!(a.normal_vec(5), b.normal_vec(5));
    }

    #[test]
    fn streams_differ_and_normals_have_unit_variance() {
        let mut a = SeededRng::stream(1, 0);
        let mut b = SeededRng::stream(1, 1);
        assert_ne!(a.next_u64(), b.next_u64());
        let x = a.normal_vec(200_000);
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / x.len() as f64;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.01, "{mean} {var}");
    }
}
