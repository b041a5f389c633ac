//! 2-D toy densities generated in code, with their exact densities so a model's test NLL can be
//! compared with the ground truth: two moons (scikit-learn's `make_moons` shape, with the arc
//! parameter drawn uniformly rather than on a grid), eight Gaussians and the checkerboard (as in
//! FFJORD, Grathwohl et al. 2019, <https://arxiv.org/abs/1810.01367>).

use genlab_core::SeededRng;
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// Training points of a toy dataset (a fixed draw; the test points are another).
pub const TOY_TRAIN: usize = 50_000;
/// Test points of a toy dataset.
pub const TOY_TEST: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ToyDistribution {
    /// Two interleaved half circles: the upper `(cos t, sin t)` and the lower
    /// `(1 - cos t, 0.5 - sin t)`, `t ~ U[0, pi]`, each point with N(0, 0.1^2) noise per axis.
    TwoMoons,
    /// An equal mixture of eight Gaussians of std 0.5 / 1.414 centred on the circle of radius
    /// 4 / 1.414 at multiples of 45 degrees.
    EightGaussians,
    /// Uniform on the 8 dark squares of a 4x4 board of unit squares over [-2, 2]^2.
    Checkerboard,
}

const MOONS_NOISE: f64 = 0.1;
const SCALE: f64 = 1.414;

impl ToyDistribution {
    pub fn name(&self) -> &'static str {
        match self {
            ToyDistribution::TwoMoons => "two-moons",
            ToyDistribution::EightGaussians => "eight-gaussians",
            ToyDistribution::Checkerboard => "checkerboard",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [ToyDistribution::TwoMoons, ToyDistribution::EightGaussians, ToyDistribution::Checkerboard]
            .into_iter()
            .find(|t| t.name() == name)
    }

    /// `n` points, `[x0, y0, x1, y1, ...]`.
    pub fn sample(&self, n: usize, rng: &mut SeededRng) -> Vec<f32> {
        let mut out = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let u = rng.uniform_vec(2);
            let g = rng.normal_vec(2);
            let (x, y) = match self {
                ToyDistribution::TwoMoons => {
                    let t = PI * u[0] as f64;
                    let (cx, cy) = if u[1] < 0.5 { (t.cos(), t.sin()) } else { (1.0 - t.cos(), 0.5 - t.sin()) };
                    (cx + MOONS_NOISE * g[0] as f64, cy + MOONS_NOISE * g[1] as f64)
                }
                ToyDistribution::EightGaussians => {
                    let (cx, cy) = gaussian_centre(rng.below(8));
                    (cx + 0.5 / SCALE * g[0] as f64, cy + 0.5 / SCALE * g[1] as f64)
                }
                ToyDistribution::Checkerboard => {
                    let x = 4.0 * u[0] as f64 - 2.0;
                    let row = u[1] as f64 - 2.0 * rng.below(2) as f64;
                    (x, row + (x.floor() as i64).rem_euclid(2) as f64)
                }
            };
            out.extend([x as f32, y as f32]);
        }
        out
    }

    /// The exact log-density at `(x, y)` (the moons' by Simpson's rule over the arc parameter,
    /// accurate to about 1e-9 relative with 2000 intervals at this noise); `-inf` off the support.
    pub fn log_density(&self, x: f64, y: f64) -> f64 {
        match self {
            ToyDistribution::TwoMoons => {
                let var = MOONS_NOISE * MOONS_NOISE;
                let norm = 1.0 / (2.0 * PI * var);
                let k = 2000;
                let h = PI / k as f64;
                let mut acc = 0.0;
                for i in 0..=k {
                    let t = i as f64 * h;
                    let wgt = if i == 0 || i == k {
                        1.0
                    } else if i % 2 == 1 {
                        4.0
                    } else {
                        2.0
                    };
                    let d1 = (x - t.cos()).powi(2) + (y - t.sin()).powi(2);
                    let d2 = (x - 1.0 + t.cos()).powi(2) + (y - 0.5 + t.sin()).powi(2);
                    acc += wgt * ((-d1 / (2.0 * var)).exp() + (-d2 / (2.0 * var)).exp());
                }
                // (1/2)(1/pi) integral over [0, pi] of each moon's Gaussian.
                (0.5 / PI * norm * acc * h / 3.0).ln()
            }
            ToyDistribution::EightGaussians => {
                let s = 0.5 / SCALE;
                let var = s * s;
                let p: f64 = (0..8)
                    .map(|k| {
                        let (cx, cy) = gaussian_centre(k);
                        (-((x - cx).powi(2) + (y - cy).powi(2)) / (2.0 * var)).exp()
                    })
                    .sum::<f64>()
                    / (8.0 * 2.0 * PI * var);
                p.ln()
            }
            ToyDistribution::Checkerboard => {
                if !(-2.0..2.0).contains(&x) {
                    return f64::NEG_INFINITY;
                }
                let r = y - (x.floor() as i64).rem_euclid(2) as f64;
                if (0.0..1.0).contains(&r) || (-2.0..-1.0).contains(&r) {
                    -(8f64.ln())
                } else {
                    f64::NEG_INFINITY
                }
            }
        }
    }

    /// A square window `[lo, hi]^2` that holds nearly all the mass, for density plots.
    pub fn window(&self) -> (f64, f64) {
        match self {
            ToyDistribution::TwoMoons => (-1.5, 2.5),
            ToyDistribution::EightGaussians => (-4.0, 4.0),
            ToyDistribution::Checkerboard => (-2.5, 2.5),
        }
    }

    /// The fixed training (`test = false`) or test split: the same points for every run.
    pub fn split(&self, test: bool) -> Vec<f32> {
        let (n, purpose) = if test { (TOY_TEST, 2) } else { (TOY_TRAIN, 1) };
        self.sample(n, &mut SeededRng::stream(0x70_7e, purpose))
    }
}

/// A toy density's fixed training draw and the first points of its fixed test draw.
pub struct ToyPoints {
    pub toy: ToyDistribution,
    pub train: std::sync::Arc<Vec<f32>>,
    pub test: Vec<f32>,
}

impl ToyPoints {
    /// The splits of `toy`, with the first `test_points` of its test draw (all when None).
    pub fn load(toy: ToyDistribution, test_points: Option<usize>) -> Self {
        let mut test = toy.split(true);
        test.truncate(2 * test_points.unwrap_or(usize::MAX).min(test.len() / 2));
        ToyPoints { toy, train: std::sync::Arc::new(toy.split(false)), test }
    }

    /// The exact density's mean NLL on the test points (nats per point): its mean estimates the
    /// distribution's entropy, the lowest NLL any model can expect.
    pub fn reference_nll(&self) -> f64 {
        let n = (self.test.len() / 2).max(1);
        -self.test.chunks(2).map(|p| self.toy.log_density(p[0] as f64, p[1] as f64)).sum::<f64>() / n as f64
    }
}

fn gaussian_centre(k: usize) -> (f64, f64) {
    let a = k as f64 * PI / 4.0;
    (4.0 / SCALE * a.cos(), 4.0 / SCALE * a.sin())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The density integrates to one over a fine grid (checks the normalising constants and the
    /// quadrature), and the sampler draws from it: the fraction of samples in a box equals the
    /// box's mass.
    #[test]
    fn densities_integrate_to_one_and_match_the_samplers() {
        for toy in [ToyDistribution::TwoMoons, ToyDistribution::EightGaussians, ToyDistribution::Checkerboard] {
            let (lo, hi) = toy.window();
            let (lo, hi) = (lo - 1.0, hi + 1.0);
            let k = 280; // cell edges on the checkerboard's integer lines
            let h = (hi - lo) / k as f64;
            let cell = |i: usize| lo + (i as f64 + 0.5) * h;
            let mut mass = 0.0;
            let mut box_mass = 0.0;
            for i in 0..k {
                for j in 0..k {
                    let (x, y) = (cell(i), cell(j));
                    let p = toy.log_density(x, y).exp() * h * h;
                    mass += p;
                    if x > 0.0 && y > 0.0 {
                        box_mass += p;
                    }
                }
            }
            assert!((mass - 1.0).abs() < 2e-3, "{}: mass {mass}", toy.name());
            let pts = toy.sample(20_000, &mut SeededRng::new(1));
            let inside = pts.chunks(2).filter(|p| p[0] > 0.0 && p[1] > 0.0).count() as f64 / 20_000.0;
            // Binomial standard error at 20,000 draws is below 0.0036.
            assert!((inside - box_mass).abs() < 0.012, "{}: {inside} of samples vs mass {box_mass}", toy.name());
            let test = toy.split(true);
            assert!(test.chunks(2).all(|p| toy.log_density(p[0] as f64, p[1] as f64).is_finite()));
        }
    }

    #[test]
    fn splits_are_fixed_and_distinct() {
        let t = ToyDistribution::TwoMoons;
        assert_eq!(t.split(true), t.split(true));
        assert_ne!(t.split(true)[..2], t.split(false)[..2]);
        assert_eq!(t.split(false).len(), 2 * TOY_TRAIN);
    }
}
