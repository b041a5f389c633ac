//! Glow's activation normalisation (Kingma & Dhariwal 2018, <https://arxiv.org/abs/1807.03039>): a
//! per-channel affine map `y = (x + bias) * exp(log_scale)` with log-determinant
//! `h * w * sum(log_scale)`, whose parameters are set from the first batch so that each channel of
//! `y` has zero mean and unit variance there (data-dependent initialisation), then trained.

use burn::module::{Module, Param};
use burn::tensor::{Device, TensorData};
use burn::Tensor;

#[derive(Module, Debug)]
pub struct ActNorm {
    pub bias: Param<Tensor<1>>,
    pub log_scale: Param<Tensor<1>>,
}

impl ActNorm {
    /// The identity map for `channels` channels, until [`initialize`](Self::initialize).
    pub fn new(channels: usize, device: &Device) -> Self {
        let zeros = || Param::from_data(TensorData::new(vec![0.0f32; channels], [channels]), device);
        ActNorm { bias: zeros(), log_scale: zeros() }
    }

    /// Data-dependent initialisation from `x` (`[batch, c, h, w]`): bias = -mean, log_scale =
    /// -log(std + 1e-6), per channel, as Glow does.
    pub fn initialize(self, x: Tensor<4>) -> Self {
        let [n, c, h, w] = x.dims();
        let flat = x.detach().swap_dims(0, 1).reshape([c, n * h * w]); // [c, n*h*w]
        let mean = flat.clone().mean_dim(1); // [c, 1]
        let std = (flat - mean.clone()).powi_scalar(2).mean_dim(1).sqrt(); // [c, 1]
        let device = mean.device();
        let bias = mean.neg().reshape([c]);
        let log_scale = (std + 1e-6).log().neg().reshape([c]);
        ActNorm {
            bias: Param::from_data(bias.into_data(), &device),
            log_scale: Param::from_data(log_scale.into_data(), &device),
        }
    }

    /// # Shapes
    /// `x: [batch, c, h, w]` -> `([batch, c, h, w], [batch])`
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let [n, c, h, w] = x.dims();
        let b = self.bias.val().reshape([1, c, 1, 1]);
        let s = self.log_scale.val();
        let y = (x + b) * s.clone().reshape([1, c, 1, 1]).exp();
        let log_det = (s.sum() * (h * w) as f32).expand([n]);
        (y, log_det)
    }

    pub fn inverse(&self, y: Tensor<4>) -> Tensor<4> {
        let c = y.dims()[1];
        y * self.log_scale.val().reshape([1, c, 1, 1]).neg().exp() - self.bias.val().reshape([1, c, 1, 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genlab_core::tensors::to_f32_vec;
    use genlab_core::SeededRng;

    fn batch(seed: u64, d: &Device) -> Tensor<4> {
        let mut r = SeededRng::new(seed);
        // Channel c has mean 3c - 2 and standard deviation c + 0.5.
        let v: Vec<f32> = r.normal_vec(16 * 3 * 4 * 4);
        let v = v.iter().enumerate().map(|(i, z)| {
            let c = (i / 16) % 3;
            z * (c as f32 + 0.5) + 3.0 * c as f32 - 2.0
        });
        Tensor::from_data(TensorData::new(v.collect::<Vec<f32>>(), [16, 3, 4, 4]), d)
    }

    #[test]
    fn initialisation_standardises_the_first_batch_and_the_map_inverts() {
        let d = Device::flex();
        let x = batch(1, &d);
        let a = ActNorm::new(3, &d).initialize(x.clone());
        let (y, log_det) = a.forward(x.clone());
        let yv = to_f32_vec(y.clone());
        for c in 0..3 {
            let ch: Vec<f64> = (0..16)
                .flat_map(|b| (0..16).map(move |p| (b, p)))
                .map(|(b, p)| yv[(b * 3 + c) * 16 + p] as f64)
                .collect();
            let mean = ch.iter().sum::<f64>() / ch.len() as f64;
            let var = ch.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / ch.len() as f64;
            assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "channel {c}: mean {mean}, var {var}");
        }
        // log |det| = h * w * sum(log_scale), the same for every example; checked against the
        // per-entry scales in float64.
        let s: f64 = to_f32_vec(a.log_scale.val()).iter().map(|&v| v as f64).sum::<f64>() * 16.0;
        assert!(to_f32_vec(log_det).iter().all(|&l| (l as f64 - s).abs() < 1e-4 * s.abs().max(1.0)));
        let back = to_f32_vec(a.inverse(y));
        let max = back.iter().zip(to_f32_vec(x)).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
        assert!(max <= 1e-4, "max |x - f^-1(f(x))| = {max}");
    }

    #[test]
    fn log_det_equals_the_brute_force_jacobian() {
        let ad = Device::flex().autodiff();
        let a = ActNorm::new(3, &ad).initialize(batch(2, &ad));
        let x0: Vec<f32> = SeededRng::new(4).normal_vec(3 * 2 * 2);
        let brute = crate::testing::check_log_det("actnorm", |x| a.forward(x), &x0, [3, 2, 2], &ad);
        assert!(brute.abs() > 0.1, "a non-trivial Jacobian ({brute})");
    }
}
