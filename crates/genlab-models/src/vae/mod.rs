//! The variational autoencoder (Kingma & Welling 2014, <https://arxiv.org/abs/1312.6114>) with a
//! beta weight on the KL term (Higgins et al. 2017), and the importance-weighted bound of Burda et
//! al. 2016 (<https://arxiv.org/abs/1509.00519>) as its log-likelihood estimate.
//!
//! The networks live in [`networks`]; this file holds the probabilistic model around them: the
//! reparameterised posterior, the likelihood, the ELBO, the IWAE bound, sampling.

pub mod networks;

use crate::error::ModelError;
use burn::module::{Module, Param};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::SeededRng;
use genlab_nn::distributions::{
    bernoulli_log_prob, diag_normal_log_prob, gaussian_log_prob, kl_diag_normal_std_normal, log_mean_exp,
    std_normal_log_prob,
};
use genlab_train::{StepContext, StepOutput, TrainStep};
use networks::{Decoder, Encoder, ImageShape};
use serde::{Deserialize, Serialize};

/// Encoder/decoder architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// Fully connected layers of sizes `hidden`.
    Mlp,
    /// Stride-2 convolutions with `channels` filters, mirrored by transposed convolutions.
    Conv,
    /// The VQ-VAE's networks (stride-2 convolutions and residual blocks) with a Gaussian latent
    /// grid of `latent_dim` channels in place of the codebook: the KL-regularised autoencoder of
    /// latent diffusion (Rombach et al. 2022, <https://arxiv.org/abs/2112.10752>). The latent
    /// vector is the grid read channel by channel, `latent_dim x height/2^n x width/2^n` values.
    Spatial,
}

/// p(x | z).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Likelihood {
    /// Bernoulli with logits from the decoder: for binary (or [0, 1]) pixels.
    Bernoulli,
    /// Gaussian with the decoder's mean and one learned standard deviation shared by all pixels
    /// (the "sigma-VAE" of Rybkin et al. 2021), or a fixed one when `sigma` is given.
    Gaussian(GaussianLikelihood),
}

/// The Gaussian likelihood's settings (a struct of its own so unknown keys are rejected).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GaussianLikelihood {
    /// A fixed standard deviation; learned when absent.
    pub sigma: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaeConfig {
    #[serde(default = "default_arch")]
    pub architecture: Architecture,
    #[serde(default = "default_latent")]
    pub latent_dim: usize,
    /// Hidden sizes of the MLP encoder (the decoder mirrors them).
    #[serde(default = "default_hidden")]
    pub hidden: Vec<usize>,
    /// Filters of each stride-2 convolution of the conv encoder (the decoder mirrors them).
    #[serde(default = "default_channels")]
    pub channels: Vec<usize>,
    /// Residual blocks of the spatial architecture.
    #[serde(default = "default_residual_blocks")]
    pub residual_blocks: usize,
    /// Width inside a residual block of the spatial architecture.
    #[serde(default = "default_residual_channels")]
    pub residual_channels: usize,
    #[serde(default = "default_likelihood")]
    pub likelihood: Likelihood,
    /// Weight of the KL term; 1 gives the ELBO.
    #[serde(default = "default_beta")]
    pub beta: f64,
}

fn default_arch() -> Architecture {
    Architecture::Conv
}
fn default_latent() -> usize {
    16
}
fn default_hidden() -> Vec<usize> {
    vec![512, 256]
}
fn default_channels() -> Vec<usize> {
    vec![32, 64]
}
fn default_residual_blocks() -> usize {
    2
}
fn default_residual_channels() -> usize {
    32
}
fn default_likelihood() -> Likelihood {
    Likelihood::Bernoulli
}
fn default_beta() -> f64 {
    1.0
}

impl Default for VaeConfig {
    fn default() -> Self {
        VaeConfig {
            architecture: default_arch(),
            latent_dim: default_latent(),
            hidden: default_hidden(),
            channels: default_channels(),
            residual_blocks: default_residual_blocks(),
            residual_channels: default_residual_channels(),
            likelihood: default_likelihood(),
            beta: default_beta(),
        }
    }
}

impl VaeConfig {
    /// Checks the fields that do not depend on the data; `init` repeats it.
    pub fn check(&self) -> Result<(), ModelError> {
        let bad =
            |field, value: String, expected: &str| Err(ModelError::Config { field, value, expected: expected.into() });
        if self.latent_dim == 0 {
            return bad("latent_dim", "0".into(), "expected at least 1");
        }
        if !(self.beta >= 0.0 && self.beta.is_finite()) {
            return bad("beta", self.beta.to_string(), "expected a finite number >= 0");
        }
        if let Likelihood::Gaussian(GaussianLikelihood { sigma: Some(s) }) = self.likelihood {
            if !(s > 0.0 && s.is_finite()) {
                return bad("likelihood.sigma", s.to_string(), "expected a positive number");
            }
        }
        match self.architecture {
            Architecture::Mlp if self.hidden.contains(&0) => {
                bad("hidden", format!("{:?}", self.hidden), "expected sizes of at least 1")
            }
            Architecture::Spatial if self.residual_channels == 0 => {
                bad("residual_channels", "0".into(), "expected at least 1")
            }
            Architecture::Conv | Architecture::Spatial if self.channels.is_empty() || self.channels.contains(&0) => {
                bad("channels", format!("{:?}", self.channels), "expected at least one filter count, each at least 1")
            }
            _ => Ok(()),
        }
    }

    /// Builds the model for data of `shape` (`[channels, height, width]`), drawing the initial
    /// weights from `seed`.
    pub fn init(&self, shape: ImageShape, seed: u64, device: &Device) -> Result<Vae, ModelError> {
        self.check()?;
        let mut rng = SeededRng::stream(seed, 0x1417);
        let (encoder, decoder) = match self.architecture {
            Architecture::Mlp => (
                Encoder::mlp(&mut rng, shape, &self.hidden, self.latent_dim, device),
                Decoder::mlp(&mut rng, shape, &self.hidden, self.latent_dim, device),
            ),
            Architecture::Conv | Architecture::Spatial => {
                let down = 1usize << self.channels.len();
                if !shape[1].is_multiple_of(down) || !shape[2].is_multiple_of(down) {
                    return Err(ModelError::Config {
                        field: "channels",
                        value: format!("{:?}", self.channels),
                        expected: format!("{} stride-2 layers need height and width divisible by {down}, the data is {}x{} (add a resize transform)", self.channels.len(), shape[1], shape[2]),
                    });
                }
                if self.architecture == Architecture::Conv {
                    (
                        Encoder::conv(&mut rng, shape, &self.channels, self.latent_dim, device),
                        Decoder::conv(&mut rng, shape, &self.channels, self.latent_dim, device),
                    )
                } else {
                    let grid = [self.latent_dim, shape[1] / down, shape[2] / down];
                    let w = |dim| crate::vqvae::networks::Widths {
                        image_channels: shape[0],
                        channels: &self.channels,
                        residual_blocks: self.residual_blocks,
                        residual_channels: self.residual_channels,
                        dim,
                    };
                    (
                        Encoder::spatial(&mut rng, &w(2 * self.latent_dim), grid, device),
                        Decoder::spatial(&mut rng, &w(self.latent_dim), grid, device),
                    )
                }
            }
        };
        let log_sigma = match self.likelihood {
            Likelihood::Bernoulli => None,
            Likelihood::Gaussian(GaussianLikelihood { sigma }) => {
                let p = Param::from_data(TensorData::new(vec![sigma.map_or(0.0, f64::ln) as f32], [1]), device);
                Some(if sigma.is_some() { p.set_require_grad(false) } else { p })
            }
        };
        let latent_dim = match &encoder {
            Encoder::Spatial(e) => e.grid.iter().product(),
            _ => self.latent_dim,
        };
        Ok(Vae { encoder, decoder, log_sigma, latent_dim, beta: self.beta, shape })
    }
}

#[derive(Module, Debug)]
pub struct Vae {
    pub encoder: Encoder,
    pub decoder: Decoder,
    /// log of the Gaussian likelihood's standard deviation (absent for Bernoulli).
    pub log_sigma: Option<Param<Tensor<1>>>,
    pub latent_dim: usize,
    pub beta: f64,
    pub shape: [usize; 3],
}

/// Per-example terms of the ELBO, in nats.
pub struct ElboTerms {
    /// log p(x | z) at one reparameterised z ~ q(z | x). `[batch]`
    pub log_likelihood: Tensor<1>,
    /// KL(q(z | x) || p(z)), analytic. `[batch]`
    pub kl: Tensor<1>,
}

impl Vae {
    /// z = mu + exp(logvar / 2) * eps.
    pub fn reparameterize(mu: Tensor<2>, logvar: Tensor<2>, eps: Tensor<2>) -> Tensor<2> {
        mu + (logvar * 0.5).exp() * eps
    }

    /// log p(x | decoder output), `[batch]`.
    pub fn log_likelihood(&self, out: Tensor<4>, x: Tensor<4>) -> Tensor<1> {
        match &self.log_sigma {
            None => bernoulli_log_prob(out, x),
            Some(ls) => {
                let dims = out.dims();
                let ls = ls.val().reshape([1, 1, 1, 1]).expand(dims);
                gaussian_log_prob(out, ls, x)
            }
        }
    }

    /// The ELBO's terms with the noise `eps` (`[batch, latent]`) given.
    ///
    /// # Shapes
    /// `x: [batch, channels, height, width]`, `eps: [batch, latent]`
    pub fn elbo_terms(&self, x: Tensor<4>, eps: Tensor<2>) -> ElboTerms {
        let (mu, logvar) = self.encoder.forward(x.clone()); // [batch, latent] each
        let z = Self::reparameterize(mu.clone(), logvar.clone(), eps);
        let out = self.decoder.forward(z); // [batch, C, H, W]
        ElboTerms { log_likelihood: self.log_likelihood(out, x), kl: kl_diag_normal_std_normal(mu, logvar) }
    }

    /// The training loss: mean over the batch of -log p(x|z) + beta * KL. Returns (loss, mean
    /// log-likelihood, mean KL).
    pub fn loss(&self, x: Tensor<4>, eps: Tensor<2>) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
        let t = self.elbo_terms(x, eps);
        let ll = t.log_likelihood.mean();
        let kl = t.kl.mean();
        let loss = ll.clone().neg() + kl.clone() * self.beta;
        (loss, ll, kl)
    }

    /// The importance-weighted bound log (1/k) sum_i p(x, z_i) / q(z_i | x) with z_i ~ q(z | x),
    /// per example; `eps` is `[k, batch, latent]`. With k = 1 it is the ELBO (with a sampled KL).
    pub fn iwae_bound(&self, x: Tensor<4>, eps: Tensor<3>) -> Tensor<1> {
        let [k, b, l] = eps.dims();
        let [_, c, h, w] = x.dims();
        let (mu, logvar) = self.encoder.forward(x.clone()); // [batch, latent]
        let rep = |t: Tensor<2>| t.unsqueeze_dim::<3>(0).expand([k, b, l]).reshape([k * b, l]);
        let (mu, logvar) = (rep(mu), rep(logvar));
        let z = Self::reparameterize(mu.clone(), logvar.clone(), eps.reshape([k * b, l])); // [k*batch, latent]
        let xr: Tensor<4> = x.unsqueeze_dim::<5>(0).expand([k, b, c, h, w]).reshape([k * b, c, h, w]);
        let log_px = self.log_likelihood(self.decoder.forward(z.clone()), xr);
        let log_w = log_px + std_normal_log_prob(z.clone()) - diag_normal_log_prob(z, mu, logvar); // [k*batch]
        log_mean_exp(log_w.reshape([k, b]), 0).reshape([b])
    }

    /// The decoder's mean image for each z (sigmoid of the logits for Bernoulli), `[n, C, H, W]`.
    pub fn decode_mean(&self, z: Tensor<2>) -> Tensor<4> {
        let out = self.decoder.forward(z);
        match self.log_sigma {
            None => sigmoid(out),
            Some(_) => out,
        }
    }

    /// `n` samples from the prior, decoded to mean images.
    pub fn sample(&self, n: usize, rng: &mut SeededRng, device: &Device) -> Tensor<4> {
        self.decode_mean(normal(rng, [n, self.latent_dim], device))
    }

    /// Reconstructions through the posterior mean.
    pub fn reconstruct(&self, x: Tensor<4>) -> Tensor<4> {
        let (mu, _) = self.encoder.forward(x);
        self.decode_mean(mu)
    }
}

/// A standard normal tensor drawn from genlab's host stream.
pub fn normal<const D: usize>(rng: &mut SeededRng, shape: [usize; D], device: &Device) -> Tensor<D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(rng.normal_vec(n), shape), device)
}

impl TrainStep for Vae {
    type Batch = Tensor<4>;

    fn train_step(self, x: Tensor<4>, ctx: &mut StepContext<'_>) -> (Self, StepOutput) {
        let b = x.dims()[0];
        let eps = normal(ctx.rng, [b, self.latent_dim], ctx.device);
        let (loss, ll, kl) = self.loss(x, eps);
        // One host read for the three numbers.
        let shown = Tensor::cat(vec![loss.clone().detach(), ll.detach(), kl.detach()], 0);
        let model = ctx.optimizers.get(genlab_train::OptimizerKey::MODEL).backward_step(self, loss);
        let v = genlab_core::tensors::to_f32_vec(shown);
        let out = StepOutput { loss: v[0] as f64, scalars: vec![("log_likelihood", v[1] as f64), ("kl", v[2] as f64)] };
        (model, out)
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
        let eps = normal(rng, [1, self.latent_dim], device);
        let (loss, ll, kl) = self.loss(x, eps);
        Some(genlab_train::privacy::ExampleLoss { loss, scalars: vec![("log_likelihood", ll), ("kl", kl)] })
    }
}

#[cfg(test)]
mod tests;
