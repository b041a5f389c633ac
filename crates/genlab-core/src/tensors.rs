//! Named tensors and their safetensors files. A tensor's name is its field path in the module
//! (`encoder.conv1.weight`), so a checkpoint reads like the model that wrote it.

use crate::atomic::write_atomic;
use crate::error::{CoreError, Result};
use crate::params::{map_params, visit_params, ParamMapper, ParamVisitor};
use burn::module::{Module, ParamId};
use burn::tensor::{Tensor, TensorData};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One float32 tensor on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    pub fn from_tensor<const D: usize>(t: &Tensor<D>) -> Self {
        HostTensor { shape: t.dims().to_vec(), data: to_f32_vec(t.clone()) }
    }

    pub fn to_tensor<const D: usize>(&self, device: &burn::tensor::Device) -> Tensor<D> {
        Tensor::from_data(TensorData::new(self.data.clone(), self.shape.clone()), device)
    }
}

/// The elements of a tensor as f32, in row-major order.
pub fn to_f32_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().expect("a tensor converted to f32 should read back as f32")
}

/// The elements of an integer tensor, in row-major order.
pub fn to_i64_vec<const D: usize>(t: Tensor<D, burn::tensor::Int>) -> Vec<i64> {
    t.into_data().convert::<i64>().try_to_vec::<i64>().expect("an int tensor converted to i64 should read back as i64")
}

/// Tensors by name, sorted, as stored in one safetensors file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamedTensors(pub BTreeMap<String, HostTensor>);

impl NamedTensors {
    /// Every float parameter of `module`, named by its field path.
    pub fn from_module<M: Module>(module: &M) -> Self {
        let mut c = Collector(NamedTensors::default());
        visit_params(module, &mut c);
        c.0
    }

    pub fn insert(&mut self, name: impl Into<String>, t: HostTensor) {
        self.0.insert(name.into(), t);
    }

    pub fn get(&self, name: &str) -> Option<&HostTensor> {
        self.0.get(name)
    }

    /// Serialises to the safetensors format (float32, little-endian).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_with_metadata(&BTreeMap::new())
    }

    /// Serialises to safetensors with string metadata in the header (`__metadata__`).
    pub fn to_bytes_with_metadata(&self, metadata: &BTreeMap<String, String>) -> Vec<u8> {
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .0
            .iter()
            .map(|(k, t)| {
                let b = t.data.iter().flat_map(|x| x.to_le_bytes()).collect();
                (k.clone(), b, t.shape.clone())
            })
            .collect();
        let views: Vec<(String, TensorView<'_>)> = bytes
            .iter()
            .map(|(k, b, s)| {
                let view = TensorView::new(Dtype::F32, s.clone(), b)
                    .expect("shape and byte length should agree by construction");
                (k.clone(), view)
            })
            .collect();
        let meta = (!metadata.is_empty()).then(|| metadata.clone().into_iter().collect());
        safetensors::serialize(views, &meta).expect("serialising in memory should not fail")
    }

    /// The header's string metadata (empty when the file has none).
    pub fn read_metadata(bytes: &[u8], path: &Path) -> Result<BTreeMap<String, String>> {
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| CoreError::Safetensors { path: path.to_path_buf(), reason: e.to_string() })?;
        Ok(meta.metadata().clone().map(|m| m.into_iter().collect()).unwrap_or_default())
    }

    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |reason: String| CoreError::Safetensors { path: path.to_path_buf(), reason };
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
        let mut out = BTreeMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(bad(format!("tensor `{name}` is {:?}, expected F32", view.dtype())));
            }
            let data = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            out.insert(name, HostTensor { shape: view.shape().to_vec(), data });
        }
        Ok(NamedTensors(out))
    }

    /// Writes the file atomically (temporary file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes())
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::files::read_bounded(path).map_err(CoreError::io(path))?;
        Self::from_bytes(&bytes, path)
    }

    /// Replaces every float parameter of `module` by the tensor of the same name. `source` names the
    /// file in errors. Fails on a missing name or a shape that differs from the module's.
    pub fn load_into<M: Module>(&self, module: M, source: &Path) -> Result<M> {
        let mut m = Loader { tensors: self, source: source.to_path_buf(), error: None };
        let module = map_params(module, &mut m);
        match m.error {
            Some(e) => Err(e),
            None => Ok(module),
        }
    }
}

/// Saves the parameters of `module` to a safetensors file at `path`, atomically.
pub fn save_module<M: Module>(module: &M, path: &Path) -> Result<()> {
    NamedTensors::from_module(module).save(path)
}

/// Loads the parameters of `module` from the safetensors file at `path`.
pub fn load_module<M: Module>(module: M, path: &Path) -> Result<M> {
    NamedTensors::load(path)?.load_into(module, path)
}

struct Collector(NamedTensors);

impl ParamVisitor for Collector {
    fn visit<const D: usize>(&mut self, path: &str, _: ParamId, value: Tensor<D>) {
        self.0.insert(path, HostTensor::from_tensor(&value));
    }
}

struct Loader<'a> {
    tensors: &'a NamedTensors,
    source: PathBuf,
    error: Option<CoreError>,
}

impl ParamMapper for Loader<'_> {
    fn map<const D: usize>(&mut self, name: &str, _: ParamId, tensor: Tensor<D>) -> Tensor<D> {
        if self.error.is_some() {
            return tensor;
        }
        let expected = tensor.dims().to_vec();
        let loaded = match self.tensors.get(name) {
            None => Err(CoreError::MissingTensor { path: self.source.clone(), name: name.into() }),
            Some(t) if t.shape != expected => Err(CoreError::ShapeMismatch {
                path: self.source.clone(),
                name: name.into(),
                expected,
                found: t.shape.clone(),
            }),
            Some(t) => Ok(t),
        };
        match loaded {
            Ok(t) => {
                let new: Tensor<D> = t.to_tensor(&tensor.device());
                if tensor.is_require_grad() {
                    new.require_grad()
                } else {
                    new
                }
            }
            Err(e) => {
                self.error = Some(e);
                tensor
            }
        }
    }
}
