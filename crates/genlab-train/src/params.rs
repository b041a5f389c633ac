//! Module traversals shared by the optimisers and the EMA.

use burn::module::{Module, ParamId};
use burn::Tensor;
use genlab_core::params::{visit_params, ParamVisitor};
use std::collections::HashMap;

/// The current value of every float parameter, flattened, without autodiff, by field path.
pub fn flat_params<M: Module>(module: &M) -> HashMap<String, Tensor<1>> {
    struct Flat(HashMap<String, Tensor<1>>);
    impl ParamVisitor for Flat {
        fn visit<const D: usize>(&mut self, path: &str, _: ParamId, value: Tensor<D>) {
            let t = value.inner();
            let n = t.shape().num_elements();
            self.0.insert(path.to_string(), t.reshape([n]));
        }
    }
    let mut f = Flat(HashMap::new());
    visit_params(module, &mut f);
    f.0
}

/// Whether every float parameter of `module` is finite (no NaN or infinity).
pub fn all_finite<M: Module>(module: &M) -> bool {
    struct Finite(bool);
    impl ParamVisitor for Finite {
        fn visit<const D: usize>(&mut self, _: &str, _: ParamId, value: Tensor<D>) {
            if self.0 {
                // A sum is NaN or infinite when any element is (or when finite values overflow, which
                // is divergence all the same).
                self.0 = value.inner().sum().into_scalar::<f32>().is_finite();
            }
        }
    }
    let mut f = Finite(true);
    visit_params(module, &mut f);
    f.0
}

/// Puts an updated value (computed without autodiff) back into a parameter, keeping whether it
/// was an autodiff tensor that requires gradients.
pub fn restore_like<const D: usize>(old: &Tensor<D>, new: Tensor<D>) -> Tensor<D> {
    if old.is_autodiff() {
        let t = Tensor::from_inner(new);
        if old.is_require_grad() {
            t.require_grad()
        } else {
            t
        }
    } else {
        new
    }
}
