//! A green-list watermark for sampled text (Kirchenbauer et al. 2023, "A Watermark for Large Language
//! Models", https://arxiv.org/abs/2301.10226): at each step a key and the previous token split the
//! vocabulary into a green fraction `gamma` and the rest, and `delta` is added to the green tokens'
//! logits before sampling. A reader with the key counts green tokens; without a watermark each is
//! green with probability `gamma`, so the count's z-score tells marked text from unmarked.
//!
//! As in the paper, each context's green list is exactly `floor(gamma V)` of the `V` tokens: the
//! first ones of a permutation of the vocabulary keyed by the key and the previous token (here
//! the tokens ordered by a keyed hash). A hash per (context, token) alone would make each pair
//! green with probability `gamma`, but the fraction of green pairs a given key draws over a small
//! vocabulary (65 characters) strays from `gamma` enough to shift every score. The reader scores each
//! distinct (previous, token) pair once (the paper's detector with repeated bigrams ignored): text
//! that repeats a phrase does not pile up evidence that is one coin flip counted many times.

use std::collections::{HashMap, HashSet};

/// The watermark's key and strength over a vocabulary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GreenList {
    pub key: u64,
    /// Fraction of the vocabulary that is green in each context (the paper uses 0.25 and 0.5).
    pub gamma: f64,
    /// Added to the green tokens' logits (the paper uses 1 to 10; 2 is its usual setting).
    pub delta: f32,
    pub vocab: usize,
}

/// What a reader found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// Distinct (previous, token) pairs scored.
    pub scored: usize,
    pub green: usize,
    /// `(green - g n) / sqrt(n g (1 - g))` with `g` the green fraction `floor(gamma V) / V`.
    pub z: f64,
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl GreenList {
    /// Tokens green in each context.
    pub fn green_size(&self) -> usize {
        (self.gamma * self.vocab as f64) as usize
    }

    /// The green fraction the z-score tests against.
    pub fn fraction(&self) -> f64 {
        self.green_size() as f64 / self.vocab as f64
    }

    /// Which tokens are green after `previous`.
    pub fn green(&self, previous: u32) -> Vec<bool> {
        let context = mix(self.key ^ mix(u64::from(previous) + 1));
        let mut order: Vec<(u64, u32)> = (0..self.vocab as u32).map(|t| (mix(context ^ u64::from(t)), t)).collect();
        order.sort_unstable();
        let mut green = vec![false; self.vocab];
        for &(_, t) in &order[..self.green_size()] {
            green[t as usize] = true;
        }
        green
    }

    /// Adds `delta` to the logits of the tokens green after `previous`.
    pub fn bias(&self, previous: u32, logits: &mut [f32]) {
        for (logit, green) in logits.iter_mut().zip(self.green(previous)) {
            if green {
                *logit += self.delta;
            }
        }
    }

    /// Scores a token sequence (the first token only as the context of the second); tokens
    /// outside the vocabulary count as not green.
    pub fn detect(&self, tokens: &[u32]) -> Detection {
        let pairs: HashSet<(u32, u32)> = tokens.windows(2).map(|w| (w[0], w[1])).collect();
        let mut by_context: HashMap<u32, Vec<u32>> = HashMap::new();
        for &(p, t) in &pairs {
            by_context.entry(p).or_default().push(t);
        }
        let green: usize = by_context
            .iter()
            .map(|(&p, next)| {
                let list = self.green(p);
                next.iter().filter(|&&t| list.get(t as usize).copied().unwrap_or(false)).count()
            })
            .sum();
        let (n, g) = (pairs.len() as f64, self.fraction());
        let z = if pairs.is_empty() || g <= 0.0 || g >= 1.0 {
            0.0
        } else {
            (green as f64 - g * n) / (n * g * (1.0 - g)).sqrt()
        };
        Detection { scored: pairs.len(), green, z }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::distributions::{Distribution, WeightedIndex};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const VOCAB: usize = 65;

    #[test]
    fn a_quarter_of_the_vocabulary_is_green_in_each_context() {
        let list = GreenList { key: 42, gamma: 0.25, delta: 2.0, vocab: 1000 };
        for p in 0..50 {
            assert_eq!(list.green(p).iter().filter(|&&g| g).count(), 250);
        }
        assert_ne!(list.green(1), list.green(2));
        let (a, b) = (list.green(7), GreenList { key: 43, ..list }.green(7));
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        assert!((550..=700).contains(&same), "another key agrees on {same} of 1000 (chance: 625)");
    }

    /// Under the null (tokens drawn without the watermark) the z-scores of 2,000 sequences have
    /// mean ~0 and standard deviation ~1, and about 1% exceed the normal's 99th percentile.
    #[test]
    fn unmarked_text_scores_like_the_null() {
        let list = GreenList { key: 7, gamma: 0.25, delta: 2.0, vocab: VOCAB };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let zs: Vec<f64> = (0..2000)
            .map(|_| list.detect(&(0..200).map(|_| rng.gen_range(0..VOCAB as u32)).collect::<Vec<_>>()).z)
            .collect();
        let mean = zs.iter().sum::<f64>() / zs.len() as f64;
        let sd = (zs.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / zs.len() as f64).sqrt();
        let above = zs.iter().filter(|&&z| z > 2.326).count();
        assert!(mean.abs() < 0.08 && (sd - 1.0).abs() < 0.08, "mean {mean}, sd {sd}");
        assert!((8..=36).contains(&above), "{above} of 2000 above z = 2.326 (expected 20)");
    }

    /// Sampling from a peaked random model with and without the bias: the marked sequences score
    /// far above the unmarked ones.
    #[test]
    fn biased_sampling_is_detected() {
        let list = GreenList { key: 99, gamma: 0.25, delta: 2.0, vocab: VOCAB };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let sample = |marked: bool, rng: &mut ChaCha8Rng| -> Vec<u32> {
            let mut tokens = vec![0u32];
            for _ in 0..200 {
                let previous = *tokens.last().unwrap();
                let mut logits: Vec<f32> = (0..VOCAB).map(|_| rng.gen_range(-2.0f32..2.0)).collect();
                if marked {
                    list.bias(previous, &mut logits);
                }
                let weights: Vec<f32> = logits.iter().map(|l| l.exp()).collect();
                tokens.push(WeightedIndex::new(&weights).unwrap().sample(rng) as u32);
            }
            tokens
        };
        let marked: Vec<f64> = (0..50).map(|_| list.detect(&sample(true, &mut rng)).z).collect();
        let plain: Vec<f64> = (0..50).map(|_| list.detect(&sample(false, &mut rng)).z).collect();
        assert!(marked.iter().all(|&z| z > 4.0), "marked: {marked:?}");
        assert!(plain.iter().all(|&z| z < 4.0), "plain: {plain:?}");
    }

    #[test]
    fn repeated_pairs_count_once() {
        let list = GreenList { key: 1, gamma: 0.5, delta: 1.0, vocab: 8 };
        let d = list.detect(&[3, 4, 3, 4, 3, 4, 3]);
        assert_eq!(d.scored, 2);
        assert_eq!(list.detect(&[5]).scored, 0);
        assert_eq!(list.detect(&[]).z, 0.0);
    }
}
