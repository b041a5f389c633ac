//! Errors of the core crate. Each message names the operation and the offending value.

use std::path::PathBuf;

/// What can go wrong below the model code.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown device `{0}`: expected flex, libtorch, libtorch-cuda:N or wgpu")]
    UnknownDevice(String),
    #[error("device `{device}` needs genlab built with `--features {feature}`")]
    DeviceNotCompiled { device: String, feature: &'static str },
    #[error("{path}: not a valid safetensors file: {reason}")]
    Safetensors { path: PathBuf, reason: String },
    #[error("{path}: tensor `{name}` is missing")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: tensor `{name}` has shape {found:?}, the model expects {expected:?}")]
    ShapeMismatch { path: PathBuf, name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("{path}: cannot write image: {reason}")]
    Image { path: PathBuf, reason: String },
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

impl CoreError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CoreError {
        let path = path.into();
        move |source| CoreError::Io { path, source }
    }
}
