//! Times genlab's VQ-VAE training step: configs/fashion-vqvae.toml's model (two stride-2
//! convolutions, two residual blocks, 256 codes of 32 with the EMA codebook and restarts), batch
//! 128 of the first Fashion-MNIST training images in [0, 1], Adam (lr 1e-3, eps 1e-8); the step
//! includes the codebook's moving-average update.
//! `vqvae-step [--device flex|libtorch] [--warmup N] [--steps N]` prints one RESULT line, the same
//! format `bench/vqvae_step.py` prints for PyTorch, so `bench/compare.py` can interleave them.

use burn::tensor::TensorData;
use burn::Tensor;
use genlab_bench::{fail, step_args, time_steps};
use genlab_core::SeededRng;
use genlab_data::{DatasetName, DatasetSource, Split};
use genlab_models::vqvae::VqVaeConfig;
use genlab_train::{OptimizerConfig, Optimizers, StepContext, TrainStep};

fn main() {
    let (spec, warmup, steps) = step_args();
    let device = spec.autodiff_device().unwrap_or_else(|e| fail(&e.to_string()));
    let mut model = Some(VqVaeConfig::default().init([1, 28, 28], 0, &device).unwrap_or_else(|e| fail(&e.to_string())));
    let fashion = DatasetSource::Named(DatasetName::FashionMnist)
        .load_images(Split::Train, &[])
        .unwrap_or_else(|e| fail(&e.to_string()));
    let x: Vec<f32> = fashion.batch(&(0..128).collect::<Vec<_>>()).data.into_iter().map(|p| p / 255.0).collect();
    let x: Tensor<4> = Tensor::from_data(TensorData::new(x, [128, 1, 28, 28]), &device);
    let mut opt = Optimizers::single(OptimizerConfig { lr: 1e-3, ..Default::default() }, None);
    let mut rng = SeededRng::new(0);
    time_steps(spec, warmup, steps, |step| {
        let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &device };
        // Moved through an Option, so no second handle keeps the weights from being updated in place.
        let (m, out) = model.take().expect("the model is put back each step").train_step(x.clone(), &mut ctx);
        model = Some(m);
        out.loss
    });
}
