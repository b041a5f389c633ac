//! Times genlab's conv-VAE training step: 1x28x28 input, conv 32/64 (4x4, stride 2), latent 16,
//! transposed-conv decoder, batch 128 of real MNIST digits, Adam (lr 1e-3, eps 1e-8), Bernoulli
//! likelihood.
//! `vae-step [--device flex|libtorch] [--warmup N] [--steps N]` prints one RESULT line, the same
//! format `bench/vae_step.py` prints for PyTorch, so `bench/compare.py` can interleave them.

use burn::tensor::TensorData;
use burn::Tensor;
use genlab_bench::{fail, step_args, time_steps};
use genlab_core::SeededRng;
use genlab_data::{DatasetName, DatasetSource, Split};
use genlab_models::vae::{Architecture, Likelihood, VaeConfig};
use genlab_train::{OptimizerConfig, Optimizers, StepContext, TrainStep};

fn main() {
    let (spec, warmup, steps) = step_args();
    let device = spec.autodiff_device().unwrap_or_else(|e| fail(&e.to_string()));
    let cfg = VaeConfig {
        architecture: Architecture::Conv,
        channels: vec![32, 64],
        latent_dim: 16,
        likelihood: Likelihood::Bernoulli,
        ..Default::default()
    };
    let mut vae = Some(cfg.init([1, 28, 28], 0, &device).unwrap_or_else(|e| fail(&e.to_string())));
    let mut rng = SeededRng::new(0);
    // The first 128 MNIST training images thresholded at 128: real data, and the same bits as the
    // PyTorch twin without sharing an RNG. (flex's step time depends on the data: on uniform noise it
    // is about a third slower than on digits.)
    let mnist = DatasetSource::Named(DatasetName::Mnist)
        .load_images(Split::Train, &[])
        .unwrap_or_else(|e| fail(&e.to_string()));
    let x: Vec<f32> = mnist
        .batch(&(0..128).collect::<Vec<_>>())
        .data
        .into_iter()
        .map(|p| if p >= 128.0 { 1.0 } else { 0.0 })
        .collect();
    let x: Tensor<4> = Tensor::from_data(TensorData::new(x, [128, 1, 28, 28]), &device);
    let mut opt = Optimizers::single(OptimizerConfig { lr: 1e-3, ..Default::default() }, None);
    time_steps(spec, warmup, steps, |step| {
        let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &device };
        // Moved through an Option, so no second handle keeps the weights from being updated in place.
        let (m, out) = vae.take().expect("the model is put back each step").train_step(x.clone(), &mut ctx);
        vae = Some(m);
        out.loss
    });
}
