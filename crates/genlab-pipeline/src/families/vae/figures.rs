//! The VAE's figures: prior samples, reconstructions, latent interpolations, and the latent space
//! itself when it is a plane.

use super::SAMPLE_STREAM;
use crate::generate::host_images;
use crate::error::Result;
use genlab_data::EvalImages;
use genlab_plot::scatter_by_class;
use burn::tensor::Device;
use burn::Tensor;
use genlab_core::grid::{alternate_rows, save_grid};
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;
use genlab_models::vae::Vae;
use std::path::{Path, PathBuf};

/// A grid of `n` prior samples.
pub(super) fn sample_grid(vae: &Vae, n: usize, seed: u64, symmetric: bool, device: &Device, path: &Path) -> Result<()> {
    let mut rng = SeededRng::stream(seed, SAMPLE_STREAM);
    let cols = (n as f64).sqrt().ceil() as usize;
    save_grid(&host_images(vae.sample(n, &mut rng, device), symmetric), cols, path)?;
    Ok(())
}

/// The figures of a finished run, written under `run_dir`; returns (title, relative path) pairs.
#[allow(clippy::too_many_arguments)]
pub(super) fn figures(
    vae: &Vae,
    set: &EvalImages,
    class_names: &[String],
    samples: usize,
    seed: u64,
    symmetric: bool,
    device: &Device,
    run_dir: &Path,
) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let rel = |p: &str| PathBuf::from(p);
    sample_grid(vae, samples, seed, symmetric, device, &run_dir.join("samples/samples.png"))?;
    out.push(("Samples from the prior (decoder means)".to_string(), rel("samples/samples.png")));

    // Reconstructions: rows of `cols` evaluation images alternate with their reconstructions through
    // the posterior mean (whole rows only, so the caption holds).
    let cols = 8.min(set.n);
    let n = (32.min(set.n) / cols) * cols;
    let x = set.tensor(0, n, device);
    let rec = host_images(vae.reconstruct(x.clone()), symmetric);
    let rows = alternate_rows(&host_images(x, symmetric), &rec, cols);
    save_grid(&rows, cols, &run_dir.join("samples/reconstructions.png"))?;
    out.push((
        "Evaluation images (odd rows) and their reconstructions (even rows)".to_string(),
        rel("samples/reconstructions.png"),
    ));

    // Interpolations: 8 pairs of test images, 10 steps between their posterior means.
    if set.n >= 16 {
        let steps = 10;
        let (mu, _) = vae.encoder.forward(set.tensor(0, 16, device));
        let mu = to_f32_vec(mu);
        let l = vae.latent_dim;
        let mut z = Vec::with_capacity(8 * steps * l);
        for p in 0..8 {
            let (a, b) = (&mu[(2 * p) * l..(2 * p + 1) * l], &mu[(2 * p + 1) * l..(2 * p + 2) * l]);
            for s in 0..steps {
                let t = s as f32 / (steps - 1) as f32;
                z.extend(a.iter().zip(b).map(|(x, y)| (1.0 - t) * x + t * y));
            }
        }
        let zt = Tensor::from_data(burn::tensor::TensorData::new(z, [8 * steps, l]), device);
        save_grid(&host_images(vae.decode_mean(zt), symmetric), steps, &run_dir.join("samples/interpolation.png"))?;
        out.push((
            "Latent interpolations between pairs of evaluation images".to_string(),
            rel("samples/interpolation.png"),
        ));
    }

    // The latent space itself, when it is a plane.
    if vae.latent_dim == 2 {
        if let Some(labels) = &set.labels {
            let mut pts: Vec<(f32, f32, u32)> = Vec::with_capacity(set.n);
            for s in (0..set.n).step_by(500) {
                let e = (s + 500).min(set.n);
                let (mu, _) = vae.encoder.forward(set.tensor(s, e, device));
                let mu = to_f32_vec(mu);
                pts.extend((s..e).map(|i| (mu[2 * (i - s)], mu[2 * (i - s) + 1], labels[i])));
            }
            scatter_by_class(
                &run_dir.join("plots/latent.png"),
                "Posterior means of the test set, by class",
                &pts,
                class_names,
            )?;
            out.push((
                "The 2-D latent space: test posterior means coloured by class".to_string(),
                rel("plots/latent.png"),
            ));
        }
    }
    Ok(out)
}
