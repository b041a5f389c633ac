//! An exponential moving average of the weights (Polyak averaging), kept beside the live model and
//! used for evaluation and sampling. The decay warms up as in TensorFlow's
//! `ExponentialMovingAverage(num_updates=...)`: `min(decay, (1 + n) / (10 + n))`, so early, poor
//! weights are forgotten quickly.

use crate::params::flat_params;
use burn::module::{Module, ParamId};
use burn::Tensor;
use genlab_core::params::{map_params, ParamMapper};
use std::collections::HashMap;

pub struct Ema<M> {
    pub decay: f64,
    pub updates: u64,
    /// The averaged weights, without autodiff.
    pub model: M,
}

impl<M: Module> Ema<M> {
    /// Starts from a copy of `live`'s current weights.
    pub fn new(live: &M, decay: f64) -> Self {
        Ema { decay, updates: 0, model: live.valid() }
    }

    /// The decay used at the next update.
    pub fn current_decay(&self) -> f64 {
        let n = self.updates as f64;
        self.decay.min((1.0 + n) / (10.0 + n))
    }

    /// ema = d * ema + (1 - d) * live, for every float parameter (matched by field path).
    pub fn update(&mut self, live: &M) {
        let d = self.current_decay();
        self.updates += 1;
        let live = flat_params(live);
        let mut m = EmaMapper { live, decay: d };
        self.model = map_params(self.model.clone(), &mut m);
    }
}

struct EmaMapper {
    live: HashMap<String, Tensor<1>>,
    decay: f64,
}

impl ParamMapper for EmaMapper {
    fn map<const D: usize>(&mut self, path: &str, _: ParamId, ema: Tensor<D>) -> Tensor<D> {
        let live = self.live.remove(path).expect("the EMA copy should have the live model's parameters");
        let dims = ema.dims();
        ema * self.decay + live.reshape(dims) * (1.0 - self.decay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::tensor::{Device, TensorData};

    #[derive(Module, Debug)]
    struct One {
        w: Param<Tensor<1>>,
    }

    #[test]
    fn follows_the_warmed_up_recurrence() {
        let dev = Device::flex();
        let mk = |v: f32| One { w: Param::from_data(TensorData::new(vec![v], [1]), &dev) };
        let mut ema = Ema::new(&mk(0.0), 0.9);
        let mut want = 0.0f64;
        for (n, v) in [1.0f32, 2.0, 4.0, 8.0].into_iter().enumerate() {
            let d = 0.9f64.min((1.0 + n as f64) / (10.0 + n as f64));
            want = d * want + (1.0 - d) * v as f64;
            ema.update(&mk(v));
        }
        let got = ema.model.w.val().into_scalar::<f32>() as f64;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }
}
