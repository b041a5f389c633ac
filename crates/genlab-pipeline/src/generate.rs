//! One generation interface for every family: a [`GenerateRequest`] (each option optional, each
//! checked against what the family can honour) and what comes back ([`Generated`]: 8-bit images,
//! 2-D points or text). `genlab sample`, the evaluation's sample metrics, and later the server and
//! the tuner all ask through it.

use crate::error::{PipelineError, Result};
use genlab_core::events::EventSink;
use genlab_core::grid::{save_grid, save_images, ImageBatch};
use genlab_core::progress::Progress;
use genlab_plot::{density_panels, DensityPanel};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What to generate. Only `count` and `seed` are always honoured; every other field is checked
/// against the family's [`Capabilities`] and refused with one line naming the family.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    pub count: usize,
    pub seed: u64,
    /// The class to generate (a conditional model); without it a conditional model cycles
    /// through its classes.
    pub class: Option<usize>,
    /// Sampling temperature: a flow's prior standard deviation, a language model's softmax
    /// temperature.
    pub temperature: Option<f64>,
    /// The sampler, by name (a diffusion model's: `ddpm`, `ddim`, `dpm-solver++`).
    pub sampler: Option<String>,
    /// Sampler steps (a diffusion model's denoising steps).
    pub steps: Option<usize>,
    /// Classifier-free guidance scale.
    pub guidance: Option<f64>,
    /// A partial input to complete, with its mask (1 keeps the given value).
    pub partial: Option<PartialInput>,
    /// A text prompt to continue.
    pub prompt: Option<String>,
    pub max_tokens: Option<usize>,
    /// Generation stops after any of these strings.
    pub stop: Vec<String>,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    /// Divides a positive logit (multiplies a negative one) of each token already in the text
    /// (CTRL's repetition penalty); 1 leaves them.
    #[serde(default)]
    pub repetition_penalty: Option<f64>,
    /// A text to correct (a sequence-to-sequence corrector).
    #[serde(default)]
    pub correct: Option<String>,
    /// A text with one `<mask>` to fill.
    #[serde(default)]
    pub infill: Option<String>,
    /// Beams of beam search (1: greedy).
    #[serde(default)]
    pub beam: Option<usize>,
    /// The latent vectors to decode, `count x latent` values row by row (a model with a latent
    /// prior: a VAE, a GAN); without them the seed draws them.
    #[serde(default)]
    pub latents: Option<Vec<f32>>,
    /// Requests merged into this one (the server's batching): each `(seed, count)` draws its
    /// images as a request of that seed and count alone would; the counts sum to `count`.
    #[serde(default)]
    pub seeds: Option<Vec<(u64, usize)>>,
    /// The samples as the model made them, without the experiment's `[post]` steps.
    #[serde(default)]
    pub raw: bool,
}

/// A partial image to complete (in-painting): 8-bit pixel values `[channels, height, width]` and
/// one mask entry per pixel (`height x width`), 1 where the pixel is given and 0 where it is to
/// be generated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialInput {
    /// `[channels, height, width]` of `values`.
    pub shape: [usize; 3],
    pub values: Vec<f32>,
    pub mask: Vec<f32>,
}

impl PartialInput {
    /// A partial image and its mask from PNG (or JPEG) files: a gray image gives one channel, any
    /// other three; in the mask, as in diffusers' in-painting pipelines, white (>= 128) marks the
    /// pixels to generate and black the pixels to keep.
    pub fn from_files(image: &Path, mask: &Path) -> Result<PartialInput> {
        let read = |path: &Path, what: &str| -> Result<Vec<u8>> {
            genlab_core::files::read_bounded(path)
                .map_err(|e| PipelineError::Config(format!("{what} {}: cannot read it: {e}", path.display())))
        };
        let (image_name, mask_name) = (format!("--partial {}", image.display()), format!("--mask {}", mask.display()));
        Self::from_bytes(&read(image, "--partial")?, &read(mask, "--mask")?, &image_name, &mask_name)
    }

    /// A partial image and its mask from the bytes of PNG (or JPEG) files, as
    /// [`PartialInput::from_files`] reads them; refusals name `image_name` or `mask_name`.
    pub fn from_bytes(image: &[u8], mask: &[u8], image_name: &str, mask_name: &str) -> Result<PartialInput> {
        let open = |bytes: &[u8], what: &str| -> Result<image::DynamicImage> {
            let format = image::guess_format(bytes)
                .map_err(|e| PipelineError::Config(format!("{what}: not a PNG or JPEG image: {e}")))?;
            if !matches!(format, image::ImageFormat::Png | image::ImageFormat::Jpeg) {
                return Err(PipelineError::Config(format!("{what}: a {format:?} image; expected PNG or JPEG")));
            }
            let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
            let mut limits = image::Limits::default();
            limits.max_image_width = Some(4096);
            limits.max_image_height = Some(4096);
            limits.max_alloc = Some(256 << 20);
            reader.limits(limits);
            reader.decode().map_err(|e| PipelineError::Config(format!("{what}: not a PNG or JPEG image: {e}")))
        };
        let picture = open(image, image_name)?;
        let stencil = open(mask, mask_name)?;
        let (w, h) = (picture.width() as usize, picture.height() as usize);
        if (stencil.width() as usize, stencil.height() as usize) != (w, h) {
            return Err(PipelineError::Config(format!(
                "{mask_name}: {}x{} pixels, but the image {image_name} is {w}x{h}; expected the same size",
                stencil.width(),
                stencil.height(),
            )));
        }
        let (c, planar) = if picture.color().has_color() {
            let rgb = picture.to_rgb8();
            let px = rgb.as_raw();
            (3, (0..3).flat_map(|ch| (0..w * h).map(move |i| px[3 * i + ch] as f32)).collect::<Vec<f32>>())
        } else {
            (1, picture.to_luma8().as_raw().iter().map(|&v| v as f32).collect())
        };
        let keep = stencil.to_luma8().as_raw().iter().map(|&v| if v >= 128 { 0.0 } else { 1.0 }).collect();
        Ok(PartialInput { shape: [c, h, w], values: planar, mask: keep })
    }
}

/// What a family generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    Images,
    Points,
    Text,
    /// Nothing: the family is not generative (a classifier).
    Nothing,
}

/// The most images one grid file holds (a 100 x 100 grid); more go to `--format folder`.
pub const MAX_GRID: usize = 10_000;

/// What a family (as configured) can honour in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub output: Option<OutputKind>,
    /// Number of classes a request may ask for.
    pub classes: Option<usize>,
    pub temperature: bool,
    pub sampler: bool,
    pub steps: bool,
    pub guidance: bool,
    pub partial: bool,
    pub prompt: bool,
    pub max_tokens: bool,
    pub stop: bool,
    pub top_k: bool,
    pub top_p: bool,
    pub repetition_penalty: bool,
    pub correct: bool,
    pub infill: bool,
    pub beam: bool,
    /// The size of the latent vector a request may give (a VAE's or GAN's prior).
    pub latent: Option<usize>,
    /// Whether the model has an encoder whose latent codes give principal directions (a VAE).
    pub directions: bool,
    /// Whether a request may carry `seeds`, parts drawn each from its own seed (a diffusion
    /// model's per-image noise streams).
    pub seed_parts: bool,
}

impl OutputKind {
    /// What the family generates, in words.
    pub fn describe(self) -> &'static str {
        match self {
            OutputKind::Images => "images",
            OutputKind::Points => "2-D points",
            OutputKind::Text => "text",
            OutputKind::Nothing => "nothing (not generative)",
        }
    }
}

impl Capabilities {
    /// A generator of `output` that honours nothing beyond count and seed.
    pub fn plain(output: OutputKind) -> Self {
        Capabilities { output: Some(output), ..Default::default() }
    }

    pub fn output(&self) -> OutputKind {
        self.output.unwrap_or(OutputKind::Nothing)
    }
}

impl GenerateRequest {
    pub fn new(count: usize, seed: u64) -> Self {
        GenerateRequest { count, seed, ..Default::default() }
    }

    /// Refuses what `family` (able to do `can`) cannot honour, naming the option, the family and
    /// what was expected.
    pub fn check(&self, family: &str, can: &Capabilities) -> Result<()> {
        let refuse =
            |option: &str, why: &str| Err(PipelineError::Config(format!("{option}: the {family} family {why}")));
        if can.output() == OutputKind::Nothing {
            return refuse("sample", "is not generative; it draws no samples");
        }
        if self.count == 0 {
            return Err(PipelineError::Config("count 0: expected at least one sample".into()));
        }
        match (self.class, can.classes) {
            (Some(_), None) => {
                return refuse("class", "does not generate a requested class (only a conditional model does)")
            }
            (Some(c), Some(k)) if c >= k => {
                return Err(PipelineError::Config(format!("class {c}: the run has {k} classes (0..{k})")))
            }
            _ => {}
        }
        if let Some(t) = self.temperature {
            if !can.temperature {
                return refuse("temperature", "has no sampling temperature");
            }
            if !(t >= 0.0 && t.is_finite()) {
                return Err(PipelineError::Config(format!("temperature {t}: expected a finite number >= 0")));
            }
        }
        let unsupported = [
            (self.sampler.is_some() && !can.sampler, "sampler", "has no samplers to choose from"),
            (self.steps.is_some() && !can.steps, "steps", "has no sampler steps"),
            (
                self.guidance.is_some() && !can.guidance,
                "guidance",
                "has no classifier-free guidance here (only a class-conditional model has)",
            ),
            (self.partial.is_some() && !can.partial, "partial", "cannot complete a partial input"),
            (self.prompt.is_some() && !can.prompt, "prompt", "takes no prompt"),
            (self.max_tokens.is_some() && !can.max_tokens, "max_tokens", "does not generate tokens"),
            (!self.stop.is_empty() && !can.stop, "stop", "does not generate tokens"),
            (self.top_k.is_some() && !can.top_k, "top_k", "has no top-k sampling"),
            (self.top_p.is_some() && !can.top_p, "top_p", "has no top-p sampling"),
            (
                self.repetition_penalty.is_some() && !can.repetition_penalty,
                "repetition_penalty",
                "does not generate tokens",
            ),
            (self.correct.is_some() && !can.correct, "correct", "does not correct text (a seq2seq corrector does)"),
            (self.infill.is_some() && !can.infill, "infill", "does not fill masked text (a seq2seq model does)"),
            (self.beam.is_some() && !can.beam, "beam", "has no beam search"),
            (self.latents.is_some() && can.latent.is_none(), "latents", "has no latent vectors to give"),
            (self.seeds.is_some() && !can.seed_parts, "seeds", "draws no images from seed parts"),
        ];
        if let Some((_, option, why)) = unsupported.iter().find(|u| u.0) {
            return refuse(option, why);
        }
        if let Some(p) = &self.partial {
            let [c, h, w] = p.shape;
            if p.values.len() != c * h * w || p.mask.len() != h * w {
                return Err(PipelineError::Config(format!(
                    "partial: {} values and {} mask entries for a {c}x{h}x{w} image; expected {} and {}",
                    p.values.len(),
                    p.mask.len(),
                    c * h * w,
                    h * w
                )));
            }
        }
        if let (Some(z), Some(d)) = (&self.latents, can.latent) {
            if z.len() != self.count * d {
                return Err(PipelineError::Config(format!(
                    "latents: {} values for {} samples of a {d}-dimensional latent; expected {}",
                    z.len(),
                    self.count,
                    self.count * d
                )));
            }
            if let Some(v) = z.iter().find(|v| !v.is_finite()) {
                return Err(PipelineError::Config(format!("latents: {v}: expected finite numbers")));
            }
        }
        if let Some(parts) = self.seeds.as_ref().filter(|p| p.iter().map(|x| x.1).sum::<usize>() != self.count) {
            return Err(PipelineError::Config(format!(
                "seeds: {} images in the parts; expected count {}",
                parts.iter().map(|x| x.1).sum::<usize>(),
                self.count
            )));
        }
        if let Some(p) = self.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
            return Err(PipelineError::Config(format!("top_p {p}: expected a value in (0, 1]")));
        }
        if self.beam == Some(0) {
            return Err(PipelineError::Config("beam 0: expected a beam width of at least 1".into()));
        }
        if self.top_k == Some(0) {
            return Err(PipelineError::Config("top_k 0: expected at least 1".into()));
        }
        if let Some(r) = self.repetition_penalty.filter(|r| !(*r > 0.0 && r.is_finite())) {
            return Err(PipelineError::Config(format!("repetition_penalty {r}: expected a positive number")));
        }
        if self.max_tokens == Some(0) {
            return Err(PipelineError::Config("max_tokens 0: expected at least 1".into()));
        }
        Ok(())
    }
}

/// Generated images: 8-bit-range pixel values (0..=255, as PNG files hold them) `[n, c, h, w]`,
/// with what they are in words and the seed that draws them again.
#[derive(Debug, Clone, PartialEq)]
pub struct Images {
    pub pixels: Vec<f32>,
    pub n: usize,
    pub shape: [usize; 3],
    pub description: String,
    pub seed: u64,
}

impl Images {
    /// The first `n` images.
    pub fn first(&self, n: usize) -> Images {
        let len: usize = self.shape.iter().product();
        Images {
            pixels: self.pixels[..n * len].to_vec(),
            n,
            shape: self.shape,
            description: self.description.clone(),
            seed: self.seed,
        }
    }

    /// The images in [0, 1], for drawing.
    pub fn batch(&self) -> ImageBatch {
        let [c, h, w] = self.shape;
        ImageBatch::new(self.pixels.iter().map(|p| p / 255.0).collect(), self.n, c, h, w)
    }
}

/// What a family generated.
#[derive(Debug, Clone, PartialEq)]
pub enum Generated {
    Images(Images),
    /// `[x0, y0, x1, y1, ...]`.
    Points(Vec<f32>),
    Text(Vec<String>),
}

/// How `genlab sample` writes its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// One file: a PNG grid of images, a CSV or scatter plot of points, a text file.
    Grid,
    /// A folder of PNG files, one per image (for `genlab fid`).
    Folder,
}

impl Generated {
    /// Writes the samples to `out` as `format` asks; `family` names the family in refusals.
    pub fn write(&self, out: &Path, format: SampleFormat, family: &str) -> Result<()> {
        match (self, format) {
            (Generated::Images(im), SampleFormat::Grid) => {
                save_grid(&im.batch(), (im.n as f64).sqrt().ceil() as usize, out)?;
            }
            (Generated::Images(im), SampleFormat::Folder) => {
                let b = im.batch();
                save_images(&b, 0, out)?;
            }
            (Generated::Points(_) | Generated::Text(_), SampleFormat::Folder) => {
                return Err(PipelineError::Config(format!(
                    "--format folder: the {family} family's samples are {}; write them to one file",
                    if matches!(self, Generated::Points(_)) { "points (a .csv or .png file)" } else { "text" }
                )))
            }
            (Generated::Points(pts), SampleFormat::Grid) => {
                if out.extension().is_some_and(|e| e == "csv") {
                    let text: String = pts.chunks(2).map(|p| format!("{},{}\n", p[0], p[1])).collect();
                    genlab_core::atomic::write_atomic(out, format!("x,y\n{text}").as_bytes())?;
                } else {
                    let (lo, hi) = window(pts);
                    density_panels(
                        out,
                        &format!("{} samples", pts.len() / 2),
                        (lo, hi),
                        &[DensityPanel::Points { title: family, points: pts }],
                    )?;
                }
            }
            (Generated::Text(lines), SampleFormat::Grid) => {
                let mut text = lines.join("\n\n");
                text.push('\n');
                genlab_core::atomic::write_atomic(out, text.as_bytes())?;
            }
        }
        Ok(())
    }
}

/// A square window holding every point, with a margin.
fn window(pts: &[f32]) -> (f64, f64) {
    let (lo, hi) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v as f64), b.max(v as f64)));
    if !(lo.is_finite() && hi.is_finite()) {
        return (-1.0, 1.0);
    }
    let m = ((hi - lo) * 0.05).max(1e-3);
    (lo - m, hi + m)
}

/// Generated images drawn per generator call when many are asked for.
pub(crate) const SAMPLE_CHUNK: usize = 500;

/// `n` generated images drawn `SAMPLE_CHUNK` at a time by `draw(start, count)` (values in [0, 1]),
/// as 8-bit values (as their PNG files hold them), with a "samples" progress bar when asked. The
/// chunks start at the same indices whatever `n`, so a grid, a folder and the sample metrics
/// drawn with one seed hold the same images.
pub(crate) fn draw_pixels(
    n: usize,
    progress: Option<&dyn EventSink>,
    mut draw: impl FnMut(usize, usize) -> ImageBatch,
) -> Vec<f32> {
    let mut bar = progress.map_or_else(Progress::hidden, |e| e.progress("samples", n as u64, 0));
    let mut pixels = Vec::new();
    for start in (0..n).step_by(SAMPLE_CHUNK) {
        let k = SAMPLE_CHUNK.min(n - start);
        pixels.extend(draw(start, k).data.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round()));
        bar.update((start + k) as u64, "images");
    }
    bar.finish();
    pixels
}

/// Images on the host in [0, 1] for drawing; `symmetric` data ([-1, 1]) is mapped there first.
pub(crate) fn host_images(t: burn::Tensor<4>, symmetric: bool) -> ImageBatch {
    let [n, c, h, w] = t.dims();
    let t = if symmetric { (t + 1.0) * 0.5 } else { t };
    ImageBatch::new(genlab_core::tensors::to_f32_vec(t), n, c, h, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_against_the_family() {
        let gan = Capabilities { classes: Some(10), ..Capabilities::plain(OutputKind::Images) };
        let mut r = GenerateRequest::new(4, 0);
        assert!(r.check("gan", &gan).is_ok());
        r.class = Some(12);
        assert_eq!(r.check("gan", &gan).unwrap_err().to_string(), "class 12: the run has 10 classes (0..10)");
        r.class = None;
        r.temperature = Some(0.5);
        assert_eq!(
            r.check("gan", &gan).unwrap_err().to_string(),
            "temperature: the gan family has no sampling temperature"
        );
        let flow = Capabilities { temperature: true, ..Capabilities::plain(OutputKind::Images) };
        assert!(r.check("flow", &flow).is_ok());
        r.temperature = Some(-1.0);
        assert!(r.check("flow", &flow).unwrap_err().to_string().contains("expected a finite number >= 0"));
        let r = GenerateRequest { prompt: Some("To be".into()), ..GenerateRequest::new(1, 0) };
        assert_eq!(
            r.check("vae", &Capabilities::plain(OutputKind::Images)).unwrap_err().to_string(),
            "prompt: the vae family takes no prompt"
        );
        let r = GenerateRequest::new(1, 0);
        assert!(r.check("classifier", &Capabilities::default()).unwrap_err().to_string().contains("not generative"));
    }
}
