//! The flow's part of the pipeline. On images: training on uniformly dequantised 8-bit pixels,
//! the exact test log-likelihood in bits per dimension (the papers' definition, see
//! `genlab_models::flow`), samples at the evaluation temperature and across temperatures, and the
//! sample metrics when asked for. On 2-D toy points: the test NLL in nats next to the exact
//! density's, and the density heat map beside samples.

use crate::error::{PipelineError, Result};
use crate::experiment::{Experiment, GoalMetric, ModelConfig};
use crate::images::{sample_in_chunks, EvalImages, ImageBatches, Splits, SAMPLE_CHUNK};
use crate::plots::{density_panels, DensityPanel};
use crate::report::{goal_verdict, split_name, write_report, LossCurve, ReportInputs};
use crate::run::{evaluate_trained, single_optimizer, train, DataFacts, EvalContext, Finished, Mode, RunDir, Target};
use crate::sample_metrics::{report_section, sample_metrics_if_asked, Generated, SampleMetrics};
use burn::module::Module;
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::grid::{save_grid, save_images, ImageBatch};
use genlab_core::progress::Progress;
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;
use genlab_data::{BatchLoader, LoaderState, ToyDistribution};
use genlab_models::flow::{uniform_noise, Flow, FlowArchitecture, FlowConfig};
use genlab_train::BatchSource;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The evaluation's dequantisation noise stream.
const DEQUANT_STREAM: u64 = 0xde9a;
/// The samples' stream.
const SAMPLE_STREAM: u64 = 0x5a3f;
/// Examples of the data-dependent initialisation (Glow's ActNorm).
const INIT_EXAMPLES: usize = 512;
/// Temperatures of the temperature figure.
const TEMPERATURES: [f64; 5] = [0.25, 0.5, 0.7, 0.85, 1.0];

/// Test-set likelihood of a flow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowMetrics {
    /// Mean negative log-likelihood, nats per example (images: of the dequantised pixels on
    /// [0, 256)^D).
    pub nll_nats: f64,
    /// The same in bits per dimension (images only).
    pub bits_per_dim: Option<f64>,
    /// Toy data: the exact density's mean NLL on the same points, and the model's excess over it.
    pub reference_nll_nats: Option<f64>,
    pub examples: usize,
    pub seconds: f64,
}

/// What `eval.json` holds for a flow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowEval {
    pub step: u64,
    pub likelihood: FlowMetrics,
    pub temperature: f64,
    pub samples: Option<SampleMetrics>,
    pub samples_skipped: Option<String>,
}

fn config(exp: &Experiment) -> &FlowConfig {
    match &exp.model {
        ModelConfig::Flow(f) => f,
        _ => unreachable!("a flow run holds a flow config"),
    }
}

fn describe(f: &FlowConfig) -> String {
    let arch = match f.architecture {
        FlowArchitecture::RealNvp => "RealNVP",
        FlowArchitecture::Glow => "Glow",
    };
    format!("{arch} flow, {} scale(s), {} steps per stage, {} hidden filters", f.scales, f.steps, f.hidden)
}

// ---------------------------------------------------------------- images

/// Exact NLL of every example of `set` (8-bit pixels), with one dequantisation draw per pixel
/// from the stream fixed by `seed`.
pub fn evaluate_images(
    flow: &Flow,
    set: &EvalImages,
    batch: usize,
    seed: u64,
    device: &Device,
    label: Option<&str>,
) -> FlowMetrics {
    let started = Instant::now();
    let mut rng = SeededRng::stream(seed, DEQUANT_STREAM);
    let mut total = 0.0f64;
    let chunks = set.n.div_ceil(batch);
    let mut progress = label.map_or_else(Progress::hidden, |l| Progress::new(l, chunks as u64, 0));
    let dims = flow.dims() as f64;
    for c in 0..chunks {
        let (s, e) = (c * batch, ((c + 1) * batch).min(set.n));
        let x = set.tensor(s, e, device);
        let u = uniform_noise(&mut rng, x.dims(), device);
        total -= to_f32_vec(flow.log_prob(x, Some(u)).sum())[0] as f64;
        progress.update(c as u64 + 1, &format!("{:.4} bits/dim", total / e as f64 / dims / std::f64::consts::LN_2));
    }
    progress.finish();
    let nll = total / set.n.max(1) as f64;
    FlowMetrics {
        nll_nats: nll,
        bits_per_dim: Some(nll / dims / std::f64::consts::LN_2),
        reference_nll_nats: None,
        examples: set.n,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Decoded samples (`(x + u) / 256`) as a host batch of 8-bit images: each value floored to the
/// bin it falls in, `/ 255`, so PNG files, grids and the sample metrics all hold the same pixels.
fn host(t: Tensor<4>) -> ImageBatch {
    let [n, c, h, w] = t.dims();
    let v = to_f32_vec(t).into_iter().map(|y| (y * 256.0).floor().clamp(0.0, 255.0) / 255.0).collect();
    ImageBatch::new(v, n, c, h, w)
}

/// `n` samples at `temperature` in chunks, each handed to `sink` with its first index (a progress
/// bar when they take more than one chunk).
fn sample_chunks(
    flow: &Flow,
    n: usize,
    seed: u64,
    temperature: f64,
    device: &Device,
    sink: impl FnMut(ImageBatch, usize) -> Result<()>,
) -> Result<()> {
    let mut rng = SeededRng::stream(seed, SAMPLE_STREAM);
    sample_in_chunks(n, n > SAMPLE_CHUNK, |_, k| host(flow.sample(k, temperature, &mut rng, device)), sink)
}

/// A grid of `n` samples at `temperature`.
pub fn sample_grid(flow: &Flow, n: usize, seed: u64, temperature: f64, device: &Device, path: &Path) -> Result<()> {
    let mut all = Vec::new();
    sample_chunks(flow, n, seed, temperature, device, |b, _| {
        all.extend(b.data);
        Ok(())
    })?;
    let [c, h, w] = flow.shape;
    save_grid(&ImageBatch::new(all, n, c, h, w), (n as f64).sqrt().ceil() as usize, path)?;
    Ok(())
}

/// `n` samples as PNG files in `dir`.
pub fn sample_folder(flow: &Flow, n: usize, seed: u64, temperature: f64, device: &Device, dir: &Path) -> Result<()> {
    sample_chunks(flow, n, seed, temperature, device, |b, start| Ok(save_images(&b, start, dir)?))
}

/// Rows of samples at rising temperatures, each column one latent direction.
fn temperature_figure(flow: &Flow, seed: u64, device: &Device, path: &Path) -> Result<()> {
    let cols = 8;
    let noise = SeededRng::stream(seed, SAMPLE_STREAM).normal_vec(cols * flow.dims());
    let mut all = Vec::new();
    for t in TEMPERATURES {
        let z = Tensor::<2>::from_data(TensorData::new(noise.clone(), [cols, flow.dims()]), device) * t;
        all.extend(host(flow.decode(z)).data);
    }
    let [c, h, w] = flow.shape;
    save_grid(&ImageBatch::new(all, cols * TEMPERATURES.len(), c, h, w), cols, path)?;
    Ok(())
}

/// Glow's ActNorm initialisation from the first training images (a RealNVP flow is unchanged).
fn initialize_images(flow: Flow, splits: &Splits, exp: &Experiment, device: &Device) -> Flow {
    if config(exp).architecture != FlowArchitecture::Glow {
        return flow;
    }
    let rows = &splits.train_rows[..INIT_EXAMPLES.min(splits.train_rows.len())];
    let set = EvalImages::new(&splits.train, rows, &exp.data.transforms, exp.train.seed);
    let x = set.tensor(0, set.n, device);
    let u = uniform_noise(&mut SeededRng::stream(exp.train.seed, DEQUANT_STREAM), x.dims(), device);
    flow.initialize(x, Some(u))
}

/// Phases 4 to 7 of a flow on images.
pub(crate) fn run_images(
    exp: &Experiment,
    run: &mut RunDir,
    model: Flow,
    mut batches: ImageBatches,
    splits: &Splits,
    device: &Device,
) -> Result<Finished> {
    let model = if run.resuming { model } else { initialize_images(model, splits, exp, device) };
    let e = &exp.eval;
    let periodic = EvalImages::periodic(splits, exp);
    let eval_device = device.clone().inner();
    let samples_dir = run.dir.join("samples");
    let trained = train(exp, run, model, single_optimizer(exp), &mut batches, device, |step, m: &Flow| {
        let v = evaluate_images(m, &periodic, e.batch_size, e.seed, &eval_device, None);
        sample_grid(
            m,
            e.samples,
            e.seed,
            e.temperature,
            &eval_device,
            &samples_dir.join(format!("step-{step:06}.png")),
        )
        .map_err(|err| genlab_train::TrainError::Eval { step, reason: err.to_string() })?;
        Ok(vec![("val_bpd".to_string(), v.bits_per_dim.expect("images have bits/dim"))])
    })?;
    evaluate_trained(exp, run, trained, eval_device, |cx, m| eval_images_and_report(cx, m, splits))
}

/// The evaluation protocol on images: exact test bits/dim, sample figures, the sample metrics;
/// writes `eval.json`, a `metrics.jsonl` entry and `report.md`.
pub(crate) fn eval_images_and_report(
    cx: &EvalContext<'_>,
    flow: &Flow,
    splits: &Splits,
) -> Result<(String, Option<String>)> {
    let exp = cx.exp;
    let e = &exp.eval;
    let set = EvalImages::evaluation(splits, exp);
    let likelihood = evaluate_images(flow, &set, e.batch_size, e.seed, &cx.device, Some("evaluate"));
    let bpd = likelihood.bits_per_dim.expect("images have bits/dim");
    eprintln!(
        "test: {bpd:.4} bits/dim ({:.2} nats per image), {} examples, {:.0}s",
        likelihood.nll_nats, likelihood.examples, likelihood.seconds
    );
    let mut figs = Vec::new();
    sample_grid(flow, e.samples, e.seed, e.temperature, &cx.device, &cx.run_dir.join("samples/samples.png"))?;
    figs.push((format!("Samples at temperature {}", e.temperature), PathBuf::from("samples/samples.png")));
    temperature_figure(flow, e.seed, &cx.device, &cx.run_dir.join("samples/temperatures.png"))?;
    figs.push((
        format!("The same latent directions at temperatures {TEMPERATURES:?} (rows)"),
        PathBuf::from("samples/temperatures.png"),
    ));
    let (samples, samples_skipped) = sample_metrics_if_asked(cx, splits, &mut figs, || {
        let mut pixels = Vec::with_capacity(e.metric_samples * flow.dims());
        sample_chunks(flow, e.metric_samples, e.seed, e.temperature, &cx.device, |b, _| {
            pixels.extend(b.data.iter().map(|v| (v * 255.0).round()));
            Ok(())
        })?;
        Ok(Generated {
            pixels,
            n: e.metric_samples,
            shape: flow.shape,
            description: format!("flow samples at temperature {}, floored to their 8-bit bins", e.temperature),
            seed: e.seed,
        })
    })?;
    let eval = FlowEval { step: cx.step, likelihood, temperature: e.temperature, samples, samples_skipped };
    let mut fields: Vec<(&str, serde_json::Value)> = vec![
        ("bits_per_dim", bpd.into()),
        ("nll_nats", eval.likelihood.nll_nats.into()),
        ("examples", eval.likelihood.examples.into()),
    ];
    if let Some(m) = &eval.samples {
        fields.extend(m.log_fields());
    }
    let mut metrics = String::new();
    let _ = writeln!(metrics, "## Likelihood, on {}\n\n| metric | value |\n|---|---|", split_name(exp));
    let _ = writeln!(metrics, "| NLL (bits per dimension) | {bpd:.4} |");
    let _ = writeln!(metrics, "| NLL (nats per image) | {:.2} |", eval.likelihood.nll_nats);
    let _ = writeln!(metrics, "| evaluation examples | {} |\n", eval.likelihood.examples);
    let _ = writeln!(
        metrics,
        "Protocol: {} weights of step {}; the exact log-likelihood of the flow (change of variables, no bound \
         on the flow itself) of each evaluation image's 8-bit pixels plus one uniform dequantisation draw per \
         pixel (evaluation seed {}), as a density on [0, 256)^D with D = {}; bits/dim = -log2 p / D. This is \
         the definition of the RealNVP and Glow papers (in expectation over the noise it bounds the discrete \
         model's code length from above).\n",
        if exp.train.ema.is_some() { "EMA" } else { "final" },
        cx.step,
        e.seed,
        flow.dims()
    );
    metrics.push_str(&report_section(exp, eval.samples.as_ref(), eval.samples_skipped.as_deref(), cx.run_dir));
    let goal = goal_verdict(exp, |g| match g {
        GoalMetric::BitsPerDim => Some(bpd),
        GoalMetric::NllNats => Some(eval.likelihood.nll_nats),
        GoalMetric::Fid => eval.samples.as_ref().map(|m| m.fid),
        GoalMetric::Accuracy | GoalMetric::NegElboNats => None,
    });
    let mut summary = format!("{bpd:.4} bits/dim on {} evaluation images", eval.likelihood.examples);
    if let Some(m) = &eval.samples {
        let _ = write!(summary, "; FID {:.4} ({} samples, {})", m.fid, m.protocol.samples, m.protocol.features.network);
    }
    let seconds = eval.likelihood.seconds + eval.samples.as_ref().map_or(0.0, |m| m.seconds);
    let text = goal.as_ref().map(|g| g.text.clone());
    finish(cx, &eval, fields, metrics, goal, &figs, "bits/dim", "val_bpd", seconds)?;
    Ok((summary, text))
}

/// Writes `eval.json`, the `metrics.jsonl` entry and the report.
#[allow(clippy::too_many_arguments)]
fn finish(
    cx: &EvalContext<'_>,
    eval: &FlowEval,
    fields: Vec<(&str, serde_json::Value)>,
    metrics: String,
    goal: Option<crate::report::GoalVerdict>,
    figures: &[(String, PathBuf)],
    unit: &'static str,
    val_key: &'static str,
    eval_seconds: f64,
) -> Result<()> {
    genlab_core::atomic::write_atomic(
        &cx.run_dir.join("eval.json"),
        &serde_json::to_vec_pretty(eval).expect("metrics should serialise"),
    )?;
    cx.log_evaluation(fields)?;
    write_report(&ReportInputs {
        exp: cx.exp,
        info: cx.info,
        run_dir: cx.run_dir,
        goal,
        metrics,
        model: describe(config(cx.exp)),
        loss: LossCurve { title: format!("Loss: negative log-likelihood ({unit})"), unit, val_key, val_sign: 1.0 },
        eval_seconds,
        figures,
        wall_seconds: cx.started.map(|t| t.elapsed().as_secs_f64()),
    })
}

// ---------------------------------------------------------------- 2-D points

/// Shuffled batches of 2-D points, `[batch, 2, 1, 1]`, resumable like the image batches.
struct PointBatches {
    points: Arc<Vec<f32>>,
    loader: BatchLoader,
}

impl BatchSource for PointBatches {
    type Batch = Tensor<4>;

    fn next_batch(&mut self, device: &Device) -> Tensor<4> {
        let rows = self.loader.next_batch();
        let v: Vec<f32> = rows.iter().flat_map(|&r| [self.points[2 * r], self.points[2 * r + 1]]).collect();
        Tensor::from_data(TensorData::new(v, [rows.len(), 2, 1, 1]), device)
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({ "loader": self.loader.state() })
    }

    fn restore(&mut self, state: serde_json::Value) -> std::result::Result<(), String> {
        let s: LoaderState =
            serde_json::from_value(state["loader"].clone()).map_err(|e| format!("loader state: {e}"))?;
        self.loader.restore(s)
    }
}

fn points_tensor(points: &[f32], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(points.to_vec(), [points.len() / 2, 2, 1, 1]), device)
}

/// Mean NLL (nats per point) of `flow` on `points`, `batch` at a time.
fn points_nll(flow: &Flow, points: &[f32], batch: usize, device: &Device) -> f64 {
    let n = points.len() / 2;
    let mut total = 0.0f64;
    for s in (0..n).step_by(batch) {
        let e = (s + batch).min(n);
        total -= to_f32_vec(flow.log_prob(points_tensor(&points[2 * s..2 * e], device), None).sum())[0] as f64;
    }
    total / n.max(1) as f64
}

/// The evaluation points: the first `eval.examples` of the toy's test split.
fn eval_points(exp: &Experiment, toy: ToyDistribution) -> Vec<f32> {
    let mut test = toy.split(true);
    test.truncate(2 * exp.eval.examples.unwrap_or(usize::MAX).min(test.len() / 2));
    test
}

/// `n` samples at `temperature`, `[x0, y0, ...]`.
pub fn sample_points(flow: &Flow, n: usize, seed: u64, temperature: f64, device: &Device) -> Vec<f32> {
    to_f32_vec(flow.sample(n, temperature, &mut SeededRng::stream(seed, SAMPLE_STREAM), device))
}

/// Phases 2 to 7 of a flow on a 2-D toy density.
pub(crate) fn run_points(
    exp: &Experiment,
    cfg: &FlowConfig,
    toy: ToyDistribution,
    target: Target,
    mode: Mode,
    device: &Device,
    started: Instant,
) -> Result<Finished> {
    let t = &exp.train;
    let train_points = Arc::new(toy.split(false));
    let n_train = train_points.len() / 2;
    if t.drop_last && t.batch_size > n_train {
        return Err(PipelineError::Config(format!(
            "train.batch_size = {}: larger than the {n_train} training points",
            t.batch_size
        )));
    }
    let test = eval_points(exp, toy);
    let mut model = cfg.init([2, 1, 1], t.seed, device)?;
    let facts =
        DataFacts { shape: [2, 1, 1], class_names: vec![], train_examples: n_train, eval_examples: test.len() / 2 };
    let mut run = RunDir::open(exp, target, mode, facts, model.num_params(), started)?;
    if !run.resuming && cfg.architecture == FlowArchitecture::Glow {
        model = model.initialize(points_tensor(&train_points[..2 * INIT_EXAMPLES.min(n_train)], device), None);
    }
    let mut batches = PointBatches {
        loader: BatchLoader::new((0..n_train).collect(), t.batch_size, true, t.drop_last, t.seed),
        points: train_points,
    };
    let periodic = test[..2 * exp.eval.periodic_examples.min(test.len() / 2)].to_vec();
    let eval_device = device.clone().inner();
    let batch = exp.eval.batch_size.max(1000);
    let trained = train(exp, &mut run, model, single_optimizer(exp), &mut batches, device, |_, m: &Flow| {
        Ok(vec![("val_nll".to_string(), points_nll(m, &periodic, batch, &eval_device))])
    })?;
    evaluate_trained(exp, &run, trained, eval_device, |cx, m| eval_points_and_report(cx, m, toy))
}

/// The evaluation protocol on 2-D points: the test NLL beside the exact density's, and the
/// density figure; writes `eval.json`, a `metrics.jsonl` entry and `report.md`.
pub(crate) fn eval_points_and_report(
    cx: &EvalContext<'_>,
    flow: &Flow,
    toy: ToyDistribution,
) -> Result<(String, Option<String>)> {
    let exp = cx.exp;
    let e = &exp.eval;
    let started = Instant::now();
    let test = eval_points(exp, toy);
    let n = test.len() / 2;
    let nll = points_nll(flow, &test, e.batch_size.max(1000), &cx.device);
    let reference = -test.chunks(2).map(|p| toy.log_density(p[0] as f64, p[1] as f64)).sum::<f64>() / n as f64;
    eprintln!("test: NLL {nll:.4} nats per point; exact density {reference:.4}; excess {:.4}", nll - reference);
    let likelihood = FlowMetrics {
        nll_nats: nll,
        bits_per_dim: None,
        reference_nll_nats: Some(reference),
        examples: n,
        seconds: started.elapsed().as_secs_f64(),
    };

    // The figure: exact density, model density, test points, model samples.
    let k = 160;
    let (lo, hi) = toy.window();
    let cell = (hi - lo) / k as f64;
    let grid: Vec<f32> = (0..k * k)
        .flat_map(|i| [(lo + ((i % k) as f64 + 0.5) * cell) as f32, (lo + ((i / k) as f64 + 0.5) * cell) as f32])
        .collect();
    let mut model_density = Vec::with_capacity(k * k);
    for chunk in grid.chunks(2 * 4000) {
        let lp = to_f32_vec(flow.log_prob(points_tensor(chunk, &cx.device), None));
        model_density.extend(lp.into_iter().map(|l| (l as f64).exp()));
    }
    let true_density: Vec<f64> = grid.chunks(2).map(|p| toy.log_density(p[0] as f64, p[1] as f64).exp()).collect();
    let samples = sample_points(flow, 5000, e.seed, e.temperature, &cx.device);
    let shown = &test[..2 * 5000.min(n)];
    let fig = PathBuf::from("plots/density.png");
    density_panels(
        &cx.run_dir.join(&fig),
        &format!("{}: exact density, model density, test points, model samples (T = {})", toy.name(), e.temperature),
        (lo, hi),
        &[
            DensityPanel::Heat { title: "exact density", k, values: &true_density },
            DensityPanel::Heat { title: "model density", k, values: &model_density },
            DensityPanel::Points { title: "test points", points: shown },
            DensityPanel::Points { title: "model samples", points: &samples },
        ],
    )?;
    let figs = vec![("The exact density, the flow's density, test points and the flow's samples".to_string(), fig)];

    let eval = FlowEval { step: cx.step, likelihood, temperature: e.temperature, samples: None, samples_skipped: None };
    let fields: Vec<(&str, serde_json::Value)> =
        vec![("nll_nats", nll.into()), ("reference_nll_nats", reference.into()), ("examples", n.into())];
    let mut metrics = String::new();
    let _ = writeln!(metrics, "## Likelihood, on the test points\n\n| metric | value |\n|---|---|");
    let _ = writeln!(metrics, "| NLL of the flow (nats per point) | {nll:.4} |");
    let _ = writeln!(metrics, "| NLL of the exact density, same points (nats per point) | {reference:.4} |");
    let _ = writeln!(metrics, "| excess of the flow over the exact density | {:.4} |", nll - reference);
    let _ = writeln!(metrics, "| test points | {n} |\n");
    let _ = writeln!(
        metrics,
        "Protocol: {} weights of step {}; the flow's exact log-density (change of variables) at the first {n} points \
         of {}'s fixed test draw (independent of the {} training points), beside the generating density's own \
         log-density at the same points (its mean estimates the distribution's entropy, the lowest NLL any \
         model can expect).\n",
        if exp.train.ema.is_some() { "EMA" } else { "final" },
        cx.step,
        toy.name(),
        cx.info.train_examples
    );
    let goal = goal_verdict(exp, |g| (g == GoalMetric::NllNats).then_some(nll));
    let summary = format!("NLL {nll:.4} nats per point (exact density {reference:.4}, excess {:.4})", nll - reference);
    let seconds = started.elapsed().as_secs_f64();
    let text = goal.as_ref().map(|g| g.text.clone());
    finish(cx, &eval, fields, metrics, goal, &figs, "nats", "val_nll", seconds)?;
    Ok((summary, text))
}
