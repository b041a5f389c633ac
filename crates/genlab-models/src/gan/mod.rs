//! Generative adversarial networks (Goodfellow et al. 2014, <https://arxiv.org/abs/1406.2661>):
//! the DCGAN networks of [`networks`], the losses of [`losses`], and the training step that the
//! one trainer drives: each trainer step updates the discriminator once, and the generator every
//! `n_critic`-th step, each with its own optimiser ("discriminator", "generator"), so two
//! learning rates (TTUR, Heusel et al. 2017) are two optimiser configs.

pub mod losses;
pub mod networks;

use crate::error::ModelError;
use burn::module::Module;
use burn::tensor::{Device, Int, TensorData};
use burn::Tensor;
use genlab_core::SeededRng;
use genlab_train::{StepContext, StepOutput, TrainStep};
use losses::GanLoss;
use networks::{Discriminator, Generator};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GanConfig {
    #[serde(default = "default_latent")]
    pub latent_dim: usize,
    /// The generator's filters before each upsampling (two for 28x28, three for 32x32).
    #[serde(default = "default_g_channels")]
    pub generator_channels: Vec<usize>,
    /// The discriminator's filters in each stride-2 convolution.
    #[serde(default = "default_d_channels")]
    pub discriminator_channels: Vec<usize>,
    #[serde(default = "default_loss")]
    pub loss: GanLoss,
    /// Spectral normalisation of every discriminator weight.
    #[serde(default)]
    pub spectral_norm: bool,
    /// Class-conditional generator and projection discriminator.
    #[serde(default)]
    pub conditional: bool,
    /// Discriminator updates per generator update.
    #[serde(default = "default_n_critic")]
    pub n_critic: usize,
}

fn default_latent() -> usize {
    64
}
fn default_g_channels() -> Vec<usize> {
    vec![128, 64]
}
fn default_d_channels() -> Vec<usize> {
    vec![64, 128]
}
fn default_loss() -> GanLoss {
    GanLoss::NonSaturating
}
fn default_n_critic() -> usize {
    1
}

impl Default for GanConfig {
    fn default() -> Self {
        GanConfig {
            latent_dim: default_latent(),
            generator_channels: default_g_channels(),
            discriminator_channels: default_d_channels(),
            loss: default_loss(),
            spectral_norm: false,
            conditional: false,
            n_critic: default_n_critic(),
        }
    }
}

impl GanConfig {
    /// Checks the fields that do not depend on the data; `init` repeats it.
    pub fn check(&self) -> Result<(), ModelError> {
        let bad =
            |field, value: String, expected: &str| Err(ModelError::Config { field, value, expected: expected.into() });
        if self.latent_dim == 0 {
            return bad("latent_dim", "0".into(), "expected at least 1");
        }
        if self.n_critic == 0 {
            return bad("n_critic", "0".into(), "expected at least 1");
        }
        for (field, ch) in
            [("generator_channels", &self.generator_channels), ("discriminator_channels", &self.discriminator_channels)]
        {
            if ch.is_empty() || ch.contains(&0) {
                return bad(field, format!("{ch:?}"), "expected at least one filter count, each at least 1");
            }
        }
        Ok(())
    }

    /// Builds the GAN for square images of `shape` (`[channels, size, size]`) and, when
    /// conditional, `classes` classes; weights drawn from `seed`.
    pub fn init(&self, shape: [usize; 3], classes: usize, seed: u64, device: &Device) -> Result<Gan, ModelError> {
        self.check()?;
        let [_, h, w] = shape;
        for (field, ch) in
            [("generator_channels", &self.generator_channels), ("discriminator_channels", &self.discriminator_channels)]
        {
            let down = 1usize << ch.len();
            if h != w || !h.is_multiple_of(down) {
                return Err(ModelError::Config {
                    field,
                    value: format!("{ch:?}"),
                    expected: format!(
                        "{} stride-2 layers need square images with a side divisible by {down}, the data is {h}x{w}",
                        ch.len()
                    ),
                });
            }
        }
        if self.conditional && classes < 2 {
            return Err(ModelError::Config {
                field: "conditional",
                value: "true".into(),
                expected: format!("labelled data with at least 2 classes, the data has {classes}"),
            });
        }
        let classes = self.conditional.then_some(classes);
        let mut rng = SeededRng::stream(seed, 0x6a4);
        Ok(Gan {
            generator: Generator::new(&mut rng, shape, self.latent_dim, &self.generator_channels, classes, device),
            discriminator: Discriminator::new(
                &mut rng,
                shape,
                &self.discriminator_channels,
                classes,
                self.spectral_norm,
                device,
            ),
            loss: self.loss,
            n_critic: self.n_critic,
        })
    }
}

#[derive(Module, Debug)]
pub struct Gan {
    pub generator: Generator,
    pub discriminator: Discriminator,
    #[module(skip)]
    pub loss: GanLoss,
    pub n_critic: usize,
}

/// A training batch: images in [-1, 1] and, for a conditional GAN, their labels.
pub type GanBatch = (Tensor<4>, Option<Tensor<1, Int>>);

impl Gan {
    /// `[channels, height, width]` of the generated images.
    pub fn image_shape(&self) -> [usize; 3] {
        let c = self.generator.ups.last().map_or(1, |u| u.weight.dims()[1]); // [in, out, k, k]
        let side = self.generator.start[1] << self.generator.ups.len();
        [c, side, side]
    }

    /// The number of classes of a conditional GAN (`None` when unconditional).
    pub fn classes(&self) -> Option<usize> {
        self.generator.embed.as_ref().map(|e| e.dims()[0])
    }

    pub fn conditional(&self) -> bool {
        self.classes().is_some()
    }

    /// Noise `[n, latent_dim]` from `rng`.
    pub fn noise(&self, n: usize, rng: &mut SeededRng, device: &Device) -> Tensor<2> {
        let d = self.generator.latent_dim;
        Tensor::from_data(TensorData::new(rng.normal_vec(n * d), [n, d]), device)
    }

    /// `n` samples in [-1, 1]; `labels` (one per sample) ask a conditional generator for classes.
    pub fn sample(&self, n: usize, labels: Option<&[usize]>, rng: &mut SeededRng, device: &Device) -> Tensor<4> {
        self.decode(self.noise(n, rng, device), labels, device)
    }

    /// The images of latents `z` `[n, latent_dim]`, in [-1, 1]; `labels` (one per sample) ask a
    /// conditional generator for classes.
    pub fn decode(&self, z: Tensor<2>, labels: Option<&[usize]>, device: &Device) -> Tensor<4> {
        let y = labels.map(|l| {
            let v: Vec<i64> = l.iter().map(|&c| c as i64).collect();
            Tensor::<1, Int>::from_data(TensorData::new(v, [l.len()]), device)
        });
        self.generator.forward(z, y)
    }
}

/// The generator's optimiser.
pub const GENERATOR: genlab_train::OptimizerKey = genlab_train::OptimizerKey("generator");
/// The discriminator's optimiser.
pub const DISCRIMINATOR: genlab_train::OptimizerKey = genlab_train::OptimizerKey("discriminator");

impl TrainStep for Gan {
    type Batch = GanBatch;

    fn train_step(self, (x, y): GanBatch, ctx: &mut StepContext<'_>) -> (Self, StepOutput) {
        let Gan { generator, mut discriminator, loss, n_critic } = self;
        let n = x.dims()[0];
        let y = if generator.embed.is_some() { y } else { None };
        let d = generator.latent_dim;
        let z = Tensor::<2>::from_data(TensorData::new(ctx.rng.normal_vec(n * d), [n, d]), ctx.device);
        let fake = generator.forward(z, y.clone()); // [batch, c, h, w]
                                                    // The discriminator sees real and generated images in one pass (one power-iteration step).
        let both = Tensor::cat(vec![x, fake.clone().detach()], 0);
        let labels = y.clone().map(|l| Tensor::cat(vec![l.clone(), l], 0));
        let logits = discriminator.forward(both, labels, true); // [2 batch]
        let (real_logits, fake_logits) = (logits.clone().narrow(0, 0, n), logits.narrow(0, n, n));
        let d_loss = loss.discriminator(real_logits.clone(), fake_logits.clone());
        // What the generator's loss was against this step's discriminator, before its update.
        let shown = Tensor::cat(
            vec![
                d_loss.clone().detach(),
                loss.generator(fake_logits.clone().detach()),
                real_logits.detach().mean(),
                fake_logits.detach().mean(),
            ],
            0,
        );
        let mut discriminator = ctx.optimizers.get(DISCRIMINATOR).backward_step(discriminator, d_loss);
        let generator = if ctx.step.is_multiple_of(n_critic as u64) {
            let g_loss = loss.generator(discriminator.forward(fake, y, false));
            ctx.optimizers.get(GENERATOR).backward_step(generator, g_loss)
        } else {
            generator
        };
        generator.sync_running_statistics();
        let v = genlab_core::tensors::to_f32_vec(shown);
        let out = StepOutput {
            loss: v[0] as f64,
            scalars: vec![("g_loss", v[1] as f64), ("d_real", v[2] as f64), ("d_fake", v[3] as f64)],
        };
        (Gan { generator, discriminator, loss, n_critic }, out)
    }
}

#[cfg(test)]
mod tests;
