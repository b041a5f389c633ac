//! DCGAN networks (Radford et al. 2016, <https://arxiv.org/abs/1511.06434>) for 28x28 and 32x32
//! images: a generator of transposed convolutions with batch norm and ReLU, ending in tanh; a
//! discriminator of stride-2 convolutions with LeakyReLU(0.2), no batch norm, optionally
//! spectrally normalised (Miyato et al. 2018). Both can be class-conditional: the generator
//! concatenates a learned label embedding to `z`, the discriminator adds the projection term
//! `<embed(y), phi(x)>` to its logit (Miyato & Koyama 2018, <https://arxiv.org/abs/1802.05637>),
//! here with `phi(x)` the flattened last features the logit reads (the paper sums them over
//! positions; on MNIST that learned the classes less well, see the README's recipe study).

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::module::{embedding, linear};
use burn::tensor::{Device, Int};
use burn::Tensor;
use genlab_core::SeededRng;
use genlab_nn::activation::leaky_relu;
use genlab_nn::spectral_norm::SpectralNorm;
use genlab_nn::{conv, init};

/// Rows of `table` for `labels`, `[batch, dim]`.
fn lookup(table: &Param<Tensor<2>>, labels: Tensor<1, Int>) -> Tensor<2> {
    let n = labels.dims()[0];
    let dim = table.dims()[1];
    embedding(table.val(), labels.reshape([1, n])).reshape([n, dim])
}

#[derive(Module, Debug)]
pub struct Generator {
    /// Label embedding concatenated to `z` (conditional generators only).
    pub embed: Option<Param<Tensor<2>>>,
    /// `z -> [channels[0], start, start]`.
    pub project: Linear,
    pub project_norm: BatchNorm,
    /// Stride-2 transposed convolutions, each doubling the side; batch norm and ReLU after all but
    /// the last, which outputs the image channels.
    pub ups: Vec<ConvTranspose2d>,
    pub norms: Vec<BatchNorm>,
    pub latent_dim: usize,
    /// `[channels[0], start, start]`.
    pub start: [usize; 3],
}

impl Generator {
    /// A generator of `[c, size, size]` images from `latent_dim` noise; `channels` are the filters
    /// before each upsampling (so `size / 2^len` must be a whole side: 7 for 28 with two, 4 for 32
    /// with three).
    pub fn new(
        rng: &mut SeededRng,
        [c, size, _]: [usize; 3],
        latent_dim: usize,
        channels: &[usize],
        classes: Option<usize>,
        device: &Device,
    ) -> Self {
        let start = size >> channels.len();
        let embed = classes.map(|k| init::embedding(rng, k, latent_dim, device));
        let z_in = latent_dim * if classes.is_some() { 2 } else { 1 };
        let project = init::linear(rng, z_in, channels[0] * start * start, device);
        let mut ups = Vec::new();
        let mut norms = Vec::new();
        for (i, &ch) in channels.iter().enumerate() {
            let out = channels.get(i + 1).copied().unwrap_or(c);
            let cfg = ConvTranspose2dConfig::new([ch, out], [4, 4]).with_stride([2, 2]).with_padding([1, 1]);
            ups.push(init::conv_transpose2d(rng, &cfg, device));
            if i + 1 < channels.len() {
                norms.push(init::batch_norm(out, device));
            }
        }
        Generator {
            embed,
            project,
            project_norm: init::batch_norm(channels[0], device),
            ups,
            norms,
            latent_dim,
            start: [channels[0], start, start],
        }
    }

    /// Commits the batch-norm running statistics of this thread's last training forward pass.
    /// burn's `RunningState` keeps an update pending until the next one and writes out only the
    /// committed value, so without this a checkpoint would hold statistics one step old and a
    /// resumed run would drift from an uninterrupted one.
    pub fn sync_running_statistics(&self) {
        for bn in std::iter::once(&self.project_norm).chain(&self.norms) {
            bn.running_mean.value_sync();
            bn.running_var.value_sync();
        }
    }

    /// # Shapes
    /// `z: [batch, latent_dim]`, `labels: [batch]` (conditional) -> `[batch, c, size, size]` in
    /// [-1, 1]
    pub fn forward(&self, z: Tensor<2>, labels: Option<Tensor<1, Int>>) -> Tensor<4> {
        let n = z.dims()[0];
        let z = match (&self.embed, labels) {
            (Some(table), Some(y)) => Tensor::cat(vec![z, lookup(table, y)], 1), // [batch, 2 latent]
            _ => z,
        };
        let [c0, s, _] = self.start;
        let mut h = relu(self.project_norm.forward(self.project.forward(z).reshape([n, c0, s, s])));
        let last = self.ups.len() - 1;
        for (i, up) in self.ups.iter().enumerate() {
            h = conv::conv_transpose2d(up, h); // doubles the side
            if i < last {
                h = relu(self.norms[i].forward(h));
            }
        }
        h.tanh()
    }
}

/// A convolution or dense layer's weight, spectrally normalised when the discriminator asks.
#[derive(Module, Debug)]
pub struct SnWeights {
    pub sn: Option<SpectralNorm>,
}

#[derive(Module, Debug)]
pub struct Discriminator {
    /// 4x4 stride-2 convolutions, LeakyReLU(0.2) after each.
    pub convs: Vec<Conv2d>,
    pub conv_sn: Vec<SnWeights>,
    /// `phi(x) -> logit`, weight `[features, 1]`.
    pub out: Linear,
    pub out_sn: SnWeights,
    /// The projection discriminator's class embedding, `[classes, features]`.
    pub embed: Option<Param<Tensor<2>>>,
}

impl Discriminator {
    /// A discriminator of `[c, size, size]` images with `channels` filters in its stride-2
    /// convolutions (size divisible by `2^len`).
    pub fn new(
        rng: &mut SeededRng,
        [c, size, _]: [usize; 3],
        channels: &[usize],
        classes: Option<usize>,
        spectral_norm: bool,
        device: &Device,
    ) -> Self {
        let mut convs = Vec::new();
        let mut conv_sn = Vec::new();
        let mut c_in = c;
        for &ch in channels {
            let cfg = Conv2dConfig::new([c_in, ch], [4, 4])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
            convs.push(init::conv2d(rng, &cfg, device));
            conv_sn.push(SnWeights { sn: spectral_norm.then(|| SpectralNorm::new(rng, ch, device)) });
            c_in = ch;
        }
        let side = size >> channels.len();
        let features = c_in * side * side;
        Discriminator {
            convs,
            conv_sn,
            out: init::linear(rng, features, 1, device),
            out_sn: SnWeights { sn: spectral_norm.then(|| SpectralNorm::new(rng, 1, device)) },
            embed: classes.map(|k| init::embedding(rng, k, features, device)),
        }
    }

    /// The logits, `[batch]`. With spectral norm, `update` (a training step) advances each
    /// layer's power iteration once; evaluation passes `false`.
    ///
    /// # Shapes
    /// `x: [batch, c, size, size]`, `labels: [batch]` (conditional) -> `[batch]`
    pub fn forward(&mut self, x: Tensor<4>, labels: Option<Tensor<1, Int>>, update: bool) -> Tensor<1> {
        let n = x.dims()[0];
        let mut h = x;
        for (conv, sn) in self.convs.iter().zip(self.conv_sn.iter_mut()) {
            let w = conv.weight.val();
            let w = match &mut sn.sn {
                Some(s) => s.normalize_weight(w, 1, update).0,
                None => w,
            };
            h = leaky_relu(conv::conv2d_weighted(conv, w, h), 0.2);
            // halves the side
        }
        let phi = h.flatten::<2>(1, 3); // [batch, features]
                                        // burn's Linear weight is [in, out]; spectral norm views it as [out, in].
        let w = self.out.weight.val();
        let w = match &mut self.out_sn.sn {
            Some(s) => s.normalize_weight(w.transpose(), 1, update).0.transpose(),
            None => w,
        };
        let logit = linear(phi.clone(), w, self.out.bias.as_ref().map(|b| b.val())).reshape([n]);
        match (&self.embed, labels) {
            (Some(table), Some(y)) => logit + (lookup(table, y) * phi).sum_dim(1).reshape([n]),
            _ => logit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    use genlab_core::tensors::{to_f32_vec, NamedTensors};

    #[test]
    fn shapes_for_28_and_32_pixel_images() {
        let d = Device::flex();
        let mut rng = SeededRng::new(0);
        for (shape, g_ch, d_ch) in
            [([1, 28, 28], vec![32, 16], vec![16, 32]), ([3, 32, 32], vec![32, 16, 8], vec![8, 16, 32])]
        {
            let g = Generator::new(&mut rng, shape, 8, &g_ch, Some(10), &d);
            let z = Tensor::<2>::from_data(TensorData::new(rng.normal_vec(5 * 8), [5, 8]), &d);
            let y = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 3, 9, 1, 1], [5]), &d);
            let x = g.forward(z, Some(y.clone()));
            assert_eq!(x.dims(), [5, shape[0], shape[1], shape[2]]);
            assert!(to_f32_vec(x.clone()).iter().all(|v| v.abs() <= 1.0), "tanh output");
            let mut disc = Discriminator::new(&mut rng, shape, &d_ch, Some(10), true, &d);
            assert_eq!(disc.forward(x, Some(y), true).dims(), [5]);
        }
    }

    #[test]
    fn projection_term_depends_on_the_label_and_sn_state_is_saved() {
        let d = Device::flex();
        let mut rng = SeededRng::new(1);
        let mut disc = Discriminator::new(&mut rng, [1, 28, 28], &[8, 16], Some(10), true, &d);
        let x = Tensor::<4>::from_data(TensorData::new(rng.normal_vec(2 * 784), [2, 1, 28, 28]), &d);
        let label = |v: i64| Tensor::<1, Int>::from_data(TensorData::new(vec![v, v], [2]), &d);
        let a = to_f32_vec(disc.forward(x.clone(), Some(label(0)), false));
        let b = to_f32_vec(disc.forward(x, Some(label(7)), false));
        assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() > 1e-6), "{a:?} vs {b:?}");
        let names: Vec<String> = NamedTensors::from_module(&disc).0.into_keys().collect();
        for want in ["conv_sn.0.sn.u", "conv_sn.1.sn.u", "out_sn.sn.u", "embed"] {
            assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
        }
    }

    #[test]
    fn batch_norm_running_statistics_are_checkpointed() {
        // A resumed GAN must continue bit for bit, so the generator's running statistics have to
        // be in its checkpoint: they are (burn visits RunningState as a float tensor).
        let d = Device::flex();
        let g = Generator::new(&mut SeededRng::new(2), [1, 28, 28], 8, &[16, 8], None, &d);
        let names: Vec<String> = NamedTensors::from_module(&g).0.into_keys().collect();
        for want in ["project_norm.running_mean", "project_norm.running_var", "norms.0.running_mean"] {
            assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
        }
    }
}
