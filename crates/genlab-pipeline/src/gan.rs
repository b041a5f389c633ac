//! The GAN's part of the pipeline: training on the one trainer with two optimisers, sample grids
//! from fixed noise at every evaluation step, a mode-collapse monitor (the class histogram of
//! generated digits under the installed MNIST LeNet, and its entropy), and the evaluation: the
//! sample metrics and, for a conditional GAN, how often a requested class is generated.

use crate::error::Result;
use crate::experiment::{Experiment, GoalMetric, ModelConfig};
use crate::images::{sample_in_chunks, ImageBatches, LabelledBatches, Splits};
use crate::plots::{line_plot, Series};
use crate::report::{goal_verdict, write_report, LossCurve, ReportInputs};
use crate::run::{evaluate_trained, train, EvalContext, Finished, RunDir};
use crate::sample_metrics::{report_section, sample_metrics_if_asked, Generated, SampleMetrics};
use burn::tensor::Device;
use burn::Tensor;
use genlab_core::grid::{save_grid, save_images, ImageBatch};
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;
use genlab_data::DatasetName;
use genlab_eval::lenet::{LenetExtractor, LENET_INPUT, MNIST_LENET_FILE};
use genlab_models::gan::{Gan, GanBatch};
use genlab_train::{BatchSource, Optimizer, Optimizers};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The fixed noise of the sample grids.
const FIXED_STREAM: u64 = 0xf1ed;
/// The samples' stream (metrics, `genlab sample`).
const SAMPLE_STREAM: u64 = 0x5a40;
/// Samples of the collapse monitor at each evaluation step.
const MONITOR_SAMPLES: usize = 1000;

/// Training batches: images, with labels for a conditional GAN.
enum GanBatches {
    Plain(ImageBatches),
    Labelled(LabelledBatches),
}

impl BatchSource for GanBatches {
    type Batch = GanBatch;

    fn next_batch(&mut self, device: &Device) -> GanBatch {
        match self {
            GanBatches::Plain(b) => (b.next_batch(device), None),
            GanBatches::Labelled(b) => {
                let (x, y) = b.next_batch(device);
                (x, Some(y))
            }
        }
    }

    fn state(&self) -> serde_json::Value {
        match self {
            GanBatches::Plain(b) => b.state(),
            GanBatches::Labelled(b) => b.state(),
        }
    }

    fn restore(&mut self, state: serde_json::Value) -> std::result::Result<(), String> {
        match self {
            GanBatches::Plain(b) => b.restore(state),
            GanBatches::Labelled(b) => b.restore(state),
        }
    }
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

/// `n` samples (of `labels`' classes, when given) drawn from `rng`, in chunks handed to `sink`.
fn sample_chunks(
    gan: &Gan,
    n: usize,
    labels: Option<&[usize]>,
    rng: &mut SeededRng,
    device: &Device,
    progress: bool,
    sink: impl FnMut(ImageBatch, usize) -> Result<()>,
) -> Result<()> {
    let draw = |start: usize, k: usize| host(gan.sample(k, labels.map(|l| &l[start..start + k]), rng, device));
    sample_in_chunks(n, progress, draw, sink)
}

/// `n` samples as 8-bit values, as their PNG files hold them.
fn sample_pixels(
    gan: &Gan,
    n: usize,
    labels: Option<&[usize]>,
    seed: u64,
    device: &Device,
    progress: bool,
) -> Result<Vec<f32>> {
    let mut rng = SeededRng::stream(seed, SAMPLE_STREAM);
    let mut pixels = Vec::new();
    sample_chunks(gan, n, labels, &mut rng, device, progress, |b, _| {
        pixels.extend(b.data.iter().map(|v| (v * 255.0).round()));
        Ok(())
    })?;
    Ok(pixels)
}

/// A grid of `n` samples from the fixed noise of `seed` (the same images at every step).
pub fn fixed_grid(gan: &Gan, n: usize, seed: u64, device: &Device, path: &Path) -> Result<()> {
    let labels = cycling_labels(gan, n);
    let x = gan.sample(n, labels.as_deref(), &mut SeededRng::stream(seed, FIXED_STREAM), device);
    let cols = gan.classes().unwrap_or((n as f64).sqrt().ceil() as usize);
    save_grid(&host(x), cols, path)?;
    Ok(())
}

/// `genlab sample` for a GAN: `n` samples of `class` (conditional), as a grid or PNG files.
pub fn sample_out(
    gan: &Gan,
    n: usize,
    seed: u64,
    class: Option<usize>,
    device: &Device,
    out: &Path,
    folder: bool,
) -> Result<()> {
    let labels: Option<Vec<usize>> = match class {
        Some(c) => Some(vec![c; n]),
        None => cycling_labels(gan, n),
    };
    let mut rng = SeededRng::stream(seed, SAMPLE_STREAM);
    if folder {
        return sample_chunks(gan, n, labels.as_deref(), &mut rng, device, true, |b, start| {
            Ok(save_images(&b, start, out)?)
        });
    }
    let mut all = Vec::new();
    sample_chunks(gan, n, labels.as_deref(), &mut rng, device, false, |b, _| {
        all.extend(b.data);
        Ok(())
    })?;
    let [c, h, w] = gan.image_shape();
    save_grid(&ImageBatch::new(all, n, c, h, w), (n as f64).sqrt().ceil() as usize, out)?;
    Ok(())
}

/// What the MNIST LeNet says of generated digits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassStats {
    pub samples: usize,
    /// Fraction of samples per predicted class.
    pub histogram: Vec<f64>,
    /// Entropy of the histogram, nats (ln 10 = 2.303 for uniform digits); a collapse lowers it.
    pub entropy: f64,
    /// The largest class's fraction.
    pub top_fraction: f64,
    /// Conditional GANs: the fraction of samples the classifier puts in the class they were asked for.
    pub conditional_accuracy: Option<f64>,
}

/// The class statistics of `n` generated images (8-bit `pixels`), asked for `labels` when
/// conditional.
fn class_stats(net: &LenetExtractor, pixels: &[f32], labels: Option<&[usize]>, n: usize) -> ClassStats {
    let predicted = net.classify(pixels, n);
    let k = net.card.classes;
    let mut counts = vec![0usize; k];
    predicted.iter().for_each(|&p| counts[p] += 1);
    let histogram: Vec<f64> = counts.iter().map(|&c| c as f64 / n as f64).collect();
    let entropy = -histogram.iter().filter(|&&p| p > 0.0).map(|p| p * p.ln()).sum::<f64>();
    let top_fraction = histogram.iter().copied().fold(0.0, f64::max);
    let conditional_accuracy =
        labels.map(|l| l.iter().zip(&predicted).filter(|(a, b)| a == b).count() as f64 / n as f64);
    ClassStats { samples: n, histogram, entropy, top_fraction, conditional_accuracy }
}

/// The MNIST LeNet when the data are MNIST digits and the network is installed.
fn monitor_network(
    exp: &Experiment,
    shape: [usize; 3],
    device: &Device,
) -> std::result::Result<LenetExtractor, String> {
    if exp.data.dataset != genlab_data::DatasetSource::Named(DatasetName::Mnist) || shape != LENET_INPUT {
        return Err(format!("the MNIST classifier does not know the classes of {}", exp.data.dataset.describe()));
    }
    LenetExtractor::load(&genlab_eval::weights::weights_dir().join(MNIST_LENET_FILE), device).map_err(|e| e.to_string())
}

/// The two optimisers: `train.optimizer` for the generator, `train.discriminator_optimizer` (or
/// the same settings) for the discriminator; clipping applies to both.
fn optimizers(exp: &Experiment) -> Optimizers {
    let t = &exp.train;
    Optimizers::new(vec![
        Optimizer::new("generator", t.optimizer, t.clip_grad_norm),
        Optimizer::new("discriminator", t.discriminator_optimizer.unwrap_or(t.optimizer), t.clip_grad_norm),
    ])
}

/// Phases 4 to 7 of a GAN run.
pub(crate) fn run_phases(
    exp: &Experiment,
    run: &mut RunDir,
    model: Gan,
    batches: ImageBatches,
    splits: &Splits,
    device: &Device,
) -> Result<Finished> {
    let mut batches = if model.conditional() {
        GanBatches::Labelled(LabelledBatches::new(batches)?)
    } else {
        GanBatches::Plain(batches)
    };
    let e = &exp.eval;
    let eval_device = device.clone().inner();
    let monitor = monitor_network(exp, run.info.data_shape, &eval_device);
    if let Err(why) = &monitor {
        eprintln!("note: no mode-collapse monitor during training: {why}");
    }
    let samples_dir = run.dir.join("samples");
    let trained = train(exp, run, model, optimizers(exp), &mut batches, device, |step, m: &Gan| {
        let fail = |err: crate::PipelineError| genlab_train::TrainError::Eval { step, reason: err.to_string() };
        fixed_grid(m, e.samples, e.seed, &eval_device, &samples_dir.join(format!("step-{step:06}.png")))
            .map_err(fail)?;
        let Ok(net) = &monitor else { return Ok(vec![]) };
        let labels = cycling_labels(m, MONITOR_SAMPLES);
        let pixels = sample_pixels(m, MONITOR_SAMPLES, labels.as_deref(), e.seed, &eval_device, false).map_err(fail)?;
        let s = class_stats(net, &pixels, labels.as_deref(), MONITOR_SAMPLES);
        let mut out =
            vec![("class_entropy".to_string(), s.entropy), ("top_class_fraction".to_string(), s.top_fraction)];
        out.extend(s.conditional_accuracy.map(|a| ("conditional_accuracy".to_string(), a)));
        Ok(out)
    })?;
    evaluate_trained(exp, run, trained, eval_device, |cx, m| eval_and_report(cx, m, splits))
}

/// What `eval.json` holds for a GAN.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GanEval {
    pub step: u64,
    pub classes: Option<ClassStats>,
    /// Why the class statistics are missing.
    pub classes_skipped: Option<String>,
    pub samples: Option<SampleMetrics>,
    pub samples_skipped: Option<String>,
}

/// The evaluation: sample grid, class statistics, sample metrics; writes `eval.json`, a
/// `metrics.jsonl` entry and `report.md`.
pub(crate) fn eval_and_report(cx: &EvalContext<'_>, gan: &Gan, splits: &Splits) -> Result<(String, Option<String>)> {
    let exp = cx.exp;
    let e = &exp.eval;
    let started = std::time::Instant::now();
    let mut figs = Vec::new();
    fixed_grid(gan, e.samples, e.seed, &cx.device, &cx.run_dir.join("samples/samples.png"))?;
    figs.push((
        if gan.conditional() { "Samples, one column per class (fixed noise)" } else { "Samples (fixed noise)" }
            .to_string(),
        PathBuf::from("samples/samples.png"),
    ));
    // One draw serves the class statistics and the sample metrics: the first `metric_samples` of
    // `n` seeded samples are the images a draw of `metric_samples` alone gives.
    let n = e.metric_samples.max(MONITOR_SAMPLES);
    let labels = cycling_labels(gan, n);
    let mut drawn: Option<Vec<f32>> = None;
    let (classes, classes_skipped) = match monitor_network(exp, cx.info.data_shape, &cx.device) {
        Ok(net) => {
            let pixels = drawn.insert(sample_pixels(gan, n, labels.as_deref(), e.seed, &cx.device, true)?);
            let s = class_stats(&net, pixels, labels.as_deref(), n);
            eprintln!(
                "classes of {n} samples: entropy {:.3} nats (uniform: {:.3}), largest class {:.3}{}",
                s.entropy,
                (net.card.classes as f64).ln(),
                s.top_fraction,
                s.conditional_accuracy.map_or(String::new(), |a| format!(", conditional accuracy {a:.4}"))
            );
            (Some(s), None)
        }
        Err(why) => (None, Some(why)),
    };
    let (samples, samples_skipped) = sample_metrics_if_asked(cx, splits, &mut figs, || {
        let mut pixels = match drawn.take() {
            Some(p) => p,
            None => sample_pixels(gan, e.metric_samples, labels.as_deref(), e.seed, &cx.device, true)?,
        };
        pixels.truncate(e.metric_samples * cx.info.data_shape.iter().product::<usize>());
        Ok(Generated {
            pixels,
            n: e.metric_samples,
            shape: cx.info.data_shape,
            description: if gan.conditional() {
                "generator samples, classes in turn, quantised to 8 bits".into()
            } else {
                "generator samples, quantised to 8 bits".into()
            },
            seed: e.seed,
        })
    })?;
    let monitor_plot = cx.run_dir.join("plots/classes.png");
    let metrics_log = genlab_train::metrics::read_metrics(&cx.run_dir.join("metrics.jsonl"))?;
    let series = |key: &str| -> Vec<(f64, f64)> {
        metrics_log
            .iter()
            .filter(|m| m.get("split").and_then(|s| s.as_str()) == Some("eval"))
            .filter_map(|m| Some((m.get("step")?.as_f64()?, m.get(key)?.as_f64()?)))
            .collect()
    };
    if !series("class_entropy").is_empty() {
        line_plot(
            &monitor_plot,
            "Mode-collapse monitor: generated digits under the MNIST LeNet",
            "nats / fraction",
            &[
                Series { name: "class entropy (nats)", points: series("class_entropy") },
                Series { name: "largest class fraction", points: series("top_class_fraction") },
                Series { name: "conditional accuracy", points: series("conditional_accuracy") },
            ],
        )?;
        figs.push(("The class histogram's entropy during training".into(), PathBuf::from("plots/classes.png")));
    }
    let eval = GanEval { step: cx.step, classes, classes_skipped, samples, samples_skipped };
    genlab_core::atomic::write_atomic(
        &cx.run_dir.join("eval.json"),
        &serde_json::to_vec_pretty(&eval).expect("metrics should serialise"),
    )?;
    let mut fields: Vec<(&str, serde_json::Value)> = vec![];
    if let Some(c) = &eval.classes {
        fields.push(("class_entropy", c.entropy.into()));
        fields.push(("top_class_fraction", c.top_fraction.into()));
        if let Some(a) = c.conditional_accuracy {
            fields.push(("conditional_accuracy", a.into()));
        }
    }
    if let Some(m) = &eval.samples {
        fields.extend(m.log_fields());
    }
    cx.log_evaluation(fields)?;
    let goal = goal_verdict(exp, |g| match g {
        GoalMetric::Fid => eval.samples.as_ref().map(|m| m.fid),
        _ => None,
    });
    let mut metrics = String::new();
    match (&eval.classes, &eval.classes_skipped) {
        (Some(c), _) => {
            let _ = writeln!(metrics, "## Classes of the samples\n\n| metric | value |\n|---|---|");
            let _ = writeln!(metrics, "| samples classified by the MNIST LeNet | {} |", c.samples);
            let _ = writeln!(
                metrics,
                "| entropy of the class histogram (nats; 2.303 for uniform digits) | {:.4} |",
                c.entropy
            );
            let _ = writeln!(metrics, "| largest class fraction | {:.4} |", c.top_fraction);
            if let Some(a) = c.conditional_accuracy {
                let _ = writeln!(metrics, "| samples classified as the class they were asked for | {a:.4} |");
            }
            let h: Vec<String> = c.histogram.iter().enumerate().map(|(k, p)| format!("{k}: {p:.3}")).collect();
            let _ = writeln!(metrics, "| histogram | {} |\n", h.join(", "));
        }
        (None, Some(why)) => {
            let _ = writeln!(metrics, "## Classes of the samples\n\nNot measured: {why}.\n");
        }
        (None, None) => {}
    }
    metrics.push_str(&report_section(exp, eval.samples.as_ref(), eval.samples_skipped.as_deref(), cx.run_dir));
    let ModelConfig::Gan(g) = &exp.model else { unreachable!("a GAN run holds a GAN config") };
    let model = format!(
        "DCGAN, {:?} loss, latent {}, generator {:?}, discriminator {:?}{}{}, n_critic {}",
        g.loss,
        g.latent_dim,
        g.generator_channels,
        g.discriminator_channels,
        if g.spectral_norm { ", spectral norm" } else { "" },
        if g.conditional { ", conditional (label embedding, projection discriminator)" } else { "" },
        g.n_critic
    );
    let seconds = started.elapsed().as_secs_f64();
    let text = goal.as_ref().map(|v| v.text.clone());
    write_report(&ReportInputs {
        exp,
        info: cx.info,
        run_dir: cx.run_dir,
        goal,
        metrics,
        model,
        loss: LossCurve { title: "Discriminator loss".into(), unit: "loss", val_key: "d_loss_eval", val_sign: 1.0 },
        eval_seconds: seconds,
        figures: &figs,
        wall_seconds: cx.started.map(|t| t.elapsed().as_secs_f64()),
    })?;
    let mut summary = String::from("GAN evaluated");
    if let Some(c) = &eval.classes {
        let _ = write!(summary, "; class entropy {:.3} nats", c.entropy);
        if let Some(a) = c.conditional_accuracy {
            let _ = write!(summary, ", conditional accuracy {a:.4}");
        }
    }
    if let Some(m) = &eval.samples {
        let _ = write!(summary, "; FID {:.4} ({} samples, {})", m.fid, m.protocol.samples, m.protocol.features.network);
    }
    Ok((summary, text))
}
