//! `genlab fid DIR_A DIR_B`: FID (and with `--all` KID, precision/recall, density/coverage) between
//! two folders of PNG/JPEG images, as pytorch-fid's command line, printing the value and its protocol.

use crate::error::{PipelineError, Result};
use burn::tensor::Device;
use genlab_data::folder::{read_image_folder, Color};
use genlab_data::ImageSet;
use genlab_eval::extract::{FeatureProtocol, InceptionExtractor};
use genlab_eval::fid::fid;
use genlab_eval::kid::{kid, Kid, KidConfig};
use genlab_eval::prdc::{prdc, Prdc};
use genlab_eval::preprocess::ResizeProtocol;
use genlab_eval::weights::{weights_dir, FID_INCEPTION_FILE};
use std::fmt;
use std::path::{Path, PathBuf};

pub struct FidOptions {
    pub resize: ResizeProtocol,
    pub all: bool,
    pub batch_size: usize,
    /// The Inception weights file; the weights directory's when absent.
    pub weights: Option<PathBuf>,
    pub device: Device,
}

pub struct FidReport {
    pub fid: f64,
    pub kid: Option<(Kid, usize)>,
    pub prdc: Option<Prdc>,
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
        let p = &self.protocol;
        write!(
            f,
            "protocol: {}, weights sha1 {}, resize {:?}, {} vs {} images{}",
            p.network,
            p.weights_sha1,
            p.resize,
            self.n_a,
            self.n_b,
            if p.gray_replicated { ", gray images replicated to RGB" } else { "" }
        )
    }
}

/// Reads a folder as RGB, and back to one channel when every pixel is gray.
fn read_folder(dir: &Path) -> Result<(ImageSet, bool)> {
    let rgb = read_image_folder(dir, Color::Rgb, None)?;
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

pub fn fid_folders(a: &Path, b: &Path, o: &FidOptions) -> Result<FidReport> {
    for dir in [a, b] {
        if !dir.is_dir() {
            return Err(PipelineError::Run(format!("{}: not a directory of images", dir.display())));
        }
    }
    let weights = o.weights.clone().unwrap_or_else(|| weights_dir().join(FID_INCEPTION_FILE));
    let net = InceptionExtractor::load(&weights, &o.device).map_err(|e| PipelineError::Run(e.to_string()))?;
    let mut sets = Vec::new();
    for (dir, label) in [(a, "features A"), (b, "features B")] {
        let (set, _) = read_folder(dir)?;
        if set.n < 2 {
            return Err(PipelineError::Run(format!("{}: FID needs at least 2 images, found {}", dir.display(), set.n)));
        }
        let pixels: Vec<f32> = set.pixels.iter().map(|&p| p as f32).collect();
        sets.push((
            net.features(&pixels, set.n, set.channels, set.height, set.width, o.batch_size, o.resize, label),
            set.n,
        ));
    }
    let ((fa, pa), n_a) = sets.remove(0);
    let ((fb, pb), n_b) = sets.remove(0);
    let eval_err = |e: genlab_eval::EvalError| PipelineError::Run(e.to_string());
    let protocol = FeatureProtocol { gray_replicated: pa.gray_replicated || pb.gray_replicated, ..pa };
    let mut report = FidReport { fid: fid(&fa, &fb).map_err(eval_err)?, kid: None, prdc: None, n_a, n_b, protocol };
    if o.all {
        // torch-fidelity's subsets of 1000, or all samples of the smaller set when it has fewer.
        let size = 1000.min(n_a).min(n_b);
        report.kid =
            Some((kid(&fa, &fb, &KidConfig { subset_size: size, ..Default::default() }).map_err(eval_err)?, size));
        report.prdc = Some(prdc(&fa, &fb, 3).map_err(eval_err)?);
    }
    Ok(report)
}
