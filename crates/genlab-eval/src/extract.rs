//! Feature extraction for the sample metrics: images in, feature vectors (and logits, where the
//! network has them) out, in batches with a progress bar, and the protocol record that travels with
//! every number computed from them.

use crate::error::EvalError;
use crate::features::Features;
use crate::inception::FidInception;
use crate::lenet::{LenetExtractor, MNIST_LENET_FILE};
use crate::preprocess::{inception_input, FidProtocol};
use crate::weights::{load_fid_inception, sha1_hex, weights_dir, WeightsError, FID_INCEPTION_FILE, SOURCE_SHA1_KEY};
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::progress::Progress;
use genlab_core::tensors::NamedTensors;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The feature networks genlab computes sample metrics with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureNetwork {
    /// The FID Inception-v3 (pool3, 2048-d), any image size, resized to 299x299.
    Inception,
    /// genlab's LeNet trained on MNIST (hidden layer features, 10 logits), 28x28 gray digits only.
    MnistLenet,
}

impl FeatureNetwork {
    /// Where its weights are looked up: the weights directory.
    pub fn default_path(self) -> PathBuf {
        weights_dir().join(match self {
            FeatureNetwork::Inception => FID_INCEPTION_FILE,
            FeatureNetwork::MnistLenet => MNIST_LENET_FILE,
        })
    }
}

/// What produced a set of features: enough to say whether two numbers are comparable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureProtocol {
    pub network: String,
    /// SHA-1 of the weights file.
    pub weights_sha1: String,
    /// The reference implementation whose preprocessing (resize, scaling) reached the network
    /// (None: images fed at their own size).
    #[serde(alias = "resize")]
    pub protocol: Option<FidProtocol>,
    /// Whether gray images were replicated to three channels.
    pub gray_replicated: bool,
}

impl FeatureProtocol {
    /// The protocol of a metric between two feature sets from the same network: gray replication
    /// is recorded when either set was gray.
    pub fn joined(self, other: &FeatureProtocol) -> FeatureProtocol {
        FeatureProtocol { gray_replicated: self.gray_replicated || other.gray_replicated, ..self }
    }

    /// One line: network, weights hash, resizing, gray replication.
    pub fn describe(&self) -> String {
        format!(
            "{}, weights sha1 {}, {}{}",
            self.network,
            self.weights_sha1,
            match self.protocol {
                Some(p) => format!("protocol {p}"),
                None => "no resize".into(),
            },
            if self.gray_replicated { ", gray images replicated to RGB" } else { "" }
        )
    }
}

/// Features of one image set, with logits when the network has a classifier head.
pub struct Extracted {
    pub features: Features,
    pub logits: Option<Features>,
    pub protocol: FeatureProtocol,
}

/// A loaded feature network.
pub enum FeatureExtractor {
    Inception(Box<InceptionExtractor>, FidProtocol),
    MnistLenet(Box<LenetExtractor>),
}

impl FeatureExtractor {
    /// Loads `network` from `path`, or from the weights directory when `path` is None.
    pub fn load(
        network: FeatureNetwork,
        path: Option<&Path>,
        resize: FidProtocol,
        device: &Device,
    ) -> Result<Self, WeightsError> {
        let path = path.map_or_else(|| network.default_path(), Path::to_path_buf);
        Ok(match network {
            FeatureNetwork::Inception => {
                FeatureExtractor::Inception(Box::new(InceptionExtractor::load(&path, device)?), resize)
            }
            FeatureNetwork::MnistLenet => FeatureExtractor::MnistLenet(Box::new(LenetExtractor::load(&path, device)?)),
        })
    }

    /// Features of 8-bit-range images `[n, c, h, w]`, `batch` at a time, shown on `progress`
    /// (counting images).
    pub fn extract(
        &self,
        pixels: &[f32],
        n: usize,
        [c, h, w]: [usize; 3],
        batch: usize,
        progress: Progress,
    ) -> Result<Extracted, EvalError> {
        match self {
            FeatureExtractor::Inception(net, resize) => {
                if c != 1 && c != 3 {
                    return Err(EvalError::ImageShape {
                        network: "the FID Inception",
                        expected: "1 (gray) or 3 (RGB) channels".into(),
                        got: format!("{c} channels"),
                    });
                }
                let (features, protocol) = net.features(pixels, n, c, h, w, batch, *resize, progress);
                Ok(Extracted { features, logits: None, protocol })
            }
            FeatureExtractor::MnistLenet(net) => {
                let (features, logits) = net.extract(pixels, n, [c, h, w], batch, progress)?;
                let cfg = &net.card.config;
                let protocol = FeatureProtocol {
                    network: format!(
                        "genlab MNIST LeNet (conv {:?}, kernel {}, hidden {}; test accuracy {:.4}), hidden layer, {}-d",
                        cfg.channels, cfg.kernel, cfg.hidden, net.card.test_accuracy, cfg.hidden
                    ),
                    weights_sha1: net.sha1.clone(),
                    protocol: None,
                    gray_replicated: false,
                };
                Ok(Extracted { features, logits: Some(logits), protocol })
            }
        }
    }
}

/// The FID Inception network with its identity.
pub struct InceptionExtractor {
    net: FidInception,
    pub sha1: String,
    /// For a safetensors copy, the SHA-1 of the TorchScript file it was made from.
    pub source_sha1: Option<String>,
    device: Device,
}

impl InceptionExtractor {
    pub fn load(path: &Path, device: &Device) -> Result<Self, WeightsError> {
        let weights = load_fid_inception(path)?;
        let bytes =
            genlab_core::files::read_bounded(path).map_err(|_| WeightsError::Missing { path: path.to_path_buf() })?;
        let source_sha1 = if path.extension().is_some_and(|e| e == "safetensors") {
            NamedTensors::read_metadata(&bytes, path)?.get(SOURCE_SHA1_KEY).cloned()
        } else {
            None
        };
        Ok(InceptionExtractor {
            net: FidInception::from_weights(&weights, device),
            sha1: sha1_hex(&bytes),
            source_sha1,
            device: device.clone(),
        })
    }

    /// pool3 features of 8-bit-range images `[n, c, h, w]` (c = 1 or 3), `batch` at a time.
    #[allow(clippy::too_many_arguments)]
    pub fn features(
        &self,
        pixels: &[f32],
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        batch: usize,
        resize: FidProtocol,
        mut progress: Progress,
    ) -> (Features, FeatureProtocol) {
        let len = c * h * w;
        let mut out = Vec::with_capacity(n * 2048);
        let batches = n.div_ceil(batch.max(1));
        for k in 0..batches {
            let (s, e) = (k * batch, ((k + 1) * batch).min(n));
            let x = inception_input(&pixels[s * len..e * len], e - s, c, h, w, resize);
            let f = self.net.forward(Tensor::from_data(TensorData::new(x, [e - s, 3, 299, 299]), &self.device));
            out.extend(genlab_core::tensors::to_f32_vec(f));
            progress.update(e as u64, "images");
        }
        progress.finish();
        let protocol = FeatureProtocol {
            network: match &self.source_sha1 {
                None => "FID Inception-v3 (TensorFlow 2015-12-05 graph), pool3, 2048-d".into(),
                Some(s) => format!(
                    "FID Inception-v3 (TensorFlow 2015-12-05 graph; safetensors copy of TorchScript sha1 {s}), pool3, 2048-d"
                ),
            },
            weights_sha1: self.sha1.clone(),
            protocol: Some(resize),
            gray_replicated: c == 1,
        };
        (Features::from_f32(&out, n, 2048), protocol)
    }
}
