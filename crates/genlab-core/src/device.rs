//! Run-time device choice. The default build has the pure-Rust `flex` CPU backend; libtorch (CPU or
//! CUDA) comes with the `tch` cargo feature and wgpu with the `wgpu` feature.

use crate::error::{CoreError, Result};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Which backend and device a run uses, as written in `train.device` or `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// burn's pure-Rust CPU backend.
    #[default]
    Flex,
    /// libtorch on the CPU (feature `tch`).
    LibTorch,
    /// libtorch on CUDA device N (feature `tch`).
    LibTorchCuda(usize),
    /// burn's wgpu backend on the default adapter (feature `wgpu`).
    Wgpu,
}

impl DeviceSpec {
    /// The burn device without autodiff (evaluation, sampling). Fails if the backend is not compiled in.
    pub fn device(self) -> Result<Device> {
        match self {
            DeviceSpec::Flex => Ok(Device::flex()),
            #[cfg(feature = "tch")]
            DeviceSpec::LibTorch => Ok(Device::libtorch()),
            #[cfg(feature = "tch")]
            DeviceSpec::LibTorchCuda(i) => Ok(Device::libtorch_cuda(i)),
            #[cfg(not(feature = "tch"))]
            DeviceSpec::LibTorch | DeviceSpec::LibTorchCuda(_) => {
                Err(CoreError::DeviceNotCompiled { device: self.to_string(), feature: "tch" })
            }
            #[cfg(feature = "wgpu")]
            DeviceSpec::Wgpu => Ok(Device::wgpu(Default::default())),
            #[cfg(not(feature = "wgpu"))]
            DeviceSpec::Wgpu => Err(CoreError::DeviceNotCompiled { device: self.to_string(), feature: "wgpu" }),
        }
    }

    /// The burn device with autodiff, for training.
    pub fn autodiff_device(self) -> Result<Device> {
        Ok(self.device()?.autodiff())
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Flex => write!(f, "flex"),
            DeviceSpec::LibTorch => write!(f, "libtorch"),
            DeviceSpec::LibTorchCuda(i) => write!(f, "libtorch-cuda:{i}"),
            DeviceSpec::Wgpu => write!(f, "wgpu"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "flex" | "cpu" => Ok(DeviceSpec::Flex),
            "libtorch" => Ok(DeviceSpec::LibTorch),
            "wgpu" => Ok(DeviceSpec::Wgpu),
            _ => s
                .strip_prefix("libtorch-cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::LibTorchCuda)
                .ok_or_else(|| CoreError::UnknownDevice(s.to_string())),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_spec() {
        for s in ["flex", "libtorch", "libtorch-cuda:1", "wgpu"] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap().to_string(), s);
        }
        assert!("cuda".parse::<DeviceSpec>().is_err());
        assert!("libtorch-cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[cfg(not(feature = "tch"))]
    #[test]
    fn uncompiled_backend_is_a_clear_error() {
        let e = DeviceSpec::LibTorch.device().unwrap_err().to_string();
        assert!(e.contains("--features tch"), "{e}");
    }
}
