//! The VQ-VAE prior family, a second stage: the GPT of the language-model family trained on the
//! code grids a finished VQ-VAE run (`[stage1]`) gives the training images, read row by row after
//! a start token (the image's class, with `conditional = true`); images are drawn by sampling a
//! grid code by code (temperature, top-k, top-p over the codes) and decoding it with the first
//! stage's decoder. Judged by the perplexity of the evaluation split's codes and, with
//! `eval.metric_samples`, by the shared sample metrics of its decoded samples.

use crate::data::{Data, DataFacts};
use crate::error::{PipelineError, Result};
use crate::evaluation::{EvalContext, Evaluation, LossCurve};
use crate::experiment::{Experiment, KeyError};
use crate::families::vqvae::VqVaeFamily;
use crate::family::{model_error, Batches, Family, FamilyCard, FamilyOptions, PeriodicContext, Section};
use crate::generate::{draw_pixels, host_images, Capabilities, GenerateRequest, Generated, Images, OutputKind};
use crate::metric::Metric;
use burn::tensor::Device;
use genlab_core::events::EventSink;
use genlab_core::grid::save_grid;
use genlab_core::tensors::{to_f32_vec, to_i64_vec};
use genlab_core::SeededRng;
use genlab_data::{BatchLoader, BatchSource, DataKind, ImageSet};
use genlab_models::hybrid::code_prior::CodePrior;
use genlab_models::lm::gpt::GptConfig;
use genlab_models::lm::sampling::Sampling;
use genlab_models::vqvae::VqVae;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// The sampler's stream.
const SAMPLE_STREAM: u64 = 0x9c0d;

/// The prior's own keys in `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorOptions {
    /// One start token per class of the data (the image's label), so a request may ask a class.
    #[serde(default)]
    pub conditional: bool,
    /// Sampling temperature of the grid, the sample metrics and `genlab sample`.
    #[serde(default = "one")]
    pub temperature: f64,
    /// Draw each code among the `top_k` most likely only.
    #[serde(default)]
    pub top_k: Option<usize>,
}

fn one() -> f64 {
    1.0
}

impl FamilyOptions for PriorOptions {
    const KEYS: &'static [&'static str] = &["conditional", "temperature", "top_k"];
}

pub struct PriorFamily {
    gpt: GptConfig,
    options: PriorOptions,
    classes: usize,
    symmetric: bool,
    exp: Experiment,
}

/// Code grids of images, `tokens` codes each, with each image's start token.
pub struct CodeGrids {
    pub grids: Vec<u32>,
    pub starts: Vec<u32>,
    pub tokens: usize,
}

impl CodeGrids {
    fn len(&self) -> usize {
        self.starts.len()
    }
}

/// The code grids of `rows` of `set` under `vqvae`; with `by_class`, each image's start token is
/// its label, else every image's is 0.
fn encode(vqvae: &VqVae, set: &ImageSet, rows: &[usize], exp: &Experiment, by_class: bool, device: &Device, events: &dyn EventSink) -> CodeGrids {
    let (grids, labels) = crate::stages::encode_rows(set, rows, exp, device, events, |x| {
        to_i64_vec(vqvae.encode(x)).into_iter().map(|c| c as u32).collect()
    });
    let starts = match labels {
        Some(l) if by_class => l,
        _ => vec![0; rows.len()],
    };
    CodeGrids { grids, starts, tokens: vqvae.tokens() }
}

/// Shuffled training windows `[start, codes...]`, resumable.
struct CodeBatches {
    grids: Arc<CodeGrids>,
    codes: u32,
    loader: BatchLoader,
}

impl BatchSource for CodeBatches {
    type Batch = burn::Tensor<2, burn::tensor::Int>;

    fn next_batch(&mut self, device: &Device) -> Self::Batch {
        let rows = self.loader.next_batch();
        let t = self.grids.tokens;
        let v: Vec<i64> = rows
            .iter()
            .flat_map(|&r| {
                let start = i64::from(self.codes + self.grids.starts[r]);
                std::iter::once(start).chain(self.grids.grids[r * t..(r + 1) * t].iter().map(|&c| i64::from(c)))
            })
            .collect();
        burn::Tensor::from_data(burn::tensor::TensorData::new(v, [rows.len(), t + 1]), device)
    }

    fn state(&self) -> Value {
        json!({ "loader": self.loader.state() })
    }

    fn restore(&mut self, state: Value) -> std::result::Result<(), String> {
        let s = serde_json::from_value(state["loader"].clone()).map_err(|e| format!("loader state: {e}"))?;
        self.loader.restore(s)
    }
}

/// Mean NLL of `set`'s codes under `m`, nats per code, `batch` grids at a time.
fn code_nll(m: &CodePrior, set: &CodeGrids, batch: usize, device: &Device) -> f64 {
    let mut total = 0.0f64;
    let t = set.tokens;
    for s in (0..set.len()).step_by(batch.max(1)) {
        let e = (s + batch).min(set.len());
        let w = m.windows(&set.grids[s * t..e * t], &set.starts[s..e], device);
        total += to_f32_vec(m.loss(w, None))[0] as f64 * (e - s) as f64;
    }
    total / set.len().max(1) as f64
}

impl PriorFamily {
    fn sampling(&self, r: &GenerateRequest) -> Sampling {
        Sampling {
            temperature: r.temperature.unwrap_or(self.options.temperature),
            top_k: r.top_k.or(self.options.top_k),
            top_p: r.top_p,
            repetition_penalty: 1.0,
            watermark: None,
        }
    }

    fn start_of(&self, class: Option<usize>, i: usize) -> u32 {
        match (self.options.conditional, class) {
            (false, _) => 0,
            (true, Some(c)) => c as u32,
            (true, None) => (i % self.classes.max(1)) as u32,
        }
    }

    fn stage1(&self, device: &Device) -> Result<crate::stages::Stage1<VqVaeFamily>> {
        crate::stages::open::<VqVaeFamily>(&self.exp, device)
    }

    /// The images of a grid of `n` samples (a class per row when conditional).
    fn sample_grid(&self, m: &CodePrior, n: usize, path: &std::path::Path) -> Result<()> {
        let cols = if self.options.conditional { self.classes.max(1) } else { (n as f64).sqrt().ceil() as usize };
        let starts: Vec<u32> = (0..n).map(|i| self.start_of(None, i)).collect();
        let mut rng = SeededRng::stream(self.exp.eval.seed, SAMPLE_STREAM);
        let grids = m.sample_codes(&starts, &self.sampling(&GenerateRequest::default()), &mut rng);
        save_grid(&host_images(m.decode(&grids), self.symmetric), cols, path)?;
        Ok(())
    }

    fn evaluation_codes(&self, m: &CodePrior, data: &Data, n: Option<usize>, events: &dyn EventSink, device: &Device) -> Result<CodeGrids> {
        let s = data.images()?;
        let rows: Vec<usize> = s.eval_rows.iter().copied().take(n.unwrap_or(usize::MAX)).collect();
        Ok(encode(&m.vqvae, &s.eval, &rows, &self.exp, self.options.conditional, device, events))
    }
}

impl Family for PriorFamily {
    type Network = GptConfig;
    type Options = PriorOptions;
    type Model = CodePrior;
    type Validation = CodeGrids;

    const CARD: FamilyCard = FamilyCard {
        name: "vqvae_prior",
        summary: "a GPT prior over a finished VQ-VAE run's code grids ([stage1]), decoded to images by that VQ-VAE",
        data: &[DataKind::Images],
    };
    const STAGE1: Option<&'static str> = Some("vqvae");

    fn check(s: &Section<GptConfig, PriorOptions>, _: &Experiment) -> Result<(), KeyError> {
        s.network.check().map_err(model_error)?;
        let t = s.options.temperature;
        if !(t >= 0.0 && t.is_finite()) {
            return Err(("model.temperature".into(), format!(" = {t}: expected a finite number >= 0")));
        }
        if s.options.top_k == Some(0) {
            return Err(("model.top_k".into(), " = 0: expected at least 1".into()));
        }
        Ok(())
    }

    fn metrics(_: &Section<GptConfig, PriorOptions>, _: DataKind) -> Vec<Metric> {
        vec![Metric::Perplexity]
    }

    fn output(_: &Section<GptConfig, PriorOptions>, _: DataKind) -> OutputKind {
        OutputKind::Images
    }

    fn new(s: Section<GptConfig, PriorOptions>, exp: &Experiment, facts: &DataFacts) -> Self {
        PriorFamily {
            gpt: s.network,
            options: s.options,
            classes: facts.class_names.len(),
            symmetric: exp.symmetric(),
            exp: exp.clone(),
        }
    }

    fn check_data(&self, data: &Data) -> Result<()> {
        if self.options.conditional {
            data.images()?.check_labels("model.conditional = true")?;
        }
        Ok(())
    }

    /// The GPT over the first stage's codes, with that stage's VQ-VAE, checked to read this
    /// experiment's data and to fit its grid in the GPT's block.
    fn init(&self, seed: u64, device: &Device) -> Result<CodePrior> {
        let first = self.stage1(device)?;
        let named = format!("stage1.run = \"{}\"", first.dir.display());
        crate::stages::same_data(&first, &self.exp)?;
        let vqvae = first.model;
        let [h, w] = vqvae.grid;
        if self.gpt.block_size < vqvae.tokens() {
            return Err(PipelineError::Config(format!(
                "model.block_size = {}: the first stage's VQ-VAE ({named}) gives {h}x{w} code grids, {} tokens; expected at least {}",
                self.gpt.block_size,
                vqvae.tokens(),
                vqvae.tokens()
            )));
        }
        let starts = if self.options.conditional { self.classes.max(1) } else { 1 };
        let gpt = self.gpt.init(vqvae.codebook_size() + starts, seed, device)?;
        Ok(CodePrior::new(gpt, vqvae, starts))
    }

    /// Weight decay on the GPT's matrices and embeddings only, as the language models group it.
    fn optimizers(&self, exp: &Experiment) -> genlab_train::Optimizers {
        crate::language::matrix_decay_optimizers(exp)
    }

    fn batches(&self, data: &Data, exp: &Experiment) -> Result<Batches<CodePrior>> {
        let device = exp.train.device.device()?;
        let first = self.stage1(&device)?;
        let s = data.images()?;
        let events = genlab_core::events::terminal();
        let grids = encode(&first.model, &s.train, &s.train_rows, exp, self.options.conditional, &device, &*events);
        let t = &exp.train;
        let loader = BatchLoader::new((0..grids.len()).collect(), t.batch_size, true, t.drop_last, t.seed);
        Ok(Box::new(CodeBatches { codes: first.model.codebook_size() as u32, grids: Arc::new(grids), loader }))
    }

    fn validation_set(&self, data: &Data, exp: &Experiment, events: &dyn EventSink) -> Result<CodeGrids> {
        let device = exp.train.device.device()?;
        let first = self.stage1(&device)?;
        let s = data.images()?;
        let rows: Vec<usize> = s.eval_rows.iter().copied().take(exp.eval.periodic_examples).collect();
        Ok(encode(&first.model, &s.eval, &rows, exp, self.options.conditional, &device, events))
    }

    fn validate(&self, step: u64, m: &CodePrior, set: &CodeGrids, cx: &PeriodicContext<'_>) -> Result<Vec<(&'static str, f64)>> {
        let nll = code_nll(m, set, self.exp.eval.batch_size, cx.device);
        self.sample_grid(m, self.exp.eval.samples, &cx.run_dir.join(format!("samples/step-{step:06}.png")))?;
        Ok(vec![("val_loss", nll), ("val_perplexity", nll.exp())])
    }

    fn evaluate(&self, m: &CodePrior, data: &Data, cx: &EvalContext<'_>) -> Result<Evaluation> {
        let set = self.evaluation_codes(m, data, cx.exp.eval.examples, &**cx.events, &cx.device)?;
        let nll = code_nll(m, &set, cx.exp.eval.batch_size, &cx.device);
        let per_image_bits = nll * set.tokens as f64 / std::f64::consts::LN_2;
        cx.events.message(&format!(
            "test codes: {nll:.4} nats per code (perplexity {:.2}), {per_image_bits:.1} bits per image, {} images",
            nll.exp(),
            set.len()
        ));
        let rel = "samples/samples.png";
        self.sample_grid(m, cx.exp.eval.samples, &cx.run_dir.join(rel))?;
        let what = if self.options.conditional { "Samples, one class per column" } else { "Samples" };
        let figures = vec![(format!("{what}: codes drawn by the prior, decoded by the VQ-VAE"), PathBuf::from(rel))];
        let first = self.exp.stage1.as_ref().and_then(|s| s.run.clone()).unwrap_or_default();
        let mut s = String::new();
        let _ = writeln!(s, "## Stages\n");
        let _ = writeln!(
            s,
            "1. VQ-VAE: [{}]({}) (its codes, codebook and decoder, frozen)",
            first.display(),
            crate::stages::report_link(cx.run_dir, &first)
        );
        let _ = writeln!(s, "2. this run: the GPT prior over its {}x{} code grids\n", m.vqvae.grid[0], m.vqvae.grid[1]);
        let split = crate::report::split_name(cx.exp);
        let _ = writeln!(s, "## Codes of {split} under the prior\n\n| metric | value |\n|---|---|");
        let _ = writeln!(s, "| NLL (nats per code) | {nll:.4} |");
        let _ = writeln!(s, "| perplexity (per code) | {:.2} |", nll.exp());
        let _ = writeln!(s, "| bits per image ({} codes) | {per_image_bits:.1} |", set.tokens);
        let _ = writeln!(s, "| images | {} |\n", set.len());
        let _ = writeln!(
            s,
            "Protocol: {} weights of step {}; each evaluation image encoded by the first stage to its nearest codes, read row by row after its start token; \
             the NLL is the mean over codes of -log p(code | the codes before it). Samples: codes drawn at temperature {}{}, decoded by the first stage's decoder.\n",
            cx.exp.weights_word(),
            cx.step,
            self.options.temperature,
            self.options.top_k.map(|k| format!(", top-k {k}")).unwrap_or_default()
        );
        Ok(Evaluation {
            metrics: vec![(Metric::Perplexity, nll.exp())],
            log: vec![("nll_nats_per_code", nll.into()), ("bits_per_image", per_image_bits.into()), ("examples", set.len().into())],
            section: s,
            record: json!({ "nll_nats_per_code": nll, "bits_per_image": per_image_bits, "examples": set.len(), "stage1": first }),
            figures,
            summary: format!("code perplexity {:.2} ({per_image_bits:.1} bits per image)", nll.exp()),
            drawn: None,
        })
    }

    fn describe(&self) -> String {
        let g = &self.gpt;
        format!(
            "GPT prior over VQ-VAE codes: {} layers, {} heads, width {}, block {}, dropout {}{}",
            g.layers,
            g.heads,
            g.width,
            g.block_size,
            g.dropout,
            if self.options.conditional { ", class start tokens" } else { "" }
        )
    }

    fn loss_curve(&self) -> LossCurve {
        LossCurve::train_and_validation("Loss: cross-entropy per code".into(), "nats", "val_loss", 1.0)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            classes: self.options.conditional.then_some(self.classes),
            temperature: true,
            top_k: true,
            top_p: true,
            ..Capabilities::plain(OutputKind::Images)
        }
    }

    /// Codes are drawn on the device the model lives on.
    fn generate(&self, m: &CodePrior, r: &GenerateRequest, _: &Device, progress: Option<&dyn EventSink>) -> Result<Generated> {
        let sampling = self.sampling(r);
        let mut rng = SeededRng::stream(r.seed, SAMPLE_STREAM);
        let pixels = draw_pixels(r.count, progress, |start, k| {
            let starts: Vec<u32> = (start..start + k).map(|i| self.start_of(r.class, i)).collect();
            let grids = m.sample_codes(&starts, &sampling, &mut rng);
            host_images(m.decode(&grids), self.symmetric)
        });
        Ok(Generated::Images(Images {
            pixels,
            n: r.count,
            shape: m.vqvae.shape,
            description: format!("code grids drawn by the prior ({sampling:?}), decoded by the VQ-VAE, quantised to 8 bits"),
            seed: r.seed,
        }))
    }
}
