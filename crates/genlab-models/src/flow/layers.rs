//! The building blocks of a multi-scale flow: a step (Glow's ActNorm -> invertible 1x1 convolution
//! -> affine coupling, or RealNVP's coupling alone) and a level (steps, a squeeze, more steps, and
//! the factoring-out of half the channels).

use burn::module::Module;
use burn::Tensor;
use genlab_nn::actnorm::ActNorm;
use genlab_nn::coupling::AffineCoupling;
use genlab_nn::invconv::InvConv1x1;
use genlab_nn::squeeze::{squeeze, unsqueeze};

/// One invertible step; Glow's carries all three layers, RealNVP's the coupling only.
#[derive(Module, Debug)]
pub struct FlowStep {
    pub actnorm: Option<ActNorm>,
    pub invconv: Option<InvConv1x1>,
    pub coupling: AffineCoupling,
}

impl FlowStep {
    /// # Shapes
    /// `x: [batch, c, h, w]` -> `([batch, c, h, w], [batch])`
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let (mut x, mut log_det) = (x, None::<Tensor<1>>);
        let mut add = |ld: Tensor<1>| log_det = Some(log_det.take().map_or(ld.clone(), |a| a + ld));
        if let Some(a) = &self.actnorm {
            let (y, ld) = a.forward(x);
            add(ld);
            x = y;
        }
        if let Some(w) = &self.invconv {
            let (y, ld) = w.forward(x);
            add(ld);
            x = y;
        }
        let (y, ld) = self.coupling.forward(x);
        add(ld);
        (y, log_det.expect("a step has a coupling"))
    }

    pub fn inverse(&self, y: Tensor<4>) -> Tensor<4> {
        let mut x = self.coupling.inverse(y);
        if let Some(w) = &self.invconv {
            x = w.inverse(x);
        }
        if let Some(a) = &self.actnorm {
            x = a.inverse(x);
        }
        x
    }

    /// Sets the ActNorm (if any) from `x`, its input (Glow's data-dependent initialisation).
    pub fn initialize(&mut self, x: Tensor<4>) {
        if let Some(a) = self.actnorm.take() {
            self.actnorm = Some(a.initialize(x));
        }
    }
}

/// Steps, an optional squeeze, more steps, and optionally the split that factors out the first
/// half of the channels as latent variables of this scale.
#[derive(Module, Debug)]
pub struct Level {
    pub before: Vec<FlowStep>,
    pub squeeze: bool,
    pub after: Vec<FlowStep>,
    pub split: bool,
}

impl Level {
    /// `x -> (kept, factored-out, log-det)`; the factored-out part is `None` without a split.
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Option<Tensor<4>>, Tensor<1>) {
        let n = x.dims()[0];
        let mut log_det = Tensor::<1>::zeros([n], &x.device());
        let mut x = x;
        for s in &self.before {
            let (y, ld) = s.forward(x);
            (x, log_det) = (y, log_det + ld);
        }
        if self.squeeze {
            x = squeeze(x);
        }
        for s in &self.after {
            let (y, ld) = s.forward(x);
            (x, log_det) = (y, log_det + ld);
        }
        if !self.split {
            return (x, None, log_det);
        }
        let c = x.dims()[1];
        let z = x.clone().narrow(1, 0, c / 2);
        (x.narrow(1, c / 2, c - c / 2), Some(z), log_det)
    }

    /// `(kept, factored-out) -> x`, the inverse of [`forward`](Self::forward).
    pub fn inverse(&self, kept: Tensor<4>, z: Option<Tensor<4>>) -> Tensor<4> {
        let mut x = match z {
            Some(z) => Tensor::cat(vec![z, kept], 1),
            None => kept,
        };
        for s in self.after.iter().rev() {
            x = s.inverse(x);
        }
        if self.squeeze {
            x = unsqueeze(x);
        }
        for s in self.before.iter().rev() {
            x = s.inverse(x);
        }
        x
    }

    /// Runs `x` through the level, initialising each ActNorm from its own input; returns the
    /// kept part, as [`forward`](Self::forward) would.
    pub fn initialize(&mut self, x: Tensor<4>) -> Tensor<4> {
        let mut x = x;
        for s in &mut self.before {
            s.initialize(x.clone());
            x = s.forward(x).0;
        }
        if self.squeeze {
            x = squeeze(x);
        }
        for s in &mut self.after {
            s.initialize(x.clone());
            x = s.forward(x).0;
        }
        if !self.split {
            return x;
        }
        let c = x.dims()[1];
        x.narrow(1, c / 2, c - c / 2)
    }
}
