//! `genlab fid DIR_A DIR_B`: FID (and with `--all` KID, precision/recall, density/coverage, and the
//! Inception Score of each folder where the network has logits) between two folders of PNG/JPEG
//! images, as pytorch-fid's command line, printing the value and its protocol.

use crate::error::{EvalError, Result};
use crate::extract::{FeatureExtractor, FeatureNetwork, FeatureProtocol};
use crate::fid::fid;
use crate::inception_score::{inception_score, InceptionScore};
use crate::kid::{kid, Kid, KidConfig};
use crate::prdc::{prdc, Prdc};
use crate::preprocess::FidProtocol;
use burn::tensor::Device;
use genlab_core::events::EventSink;
use genlab_data::folder::{read_image_folder, Color};
use genlab_data::ImageSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// torch-fidelity's Inception Score splits.
const IS_SPLITS: usize = 10;

pub struct FidOptions {
    pub features: FeatureNetwork,
    pub protocol: FidProtocol,
    pub all: bool,
    pub batch_size: usize,
    /// The feature network's weights file; the weights directory's when absent.
    pub weights: Option<PathBuf>,
    pub device: Device,
}

pub struct FidReport {
    pub fid: f64,
    pub kid: Option<(Kid, usize)>,
    pub prdc: Option<Prdc>,
    /// Inception Score of each folder (with `--all`, for a network with logits).
    pub inception_scores: Option<(InceptionScore, InceptionScore)>,
    /// Why a metric asked for was left out.
    pub note: Option<String>,
    pub n_a: usize,
    pub n_b: usize,
    pub protocol: FeatureProtocol,
}

impl fmt::Display for FidReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "FID {:.4}", self.fid)?;
        if let Some((k, size)) = &self.kid {
            writeln!(f, "KID {:.6} +- {:.6} (100 subsets of {size}, cubic kernel)", k.mean, k.std)?;
        }
        if let Some(p) = &self.prdc {
            writeln!(
                f,
                "precision {:.4} recall {:.4} density {:.4} coverage {:.4} (k = 3)",
                p.precision, p.recall, p.density, p.coverage
            )?;
        }
        if let Some((a, b)) = &self.inception_scores {
            writeln!(
                f,
                "Inception Score A {:.4} +- {:.4}, B {:.4} +- {:.4} ({IS_SPLITS} splits)",
                a.mean, a.std, b.mean, b.std
            )?;
        }
        if let Some(note) = &self.note {
            writeln!(f, "{note}")?;
        }
        write!(f, "protocol: {}, {} vs {} images", self.protocol.describe(), self.n_a, self.n_b)
    }
}

/// Reads a folder as RGB, and back to one channel when every pixel is gray.
fn read_folder(dir: &Path) -> Result<(ImageSet, bool)> {
    let rgb = read_image_folder(dir, Color::Rgb, None).map_err(|e| match e {
        // The data crate's advice (a `resize` transform) is for experiment files; here there is none.
        genlab_data::DataError::MixedSizes { path, first, found_w, found_h, want_w, want_h } => EvalError::Input(format!(
            "{}: image is {found_w}x{found_h}, but {} is {want_w}x{want_h}; genlab fid reads each folder at one image size, so make its images one size",
            path.display(),
            first.display()
        )),
        e => EvalError::Input(e.to_string()),
    })?;
    let plane = rgb.height * rgb.width;
    let gray = (0..rgb.n).all(|i| {
        let img = &rgb.pixels[i * 3 * plane..(i + 1) * 3 * plane];
        (0..plane).all(|p| img[p] == img[plane + p] && img[p] == img[2 * plane + p])
    });
    if !gray {
        return Ok((rgb, false));
    }
    let pixels = (0..rgb.n).flat_map(|i| rgb.pixels[i * 3 * plane..i * 3 * plane + plane].to_vec()).collect();
    Ok((ImageSet { pixels, channels: 1, ..rgb }, true))
}

/// FID (and with `o.all` the other metrics) between the images of folders `a` and `b`; the
/// feature extraction shows its progress on `events`.
pub fn fid_folders(a: &Path, b: &Path, o: &FidOptions, events: &dyn EventSink) -> Result<FidReport> {
    for dir in [a, b] {
        if !dir.is_dir() {
            return Err(EvalError::Input(format!("{}: not a directory of images", dir.display())));
        }
    }
    let net = FeatureExtractor::load(o.features, o.weights.as_deref(), o.protocol, &o.device)
        .map_err(|e| EvalError::Input(e.to_string()))?;
    let mut sets = Vec::new();
    for (dir, label) in [(a, "features A"), (b, "features B")] {
        let (set, _) = read_folder(dir)?;
        if set.n < 2 {
            return Err(EvalError::Input(format!("{}: FID needs at least 2 images, found {}", dir.display(), set.n)));
        }
        let pixels: Vec<f32> = set.pixels.iter().map(|&p| p as f32).collect();
        let shape = [set.channels, set.height, set.width];
        let x = net
            .extract(&pixels, set.n, shape, o.batch_size, events.progress(label, set.n as u64, 0))
            .map_err(|e| EvalError::Input(format!("{}: {e}", dir.display())))?;
        sets.push((x, set.n));
    }
    let (xa, n_a) = sets.remove(0);
    let (xb, n_b) = sets.remove(0);
    let (fa, fb) = (&xa.features, &xb.features);
    let protocol = xa.protocol.clone().joined(&xb.protocol);
    let mut report =
        FidReport { fid: fid(fa, fb)?, kid: None, prdc: None, inception_scores: None, note: None, n_a, n_b, protocol };
    if o.all {
        if let (Some(la), Some(lb)) = (&xa.logits, &xb.logits) {
            if n_a.min(n_b) >= IS_SPLITS {
                let is = |l| inception_score(l, IS_SPLITS, Some(2020));
                report.inception_scores = Some((is(la)?, is(lb)?));
            } else {
                report.note =
                    Some(format!("Inception Score skipped: its {IS_SPLITS} splits need {IS_SPLITS} images per folder"));
            }
        }
        // torch-fidelity's subsets of 1000, or all samples of the smaller set when it has fewer.
        let size = 1000.min(n_a).min(n_b);
        report.kid = Some((kid(fa, fb, &KidConfig { subset_size: size, ..Default::default() })?, size));
        // As torch-fidelity: A is the generated set, B the real one (prdc's `real` manifold).
        report.prdc = Some(prdc(fb, fa, 3)?);
    }
    Ok(report)
}
