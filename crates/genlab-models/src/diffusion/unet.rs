//! The denoising network: a UNet as in DDPM (Ho et al. 2020) and denoising-diffusion-pytorch.
//! Residual blocks (GroupNorm, SiLU, 3x3 convolutions, dropout) take the sinusoidal time
//! embedding through an MLP, plus a class embedding for a conditional model (its last row is the
//! learned "no class" token that classifier-free guidance asks for); self-attention runs at the
//! resolutions named in `attention_resolutions`; stride-2 convolutions go down, nearest-neighbour
//! doubling and a convolution come back up, joined by skip connections.
//!
//! An image whose sides do not halve evenly down the levels is zero-padded symmetrically to the
//! next multiple of 2^(levels - 1) and the output cropped back; 28x28 MNIST with three levels
//! (28, 14, 7) needs no padding.
//!
//! Dropout masks are drawn from the caller's seeded stream, not the backend's generator, so a
//! resumed run continues bit for bit.
//!
//! # Shapes
//! `forward(x [b, c, h, w], t [b], labels [b]) -> [b, c, h, w]`

use crate::error::ModelError;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, PaddingConfig2d};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Int, TensorData};
use burn::Tensor;
use genlab_core::SeededRng;
use genlab_nn::activation::silu;
use genlab_nn::conv::conv2d;
use genlab_nn::dropout::dropout;
use genlab_nn::group_norm;
use genlab_nn::init;
use serde::{Deserialize, Serialize};

/// The UNet's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnetConfig {
    /// Channels of the first level (64).
    #[serde(default = "default_base")]
    pub base_channels: usize,
    /// Each level's channels as a multiple of `base_channels` ([1, 2, 2]); one level per entry.
    #[serde(default = "default_mults")]
    pub channel_mults: Vec<usize>,
    /// Residual blocks per level going down (one more coming up) (2).
    #[serde(default = "default_blocks")]
    pub blocks_per_level: usize,
    /// Resolutions (sides, after padding) with self-attention ([7]: MNIST's lowest).
    #[serde(default = "default_attention")]
    pub attention_resolutions: Vec<usize>,
    /// Dropout in the residual blocks (0.1).
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// GroupNorm groups (8); every level's channels must divide by it.
    #[serde(default = "default_groups")]
    pub groups: usize,
}

fn default_base() -> usize {
    64
}
fn default_mults() -> Vec<usize> {
    vec![1, 2, 2]
}
fn default_blocks() -> usize {
    2
}
fn default_attention() -> Vec<usize> {
    vec![7]
}
fn default_dropout() -> f64 {
    0.1
}
fn default_groups() -> usize {
    8
}

impl Default for UnetConfig {
    fn default() -> Self {
        UnetConfig {
            base_channels: default_base(),
            channel_mults: default_mults(),
            blocks_per_level: default_blocks(),
            attention_resolutions: default_attention(),
            dropout: default_dropout(),
            groups: default_groups(),
        }
    }
}

fn conv3(rng: &mut SeededRng, c_in: usize, c_out: usize, stride: usize, device: &Device) -> Conv2d {
    let cfg = Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
    init::conv2d(rng, &cfg, device)
}

fn conv1(rng: &mut SeededRng, c_in: usize, c_out: usize, device: &Device) -> Conv2d {
    init::conv2d(rng, &Conv2dConfig::new([c_in, c_out], [1, 1]), device)
}

fn group_norm(groups: usize, channels: usize, device: &Device) -> GroupNorm {
    GroupNormConfig::new(groups, channels).init(device)
}

/// A residual block with the time (and class) embedding added after its first convolution.
#[derive(Module, Debug)]
pub struct ResBlock {
    pub norm1: GroupNorm,
    pub conv1: Conv2d,
    pub embed: Linear,
    pub norm2: GroupNorm,
    pub conv2: Conv2d,
    pub skip: Option<Conv2d>,
    pub dropout: f64,
}

impl ResBlock {
    fn new(rng: &mut SeededRng, c_in: usize, c_out: usize, emb: usize, cfg: &UnetConfig, device: &Device) -> Self {
        ResBlock {
            norm1: group_norm(cfg.groups, c_in, device),
            conv1: conv3(rng, c_in, c_out, 1, device),
            embed: init::linear(rng, emb, c_out, device),
            norm2: group_norm(cfg.groups, c_out, device),
            conv2: conv3(rng, c_out, c_out, 1, device),
            skip: (c_in != c_out).then(|| conv1(rng, c_in, c_out, device)),
            dropout: cfg.dropout,
        }
    }

    fn forward(&self, x: Tensor<4>, emb: Tensor<2>, rng: Option<&mut SeededRng>) -> Tensor<4> {
        let h = conv2d(&self.conv1, group_norm::group_norm(&self.norm1, x.clone(), true)); // [b, c_out, h, w]
        let [b, c, _, _] = h.dims();
        let h = h + self.embed.forward(silu(emb)).reshape([b, c, 1, 1]);
        let h = dropout(group_norm::group_norm(&self.norm2, h, true), self.dropout, rng);
        let h = conv2d(&self.conv2, h);
        let skip = match &self.skip {
            Some(s) => conv2d(s, x),
            None => x,
        };
        h + skip
    }
}

/// Single-head self-attention over the positions of a feature map, with a residual connection.
#[derive(Module, Debug)]
pub struct SelfAttention {
    pub norm: GroupNorm,
    pub qkv: Conv2d,
    pub out: Conv2d,
}

impl SelfAttention {
    fn new(rng: &mut SeededRng, c: usize, groups: usize, device: &Device) -> Self {
        SelfAttention {
            norm: group_norm(groups, c, device),
            qkv: conv1(rng, c, 3 * c, device),
            out: conv1(rng, c, c, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let qkv = conv2d(&self.qkv, group_norm::group_norm(&self.norm, x.clone(), false)).reshape([b, 3, c, h * w]);
        let part = |i: usize| qkv.clone().slice([0..b, i..i + 1, 0..c, 0..h * w]).reshape([b, c, h * w]);
        let (q, k, v) = (part(0), part(1), part(2)); // [b, c, hw] each
        let scores = q.swap_dims(1, 2).matmul(k).div_scalar((c as f32).sqrt()); // [b, hw, hw]
        let attended = softmax(scores, 2).matmul(v.swap_dims(1, 2)); // [b, hw, c]
        x + conv2d(&self.out, attended.swap_dims(1, 2).reshape([b, c, h, w]))
    }
}

/// One level going down or coming up.
#[derive(Module, Debug)]
pub struct Level {
    pub blocks: Vec<ResBlock>,
    pub attention: Vec<Option<SelfAttention>>,
    /// Down: a stride-2 convolution; up: a convolution after nearest-neighbour doubling.
    pub resample: Option<Conv2d>,
}

#[derive(Module, Debug)]
pub struct Unet {
    pub time1: Linear,
    pub time2: Linear,
    /// `classes + 1` rows; the last is the "no class" token.
    pub class_embed: Option<Param<Tensor<2>>>,
    pub conv_in: Conv2d,
    pub down: Vec<Level>,
    pub mid1: ResBlock,
    pub mid_attention: SelfAttention,
    pub mid2: ResBlock,
    pub up: Vec<Level>,
    pub out_norm: GroupNorm,
    pub out_conv: Conv2d,
    pub base_channels: usize,
    /// Zero rows/columns added on each side: [top, bottom, left, right].
    pub pad: [usize; 4],
}

/// DDPM's sinusoidal embedding of timesteps `t`: `dim / 2` sines then `dim / 2` cosines at
/// frequencies 10000^(-i / (dim/2 - 1)), as denoising-diffusion-pytorch's `SinusoidalPosEmb`.
pub fn timestep_embedding(t: &[usize], dim: usize, device: &Device) -> Tensor<2> {
    let half = dim / 2;
    let scale = (10000f64).ln() / (half.max(2) - 1) as f64;
    let mut v = Vec::with_capacity(t.len() * dim);
    for &t in t {
        let args: Vec<f64> = (0..half).map(|i| t as f64 * (-(i as f64) * scale).exp()).collect();
        v.extend(args.iter().map(|a| a.sin() as f32));
        v.extend(args.iter().map(|a| a.cos() as f32));
    }
    Tensor::from_data(TensorData::new(v, [t.len(), 2 * half]), device)
}

impl UnetConfig {
    /// Checks the shape before anything is built; the error names the key.
    pub fn check(&self) -> Result<(), ModelError> {
        let bad = |field: &'static str, value: String, expected: &str| {
            Err(ModelError::Config { field, value, expected: expected.into() })
        };
        if self.base_channels == 0 {
            return bad("base_channels", "0".into(), "expected at least 1");
        }
        if self.channel_mults.is_empty() || self.channel_mults.contains(&0) {
            return bad(
                "channel_mults",
                format!("{:?}", self.channel_mults),
                "expected one entry or more, each at least 1",
            );
        }
        if self.blocks_per_level == 0 {
            return bad("blocks_per_level", "0".into(), "expected at least 1");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", self.dropout.to_string(), "expected a value in [0, 1)");
        }
        if self.groups == 0 || self.channel_mults.iter().any(|m| !(m * self.base_channels).is_multiple_of(self.groups))
        {
            return bad(
                "groups",
                self.groups.to_string(),
                "every level's channels (base_channels x channel_mults) must divide by it",
            );
        }
        Ok(())
    }

    /// The network for images of `shape`, conditional on `classes` classes when given.
    pub fn init(
        &self,
        shape: [usize; 3],
        classes: Option<usize>,
        seed: u64,
        device: &Device,
    ) -> Result<Unet, ModelError> {
        self.check()?;
        let [c_img, h, w] = shape;
        let levels = self.channel_mults.len();
        let unit = 1usize << (levels - 1);
        let padded = |s: usize| s.div_ceil(unit) * unit;
        let (ph, pw) = (padded(h) - h, padded(w) - w);
        let pad = [ph / 2, ph - ph / 2, pw / 2, pw - pw / 2];
        let mut rng = SeededRng::stream(seed, 0x0e7);
        let base = self.base_channels;
        let emb = 4 * base;
        let time1 = init::linear(&mut rng, base, emb, device);
        let time2 = init::linear(&mut rng, emb, emb, device);
        let class_embed = classes.map(|k| init::embedding(&mut rng, k + 1, emb, device));
        let conv_in = conv3(&mut rng, c_img, base, 1, device);
        let mut res = padded(h);
        let mut skips = vec![base];
        let mut cur = base;
        let mut down = Vec::with_capacity(levels);
        for (i, &m) in self.channel_mults.iter().enumerate() {
            let c = m * base;
            let mut blocks = vec![];
            let mut attention = vec![];
            for _ in 0..self.blocks_per_level {
                blocks.push(ResBlock::new(&mut rng, cur, c, emb, self, device));
                cur = c;
                attention.push(
                    self.attention_resolutions
                        .contains(&res)
                        .then(|| SelfAttention::new(&mut rng, c, self.groups, device)),
                );
                skips.push(cur);
            }
            let resample = (i + 1 < levels).then(|| conv3(&mut rng, cur, cur, 2, device));
            if resample.is_some() {
                res /= 2;
                skips.push(cur);
            }
            down.push(Level { blocks, attention, resample });
        }
        let mid1 = ResBlock::new(&mut rng, cur, cur, emb, self, device);
        let mid_attention = SelfAttention::new(&mut rng, cur, self.groups, device);
        let mid2 = ResBlock::new(&mut rng, cur, cur, emb, self, device);
        let mut up = Vec::with_capacity(levels);
        for (i, &m) in self.channel_mults.iter().enumerate().rev() {
            let c = m * base;
            let mut blocks = vec![];
            let mut attention = vec![];
            for _ in 0..=self.blocks_per_level {
                let skip = skips.pop().expect("one skip per block by construction");
                blocks.push(ResBlock::new(&mut rng, cur + skip, c, emb, self, device));
                cur = c;
                attention.push(
                    self.attention_resolutions
                        .contains(&res)
                        .then(|| SelfAttention::new(&mut rng, c, self.groups, device)),
                );
            }
            let resample = (i > 0).then(|| conv3(&mut rng, cur, cur, 1, device));
            if resample.is_some() {
                res *= 2;
            }
            up.push(Level { blocks, attention, resample });
        }
        Ok(Unet {
            time1,
            time2,
            class_embed,
            conv_in,
            down,
            mid1,
            mid_attention,
            mid2,
            up,
            out_norm: group_norm(self.groups, cur, device),
            out_conv: conv3(&mut rng, cur, c_img, 1, device),
            base_channels: base,
            pad,
        })
    }
}

impl Unet {
    /// The number of classes of a conditional model (its "no class" token is this index).
    pub fn classes(&self) -> Option<usize> {
        self.class_embed.as_ref().map(|e| e.dims()[0] - 1)
    }

    /// The network's output for noisy images `x` at timesteps `t`; `labels` (a conditional
    /// model; the index `classes()` asks for no class) are added to the time embedding. `rng`
    /// draws the dropout masks in training; None in evaluation.
    pub fn forward(
        &self,
        x: Tensor<4>,
        t: &[usize],
        labels: Option<Tensor<1, Int>>,
        mut rng: Option<&mut SeededRng>,
    ) -> Tensor<4> {
        let device = x.device();
        let [b, c, h, w] = x.dims();
        let [top, bottom, left, right] = self.pad;
        let x = if self.pad == [0; 4] {
            x
        } else {
            let padded = Tensor::zeros([b, c, h + top + bottom, w + left + right], &device);
            padded.slice_assign([0..b, 0..c, top..top + h, left..left + w], x)
        };
        let mut emb = self.time2.forward(silu(self.time1.forward(timestep_embedding(t, self.base_channels, &device))));
        if let (Some(table), Some(labels)) = (&self.class_embed, labels) {
            let dim = table.dims()[1];
            let rows = burn::tensor::module::embedding(table.val(), labels.reshape([1, b])).reshape([b, dim]);
            emb = emb + rows; // [b, 4 base]
        }
        let mut hcur = conv2d(&self.conv_in, x);
        let mut skips = vec![hcur.clone()];
        for level in &self.down {
            for (block, attn) in level.blocks.iter().zip(&level.attention) {
                hcur = block.forward(hcur, emb.clone(), rng.as_deref_mut());
                if let Some(a) = attn {
                    hcur = a.forward(hcur);
                }
                skips.push(hcur.clone());
            }
            if let Some(down) = &level.resample {
                hcur = conv2d(down, hcur);
                skips.push(hcur.clone());
            }
        }
        hcur = self.mid1.forward(hcur, emb.clone(), rng.as_deref_mut());
        hcur = self.mid_attention.forward(hcur);
        hcur = self.mid2.forward(hcur, emb.clone(), rng.as_deref_mut());
        for level in &self.up {
            for (block, attn) in level.blocks.iter().zip(&level.attention) {
                let skip = skips.pop().expect("one skip per block by construction");
                hcur = block.forward(Tensor::cat(vec![hcur, skip], 1), emb.clone(), rng.as_deref_mut());
                if let Some(a) = attn {
                    hcur = a.forward(hcur);
                }
            }
            if let Some(up) = &level.resample {
                hcur = conv2d(up, genlab_nn::resample::double(hcur));
            }
        }
        let out = conv2d(&self.out_conv, group_norm::group_norm(&self.out_norm, hcur, true)); // [b, c, H, W]
        if self.pad == [0; 4] {
            out
        } else {
            out.slice([0..b, 0..c, top..top + h, left..left + w])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genlab_core::tensors::to_f32_vec;

    fn small() -> UnetConfig {
        UnetConfig {
            base_channels: 8,
            channel_mults: vec![1, 2],
            blocks_per_level: 1,
            attention_resolutions: vec![4],
            dropout: 0.0,
            groups: 4,
        }
    }

    fn images(n: usize, shape: [usize; 3], seed: u64, device: &Device) -> Tensor<4> {
        let len = shape.iter().product::<usize>();
        let v = SeededRng::new(seed).normal_vec(n * len);
        Tensor::from_data(TensorData::new(v, [n, shape[0], shape[1], shape[2]]), device)
    }

    /// The output has the input's shape, with and without padding (9 does not halve).
    #[test]
    fn output_has_the_input_shape() {
        let d = Device::flex();
        for shape in [[1, 8, 8], [3, 9, 9], [1, 28, 28]] {
            let net = small().init(shape, Some(10), 0, &d).unwrap();
            let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![3i64, 10], [2]), &d);
            let out = net.forward(images(2, shape, 1, &d), &[5, 900], Some(labels), None);
            assert_eq!(out.dims(), [2, shape[0], shape[1], shape[2]], "{shape:?}");
            assert!(to_f32_vec(out).iter().all(|v| v.is_finite()));
        }
    }

    /// The same seed builds the same network; the class and the timestep change the output.
    #[test]
    fn seeded_and_conditioned() {
        let d = Device::flex();
        let (a, b) =
            (small().init([1, 8, 8], Some(10), 3, &d).unwrap(), small().init([1, 8, 8], Some(10), 3, &d).unwrap());
        let x = images(1, [1, 8, 8], 2, &d);
        let label = |k: i64| Some(Tensor::<1, Int>::from_data(TensorData::new(vec![k], [1]), &d));
        let out = |n: &Unet, t: usize, k: i64| to_f32_vec(n.forward(x.clone(), &[t], label(k), None));
        assert_eq!(out(&a, 10, 1), out(&b, 10, 1));
        assert_ne!(out(&a, 10, 1), out(&a, 10, 2), "the class matters");
        assert_ne!(out(&a, 10, 1), out(&a, 500, 1), "the timestep matters");
        assert_ne!(out(&a, 10, 1), out(&a, 10, 10), "the no-class token is its own row");
        assert_eq!(a.classes(), Some(10));
    }

    #[test]
    fn bad_shapes_are_refused_by_key() {
        let e = UnetConfig { groups: 3, ..small() }.check().unwrap_err().to_string();
        assert!(e.starts_with("model.groups = 3: "), "{e}");
        let e = UnetConfig { blocks_per_level: 0, ..small() }.check().unwrap_err().to_string();
        assert!(e.starts_with("model.blocks_per_level = 0: "), "{e}");
    }

    /// One batch of noisy images: the noise-prediction loss falls by a factor of 4 within 150
    /// Adam steps (the family's overfit-one-batch check, on the network alone).
    #[test]
    fn overfits_one_batch() {
        use genlab_train::{OptimizerConfig, OptimizerKey, Optimizers};
        let ad = Device::flex().autodiff();
        let mut net = small().init([1, 8, 8], None, 0, &ad).unwrap();
        let x = images(8, [1, 8, 8], 5, &ad);
        let eps = images(8, [1, 8, 8], 6, &ad);
        let t: Vec<usize> = (0..8).map(|i| 50 + 100 * i).collect();
        let mut opt = Optimizers::single(OptimizerConfig { lr: 3e-3, ..Default::default() }, None);
        let mut losses = vec![];
        for _ in 0..150 {
            let noisy = x.clone().mul_scalar(0.5) + eps.clone().mul_scalar(0.8);
            let loss = (net.forward(noisy, &t, None, None) - eps.clone()).powf_scalar(2.0).mean().reshape([1]);
            losses.push(to_f32_vec(loss.clone())[0]);
            net = opt.get(OptimizerKey::MODEL).backward_step(net, loss);
        }
        let (first, last) = (losses[0], *losses.last().unwrap());
        assert!(last < first / 4.0, "loss {first} -> {last}");
    }
}
