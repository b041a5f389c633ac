//! A mixture of K Gaussians with diagonal covariances on the plane (Bishop, *Pattern Recognition
//! and Machine Learning*, 2006, section 9.2), fitted by gradient descent on the exact negative
//! log-likelihood rather than by EM, so it trains on the one trainer like every other family.
//! The simplest density model with an exact likelihood: the baseline a flow on the 2-D toy sets
//! should beat, and the family that proves the pipeline's family seam.
//!
//! # Shapes
//! `log_prob`: points `[n, 2]` -> `[n]`; `sample`: `n` points as `[x0, y0, x1, y1, ...]`.

use crate::error::ModelError;
use burn::module::{Module, Param};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;
use genlab_train::{OptimizerKey, StepContext, StepOutput, TrainStep};
use serde::{Deserialize, Serialize};

/// The stream of the initial means.
const INIT_STREAM: u64 = 0x6a55;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaussianMixtureConfig {
    /// Mixture components K.
    #[serde(default = "default_components")]
    pub components: usize,
    /// Standard deviation of the initial means around the origin (each component starts with unit
    /// standard deviations and weight 1/K).
    #[serde(default = "default_init_spread")]
    pub init_spread: f64,
}

fn default_components() -> usize {
    8
}
fn default_init_spread() -> f64 {
    1.0
}

impl Default for GaussianMixtureConfig {
    fn default() -> Self {
        GaussianMixtureConfig { components: default_components(), init_spread: default_init_spread() }
    }
}

impl GaussianMixtureConfig {
    /// Checks the fields; `init` repeats it.
    pub fn check(&self) -> Result<(), ModelError> {
        if !(1..=4096).contains(&self.components) {
            return Err(ModelError::Config {
                field: "components",
                value: self.components.to_string(),
                expected: "expected between 1 and 4096".into(),
            });
        }
        if !(self.init_spread > 0.0 && self.init_spread.is_finite()) {
            return Err(ModelError::Config {
                field: "init_spread",
                value: self.init_spread.to_string(),
                expected: "expected a positive number".into(),
            });
        }
        Ok(())
    }

    pub fn init(&self, seed: u64, device: &Device) -> Result<GaussianMixture, ModelError> {
        self.check()?;
        let k = self.components;
        let spread = self.init_spread as f32;
        let means: Vec<f32> =
            SeededRng::stream(seed, INIT_STREAM).normal_vec(2 * k).into_iter().map(|v| v * spread).collect();
        Ok(GaussianMixture {
            logits: Param::from_data(TensorData::new(vec![0.0f32; k], [k]), device),
            means: Param::from_data(TensorData::new(means, [k, 2]), device),
            log_std: Param::from_data(TensorData::new(vec![0.0f32; 2 * k], [k, 2]), device),
        })
    }
}

/// The mixture: weights `softmax(logits)`, means and log standard deviations per component and
/// axis.
#[derive(Module, Debug)]
pub struct GaussianMixture {
    pub logits: Param<Tensor<1>>,
    pub means: Param<Tensor<2>>,
    pub log_std: Param<Tensor<2>>,
}

impl GaussianMixture {
    pub fn components(&self) -> usize {
        self.logits.val().dims()[0]
    }

    /// Exact log-density of each point `[n, 2]` -> `[n]`:
    /// `log sum_k pi_k N(x; mu_k, diag(sigma_k^2))`, with the log-sum-exp shifted by its maximum.
    pub fn log_prob(&self, x: Tensor<2>) -> Tensor<1> {
        let [n, _] = x.dims();
        let k = self.components();
        let log_std = self.log_std.val().reshape([1, k, 2]);
        let z = (x.reshape([n, 1, 2]) - self.means.val().reshape([1, k, 2])) / log_std.clone().exp(); // [n, k, 2]
        let log_normal =
            (z.powf_scalar(2.0) * -0.5 - log_std - 0.5 * (2.0 * std::f32::consts::PI).ln()).sum_dim(2).reshape([n, k]); // [n, k]
        let joint = log_normal + log_softmax(self.logits.val(), 0).reshape([1, k]); // [n, k]
        let m = joint.clone().max_dim(1).detach(); // [n, 1]
        ((joint - m.clone()).exp().sum_dim(1).log() + m).reshape([n])
    }

    /// Mean negative log-likelihood of a batch of points `[n, 2, 1, 1]` (as the point batches
    /// come) in nats.
    pub fn loss(&self, x: Tensor<4>) -> Tensor<1> {
        let n = x.dims()[0];
        -self.log_prob(x.reshape([n, 2])).mean()
    }

    /// The weights, means and standard deviations on the host.
    pub fn parameters(&self) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let w: Vec<f64> =
            to_f32_vec(burn::tensor::activation::softmax(self.logits.val(), 0)).into_iter().map(f64::from).collect();
        let mu = to_f32_vec(self.means.val()).into_iter().map(f64::from).collect();
        let sd = to_f32_vec(self.log_std.val().exp()).into_iter().map(f64::from).collect();
        (w, mu, sd)
    }

    /// `n` points drawn from `rng`: a component by its weight, then its Gaussian with the standard
    /// deviations scaled by `temperature` (0 gives the component means).
    pub fn sample(&self, n: usize, temperature: f64, rng: &mut SeededRng) -> Vec<f32> {
        let (w, mu, sd) = self.parameters();
        let mut out = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let u = rng.uniform() as f64;
            let mut acc = 0.0;
            let c = w.iter().position(|p| {
                acc += p;
                u < acc
            });
            let c = c.unwrap_or(w.len() - 1);
            let e = rng.normal_vec(2);
            for d in 0..2 {
                out.push((mu[2 * c + d] + temperature * sd[2 * c + d] * e[d] as f64) as f32);
            }
        }
        out
    }
}

impl TrainStep for GaussianMixture {
    type Batch = Tensor<4>;

    fn train_step(self, x: Tensor<4>, ctx: &mut StepContext<'_>) -> (Self, StepOutput) {
        let loss = self.loss(x);
        let shown = to_f32_vec(loss.clone().detach())[0] as f64;
        let model = ctx.optimizers.get(OptimizerKey::MODEL).backward_step(self, loss);
        (model, StepOutput { loss: shown, scalars: vec![] })
    }

    fn examples(x: Tensor<4>) -> Option<Vec<Tensor<4>>> {
        Some(genlab_train::privacy::rows(x))
    }

    fn example_loss(
        &self,
        x: Tensor<4>,
        _: &mut genlab_core::SeededRng,
        _: &burn::tensor::Device,
    ) -> Option<genlab_train::privacy::ExampleLoss> {
        Some(genlab_train::privacy::ExampleLoss { loss: self.loss(x), scalars: vec![] })
    }
}

#[cfg(test)]
mod tests;
