//! The VQ-VAE's encoder and decoder, as in van den Oord et al. 2017 and Sonnet's VQ-VAE example:
//! stride-2 4x4 convolutions down, a stack of residual blocks (ReLU, 3x3 convolution, ReLU, 1x1
//! convolution, added to the input) and a 1x1 convolution to the codebook's width; the decoder
//! mirrors it with a 3x3 convolution in, the same residual stack, and stride-2 4x4 transposed
//! convolutions up.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::activation::relu;
use burn::tensor::Device;
use burn::Tensor;
use genlab_core::SeededRng;
use genlab_nn::conv;
use genlab_nn::init::{conv2d, conv_transpose2d};

/// The sizes of the networks: `channels` of the stride-2 layers, `residual_blocks` blocks of
/// `residual_channels` inside, codes of `dim` entries.
pub struct Widths<'a> {
    pub image_channels: usize,
    pub channels: &'a [usize],
    pub residual_blocks: usize,
    pub residual_channels: usize,
    pub dim: usize,
}

#[derive(Module, Debug)]
pub struct ResidualBlock {
    pub conv3: Conv2d,
    pub conv1: Conv2d,
}

impl ResidualBlock {
    fn new(rng: &mut SeededRng, c: usize, hidden: usize, dev: &Device) -> Self {
        let k3 = Conv2dConfig::new([c, hidden], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
        ResidualBlock { conv3: conv2d(rng, &k3, dev), conv1: conv2d(rng, &Conv2dConfig::new([hidden, c], [1, 1]), dev) }
    }

    /// `x + conv1(relu(conv3(relu(x))))`, same shape.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = conv::conv2d(&self.conv1, relu(conv::conv2d(&self.conv3, relu(x.clone()))));
        x + h
    }
}

fn residual_stack(blocks: &[ResidualBlock], x: Tensor<4>) -> Tensor<4> {
    relu(blocks.iter().fold(x, |h, b| b.forward(h)))
}

fn stack(rng: &mut SeededRng, w: &Widths<'_>, c: usize, dev: &Device) -> Vec<ResidualBlock> {
    (0..w.residual_blocks).map(|_| ResidualBlock::new(rng, c, w.residual_channels, dev)).collect()
}

#[derive(Module, Debug)]
pub struct Encoder {
    pub convs: Vec<Conv2d>,
    pub residual: Vec<ResidualBlock>,
    /// 1x1 to the codebook's width.
    pub pre_quant: Conv2d,
}

#[derive(Module, Debug)]
pub struct Decoder {
    /// 3x3 from the codebook's width.
    pub post_quant: Conv2d,
    pub residual: Vec<ResidualBlock>,
    pub deconvs: Vec<ConvTranspose2d>,
}

impl Encoder {
    pub fn new(rng: &mut SeededRng, w: &Widths<'_>, dev: &Device) -> Self {
        let mut c_in = w.image_channels;
        let convs = w
            .channels
            .iter()
            .map(|&c| {
                let cfg = Conv2dConfig::new([c_in, c], [4, 4])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
                c_in = c;
                conv2d(rng, &cfg, dev)
            })
            .collect();
        let residual = stack(rng, w, c_in, dev);
        let pre_quant = conv2d(rng, &Conv2dConfig::new([c_in, w.dim], [1, 1]), dev);
        Encoder { convs, residual, pre_quant }
    }

    /// # Shapes
    /// `x: [batch, channels, height, width]` -> `[batch, dim, height / 2^n, width / 2^n]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = self.convs.iter().fold(x, |h, l| relu(conv::conv2d(l, h))); // [batch, C, H/2^n, W/2^n]
        conv::conv2d(&self.pre_quant, residual_stack(&self.residual, h))
    }
}

impl Decoder {
    pub fn new(rng: &mut SeededRng, w: &Widths<'_>, dev: &Device) -> Self {
        let top = *w.channels.last().expect("a VQ-VAE has at least one stride-2 layer");
        let k3 = Conv2dConfig::new([w.dim, top], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
        let post_quant = conv2d(rng, &k3, dev);
        let residual = stack(rng, w, top, dev);
        let outs: Vec<usize> =
            w.channels.iter().rev().skip(1).copied().chain(std::iter::once(w.image_channels)).collect();
        let mut c_in = top;
        let deconvs = outs
            .iter()
            .map(|&c| {
                let cfg = ConvTranspose2dConfig::new([c_in, c], [4, 4]).with_stride([2, 2]).with_padding([1, 1]);
                c_in = c;
                conv_transpose2d(rng, &cfg, dev)
            })
            .collect();
        Decoder { post_quant, residual, deconvs }
    }

    /// # Shapes
    /// `z: [batch, dim, h, w]` -> `[batch, channels, h * 2^n, w * 2^n]`
    pub fn forward(&self, z: Tensor<4>) -> Tensor<4> {
        let mut h = residual_stack(&self.residual, conv::conv2d(&self.post_quant, z)); // [batch, C, h, w]
        let last = self.deconvs.len() - 1;
        for (i, l) in self.deconvs.iter().enumerate() {
            h = conv::conv_transpose2d(l, h);
            if i < last {
                h = relu(h);
            }
        }
        h
    }
}
