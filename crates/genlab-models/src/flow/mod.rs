//! Normalizing flows trained by exact maximum likelihood: RealNVP (Dinh et al. 2017,
//! <https://arxiv.org/abs/1605.08803>) and Glow (Kingma & Dhariwal 2018,
//! <https://arxiv.org/abs/1807.03039>), both multi-scale, on dequantised images or on continuous
//! vectors (2-D toy densities).
//!
//! The layers live in `genlab-nn` and [`layers`]; this file holds the model around them: the
//! data-space transform (uniform dequantisation and the logit), the standard normal prior of every
//! factored-out variable, the log-likelihood, bits/dim, encode/decode and sampling.
//!
//! Bits/dim follows the papers: with 8-bit pixels `x` and uniform noise `u` in [0, 1), the density
//! of `x + u` on [0, 256)^D, so `bpd = -log2 p(x + u) / D`, an upper bound (in expectation over `u`)
//! on the discrete model's code length.

pub mod layers;

use crate::error::ModelError;
use burn::module::Module;
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::SeededRng;
use genlab_nn::actnorm::ActNorm;
use genlab_nn::coupling::{AffineCoupling, MaskKind};
use genlab_nn::distributions::std_normal_log_prob;
use genlab_nn::invconv::InvConv1x1;
use genlab_nn::logit::{logit_forward, logit_inverse};
use genlab_train::{StepContext, StepOutput, TrainStep};
use layers::{FlowStep, Level};
use serde::{Deserialize, Serialize};

/// Which flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowArchitecture {
    /// Per scale: `steps` checkerboard couplings, a squeeze, `steps` channel couplings, then half
    /// the channels factored out; the last scale has `steps + 1` checkerboard couplings.
    RealNvp,
    /// Per scale: a squeeze, `steps` steps of ActNorm -> invertible 1x1 conv -> affine coupling,
    /// then half the channels factored out (except after the last scale).
    Glow,
}

/// How the data reaches the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dequantization {
    /// 8-bit pixels (0..=255, no scale transform) plus uniform noise, divided by 256, then the
    /// logit transform.
    Uniform,
    /// Continuous data (2-D points), modelled as it is.
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    #[serde(default = "default_arch")]
    pub architecture: FlowArchitecture,
    /// Levels of the multi-scale architecture (1 for vectors).
    #[serde(default = "default_scales")]
    pub scales: usize,
    /// Coupling layers (or Glow steps) per stage; on vectors, the total.
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Filters (units, on vectors) of the coupling networks' hidden layers.
    #[serde(default = "default_hidden")]
    pub hidden: usize,
    #[serde(default = "default_dequantization")]
    pub dequantization: Dequantization,
    /// RealNVP's alpha of the logit transform, in (0, 0.5).
    #[serde(default = "default_alpha")]
    pub logit_alpha: f64,
}

fn default_arch() -> FlowArchitecture {
    FlowArchitecture::RealNvp
}
fn default_scales() -> usize {
    2
}
fn default_steps() -> usize {
    3
}
fn default_hidden() -> usize {
    64
}
fn default_dequantization() -> Dequantization {
    Dequantization::Uniform
}
fn default_alpha() -> f64 {
    0.05
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            architecture: default_arch(),
            scales: default_scales(),
            steps: default_steps(),
            hidden: default_hidden(),
            dequantization: default_dequantization(),
            logit_alpha: default_alpha(),
        }
    }
}

impl FlowConfig {
    /// Checks the fields that do not depend on the data; `init` repeats it.
    pub fn check(&self) -> Result<(), ModelError> {
        let bad =
            |field, value: String, expected: &str| Err(ModelError::Config { field, value, expected: expected.into() });
        if self.scales == 0 {
            return bad("scales", "0".into(), "expected at least 1");
        }
        if self.steps == 0 {
            return bad("steps", "0".into(), "expected at least 1");
        }
        if self.hidden == 0 {
            return bad("hidden", "0".into(), "expected at least 1");
        }
        if !(self.logit_alpha > 0.0 && self.logit_alpha < 0.5) {
            return bad("logit_alpha", self.logit_alpha.to_string(), "expected a value in (0, 0.5)");
        }
        Ok(())
    }

    /// Builds the flow for data of `shape` (`[channels, height, width]`; `[d, 1, 1]` for vectors),
    /// drawing the initial weights from `seed`. Every coupling starts as the identity.
    pub fn init(&self, shape: [usize; 3], seed: u64, device: &Device) -> Result<Flow, ModelError> {
        self.check()?;
        let mut rng = SeededRng::stream(seed, 0xf10);
        let [c, h, w] = shape;
        let glow = self.architecture == FlowArchitecture::Glow;
        let step = |rng: &mut SeededRng, s: [usize; 3], kind, flip| FlowStep {
            actnorm: glow.then(|| ActNorm::new(s[0], device)),
            invconv: glow.then(|| InvConv1x1::new(rng, s[0], device)),
            coupling: AffineCoupling::new(rng, s, kind, flip, self.hidden, device),
        };
        let stage = |rng: &mut SeededRng, s: [usize; 3], kind, n: usize| -> Vec<FlowStep> {
            (0..n).map(|i| step(rng, s, kind, i % 2 == 1)).collect()
        };
        let bad = |field, value: String, expected: String| ModelError::Config { field, value, expected };
        let levels = if h == 1 && w == 1 {
            if c < 2 {
                return Err(bad(
                    "dequantization",
                    "vectors".into(),
                    format!("a flow on vectors needs at least 2 dimensions, the data has {c}"),
                ));
            }
            if self.scales != 1 {
                return Err(bad("scales", self.scales.to_string(), "vector data has one scale; expected 1".into()));
            }
            let before = stage(&mut rng, shape, MaskKind::Channel, self.steps);
            vec![Level { before, squeeze: false, after: vec![], split: false }]
        } else {
            let squeezes = if glow { self.scales } else { self.scales - 1 };
            let down = 1usize << squeezes;
            if !h.is_multiple_of(down) || !w.is_multiple_of(down) {
                return Err(bad(
                    "scales",
                    self.scales.to_string(),
                    format!("{squeezes} squeezes need height and width divisible by {down}, the data is {h}x{w}"),
                ));
            }
            let mut s = shape;
            let mut levels = Vec::with_capacity(self.scales);
            for i in 0..self.scales {
                let last = i + 1 == self.scales;
                let squeezed = [4 * s[0], s[1] / 2, s[2] / 2];
                let level = if glow {
                    let after = stage(&mut rng, squeezed, MaskKind::Channel, self.steps);
                    s = squeezed;
                    Level { before: vec![], squeeze: true, after, split: !last }
                } else if last {
                    let before = stage(&mut rng, s, MaskKind::Checkerboard, self.steps + 1);
                    Level { before, squeeze: false, after: vec![], split: false }
                } else {
                    let before = stage(&mut rng, s, MaskKind::Checkerboard, self.steps);
                    let after = stage(&mut rng, squeezed, MaskKind::Channel, self.steps);
                    s = squeezed;
                    Level { before, squeeze: true, after, split: true }
                };
                if level.split {
                    s[0] -= s[0] / 2;
                }
                levels.push(level);
            }
            levels
        };
        Ok(Flow {
            levels,
            shape,
            dequantize: self.dequantization == Dequantization::Uniform,
            logit_alpha: self.logit_alpha,
        })
    }
}

#[derive(Module, Debug)]
pub struct Flow {
    pub levels: Vec<Level>,
    pub shape: [usize; 3],
    /// Uniform dequantisation and the logit transform (8-bit images), or none (vectors).
    pub dequantize: bool,
    pub logit_alpha: f64,
}

const LN_256: f64 = 5.545_177_444_479_562;

impl Flow {
    /// Entries per example, `D`.
    pub fn dims(&self) -> usize {
        self.shape.iter().product()
    }

    /// The shapes of the latent variables, one per level (factored-out parts first, the last
    /// level's output last); their sizes add up to `D`.
    pub fn latent_shapes(&self) -> Vec<[usize; 3]> {
        let mut s = self.shape;
        let mut out = Vec::with_capacity(self.levels.len());
        for l in &self.levels {
            if l.squeeze {
                s = [4 * s[0], s[1] / 2, s[2] / 2];
            }
            if l.split {
                out.push([s[0] / 2, s[1], s[2]]);
                s[0] -= s[0] / 2;
            }
        }
        out.push(s);
        out
    }

    /// Data -> the flow's input space, with the log-determinant: for images, `x` holds 8-bit
    /// values and `u` the dequantisation noise in [0, 1); the log-det includes the `1/256` scale,
    /// so densities are of `x + u` on [0, 256)^D.
    fn preprocess(&self, x: Tensor<4>, u: Option<Tensor<4>>) -> (Tensor<4>, Tensor<1>) {
        let n = x.dims()[0];
        if !self.dequantize {
            return (x.clone(), Tensor::zeros([n], &x.device()));
        }
        let y = match u {
            Some(u) => (x + u) / 256.0,
            None => (x + 0.5) / 256.0,
        };
        let (h, ld) = logit_forward(y, self.logit_alpha);
        (h, ld - self.dims() as f64 * LN_256)
    }

    /// The latent variables of each level and the flow's log-determinant.
    fn forward_levels(&self, h: Tensor<4>) -> (Vec<Tensor<4>>, Tensor<1>) {
        let n = h.dims()[0];
        let mut log_det = Tensor::<1>::zeros([n], &h.device());
        let mut zs = Vec::with_capacity(self.levels.len());
        let mut h = h;
        for l in &self.levels {
            let (kept, z, ld) = l.forward(h);
            log_det = log_det + ld;
            zs.extend(z);
            h = kept;
        }
        zs.push(h);
        (zs, log_det)
    }

    /// `log p(x + u)` per example in nats: for images the density on [0, 256)^D of the
    /// dequantised pixels (`u = None` uses the bin centres), for vectors the density of `x`.
    ///
    /// # Shapes
    /// `x, u: [batch, c, h, w]` -> `[batch]`
    pub fn log_prob(&self, x: Tensor<4>, u: Option<Tensor<4>>) -> Tensor<1> {
        let (h, pre) = self.preprocess(x, u);
        let (zs, log_det) = self.forward_levels(h);
        let prior = zs.into_iter().map(|z| std_normal_log_prob(z.flatten(1, 3))).reduce(|a, b| a + b);
        prior.expect("at least one latent") + log_det + pre
    }

    /// Bits per dimension from [`log_prob`](Self::log_prob): `-log p / (D ln 2)`.
    pub fn bits_per_dim(&self, log_prob: Tensor<1>) -> Tensor<1> {
        log_prob.neg() / (self.dims() as f64 * std::f64::consts::LN_2)
    }

    /// `x -> z`, the latent variables of every level flattened and concatenated, `[batch, D]`.
    pub fn encode(&self, x: Tensor<4>, u: Option<Tensor<4>>) -> Tensor<2> {
        let (h, _) = self.preprocess(x, u);
        let (zs, _) = self.forward_levels(h);
        Tensor::cat(zs.into_iter().map(|z| z.flatten(1, 3)).collect(), 1)
    }

    /// `z -> x`, the inverse of [`encode`](Self::encode): for images the dequantised pixels
    /// divided by 256, `(x + u) / 256` in [0, 1); for vectors the point.
    ///
    /// # Shapes
    /// `z: [batch, D]` -> `[batch, c, h, w]`
    pub fn decode(&self, z: Tensor<2>) -> Tensor<4> {
        let n = z.dims()[0];
        let mut parts = Vec::new();
        let mut at = 0;
        for [c, h, w] in self.latent_shapes() {
            parts.push(z.clone().narrow(1, at, c * h * w).reshape([n, c, h, w]));
            at += c * h * w;
        }
        let mut h = parts.pop().expect("the last level's output");
        for l in self.levels.iter().rev() {
            let factored = if l.split { Some(parts.pop().expect("one latent per split")) } else { None };
            h = l.inverse(h, factored);
        }
        if self.dequantize {
            logit_inverse(h, self.logit_alpha)
        } else {
            h
        }
    }

    /// `n` samples at `temperature` (the prior's standard deviation; 1 samples the model, lower
    /// trades diversity for fidelity, as Glow's figures do), decoded as by [`decode`](Self::decode).
    pub fn sample(&self, n: usize, temperature: f64, rng: &mut SeededRng, device: &Device) -> Tensor<4> {
        let z = Tensor::<2>::from_data(TensorData::new(rng.normal_vec(n * self.dims()), [n, self.dims()]), device);
        self.decode(z * temperature)
    }

    /// Glow's data-dependent initialisation of every ActNorm from the batch `x` (with noise `u`);
    /// a RealNVP flow is returned unchanged.
    pub fn initialize(mut self, x: Tensor<4>, u: Option<Tensor<4>>) -> Self {
        let (mut h, _) = self.preprocess(x, u);
        for l in &mut self.levels {
            h = l.initialize(h);
        }
        self
    }

    /// The training loss of a batch: mean bits/dim (images) or mean nats (vectors).
    pub fn loss(&self, x: Tensor<4>, u: Option<Tensor<4>>) -> Tensor<1> {
        let lp = self.log_prob(x, u);
        if self.dequantize {
            self.bits_per_dim(lp).mean()
        } else {
            lp.neg().mean()
        }
    }
}

/// Uniform noise in [0, 1) of `shape` from `rng`.
pub fn uniform_noise(rng: &mut SeededRng, shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(rng.uniform_vec(shape.iter().product()), shape), device)
}

impl TrainStep for Flow {
    type Batch = Tensor<4>;

    fn train_step(self, x: Tensor<4>, ctx: &mut StepContext<'_>) -> (Self, StepOutput) {
        let u = self.dequantize.then(|| uniform_noise(ctx.rng, x.dims(), ctx.device));
        let loss = self.loss(x, u);
        let shown = loss.clone().detach();
        let model = ctx.optimizers.get(genlab_train::OptimizerKey::MODEL).backward_step(self, loss);
        let v = genlab_core::tensors::to_f32_vec(shown)[0] as f64;
        (model, StepOutput { loss: v, scalars: vec![] })
    }

    fn examples(x: Tensor<4>) -> Option<Vec<Tensor<4>>> {
        Some(genlab_train::privacy::rows(x))
    }

    fn example_loss(
        &self,
        x: Tensor<4>,
        rng: &mut SeededRng,
        device: &Device,
    ) -> Option<genlab_train::privacy::ExampleLoss> {
        let u = self.dequantize.then(|| uniform_noise(rng, x.dims(), device));
        Some(genlab_train::privacy::ExampleLoss { loss: self.loss(x, u), scalars: vec![] })
    }
}

#[cfg(test)]
mod tests;
