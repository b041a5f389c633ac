//! Inception Score (Salimans et al. 2016, <https://arxiv.org/abs/1606.03498>) from classifier
//! logits, as torch-fidelity computes it: float64 softmax, `splits` contiguous chunks (after a
//! shuffle by NumPy's `RandomState(seed).permutation`), exp of the mean KL to each chunk's marginal.

use crate::error::Result;
use crate::features::Features;
use crate::numpy_rng::RandomState;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InceptionScore {
    pub mean: f64,
    pub std: f64,
}

/// `shuffle_seed`: torch-fidelity shuffles with seed 2020 by default; `None` keeps the order.
pub fn inception_score(logits: &Features, splits: usize, shuffle_seed: Option<u32>) -> Result<InceptionScore> {
    logits.need("Inception Score", splits.max(1))?;
    let (n, c) = (logits.n, logits.dim);
    let order: Vec<usize> = match shuffle_seed {
        Some(s) => RandomState::new(s).permutation(n),
        None => (0..n).collect(),
    };
    // log-softmax per row, in float64.
    let log_p: Vec<Vec<f64>> = order
        .iter()
        .map(|&i| {
            let row = logits.row(i);
            let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            row.iter().map(|v| v - lse).collect()
        })
        .collect();
    let scores: Vec<f64> = (0..splits)
        .map(|k| {
            let chunk = &log_p[k * n / splits..(k + 1) * n / splits];
            let q: Vec<f64> =
                (0..c).map(|j| chunk.iter().map(|r| r[j].exp()).sum::<f64>() / chunk.len() as f64).collect();
            let kl: f64 =
                chunk.iter().map(|r| (0..c).map(|j| r[j].exp() * (r[j] - q[j].ln())).sum::<f64>()).sum::<f64>()
                    / chunk.len() as f64;
            kl.exp()
        })
        .collect();
    let mean = scores.iter().sum::<f64>() / splits as f64;
    let std = (scores.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / splits as f64).sqrt();
    Ok(InceptionScore { mean, std })
}
