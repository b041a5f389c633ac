//! Times genlab's DCGAN training step, discriminator and generator updates together: the
//! `configs/mnist-dcgan.toml` networks (latent 64; G: dense to 128x7x7, batch norm, transposed
//! convolutions 128 -> 64 -> 1 with batch norm and ReLU, tanh; D: convolutions 1 -> 64 -> 128,
//! LeakyReLU 0.2, dense to one logit), the non-saturating loss, batch 64 of real MNIST digits in
//! [-1, 1], two Adam optimisers (lr 2e-4, betas 0.5/0.999).
//! `gan-step [--device flex|libtorch] [--warmup N] [--steps N]` prints one RESULT line, the same
//! format `bench/gan_step.py` prints for PyTorch, so `bench/compare.py --model gan` can
//! interleave them.

use burn::tensor::TensorData;
use burn::Tensor;
use genlab_bench::{fail, step_args, time_steps};
use genlab_core::SeededRng;
use genlab_data::{DatasetName, DatasetSource, Split};
use genlab_models::gan::GanConfig;
use genlab_train::{Optimizer, OptimizerConfig, Optimizers, StepContext, TrainStep};

fn main() {
    let (spec, warmup, steps) = step_args();
    let device = spec.autodiff_device().unwrap_or_else(|e| fail(&e.to_string()));
    let mut gan = Some(GanConfig::default().init([1, 28, 28], 10, 0, &device).unwrap_or_else(|e| fail(&e.to_string())));
    let mut rng = SeededRng::new(0);
    // The first 64 MNIST training images scaled to [-1, 1], as the PyTorch twin reads them.
    let mnist = DatasetSource::Named(DatasetName::Mnist)
        .load_images(Split::Train, &[])
        .unwrap_or_else(|e| fail(&e.to_string()));
    let x: Vec<f32> = mnist.batch(&(0..64).collect::<Vec<_>>()).data.into_iter().map(|p| p / 127.5 - 1.0).collect();
    let x: Tensor<4> = Tensor::from_data(TensorData::new(x, [64, 1, 28, 28]), &device);
    let cfg = OptimizerConfig { lr: 2e-4, betas: [0.5, 0.999], ..Default::default() };
    let mut opt = Optimizers::new(vec![
        Optimizer::new(genlab_models::gan::GENERATOR, cfg, None),
        Optimizer::new(genlab_models::gan::DISCRIMINATOR, cfg, None),
    ]);
    time_steps(spec, warmup, steps, |step| {
        let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &device };
        let (m, out) = gan.take().expect("the model is put back each step").train_step((x.clone(), None), &mut ctx);
        gan = Some(m);
        out.loss
    });
}
