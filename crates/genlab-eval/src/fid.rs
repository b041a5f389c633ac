//! The Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017,
//! <https://arxiv.org/abs/1706.08500>), as pytorch-fid computes it: unbiased covariances in float64,
//! `|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))`.
//!
//! pytorch-fid takes the trace of `scipy.linalg.sqrtm(S1 S2)`, an iterative Schur method that can
//! return complex noise. genlab computes the same trace exactly: `S1 S2` has the eigenvalues of the
//! symmetric `S1^(1/2) S2 S1^(1/2)`, so the trace is the sum of the square roots of that matrix's
//! eigenvalues, from two symmetric eigendecompositions (faer).

use crate::error::{EvalError, Result};
use crate::features::Features;
use faer::{Mat, Side};

/// Mean and covariance of a feature set: what FID compares, and what a reference set caches.
#[derive(Debug, Clone)]
pub struct FeatureStats {
    pub n: usize,
    pub mean: Vec<f64>,
    pub cov: Mat<f64>,
}

impl FeatureStats {
    /// Mean and unbiased covariance (divided by n - 1, as `numpy.cov`).
    pub fn from_features(f: &Features) -> Result<Self> {
        f.need("FID", 2)?;
        let mean: Vec<f64> =
            (0..f.dim).map(|j| (0..f.n).map(|i| f.data[i * f.dim + j]).sum::<f64>() / f.n as f64).collect();
        let centered = Mat::from_fn(f.n, f.dim, |i, j| f.data[i * f.dim + j] - mean[j]);
        let mut cov = centered.transpose() * &centered;
        let scale = 1.0 / (f.n as f64 - 1.0);
        cov = Mat::from_fn(f.dim, f.dim, |i, j| cov[(i, j)] * scale);
        Ok(FeatureStats { n: f.n, mean, cov })
    }
}

fn eig_err(e: impl std::fmt::Debug) -> EvalError {
    EvalError::Numerical { metric: "FID", reason: format!("symmetric eigendecomposition failed: {e:?}") }
}

/// The Fréchet distance between two fitted Gaussians.
pub fn frechet_distance(a: &FeatureStats, b: &FeatureStats) -> Result<f64> {
    let d = a.mean.len();
    if d != b.mean.len() {
        return Err(EvalError::DimensionMismatch { metric: "FID", a: d, b: b.mean.len() });
    }
    let diff: f64 = a.mean.iter().zip(&b.mean).map(|(x, y)| (x - y) * (x - y)).sum();
    let trace = |m: &Mat<f64>| (0..d).map(|i| m[(i, i)]).sum::<f64>();
    // S1^(1/2) = U diag(sqrt(max(l, 0))) U^T; tiny negative eigenvalues are rounding.
    let e = a.cov.self_adjoint_eigen(Side::Lower).map_err(eig_err)?;
    let (u, s) = (e.U(), e.S().column_vector());
    let u_scaled = Mat::from_fn(d, d, |i, j| u[(i, j)] * s[j].max(0.0).sqrt());
    let sqrt_a = &u_scaled * u.transpose();
    let m = &sqrt_a * &b.cov * &sqrt_a;
    let m = Mat::from_fn(d, d, |i, j| 0.5 * (m[(i, j)] + m[(j, i)]));
    let eig = m.self_adjoint_eigenvalues(Side::Lower).map_err(eig_err)?;
    let tr_sqrt: f64 = eig.iter().map(|l| l.max(0.0).sqrt()).sum();
    Ok(diff + trace(&a.cov) + trace(&b.cov) - 2.0 * tr_sqrt)
}

/// FID between two feature sets.
pub fn fid(a: &Features, b: &Features) -> Result<f64> {
    a.check_pair(b, "FID")?;
    frechet_distance(&FeatureStats::from_features(a)?, &FeatureStats::from_features(b)?)
}
