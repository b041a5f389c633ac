//! Times genlab's conv-VAE training step: 1x28x28 input, conv 32/64 (4x4, stride 2), latent 16,
//! transposed-conv decoder, batch 128 of real MNIST digits, Adam (lr 1e-3, eps 1e-8), Bernoulli
//! likelihood.
//! `vae-step [--device flex|libtorch] [--warmup N] [--steps N]` prints one RESULT line, the same
//! format `bench/vae_step.py` prints for PyTorch, so `bench/compare.py` can interleave them.

use burn::tensor::TensorData;
use burn::Tensor;
use genlab_bench::{arg, fail};
use genlab_core::{DeviceSpec, SeededRng};
use genlab_data::{DatasetName, DatasetSource, Split};
use genlab_models::vae::{Architecture, Likelihood, VaeConfig};
use genlab_train::{OptimizerConfig, Optimizers, StepContext, TrainStep};
use std::time::Instant;

fn main() {
    let spec: DeviceSpec = arg("--device", "flex").parse().unwrap_or_else(|e| fail(&format!("{e}")));
    let warmup: usize = arg("--warmup", "5").parse().unwrap_or_else(|_| fail("--warmup: expected a count"));
    let steps: usize = arg("--steps", "30")
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or_else(|| fail("--steps: expected a count of at least 1"));
    let device = spec.autodiff_device().unwrap_or_else(|e| fail(&e.to_string()));
    let cfg = VaeConfig {
        architecture: Architecture::Conv,
        channels: vec![32, 64],
        latent_dim: 16,
        likelihood: Likelihood::Bernoulli,
        ..Default::default()
    };
    let mut vae = cfg.init([1, 28, 28], 0, &device).unwrap_or_else(|e| fail(&e.to_string()));
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
    let (mut times, mut losses) = (Vec::new(), Vec::new());
    for step in 1..=(warmup + steps) as u64 {
        let t0 = Instant::now();
        let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &device };
        let (m, out) = vae.train_step(x.clone(), &mut ctx); // reading the loss synchronises the device
        vae = m;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        losses.push(out.loss);
        if step as usize > warmup {
            times.push(ms);
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    println!(
        "RESULT impl=genlab-{spec} median_ms={median:.3} min_ms={:.3} max_ms={:.3} loss_first={:.3} loss_last={:.3}",
        times[0],
        times[times.len() - 1],
        losses[0],
        losses[losses.len() - 1]
    );
}
