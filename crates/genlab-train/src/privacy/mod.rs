//! Differentially private training: DP-SGD (Abadi et al. 2016, <https://arxiv.org/abs/1607.00133>)
//! as Opacus runs it. Each step draws a Poisson sample of the training set (every example with
//! probability `q`), clips each example's gradient to L2 norm `max_grad_norm`, adds Gaussian noise
//! of standard deviation `noise_multiplier * max_grad_norm` to their sum, divides by the expected
//! batch size and hands the result to the family's optimiser. The [`accountant`] adds up the
//! privacy spent.
//!
//! Per-example gradients: burn has no vmap, so each example's gradient is its own backward pass
//! (Opacus's "micro-batching" and TF Privacy's `num_microbatches = batch`), on `workers` model
//! replicas on their own threads. Chosen over per-layer gradients from activations and output
//! gradients (Opacus's grad samplers, ghost clipping) because it is exact for every layer of every
//! family (convolutions, transposed convolutions, recurrent cells, attention, embeddings, group
//! norm) without rewriting a single model; its cost is measured in BENCHMARKS.md.

pub mod accountant;

use crate::error::{Result, TrainError};
use crate::optim::{OptimizerKey, Optimizers};
use crate::replicas::{on_threads, shards, AddScaled};
use crate::trainer::{StepOutput, TrainStep};
use accountant::RdpAccountant;
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::params::{visit_params, ParamVisitor};
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;
use serde::{Deserialize, Serialize};

/// `train.privacy`: the privacy guarantee to train under.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// The epsilon of (epsilon, delta)-DP the whole run may spend. Alone, it sets the noise
    /// multiplier (Opacus's `get_noise_multiplier` for `train.steps` steps); with a fixed
    /// `noise_multiplier` it is a budget: training stops before the step that would exceed it.
    pub target_epsilon: Option<f64>,
    /// Noise standard deviation over `max_grad_norm`; set it instead of, or beside,
    /// `target_epsilon`.
    pub noise_multiplier: Option<f64>,
    /// The delta of (epsilon, delta)-DP: below 1 / (training examples) to mean anything.
    pub delta: f64,
    /// Each example's gradient is clipped to this L2 norm (the sensitivity of the sum).
    pub max_grad_norm: f64,
}

/// Opacus's search tolerance: the calibrated noise spends between the target minus this and the
/// target.
pub const EPSILON_TOLERANCE: f64 = 0.01;

impl PrivacyConfig {
    /// Range checks; the message names the key under `prefix` (`train.privacy`).
    pub fn validate(&self, prefix: &str) -> std::result::Result<(), String> {
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(format!("{prefix}.delta = {}: expected a probability strictly between 0 and 1 (e.g. 1e-5, below 1 / training examples)", self.delta));
        }
        if !(self.max_grad_norm > 0.0 && self.max_grad_norm.is_finite()) {
            return Err(format!(
                "{prefix}.max_grad_norm = {}: expected a positive number (the L2 norm each example's gradient is clipped to, e.g. 1.0)",
                self.max_grad_norm
            ));
        }
        if let Some(e) = self.target_epsilon {
            if !(e > 0.0 && e.is_finite()) {
                return Err(format!("{prefix}.target_epsilon = {e}: expected a positive number"));
            }
        }
        if let Some(s) = self.noise_multiplier {
            if !(s > 0.0 && s.is_finite()) {
                return Err(format!("{prefix}.noise_multiplier = {s}: expected a positive number"));
            }
        }
        if self.target_epsilon.is_none() && self.noise_multiplier.is_none() {
            return Err(format!("{prefix}: expected target_epsilon, noise_multiplier, or both"));
        }
        Ok(())
    }

    /// The noise multiplier of a run of `steps` steps at `sample_rate`: the fixed one, or the one
    /// that spends `target_epsilon`. The error names the target when no noise can reach it.
    pub fn noise_multiplier(&self, sample_rate: f64, steps: u64, prefix: &str) -> std::result::Result<f64, String> {
        if let Some(s) = self.noise_multiplier {
            return Ok(s);
        }
        let target = self.target_epsilon.expect("validate should have required a target or a multiplier");
        accountant::noise_multiplier_for(target, self.delta, sample_rate, steps, EPSILON_TOLERANCE).ok_or_else(|| {
            let floor = accountant::epsilon_after(accountant::MAX_NOISE_MULTIPLIER, sample_rate, steps, self.delta);
            format!(
                "{prefix}.target_epsilon = {target}: unreachable: even a noise multiplier of {:e} spends epsilon {floor:.3} at delta {} over {steps} steps at sampling rate {sample_rate:.5}; raise the target",
                accountant::MAX_NOISE_MULTIPLIER,
                self.delta
            )
        })
    }
}

/// The layers of `module` that compute batch statistics (burn's `BatchNorm`), by path: they make
/// one example's output depend on the others', so per-example gradients, and DP-SGD's guarantee,
/// do not exist for them (Opacus's `ModuleValidator` refuses them likewise).
pub fn batch_norm_layers<M: Module>(module: &M) -> Vec<String> {
    #[derive(Default)]
    struct Find {
        path: Vec<String>,
        found: Vec<String>,
    }
    impl ModuleVisitor for Find {
        // Called for each field with the type of the struct that holds it.
        fn enter_module(&mut self, name: &str, container_type: &str) {
            let layer = self.path.join(".");
            if container_type == "Struct:BatchNorm" && self.found.last() != Some(&layer) {
                self.found.push(layer);
            }
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
    }
    let mut f = Find::default();
    module.visit(&mut f);
    f.found
}

/// One example's loss for DP-SGD, with the numbers the step shows (each a one-element tensor).
pub struct ExampleLoss {
    pub loss: Tensor<1>,
    pub scalars: Vec<(&'static str, Tensor<1>)>,
}

/// The rows of a tensor, each a batch of one.
pub fn rows<const D: usize, K>(x: Tensor<D, K>) -> Vec<Tensor<D, K>>
where
    K: burn::tensor::kind::Basic,
{
    let n = x.dims()[0];
    (0..n).map(|i| x.clone().slice(i..i + 1)).collect()
}

/// DP-SGD's state in a run: its settings and the accountant (saved in checkpoints).
#[derive(Debug, Clone)]
pub struct DpSgd {
    pub noise_multiplier: f64,
    pub max_grad_norm: f64,
    /// Poisson sampling rate q (expected batch size over training examples).
    pub sample_rate: f64,
    /// q times the training examples: the divisor of the noisy sum (Opacus's `expected_batch_size`).
    pub expected_batch_size: f64,
    pub delta: f64,
    /// The budget: training stops before a step that would spend more.
    pub target_epsilon: Option<f64>,
    /// Model replicas (threads) the examples of a step are spread over; the result depends on
    /// this count, not on the machine.
    pub workers: usize,
    pub accountant: RdpAccountant,
}

/// One example's numbers in a step: its loss and shown numbers, and its gradient's L2 norm before
/// clipping.
#[derive(Debug, Clone)]
pub struct ExampleStats {
    pub loss: f64,
    pub scalars: Vec<(&'static str, f64)>,
    pub grad_norm: f64,
}

/// The sum of the examples' clipped gradients, with each example's numbers in batch order.
pub struct ClippedSum {
    pub grads: GradientsParams,
    pub examples: Vec<ExampleStats>,
}

impl DpSgd {
    /// Epsilon spent so far.
    pub fn epsilon(&self) -> f64 {
        self.accountant.epsilon(self.delta)
    }

    /// Epsilon after one more step.
    pub fn epsilon_after_next_step(&self) -> f64 {
        let mut next = self.accountant.clone();
        next.step(self.noise_multiplier, self.sample_rate);
        next.epsilon(self.delta)
    }

    /// Whether the next step stays within the budget (always, without a target).
    pub fn next_step_allowed(&self) -> bool {
        self.target_epsilon.is_none_or(|t| self.epsilon_after_next_step() <= t)
    }

    /// One DP-SGD step of `model` on the Poisson sample `batch` through the family's one optimiser;
    /// per-example noise (a VAE's reparameterisation) and the added noise come from `rng`.
    pub fn step<M: TrainStep>(
        &mut self,
        model: M,
        batch: M::Batch,
        optimizers: &mut Optimizers,
        rng: &mut SeededRng,
        device: &Device,
    ) -> Result<(M, StepOutput)> {
        let examples = M::examples(batch)
            .ok_or_else(|| TrainError::Config("train.privacy: this family cannot give per-example losses".into()))?;
        let seed = rng.next_u64();
        let sum = clipped_sum(&model, examples, self.max_grad_norm, self.workers, seed, device)?;
        let grads =
            noisy_mean(&model, sum.grads, rng, self.noise_multiplier * self.max_grad_norm, self.expected_batch_size);
        let model = optimizers.get(OptimizerKey::MODEL).step_params(model, grads);
        self.accountant.step(self.noise_multiplier, self.sample_rate);
        Ok((model, summarise(&sum.examples, self.max_grad_norm)))
    }
}

/// Each example's gradient by its own backward pass, clipped to `max_norm` (Opacus's factor
/// `max_norm / (norm + 1e-6)`, at most 1) and summed: `workers` replicas of `model` on their own
/// threads each take a contiguous share of the examples, and their sums are added in order.
/// Example `i` draws its noise from stream `i` of `seed`.
pub fn clipped_sum<M: TrainStep>(
    model: &M,
    examples: Vec<M::Batch>,
    max_norm: f64,
    workers: usize,
    seed: u64,
    device: &Device,
) -> Result<ClippedSum> {
    let n = examples.len();
    let mut work = Vec::new();
    let mut it = examples.into_iter().enumerate();
    for r in shards(n, workers) {
        let chunk: Vec<(usize, M::Batch)> = it.by_ref().take(r.len()).collect();
        work.push((model.clone().fork(device), chunk));
    }
    let sums = on_threads(work, |(replica, chunk)| -> Result<ClippedSum> {
        let mut sum = ClippedSum { grads: GradientsParams::new(), examples: Vec::with_capacity(chunk.len()) };
        for (i, example) in chunk {
            let mut example_rng = SeededRng::stream(seed, i as u64);
            let l = replica
                .example_loss(example, &mut example_rng, device)
                .ok_or_else(|| TrainError::Config("train.privacy: this family gives no per-example losses".into()))?;
            let shown: Vec<Tensor<1>> = std::iter::once(l.loss.clone().detach())
                .chain(l.scalars.iter().map(|(_, t)| t.clone().detach()))
                .collect();
            let values = to_f32_vec(Tensor::cat(shown, 0));
            let mut grads = GradientsParams::from_grads(l.loss.backward(), &replica);
            let grad_norm = squared_norm(&replica, &grads).sqrt();
            let factor = (max_norm / (grad_norm + 1e-6)).min(1.0);
            replica.visit(&mut AddScaled { from: &mut grads, into: &mut sum.grads, scale: factor });
            let scalars = l.scalars.iter().zip(&values[1..]).map(|((k, _), v)| (*k, *v as f64)).collect();
            sum.examples.push(ExampleStats { loss: values[0] as f64, scalars, grad_norm });
        }
        Ok(sum)
    });
    let mut total = ClippedSum { grads: GradientsParams::new(), examples: Vec::with_capacity(n) };
    for s in sums {
        let mut s = s?;
        model.visit(&mut AddScaled { from: &mut s.grads, into: &mut total.grads, scale: 1.0 });
        total.examples.extend(s.examples);
    }
    Ok(total)
}

/// `(sum + N(0, std^2)) / divisor` for every parameter of `model`, the noise drawn from `rng` in
/// the module's parameter order; a parameter no example reached gets the noise alone (Opacus
/// noises every trainable parameter).
pub fn noisy_mean<M: Module>(
    model: &M,
    mut sum: GradientsParams,
    rng: &mut SeededRng,
    std: f64,
    divisor: f64,
) -> GradientsParams {
    let mut noisy = AddNoise { sum: &mut sum, out: GradientsParams::new(), rng, std, divisor };
    visit_params(model, &mut noisy);
    noisy.out
}

/// The step's numbers: the mean loss and shown numbers of its examples, the mean gradient norm
/// before clipping, the share of examples clipped and the sample's size.
fn summarise(examples: &[ExampleStats], max_norm: f64) -> StepOutput {
    let n = examples.len().max(1) as f64;
    let loss = examples.iter().map(|e| e.loss).sum::<f64>() / n;
    let mut scalars: Vec<(&'static str, f64)> = Vec::new();
    for e in examples {
        for (k, v) in &e.scalars {
            match scalars.iter_mut().find(|(name, _)| name == k) {
                Some((_, s)) => *s += v / n,
                None => scalars.push((k, v / n)),
            }
        }
    }
    scalars.push(("example_grad_norm", examples.iter().map(|e| e.grad_norm).sum::<f64>() / n));
    scalars.push(("clipped", examples.iter().filter(|e| e.grad_norm > max_norm).count() as f64 / n));
    scalars.push(("sample_size", examples.len() as f64));
    StepOutput { loss, scalars }
}

/// The squared L2 norm of every gradient of `module` in `grads` together (one host read).
fn squared_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    struct Parts<'a> {
        grads: &'a GradientsParams,
        parts: Vec<Tensor<1>>,
    }
    impl ModuleVisitor for Parts<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                self.parts.push(g.powi_scalar(2).sum());
            }
        }
    }
    let mut p = Parts { grads, parts: vec![] };
    module.visit(&mut p);
    if p.parts.is_empty() {
        return 0.0;
    }
    to_f32_vec(Tensor::cat(p.parts, 0)).iter().map(|&v| v as f64).sum()
}

/// (sum + N(0, std^2)) / divisor for every parameter, in the module's parameter order; a
/// parameter no example reached gets the noise alone (Opacus noises every trainable parameter).
struct AddNoise<'a> {
    sum: &'a mut GradientsParams,
    out: GradientsParams,
    rng: &'a mut SeededRng,
    std: f64,
    divisor: f64,
}

impl ParamVisitor for AddNoise<'_> {
    fn visit<const D: usize>(&mut self, _: &str, id: ParamId, value: Tensor<D>) {
        let shape = value.dims();
        let count = shape.iter().product();
        let noise: Vec<f32> = self.rng.normal_vec(count).into_iter().map(|z| (z as f64 * self.std) as f32).collect();
        let noise: Tensor<D> = Tensor::from_data(TensorData::new(noise, shape), &value.inner().device());
        let g = match self.sum.remove::<D>(id) {
            Some(s) => s + noise,
            None => noise,
        };
        self.out.register(id, g / self.divisor);
    }
}

#[cfg(test)]
mod tests;
