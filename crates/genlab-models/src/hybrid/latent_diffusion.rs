//! Latent diffusion (Rombach et al. 2022, <https://arxiv.org/abs/2112.10752>): the diffusion model
//! of `diffusion` trained on the latent grids of a frozen KL-regularised autoencoder (the VAE's
//! spatial architecture), each latent scaled by one factor so the grids have unit variance (the
//! paper's `scale_factor`, 1 / the standard deviation of the training latents); a sample is a
//! denoised grid divided by that factor and decoded by the autoencoder's decoder.

use crate::diffusion::model::{DiffusionBatch, DiffusionModel};
use crate::vae::networks::Encoder;
use crate::vae::Vae;
use burn::module::{Module, Param};
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_train::{StepContext, StepOutput, TrainStep};

#[derive(Module, Debug)]
pub struct LatentDiffusion {
    pub diffusion: DiffusionModel,
    /// The first stage, frozen.
    pub autoencoder: Vae,
    /// The factor the latents are multiplied by, `[1]`, saved with the weights.
    pub latent_scale: Param<Tensor<1>>,
}

impl LatentDiffusion {
    /// `autoencoder` must have the spatial architecture; it is frozen.
    pub fn new(diffusion: DiffusionModel, autoencoder: Vae, scale: f32, device: &Device) -> Self {
        assert!(latent_grid(&autoencoder).is_some(), "latent diffusion needs a spatial autoencoder");
        let latent_scale = Param::from_data(TensorData::new(vec![scale], [1]), device).set_require_grad(false);
        LatentDiffusion { diffusion, autoencoder: autoencoder.no_grad(), latent_scale }
    }

    /// `[channels, height, width]` of a latent grid.
    pub fn grid(&self) -> [usize; 3] {
        latent_grid(&self.autoencoder).expect("checked in new")
    }

    pub fn scale(&self) -> f32 {
        genlab_core::tensors::to_f32_vec(self.latent_scale.val())[0]
    }

    /// The scaled posterior means of images `x`, `[batch, c, h, w]`.
    pub fn encode(&self, x: Tensor<4>) -> Tensor<4> {
        let b = x.dims()[0];
        let [c, h, w] = self.grid();
        let (mu, _) = self.autoencoder.encoder.forward(x); // [batch, c * h * w]
        mu.reshape([b, c, h, w]) * self.latent_scale.val().reshape([1, 1, 1, 1])
    }

    /// The decoder's mean images of scaled latents `[batch, c, h, w]`.
    pub fn decode(&self, z: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = z.dims();
        let z = z / self.latent_scale.val().reshape([1, 1, 1, 1]);
        self.autoencoder.decode_mean(z.reshape([b, c * h * w]))
    }
}

/// The latent grid of a spatial VAE; None for the other architectures.
pub fn latent_grid(vae: &Vae) -> Option<[usize; 3]> {
    match &vae.encoder {
        Encoder::Spatial(s) => Some(s.grid),
        _ => None,
    }
}

impl TrainStep for LatentDiffusion {
    /// Latent grids as the encoder gives them (posterior means, unscaled) and, for a conditional
    /// model, their labels; the step scales them.
    type Batch = DiffusionBatch;

    fn train_step(self, (z, labels): DiffusionBatch, ctx: &mut StepContext<'_>) -> (Self, StepOutput) {
        let LatentDiffusion { diffusion, autoencoder, latent_scale } = self;
        let z = z * latent_scale.val().reshape([1, 1, 1, 1]);
        let (diffusion, out) = diffusion.train_step((z, labels), ctx);
        (LatentDiffusion { diffusion, autoencoder, latent_scale }, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::model::DiffusionConfig;
    use crate::diffusion::unet::UnetConfig;
    use crate::vae::{Architecture, GaussianLikelihood, Likelihood, VaeConfig};

    fn model(device: &Device) -> LatentDiffusion {
        let vae = VaeConfig {
            architecture: Architecture::Spatial,
            channels: vec![4, 8],
            residual_blocks: 1,
            residual_channels: 4,
            latent_dim: 2,
            likelihood: Likelihood::Gaussian(GaussianLikelihood { sigma: Some(0.1) }),
            ..Default::default()
        }
        .init([1, 8, 8], 0, device)
        .unwrap();
        assert_eq!(vae.latent_dim, 2 * 2 * 2);
        let unet = UnetConfig {
            base_channels: 8,
            channel_mults: vec![1],
            attention_resolutions: vec![],
            groups: 4,
            ..Default::default()
        };
        let diffusion =
            DiffusionConfig { unet, timesteps: 10, ..Default::default() }.init([2, 2, 2], None, 1, device).unwrap();
        LatentDiffusion::new(diffusion, vae, 2.5, device)
    }

    /// Decoding undoes the scale: decode(encode(x)) is the autoencoder's reconstruction.
    #[test]
    fn the_scale_cancels_between_encode_and_decode() {
        let dev = Device::flex();
        let m = model(&dev);
        assert_eq!(m.grid(), [2, 2, 2]);
        let x: Tensor<4> = Tensor::from_data(
            TensorData::new((0..128).map(|i| (i % 7) as f32 / 7.0).collect::<Vec<_>>(), [2, 1, 8, 8]),
            &dev,
        );
        let z = m.encode(x.clone());
        let (mu, _) = m.autoencoder.encoder.forward(x.clone());
        let scaled = genlab_core::tensors::to_f32_vec(z.clone());
        for (a, b) in scaled.iter().zip(genlab_core::tensors::to_f32_vec(mu)) {
            assert!((a - 2.5 * b).abs() < 1e-5);
        }
        let a = genlab_core::tensors::to_f32_vec(m.decode(z));
        let b = genlab_core::tensors::to_f32_vec(m.autoencoder.reconstruct(x));
        assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-5));
    }

    fn decoder_weight(m: &LatentDiffusion) -> Vec<f32> {
        match &m.autoencoder.decoder {
            crate::vae::networks::Decoder::Spatial(s) => {
                genlab_core::tensors::to_f32_vec(s.net.post_quant.weight.val())
            }
            _ => panic!("a spatial decoder"),
        }
    }

    /// Training moves the UNet and leaves the autoencoder and the scale as they were.
    #[test]
    fn only_the_diffusion_model_trains() {
        use genlab_core::SeededRng;
        use genlab_train::{OptimizerConfig, Optimizers};
        let ad = Device::flex().autodiff();
        let m = model(&ad);
        let before = decoder_weight(&m);
        let scale = m.scale();
        let mut opt = Optimizers::single(OptimizerConfig::default(), None);
        let mut rng = SeededRng::new(0);
        let z = Tensor::from_data(TensorData::new(rng.normal_vec(3 * 8), [3, 2, 2, 2]), &ad);
        let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step: 1, device: &ad };
        let (m, out) = m.train_step((z, None), &mut ctx);
        assert!(out.loss.is_finite());
        assert_eq!(decoder_weight(&m), before);
        assert_eq!(m.scale(), scale);
    }
}
