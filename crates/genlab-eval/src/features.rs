//! A set of feature vectors, row-major `[n, dim]`, in float64.

use crate::error::{EvalError, Result};
use faer::Mat;

#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub n: usize,
    pub dim: usize,
    pub data: Vec<f64>,
}

impl Features {
    pub fn new(data: Vec<f64>, n: usize, dim: usize) -> Self {
        assert_eq!(data.len(), n * dim, "feature data length should be n * dim");
        Features { n, dim, data }
    }

    pub fn from_f32(data: &[f32], n: usize, dim: usize) -> Self {
        Self::new(data.iter().map(|&v| v as f64).collect(), n, dim)
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The rows at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Features {
        let mut data = Vec::with_capacity(idx.len() * self.dim);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Features::new(data, idx.len(), self.dim)
    }

    pub fn to_mat(&self) -> Mat<f64> {
        Mat::from_fn(self.n, self.dim, |i, j| self.data[i * self.dim + j])
    }

    /// Each row's squared Euclidean norm.
    pub(crate) fn squared_norms(&self) -> Vec<f64> {
        (0..self.n).map(|i| self.row(i).iter().map(|v| v * v).sum()).collect()
    }

    pub(crate) fn check_pair(&self, other: &Features, metric: &'static str) -> Result<()> {
        if self.dim != other.dim {
            return Err(EvalError::DimensionMismatch { metric, a: self.dim, b: other.dim });
        }
        Ok(())
    }

    pub(crate) fn need(&self, metric: &'static str, needed: usize) -> Result<()> {
        if self.n < needed {
            return Err(EvalError::TooFewSamples { metric, needed, got: self.n });
        }
        Ok(())
    }
}
