//! The VQ-VAE family (van den Oord et al. 2017, <https://arxiv.org/abs/1711.00937>): trained on
//! the reconstruction error plus the commitment loss, its codebook following moving averages with
//! dead-code restarts; judged by the reconstruction error of the evaluation split, the perplexity
//! of the codes it uses and the fraction of codes it leaves unused. A VQ-VAE has no prior of its
//! own: it generates nothing until a prior is trained on its code grids (the `vqvae_prior`
//! family, a second stage that names this run).

use crate::data::{Data, DataFacts};
use crate::error::{PipelineError, Result};
use crate::evaluation::{EvalContext, Evaluation, LossCurve};
use crate::experiment::{Experiment, KeyError};
use crate::family::{model_error, Batches, Family, FamilyCard, NoOptions, PeriodicContext, Section};
use crate::generate::{host_images, Capabilities, GenerateRequest, Generated, OutputKind};
use crate::metric::Metric;
use burn::tensor::Device;
use genlab_core::events::EventSink;
use genlab_core::grid::{alternate_rows, save_grid};
use genlab_core::progress::Progress;
use genlab_core::tensors::{to_f32_vec, to_i64_vec};
use genlab_data::{DataKind, EvalImages};
use genlab_models::vqvae::{VqVae, VqVaeConfig};
use genlab_nn::codebook::perplexity;
use genlab_plot::{line_plot, Series};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::{Path, PathBuf};

pub struct VqVaeFamily {
    config: VqVaeConfig,
    shape: [usize; 3],
    symmetric: bool,
    eval: crate::experiment::EvalConfig,
}

/// The evaluation split through the model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reconstruction {
    /// Mean squared error per pixel, in the data's units.
    pub mse: f64,
    /// 10 log10(range^2 / mse), range 1 for [0, 1] data and 2 for [-1, 1].
    pub psnr_db: f64,
    /// Perplexity of the codes of every grid cell of the split.
    pub perplexity: f64,
    /// Codes no cell is assigned to.
    pub dead_codes: usize,
    pub codebook_size: usize,
    pub examples: usize,
    /// How many cells each code takes, by code index.
    #[serde(skip)]
    pub usage: Vec<u64>,
    pub seconds: f64,
}

/// Passes `set` through `model`, `batch` examples at a time.
pub fn measure(model: &VqVae, set: &EvalImages, batch: usize, symmetric: bool, device: &Device, mut progress: Progress) -> Reconstruction {
    let started = std::time::Instant::now();
    let mut usage = vec![0u64; model.codebook_size()];
    let mut squared = 0.0f64;
    for (c, s) in (0..set.n).step_by(batch.max(1)).enumerate() {
        let e = (s + batch).min(set.n);
        let p = model.pass(set.tensor(s, e, device));
        squared += to_f32_vec(p.mse)[0] as f64 * (e - s) as f64;
        for code in to_i64_vec(p.codes) {
            usage[code as usize] += 1;
        }
        progress.update(c as u64 + 1, &format!("mse {:.5}", squared / e as f64));
    }
    progress.finish();
    let mse = squared / set.n.max(1) as f64;
    let range: f64 = if symmetric { 2.0 } else { 1.0 };
    let counts: Vec<f64> = usage.iter().map(|&u| u as f64).collect();
    Reconstruction {
        mse,
        psnr_db: 10.0 * (range * range / mse).log10(),
        perplexity: perplexity(&counts),
        dead_codes: usage.iter().filter(|&&u| u == 0).count(),
        codebook_size: usage.len(),
        examples: set.n,
        usage,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Evaluation images over their reconstructions, `n` (whole rows of 8) of them.
fn reconstruction_grid(model: &VqVae, set: &EvalImages, n: usize, symmetric: bool, device: &Device, path: &Path) -> Result<()> {
    let cols = 8.min(set.n).max(1);
    let n = (n.min(set.n) / cols).max(1) * cols;
    let x = set.tensor(0, n.min(set.n), device);
    let rec = host_images(model.pass(x.clone()).reconstruction, symmetric);
    save_grid(&alternate_rows(&host_images(x, symmetric), &rec, cols), cols, path)?;
    Ok(())
}

/// The codebook during training: the batches' and the validation subset's perplexity, and the
/// codes the validation subset leaves unused, from `metrics.jsonl`.
fn codebook_figure(run_dir: &Path) -> Result<Option<(String, PathBuf)>> {
    let log = genlab_train::metrics::read_metrics(&run_dir.join("metrics.jsonl"))?;
    let series = |split: &str, key: &str| -> Vec<(f64, f64)> {
        log.iter()
            .filter(|m| m.get("split").and_then(|s| s.as_str()) == Some(split))
            .filter_map(|m| Some((m.get("step")?.as_f64()?, m.get(key)?.as_f64()?)))
            .collect()
    };
    let rel = "plots/codebook.png";
    line_plot(
        &run_dir.join(rel),
        "Codebook usage during training",
        "codes",
        &[
            Series { name: "perplexity of a training batch's codes", points: series("train", "perplexity") },
            Series { name: "perplexity of the validation subset's codes", points: series("eval", "val_perplexity") },
            Series { name: "codes the validation subset leaves unused", points: series("eval", "val_dead_codes") },
            Series { name: "codes restarted per step (mean of the logging window)", points: series("train", "restarts") },
        ],
    )?;
    Ok(run_dir.join(rel).exists().then(|| ("Codebook usage and dead codes during training".into(), PathBuf::from(rel))))
}

/// How many cells each code takes on the evaluation split, most used first.
fn usage_figure(r: &Reconstruction, run_dir: &Path) -> Result<(String, PathBuf)> {
    let mut sorted: Vec<u64> = r.usage.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let total = sorted.iter().sum::<u64>().max(1) as f64;
    let points = sorted.iter().enumerate().map(|(i, &u)| (i as f64 + 1.0, u as f64 / total)).collect();
    let rel = "plots/code-usage.png";
    line_plot(
        &run_dir.join(rel),
        "Code frequencies on the evaluation split, most used first",
        "fraction of grid cells",
        &[Series { name: "", points }],
    )?;
    Ok(("How evenly the evaluation split uses the codebook".into(), PathBuf::from(rel)))
}

impl Family for VqVaeFamily {
    type Network = VqVaeConfig;
    type Options = NoOptions;
    type Model = VqVae;
    type Validation = EvalImages;

    const CARD: FamilyCard = FamilyCard {
        name: "vqvae",
        summary: "VQ-VAE: convolutional autoencoder with a vector-quantised code grid (EMA codebook, dead-code restarts); the first stage of vqvae_prior",
        data: &[DataKind::Images],
    };

    fn check(s: &Section<VqVaeConfig, NoOptions>, _: &Experiment) -> Result<(), KeyError> {
        s.network.check().map_err(model_error)
    }

    fn metrics(_: &Section<VqVaeConfig, NoOptions>, _: DataKind) -> Vec<Metric> {
        vec![Metric::ReconstructionMse, Metric::CodebookPerplexity, Metric::DeadCodeFraction]
    }

    fn output(_: &Section<VqVaeConfig, NoOptions>, _: DataKind) -> OutputKind {
        OutputKind::Nothing
    }

    fn new(s: Section<VqVaeConfig, NoOptions>, exp: &Experiment, facts: &DataFacts) -> Self {
        VqVaeFamily { config: s.network, shape: facts.shape, symmetric: exp.symmetric(), eval: exp.eval.clone() }
    }

    fn init(&self, seed: u64, device: &Device) -> Result<VqVae> {
        Ok(self.config.init(self.shape, seed, device)?)
    }

    fn batches(&self, data: &Data, exp: &Experiment) -> Result<Batches<VqVae>> {
        Ok(Box::new(data.image_batches(exp)?))
    }

    fn validation_set(&self, data: &Data, exp: &Experiment, _: &dyn EventSink) -> Result<EvalImages> {
        data.periodic_images(exp)
    }

    fn validate(&self, step: u64, m: &VqVae, set: &EvalImages, cx: &PeriodicContext<'_>) -> Result<Vec<(&'static str, f64)>> {
        let r = measure(m, set, self.eval.batch_size, self.symmetric, cx.device, Progress::hidden());
        let path = cx.run_dir.join(format!("samples/step-{step:06}.png"));
        reconstruction_grid(m, set, self.eval.samples, self.symmetric, cx.device, &path)?;
        Ok(vec![("val_mse", r.mse), ("val_perplexity", r.perplexity), ("val_dead_codes", r.dead_codes as f64)])
    }

    fn evaluate(&self, model: &VqVae, data: &Data, cx: &EvalContext<'_>) -> Result<Evaluation> {
        let e = &self.eval;
        let set = data.evaluation_images(cx.exp)?;
        let bar = cx.events.progress("evaluate", set.n.div_ceil(e.batch_size) as u64, 0);
        let r = measure(model, &set, e.batch_size, self.symmetric, &cx.device, bar);
        let dead = r.dead_codes as f64 / r.codebook_size as f64;
        cx.events.message(&format!(
            "test: reconstruction MSE {:.5} (PSNR {:.2} dB), code perplexity {:.1} of {}, {} dead codes, {} examples, {:.0}s",
            r.mse, r.psnr_db, r.perplexity, r.codebook_size, r.dead_codes, r.examples, r.seconds
        ));
        let rel = "samples/reconstructions.png";
        reconstruction_grid(model, &set, 32, self.symmetric, &cx.device, &cx.run_dir.join(rel))?;
        let mut figures =
            vec![("Evaluation images (odd rows) and their reconstructions (even rows)".to_string(), PathBuf::from(rel))];
        figures.extend(codebook_figure(cx.run_dir)?);
        figures.push(usage_figure(&r, cx.run_dir)?);
        let summary = format!(
            "reconstruction MSE {:.5} (PSNR {:.2} dB); code perplexity {:.1} of {} codes; {} dead ({:.1}%)",
            r.mse,
            r.psnr_db,
            r.perplexity,
            r.codebook_size,
            r.dead_codes,
            100.0 * dead
        );
        Ok(Evaluation {
            metrics: vec![
                (Metric::ReconstructionMse, r.mse),
                (Metric::CodebookPerplexity, r.perplexity),
                (Metric::DeadCodeFraction, dead),
            ],
            log: vec![("psnr_db", r.psnr_db.into()), ("dead_codes", r.dead_codes.into()), ("examples", r.examples.into())],
            section: self.markdown(cx, &r),
            record: serde_json::json!({ "reconstruction": r, "grid": self.config.grid(self.shape).ok() }),
            figures,
            summary,
            drawn: None,
        })
    }

    fn describe(&self) -> String {
        let c = &self.config;
        format!(
            "VQ-VAE, channels {:?}, {} residual blocks of {}, codebook {} x {}, commitment {}, EMA decay {}, restart below {}",
            c.channels, c.residual_blocks, c.residual_channels, c.codebook_size, c.code_dim, c.commitment, c.decay, c.restart_threshold
        )
    }

    fn loss_curve(&self) -> LossCurve {
        let mut curve = LossCurve::train_and_validation(
            format!("Loss: reconstruction MSE + {} x commitment (validation: the MSE)", self.config.commitment),
            "squared error per pixel",
            "val_mse",
            1.0,
        );
        curve.series.insert(
            1,
            crate::evaluation::CurveSeries { name: "training MSE".into(), split: "train", key: "mse", sign: 1.0 },
        );
        curve
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    fn generate(&self, _: &VqVae, _: &GenerateRequest, _: &Device, _: Option<&dyn EventSink>) -> Result<Generated> {
        Err(PipelineError::Config(
            "sample: a VQ-VAE has no prior over its codes; train one with the vqvae_prior family (configs/fashion-vqvae-gpt.toml) and sample that run"
                .into(),
        ))
    }
}

impl VqVaeFamily {
    fn markdown(&self, cx: &EvalContext<'_>, r: &Reconstruction) -> String {
        let split = crate::report::split_name(cx.exp);
        let grid = self.config.grid(self.shape).map(|[h, w]| format!("{h}x{w}")).unwrap_or_default();
        let mut s = String::new();
        let _ = writeln!(s, "## Reconstruction and codebook, on {split}\n\n| metric | value |\n|---|---|");
        let _ = writeln!(s, "| reconstruction MSE per pixel | {:.5} |", r.mse);
        let _ = writeln!(s, "| PSNR (dB) | {:.2} |", r.psnr_db);
        let _ = writeln!(s, "| code perplexity (of {} codes) | {:.1} |", r.codebook_size, r.perplexity);
        let _ = writeln!(
            s,
            "| dead codes (no cell assigned) | {} ({:.1}%) |",
            r.dead_codes,
            100.0 * r.dead_codes as f64 / r.codebook_size as f64
        );
        let _ = writeln!(s, "| code grid per image | {grid} ({} tokens) |", self.config.grid(self.shape).map_or(0, |g| g[0] * g[1]));
        let _ = writeln!(s, "| evaluation examples | {} |\n", r.examples);
        let _ = writeln!(
            s,
            "Protocol: {} weights of step {}; every image of the evaluation split ({split}) encoded, quantised to its nearest codes and decoded; \
             the MSE is per pixel in the data's units after its transforms ({}), the PSNR against that range; the perplexity is exp of the entropy of \
             the code frequencies over all {} grid cells of the split.\n",
            cx.exp.weights_word(),
            cx.step,
            if self.symmetric { "[-1, 1]" } else { "[0, 1]" },
            r.usage.iter().sum::<u64>(),
        );
        s
    }
}
