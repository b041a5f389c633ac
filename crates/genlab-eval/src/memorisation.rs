//! Memorisation: does a model reproduce its training examples? For each generated sample, the
//! distance in feature space to its nearest training example, compared with the same distance for
//! held-out real examples (which the model never saw). A generated sample closer to the training set
//! than all but `quantile` of held-out examples is "suspiciously close"; without memorisation about
//! `quantile` of the samples are (the baseline of Meehan et al. 2020's three-sample test,
//! <https://arxiv.org/abs/2004.05675>, reduced to nearest-neighbour distances).

use crate::error::Result;
use crate::features::Features;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memorisation {
    /// The held-out quantile that sets the threshold.
    pub quantile: f64,
    /// Nearest-training-example distance below which a sample counts as suspiciously close.
    pub threshold: f64,
    /// Fraction of generated samples below the threshold (about `quantile` when nothing is copied).
    pub suspicious_fraction: f64,
    /// Median nearest-training distance of generated samples over that of held-out examples.
    pub median_ratio: f64,
    /// The closest (generated index, training index, distance) pairs, closest first.
    pub closest: Vec<(usize, usize, f64)>,
}

/// For each row of `queries`, its nearest row of `reference`: (index, Euclidean distance).
pub fn nearest(queries: &Features, reference: &Features) -> Vec<(usize, f64)> {
    const BLOCK: usize = 1024;
    let (r, q) = (reference.to_mat(), queries.to_mat());
    let (r_sq, q_sq) = (reference.squared_norms(), queries.squared_norms());
    let mut out = Vec::with_capacity(queries.n);
    for q0 in (0..queries.n).step_by(BLOCK) {
        let q1 = (q0 + BLOCK).min(queries.n);
        let dot = q.subrows(q0, q1 - q0) * r.transpose();
        for i in 0..q1 - q0 {
            let (mut best, mut at) = (f64::INFINITY, 0);
            for j in 0..reference.n {
                let d = q_sq[q0 + i] - 2.0 * dot[(i, j)] + r_sq[j];
                if d < best {
                    (best, at) = (d, j);
                }
            }
            out.push((at, best.max(0.0).sqrt()));
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// The distance below which a sample is suspiciously close: the `quantile` of the held-out
/// examples' nearest-training distances (`real`, at least one).
pub fn threshold(real: &[f64], quantile: f64) -> f64 {
    let mut sorted = real.to_vec();
    sorted.sort_by(f64::total_cmp);
    let at = ((sorted.len() - 1) as f64 * quantile.clamp(0.0, 1.0)).round() as usize;
    sorted[at]
}

pub fn memorisation(
    generated: &Features,
    train: &Features,
    held_out: &Features,
    quantile: f64,
    pairs: usize,
) -> Result<Memorisation> {
    generated.check_pair(train, "memorisation")?;
    held_out.check_pair(train, "memorisation")?;
    generated.need("memorisation", 1)?;
    train.need("memorisation", 1)?;
    held_out.need("memorisation", 2)?;
    let gen = nearest(generated, train);
    let real: Vec<f64> = nearest(held_out, train).into_iter().map(|(_, d)| d).collect();
    let threshold = threshold(&real, quantile);
    let suspicious = gen.iter().filter(|(_, d)| *d < threshold).count();
    let mut closest: Vec<(usize, usize, f64)> = gen.iter().enumerate().map(|(g, &(t, d))| (g, t, d)).collect();
    closest.sort_by(|a, b| a.2.total_cmp(&b.2));
    closest.truncate(pairs);
    Ok(Memorisation {
        quantile,
        threshold,
        suspicious_fraction: suspicious as f64 / generated.n as f64,
        median_ratio: median(gen.iter().map(|(_, d)| *d).collect()) / median(real).max(f64::MIN_POSITIVE),
        closest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud(n: usize, dim: usize, seed: u64) -> Features {
        // A small deterministic generator (SplitMix64) keeps this crate free of an RNG dependency.
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            (z ^ (z >> 31)) as f64 / u64::MAX as f64 - 0.5
        };
        Features::new((0..n * dim).map(|_| next()).collect(), n, dim)
    }

    #[test]
    fn nearest_matches_brute_force() {
        let (q, r) = (cloud(37, 5, 1), cloud(1500, 5, 2));
        let got = nearest(&q, &r);
        for (i, &(j, d)) in got.iter().enumerate() {
            let brute = (0..r.n)
                .map(|k| (k, q.row(i).iter().zip(r.row(k)).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt()))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            assert_eq!(j, brute.0);
            assert!((d - brute.1).abs() < 1e-9);
        }
    }

    #[test]
    fn copies_are_flagged_and_fresh_samples_are_not() {
        let train = cloud(400, 8, 3);
        let held_out = cloud(400, 8, 4);
        // 20 of 100 generated samples are training examples with a tiny perturbation.
        let mut gen = cloud(100, 8, 5);
        for g in 0..20 {
            for k in 0..8 {
                gen.data[g * 8 + k] = train.data[(7 * g) * 8 + k] + 1e-4;
            }
        }
        let m = memorisation(&gen, &train, &held_out, 0.01, 5).unwrap();
        assert!(m.suspicious_fraction >= 0.2 && m.suspicious_fraction <= 0.25, "{m:?}");
        assert!(m.closest.iter().all(|&(g, t, _)| g < 20 && t == 7 * g), "{:?}", m.closest);
        let fresh = memorisation(&cloud(300, 8, 6), &train, &held_out, 0.05, 1).unwrap();
        assert!(fresh.suspicious_fraction < 0.12 && (fresh.median_ratio - 1.0).abs() < 0.15, "{fresh:?}");
    }
}
