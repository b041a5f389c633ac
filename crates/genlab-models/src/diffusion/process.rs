//! The diffusion process on tensors, apart from the network that denoises (as
//! denoising-diffusion-pytorch separates `GaussianDiffusion` from `Unet`): the forward process
//! q(x_t | x0), the training target and loss with optional min-SNR weighting (Hang et al. 2023,
//! <https://arxiv.org/abs/2303.09556>), classifier-free guidance (Ho & Salimans 2022,
//! <https://arxiv.org/abs/2207.12598>), and the re-imposition of known pixels that in-painting
//! does at every step.
//!
//! # Shapes
//! Images are `[batch, channels, height, width]`; timesteps are one per example.

use super::schedule::{NoiseSchedule, Prediction};
use burn::tensor::{Device, TensorData};
use burn::Tensor;

/// A schedule, a prediction target and a loss weighting.
#[derive(Debug, Clone, PartialEq)]
pub struct Diffusion {
    pub schedule: NoiseSchedule,
    pub prediction: Prediction,
    /// Min-SNR-gamma weighting of the loss (gamma = 5 in the paper); None weighs every step alike.
    pub min_snr_gamma: Option<f64>,
}

/// One value per example as a `[batch, 1, 1, 1]` tensor, to scale images example by example.
fn per_example(values: impl Iterator<Item = f64>, device: &Device) -> Tensor<4> {
    let v: Vec<f32> = values.map(|x| x as f32).collect();
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n, 1, 1, 1]), device)
}

impl Diffusion {
    fn alpha_bars<'a>(&'a self, t: &'a [usize]) -> impl Iterator<Item = f64> + 'a {
        t.iter().map(|&t| self.schedule.alphas_cumprod[t])
    }

    /// x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps, each example at its own timestep.
    pub fn q_sample(&self, x0: Tensor<4>, t: &[usize], eps: Tensor<4>) -> Tensor<4> {
        let device = x0.device();
        let signal = per_example(self.alpha_bars(t).map(f64::sqrt), &device);
        let noise = per_example(self.alpha_bars(t).map(|a| (1.0 - a).sqrt()), &device);
        x0 * signal + eps * noise
    }

    /// What the network is trained to output for (x0, eps) at `t`.
    pub fn target(&self, x0: Tensor<4>, t: &[usize], eps: Tensor<4>) -> Tensor<4> {
        match self.prediction {
            Prediction::Epsilon => eps,
            Prediction::Sample => x0,
            Prediction::V => {
                let device = x0.device();
                let sa = per_example(self.alpha_bars(t).map(f64::sqrt), &device);
                let s1 = per_example(self.alpha_bars(t).map(|a| (1.0 - a).sqrt()), &device);
                eps * sa - x0 * s1
            }
        }
    }

    /// Each example's loss weight: 1, or with min-SNR-gamma `min(snr, gamma)` divided by what the
    /// target's error is worth in x0 units (snr for eps, 1 for x0, snr + 1 for v).
    pub fn loss_weights(&self, t: &[usize]) -> Vec<f64> {
        t.iter()
            .map(|&t| match self.min_snr_gamma {
                None => 1.0,
                Some(gamma) => {
                    let snr = self.schedule.snr(t);
                    let clipped = snr.min(gamma);
                    match self.prediction {
                        Prediction::Epsilon => clipped / snr,
                        Prediction::Sample => clipped,
                        Prediction::V => clipped / (snr + 1.0),
                    }
                }
            })
            .collect()
    }

    /// The training loss: the weighted mean over examples of each example's mean squared error.
    pub fn loss(&self, output: Tensor<4>, x0: Tensor<4>, t: &[usize], eps: Tensor<4>) -> Tensor<1> {
        let device = output.device();
        let [b, c, h, w] = output.dims();
        let target = self.target(x0, t, eps);
        let per_pixel = (output - target).powf_scalar(2.0);
        let weights = per_example(self.loss_weights(t).into_iter(), &device);
        (per_pixel * weights).sum().div_scalar((b * c * h * w) as f32).reshape([1])
    }

    /// In-painting's step: where `mask` is 1 the pixels are known, and there `x` is replaced by the
    /// known image noised to the step's level (`t`, or the clean image when `t` is None, after
    /// the last step); elsewhere `x` is kept.
    pub fn impose_known(
        &self,
        x: Tensor<4>,
        known: Tensor<4>,
        mask: Tensor<4>,
        t: Option<usize>,
        eps: Tensor<4>,
    ) -> Tensor<4> {
        let n = x.dims()[0];
        let noised = match t {
            Some(t) => self.q_sample(known, &vec![t; n], eps),
            None => known,
        };
        noised * mask.clone() + x * mask.neg().add_scalar(1.0)
    }
}

/// Classifier-free guidance: `uncond + scale * (cond - uncond)`; scale 0 is the unconditional
/// prediction, 1 the conditional one, larger values push further from the unconditional.
pub fn guided(cond: Tensor<4>, uncond: Tensor<4>, scale: f64) -> Tensor<4> {
    uncond.clone() + (cond - uncond).mul_scalar(scale as f32)
}

#[cfg(test)]
mod tests {
    use super::super::schedule::BetaSchedule;
    use super::*;
    use genlab_core::tensors::to_f32_vec;
    use genlab_core::SeededRng;

    fn diffusion(prediction: Prediction, gamma: Option<f64>) -> Diffusion {
        Diffusion {
            schedule: NoiseSchedule::new(BetaSchedule::Linear, 1000, 1e-4, 0.02),
            prediction,
            min_snr_gamma: gamma,
        }
    }

    fn tensor(v: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
        Tensor::from_data(TensorData::new(v, shape), &Device::flex())
    }

    /// q(x_t | x0) has mean sqrt(a) x0 and variance 1 - a: checked by Monte Carlo on 200,000 draws
    /// at three noise levels, to four standard errors.
    #[test]
    fn forward_process_moments_by_monte_carlo() {
        let d = diffusion(Prediction::Epsilon, None);
        let n = 200_000;
        let mut rng = SeededRng::new(7);
        for t in [10usize, 400, 990] {
            let x0 = 0.6f64;
            let eps = rng.normal_vec(n);
            let x = to_f32_vec(d.q_sample(
                tensor(vec![x0 as f32; n], [n, 1, 1, 1]),
                &vec![t; n],
                tensor(eps, [n, 1, 1, 1]),
            ));
            let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            let a = d.schedule.alphas_cumprod[t];
            let se_mean = ((1.0 - a) / n as f64).sqrt();
            let se_var = (1.0 - a) * (2.0 / (n - 1) as f64).sqrt();
            assert!((mean - a.sqrt() * x0).abs() < 4.0 * se_mean, "t {t}: mean {mean}");
            assert!((var - (1.0 - a)).abs() < 4.0 * se_var, "t {t}: variance {var}");
        }
    }

    #[test]
    fn guidance_scale_zero_is_unconditional_and_one_is_conditional() {
        let (c, u) = (tensor(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2]), tensor(vec![0.5, -1.0, 0.0, 2.0], [1, 1, 2, 2]));
        assert_eq!(to_f32_vec(guided(c.clone(), u.clone(), 0.0)), to_f32_vec(u.clone()));
        assert_eq!(to_f32_vec(guided(c.clone(), u.clone(), 1.0)), to_f32_vec(c.clone()));
        assert_eq!(to_f32_vec(guided(c, u, 3.0)), vec![2.0, 8.0, 9.0, 8.0]);
    }

    /// Min-SNR-gamma: steps noisier than gamma's SNR keep weight 1 (eps); cleaner ones are capped.
    #[test]
    fn min_snr_weights_have_their_known_values() {
        let d = diffusion(Prediction::Epsilon, Some(5.0));
        let (clean, noisy) = (1usize, 900usize);
        assert!(d.schedule.snr(clean) > 5.0 && d.schedule.snr(noisy) < 5.0);
        let w = d.loss_weights(&[clean, noisy]);
        assert!((w[0] - 5.0 / d.schedule.snr(clean)).abs() < 1e-12 && w[1] == 1.0, "{w:?}");
        let v = diffusion(Prediction::V, Some(5.0)).loss_weights(&[noisy]);
        let snr = d.schedule.snr(noisy);
        assert!((v[0] - snr / (snr + 1.0)).abs() < 1e-12);
        assert_eq!(diffusion(Prediction::Epsilon, None).loss_weights(&[clean]), vec![1.0]);
    }

    /// The loss of a perfect prediction is 0, and of a known error its weighted mean square.
    #[test]
    fn loss_is_the_weighted_mean_square_error() {
        let d = diffusion(Prediction::V, None);
        let (x0, eps) = (tensor(vec![0.2, -0.4], [2, 1, 1, 1]), tensor(vec![1.0, 0.5], [2, 1, 1, 1]));
        let t = [100, 700];
        let target = d.target(x0.clone(), &t, eps.clone());
        let zero = to_f32_vec(d.loss(target.clone(), x0.clone(), &t, eps.clone()))[0];
        assert!(zero.abs() < 1e-12);
        let off = to_f32_vec(d.loss(target.add_scalar(0.5), x0, &t, eps))[0];
        assert!((off - 0.25).abs() < 1e-6, "{off}");
    }

    /// Known pixels come back noised to the step's level; the others are untouched.
    #[test]
    fn in_painting_re_imposes_only_the_known_pixels() {
        let d = diffusion(Prediction::Epsilon, None);
        let x = tensor(vec![9.0, 9.0, 9.0, 9.0], [1, 1, 2, 2]);
        let known = tensor(vec![1.0, -1.0, 0.5, 0.0], [1, 1, 2, 2]);
        let mask = tensor(vec![1.0, 1.0, 0.0, 0.0], [1, 1, 2, 2]);
        let eps = tensor(vec![0.3, 0.3, 0.3, 0.3], [1, 1, 2, 2]);
        let a = d.schedule.alphas_cumprod[250];
        let got = to_f32_vec(d.impose_known(x.clone(), known.clone(), mask.clone(), Some(250), eps.clone()));
        let want0 = (a.sqrt() * 1.0 + (1.0 - a).sqrt() * 0.3) as f32;
        assert!((got[0] - want0).abs() < 1e-6 && got[2] == 9.0 && got[3] == 9.0, "{got:?}");
        let last = to_f32_vec(d.impose_known(x, known, mask, None, eps));
        assert_eq!(last, vec![1.0, -1.0, 9.0, 9.0]);
    }
}
