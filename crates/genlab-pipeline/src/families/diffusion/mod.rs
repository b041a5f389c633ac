//! The diffusion family (Ho et al. 2020, <https://arxiv.org/abs/2006.11239>): a UNet trained on
//! the simple loss, optionally class-conditional with label dropout for classifier-free guidance
//! (Ho & Salimans 2022), sampled by DDPM, DDIM or DPM-Solver++(2M) chosen at sampling time, and
//! able to complete a partial image (in-painting, optionally with RePaint's resampling). Fixed-noise
//! sample grids and a validation loss at every evaluation step; the evaluation protocol
//! (`evaluate.rs`) adds the sampler table, the guidance sweep, the denoising trajectory and the
//! in-painting test.

mod evaluate;

use crate::data::{Data, DataFacts, ImageBatchSource};
use crate::error::{PipelineError, Result};
use crate::evaluation::{EvalContext, Evaluation, LossCurve};
use crate::experiment::{Experiment, KeyError};
use crate::family::{model_error, Batches, Family, FamilyCard, FamilyOptions, PeriodicContext, Section};
use crate::generate::{Capabilities, GenerateRequest, Generated, Images, OutputKind, PartialInput};
use crate::metric::Metric;
use burn::tensor::{Device, Int, TensorData};
use burn::Tensor;
use genlab_core::events::EventSink;
use genlab_core::grid::{save_grid, ImageBatch};
use genlab_core::progress::Progress;
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;
use genlab_data::{DataKind, EvalImages, Transform};
use genlab_models::diffusion::model::{DiffusionConfig, DiffusionModel, SampleOptions};
use genlab_models::diffusion::sampler::{Sampler, Step};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The fixed noise of the sample grids.
const FIXED_STREAM: u64 = 0xf1ed;
/// The samples' noise (metrics, `genlab sample`).
const SAMPLE_STREAM: u64 = 0x5a4d;
/// The validation loss's timesteps and noise.
const VALIDATION_STREAM: u64 = 0x7a1d;
/// Images denoised in one batch (twice as many network inputs when guided).
const CHUNK: usize = 250;

/// A sampler by name, as `model.sampler` and `genlab sample --sampler` spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SamplerName {
    #[serde(rename = "ddpm")]
    Ddpm,
    #[serde(rename = "ddim")]
    Ddim,
    #[serde(rename = "dpm-solver++", alias = "dpm_solver", alias = "dpm-solver")]
    DpmSolver,
}

impl SamplerName {
    const NAMES: &'static str = "ddpm, ddim or dpm-solver++";

    pub fn parse(name: &str) -> Result<SamplerName> {
        match name {
            "ddpm" => Ok(SamplerName::Ddpm),
            "ddim" => Ok(SamplerName::Ddim),
            "dpm-solver++" | "dpm-solver" | "dpm_solver" => Ok(SamplerName::DpmSolver),
            _ => Err(PipelineError::Config(format!("sampler \"{name}\": expected {}", Self::NAMES))),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SamplerName::Ddpm => "DDPM",
            SamplerName::Ddim => "DDIM",
            SamplerName::DpmSolver => "DPM-Solver++(2M)",
        }
    }

    pub(crate) fn sampler(self, eta: f64) -> Sampler {
        match self {
            SamplerName::Ddpm => Sampler::Ddpm,
            SamplerName::Ddim => Sampler::Ddim { eta },
            SamplerName::DpmSolver => Sampler::DpmSolver2M,
        }
    }
}

/// The diffusion family's own keys in `[model]`: the conditioning, how it samples by default, and
/// the sizes of its evaluation protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffusionOptions {
    /// Class-conditional on the dataset's labels, with the "no class" token for guidance.
    #[serde(default)]
    pub conditional: bool,
    /// The sampler of the grids, the sample metrics and `genlab sample` (ddim).
    #[serde(default = "default_sampler")]
    pub sampler: SamplerName,
    /// Its steps (50); DDPM takes every step of the schedule unless a request says otherwise.
    #[serde(default = "default_sampling_steps")]
    pub sampling_steps: usize,
    /// DDIM's eta (0: deterministic).
    #[serde(default)]
    pub eta: f64,
    /// Classifier-free guidance scale of a conditional model (1: the conditional prediction alone).
    #[serde(default = "one")]
    pub guidance: f64,
    /// Clip each predicted x0 to [-1, 1] while sampling (diffusers' `clip_sample`).
    #[serde(default = "yes")]
    pub clip_sample: bool,
    /// RePaint's resampling in in-painting: each step done this many times (1: once).
    #[serde(default = "one_usize")]
    pub repaint_jumps: usize,
    /// Samples of each DDIM / DPM-Solver row of the evaluation's sampler table (0 skips the table).
    #[serde(default = "default_table_samples")]
    pub table_samples: usize,
    /// Samples of the table's DDPM row, every step of the schedule (0 leaves the row out).
    #[serde(default = "default_ddpm_samples")]
    pub ddpm_samples: usize,
    /// Samples at each scale of the guidance sweep (a conditional model; 0 skips it).
    #[serde(default = "default_table_samples")]
    pub guidance_samples: usize,
    /// The sweep's guidance scales.
    #[serde(default = "default_guidance_scales")]
    pub guidance_scales: Vec<f64>,
    /// Evaluation images whose top half is given to the in-painting test (0 skips it).
    #[serde(default = "default_inpaint_examples")]
    pub inpaint_examples: usize,
}

fn default_sampler() -> SamplerName {
    SamplerName::Ddim
}
fn default_sampling_steps() -> usize {
    50
}
fn one() -> f64 {
    1.0
}
fn one_usize() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn default_table_samples() -> usize {
    500
}
fn default_ddpm_samples() -> usize {
    200
}
fn default_guidance_scales() -> Vec<f64> {
    vec![0.0, 1.0, 2.0, 4.0]
}
fn default_inpaint_examples() -> usize {
    1000
}

impl FamilyOptions for DiffusionOptions {
    const KEYS: &'static [&'static str] = &[
        "conditional",
        "sampler",
        "sampling_steps",
        "eta",
        "guidance",
        "clip_sample",
        "repaint_jumps",
        "table_samples",
        "ddpm_samples",
        "guidance_samples",
        "guidance_scales",
        "inpaint_examples",
    ];
}

impl Default for DiffusionOptions {
    fn default() -> Self {
        DiffusionOptions {
            conditional: false,
            sampler: default_sampler(),
            sampling_steps: default_sampling_steps(),
            eta: 0.0,
            guidance: one(),
            clip_sample: true,
            repaint_jumps: 1,
            table_samples: default_table_samples(),
            ddpm_samples: default_ddpm_samples(),
            guidance_samples: default_table_samples(),
            guidance_scales: default_guidance_scales(),
            inpaint_examples: default_inpaint_examples(),
        }
    }
}

/// A guidance scale must be a finite number >= 0.
fn check_scale(scale: f64) -> std::result::Result<(), String> {
    if scale >= 0.0 && scale.is_finite() {
        Ok(())
    } else {
        Err(format!("{scale}: expected a finite number >= 0"))
    }
}

pub struct DiffusionFamily {
    config: DiffusionConfig,
    options: DiffusionOptions,
    shape: [usize; 3],
    classes: usize,
    exp: Experiment,
}

/// A diffusion family's sampling settings, which a request may override.
pub(crate) struct SamplingDefaults {
    pub sampler: SamplerName,
    pub steps: usize,
    /// DDIM's eta.
    pub eta: f64,
    pub guidance: f64,
    /// Clip each predicted x0 to [-1, 1].
    pub clip: bool,
    /// RePaint's resampling jumps.
    pub jumps: usize,
}

/// One way of sampling: the sampler's plan and how the network is read.
#[derive(Debug, Clone)]
pub struct Sampling {
    pub name: SamplerName,
    pub steps: usize,
    pub plan: Vec<Step>,
    pub opts: SampleOptions,
}

impl Sampling {
    /// `sampler` (named `name`) over `model`'s schedule in `steps` steps, reading the network
    /// with `opts`; a step count the schedule cannot take is refused.
    pub(crate) fn new(model: &DiffusionModel, sampler: Sampler, name: SamplerName, steps: usize, opts: SampleOptions) -> Result<Sampling> {
        let len = model.diffusion.schedule.len();
        let plan = sampler
            .plan(&model.diffusion.schedule, steps)
            .map_err(|_| PipelineError::Config(format!("steps {steps}: expected 1 to {len} (the schedule's length)")))?;
        Ok(Sampling { name, steps, plan, opts })
    }

    /// The sampling `r` asks for, `defaults` where it is silent (DDPM takes every step of the
    /// schedule unless asked otherwise); a guidance scale below 0 or not finite is refused.
    pub(crate) fn requested(model: &DiffusionModel, r: &GenerateRequest, defaults: &SamplingDefaults) -> Result<Sampling> {
        let name = match &r.sampler {
            Some(n) => SamplerName::parse(n)?,
            None => defaults.sampler,
        };
        let len = model.diffusion.schedule.len();
        let steps = r.steps.unwrap_or(if name == SamplerName::Ddpm { len } else { defaults.steps });
        let scale = r.guidance.unwrap_or(defaults.guidance);
        check_scale(scale).map_err(|e| PipelineError::Config(format!("guidance {e}")))?;
        let opts = SampleOptions { scale, clip: defaults.clip, jumps: defaults.jumps };
        Sampling::new(model, name.sampler(defaults.eta), name, steps, opts)
    }

    /// In words, for descriptions and tables.
    pub fn describe(&self) -> String {
        format!("{} {} steps", self.name.label(), self.steps)
    }
}

/// A partial image on the device: values in [-1, 1] and the mask broadcast over channels.
pub(crate) struct Known {
    image: Vec<f32>,
    mask: Vec<f32>,
}

/// The per-image noise stream of image `i` of a draw from `seed`: an image is the same whatever
/// the number drawn and the batch it is drawn in.
fn image_rng(seed: u64, stream: u64, i: usize) -> SeededRng {
    SeededRng::stream(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15), stream)
}

/// `n` images from `model` with `s`, 8-bit values `[n, c, h, w]`; `labels` (a conditional model;
/// None asks for no class) and `known` (in-painting, one partial image per sample) are given per
/// image. `bar` counts denoising steps of all chunks; `watch` sees each chunk's first index, the
/// step, x and the predicted x0.
#[allow(clippy::too_many_arguments)]
pub(crate) fn draw(
    model: &DiffusionModel,
    s: &Sampling,
    n: usize,
    shape: [usize; 3],
    labels: Option<&[usize]>,
    known: Option<&Known>,
    seeds: (&[(u64, usize)], u64),
    device: &Device,
    bar: &mut Progress,
    watch: impl FnMut(usize, usize, &Tensor<4>, &Tensor<4>),
) -> Vec<f32> {
    denoise(model, s, n, shape, labels, known, seeds, device, bar, watch, &to_pixels)
}

/// [`draw`] with each chunk's denoised `[k, c, h, w]` turned into 8-bit values by `finish` (a
/// latent diffusion model decodes its latents there).
#[allow(clippy::too_many_arguments)]
pub(crate) fn denoise(
    model: &DiffusionModel,
    s: &Sampling,
    n: usize,
    shape: [usize; 3],
    labels: Option<&[usize]>,
    known: Option<&Known>,
    (seeds, stream): (&[(u64, usize)], u64),
    device: &Device,
    bar: &mut Progress,
    mut watch: impl FnMut(usize, usize, &Tensor<4>, &Tensor<4>),
    finish: &dyn Fn(Tensor<4>) -> Vec<f32>,
) -> Vec<f32> {
    let [c, h, w] = shape;
    let len = c * h * w;
    // Each image's noise stream: image j of the part of seed s draws as image j of a request of
    // seed s alone, so merged requests draw what each draws alone.
    let origin: Vec<(u64, usize)> = seeds.iter().flat_map(|&(seed, count)| (0..count).map(move |j| (seed, j))).collect();
    assert_eq!(origin.len(), n, "the seed parts cover the images");
    let mut pixels = Vec::with_capacity(n * len);
    let per_chunk = s.plan.len() as u64;
    for start in (0..n).step_by(CHUNK) {
        let k = CHUNK.min(n - start);
        let mut rngs: Vec<SeededRng> = origin[start..start + k].iter().map(|&(seed, j)| image_rng(seed, stream, j)).collect();
        let x: Vec<f32> = rngs.iter_mut().flat_map(|r| r.normal_vec(len)).collect();
        let x = Tensor::from_data(TensorData::new(x, [k, c, h, w]), device);
        let labels = labels.map(|l| {
            let v: Vec<i64> = l[start..start + k].iter().map(|&y| y as i64).collect();
            Tensor::<1, Int>::from_data(TensorData::new(v, [k]), device)
        });
        let known = known.map(|kn| {
            let t = |v: &[f32]| Tensor::<4>::from_data(TensorData::new(v.to_vec(), [k, c, h, w]), device);
            (t(&kn.image[start * len..(start + k) * len]), t(&kn.mask[start * len..(start + k) * len]))
        });
        let done = (start / CHUNK) as u64 * per_chunk;
        let out = model.sample(&s.plan, x, labels, s.opts, known, &mut rngs, |i, x, x0| {
            bar.update(done + i as u64 + 1, "steps");
            watch(start, i, x, x0);
        });
        pixels.extend(finish(out));
    }
    bar.finish();
    pixels
}

/// A value in [-1, 1] as an 8-bit value (clamped).
fn to_pixel(v: f32) -> f32 {
    (((v + 1.0) * 0.5).clamp(0.0, 1.0) * 255.0).round()
}

/// Values in [-1, 1] as 8-bit values.
pub(crate) fn to_pixels(x: Tensor<4>) -> Vec<f32> {
    to_f32_vec(x).into_iter().map(to_pixel).collect()
}

/// `n` images with `s` from the samples' noise of `seed`, classes `labels`, no partial input: the
/// draws of `genlab sample` and of the evaluation's tables, on `bar`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn draw_samples(
    model: &DiffusionModel,
    s: &Sampling,
    n: usize,
    shape: [usize; 3],
    labels: Option<&[usize]>,
    seed: u64,
    device: &Device,
    bar: &mut Progress,
) -> Vec<f32> {
    draw(model, s, n, shape, labels, None, (&[(seed, n)], SAMPLE_STREAM), device, bar, |_, _, _, _| {})
}

/// 8-bit values as a batch in [0, 1], for grids.
fn batch_of(pixels: &[f32], shape: [usize; 3]) -> ImageBatch {
    let [c, h, w] = shape;
    let n = pixels.len() / (c * h * w);
    ImageBatch::new(pixels.iter().map(|p| p / 255.0).collect(), n, c, h, w)
}

/// A "denoising" bar over `n` images' steps of `s`, shown when `events` is given.
pub(crate) fn step_bar(events: Option<&dyn EventSink>, s: &Sampling, n: usize) -> Progress {
    let total = n.div_ceil(CHUNK) as u64 * s.plan.len() as u64;
    events.map_or_else(Progress::hidden, |e| e.progress("denoising", total, 0))
}

impl DiffusionFamily {
    fn conditional(&self) -> bool {
        self.options.conditional
    }

    /// The sampling a request asks for (the run's defaults where it is silent).
    pub fn sampling(&self, model: &DiffusionModel, r: &GenerateRequest) -> Result<Sampling> {
        let o = &self.options;
        let defaults = SamplingDefaults {
            sampler: o.sampler,
            steps: o.sampling_steps,
            eta: o.eta,
            guidance: o.guidance,
            clip: o.clip_sample,
            jumps: o.repaint_jumps,
        };
        Sampling::requested(model, r, &defaults)
    }

    /// `name` with `steps` steps at guidance `scale`, the run's other settings.
    fn sampling_with(&self, model: &DiffusionModel, name: SamplerName, steps: usize, scale: f64) -> Result<Sampling> {
        let opts = SampleOptions { scale, clip: self.options.clip_sample, jumps: self.options.repaint_jumps };
        Sampling::new(model, name.sampler(self.options.eta), name, steps, opts)
    }

    /// The run's default sampling.
    fn default_sampling(&self, model: &DiffusionModel) -> Result<Sampling> {
        self.sampling(model, &GenerateRequest::new(1, 0))
    }

    /// The class of each of `n` samples: cycling through the classes for a conditional model.
    fn cycling_labels(&self, n: usize) -> Option<Vec<usize>> {
        self.conditional().then(|| (0..n).map(|i| i % self.classes).collect())
    }

    /// A partial input as every sample's known pixels, checked against the model's images.
    fn known(&self, p: &PartialInput, n: usize) -> Result<Known> {
        let [c, h, w] = self.shape;
        if p.shape != self.shape {
            let [pc, ph, pw] = p.shape;
            return Err(PipelineError::Config(format!(
                "partial: a {pw}x{ph} image with {pc} channel(s) and its mask, but the run's model makes {w}x{h} images with {c} channel(s)"
            )));
        }
        let image: Vec<f32> = p.values.iter().map(|v| v / 127.5 - 1.0).collect();
        let mask: Vec<f32> = (0..c).flat_map(|_| p.mask.iter().copied()).collect();
        Ok(Known { image: image.repeat(n), mask: mask.repeat(n) })
    }

    /// A grid of `n` samples from the fixed noise of `seed` (the same images at every step), one
    /// column per class for a conditional model.
    fn fixed_grid(&self, model: &DiffusionModel, n: usize, seed: u64, device: &Device, path: &Path) -> Result<()> {
        let s = self.default_sampling(model)?;
        let labels = self.cycling_labels(n);
        let px = draw(
            model,
            &s,
            n,
            self.shape,
            labels.as_deref(),
            None,
            (&[(seed, n)], FIXED_STREAM),
            device,
            &mut Progress::hidden(),
            |_, _, _, _| {},
        );
        let cols = if self.conditional() { self.classes } else { (n as f64).sqrt().ceil() as usize };
        save_grid(&batch_of(&px, self.shape), cols, path)?;
        Ok(())
    }
}

/// The validation loss on `set`: every image at a fixed, evenly spread timestep with fixed noise
/// (the same at every evaluation step), its own label when `conditional`.
pub(crate) fn validation_loss(model: &DiffusionModel, set: &EvalImages, batch: usize, seed: u64, conditional: bool, device: &Device) -> f64 {
    let t_len = model.diffusion.schedule.len();
    let len: usize = set.shape.iter().product();
    let mut rng = SeededRng::stream(seed, VALIDATION_STREAM);
    let mut total = 0.0;
    for start in (0..set.n).step_by(batch.max(1)) {
        let end = (start + batch.max(1)).min(set.n);
        let t: Vec<usize> = (start..end).map(|i| (i * t_len + t_len / 2) / set.n).collect();
        let [c, h, w] = set.shape;
        let eps = Tensor::from_data(TensorData::new(rng.normal_vec((end - start) * len), [end - start, c, h, w]), device);
        let x0 = set.tensor(start, end, device);
        let labels = if conditional { set.labels_tensor(start, end, device) } else { None };
        let loss = to_f32_vec(model.denoising_loss(x0, &t, eps, labels, None))[0] as f64;
        total += loss * (end - start) as f64;
    }
    total / set.n.max(1) as f64
}

impl Family for DiffusionFamily {
    type Network = DiffusionConfig;
    type Options = DiffusionOptions;
    type Model = DiffusionModel;
    type Validation = EvalImages;

    const CARD: FamilyCard = FamilyCard {
        name: "diffusion",
        summary: "DDPM with a UNet: DDPM/DDIM/DPM-Solver++ samplers, classifier-free guidance, in-painting",
        data: &[DataKind::Images],
    };

    fn check(s: &Section<DiffusionConfig, DiffusionOptions>, exp: &Experiment) -> Result<(), KeyError> {
        s.network.check().map_err(model_error)?;
        let o = &s.options;
        if o.sampling_steps == 0 || o.sampling_steps > s.network.timesteps {
            return Err((
                "model.sampling_steps".into(),
                format!(" = {}: expected 1 to model.timesteps ({})", o.sampling_steps, s.network.timesteps),
            ));
        }
        if !(0.0..=1.0).contains(&o.eta) {
            return Err(("model.eta".into(), format!(" = {}: expected a value in [0, 1]", o.eta)));
        }
        check_scale(o.guidance).map_err(|e| ("model.guidance".to_string(), format!(" = {e}")))?;
        if o.guidance != 1.0 && !o.conditional {
            return Err((
                "model.guidance".into(),
                format!(" = {}: guidance needs a class-conditional model (model.conditional = true)", o.guidance),
            ));
        }
        if let Some(g) = o.guidance_scales.iter().find(|g| check_scale(**g).is_err()) {
            return Err(("model.guidance_scales".into(), format!(": {g}: expected finite numbers >= 0")));
        }
        if o.repaint_jumps == 0 {
            return Err(("model.repaint_jumps".into(), " = 0: expected at least 1 (1: no resampling)".into()));
        }
        if !exp.data.transforms.contains(&Transform::ScaleSymmetric) {
            return Err((
                "data.transforms".into(),
                ": the diffusion process works on images in [-1, 1]; add \"scale_symmetric\"".into(),
            ));
        }
        Ok(())
    }

    fn metrics(s: &Section<DiffusionConfig, DiffusionOptions>, _: DataKind) -> Vec<Metric> {
        if s.options.conditional {
            vec![Metric::ConditionalAccuracy]
        } else {
            vec![]
        }
    }

    fn output(_: &Section<DiffusionConfig, DiffusionOptions>, _: DataKind) -> OutputKind {
        OutputKind::Images
    }

    fn trains_privately() -> bool {
        true
    }

    fn new(s: Section<DiffusionConfig, DiffusionOptions>, exp: &Experiment, facts: &DataFacts) -> Self {
        DiffusionFamily {
            config: s.network,
            options: s.options,
            shape: facts.shape,
            classes: facts.class_names.len(),
            exp: exp.clone(),
        }
    }

    fn check_data(&self, data: &Data) -> Result<()> {
        if self.conditional() {
            data.images()?.check_labels(&self.exp.data.dataset.describe())?;
        }
        Ok(())
    }

    fn trains_on_replicas() -> bool {
        true
    }

    fn init(&self, seed: u64, device: &Device) -> Result<DiffusionModel> {
        let mut model = self.config.init(self.shape, self.conditional().then_some(self.classes), seed, device)?;
        model.replicas = self.exp.train.replicas;
        Ok(model)
    }

    fn batches(&self, data: &Data, exp: &Experiment) -> Result<Batches<DiffusionModel>> {
        Ok(Box::new(ImageBatchSource::new(data, exp, self.conditional())?))
    }

    fn validation_set(&self, data: &Data, exp: &Experiment, _: &dyn EventSink) -> Result<EvalImages> {
        data.periodic_images(exp)
    }

    fn validate(
        &self,
        step: u64,
        m: &DiffusionModel,
        set: &EvalImages,
        cx: &PeriodicContext<'_>,
    ) -> Result<Vec<(&'static str, f64)>> {
        let e = &self.exp.eval;
        let loss = validation_loss(m, set, e.batch_size, e.seed, self.conditional(), cx.device);
        self.fixed_grid(m, e.samples, e.seed, cx.device, &cx.run_dir.join(format!("samples/step-{step:06}.png")))?;
        Ok(vec![("val_loss", loss)])
    }

    fn evaluate(&self, model: &DiffusionModel, data: &Data, cx: &EvalContext<'_>) -> Result<Evaluation> {
        evaluate::evaluate(self, model, data, cx)
    }

    fn describe(&self) -> String {
        let c = &self.config;
        let u = &c.unet;
        format!(
            "UNet (base {}, channel multipliers {:?}, {} block(s) per level, attention at {:?}, dropout {}), {:?} schedule of {} steps, {:?} prediction{}{}",
            u.base_channels,
            u.channel_mults,
            u.blocks_per_level,
            u.attention_resolutions,
            u.dropout,
            c.schedule,
            c.timesteps,
            c.prediction,
            c.min_snr_gamma.map_or(String::new(), |g| format!(", min-SNR-{g} weighting")),
            if self.conditional() {
                format!(", class-conditional (p_uncond {}, guidance {})", c.p_uncond, self.options.guidance)
            } else {
                String::new()
            }
        )
    }

    fn loss_curve(&self) -> LossCurve {
        LossCurve::train_and_validation("Denoising loss".into(), "loss", "val_loss", 1.0)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            classes: self.conditional().then_some(self.classes),
            sampler: true,
            steps: true,
            guidance: self.conditional(),
            partial: true,
            seed_parts: true,
            ..Capabilities::plain(OutputKind::Images)
        }
    }

    fn generate(
        &self,
        model: &DiffusionModel,
        r: &GenerateRequest,
        device: &Device,
        progress: Option<&dyn EventSink>,
    ) -> Result<Generated> {
        let s = self.sampling(model, r)?;
        let known = r.partial.as_ref().map(|p| self.known(p, r.count)).transpose()?;
        let labels: Option<Vec<usize>> = match r.class {
            Some(c) => Some(vec![c; r.count]),
            None => self.cycling_labels(r.count),
        };
        let seeds = r.seeds.clone().unwrap_or_else(|| vec![(r.seed, r.count)]);
        let mut bar = step_bar(progress, &s, r.count);
        let pixels = draw(
            model,
            &s,
            r.count,
            self.shape,
            labels.as_deref(),
            known.as_ref(),
            (&seeds, SAMPLE_STREAM),
            device,
            &mut bar,
            |_, _, _, _| {},
        );
        let what = match (r.class, self.conditional()) {
            (Some(c), _) => format!("class {c}"),
            (None, true) => "classes in turn".into(),
            (None, false) => "unconditional".into(),
        };
        let guided = if self.conditional() { format!(", guidance {}", s.opts.scale) } else { String::new() };
        let completing = if known.is_some() { "completions of the partial image, " } else { "" };
        let description = format!("{completing}{what}, {}{guided}, quantised to 8 bits", s.describe());
        Ok(Generated::Images(Images { pixels, n: r.count, shape: self.shape, description, seed: r.seed }))
    }
}
