//! Kernel Inception Distance (Bińkowski et al. 2018, <https://arxiv.org/abs/1801.01401>) as
//! torch-fidelity computes it: the unbiased MMD^2 with the cubic polynomial kernel
//! `k(x, y) = (x.y / dim + 1)^3`, averaged over random subsets drawn by NumPy's
//! `RandomState(seed).choice(n, size, replace=False)` (reproduced in [`crate::numpy_rng`]).

use crate::error::{EvalError, Result};
use crate::features::Features;
use crate::numpy_rng::RandomState;
use faer::Mat;
use serde::{Deserialize, Serialize};

/// torch-fidelity's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KidConfig {
    pub subsets: usize,
    pub subset_size: usize,
    pub degree: i32,
    /// `None`: 1 / feature dimension.
    pub gamma: Option<f64>,
    pub coef0: f64,
    pub seed: u32,
}

impl Default for KidConfig {
    fn default() -> Self {
        KidConfig { subsets: 100, subset_size: 1000, degree: 3, gamma: None, coef0: 1.0, seed: 2020 }
    }
}

/// Mean and standard deviation (population, as `np.std`) of the subsets' MMD^2.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Kid {
    pub mean: f64,
    pub std: f64,
}

fn poly_kernel(x: &Mat<f64>, y: &Mat<f64>, c: &KidConfig) -> Mat<f64> {
    let gamma = c.gamma.unwrap_or(1.0 / x.ncols() as f64);
    let dot = x * y.transpose();
    Mat::from_fn(dot.nrows(), dot.ncols(), |i, j| (dot[(i, j)] * gamma + c.coef0).powi(c.degree))
}

/// The unbiased MMD^2 estimate between two equally sized samples.
pub fn mmd2_unbiased(x: &Features, y: &Features, c: &KidConfig) -> f64 {
    let (xm, ym) = (x.to_mat(), y.to_mat());
    let (kxx, kyy, kxy) = (poly_kernel(&xm, &xm, c), poly_kernel(&ym, &ym, c), poly_kernel(&xm, &ym, c));
    let m = x.n as f64;
    let off_diag_sum = |k: &Mat<f64>| {
        let mut s = 0.0;
        for i in 0..k.nrows() {
            for j in 0..k.ncols() {
                if i != j {
                    s += k[(i, j)];
                }
            }
        }
        s
    };
    let xy: f64 = (0..kxy.nrows()).flat_map(|i| (0..kxy.ncols()).map(move |j| (i, j))).map(|(i, j)| kxy[(i, j)]).sum();
    (off_diag_sum(&kxx) + off_diag_sum(&kyy)) / (m * (m - 1.0)) - 2.0 * xy / (m * m)
}

pub fn kid(a: &Features, b: &Features, c: &KidConfig) -> Result<Kid> {
    a.check_pair(b, "KID")?;
    if c.subset_size < 2 || c.subsets == 0 {
        return Err(EvalError::Numerical { metric: "KID", reason: "needs subsets >= 1 of size >= 2".into() });
    }
    a.need("KID", c.subset_size)?;
    b.need("KID", c.subset_size)?;
    let mut rng = RandomState::new(c.seed);
    let mmds: Vec<f64> = (0..c.subsets)
        .map(|_| {
            let ia = rng.choice_without_replacement(a.n, c.subset_size);
            let ib = rng.choice_without_replacement(b.n, c.subset_size);
            mmd2_unbiased(&a.select(&ia), &b.select(&ib), c)
        })
        .collect();
    let mean = mmds.iter().sum::<f64>() / mmds.len() as f64;
    let std = (mmds.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / mmds.len() as f64).sqrt();
    Ok(Kid { mean, std })
}
