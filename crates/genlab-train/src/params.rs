//! Module traversals by field path, shared by the optimisers and the EMA.

use burn::module::{Module, ModuleVisitor, Param};
use burn::Tensor;
use genlab_core::tensors::ModulePath;
use std::collections::HashMap;

/// The current value of every float parameter, flattened, without autodiff, by field path.
pub fn flat_params<M: Module>(module: &M) -> HashMap<String, Tensor<1>> {
    #[derive(Default)]
    struct V {
        path: ModulePath,
        out: HashMap<String, Tensor<1>>,
    }
    impl ModuleVisitor for V {
        fn enter_module(&mut self, name: &str, container_type: &str) {
            self.path.enter(name, container_type);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.exit();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.val().inner();
            let n = t.shape().num_elements();
            self.out.insert(self.path.key(), t.reshape([n]));
        }
    }
    let mut v = V::default();
    module.visit(&mut v);
    v.out
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
