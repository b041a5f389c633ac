//! GAN tests: the update schedule (the discriminator every step, the generator every n_critic-th),
//! determinism, and a discriminator that learns to tell a fixed real batch from the frozen
//! generator's samples. The losses are checked by hand in `losses.rs`.

use super::*;
use genlab_core::tensors::NamedTensors;
use genlab_train::{Optimizer, OptimizerConfig, Optimizers};

fn optimizers() -> Optimizers {
    let cfg = OptimizerConfig { lr: 2e-3, betas: [0.5, 0.999], ..Default::default() };
    Optimizers::new(vec![Optimizer::new(super::GENERATOR, cfg, None), Optimizer::new(super::DISCRIMINATOR, cfg, None)])
}

fn digits(n: usize, d: &Device) -> GanBatch {
    // Bright vertical bars on a dark background, in [-1, 1]: an easy "real" distribution.
    let v: Vec<f32> = (0..n * 784).map(|i| if (i % 28) / 4 == (i / 784) % 7 { 1.0 } else { -1.0 }).collect();
    let labels: Vec<i64> = (0..n).map(|i| (i % 7) as i64).collect();
    (Tensor::from_data(TensorData::new(v, [n, 1, 28, 28]), d), Some(Tensor::from_data(TensorData::new(labels, [n]), d)))
}

fn params(m: &impl Module, prefix: &str) -> Vec<(String, Vec<f32>)> {
    NamedTensors::from_module(m)
        .0
        .into_iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, t)| (k, t.data))
        .collect()
}

fn small(n_critic: usize, spectral_norm: bool, conditional: bool) -> GanConfig {
    GanConfig {
        latent_dim: 8,
        generator_channels: vec![16, 8],
        discriminator_channels: vec![8, 16],
        n_critic,
        spectral_norm,
        conditional,
        ..Default::default()
    }
}

#[test]
fn the_generator_moves_every_n_critic_steps_and_runs_repeat() {
    let ad = Device::flex().autodiff();
    let run = |steps: u64| {
        let mut gan = small(2, true, true).init([1, 28, 28], 10, 0, &ad).unwrap();
        let mut opt = optimizers();
        let mut rng = SeededRng::new(1);
        let mut history = vec![(params(&gan, "generator.project.weight"), params(&gan, "discriminator.out.weight"))];
        for step in 1..=steps {
            let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &ad };
            gan = gan.train_step(digits(8, &ad), &mut ctx).0;
            history.push((params(&gan, "generator.project.weight"), params(&gan, "discriminator.out.weight")));
        }
        (history, NamedTensors::from_module(&gan))
    };
    let (h, end) = run(4);
    for s in 1..=4 {
        assert_ne!(h[s].1, h[s - 1].1, "the discriminator is updated at step {s}");
        assert_eq!(h[s].0 != h[s - 1].0, s % 2 == 0, "the generator is updated at step {s} only if even");
    }
    assert_eq!(run(4).1, end, "the same seed gives the same weights, spectral-norm vectors included");
}

#[test]
fn the_discriminator_learns_to_separate_real_from_frozen_fakes() {
    let ad = Device::flex().autodiff();
    for loss in [GanLoss::NonSaturating, GanLoss::Hinge] {
        let mut gan = GanConfig { loss, ..small(1_000_000, false, false) }.init([1, 28, 28], 10, 0, &ad).unwrap();
        let mut opt = optimizers();
        let mut rng = SeededRng::new(2);
        let mut losses = vec![];
        for step in 1..=60 {
            let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &ad };
            let (g, out) = gan.train_step(digits(16, &ad), &mut ctx);
            gan = g;
            losses.push(out.loss);
        }
        let last = losses[50..].iter().sum::<f64>() / 10.0;
        assert!(last < 0.3 * losses[0], "{loss:?}: D loss {} -> {last}", losses[0]);
    }
}
