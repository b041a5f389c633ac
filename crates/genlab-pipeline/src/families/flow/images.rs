//! A flow on 8-bit images: the exact test NLL in bits per dimension (the RealNVP and Glow papers'
//! definition), samples at a temperature and the same latent directions across temperatures.

use super::{FlowMetrics, SAMPLE_STREAM};
use crate::error::Result;
use crate::evaluation::{EvalContext, Evaluation};
use crate::experiment::Experiment;
use crate::generate::Images;
use crate::generate::draw_pixels;
use genlab_data::{EvalImages, Splits};
use crate::metric::Metric;
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::events::EventSink;
use genlab_core::grid::{save_grid, ImageBatch};
use genlab_core::progress::Progress;
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;
use genlab_models::flow::{uniform_noise, Flow};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The evaluation's dequantisation noise stream.
const DEQUANT_STREAM: u64 = 0xde9a;
/// Temperatures of the temperature figure.
const TEMPERATURES: [f64; 5] = [0.25, 0.5, 0.7, 0.85, 1.0];

/// Exact NLL of every example of `set` (8-bit pixels), with one dequantisation draw per pixel
/// from the stream fixed by `seed`.
pub(super) fn evaluate(
    flow: &Flow,
    set: &EvalImages,
    batch: usize,
    seed: u64,
    device: &Device,
    events: Option<&dyn EventSink>,
) -> FlowMetrics {
    let started = Instant::now();
    let mut rng = SeededRng::stream(seed, DEQUANT_STREAM);
    let mut total = 0.0f64;
    let chunks = set.n.div_ceil(batch);
    let mut progress = events.map_or_else(Progress::hidden, |e| e.progress("evaluate", chunks as u64, 0));
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

/// `n` samples at `temperature`, as 8-bit values.
pub(super) fn sample(
    flow: &Flow,
    n: usize,
    seed: u64,
    temperature: f64,
    device: &Device,
    progress: Option<&dyn EventSink>,
) -> Images {
    let mut rng = SeededRng::stream(seed, SAMPLE_STREAM);
    let pixels = draw_pixels(n, progress, |_, k| host(flow.sample(k, temperature, &mut rng, device)));
    Images {
        pixels,
        n,
        shape: flow.shape,
        description: format!("flow samples at temperature {temperature}, floored to their 8-bit bins"),
        seed,
    }
}

/// A grid of `n` samples at `temperature`.
pub(super) fn sample_grid(
    flow: &Flow,
    n: usize,
    seed: u64,
    temperature: f64,
    device: &Device,
    path: &Path,
) -> Result<()> {
    let im = sample(flow, n, seed, temperature, device, None);
    save_grid(&im.batch(), (n as f64).sqrt().ceil() as usize, path)?;
    Ok(())
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

/// Glow's ActNorm initialisation from the first training images.
pub(super) fn initialize(flow: Flow, splits: &Splits, exp: &Experiment, device: &Device) -> Flow {
    let rows = &splits.train_rows[..super::INIT_EXAMPLES.min(splits.train_rows.len())];
    let set = EvalImages::new(&splits.train, rows, &exp.data.transforms, exp.train.seed);
    let x = set.tensor(0, set.n, device);
    let u = uniform_noise(&mut SeededRng::stream(exp.train.seed, DEQUANT_STREAM), x.dims(), device);
    flow.initialize(x, Some(u))
}

/// The evaluation protocol on images: exact test bits/dim and the sample figures.
pub(super) fn evaluate_and_figures(
    flow: &Flow,
    splits: &Splits,
    temperature: f64,
    cx: &EvalContext<'_>,
) -> Result<Evaluation> {
    let exp = cx.exp;
    let e = &exp.eval;
    let set = splits.eval_images(exp.eval.examples, &exp.data.transforms, exp.eval.seed);
    let likelihood = evaluate(flow, &set, e.batch_size, e.seed, &cx.device, Some(&**cx.events));
    let bpd = likelihood.bits_per_dim.expect("images have bits/dim");
    cx.events.message(&format!(
        "test: {bpd:.4} bits/dim ({:.2} nats per image), {} examples, {:.0}s",
        likelihood.nll_nats, likelihood.examples, likelihood.seconds
    ));
    let mut figures = Vec::new();
    sample_grid(flow, e.samples, e.seed, temperature, &cx.device, &cx.run_dir.join("samples/samples.png"))?;
    figures.push((format!("Samples at temperature {temperature}"), PathBuf::from("samples/samples.png")));
    temperature_figure(flow, e.seed, &cx.device, &cx.run_dir.join("samples/temperatures.png"))?;
    figures.push((
        format!("The same latent directions at temperatures {TEMPERATURES:?} (rows)"),
        PathBuf::from("samples/temperatures.png"),
    ));
    let mut s = String::new();
    let _ = writeln!(s, "## Likelihood, on {}\n\n| metric | value |\n|---|---|", crate::report::split_name(exp));
    let _ = writeln!(s, "| NLL (bits per dimension) | {bpd:.4} |");
    let _ = writeln!(s, "| NLL (nats per image) | {:.2} |", likelihood.nll_nats);
    let _ = writeln!(s, "| evaluation examples | {} |\n", likelihood.examples);
    let _ = writeln!(
        s,
        "Protocol: {} weights of step {}; the exact log-likelihood of the flow (change of variables, no bound \
         on the flow itself) of each evaluation image's 8-bit pixels plus one uniform dequantisation draw per \
         pixel (evaluation seed {}), as a density on [0, 256)^D with D = {}; bits/dim = -log2 p / D. This is \
         the definition of the RealNVP and Glow papers (in expectation over the noise it bounds the discrete \
         model's code length from above).\n",
        exp.weights_word(),
        cx.step,
        e.seed,
        flow.dims()
    );
    Ok(Evaluation {
        metrics: vec![(Metric::BitsPerDim, bpd), (Metric::NllNats, likelihood.nll_nats)],
        log: vec![("examples", likelihood.examples.into())],
        section: s,
        summary: format!("{bpd:.4} bits/dim on {} evaluation images", likelihood.examples),
        record: serde_json::json!({ "likelihood": likelihood, "temperature": temperature }),
        figures,
        drawn: None,
    })
}
