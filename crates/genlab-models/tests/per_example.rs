//! Issue 19: DP-SGD's per-example gradients on the families' real networks. Each example's
//! gradient is its own backward pass (`genlab_train::privacy::clipped_sum`); with clipping off,
//! their sum must equal the batch size times the gradient of the family's own batched loss (a
//! mean over examples), computed by one batched backward pass: an independent computation
//! through convolutions, max pooling, linear layers (LeNet), the conv VAE's encoder and transposed-
//! convolution decoder, attention, layer norm and embeddings (GPT) and LSTM cells. The VAE
//! draws its noise per example from the stream DP-SGD gives it, so the reference draws the same.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, TensorData};
use burn::Tensor;
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;
use genlab_models::classifier::ClassifierConfig;
use genlab_models::lm::gpt::GptConfig;
use genlab_models::lm::rnn::RnnLmConfig;
use genlab_train::privacy::clipped_sum;
use genlab_train::TrainStep;

fn flat<M: Module>(model: &M, grads: &GradientsParams) -> Vec<f64> {
    struct Flat<'a>(&'a GradientsParams, Vec<f64>);
    impl ModuleVisitor for Flat<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(param.id) {
                self.1.extend(to_f32_vec(g).into_iter().map(f64::from));
            }
        }
    }
    let mut f = Flat(grads, vec![]);
    model.visit(&mut f);
    f.1
}

/// The per-example sum (clipping off, two workers) against `n` times the batched gradient of
/// `batch_loss`, and each example's reported loss against the batched per-example values.
fn check<M: TrainStep>(model: &M, batch: M::Batch, n: usize, batch_loss: Tensor<1>, what: &str)
where
    M::Batch: Clone,
{
    let device = Device::flex().autodiff();
    let want = flat(model, &GradientsParams::from_grads((batch_loss.clone() * n as f32).backward(), model));
    let mean_loss = to_f32_vec(batch_loss.detach())[0] as f64;
    let examples = M::examples(batch).expect("the family gives per-example losses");
    assert_eq!(examples.len(), n);
    let sum = clipped_sum(model, examples, 1e12, 2, 7, &device).unwrap();
    let got = flat(model, &sum.grads);
    assert_eq!(got.len(), want.len(), "{what}: every parameter has a gradient");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(scale > 0.0 && want.len() > 100, "{what}: {} gradients, largest {scale}", want.len());
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 2e-4 * scale + 1e-6, "{what}, element {k}: per-example sum {g}, batched {w}");
    }
    let per_example = sum.examples.iter().map(|e| e.loss).sum::<f64>() / n as f64;
    assert!((per_example - mean_loss).abs() <= 1e-4 * (1.0 + mean_loss.abs()), "{what}: {per_example} vs {mean_loss}");
}

#[test]
fn lenet_per_example_gradients_sum_to_the_batch_gradient() {
    let device = Device::flex().autodiff();
    let model =
        ClassifierConfig { channels: vec![6, 8], kernel: 5, hidden: 16 }.init([1, 28, 28], 10, 0, &device).unwrap();
    let n = 6;
    let mut rng = SeededRng::new(2);
    let x: Tensor<4> = Tensor::from_data(TensorData::new(rng.uniform_vec(n * 784), [n, 1, 28, 28]), &device);
    let y: Tensor<1, Int> =
        Tensor::from_data(TensorData::new((0..n as i64).map(|i| (i * 3) % 10).collect::<Vec<_>>(), [n]), &device);
    let loss = model.loss(x.clone(), y.clone());
    check(&model, (x, y), n, loss, "LeNet");
}

fn windows(n: usize, len: usize, vocab: u32, device: &Device) -> Tensor<2, Int> {
    let mut rng = SeededRng::new(4);
    let t: Vec<i64> = (0..n * len).map(|_| rng.below(vocab as usize) as i64).collect();
    Tensor::from_data(TensorData::new(t, [n, len]), device)
}

#[test]
fn gpt_per_example_gradients_sum_to_the_batch_gradient() {
    let device = Device::flex().autodiff();
    let cfg = GptConfig { layers: 2, heads: 2, width: 16, block_size: 8, ..Default::default() };
    let model = cfg.init(11, 0, &device).unwrap();
    let w = windows(5, 9, 11, &device);
    let loss = model.loss(w.clone(), None);
    check(&model, w, 5, loss, "GPT");
}

#[test]
fn lstm_per_example_gradients_sum_to_the_batch_gradient() {
    let device = Device::flex().autodiff();
    let cfg = RnnLmConfig { layers: 2, hidden: 12, block_size: 8, ..Default::default() };
    let model = cfg.init(9, 0, &device).unwrap();
    let w = windows(5, 9, 9, &device);
    let loss = model.token_log_probs(w.clone(), None).neg().mean();
    check(&model, w, 5, loss, "LSTM");
}

#[test]
fn conv_vae_per_example_gradients_sum_to_the_batch_gradient() {
    use genlab_models::vae::{Architecture, Likelihood, VaeConfig};
    let device = Device::flex().autodiff();
    let cfg = VaeConfig {
        architecture: Architecture::Conv,
        channels: vec![4, 8],
        latent_dim: 3,
        likelihood: Likelihood::Bernoulli,
        ..Default::default()
    };
    let model = cfg.init([1, 28, 28], 0, &device).unwrap();
    let n = 4;
    let mut rng = SeededRng::new(6);
    let x: Vec<f32> = rng.uniform_vec(n * 784).into_iter().map(|v| if v > 0.7 { 1.0 } else { 0.0 }).collect();
    let x: Tensor<4> = Tensor::from_data(TensorData::new(x, [n, 1, 28, 28]), &device);
    // Example i's noise is the first draw of stream i of the seed `check` hands DP-SGD (7).
    let eps: Vec<f32> = (0..n as u64).flat_map(|i| SeededRng::stream(7, i).normal_vec(3)).collect();
    let eps: Tensor<2> = Tensor::from_data(TensorData::new(eps, [n, 3]), &device);
    let (loss, _, _) = model.loss(x.clone(), eps);
    check(&model, x, n, loss, "conv VAE");
}

/// The diffusion UNet (group norm, attention, time and class embeddings), conditional, dropout
/// off: example i's timestep, noise and label drop are its stream's draws, which the batched
/// reference draws the same way.
#[test]
fn diffusion_per_example_gradients_sum_to_the_batch_gradient() {
    use genlab_models::diffusion::model::DiffusionConfig;
    use genlab_models::diffusion::unet::UnetConfig;
    let device = Device::flex().autodiff();
    let cfg = DiffusionConfig {
        unet: UnetConfig {
            base_channels: 8,
            channel_mults: vec![1, 2],
            blocks_per_level: 1,
            attention_resolutions: vec![4],
            dropout: 0.0,
            groups: 4,
        },
        timesteps: 100,
        p_uncond: 0.3,
        ..Default::default()
    };
    let model = cfg.init([1, 8, 8], Some(3), 0, &device).unwrap();
    let n = 5;
    let x: Vec<f32> =
        SeededRng::new(4).uniform_vec(n * 64).into_iter().map(|u| if u < 0.5 { -1.0 } else { 1.0 }).collect();
    let x: Tensor<4> = Tensor::from_data(TensorData::new(x, [n, 1, 8, 8]), &device);
    let labels: Vec<i64> = (0..n as i64).map(|i| i % 3).collect();
    let (mut t, mut eps, mut dropped) = (vec![], vec![], vec![]);
    for i in 0..n as u64 {
        let mut r = SeededRng::stream(7, i);
        t.push(r.below(100));
        eps.extend(r.normal_vec(64));
        dropped.push(if (r.uniform() as f64) < 0.3 { 3 } else { labels[i as usize] });
    }
    let eps: Tensor<4> = Tensor::from_data(TensorData::new(eps, [n, 1, 8, 8]), &device);
    let y: Tensor<1, Int> = Tensor::from_data(TensorData::new(labels, [n]), &device);
    let dropped: Tensor<1, Int> = Tensor::from_data(TensorData::new(dropped, [n]), &device);
    let loss = model.denoising_loss(x.clone(), &t, eps, Some(dropped), None);
    check(&model, (x, Some(y)), n, loss, "diffusion UNet");
}
