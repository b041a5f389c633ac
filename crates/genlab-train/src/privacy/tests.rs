use super::*;
use crate::trainer::StepContext;
use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig};
use burn::tensor::activation::tanh;
use burn::tensor::module::embedding;
use burn::tensor::Int;

/// Every layer kind the families are built of that has weights: a convolution, group norm, a
/// transposed convolution, a linear layer and an embedding table; the loss draws noise from the
/// example's stream, as a VAE's does.
#[derive(Module, Debug)]
struct Mixed {
    conv: Conv2d,
    norm: GroupNorm,
    up: ConvTranspose2d,
    fc: Linear,
    table: Param<Tensor<2>>,
}

type Batch = (Tensor<4>, Tensor<1, Int>);

fn mixed(device: &Device) -> Mixed {
    let mut rng = SeededRng::new(5);
    Mixed {
        conv: Conv2dConfig::new([2, 4], [3, 3]).with_stride([2, 2]).init(device),
        norm: GroupNormConfig::new(2, 4).init(device),
        up: ConvTranspose2dConfig::new([4, 3], [2, 2]).with_stride([2, 2]).init(device),
        fc: LinearConfig::new(3 * 6 * 6, 3).init(device),
        table: Param::from_tensor(Tensor::from_data(TensorData::new(rng.normal_vec(5 * 3), [5, 3]), device)),
    }
}

impl Mixed {
    fn loss(&self, (x, labels): Batch, rng: &mut SeededRng) -> Tensor<1> {
        let n = x.dims()[0];
        let h = tanh(self.norm.forward(self.conv.forward(x))); // [n, 4, 3, 3]
        let h = tanh(self.up.forward(h)); // [n, 3, 6, 6]
        let out = self.fc.forward(h.flatten(1, 3)); // [n, 3]
        let e = embedding(self.table.val(), labels.reshape([1, n])).reshape([n, 3]);
        let noise = Tensor::<2>::from_data(TensorData::new(rng.normal_vec(n * 3), [n, 3]), &out.device());
        (out + e + noise * 0.1).powi_scalar(2).mean()
    }
}

impl TrainStep for Mixed {
    type Batch = Batch;
    fn train_step(self, batch: Batch, ctx: &mut StepContext<'_>) -> (Self, StepOutput) {
        let loss = self.loss(batch, ctx.rng);
        (ctx.optimizers.get(OptimizerKey::MODEL).backward_step(self, loss), StepOutput::default())
    }
    fn examples((x, y): Batch) -> Option<Vec<Batch>> {
        Some(rows(x).into_iter().zip(rows(y)).collect())
    }
    fn example_loss(&self, example: Batch, rng: &mut SeededRng, _: &Device) -> Option<ExampleLoss> {
        Some(ExampleLoss { loss: self.loss(example, rng), scalars: vec![] })
    }
}

fn batch(n: usize, scale: f32, device: &Device) -> Batch {
    let mut rng = SeededRng::new(11);
    let x: Vec<f32> = rng.normal_vec(n * 2 * 7 * 7).into_iter().map(|v| v * scale).collect();
    let y: Vec<i64> = (0..n as i64).map(|i| i % 5).collect();
    (Tensor::from_data(TensorData::new(x, [n, 2, 7, 7]), device), Tensor::from_data(TensorData::new(y, [n]), device))
}

/// Every gradient of `model` in `grads`, flattened in parameter order, as float64.
fn flat<M: Module>(model: &M, grads: &GradientsParams) -> Vec<f64> {
    struct Flat<'a>(&'a GradientsParams, Vec<f64>);
    impl ModuleVisitor for Flat<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let g = self.0.get::<D>(param.id).expect("every parameter should have a gradient");
            self.1.extend(to_f32_vec(g).into_iter().map(f64::from));
        }
    }
    let mut f = Flat(grads, vec![]);
    model.visit(&mut f);
    f.1
}

/// The gradient of example `i` by a backward pass of that example alone, on a fresh graph.
fn single(model: &Mixed, b: &Batch, i: usize, seed: u64) -> Vec<f64> {
    let example = (b.0.clone().slice(i..i + 1), b.1.clone().slice(i..i + 1));
    let loss = model.loss(example, &mut SeededRng::stream(seed, i as u64));
    flat(model, &GradientsParams::from_grads(loss.backward(), model))
}

/// The per-example gradients inside DP-SGD's clipped sum are those of single-example backward
/// passes, for every layer kind of `Mixed`: checked through the sum itself with clipping off
/// (every norm under max_norm), the clipped sum with clipping on (each example scaled by its own
/// factor, computed here in float64 from the single-example gradients), and the norms it reports.
/// Two workers give the one-worker result up to float reassociation.
#[test]
fn per_example_gradients_equal_single_example_passes() {
    let device = Device::flex().autodiff();
    let model = mixed(&device);
    let n = 7;
    let b = batch(n, 3.0, &device);
    let seed = 99;
    let singles: Vec<Vec<f64>> = (0..n).map(|i| single(&model, &b, i, seed)).collect();
    let norms: Vec<f64> = singles.iter().map(|g| g.iter().map(|v| v * v).sum::<f64>().sqrt()).collect();
    let (lo, hi) = norms.iter().fold((f64::MAX, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    assert!(hi > 1.5 * lo, "the examples' norms should differ: {norms:?}");
    for (max_norm, workers) in [(1e9, 1), (1e9, 2), ((lo + hi) / 2.0, 1), ((lo + hi) / 2.0, 3)] {
        let examples = Mixed::examples(b.clone()).unwrap();
        let sum = clipped_sum(&model, examples, max_norm, workers, seed, &device).unwrap();
        let got = flat(&model, &sum.grads);
        let mut want = vec![0.0f64; got.len()];
        for (g, norm) in singles.iter().zip(&norms) {
            let factor = (max_norm / (norm + 1e-6)).min(1.0);
            want.iter_mut().zip(g).for_each(|(w, v)| *w += factor * v);
        }
        for (k, (a, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (a - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "max_norm {max_norm}, {workers} workers, element {k}: {a} vs {w}"
            );
        }
        for (e, norm) in sum.examples.iter().zip(&norms) {
            assert!((e.grad_norm - norm).abs() <= 1e-4 * norm, "{} vs {norm}", e.grad_norm);
        }
    }
}

/// Clipping bounds every example's contribution: each example alone, however large its
/// gradient, adds at most max_norm to the sum.
#[test]
fn clipping_bounds_every_example() {
    let device = Device::flex().autodiff();
    let model = mixed(&device);
    let b = batch(12, 50.0, &device);
    for (i, example) in Mixed::examples(b).unwrap().into_iter().enumerate() {
        let sum = clipped_sum(&model, vec![example], 0.25, 1, i as u64, &device).unwrap();
        let norm = flat(&model, &sum.grads).iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(sum.examples[0].grad_norm > 0.25, "the example should need clipping");
        assert!(norm <= 0.25 * (1.0 + 1e-5), "example {i}: clipped norm {norm}");
        assert!(norm >= 0.25 * (1.0 - 1e-4), "example {i}: clipped to {norm}, not to the bound");
    }
}

/// The added noise has mean 0 and standard deviation noise_multiplier * max_norm / divisor in
/// every parameter (a z-test on the mean and a chi-square bound on the variance at 1e-6), is
/// independent across parameters, and leaves the sum under it.
#[test]
fn noise_has_the_stated_scale() {
    let device = Device::flex().autodiff();
    let model = mixed(&device);
    let (std, divisor) = (1.3 * 0.7, 4.0);
    let want = std / divisor;
    let mut all = Vec::new();
    for draw in 0..40 {
        let out = noisy_mean(&model, GradientsParams::new(), &mut SeededRng::new(draw), std, divisor);
        all.extend(flat(&model, &out));
    }
    let n = all.len() as f64;
    let mean = all.iter().sum::<f64>() / n;
    let var = all.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    assert!(n > 10_000.0);
    // |z| < 5 for the mean; the sample variance within 5 standard errors (sqrt(2 / n)).
    assert!(mean.abs() < 5.0 * want / n.sqrt(), "mean {mean} for std {want}");
    assert!((var / (want * want) - 1.0).abs() < 5.0 * (2.0 / n).sqrt(), "variance {var}, expected {}", want * want);
    // Lag-1 correlation of consecutive values: independent draws.
    let corr = all.windows(2).map(|w| (w[0] - mean) * (w[1] - mean)).sum::<f64>() / ((n - 1.0) * var);
    assert!(corr.abs() < 5.0 / n.sqrt(), "correlation {corr}");
    // The sum is kept: noise on a known sum is centred on sum / divisor.
    let examples = Mixed::examples(batch(3, 1.0, &device)).unwrap();
    let sum = clipped_sum(&model, examples, 1e9, 1, 0, &device).unwrap();
    let exact = flat(&model, &sum.grads);
    let noisy = flat(&model, &noisy_mean(&model, sum.grads, &mut SeededRng::new(1), 0.0, divisor));
    for (a, e) in noisy.iter().zip(&exact) {
        assert!((a - e / divisor).abs() <= 1e-6 * (1.0 + e.abs()));
    }
}

#[test]
fn batch_norm_is_found_by_path() {
    #[derive(Module, Debug)]
    struct WithNorm {
        fc: Linear,
        norms: Vec<burn::nn::BatchNorm>,
    }
    let device = Device::flex();
    let m = WithNorm {
        fc: LinearConfig::new(2, 2).init(&device),
        norms: vec![burn::nn::BatchNormConfig::new(2).init(&device), burn::nn::BatchNormConfig::new(2).init(&device)],
    };
    assert_eq!(batch_norm_layers(&m), vec!["norms.0".to_string(), "norms.1".to_string()]);
    assert!(batch_norm_layers(&mixed(&device)).is_empty());
}

#[test]
fn config_checks_name_the_key() {
    let ok = PrivacyConfig { target_epsilon: Some(3.0), noise_multiplier: None, delta: 1e-5, max_grad_norm: 1.0 };
    assert!(ok.validate("train.privacy").is_ok());
    for (bad, key) in [
        (PrivacyConfig { delta: 0.0, ..ok }, "train.privacy.delta = 0"),
        (PrivacyConfig { delta: 1.0, ..ok }, "train.privacy.delta = 1"),
        (PrivacyConfig { max_grad_norm: 0.0, ..ok }, "train.privacy.max_grad_norm = 0"),
        (PrivacyConfig { max_grad_norm: -1.0, ..ok }, "train.privacy.max_grad_norm = -1"),
        (PrivacyConfig { target_epsilon: Some(-1.0), ..ok }, "train.privacy.target_epsilon = -1"),
        (PrivacyConfig { target_epsilon: None, ..ok }, "train.privacy: expected target_epsilon"),
    ] {
        let e = bad.validate("train.privacy").unwrap_err();
        assert!(e.starts_with(key), "{e}");
    }
    let e =
        PrivacyConfig { target_epsilon: Some(0.01), ..ok }.noise_multiplier(0.004, 1000, "train.privacy").unwrap_err();
    assert!(e.starts_with("train.privacy.target_epsilon = 0.01: unreachable"), "{e}");
    let sigma = ok.noise_multiplier(256.0 / 60000.0, 3000, "train.privacy").unwrap();
    let spent = accountant::epsilon_after(sigma, 256.0 / 60000.0, 3000, 1e-5);
    assert!(spent <= 3.0 && spent > 3.0 - EPSILON_TOLERANCE, "{sigma} spends {spent}");
}
