//! Adam (Kingma & Ba 2015, <https://arxiv.org/abs/1412.6980>) and AdamW (Loshchilov & Hutter 2019,
//! <https://arxiv.org/abs/1711.05101>), written to follow `torch.optim.Adam`/`AdamW` step for step
//! (same epsilon placement and bias correction), with global-norm gradient clipping as
//! `torch.nn.utils.clip_grad_norm_`. Their state is keyed by parameter field path, so it is saved in
//! a safetensors file that reads like the model (`encoder.fc.weight.exp_avg`).
//!
//! genlab keeps its own optimiser instead of burn's so that the state is addressable by path (burn
//! keys it by a run-local parameter id) and the epsilon default is PyTorch's 1e-8 (burn's is 1e-5).

use crate::error::{Result, TrainError};
use crate::params::restore_like;
use burn::module::{Module, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Gradients;
use burn::Tensor;
use genlab_core::params::{map_params, visit_params, ParamMapper, ParamVisitor};
use genlab_core::tensors::{HostTensor, NamedTensors};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam; `weight_decay` is an L2 term added to the gradient, as in `torch.optim.Adam`.
    Adam,
    /// AdamW; `weight_decay` is decoupled: `p -= lr * wd * p` before the Adam step.
    Adamw,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub lr: f64,
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    #[serde(default = "default_eps")]
    pub eps: f64,
    #[serde(default)]
    pub weight_decay: f64,
}

fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}
fn default_eps() -> f64 {
    1e-8
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 1e-3,
            betas: default_betas(),
            eps: default_eps(),
            weight_decay: 0.0,
        }
    }
}

impl OptimizerConfig {
    /// Checks ranges; the message names the field.
    pub fn validate(&self, prefix: &str) -> std::result::Result<(), String> {
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(format!("{prefix}.lr = {}: expected a positive number", self.lr));
        }
        for (i, b) in self.betas.iter().enumerate() {
            if !(0.0..1.0).contains(b) {
                return Err(format!("{prefix}.betas[{i}] = {b}: expected a value in [0, 1)"));
            }
        }
        if self.eps <= 0.0 {
            return Err(format!("{prefix}.eps = {}: expected a positive number", self.eps));
        }
        if self.weight_decay < 0.0 {
            return Err(format!("{prefix}.weight_decay = {}: expected >= 0", self.weight_decay));
        }
        Ok(())
    }
}

/// First and second moments of one parameter, flattened.
#[derive(Clone)]
struct Moments {
    exp_avg: Tensor<1>,
    exp_avg_sq: Tensor<1>,
}

/// Which of a family's optimisers: a typed key the family declares once (`OptimizerKey::MODEL`,
/// a GAN's `GENERATOR` and `DISCRIMINATOR`), whose name prefixes the optimiser's state in
/// checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptimizerKey(pub &'static str);

impl OptimizerKey {
    /// The one optimiser of a single-network family.
    pub const MODEL: OptimizerKey = OptimizerKey("model");
}

/// One optimiser with its state, for one group of parameters (one sub-module).
pub struct Optimizer {
    pub name: String,
    pub config: OptimizerConfig,
    /// Global-norm clipping threshold, if any.
    pub clip_grad_norm: Option<f64>,
    /// Updates taken so far (the `t` of Adam's bias correction).
    pub updates: u64,
    /// Weight decay only on parameters of rank 2 and more (weight matrices and embeddings), not
    /// on biases and normalisation gains: nanoGPT's `configure_optimizers` groups.
    pub decay_matrices_only: bool,
    lr: f64,
    state: HashMap<String, Moments>,
    last_grad_norm: Option<f64>,
}

impl Optimizer {
    pub fn new(key: OptimizerKey, config: OptimizerConfig, clip_grad_norm: Option<f64>) -> Self {
        Optimizer {
            name: key.0.into(),
            config,
            clip_grad_norm,
            updates: 0,
            decay_matrices_only: false,
            lr: config.lr,
            state: HashMap::new(),
            last_grad_norm: None,
        }
    }

    /// The optimiser with weight decay on matrices only (see `decay_matrices_only`).
    pub fn decaying_matrices_only(mut self) -> Self {
        self.decay_matrices_only = true;
        self
    }

    /// The learning rate of the next update.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// The pre-clipping global gradient norm of the last update (only measured when clipping).
    pub fn last_grad_norm(&self) -> Option<f64> {
        self.last_grad_norm
    }

    /// Back-propagates `loss` and updates `module` (a model or a sub-module such as a GAN's
    /// discriminator). Parameters of `module` without a gradient are left as they are.
    pub fn backward_step<M: Module>(&mut self, module: M, loss: Tensor<1>) -> M {
        let grads = loss.backward();
        self.step(module, grads)
    }

    /// Updates `module` with the gradients in `grads` that belong to it.
    pub fn step<M: Module>(&mut self, module: M, grads: Gradients) -> M {
        let grads = GradientsParams::from_grads(grads, &module);
        self.step_params(module, grads)
    }

    /// Updates `module` with gradients already keyed by parameter.
    pub fn step_params<M: Module>(&mut self, module: M, mut grads: GradientsParams) -> M {
        self.updates += 1;
        let clip_scale = match self.clip_grad_norm {
            Some(max) => {
                let norm = global_grad_norm(&module, &grads);
                self.last_grad_norm = Some(norm);
                // torch.nn.utils.clip_grad_norm_: scale by max / (norm + 1e-6) when that is < 1.
                (max / (norm + 1e-6)).min(1.0)
            }
            None => 1.0,
        };
        let mut mapper = AdamMapper {
            grads: &mut grads,
            state: &mut self.state,
            config: self.config,
            lr: self.lr,
            t: self.updates,
            clip_scale,
            decay_matrices_only: self.decay_matrices_only,
        };
        map_params(module, &mut mapper)
    }

    /// The state as named tensors: `{path}.exp_avg` and `{path}.exp_avg_sq`.
    pub fn state_tensors(&self, prefix: &str, out: &mut NamedTensors) {
        for (path, m) in &self.state {
            out.insert(format!("{prefix}{path}.exp_avg"), HostTensor::from_tensor(&m.exp_avg));
            out.insert(format!("{prefix}{path}.exp_avg_sq"), HostTensor::from_tensor(&m.exp_avg_sq));
        }
    }

    /// Restores the state written by [`Optimizer::state_tensors`].
    pub fn load_state(
        &mut self,
        prefix: &str,
        tensors: &NamedTensors,
        updates: u64,
        device: &burn::tensor::Device,
    ) -> Result<()> {
        self.state.clear();
        self.updates = updates;
        for (name, t) in &tensors.0 {
            let Some(rest) = name.strip_prefix(prefix) else { continue };
            let (path, which) = rest
                .rsplit_once('.')
                .ok_or_else(|| TrainError::Source(format!("optimiser state tensor `{name}` has no field suffix")))?;
            let value: Tensor<1> = t.to_tensor(device);
            let entry = self
                .state
                .entry(path.to_string())
                .or_insert_with(|| Moments { exp_avg: value.clone(), exp_avg_sq: value.clone() });
            match which {
                "exp_avg" => entry.exp_avg = value,
                "exp_avg_sq" => entry.exp_avg_sq = value,
                _ => {
                    return Err(TrainError::Source(format!("optimiser state tensor `{name}`: unknown field `{which}`")))
                }
            }
        }
        Ok(())
    }
}

/// The optimisers a family owns, by name (one for a VAE, two for a GAN).
pub struct Optimizers {
    list: Vec<Optimizer>,
}

impl Optimizers {
    pub fn new(list: Vec<Optimizer>) -> Self {
        Optimizers { list }
    }

    pub fn single(config: OptimizerConfig, clip_grad_norm: Option<f64>) -> Self {
        Optimizers::new(vec![Optimizer::new(OptimizerKey::MODEL, config, clip_grad_norm)])
    }

    /// The optimiser of `key`; panics on a key the family did not register, a programming error.
    pub fn get(&mut self, key: OptimizerKey) -> &mut Optimizer {
        self.list
            .iter_mut()
            .find(|o| o.name == key.0)
            .unwrap_or_else(|| panic!("optimiser `{}` should have been registered by the model family", key.0))
    }

    /// Sets every optimiser's learning rate to its base rate times `factor`.
    pub fn set_lr_factor(&mut self, factor: f64) {
        for o in &mut self.list {
            o.lr = o.config.lr * factor;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Optimizer> {
        self.list.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Optimizer> {
        self.list.iter_mut()
    }
}

fn global_grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    struct SumSq<'a> {
        grads: &'a GradientsParams,
        sq: Option<Tensor<1>>,
    }
    impl ParamVisitor for SumSq<'_> {
        fn visit<const D: usize>(&mut self, _: &str, id: ParamId, _: Tensor<D>) {
            if let Some(g) = self.grads.get::<D>(id) {
                let s = g.powi_scalar(2).sum();
                self.sq = Some(match self.sq.take() {
                    Some(acc) => acc + s,
                    None => s,
                });
            }
        }
    }
    let mut v = SumSq { grads, sq: None };
    visit_params(module, &mut v);
    v.sq.map_or(0.0, |s| (s.into_scalar::<f32>() as f64).sqrt())
}

struct AdamMapper<'a> {
    grads: &'a mut GradientsParams,
    state: &'a mut HashMap<String, Moments>,
    config: OptimizerConfig,
    lr: f64,
    t: u64,
    clip_scale: f64,
    decay_matrices_only: bool,
}

impl ParamMapper for AdamMapper<'_> {
    fn map<const D: usize>(&mut self, path: &str, id: ParamId, tensor: Tensor<D>) -> Tensor<D> {
        let Some(grad) = self.grads.remove::<D>(id) else {
            return tensor;
        };
        let dims = tensor.dims();
        let n = tensor.shape().num_elements();
        let c = &self.config;
        let (b1, b2) = (c.betas[0], c.betas[1]);
        let mut p: Tensor<1> = tensor.clone().inner().reshape([n]);
        let mut g: Tensor<1> = grad.reshape([n]);
        if self.clip_scale < 1.0 {
            g = g * self.clip_scale;
        }
        if c.weight_decay > 0.0 && (D >= 2 || !self.decay_matrices_only) {
            match c.kind {
                OptimizerKind::Adam => g = g + p.clone() * c.weight_decay,
                OptimizerKind::Adamw => p = p * (1.0 - self.lr * c.weight_decay),
            }
        }
        let m = match self.state.remove(path) {
            Some(m) => Moments {
                exp_avg: m.exp_avg * b1 + g.clone() * (1.0 - b1),
                exp_avg_sq: m.exp_avg_sq * b2 + g.powi_scalar(2) * (1.0 - b2),
            },
            None => Moments { exp_avg: g.clone() * (1.0 - b1), exp_avg_sq: g.powi_scalar(2) * (1.0 - b2) },
        };
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2 = 1.0 - b2.powi(self.t as i32);
        let denom = m.exp_avg_sq.clone().sqrt() / bc2.sqrt() + c.eps;
        let p = p - m.exp_avg.clone() / denom * (self.lr / bc1);
        self.state.insert(path.to_string(), m);
        restore_like(&tensor, p.reshape(dims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    use burn::module::Param;

    #[derive(Module, Debug)]
    struct Pair {
        a: Param<Tensor<1>>,
        b: Param<Tensor<2>>,
    }

    fn pair(dev: &Device) -> Pair {
        Pair {
            a: Param::from_data(TensorData::new(vec![1.0f32, -2.0], [2]), dev),
            b: Param::from_data(TensorData::new(vec![0.5f32, 0.25, -1.0, 3.0], [2, 2]), dev),
        }
    }

    fn loss(p: &Pair) -> Tensor<1> {
        // f = sum(a^2) + sum(b^3) / 3: gradients 2a and b^2.
        p.a.val().powi_scalar(2).sum() + p.b.val().powi_scalar(3).sum() / 3.0
    }

    /// Adam in float64 on the host, as torch.optim.Adam/AdamW write it.
    fn reference(
        x0: &[f64],
        grad: impl Fn(&[f64]) -> Vec<f64>,
        c: OptimizerConfig,
        steps: usize,
        clip: Option<f64>,
    ) -> Vec<f64> {
        let mut x = x0.to_vec();
        let (mut m, mut v) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        for t in 1..=steps {
            let mut g = grad(&x);
            if let Some(max) = clip {
                let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
                let s = (max / (norm + 1e-6)).min(1.0);
                g.iter_mut().for_each(|v| *v *= s);
            }
            for i in 0..x.len() {
                let mut gi = g[i];
                match c.kind {
                    OptimizerKind::Adam => gi += c.weight_decay * x[i],
                    OptimizerKind::Adamw => x[i] *= 1.0 - c.lr * c.weight_decay,
                }
                m[i] = c.betas[0] * m[i] + (1.0 - c.betas[0]) * gi;
                v[i] = c.betas[1] * v[i] + (1.0 - c.betas[1]) * gi * gi;
                let bc1 = 1.0 - c.betas[0].powi(t as i32);
                let bc2 = 1.0 - c.betas[1].powi(t as i32);
                x[i] -= c.lr / bc1 * m[i] / (v[i].sqrt() / bc2.sqrt() + c.eps);
            }
        }
        x
    }

    fn run(c: OptimizerConfig, clip: Option<f64>) {
        let dev = Device::flex().autodiff();
        let mut p = pair(&dev);
        let mut opt = Optimizer::new(OptimizerKey::MODEL, c, clip);
        for _ in 0..5 {
            let l = loss(&p);
            p = opt.backward_step(p, l);
        }
        let got: Vec<f64> = [genlab_core::tensors::to_f32_vec(p.a.val()), genlab_core::tensors::to_f32_vec(p.b.val())]
            .concat()
            .into_iter()
            .map(f64::from)
            .collect();
        let x0 = [1.0, -2.0, 0.5, 0.25, -1.0, 3.0];
        let want = reference(
            &x0,
            |x| vec![2.0 * x[0], 2.0 * x[1], x[2] * x[2], x[3] * x[3], x[4] * x[4], x[5] * x[5]],
            c,
            5,
            clip,
        );
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{c:?} clip {clip:?}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn adam_and_adamw_match_a_float64_reference() {
        run(OptimizerConfig { lr: 0.1, ..Default::default() }, None);
        run(OptimizerConfig { lr: 0.05, weight_decay: 0.1, ..Default::default() }, None);
        run(
            OptimizerConfig { kind: OptimizerKind::Adamw, lr: 0.05, weight_decay: 0.3, betas: [0.8, 0.99], eps: 1e-6 },
            None,
        );
        run(OptimizerConfig { lr: 0.1, ..Default::default() }, Some(0.5));
    }

    /// With decay on matrices only, the 1-D parameter takes plain Adam steps and the 2-D one
    /// AdamW's.
    #[test]
    fn decay_on_matrices_only_spares_vectors() {
        let dev = Device::flex().autodiff();
        let c = OptimizerConfig { kind: OptimizerKind::Adamw, lr: 0.05, weight_decay: 0.3, ..Default::default() };
        let mut opt = Optimizer::new(OptimizerKey::MODEL, c, None).decaying_matrices_only();
        let mut p = pair(&dev);
        for _ in 0..3 {
            let l = loss(&p);
            p = opt.backward_step(p, l);
        }
        let x0 = [1.0, -2.0, 0.5, 0.25, -1.0, 3.0];
        let plain = reference(
            &x0,
            |x| vec![2.0 * x[0], 2.0 * x[1], x[2] * x[2], x[3] * x[3], x[4] * x[4], x[5] * x[5]],
            OptimizerConfig { weight_decay: 0.0, ..c },
            3,
            None,
        );
        let decayed = reference(
            &x0,
            |x| vec![2.0 * x[0], 2.0 * x[1], x[2] * x[2], x[3] * x[3], x[4] * x[4], x[5] * x[5]],
            c,
            3,
            None,
        );
        let a = genlab_core::tensors::to_f32_vec(p.a.val());
        let b = genlab_core::tensors::to_f32_vec(p.b.val());
        for i in 0..2 {
            assert!((a[i] as f64 - plain[i]).abs() < 1e-5, "{a:?} {plain:?}");
        }
        for i in 0..4 {
            assert!((b[i] as f64 - decayed[2 + i]).abs() < 1e-5, "{b:?} {decayed:?}");
        }
    }

    #[test]
    fn state_round_trips_by_path() {
        let dev = Device::flex().autodiff();
        let mut opt = Optimizer::new(OptimizerKey::MODEL, OptimizerConfig::default(), None);
        let p0 = pair(&dev);
        let l0 = loss(&p0);
        let p = opt.backward_step(p0, l0);
        let mut named = NamedTensors::default();
        opt.state_tensors("model.", &mut named);
        assert!(named.get("model.b.exp_avg_sq").is_some(), "{:?}", named.0.keys());
        let mut again = Optimizer::new(OptimizerKey::MODEL, OptimizerConfig::default(), None);
        again.load_state("model.", &named, opt.updates, &dev).unwrap();
        let l = loss(&p);
        let a = opt.backward_step(p.clone(), l);
        let b = again.backward_step(p.clone(), loss(&p));
        assert_eq!(a.b.val().to_data(), b.b.val().to_data());
    }
}
