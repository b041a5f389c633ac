//! The GAN family: DCGAN (Radford et al. 2016, <https://arxiv.org/abs/1511.06434>), optionally
//! conditional with a projection discriminator and spectrally normalised (Miyato et al. 2018), on
//! the one trainer with two optimisers. Sample grids from fixed noise at every evaluation step, a
//! mode-collapse monitor (`monitor.rs`), and the evaluation: the shared sample metrics and, for a
//! conditional GAN, how often a requested class is generated.

mod monitor;

use crate::data::{Data, DataFacts, ImageBatchSource};
use crate::error::Result;
use crate::evaluation::{CurveSeries, EvalContext, Evaluation, LossCurve};
use crate::experiment::{key_and_message, Experiment, KeyError};
use crate::family::{model_error, Batches, Family, FamilyCard, FamilyOptions, PeriodicContext, Section};
use crate::generate::{Capabilities, GenerateRequest, Generated, Images, OutputKind};
use crate::generate::draw_pixels;
use crate::metric::Metric;
use burn::tensor::Device;
use burn::tensor::TensorData;
use burn::Tensor;
use genlab_core::events::EventSink;
use genlab_core::grid::{save_grid, ImageBatch};
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;
use genlab_data::{DataKind, Transform};
use genlab_eval::lenet::LenetExtractor;
use genlab_models::gan::{Gan, GanConfig, DISCRIMINATOR, GENERATOR};
use genlab_train::{Optimizer, OptimizerConfig, Optimizers};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The fixed noise of the sample grids.
const FIXED_STREAM: u64 = 0xf1ed;
/// The samples' stream (metrics, `genlab sample`).
const SAMPLE_STREAM: u64 = 0x5a40;

/// The GAN's own keys in `[model]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GanOptions {
    /// The discriminator's optimiser (`train.optimizer` is the generator's): two learning rates
    /// are TTUR (Heusel et al. 2017). The generator's settings when absent.
    pub discriminator_optimizer: Option<OptimizerConfig>,
}

impl FamilyOptions for GanOptions {
    const KEYS: &'static [&'static str] = &["discriminator_optimizer"];
}

pub struct GanFamily {
    config: GanConfig,
    discriminator_optimizer: Option<OptimizerConfig>,
    shape: [usize; 3],
    classes: usize,
    exp: Experiment,
}

/// The class of each of `n` samples: cycling through the classes for a conditional GAN.
fn cycling_labels(gan: &Gan, n: usize) -> Option<Vec<usize>> {
    let k = gan.classes()?;
    Some((0..n).map(|i| i % k).collect())
}

/// Generator output in [-1, 1] as a host batch in [0, 1].
fn host(t: Tensor<4>) -> ImageBatch {
    let [n, c, h, w] = t.dims();
    ImageBatch::new(to_f32_vec(((t + 1.0) * 0.5).clamp(0.0, 1.0)), n, c, h, w)
}

/// `n` samples of `labels`' classes (when given) as 8-bit values.
fn sample_pixels(
    gan: &Gan,
    n: usize,
    labels: Option<&[usize]>,
    seed: u64,
    device: &Device,
    progress: Option<&dyn EventSink>,
) -> Vec<f32> {
    let mut rng = SeededRng::stream(seed, SAMPLE_STREAM);
    draw_pixels(n, progress, |start, k| host(gan.sample(k, labels.map(|l| &l[start..start + k]), &mut rng, device)))
}

/// What a draw of `class` (or of every class in turn) is, in words.
fn describe_samples(class: Option<usize>, conditional: bool) -> String {
    match (class, conditional) {
        (Some(c), _) => format!("generator samples of class {c}, quantised to 8 bits"),
        (None, true) => "generator samples, classes in turn, quantised to 8 bits".into(),
        (None, false) => "generator samples, quantised to 8 bits".into(),
    }
}

/// A grid of `n` samples from the fixed noise of `seed` (the same images at every step).
fn fixed_grid(gan: &Gan, n: usize, seed: u64, device: &Device, path: &Path) -> Result<()> {
    let labels = cycling_labels(gan, n);
    let x = gan.sample(n, labels.as_deref(), &mut SeededRng::stream(seed, FIXED_STREAM), device);
    let cols = gan.classes().unwrap_or((n as f64).sqrt().ceil() as usize);
    save_grid(&host(x), cols, path)?;
    Ok(())
}

impl Family for GanFamily {
    type Network = GanConfig;
    type Options = GanOptions;
    type Model = Gan;
    /// The MNIST LeNet of the collapse monitor, or why there is none.
    type Validation = std::result::Result<LenetExtractor, String>;

    const CARD: FamilyCard = FamilyCard {
        name: "gan",
        summary: "DCGAN: non-saturating/hinge/Wasserstein losses, spectral norm, conditional (projection), TTUR",
        data: &[DataKind::Images],
    };

    fn check(s: &Section<GanConfig, GanOptions>, exp: &Experiment) -> Result<(), KeyError> {
        s.network.check().map_err(model_error)?;
        if let Some(d) = &s.options.discriminator_optimizer {
            d.validate("model.discriminator_optimizer").map_err(key_and_message)?;
        }
        if !exp.data.transforms.contains(&Transform::ScaleSymmetric) {
            return Err((
                "data.transforms".into(),
                ": the generator ends in tanh, so the images must be in [-1, 1]; add \"scale_symmetric\"".into(),
            ));
        }
        Ok(())
    }

    fn metrics(s: &Section<GanConfig, GanOptions>, _: DataKind) -> Vec<Metric> {
        let mut m = vec![Metric::ClassEntropy];
        if s.network.conditional {
            m.push(Metric::ConditionalAccuracy);
        }
        m
    }

    fn output(_: &Section<GanConfig, GanOptions>, _: DataKind) -> OutputKind {
        OutputKind::Images
    }

    fn new(s: Section<GanConfig, GanOptions>, exp: &Experiment, facts: &DataFacts) -> Self {
        GanFamily {
            config: s.network,
            discriminator_optimizer: s.options.discriminator_optimizer,
            shape: facts.shape,
            classes: facts.class_names.len(),
            exp: exp.clone(),
        }
    }

    fn check_data(&self, data: &Data) -> Result<()> {
        if self.config.conditional {
            data.images()?.check_labels(&self.exp.data.dataset.describe())?;
        }
        Ok(())
    }

    fn init(&self, seed: u64, device: &Device) -> Result<Gan> {
        Ok(self.config.init(self.shape, self.classes, seed, device)?)
    }

    /// `train.optimizer` for the generator, `model.discriminator_optimizer` (or the same
    /// settings) for the discriminator; clipping applies to both.
    fn optimizers(&self, exp: &Experiment) -> Optimizers {
        let t = &exp.train;
        Optimizers::new(vec![
            Optimizer::new(GENERATOR, t.optimizer, t.clip_grad_norm),
            Optimizer::new(DISCRIMINATOR, self.discriminator_optimizer.unwrap_or(t.optimizer), t.clip_grad_norm),
        ])
    }

    fn batches(&self, data: &Data, exp: &Experiment) -> Result<Batches<Gan>> {
        Ok(Box::new(ImageBatchSource::new(data, exp, self.config.conditional)?))
    }

    fn validation_set(&self, _: &Data, exp: &Experiment, events: &dyn EventSink) -> Result<Self::Validation> {
        let net = monitor::network(exp, self.shape, &exp.train.device.device()?);
        if let Err(why) = &net {
            events.message(&format!("note: no mode-collapse monitor during training: {why}"));
        }
        Ok(net)
    }

    fn validate(
        &self,
        step: u64,
        m: &Gan,
        net: &Self::Validation,
        cx: &PeriodicContext<'_>,
    ) -> Result<Vec<(&'static str, f64)>> {
        let e = &self.exp.eval;
        fixed_grid(m, e.samples, e.seed, cx.device, &cx.run_dir.join(format!("samples/step-{step:06}.png")))?;
        let Ok(net) = net else { return Ok(vec![]) };
        let labels = cycling_labels(m, monitor::SAMPLES);
        let pixels = sample_pixels(m, monitor::SAMPLES, labels.as_deref(), e.seed, cx.device, None);
        let s = monitor::class_stats(net, &pixels, labels.as_deref(), monitor::SAMPLES);
        let mut out = vec![("class_entropy", s.entropy), ("top_class_fraction", s.top_fraction)];
        out.extend(s.conditional_accuracy.map(|a| ("conditional_accuracy", a)));
        Ok(out)
    }

    fn evaluate(&self, gan: &Gan, _: &Data, cx: &EvalContext<'_>) -> Result<Evaluation> {
        let e = &cx.exp.eval;
        fixed_grid(gan, e.samples, e.seed, &cx.device, &cx.run_dir.join("samples/samples.png"))?;
        let title =
            if gan.conditional() { "Samples, one column per class (fixed noise)" } else { "Samples (fixed noise)" };
        let mut figures = vec![(title.to_string(), PathBuf::from("samples/samples.png"))];
        // One draw serves the class statistics and the sample metrics (its first
        // `metric_samples` images are what the metrics' own request would draw).
        let n = e.metric_samples.max(monitor::SAMPLES);
        let labels = cycling_labels(gan, n);
        let mut drawn = None;
        let stats = match monitor::network(cx.exp, cx.info.data_shape, &cx.device) {
            Ok(net) => {
                let pixels = sample_pixels(gan, n, labels.as_deref(), e.seed, &cx.device, Some(&**cx.events));
                let s = monitor::class_stats(&net, &pixels, labels.as_deref(), n);
                let description = describe_samples(None, gan.conditional());
                drawn = Some(Images { pixels, n, shape: self.shape, description, seed: e.seed });
                cx.events.message(&format!(
                    "classes of {n} samples: entropy {:.3} nats (uniform: {:.3}), largest class {:.3}{}",
                    s.entropy,
                    (net.card.classes as f64).ln(),
                    s.top_fraction,
                    s.conditional_accuracy.map_or(String::new(), |a| format!(", conditional accuracy {a:.4}"))
                ));
                Ok(s)
            }
            Err(why) => Err(why),
        };
        figures.extend(monitor::figure(cx.run_dir)?);
        Ok(monitor::evaluation(stats, figures, drawn))
    }

    fn describe(&self) -> String {
        let g = &self.config;
        format!(
            "DCGAN, {:?} loss, latent {}, generator {:?}, discriminator {:?}{}{}, n_critic {}",
            g.loss,
            g.latent_dim,
            g.generator_channels,
            g.discriminator_channels,
            if g.spectral_norm { ", spectral norm" } else { "" },
            if g.conditional { ", conditional (label embedding, projection discriminator)" } else { "" },
            g.n_critic
        )
    }

    /// Both players' losses on the training batches (a GAN has no validation loss).
    fn loss_curve(&self) -> LossCurve {
        let series = |name: &str, key| CurveSeries { name: name.into(), split: "train", key, sign: 1.0 };
        LossCurve {
            title: format!("{:?} losses on the training batches", self.config.loss),
            unit: "loss",
            series: vec![series("discriminator", "loss"), series("generator", "g_loss")],
        }
    }

    fn capabilities(&self) -> Capabilities {
        let classes = self.config.conditional.then_some(self.classes);
        Capabilities { classes, latent: Some(self.config.latent_dim), ..Capabilities::plain(OutputKind::Images) }
    }

    fn latents(&self, seed: u64, count: usize) -> Option<Vec<f32>> {
        Some(SeededRng::stream(seed, SAMPLE_STREAM).normal_vec(count * self.config.latent_dim))
    }

    fn generate(
        &self,
        gan: &Gan,
        r: &GenerateRequest,
        device: &Device,
        progress: Option<&dyn EventSink>,
    ) -> Result<Generated> {
        let labels: Option<Vec<usize>> = match r.class {
            Some(c) => Some(vec![c; r.count]),
            None => cycling_labels(gan, r.count),
        };
        // The seed's latents are the noise `sample_pixels` draws from the same stream.
        let d = self.config.latent_dim;
        let z = r.latents.clone().or_else(|| self.latents(r.seed, r.count)).unwrap_or_default();
        let pixels = draw_pixels(r.count, progress, |start, k| {
            let z = Tensor::from_data(TensorData::new(z[start * d..(start + k) * d].to_vec(), [k, d]), device);
            host(gan.decode(z, labels.as_ref().map(|l| &l[start..start + k]), device))
        });
        let description = describe_samples(r.class, gan.conditional());
        Ok(Generated::Images(Images { pixels, n: r.count, shape: self.shape, description, seed: r.seed }))
    }
}
