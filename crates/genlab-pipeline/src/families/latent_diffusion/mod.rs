//! The latent-diffusion family, a second stage (Rombach et al. 2022,
//! <https://arxiv.org/abs/2112.10752>): the diffusion family's UNet, schedule, targets and samplers
//! trained on the latent grids that a finished VAE run of the spatial architecture (`[stage1]`, a
//! KL-regularised autoencoder with a low KL weight) gives the training images, scaled to unit
//! variance; samples are denoised grids decoded by that VAE. The report times sampling and counts
//! parameters, and with `compare_pixel` naming a finished pixel-space diffusion run on the same
//! data, puts its FID, seconds per sample, training time and parameters beside this run's.

use crate::data::{Data, DataFacts};
use crate::error::{PipelineError, Result};
use crate::evaluation::{EvalContext, Evaluation, LossCurve};
use crate::experiment::{Experiment, KeyError};
use crate::families::diffusion::{denoise, step_bar, validation_loss, SamplerName, Sampling, SamplingDefaults};
use crate::families::vae::VaeFamily;
use crate::family::{model_error, Batches, Family, FamilyCard, FamilyOptions, PeriodicContext, Section};
use crate::generate::{host_images, Capabilities, GenerateRequest, Generated, Images, OutputKind};
use crate::metric::Metric;
use burn::module::Module;
use burn::tensor::{Device, Int, TensorData};
use burn::Tensor;
use genlab_core::events::EventSink;
use genlab_core::grid::{save_grid, ImageBatch};
use genlab_core::progress::Progress;
use genlab_core::tensors::to_f32_vec;
use genlab_data::{BatchLoader, BatchSource, DataKind, EvalImages, ImageSet};
use genlab_models::diffusion::model::{DiffusionConfig, DiffusionModel};
use genlab_models::hybrid::latent_diffusion::{latent_grid, LatentDiffusion};
use genlab_models::vae::Vae;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The samples' noise (grids, metrics, `genlab sample`).
const SAMPLE_STREAM: u64 = 0x1a7d;
/// Training images whose latents give the scale factor.
const SCALE_EXAMPLES: usize = 10_000;
/// Samples timed for the seconds per sample.
const TIMED_SAMPLES: usize = 100;

/// The latent-diffusion family's own keys in `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentOptions {
    /// Class-conditional on the dataset's labels, with the "no class" token for guidance.
    #[serde(default)]
    pub conditional: bool,
    #[serde(default = "default_sampler")]
    pub sampler: SamplerName,
    #[serde(default = "default_steps")]
    pub sampling_steps: usize,
    /// DDIM's eta.
    #[serde(default)]
    pub eta: f64,
    /// Classifier-free guidance scale of a conditional model.
    #[serde(default = "one")]
    pub guidance: f64,
    /// A finished pixel-space diffusion run on the same data, for the report's side by side.
    #[serde(default)]
    pub compare_pixel: Option<PathBuf>,
}

fn default_sampler() -> SamplerName {
    SamplerName::DpmSolver
}
fn default_steps() -> usize {
    20
}
fn one() -> f64 {
    1.0
}

impl FamilyOptions for LatentOptions {
    const KEYS: &'static [&'static str] = &["conditional", "sampler", "sampling_steps", "eta", "guidance", "compare_pixel"];
}

pub struct LatentDiffusionFamily {
    config: DiffusionConfig,
    options: LatentOptions,
    classes: usize,
    symmetric: bool,
    exp: Experiment,
    /// Every training image's latents, encoded once for the batches and the scale factor.
    train_latents: std::sync::OnceLock<Arc<Latents>>,
}

/// Unscaled latent grids (posterior means) of images, with their labels.
struct Latents {
    values: Vec<f32>,
    labels: Option<Vec<u32>>,
    grid: [usize; 3],
}

/// The posterior means of `rows` of `set` under `vae`, `[n, c * h * w]`.
fn encode(vae: &Vae, grid: [usize; 3], set: &ImageSet, rows: &[usize], exp: &Experiment, device: &Device, events: &dyn EventSink) -> Latents {
    let (values, labels) = crate::stages::encode_rows(set, rows, exp, device, events, |x| to_f32_vec(vae.encoder.forward(x).0));
    Latents { values, labels, grid }
}

/// Shuffled batches of latent grids (scaled by the model in its step), resumable.
struct LatentBatches {
    latents: Arc<Latents>,
    conditional: bool,
    loader: BatchLoader,
}

impl BatchSource for LatentBatches {
    type Batch = (Tensor<4>, Option<Tensor<1, Int>>);

    fn next_batch(&mut self, device: &Device) -> Self::Batch {
        let rows = self.loader.next_batch();
        let [c, h, w] = self.latents.grid;
        let len = c * h * w;
        let v: Vec<f32> = rows.iter().flat_map(|&r| self.latents.values[r * len..(r + 1) * len].iter().copied()).collect();
        let x = Tensor::from_data(TensorData::new(v, [rows.len(), c, h, w]), device);
        let labels = self.latents.labels.as_ref().filter(|_| self.conditional).map(|l| {
            let v: Vec<i64> = rows.iter().map(|&r| i64::from(l[r])).collect();
            Tensor::from_data(TensorData::new(v, [rows.len()]), device)
        });
        (x, labels)
    }

    fn state(&self) -> Value {
        json!({ "loader": self.loader.state() })
    }

    fn restore(&mut self, state: Value) -> std::result::Result<(), String> {
        let s = serde_json::from_value(state["loader"].clone()).map_err(|e| format!("loader state: {e}"))?;
        self.loader.restore(s)
    }
}

/// The FID in a diffusion run's eval.json: `genlab eval` writes the shared sample metrics under
/// "samples".
fn pixel_fid(eval: &Value) -> Option<f64> {
    eval.pointer("/samples/fid").and_then(Value::as_f64)
}

/// Seconds per sample of the pixel-space run at `dir`, drawing `TIMED_SAMPLES` with the same
/// sampler and steps in this process (so both sit side by side on one machine at one time).
fn time_pixel_run(dir: &Path, s: &Sampling, cx: &EvalContext<'_>) -> Result<f64> {
    let model = crate::serving::load(dir, None, cx.events.clone())?;
    let name = serde_json::to_value(s.name).ok().and_then(|v| v.as_str().map(str::to_string));
    let request = GenerateRequest {
        sampler: name,
        steps: Some(s.steps),
        ..GenerateRequest::new(TIMED_SAMPLES, cx.exp.eval.seed)
    };
    let started = std::time::Instant::now();
    model.generate(&request, None)?;
    Ok(started.elapsed().as_secs_f64() / TIMED_SAMPLES as f64)
}

/// What the report reads of a pixel-space diffusion run.
#[derive(Debug, Clone, Serialize)]
struct PixelRun {
    dir: PathBuf,
    fid: Option<f64>,
    seconds_per_sample: Option<f64>,
    train_seconds: Option<f64>,
    parameters: usize,
}

/// The pixel-space run named by `compare_pixel`; None when there is no such directory (not run
/// yet: the report says so). A directory that is not an evaluated diffusion run is refused.
fn read_pixel_run(dir: &Path) -> Result<Option<PixelRun>> {
    if !dir.exists() {
        return Ok(None);
    }
    let named = format!("model.compare_pixel = \"{}\"", dir.display());
    let info = crate::run_dir::RunInfo::load(dir).map_err(|e| PipelineError::Config(format!("{named}: {e}")))?;
    let exp = Experiment::load(&dir.join("experiment.toml"), &[])?;
    if exp.model.family != "diffusion" {
        return Err(PipelineError::Config(format!("{named}: a {} run; expected a diffusion run", exp.model.family)));
    }
    let eval: Value = std::fs::read(dir.join("eval.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| PipelineError::Config(format!("{named}: no eval.json; evaluate it first (`genlab eval {}`)", dir.display())))?;
    Ok(Some(PixelRun {
        dir: dir.to_path_buf(),
        fid: pixel_fid(&eval),
        seconds_per_sample: None,
        train_seconds: info.train_seconds,
        parameters: info.parameters,
    }))
}

impl LatentDiffusionFamily {
    fn sampling(&self, model: &DiffusionModel, r: &GenerateRequest) -> Result<Sampling> {
        let o = &self.options;
        let defaults = SamplingDefaults {
            sampler: o.sampler,
            steps: o.sampling_steps,
            eta: o.eta,
            guidance: o.guidance,
            // Latents are not bounded as pixels are: no clipping of the predicted x0.
            clip: false,
            jumps: 1,
        };
        Sampling::requested(model, r, &defaults)
    }

    /// `n` images drawn as `r` asks (its count aside), 8-bit values.
    fn draw(&self, m: &LatentDiffusion, r: &GenerateRequest, n: usize, device: &Device, bar: &mut Progress) -> Result<Vec<f32>> {
        let s = self.sampling(&m.diffusion, r)?;
        let labels: Option<Vec<usize>> = match (r.class, self.options.conditional) {
            (Some(c), _) => Some(vec![c; n]),
            (None, true) => Some((0..n).map(|i| i % self.classes.max(1)).collect()),
            (None, false) => None,
        };
        let finish = |z: Tensor<4>| -> Vec<f32> {
            host_images(m.decode(z), self.symmetric).data.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round()).collect()
        };
        Ok(denoise(&m.diffusion, &s, n, m.grid(), labels.as_deref(), None, (&[(r.seed, n)], SAMPLE_STREAM), device, bar, |_, _, _, _| {}, &finish))
    }

    fn grid_png(&self, m: &LatentDiffusion, n: usize, path: &Path, device: &Device) -> Result<f64> {
        let started = std::time::Instant::now();
        let px = self.draw(m, &GenerateRequest::new(n, self.exp.eval.seed), n, device, &mut Progress::hidden())?;
        let seconds = started.elapsed().as_secs_f64();
        let [c, h, w] = m.autoencoder.shape;
        let cols = if self.options.conditional { self.classes.max(1) } else { (n as f64).sqrt().ceil() as usize };
        save_grid(&ImageBatch::new(px.iter().map(|p| p / 255.0).collect(), n, c, h, w), cols, path)?;
        Ok(seconds)
    }

    fn stage1(&self, device: &Device) -> Result<(crate::stages::Stage1<VaeFamily>, [usize; 3])> {
        let first = crate::stages::open::<VaeFamily>(&self.exp, device)?;
        let grid = latent_grid(&first.model).ok_or_else(|| {
            PipelineError::Config(format!(
                "stage1.run = \"{}\": a VAE of the {} architecture; latent diffusion needs a latent grid: architecture = \"spatial\"",
                first.dir.display(),
                first.target.exp.model.fields().get("architecture").map(|v| v.to_string()).unwrap_or_default()
            ))
        })?;
        Ok((first, grid))
    }

    /// Every training image's latents, encoded on first use.
    fn train_latents(&self, data: &Data) -> Result<Arc<Latents>> {
        if let Some(l) = self.train_latents.get() {
            return Ok(l.clone());
        }
        let l = Arc::new(self.latents(data, false, None, &*genlab_core::events::terminal())?);
        Ok(self.train_latents.get_or_init(|| l).clone())
    }

    fn latents(&self, data: &Data, eval: bool, n: Option<usize>, events: &dyn EventSink) -> Result<Latents> {
        let device = self.exp.train.device.device()?;
        let (first, grid) = self.stage1(&device)?;
        let s = data.images()?;
        let (set, rows) = if eval { (&s.eval, &s.eval_rows) } else { (&s.train, &s.train_rows) };
        let rows: Vec<usize> = rows.iter().copied().take(n.unwrap_or(usize::MAX)).collect();
        Ok(encode(&first.model, grid, set, &rows, &self.exp, &device, events))
    }
}

impl Family for LatentDiffusionFamily {
    type Network = DiffusionConfig;
    type Options = LatentOptions;
    type Model = LatentDiffusion;
    type Validation = EvalImages;

    const CARD: FamilyCard = FamilyCard {
        name: "latent_diffusion",
        summary: "diffusion in the latent grid of a finished spatial VAE run ([stage1]), decoded to images by that VAE",
        data: &[DataKind::Images],
    };
    const STAGE1: Option<&'static str> = Some("vae");

    fn check(s: &Section<DiffusionConfig, LatentOptions>, _: &Experiment) -> Result<(), KeyError> {
        s.network.check().map_err(model_error)?;
        if s.options.sampling_steps == 0 {
            return Err(("model.sampling_steps".into(), " = 0: expected at least 1".into()));
        }
        let g = s.options.guidance;
        if !(g >= 0.0 && g.is_finite()) {
            return Err(("model.guidance".into(), format!(" = {g}: expected a finite number >= 0")));
        }
        Ok(())
    }

    fn metrics(_: &Section<DiffusionConfig, LatentOptions>, _: DataKind) -> Vec<Metric> {
        vec![]
    }

    fn output(_: &Section<DiffusionConfig, LatentOptions>, _: DataKind) -> OutputKind {
        OutputKind::Images
    }

    fn new(s: Section<DiffusionConfig, LatentOptions>, exp: &Experiment, facts: &DataFacts) -> Self {
        LatentDiffusionFamily {
            config: s.network,
            options: s.options,
            classes: facts.class_names.len(),
            symmetric: exp.symmetric(),
            exp: exp.clone(),
            train_latents: std::sync::OnceLock::new(),
        }
    }

    fn check_data(&self, data: &Data) -> Result<()> {
        if self.options.conditional {
            data.images()?.check_labels("model.conditional = true")?;
        }
        if let Some(dir) = &self.options.compare_pixel {
            read_pixel_run(dir)?;
        }
        Ok(())
    }

    /// The UNet over the first stage's latent grids, with that stage's VAE (scale 1 until
    /// [`Family::initialize`] measures the latents).
    fn init(&self, seed: u64, device: &Device) -> Result<LatentDiffusion> {
        let (first, grid) = self.stage1(device)?;
        crate::stages::same_data(&first, &self.exp)?;
        let classes = self.options.conditional.then_some(self.classes);
        let diffusion = self.config.init(grid, classes, seed, device)?;
        Ok(LatentDiffusion::new(diffusion, first.model, 1.0, device))
    }

    /// The scale factor: 1 / the standard deviation of the first 10,000 training latents (of
    /// the encoding the batches read).
    fn initialize(&self, m: LatentDiffusion, data: &Data, device: &Device) -> Result<LatentDiffusion> {
        let latents = self.train_latents(data)?;
        let per_image: usize = latents.grid.iter().product();
        let v = &latents.values[..(SCALE_EXAMPLES * per_image).min(latents.values.len())];
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len().max(1) as f64;
        let scale = (1.0 / var.sqrt().max(1e-6)) as f32;
        let LatentDiffusion { diffusion, autoencoder, latent_scale } = m;
        let latent_scale = latent_scale.map(|_| Tensor::from_data(TensorData::new(vec![scale], [1]), device));
        Ok(LatentDiffusion { diffusion, autoencoder, latent_scale })
    }

    fn batches(&self, data: &Data, exp: &Experiment) -> Result<Batches<LatentDiffusion>> {
        let latents = self.train_latents(data)?;
        let t = &exp.train;
        let loader = BatchLoader::new((0..latents.values.len() / latents.grid.iter().product::<usize>()).collect(), t.batch_size, true, t.drop_last, t.seed);
        Ok(Box::new(LatentBatches { latents, conditional: self.options.conditional, loader }))
    }

    fn validation_set(&self, data: &Data, exp: &Experiment, events: &dyn EventSink) -> Result<EvalImages> {
        let l = self.latents(data, true, Some(exp.eval.periodic_examples), events)?;
        let n = l.values.len() / l.grid.iter().product::<usize>();
        Ok(EvalImages { data: l.values, labels: l.labels, n, shape: l.grid })
    }

    fn validate(&self, step: u64, m: &LatentDiffusion, set: &EvalImages, cx: &PeriodicContext<'_>) -> Result<Vec<(&'static str, f64)>> {
        let scale = m.scale();
        let scaled = EvalImages { data: set.data.iter().map(|v| v * scale).collect(), labels: set.labels.clone(), n: set.n, shape: set.shape };
        let e = &self.exp.eval;
        let loss = validation_loss(&m.diffusion, &scaled, e.batch_size, e.seed, self.options.conditional, cx.device);
        self.grid_png(m, e.samples, &cx.run_dir.join(format!("samples/step-{step:06}.png")), cx.device)?;
        Ok(vec![("val_loss", loss)])
    }

    fn evaluate(&self, m: &LatentDiffusion, _: &Data, cx: &EvalContext<'_>) -> Result<Evaluation> {
        let rel = "samples/samples.png";
        self.grid_png(m, cx.exp.eval.samples, &cx.run_dir.join(rel), &cx.device)?;
        let started = std::time::Instant::now();
        self.draw(m, &GenerateRequest::new(TIMED_SAMPLES, cx.exp.eval.seed), TIMED_SAMPLES, &cx.device, &mut Progress::hidden())?;
        let per_sample = started.elapsed().as_secs_f64() / TIMED_SAMPLES as f64;
        let unet = m.diffusion.num_params();
        let autoencoder = m.autoencoder.num_params();
        let s = self.sampling(&m.diffusion, &GenerateRequest::default())?;
        let mut pixel = match self.options.compare_pixel.as_deref() {
            Some(dir) => read_pixel_run(dir)?,
            None => None,
        };
        if let Some(p) = pixel.as_mut() {
            p.seconds_per_sample = Some(time_pixel_run(&p.dir, &s, cx)?);
        }
        let first = self.exp.stage1.as_ref().and_then(|s| s.run.clone()).unwrap_or_default();
        let first_seconds = crate::run_dir::RunInfo::load(&first).ok().and_then(|i| i.train_seconds);
        let [c, h, w] = m.grid();
        cx.events.message(&format!("{} sampling: {per_sample:.4} s per sample; UNet {unet} parameters, autoencoder {autoencoder}", s.describe()));
        let mut md = String::new();
        let _ = writeln!(md, "## Stages\n");
        let _ = writeln!(md, "1. KL autoencoder: [{}]({}) (its encoder and decoder, frozen)", first.display(), crate::stages::report_link(cx.run_dir, &first));
        let _ = writeln!(md, "2. this run: diffusion over its {c}x{h}x{w} latent grids, scaled by {:.4}\n", m.scale());
        let _ = writeln!(md, "## Latent against pixel diffusion\n\n| | this run (latent) | pixel-space run |\n|---|---|---|");
        let fid = |v: Option<f64>| v.map_or("not measured".to_string(), |f| format!("{f:.2}"));
        let or = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let missing = self.options.compare_pixel.as_ref().filter(|_| pixel.is_none()).map(|d| format!("{} not run yet", d.display()));
        let _ = writeln!(md, "| run | this one | {} |", or(pixel.as_ref().map(|p| format!("[{}]({})", p.dir.display(), crate::stages::report_link(cx.run_dir, &p.dir))).or(missing)));
        let _ = writeln!(md, "| FID | the sample metrics below | {} |", or(pixel.as_ref().map(|p| fid(p.fid))));
        let _ = writeln!(md, "| seconds per sample ({}) | {per_sample:.4} | {} |", s.describe(), or(pixel.as_ref().and_then(|p| p.seconds_per_sample).map(|v| format!("{v:.4}"))));
        let ours = match (cx.info.train_seconds, first_seconds) {
            (Some(t), Some(a)) => Some(format!("{:.0} ({t:.0} diffusion + {a:.0} autoencoder)", t + a)),
            (t, _) => t.map(|t| format!("{t:.0} (diffusion only)")),
        };
        let _ = writeln!(md, "| training seconds | {} | {} |", or(ours), or(pixel.as_ref().and_then(|p| p.train_seconds).map(|v| format!("{v:.0}"))));
        let _ = writeln!(md, "| parameters | {} (UNet {unet}, autoencoder {autoencoder}) | {} |\n", unet + autoencoder, or(pixel.as_ref().map(|p| p.parameters.to_string())));
        let _ = writeln!(md, "Protocol: {} weights of step {}; {TIMED_SAMPLES} samples drawn and decoded in batches, timed on this machine; a sample is the grid denoised by {} and decoded by the first stage's decoder. The pixel-space run's latest weights are loaded here and timed the same way, with the same sampler and steps, right after.\n", cx.exp.weights_word(), cx.step, s.describe());
        Ok(Evaluation {
            metrics: vec![],
            log: vec![("seconds_per_sample", per_sample.into()), ("unet_parameters", unet.into()), ("autoencoder_parameters", autoencoder.into())],
            section: md,
            record: json!({ "seconds_per_sample": per_sample, "unet_parameters": unet, "autoencoder_parameters": autoencoder,
                "latent_grid": [c, h, w], "latent_scale": m.scale(), "stage1": first, "pixel": pixel }),
            figures: vec![(format!("Samples: {} in the latent grid, decoded", s.describe()), PathBuf::from(rel))],
            summary: format!("{per_sample:.4} s per sample ({})", s.describe()),
            drawn: None,
        })
    }

    fn describe(&self) -> String {
        let u = &self.config.unet;
        format!(
            "latent diffusion: UNet of {} base channels x {:?}, {} steps, {:?} schedule, {:?} target{}",
            u.base_channels,
            u.channel_mults,
            self.config.timesteps,
            self.config.schedule,
            self.config.prediction,
            if self.options.conditional { ", class-conditional" } else { "" }
        )
    }

    fn loss_curve(&self) -> LossCurve {
        LossCurve::train_and_validation("Loss: the denoising loss on scaled latents".into(), "squared error", "val_loss", 1.0)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            classes: self.options.conditional.then_some(self.classes),
            sampler: true,
            steps: true,
            guidance: self.options.conditional,
            ..Capabilities::plain(OutputKind::Images)
        }
    }

    fn generate(&self, m: &LatentDiffusion, r: &GenerateRequest, device: &Device, progress: Option<&dyn EventSink>) -> Result<Generated> {
        let s = self.sampling(&m.diffusion, r)?;
        let mut bar = step_bar(progress, &s, r.count);
        let pixels = self.draw(m, r, r.count, device, &mut bar)?;
        Ok(Generated::Images(Images {
            pixels,
            n: r.count,
            shape: m.autoencoder.shape,
            description: format!("latent grids denoised by {}, decoded by the first stage, quantised to 8 bits", s.describe()),
            seed: r.seed,
        }))
    }
}

#[cfg(test)]
mod tests {
    /// The pixel run's FID where `genlab eval` puts it (the layout of a real eval.json, cut down).
    #[test]
    fn the_pixel_runs_fid_is_read_where_eval_writes_it() {
        let eval = serde_json::json!({ "sampler": "DPM-Solver++(2M) 10 steps", "samples": { "fid": 52.088, "kid": { "mean": 0.033 } }, "seconds_per_sample": 0.027 });
        assert_eq!(super::pixel_fid(&eval), Some(52.088));
        assert_eq!(super::pixel_fid(&serde_json::json!({ "samples": null })), None);
    }
}
