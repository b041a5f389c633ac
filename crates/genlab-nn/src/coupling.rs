//! The affine coupling layer of RealNVP (Dinh et al. 2017, <https://arxiv.org/abs/1605.08803>):
//! a binary mask `b` splits the input into a part that passes through unchanged and conditions a
//! convolutional network, and a part that is scaled and shifted by that network's outputs,
//!
//! `y = b * x + (1 - b) * (x * exp(s(b * x)) + t(b * x))`, `log |det J| = sum((1 - b) * s)`,
//!
//! which inverts exactly: `x = b * y + (1 - b) * (y - t(b * y)) * exp(-s(b * y))`. The log-scale is
//! bounded, `s = scale * tanh(raw)` with a learned per-channel `scale`, so no step can blow up.
//! Checkerboard and channel-wise masks, as in the paper.

use crate::distributions::sum_but_batch;
use crate::init::conv2d;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::SeededRng;
use serde::{Deserialize, Serialize};

/// Which entries pass through unchanged (`b = 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskKind {
    /// Pixels with `(h + w)` even (or odd, with `flip`) pass through.
    Checkerboard,
    /// The first half of the channels (or the second, with `flip`) pass through.
    Channel,
}

/// The binary mask `b`, `[1, c, h, w]`.
pub fn mask(kind: MaskKind, flip: bool, [c, h, w]: [usize; 3], device: &Device) -> Tensor<4> {
    let mut v = Vec::with_capacity(c * h * w);
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let keep = match kind {
                    MaskKind::Checkerboard => (y + x) % 2 == 0,
                    MaskKind::Channel => ch < c / 2,
                };
                v.push(if keep != flip { 1.0f32 } else { 0.0 });
            }
        }
    }
    Tensor::from_data(TensorData::new(v, [1, c, h, w]), device)
}

#[derive(Module, Debug)]
pub struct AffineCoupling {
    /// 3x3 convolutions (1x1 on vectors), ReLU between them; the last outputs `2 * channels` (raw log-scale, shift).
    pub convs: Vec<Conv2d>,
    /// Per-channel bound of the log-scale.
    pub scale: Param<Tensor<1>>,
    /// `b`, `[1, channels, height, width]` (a constant, not trained).
    pub mask: Tensor<4>,
}

impl AffineCoupling {
    /// A coupling layer for `[channels, height, width]` inputs with `hidden` filters in its two
    /// hidden convolutions. The last convolution starts at zero, so the layer starts as the identity
    /// (as Glow does); `scale` starts at 1. On `[d, 1, 1]` inputs (vectors, such as 2-D points) the
    /// convolutions are 1x1, so the conditioner is a two-hidden-layer MLP.
    pub fn new(
        rng: &mut SeededRng,
        shape: [usize; 3],
        kind: MaskKind,
        flip: bool,
        hidden: usize,
        device: &Device,
    ) -> Self {
        let c = shape[0];
        let (k, p) = if shape[1] == 1 && shape[2] == 1 { (1, 0) } else { (3, 1) };
        let conv = |rng: &mut SeededRng, i: usize, o: usize| {
            conv2d(rng, &Conv2dConfig::new([i, o], [k, k]).with_padding(PaddingConfig2d::Explicit(p, p, p, p)), device)
        };
        let mut last = conv(rng, hidden, 2 * c);
        // Fresh parameters, not `Param::map`: a mapped value would lose its gradient flag.
        last.weight = Param::from_tensor(last.weight.val().zeros_like());
        last.bias = last.bias.map(|b| Param::from_tensor(b.val().zeros_like()));
        AffineCoupling {
            convs: vec![conv(rng, c, hidden), conv(rng, hidden, hidden), last],
            scale: Param::from_data(TensorData::new(vec![1.0f32; c], [c]), device),
            mask: mask(kind, flip, shape, device),
        }
    }

    /// `(s, t)`, each `[batch, c, h, w]`, zero where `b = 1`.
    fn scale_shift(&self, xb: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [n, c, h, w] = xb.dims();
        let last = self.convs.len() - 1;
        let mut a = xb;
        for (i, conv) in self.convs.iter().enumerate() {
            a = crate::conv::conv2d(conv, a);
            if i < last {
                a = relu(a);
            }
        }
        let raw = a.reshape([n, 2, c, h, w]); // [batch, 2, c, h, w]
        let free = self.mask.clone().neg() + 1.0; // 1 - b
        let scale = self.scale.val().reshape([1, c, 1, 1]);
        let s = raw.clone().narrow(1, 0, 1).reshape([n, c, h, w]).tanh() * scale * free.clone();
        let t = raw.narrow(1, 1, 1).reshape([n, c, h, w]) * free;
        (s, t)
    }

    /// `x -> (y, log |det dy/dx|)`, the log-determinant per example.
    ///
    /// # Shapes
    /// `x: [batch, c, h, w]` -> `([batch, c, h, w], [batch])`
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let xb = x.clone() * self.mask.clone();
        let (s, t) = self.scale_shift(xb.clone());
        let y = xb + (x * s.clone().exp() + t) * (self.mask.clone().neg() + 1.0);
        (y, sum_but_batch(s))
    }

    /// `y -> x`, the exact inverse of [`forward`](Self::forward).
    pub fn inverse(&self, y: Tensor<4>) -> Tensor<4> {
        let yb = y.clone() * self.mask.clone();
        let (s, t) = self.scale_shift(yb.clone());
        yb + (y - t) * s.neg().exp() * (self.mask.clone().neg() + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genlab_core::tensors::to_f32_vec;

    /// A layer with every parameter drawn at random (not the identity it starts as).
    fn trained_like(kind: MaskKind, flip: bool, shape: [usize; 3], seed: u64, device: &Device) -> AffineCoupling {
        let mut rng = SeededRng::new(seed);
        let mut l = AffineCoupling::new(&mut rng, shape, kind, flip, 8, device);
        let mut r2 = SeededRng::new(seed + 100);
        let mut last = l.convs.pop().expect("three convolutions");
        let dims = last.weight.val().dims();
        let n: usize = dims.iter().product();
        last.weight = Param::from_data(TensorData::new(r2.symmetric_uniform_vec(n, 0.3), dims), device);
        l.convs.push(last);
        l.scale = Param::from_data(TensorData::new(r2.symmetric_uniform_vec(shape[0], 1.5), [shape[0]]), device);
        l
    }

    #[test]
    fn the_mask_is_a_constant_not_a_parameter() {
        let d = Device::flex();
        let l = AffineCoupling::new(&mut SeededRng::new(0), [2, 4, 4], MaskKind::Channel, false, 4, &d);
        let names: Vec<String> = genlab_core::tensors::NamedTensors::from_module(&l).0.into_keys().collect();
        assert!(!names.iter().any(|n| n.starts_with("mask")), "{names:?}");
        assert!(names.contains(&"scale".to_string()), "{names:?}");
    }

    #[test]
    fn masks_pass_half_the_entries() {
        let d = Device::flex();
        for kind in [MaskKind::Checkerboard, MaskKind::Channel] {
            let a = to_f32_vec(mask(kind, false, [2, 4, 4], &d));
            let b = to_f32_vec(mask(kind, true, [2, 4, 4], &d));
            assert_eq!(a.iter().sum::<f32>(), 16.0);
            assert!(a.iter().zip(&b).all(|(x, y)| x + y == 1.0), "flip is the complement");
        }
    }

    #[test]
    fn starts_as_the_identity_and_inverts_when_trained_like() {
        let d = Device::flex();
        let mut rng = SeededRng::new(1);
        let x = Tensor::<4>::from_data(TensorData::new(rng.normal_vec(3 * 2 * 6 * 6), [3, 2, 6, 6]), &d);
        let fresh = AffineCoupling::new(&mut rng, [2, 6, 6], MaskKind::Checkerboard, false, 8, &d);
        let (y, ld) = fresh.forward(x.clone());
        assert_eq!(to_f32_vec(y), to_f32_vec(x.clone()));
        assert!(to_f32_vec(ld).iter().all(|&v| v == 0.0));
        for (kind, flip) in [
            (MaskKind::Checkerboard, false),
            (MaskKind::Checkerboard, true),
            (MaskKind::Channel, false),
            (MaskKind::Channel, true),
        ] {
            let l = trained_like(kind, flip, [2, 6, 6], 3, &d);
            let (y, ld) = l.forward(x.clone());
            assert!(to_f32_vec(ld).iter().any(|v| v.abs() > 0.1), "{kind:?}: not the identity");
            let back = to_f32_vec(l.inverse(y));
            let max = back.iter().zip(to_f32_vec(x.clone())).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(max <= 1e-4, "{kind:?} flip {flip}: max |x - f^-1(f(x))| = {max}");
        }
    }

    #[test]
    fn log_det_equals_the_brute_force_jacobian() {
        let ad = Device::flex().autodiff();
        for (kind, flip) in [(MaskKind::Checkerboard, true), (MaskKind::Channel, false)] {
            let l = trained_like(kind, flip, [2, 3, 3], 5, &ad);
            let x0 = SeededRng::new(9).normal_vec(18);
            let log_det =
                crate::testing::check_log_det(&format!("{kind:?} flip {flip}"), |x| l.forward(x), &x0, [2, 3, 3], &ad);
            assert!(log_det.abs() > 0.1, "{kind:?}: a non-trivial Jacobian ({log_det})");
        }
    }
}
