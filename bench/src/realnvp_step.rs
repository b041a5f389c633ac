//! Times genlab's RealNVP training step: the `configs/mnist-realnvp.toml` flow (1x28x28, two
//! scales, three coupling layers per stage, 32 hidden filters), batch 64 of real MNIST digits
//! with fresh uniform dequantisation noise each step, Adam (lr 1e-3, eps 1e-8), loss in bits/dim.
//! `realnvp-step [--device flex|libtorch] [--warmup N] [--steps N]` prints one RESULT line, the
//! same format `bench/realnvp_step.py` prints for PyTorch, so `bench/compare.py --model realnvp`
//! can interleave them.

use burn::tensor::TensorData;
use burn::Tensor;
use genlab_bench::{fail, step_args, time_steps};
use genlab_core::SeededRng;
use genlab_data::{DatasetName, DatasetSource, Split};
use genlab_models::flow::{FlowArchitecture, FlowConfig};
use genlab_train::{OptimizerConfig, Optimizers, StepContext, TrainStep};

fn main() {
    let (spec, warmup, steps) = step_args();
    let device = spec.autodiff_device().unwrap_or_else(|e| fail(&e.to_string()));
    let cfg =
        FlowConfig { architecture: FlowArchitecture::RealNvp, scales: 2, steps: 3, hidden: 32, ..Default::default() };
    let mut flow = Some(cfg.init([1, 28, 28], 0, &device).unwrap_or_else(|e| fail(&e.to_string())));
    let mut rng = SeededRng::new(0);
    // The first 64 MNIST training images, 8-bit values, as the PyTorch twin reads them.
    let mnist = DatasetSource::Named(DatasetName::Mnist)
        .load_images(Split::Train, &[])
        .unwrap_or_else(|e| fail(&e.to_string()));
    let x = mnist.batch(&(0..64).collect::<Vec<_>>()).data;
    let x: Tensor<4> = Tensor::from_data(TensorData::new(x, [64, 1, 28, 28]), &device);
    let mut opt = Optimizers::single(OptimizerConfig { lr: 1e-3, ..Default::default() }, None);
    time_steps(spec, warmup, steps, |step| {
        let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &device };
        // Moved through an Option, so no second handle keeps the weights from being updated in place.
        let (m, out) = flow.take().expect("the model is put back each step").train_step(x.clone(), &mut ctx);
        flow = Some(m);
        out.loss
    });
}
