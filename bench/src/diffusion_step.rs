//! Times genlab's diffusion training step: the class-conditional UNet of `configs/mnist-ddpm.toml`
//! (or the shape given by `--base`, `--mults`, `--blocks`, `--attention`), the cosine schedule of
//! 1,000 steps, v prediction with min-SNR-5 weighting, batch 64 of real MNIST digits in [-1, 1] with their labels
//! (dropped to the "no class" token with probability 0.1), Adam (lr 2e-4). One step is the
//! forward pass, the backward pass, the Adam update and reading the loss back to the host.
//! With `--forward`, the time of one forward pass of the network without gradients (what each step
//! of sampling runs) instead.
//! `diffusion-step [--device flex|libtorch] [--warmup N] [--steps N] [--batch 64] [--replicas 1] [--forward]` prints one
//! RESULT line, the format `bench/diffusion_step.py` prints for PyTorch, so `bench/compare.py
//! --model diffusion` can interleave them.

use burn::tensor::{Int, TensorData};
use burn::Tensor;
use genlab_bench::{arg, fail, step_args, time_steps};
use genlab_core::SeededRng;
use genlab_data::{DatasetName, DatasetSource, Split};
use genlab_models::diffusion::model::DiffusionConfig;
use genlab_models::diffusion::schedule::{BetaSchedule, Prediction};
use genlab_models::diffusion::unet::UnetConfig;
use genlab_train::{OptimizerConfig, Optimizers, StepContext, TrainStep};

/// A comma-separated list of counts.
fn list(name: &str, default: &str) -> Vec<usize> {
    arg(name, default)
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or_else(|_| fail(&format!("{name}: expected counts separated by commas"))))
        .collect()
}

/// The first `batch` training digits in [-1, 1] and their labels.
fn digits(mnist: &genlab_data::ImageSet, batch: usize, device: &burn::tensor::Device) -> (Tensor<4>, Tensor<1, Int>) {
    let rows: Vec<usize> = (0..batch).collect();
    let x: Vec<f32> = mnist.batch(&rows).data.into_iter().map(|p| p / 127.5 - 1.0).collect();
    let x: Tensor<4> = Tensor::from_data(TensorData::new(x, [batch, 1, 28, 28]), device);
    let labels: Vec<i64> = rows.iter().map(|&i| mnist.labels.as_ref().map_or(0, |l| l[i] as i64)).collect();
    (x, Tensor::from_data(TensorData::new(labels, [batch]), device))
}

fn main() {
    let (spec, warmup, steps) = step_args();
    let count = |name: &str, default: &str| -> usize {
        arg(name, default).parse().unwrap_or_else(|_| fail(&format!("{name}: expected a count")))
    };
    let batch = count("--batch", "64");
    let forward = std::env::args().any(|a| a == "--forward");
    let config = DiffusionConfig {
        unet: UnetConfig {
            base_channels: count("--base", "16"),
            channel_mults: list("--mults", "1,2,4"),
            blocks_per_level: count("--blocks", "1"),
            attention_resolutions: list("--attention", "7"),
            dropout: arg("--dropout", "0.0").parse().unwrap_or_else(|_| fail("--dropout: expected a probability")),
            groups: count("--groups", "8"),
        },
        schedule: BetaSchedule::Cosine,
        prediction: Prediction::V,
        min_snr_gamma: Some(5.0),
        ..Default::default()
    };
    let mnist = DatasetSource::Named(DatasetName::Mnist)
        .load_images(Split::Train, &[])
        .unwrap_or_else(|e| fail(&e.to_string()));
    if forward {
        let device = spec.device().unwrap_or_else(|e| fail(&e.to_string()));
        let model = config.init([1, 28, 28], Some(10), 0, &device).unwrap_or_else(|e| fail(&e.to_string()));
        let (x, labels) = digits(&mnist, batch, &device);
        // Timesteps spread over the schedule (the network's cost does not depend on them).
        let t: Vec<usize> = (0..batch).map(|i| i * 997 % 1000).collect();
        time_steps(spec, warmup, steps, |_| {
            let out = model.unet.forward(x.clone(), &t, Some(labels.clone()), None);
            out.sum().into_scalar::<f32>() as f64
        });
        return;
    }
    let device = spec.autodiff_device().unwrap_or_else(|e| fail(&e.to_string()));
    let mut model = config.init([1, 28, 28], Some(10), 0, &device).unwrap_or_else(|e| fail(&e.to_string()));
    model.replicas = count("--replicas", "1");
    let mut model = Some(model);
    let (x, labels) = digits(&mnist, batch, &device);
    let mut opt = Optimizers::single(OptimizerConfig { lr: 2e-4, ..Default::default() }, None);
    let mut rng = SeededRng::new(0);
    time_steps(spec, warmup, steps, |step| {
        let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &device };
        let batch = (x.clone(), Some(labels.clone()));
        let (m, out) = model.take().expect("the model is put back each step").train_step(batch, &mut ctx);
        model = Some(m);
        out.loss
    });
}
