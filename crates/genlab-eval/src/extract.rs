//! Feature extraction for the sample metrics: images in, feature vectors out, in batches with a
//! progress bar, and the protocol record that travels with every number computed from them.

use crate::features::Features;
use crate::inception::FidInception;
use crate::preprocess::{inception_input, ResizeProtocol};
use crate::weights::{load_fid_inception, WeightsError};
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::progress::Progress;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What produced a set of features: enough to say whether two numbers are comparable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureProtocol {
    pub network: String,
    /// SHA-1 of the weights file.
    pub weights_sha1: String,
    pub resize: ResizeProtocol,
    /// Whether gray images were replicated to three channels.
    pub gray_replicated: bool,
}

/// The FID Inception network with its identity.
pub struct InceptionExtractor {
    net: FidInception,
    pub sha1: String,
    device: Device,
}

impl InceptionExtractor {
    pub fn load(path: &Path, device: &Device) -> Result<Self, WeightsError> {
        let weights = load_fid_inception(path)?;
        let bytes = std::fs::read(path).map_err(|_| WeightsError::Missing { path: path.to_path_buf() })?;
        Ok(InceptionExtractor {
            net: FidInception::from_weights(&weights, device),
            sha1: sha1_smol::Sha1::from(&bytes).digest().to_string(),
            device: device.clone(),
        })
    }

    /// pool3 features of 8-bit-range images `[n, c, h, w]` (c = 1 or 3), `batch` at a time.
    pub fn features(
        &self,
        pixels: &[f32],
        n: usize,
        c: usize,
        h: usize,
        w: usize,
        batch: usize,
        resize: ResizeProtocol,
        label: &str,
    ) -> (Features, FeatureProtocol) {
        let len = c * h * w;
        let mut out = Vec::with_capacity(n * 2048);
        let batches = n.div_ceil(batch.max(1));
        let mut progress = Progress::new(label, n as u64, 0);
        for k in 0..batches {
            let (s, e) = (k * batch, ((k + 1) * batch).min(n));
            let x = inception_input(&pixels[s * len..e * len], e - s, c, h, w, resize);
            let f = self.net.forward(Tensor::from_data(TensorData::new(x, [e - s, 3, 299, 299]), &self.device));
            out.extend(genlab_core::tensors::to_f32_vec(f));
            progress.update(e as u64, "images");
        }
        progress.finish();
        let protocol = FeatureProtocol {
            network: "FID Inception-v3 (TensorFlow 2015-12-05 graph), pool3, 2048-d".into(),
            weights_sha1: self.sha1.clone(),
            resize,
            gray_replicated: c == 1,
        };
        (Features::from_f32(&out, n, 2048), protocol)
    }
}
