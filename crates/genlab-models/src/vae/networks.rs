//! The VAE's encoder and decoder networks: a multilayer perceptron or a convolutional pair
//! (stride-2 4x4 convolutions down, stride-2 4x4 transposed convolutions up, as in DCGAN).

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::Device;
use burn::Tensor;
use genlab_core::SeededRng;
use genlab_nn::conv;
use genlab_nn::init::{conv2d, conv_transpose2d, linear};

/// `[channels, height, width]` of the data.
pub type ImageShape = [usize; 3];

#[derive(Module, Debug)]
pub enum Encoder {
    Mlp(MlpEncoder),
    Conv(ConvEncoder),
    Spatial(SpatialEncoder),
}

#[derive(Module, Debug)]
pub enum Decoder {
    Mlp(MlpDecoder),
    Conv(ConvDecoder),
    Spatial(SpatialDecoder),
}

/// The VQ-VAE's encoder giving `2 x channels` maps: the latent grid's means, then its
/// log-variances.
#[derive(Module, Debug)]
pub struct SpatialEncoder {
    pub net: crate::vqvae::networks::Encoder,
    /// `[channels, height, width]` of the latent grid.
    pub grid: [usize; 3],
}

/// The VQ-VAE's decoder reading the latent grid.
#[derive(Module, Debug)]
pub struct SpatialDecoder {
    pub net: crate::vqvae::networks::Decoder,
    pub grid: [usize; 3],
}

#[derive(Module, Debug)]
pub struct MlpEncoder {
    pub hidden: Vec<Linear>,
    pub mu: Linear,
    pub logvar: Linear,
}

#[derive(Module, Debug)]
pub struct MlpDecoder {
    pub hidden: Vec<Linear>,
    pub out: Linear,
    pub shape: [usize; 3],
}

#[derive(Module, Debug)]
pub struct ConvEncoder {
    pub convs: Vec<Conv2d>,
    pub mu: Linear,
    pub logvar: Linear,
}

#[derive(Module, Debug)]
pub struct ConvDecoder {
    pub fc: Linear,
    pub deconvs: Vec<ConvTranspose2d>,
    /// `[channels, height, width]` of the first transposed convolution's input.
    pub start: [usize; 3],
}

impl Encoder {
    pub fn mlp(rng: &mut SeededRng, shape: ImageShape, hidden: &[usize], latent: usize, dev: &Device) -> Self {
        let d_in: usize = shape.iter().product();
        let dims: Vec<usize> = std::iter::once(d_in).chain(hidden.iter().copied()).collect();
        let layers = dims.windows(2).map(|w| linear(rng, w[0], w[1], dev)).collect();
        let last = *dims.last().expect("dims holds at least the input size");
        Encoder::Mlp(MlpEncoder {
            hidden: layers,
            mu: linear(rng, last, latent, dev),
            logvar: linear(rng, last, latent, dev),
        })
    }

    pub fn conv(rng: &mut SeededRng, shape: ImageShape, channels: &[usize], latent: usize, dev: &Device) -> Self {
        let mut c_in = shape[0];
        let convs = channels
            .iter()
            .map(|&c| {
                let cfg = Conv2dConfig::new([c_in, c], [4, 4])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
                c_in = c;
                conv2d(rng, &cfg, dev)
            })
            .collect();
        let down = 1 << channels.len();
        let flat = c_in * (shape[1] / down) * (shape[2] / down);
        Encoder::Conv(ConvEncoder { convs, mu: linear(rng, flat, latent, dev), logvar: linear(rng, flat, latent, dev) })
    }

    /// The spatial pair's encoder: `w.dim` is twice the grid's channels.
    pub fn spatial(
        rng: &mut SeededRng,
        w: &crate::vqvae::networks::Widths<'_>,
        grid: [usize; 3],
        dev: &Device,
    ) -> Self {
        Encoder::Spatial(SpatialEncoder { net: crate::vqvae::networks::Encoder::new(rng, w, dev), grid })
    }

    /// Mean and log-variance of q(z | x).
    ///
    /// # Shapes
    /// `x: [batch, channels, height, width]` -> `([batch, latent], [batch, latent])`
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let heads = |h: Tensor<2>, mu: &Linear, logvar: &Linear| (mu.forward(h.clone()), logvar.forward(h));
        match self {
            Encoder::Mlp(m) => {
                heads(m.hidden.iter().fold(x.flatten(1, 3), |h, l| relu(l.forward(h))), &m.mu, &m.logvar)
            }
            Encoder::Conv(c) => {
                let h = c.convs.iter().fold(x, |h, l| relu(conv::conv2d(l, h))); // [batch, C, H/2^n, W/2^n]
                heads(h.flatten(1, 3), &c.mu, &c.logvar)
            }
            Encoder::Spatial(s) => {
                let b = x.dims()[0];
                let [c, h, w] = s.grid;
                let out = s.net.forward(x); // [batch, 2c, h, w]
                let flat = |t: Tensor<4>| t.reshape([b, c * h * w]);
                (flat(out.clone().narrow(1, 0, c)), flat(out.narrow(1, c, c)))
            }
        }
    }
}

impl Decoder {
    pub fn mlp(rng: &mut SeededRng, shape: ImageShape, hidden: &[usize], latent: usize, dev: &Device) -> Self {
        let dims: Vec<usize> = std::iter::once(latent).chain(hidden.iter().rev().copied()).collect();
        let layers = dims.windows(2).map(|w| linear(rng, w[0], w[1], dev)).collect();
        let last = *dims.last().expect("dims holds at least the latent size");
        Decoder::Mlp(MlpDecoder { hidden: layers, out: linear(rng, last, shape.iter().product(), dev), shape })
    }

    pub fn conv(rng: &mut SeededRng, shape: ImageShape, channels: &[usize], latent: usize, dev: &Device) -> Self {
        let down = 1 << channels.len();
        let top = *channels.last().expect("a conv VAE has at least one channel count");
        let start = [top, shape[1] / down, shape[2] / down];
        let fc = linear(rng, latent, start.iter().product(), dev);
        let outs: Vec<usize> = channels.iter().rev().skip(1).copied().chain(std::iter::once(shape[0])).collect();
        let mut c_in = top;
        let deconvs = outs
            .iter()
            .map(|&c| {
                let cfg = ConvTranspose2dConfig::new([c_in, c], [4, 4]).with_stride([2, 2]).with_padding([1, 1]);
                c_in = c;
                conv_transpose2d(rng, &cfg, dev)
            })
            .collect();
        Decoder::Conv(ConvDecoder { fc, deconvs, start })
    }

    /// The spatial pair's decoder: `w.dim` is the grid's channels.
    pub fn spatial(
        rng: &mut SeededRng,
        w: &crate::vqvae::networks::Widths<'_>,
        grid: [usize; 3],
        dev: &Device,
    ) -> Self {
        Decoder::Spatial(SpatialDecoder { net: crate::vqvae::networks::Decoder::new(rng, w, dev), grid })
    }

    /// The likelihood's parameters per pixel (Bernoulli logits or Gaussian means).
    ///
    /// # Shapes
    /// `z: [batch, latent]` -> `[batch, channels, height, width]`
    pub fn forward(&self, z: Tensor<2>) -> Tensor<4> {
        let b = z.dims()[0];
        match self {
            Decoder::Mlp(m) => {
                let h = m.hidden.iter().fold(z, |h, l| relu(l.forward(h)));
                let [c, hh, w] = m.shape;
                m.out.forward(h).reshape([b, c, hh, w])
            }
            Decoder::Spatial(s) => {
                let [c, h, w] = s.grid;
                s.net.forward(z.reshape([b, c, h, w]))
            }
            Decoder::Conv(c) => {
                let [ch, hh, w] = c.start;
                let mut h: Tensor<4> = relu(c.fc.forward(z)).reshape([b, ch, hh, w]); // [batch, C, H/2^n, W/2^n]
                let last = c.deconvs.len() - 1;
                for (i, l) in c.deconvs.iter().enumerate() {
                    h = conv::conv_transpose2d(l, h);
                    if i < last {
                        h = relu(h);
                    }
                }
                h
            }
        }
    }
}
