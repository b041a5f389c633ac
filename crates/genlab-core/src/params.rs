//! Walking a module's float parameters by field path: the one place that tracks the path, used
//! by safetensors I/O, the optimisers and the EMA.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::Tensor;

/// The field path of the parameter being visited. Enum variants (`Encoder::Conv`) add no segment,
/// so a key reads `encoder.convs.0.weight` whichever variant the model uses.
#[derive(Debug, Default, Clone)]
pub struct ModulePath {
    parts: Vec<Option<String>>,
}

impl ModulePath {
    pub fn enter(&mut self, name: &str, container_type: &str) {
        self.parts.push((!container_type.starts_with("Enum:")).then(|| name.to_string()));
    }
    pub fn exit(&mut self) {
        self.parts.pop();
    }
    pub fn key(&self) -> String {
        self.parts.iter().flatten().cloned().collect::<Vec<_>>().join(".")
    }
}

/// Reads each float parameter with its path and id.
pub trait ParamVisitor {
    fn visit<const D: usize>(&mut self, path: &str, id: ParamId, value: Tensor<D>);
}

/// Replaces each float parameter's value; the parameter keeps its id.
pub trait ParamMapper {
    fn map<const D: usize>(&mut self, path: &str, id: ParamId, value: Tensor<D>) -> Tensor<D>;
}

struct ByPath<'a, F> {
    path: ModulePath,
    f: &'a mut F,
}

impl<F: ParamVisitor> ModuleVisitor for ByPath<'_, F> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.f.visit(&self.path.key(), param.id, param.val());
    }
}

impl<F: ParamMapper> ModuleMapper for ByPath<'_, F> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.enter(name, container_type);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, value, mapper) = param.consume();
        let value = self.f.map(&self.path.key(), id, value);
        Param::from_mapped_value(id, value, mapper)
    }
}

pub fn visit_params<M: Module, V: ParamVisitor>(module: &M, visitor: &mut V) {
    module.visit(&mut ByPath { path: ModulePath::default(), f: visitor });
}

pub fn map_params<M: Module, F: ParamMapper>(module: M, mapper: &mut F) -> M {
    module.map(&mut ByPath { path: ModulePath::default(), f: mapper })
}
