//! Benchmark objectives, so samplers are measured without training anything: Branin (2-D),
//! Hartmann-6 and Rosenbrock (4-D), with the domains and constants of the Virtual Library of
//! Simulation Experiments (Surjanovic & Bingham, <https://www.sfu.ca/~ssurjano/optimization.html>).

use crate::space::{Distribution, SearchSpace};
use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Benchmark {
    Branin,
    #[serde(alias = "hartmann-6")]
    Hartmann6,
    Rosenbrock,
}

const HARTMANN_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const HARTMANN_P: [[f64; 6]; 4] = [
    [1312.0, 1696.0, 5569.0, 124.0, 8283.0, 5886.0],
    [2329.0, 4135.0, 8307.0, 3736.0, 1004.0, 9991.0],
    [2348.0, 1451.0, 3522.0, 2883.0, 3047.0, 6650.0],
    [4047.0, 8828.0, 8732.0, 5743.0, 1091.0, 381.0],
];
const HARTMANN_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];

impl Benchmark {
    pub fn name(self) -> &'static str {
        match self {
            Benchmark::Branin => "branin",
            Benchmark::Hartmann6 => "hartmann6",
            Benchmark::Rosenbrock => "rosenbrock",
        }
    }

    /// The domain: parameters `x0, x1, ...`.
    pub fn space(self) -> SearchSpace {
        let bounds: Vec<(f64, f64)> = match self {
            Benchmark::Branin => vec![(-5.0, 10.0), (0.0, 15.0)],
            Benchmark::Hartmann6 => vec![(0.0, 1.0); 6],
            Benchmark::Rosenbrock => vec![(-5.0, 10.0); 4],
        };
        SearchSpace {
            params: bounds
                .into_iter()
                .enumerate()
                .map(|(i, (low, high))| (format!("x{i}"), Distribution::Float { low, high, log: false, step: None }))
                .collect(),
        }
    }

    /// The global minimum.
    pub fn minimum(self) -> f64 {
        match self {
            Benchmark::Branin => 0.397_887_357_729_738,
            Benchmark::Hartmann6 => -3.322_368_011_415_51,
            Benchmark::Rosenbrock => 0.0,
        }
    }

    pub fn value(self, x: &[f64]) -> f64 {
        match self {
            Benchmark::Branin => {
                let (b, c, t) = (5.1 / (4.0 * PI * PI), 5.0 / PI, 1.0 / (8.0 * PI));
                let y = x[1] - b * x[0] * x[0] + c * x[0] - 6.0;
                y * y + 10.0 * (1.0 - t) * x[0].cos() + 10.0
            }
            Benchmark::Hartmann6 => -(0..4)
                .map(|i| {
                    let inner: f64 = (0..6).map(|j| HARTMANN_A[i][j] * (x[j] - 1e-4 * HARTMANN_P[i][j]).powi(2)).sum();
                    HARTMANN_ALPHA[i] * (-inner).exp()
                })
                .sum::<f64>(),
            Benchmark::Rosenbrock => {
                x.windows(2).map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2)).sum()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minima_where_the_literature_puts_them() {
        for x in [[-PI, 12.275], [PI, 2.275], [9.42478, 2.475]] {
            assert!((Benchmark::Branin.value(&x) - Benchmark::Branin.minimum()).abs() < 1e-5);
        }
        let h = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573];
        assert!((Benchmark::Hartmann6.value(&h) - Benchmark::Hartmann6.minimum()).abs() < 1e-5);
        assert_eq!(Benchmark::Rosenbrock.value(&[1.0; 4]), 0.0);
        assert_eq!(Benchmark::Rosenbrock.value(&[0.0; 4]), 3.0);
    }
}
