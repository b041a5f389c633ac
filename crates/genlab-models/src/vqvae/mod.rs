//! VQ-VAE (van den Oord et al. 2017, <https://arxiv.org/abs/1711.00937>): a convolutional
//! encoder/decoder ([`networks`]) around the vector quantiser of `genlab_nn::codebook`. Training
//! minimises the reconstruction's mean squared error plus `commitment` times the commitment loss;
//! the gradient reaches the encoder straight through the quantiser, and the codebook follows
//! moving averages of the encoder outputs assigned to it, after each gradient step.
//!
//! An image becomes a grid of code indices (`[height / 2^n, width / 2^n]`, read row by row as
//! tokens by a prior), and a grid decodes back to an image.

pub mod networks;

use crate::error::ModelError;
use burn::module::Module;
use burn::tensor::{Device, Int};
use burn::Tensor;
use genlab_core::SeededRng;
use genlab_nn::codebook::{CodebookStats, VectorQuantizer};
use genlab_train::{StepContext, StepOutput, TrainStep};
use networks::{Decoder, Encoder, Widths};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VqVaeConfig {
    /// Filters of the stride-2 4x4 convolutions (each halves height and width).
    #[serde(default = "default_channels")]
    pub channels: Vec<usize>,
    /// Residual blocks after the encoder's convolutions (and before the decoder's).
    #[serde(default = "two")]
    pub residual_blocks: usize,
    /// Width inside a residual block.
    #[serde(default = "default_residual_channels")]
    pub residual_channels: usize,
    /// Codes in the codebook.
    #[serde(default = "default_codebook_size")]
    pub codebook_size: usize,
    /// Entries of a code vector.
    #[serde(default = "default_code_dim")]
    pub code_dim: usize,
    /// Weight of the commitment loss (the paper's beta).
    #[serde(default = "default_commitment")]
    pub commitment: f64,
    /// Decay of the codebook's moving averages.
    #[serde(default = "default_decay")]
    pub decay: f64,
    /// Laplace smoothing of the codes' counts.
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
    /// A code whose moving-average count of assigned vectors per batch falls below this restarts
    /// at a random encoder output of the batch; 0 never restarts.
    #[serde(default = "default_restart")]
    pub restart_threshold: f64,
}

fn default_channels() -> Vec<usize> {
    vec![32, 64]
}
fn two() -> usize {
    2
}
fn default_residual_channels() -> usize {
    32
}
fn default_codebook_size() -> usize {
    256
}
fn default_code_dim() -> usize {
    32
}
fn default_commitment() -> f64 {
    0.25
}
fn default_decay() -> f64 {
    0.99
}
fn default_epsilon() -> f64 {
    1e-5
}
fn default_restart() -> f64 {
    1.0
}

impl Default for VqVaeConfig {
    fn default() -> Self {
        VqVaeConfig {
            channels: default_channels(),
            residual_blocks: 2,
            residual_channels: default_residual_channels(),
            codebook_size: default_codebook_size(),
            code_dim: default_code_dim(),
            commitment: default_commitment(),
            decay: default_decay(),
            epsilon: default_epsilon(),
            restart_threshold: default_restart(),
        }
    }
}

impl VqVaeConfig {
    pub fn check(&self) -> Result<(), ModelError> {
        let bad =
            |field, value: String, expected: &str| Err(ModelError::Config { field, value, expected: expected.into() });
        if self.channels.is_empty() || self.channels.contains(&0) {
            return bad(
                "channels",
                format!("{:?}", self.channels),
                "expected at least one filter count, each at least 1",
            );
        }
        for (field, v) in [
            ("residual_channels", self.residual_channels),
            ("codebook_size", self.codebook_size),
            ("code_dim", self.code_dim),
        ] {
            if v == 0 {
                return bad(field, "0".into(), "expected at least 1");
            }
        }
        if !(self.commitment >= 0.0 && self.commitment.is_finite()) {
            return bad("commitment", self.commitment.to_string(), "expected a finite number >= 0");
        }
        if !(self.decay > 0.0 && self.decay < 1.0) {
            return bad("decay", self.decay.to_string(), "expected a number in (0, 1)");
        }
        if !(self.epsilon > 0.0 && self.epsilon.is_finite()) {
            return bad("epsilon", self.epsilon.to_string(), "expected a positive number");
        }
        if !(self.restart_threshold >= 0.0 && self.restart_threshold.is_finite()) {
            return bad("restart_threshold", self.restart_threshold.to_string(), "expected a finite number >= 0");
        }
        Ok(())
    }

    /// The code grid of `[channels, height, width]` images: `[height / 2^n, width / 2^n]`.
    pub fn grid(&self, shape: [usize; 3]) -> Result<[usize; 2], ModelError> {
        let down = 1usize << self.channels.len();
        if !shape[1].is_multiple_of(down) || !shape[2].is_multiple_of(down) {
            return Err(ModelError::Config {
                field: "channels",
                value: format!("{:?}", self.channels),
                expected: format!(
                    "{} stride-2 layers need height and width divisible by {down}, the data is {}x{} (add a resize transform)",
                    self.channels.len(),
                    shape[1],
                    shape[2]
                ),
            });
        }
        Ok([shape[1] / down, shape[2] / down])
    }

    /// The model for images of `shape`, its weights drawn from `seed`.
    pub fn init(&self, shape: [usize; 3], seed: u64, device: &Device) -> Result<VqVae, ModelError> {
        self.check()?;
        let grid = self.grid(shape)?;
        let mut rng = SeededRng::stream(seed, 0x7a7e);
        let w = Widths {
            image_channels: shape[0],
            channels: &self.channels,
            residual_blocks: self.residual_blocks,
            residual_channels: self.residual_channels,
            dim: self.code_dim,
        };
        let encoder = Encoder::new(&mut rng, &w, device);
        let decoder = Decoder::new(&mut rng, &w, device);
        let ema = (self.decay, self.epsilon, self.restart_threshold);
        let quantizer = VectorQuantizer::new(&mut rng, self.codebook_size, self.code_dim, ema, device);
        Ok(VqVae { encoder, quantizer, decoder, commitment: self.commitment, grid, shape })
    }
}

#[derive(Module, Debug)]
pub struct VqVae {
    pub encoder: Encoder,
    pub quantizer: VectorQuantizer,
    pub decoder: Decoder,
    pub commitment: f64,
    /// `[rows, columns]` of an image's code grid.
    pub grid: [usize; 2],
    /// `[channels, height, width]` of the images.
    pub shape: [usize; 3],
}

/// A batch through the model.
pub struct Pass {
    pub reconstruction: Tensor<4>,
    /// Mean squared error per pixel.
    pub mse: Tensor<1>,
    pub commitment: Tensor<1>,
    /// `[batch * rows * columns]`, image by image, row-major.
    pub codes: Tensor<1, Int>,
    /// The encoder's outputs, one row per grid cell, `[batch * rows * columns, dim]`.
    pub vectors: Tensor<2>,
}

/// `[b, d, h, w]` -> `[b * h * w, d]`, cells image by image and row by row.
fn cells(z: Tensor<4>) -> Tensor<2> {
    let [b, d, h, w] = z.dims();
    z.permute([0, 2, 3, 1]).reshape([b * h * w, d])
}

/// `[b * h * w, d]` -> `[b, d, h, w]`.
fn image_of_cells(z: Tensor<2>, [b, h, w]: [usize; 3]) -> Tensor<4> {
    let d = z.dims()[1];
    z.reshape([b, h, w, d]).permute([0, 3, 1, 2])
}

impl VqVae {
    pub fn codebook_size(&self) -> usize {
        self.quantizer.codes()
    }

    /// Tokens per image.
    pub fn tokens(&self) -> usize {
        self.grid[0] * self.grid[1]
    }

    /// Encode, quantise (straight through) and decode.
    pub fn pass(&self, x: Tensor<4>) -> Pass {
        let b = x.dims()[0];
        let [h, w] = self.grid;
        let vectors = cells(self.encoder.forward(x.clone())); // [b * h * w, dim]
        let q = self.quantizer.quantize(vectors.clone());
        let reconstruction = self.decoder.forward(image_of_cells(q.straight_through, [b, h, w])); // [b, C, H, W]
        let mse = (reconstruction.clone() - x).powi_scalar(2).mean();
        Pass { reconstruction, mse, commitment: q.commitment, codes: q.codes, vectors }
    }

    /// The code grids of `x`, `[batch, rows * columns]`, row-major.
    pub fn encode(&self, x: Tensor<4>) -> Tensor<2, Int> {
        let b = x.dims()[0];
        self.quantizer.nearest(cells(self.encoder.forward(x))).reshape([b, self.tokens()])
    }

    /// Images of code grids `[batch, rows * columns]`.
    pub fn decode(&self, codes: Tensor<2, Int>) -> Tensor<4> {
        let [b, t] = codes.dims();
        let [h, w] = self.grid;
        let z = self.quantizer.lookup(codes.reshape([b * t])); // [b * t, dim]
        self.decoder.forward(image_of_cells(z, [b, h, w]))
    }
}

/// What a training step reports beside its loss.
pub fn step_scalars(mse: f64, commitment: f64, s: &CodebookStats) -> Vec<(&'static str, f64)> {
    vec![
        ("mse", mse),
        ("commitment", commitment),
        ("perplexity", s.perplexity),
        ("codes_used", s.used as f64),
        ("restarts", s.restarted as f64),
    ]
}

impl TrainStep for VqVae {
    type Batch = Tensor<4>;

    fn train_step(self, x: Tensor<4>, ctx: &mut StepContext<'_>) -> (Self, StepOutput) {
        let p = self.pass(x);
        let loss = p.mse.clone() + p.commitment.clone() * self.commitment;
        // One host read for the three numbers.
        let shown = Tensor::cat(vec![loss.clone().detach(), p.mse.detach(), p.commitment.detach()], 0);
        let mut model = ctx.optimizers.get(genlab_train::OptimizerKey::MODEL).backward_step(self, loss);
        let (quantizer, stats) = model.quantizer.ema_update(p.vectors.detach(), p.codes, ctx.rng);
        model.quantizer = quantizer;
        let v = genlab_core::tensors::to_f32_vec(shown);
        (model, StepOutput { loss: v[0] as f64, scalars: step_scalars(v[1] as f64, v[2] as f64, &stats) })
    }
}

#[cfg(test)]
mod tests;
