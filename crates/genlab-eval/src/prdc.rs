//! Improved precision and recall (Kynkäänniemi et al. 2019, <https://arxiv.org/abs/1904.06991>) and
//! density and coverage (Naeem et al. 2020, <https://arxiv.org/abs/2002.09797>), as the `prdc`
//! package computes them: each real (fake) sample's manifold ball has the radius of its k-th nearest
//! real (fake) neighbour, self excluded; Euclidean distances. Computed in row blocks, so 10,000 x
//! 10,000 distance matrices are never held whole.

use crate::error::Result;
use crate::features::Features;
use faer::Mat;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prdc {
    pub precision: f64,
    pub recall: f64,
    pub density: f64,
    pub coverage: f64,
}

const BLOCK: usize = 1024;

/// A feature set as a matrix with each row's squared norm.
struct Rows {
    mat: Mat<f64>,
    sq: Vec<f64>,
}

impl Rows {
    fn new(f: &Features) -> Self {
        Rows { mat: f.to_mat(), sq: f.squared_norms() }
    }
}

/// Distances between rows `r0..r1` of `x` and every row of `y`, `[r1 - r0, y.n]`, by
/// `sqrt(max(|x|^2 - 2 x.y + |y|^2, 0))` as scikit-learn's `euclidean_distances`.
fn distance_block(x: &Rows, r0: usize, r1: usize, y: &Rows) -> Mat<f64> {
    let dot = x.mat.subrows(r0, r1 - r0) * y.mat.transpose();
    Mat::from_fn(r1 - r0, y.sq.len(), |i, j| (x.sq[r0 + i] - 2.0 * dot[(i, j)] + y.sq[j]).max(0.0).sqrt())
}

/// The distance from each sample to its k-th nearest other sample of the same set.
fn radii(f: &Rows, k: usize) -> Vec<f64> {
    let n = f.sq.len();
    let mut out = Vec::with_capacity(n);
    for r0 in (0..n).step_by(BLOCK) {
        let r1 = (r0 + BLOCK).min(n);
        let d = distance_block(f, r0, r1, f);
        for i in 0..r1 - r0 {
            let mut row: Vec<f64> = (0..n).map(|j| d[(i, j)]).collect();
            // prdc takes the (k+1)-th smallest, the sample itself being the first.
            row.select_nth_unstable_by(k, f64::total_cmp);
            out.push(row[k]);
        }
    }
    out
}

pub fn prdc(real: &Features, fake: &Features, k: usize) -> Result<Prdc> {
    real.check_pair(fake, "precision/recall")?;
    real.need("precision/recall", k + 1)?;
    fake.need("precision/recall", k + 1)?;
    let (real_rows, fake_rows) = (Rows::new(real), Rows::new(fake));
    let (r_rad, f_rad) = (radii(&real_rows, k), radii(&fake_rows, k));
    let mut fake_in_real = vec![false; fake.n]; // precision
    let mut fake_count = vec![0usize; fake.n]; // density
    let mut real_in_fake = vec![false; real.n]; // recall
    let mut real_covered = vec![false; real.n]; // coverage
    for r0 in (0..real.n).step_by(BLOCK) {
        let r1 = (r0 + BLOCK).min(real.n);
        let d = distance_block(&real_rows, r0, r1, &fake_rows);
        for i in 0..r1 - r0 {
            let ri = r0 + i;
            let mut nearest = f64::INFINITY;
            for j in 0..fake.n {
                let dij = d[(i, j)];
                if dij < r_rad[ri] {
                    fake_in_real[j] = true;
                    fake_count[j] += 1;
                }
                if dij < f_rad[j] {
                    real_in_fake[ri] = true;
                }
                nearest = nearest.min(dij);
            }
            real_covered[ri] = nearest < r_rad[ri];
        }
    }
    let frac = |v: &[bool]| v.iter().filter(|&&b| b).count() as f64 / v.len() as f64;
    Ok(Prdc {
        precision: frac(&fake_in_real),
        recall: frac(&real_in_fake),
        density: fake_count.iter().sum::<usize>() as f64 / (k as f64 * fake.n as f64),
        coverage: frac(&real_covered),
    })
}
