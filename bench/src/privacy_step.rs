//! Times one training step of the private configs' networks with and without DP-SGD, on the
//! same fixed batch of real MNIST digits: the classifier of `configs/mnist-lenet-dp.toml` (LeNet
//! 16/32/64, batch 256) or the VAE of `configs/mnist-vae-dp.toml` (conv 16/32, latent 16,
//! batch 256). Private steps clip each example's gradient (its own backward pass) to norm 1 and
//! add noise of multiplier 1, over `--workers` threads.
//! `privacy-step --model lenet|vae [--private] [--workers N] [--warmup N] [--steps N]` prints one
//! RESULT line, as `bench/privacy_step.py` does for PyTorch and Opacus; `bench/privacy_overhead.py`
//! interleaves them.

use burn::tensor::{Int, TensorData};
use burn::Tensor;
use genlab_bench::{arg, fail, step_args, time_steps};
use genlab_core::SeededRng;
use genlab_data::{DatasetName, DatasetSource, Split};
use genlab_models::classifier::ClassifierConfig;
use genlab_models::vae::{Architecture, Likelihood, VaeConfig};
use genlab_train::privacy::DpSgd;
use genlab_train::{OptimizerConfig, Optimizers, StepContext, TrainStep};

const BATCH: usize = 256;

/// A model, its batch, and the step (private or not) that trains it, timed.
fn run<M: TrainStep>(model: M, batch: M::Batch, private: bool, workers: usize, label: &str)
where
    M::Batch: Clone,
{
    let (spec, warmup, steps) = step_args();
    let device = spec.autodiff_device().unwrap_or_else(|e| fail(&e.to_string()));
    let mut model = Some(model);
    let mut rng = SeededRng::new(0);
    let mut opt = Optimizers::single(OptimizerConfig { lr: 1e-3, ..Default::default() }, None);
    let mut dp = DpSgd {
        noise_multiplier: 1.0,
        max_grad_norm: 1.0,
        sample_rate: BATCH as f64 / 60_000.0,
        expected_batch_size: BATCH as f64,
        delta: 1e-5,
        target_epsilon: None,
        workers,
        accountant: Default::default(),
    };
    eprintln!("{label}, {} step, {workers} worker(s)", if private { "private" } else { "non-private" });
    time_steps(spec, warmup, steps, |step| {
        let m = model.take().expect("the model is put back each step");
        let (m, out) = if private {
            dp.step(m, batch.clone(), &mut opt, &mut rng, &device).unwrap_or_else(|e| fail(&e.to_string()))
        } else {
            let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &device };
            m.train_step(batch.clone(), &mut ctx)
        };
        model = Some(m);
        out.loss
    });
}

fn main() {
    let (spec, _, _) = step_args();
    let device = spec.autodiff_device().unwrap_or_else(|e| fail(&e.to_string()));
    let private = std::env::args().any(|a| a == "--private");
    let workers: usize = arg("--workers", "1").parse().unwrap_or_else(|_| fail("--workers: expected a count"));
    let mnist = DatasetSource::Named(DatasetName::Mnist)
        .load_images(Split::Train, &[])
        .unwrap_or_else(|e| fail(&e.to_string()));
    let b = mnist.batch(&(0..BATCH).collect::<Vec<_>>());
    match arg("--model", "lenet").as_str() {
        "lenet" => {
            let cfg = ClassifierConfig { channels: vec![16, 32], kernel: 5, hidden: 64 };
            let model = cfg.init([1, 28, 28], 10, 0, &device).unwrap_or_else(|e| fail(&e.to_string()));
            let x: Vec<f32> = b.data.iter().map(|p| p / 255.0).collect();
            let labels: Vec<i64> = b.labels.expect("MNIST has labels").iter().map(|&l| i64::from(l)).collect();
            let x: Tensor<4> = Tensor::from_data(TensorData::new(x, [BATCH, 1, 28, 28]), &device);
            let y: Tensor<1, Int> = Tensor::from_data(TensorData::new(labels, [BATCH]), &device);
            run(model, (x, y), private, workers, "LeNet 16/32/64 (46,730 parameters), batch 256");
        }
        "vae" => {
            let cfg = VaeConfig {
                architecture: Architecture::Conv,
                channels: vec![16, 32],
                latent_dim: 16,
                likelihood: Likelihood::Bernoulli,
                ..Default::default()
            };
            let model = cfg.init([1, 28, 28], 0, &device).unwrap_or_else(|e| fail(&e.to_string()));
            let x: Vec<f32> = b.data.iter().map(|&p| if p >= 128.0 { 1.0 } else { 0.0 }).collect();
            let x: Tensor<4> = Tensor::from_data(TensorData::new(x, [BATCH, 1, 28, 28]), &device);
            run(model, x, private, workers, "conv VAE 16/32, latent 16, batch 256");
        }
        other => fail(&format!("--model {other}: expected lenet or vae")),
    }
}
