//! genlab's MNIST LeNet as a feature network: the installed weights file (safetensors, with the
//! classifier's config and provenance in its header), its checks, and extraction of the hidden
//! layer's features (FID, KID, precision/recall, memorisation) and the logits (Inception Score).

use crate::error::EvalError;
use crate::features::Features;
use crate::weights::{sha1_hex, WeightsError};
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::progress::Progress;
use genlab_core::tensors::{to_f32_vec, NamedTensors};
use genlab_models::classifier::{Classifier, ClassifierConfig};
use std::collections::BTreeMap;
use std::path::Path;

/// The file name inside the weights directory.
pub const MNIST_LENET_FILE: &str = "mnist_lenet.safetensors";
/// The header's `kind`, so another safetensors file is not taken for these weights.
const KIND: &str = "genlab-mnist-lenet";
/// Input images: `[1, 28, 28]`, pixels in [0, 1] (8-bit values divided by 255).
pub const LENET_INPUT: [usize; 3] = [1, 28, 28];

/// What the header says of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct LenetCard {
    pub config: ClassifierConfig,
    pub classes: usize,
    /// Accuracy on the MNIST test split when it was installed.
    pub test_accuracy: f64,
    /// The run directory that trained it.
    pub source_run: String,
}

impl LenetCard {
    fn to_metadata(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("kind".to_string(), KIND.to_string()),
            ("config".to_string(), serde_json::to_string(&self.config).expect("a classifier config should serialise")),
            ("classes".to_string(), self.classes.to_string()),
            ("input".to_string(), "1x28x28, pixels / 255".to_string()),
            ("test_accuracy".to_string(), self.test_accuracy.to_string()),
            ("source_run".to_string(), self.source_run.clone()),
        ])
    }

    fn from_metadata(m: &BTreeMap<String, String>) -> Result<Self, String> {
        if m.get("kind").map(String::as_str) != Some(KIND) {
            return Err(format!("its header's kind is {:?}, expected {KIND:?}", m.get("kind")));
        }
        let field = |k: &str| m.get(k).ok_or_else(|| format!("its header has no `{k}`"));
        Ok(LenetCard {
            config: serde_json::from_str(field("config")?).map_err(|e| format!("header `config`: {e}"))?,
            classes: field("classes")?.parse().map_err(|e| format!("header `classes`: {e}"))?,
            test_accuracy: field("test_accuracy")?.parse().map_err(|e| format!("header `test_accuracy`: {e}"))?,
            source_run: field("source_run")?.clone(),
        })
    }
}

/// Writes `model` with its card to `path`, atomically; returns the file's SHA-1.
pub fn install(model: &Classifier, card: &LenetCard, path: &Path) -> genlab_core::Result<String> {
    let bytes = NamedTensors::from_module(model).to_bytes_with_metadata(&card.to_metadata());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(genlab_core::CoreError::io(dir))?;
    }
    genlab_core::atomic::write_atomic(path, &bytes)?;
    Ok(sha1_hex(&bytes))
}

/// The installed MNIST LeNet with its identity.
pub struct LenetExtractor {
    net: Classifier,
    pub card: LenetCard,
    pub sha1: String,
    device: Device,
}

impl LenetExtractor {
    pub fn load(path: &Path, device: &Device) -> Result<Self, WeightsError> {
        let wrong = |reason: String| WeightsError::NotLenet { path: path.to_path_buf(), reason };
        let bytes = genlab_core::files::read_bounded(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => WeightsError::MissingLenet { path: path.to_path_buf() },
            _ => wrong(format!("cannot read it: {e}")),
        })?;
        let meta = NamedTensors::read_metadata(&bytes, path).map_err(|e| wrong(e.to_string()))?;
        let card = LenetCard::from_metadata(&meta).map_err(wrong)?;
        let net = card.config.init(LENET_INPUT, card.classes, 0, device).map_err(|e| wrong(e.to_string()))?;
        let tensors = NamedTensors::from_bytes(&bytes, path).map_err(|e| wrong(e.to_string()))?;
        let expected = NamedTensors::from_module(&net);
        if tensors.0.len() != expected.0.len() {
            let names: Vec<&String> = expected.0.keys().collect();
            return Err(wrong(format!("{} tensors, expected {} ({names:?})", tensors.0.len(), expected.0.len())));
        }
        let net = tensors.load_into(net, path).map_err(|e| wrong(e.to_string()))?;
        Ok(LenetExtractor { net, card, sha1: sha1_hex(&bytes), device: device.clone() })
    }

    /// Hidden-layer features and logits of 8-bit-range images `[n, 1, 28, 28]`, `batch` at a time.
    pub fn extract(
        &self,
        pixels: &[f32],
        n: usize,
        shape: [usize; 3],
        batch: usize,
        mut progress: Progress,
    ) -> Result<(Features, Features), EvalError> {
        if shape != LENET_INPUT {
            return Err(EvalError::ImageShape {
                network: "the MNIST LeNet",
                expected: "1x28x28 (gray)".into(),
                got: format!("{}x{}x{}", shape[0], shape[1], shape[2]),
            });
        }
        let len = 28 * 28;
        let (mut feats, mut logits) = (Vec::new(), Vec::new());
        for s in (0..n).step_by(batch.max(1)) {
            let e = (s + batch.max(1)).min(n);
            let x: Vec<f32> = pixels[s * len..e * len].iter().map(|p| p / 255.0).collect();
            let (f, l) =
                self.net.features_and_logits(Tensor::from_data(TensorData::new(x, [e - s, 1, 28, 28]), &self.device));
            feats.extend(to_f32_vec(f));
            logits.extend(to_f32_vec(l));
            progress.update(e as u64, "images");
        }
        progress.finish();
        let hidden = self.card.config.hidden;
        Ok((Features::from_f32(&feats, n, hidden), Features::from_f32(&logits, n, self.card.classes)))
    }

    /// The predicted digit of each of `n` 8-bit-range images `[n, 1, 28, 28]` (no progress bar:
    /// for monitors during training).
    pub fn classify(&self, pixels: &[f32], n: usize) -> Vec<usize> {
        let len = 28 * 28;
        let mut out = Vec::with_capacity(n);
        for s in (0..n).step_by(500) {
            let e = (s + 500).min(n);
            let x: Vec<f32> = pixels[s * len..e * len].iter().map(|p| p / 255.0).collect();
            let logits =
                to_f32_vec(self.net.logits(Tensor::from_data(TensorData::new(x, [e - s, 1, 28, 28]), &self.device)));
            out.extend(
                logits
                    .chunks(self.card.classes)
                    .map(|row| row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(k, _)| k)),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genlab_core::SeededRng;

    fn card() -> LenetCard {
        LenetCard {
            config: ClassifierConfig { channels: vec![4, 6], kernel: 5, hidden: 16 },
            classes: 10,
            test_accuracy: 0.5,
            source_run: "runs/test".into(),
        }
    }

    #[test]
    fn installed_weights_load_back_and_extract_what_the_model_computes() {
        let dev = Device::flex();
        let c = card();
        let model = c.config.init(LENET_INPUT, 10, 7, &dev).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(MNIST_LENET_FILE);
        let sha1 = install(&model, &c, &path).unwrap();
        let net = LenetExtractor::load(&path, &dev).unwrap();
        assert_eq!((net.card.clone(), net.sha1.clone()), (c, sha1));
        let mut rng = SeededRng::new(1);
        let pixels: Vec<f32> = rng.uniform_vec(5 * 784).into_iter().map(|u| (u * 255.0).round()).collect();
        let (f, l) = net.extract(&pixels, 5, LENET_INPUT, 2, Progress::hidden()).unwrap();
        let x: Vec<f32> = pixels.iter().map(|p| p / 255.0).collect();
        let (wf, wl) = model.features_and_logits(Tensor::from_data(TensorData::new(x, [5, 1, 28, 28]), &dev));
        assert_eq!((f.n, f.dim, l.dim), (5, 16, 10));
        for (got, want) in [(f.data, to_f32_vec(wf)), (l.data, to_f32_vec(wl))] {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w as f64).abs() < 1e-5, "{g} vs {w}");
            }
        }
        let err = net.extract(&pixels[..3 * 784], 1, [3, 28, 28], 1, Progress::hidden()).unwrap_err();
        assert!(err.to_string().contains("1x28x28 (gray) images, got 3x28x28"), "{err}");
    }

    #[test]
    fn other_files_are_refused_with_the_reason() {
        let dev = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let missing = LenetExtractor::load(&dir.path().join("none.safetensors"), &dev).err().unwrap();
        assert!(missing.to_string().contains("genlab run configs/mnist-lenet.toml"), "{missing}");
        // A plain safetensors file (no header card).
        let model = card().config.init(LENET_INPUT, 10, 0, &dev).unwrap();
        let plain = dir.path().join("plain.safetensors");
        genlab_core::tensors::save_module(&model, &plain).unwrap();
        let err = LenetExtractor::load(&plain, &dev).err().unwrap();
        assert!(
            err.to_string().contains("not genlab's MNIST LeNet weights") && err.to_string().contains("kind"),
            "{err}"
        );
        // A card that promises other shapes than the tensors have.
        let lying = LenetCard { config: ClassifierConfig { hidden: 32, ..card().config }, ..card() };
        let path = dir.path().join(MNIST_LENET_FILE);
        install(&model, &lying, &path).unwrap();
        let err = LenetExtractor::load(&path, &dev).err().unwrap();
        assert!(err.to_string().contains("fc.weight"), "{err}");
    }
}
