//! The diffusion family's evaluation protocol on the final (EMA) weights: the fixed-noise grid;
//! one draw with the run's sampler that serves the shared sample metrics and, for a conditional
//! model, the conditional accuracy under the MNIST LeNet; the sampler table (DDPM on every step,
//! DDIM 50/20/10, DPM-Solver++ 20/10) with FID, KID and seconds per sample; the guidance sweep
//! (FID and conditional accuracy against the scale); the denoising trajectory; and the
//! in-painting test (the top half of evaluation digits given, the completion classified).

use super::{batch_of, draw, draw_samples, step_bar, to_pixel, DiffusionFamily, Known, SamplerName, Sampling};
use crate::classes;
use crate::data::Data;
use crate::error::Result;
use crate::evaluation::{EvalContext, Evaluation};
use crate::generate::Images;
use crate::metric::Metric;
use crate::sample_metrics::feature_network;
use genlab_core::grid::save_grid;
use genlab_core::progress::Progress;
use genlab_core::tensors::to_f32_vec;
use genlab_eval::extract::FeatureExtractor;
use genlab_eval::features::Features;
use genlab_eval::kid::{kid, KidConfig};
use genlab_eval::lenet::LenetExtractor;
use genlab_models::diffusion::model::DiffusionModel;
use genlab_plot::{line_plot, Series};
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Instant;

/// The in-painting test's noise, apart from the samples'.
const INPAINT_STREAM: u64 = 0x1a7e;
/// Snapshots in the trajectory figure.
const SNAPSHOTS: usize = 8;

/// One row of the sampler table.
#[derive(Debug, Clone, Serialize)]
struct TableRow {
    sampler: String,
    steps: usize,
    samples: usize,
    fid: Option<f64>,
    kid: Option<f64>,
    conditional_accuracy: Option<f64>,
    seconds_per_sample: f64,
}

/// One point of the guidance sweep.
#[derive(Debug, Clone, Serialize)]
struct SweepPoint {
    scale: f64,
    samples: usize,
    fid: Option<f64>,
    conditional_accuracy: Option<f64>,
}

/// The in-painting test's rates.
#[derive(Debug, Clone, Serialize)]
struct Inpainting {
    examples: usize,
    given: &'static str,
    sampler: String,
    repaint_jumps: usize,
    /// Completions classified as the original digit, no class given to the model.
    accuracy_without_class: f64,
    /// The same with the class given (a conditional model), at the run's guidance.
    accuracy_with_class: Option<f64>,
    /// The classifier on the top halves alone (the rest black), for scale.
    accuracy_of_top_halves: f64,
}

/// What scores a draw: the feature network with the reference features, and the classifier.
struct Scorer {
    features: Option<(FeatureExtractor, Features)>,
    classifier: Option<LenetExtractor>,
    batch: usize,
}

impl Scorer {
    /// FID and KID of `pixels` (n images) against the reference, when there is a feature network.
    fn fid_kid(&self, pixels: &[f32], n: usize, shape: [usize; 3]) -> Result<(Option<f64>, Option<f64>)> {
        let Some((net, reference)) = &self.features else { return Ok((None, None)) };
        let run = |e: genlab_eval::EvalError| crate::error::PipelineError::Run(e.to_string());
        let f = net.extract(pixels, n, shape, self.batch, Progress::hidden()).map_err(run)?.features;
        let fid = genlab_eval::fid::fid(&f, reference).map_err(run)?;
        let c = KidConfig { subset_size: n.min(reference.n).min(1000), ..Default::default() };
        let k = kid(&f, reference, &c).map_err(run)?;
        Ok((Some(fid), Some(k.mean)))
    }

    /// The fraction of `pixels` the classifier puts in `labels`' classes.
    fn accuracy(&self, pixels: &[f32], labels: Option<&[usize]>) -> Option<f64> {
        let (net, labels) = (self.classifier.as_ref()?, labels?);
        let n = labels.len();
        Some(classes::class_stats(net, pixels, Some(labels), n).conditional_accuracy.unwrap_or(0.0))
    }
}

/// A table cell: the value to `digits` places, or a dash.
fn cell(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

pub(super) fn evaluate(
    f: &DiffusionFamily,
    model: &DiffusionModel,
    data: &Data,
    cx: &EvalContext<'_>,
) -> Result<Evaluation> {
    let e = &cx.exp.eval;
    let o = &f.options;
    let device = &cx.device;
    let shape = f.shape;
    let len: usize = shape.iter().product();
    let splits = data.images()?;
    let mut figures = vec![];
    let mut section = String::new();
    let mut metrics = vec![];
    let mut summary = String::from("diffusion model evaluated");
    let default = f.default_sampling(model)?;

    f.fixed_grid(model, e.samples, e.seed, device, &cx.run_dir.join("samples/samples.png"))?;
    let title = if f.conditional() {
        format!("Samples, one column per class (fixed noise; {}, guidance {})", default.describe(), default.opts.scale)
    } else {
        format!("Samples (fixed noise; {})", default.describe())
    };
    figures.push((title, PathBuf::from("samples/samples.png")));

    // The scorer: features (a missing LeNet is made first) when the sample metrics are asked for
    // and a table or sweep needs them, and the MNIST classifier.
    let sweep = f.conditional() && o.guidance_samples > 0 && !o.guidance_scales.is_empty();
    let scored = e.metric_samples > 0 && (o.table_samples > 0 || sweep);
    let features = match if scored { feature_network(cx)? } else { Err(String::new()) } {
        Ok(net) => {
            let rows = &splits.eval_rows[..e.examples.unwrap_or(usize::MAX).min(splits.eval_rows.len())];
            let px = splits.eval.batch(rows).data;
            let bar = cx.events.progress("reference features", rows.len() as u64, 0);
            let run = |e: genlab_eval::EvalError| crate::error::PipelineError::Run(e.to_string());
            let reference = net.extract(&px, rows.len(), shape, e.batch_size.max(50), bar).map_err(run)?.features;
            Some((net, reference))
        }
        Err(_) => None,
    };
    let classifier = classes::network(cx.exp, shape, device).ok();
    let scorer = Scorer { features, classifier, batch: e.batch_size.max(50) };

    // The main draw: the shared sample metrics' images and the conditional accuracy.
    let n_main = e.metric_samples.max(if f.conditional() { 1000 } else { 0 });
    let main_labels = f.cycling_labels(n_main);
    let (main, main_seconds) = timed(|| {
        let mut bar = step_bar(Some(&**cx.events), &default, n_main);
        draw_samples(model, &default, n_main, shape, main_labels.as_deref(), e.seed, device, &mut bar)
    });
    let accuracy = scorer.accuracy(&main, main_labels.as_deref());
    let mut record = serde_json::Map::new();
    let _ = writeln!(section, "## Samples\n\n| setting | value |\n|---|---|");
    let _ = writeln!(section, "| sampler | {} (eta {}), x0 clipped: {} |", default.describe(), o.eta, o.clip_sample);
    if f.conditional() {
        let _ = writeln!(section, "| guidance scale | {} |", default.opts.scale);
    }
    if n_main > 0 {
        let _ = writeln!(section, "| seconds per sample | {:.4} |", main_seconds / n_main as f64);
    }
    if let Some(a) = accuracy {
        metrics.push((Metric::ConditionalAccuracy, a));
        let _ = writeln!(section, "| samples classified by the MNIST LeNet as the class asked for ({n_main}) | {a:.4} |");
        let _ = write!(summary, "; conditional accuracy {a:.4} ({n_main} samples, guidance {})", default.opts.scale);
        cx.events.message(&format!("conditional accuracy {a:.4} of {n_main} samples ({})", default.describe()));
    }
    section.push('\n');
    record.insert("sampler".into(), default.describe().into());
    record.insert("guidance".into(), default.opts.scale.into());
    record.insert("conditional_accuracy".into(), accuracy.into());
    // No main draw, no time per sample (the sampler table times its own draws).
    record.insert("seconds_per_sample".into(), (n_main > 0).then(|| main_seconds / n_main as f64).into());

    let reuse = |s: &Sampling, n: usize| -> Option<(Vec<f32>, f64)> {
        (s.name == default.name && s.steps == default.steps && s.opts == default.opts && n <= n_main)
            .then(|| (main[..n * len].to_vec(), main_seconds / n_main as f64))
    };

    // The sampler table.
    if o.table_samples > 0 {
        let t_len = model.diffusion.schedule.len();
        let mut plan = vec![];
        if o.ddpm_samples > 0 {
            plan.push((SamplerName::Ddpm, t_len, o.ddpm_samples));
        }
        for (name, steps) in
            [(SamplerName::Ddim, 50), (SamplerName::Ddim, 20), (SamplerName::Ddim, 10), (SamplerName::DpmSolver, 20), (SamplerName::DpmSolver, 10)]
        {
            plan.push((name, steps.min(t_len), o.table_samples));
        }
        let mut rows = vec![];
        for (name, steps, n) in plan {
            let s = f.sampling_with(model, name, steps, default.opts.scale)?;
            let labels = f.cycling_labels(n);
            let (px, per_sample) = match reuse(&s, n) {
                Some(r) => r,
                None => {
                    cx.events.message(&format!("sampler table: {} on {n} samples", s.describe()));
                    let (px, secs) = timed(|| {
                        let mut bar = step_bar(Some(&**cx.events), &s, n);
                        draw_samples(model, &s, n, shape, labels.as_deref(), e.seed, device, &mut bar)
                    });
                    (px, secs / n as f64)
                }
            };
            let (fid, kid) = scorer.fid_kid(&px, n, shape)?;
            rows.push(TableRow {
                sampler: name.label().into(),
                steps,
                samples: n,
                fid,
                kid,
                conditional_accuracy: scorer.accuracy(&px, labels.as_deref()),
                seconds_per_sample: per_sample,
            });
        }
        let _ = writeln!(
            section,
            "## Samplers\n\nThe same weights sampled by each sampler{}; FID and KID in the feature space of the sample metrics, against the same reference images, on fewer samples than the sample metrics (FID is biased upwards at small counts: compare rows of equal counts; no FID or KID without `eval.metric_samples`).\n\n| sampler | steps | samples | FID | KID | conditional accuracy | seconds per sample |\n|---|---|---|---|---|---|---|",
            if f.conditional() { format!(" at guidance {}", default.opts.scale) } else { String::new() }
        );
        for r in &rows {
            let _ = writeln!(
                section,
                "| {} | {} | {} | {} | {} | {} | {:.4} |",
                r.sampler,
                r.steps,
                r.samples,
                cell(r.fid, 3),
                cell(r.kid, 5),
                cell(r.conditional_accuracy, 4),
                r.seconds_per_sample
            );
        }
        section.push('\n');
        record.insert("samplers".into(), serde_json::to_value(&rows).expect("rows serialise"));
    }

    // The guidance sweep.
    if sweep {
        let n = o.guidance_samples;
        let labels = f.cycling_labels(n);
        let mut points = vec![];
        for &scale in &o.guidance_scales {
            let s = f.sampling_with(model, default.name, default.steps, scale)?;
            let px = match reuse(&s, n) {
                Some((px, _)) => px,
                None => {
                    cx.events.message(&format!("guidance sweep: scale {scale} on {n} samples"));
                    let mut bar = step_bar(Some(&**cx.events), &s, n);
                    draw_samples(model, &s, n, shape, labels.as_deref(), e.seed, device, &mut bar)
                }
            };
            let (fid, _) = scorer.fid_kid(&px, n, shape)?;
            points.push(SweepPoint { scale, samples: n, fid, conditional_accuracy: scorer.accuracy(&px, labels.as_deref()) });
        }
        let _ = writeln!(
            section,
            "## Guidance\n\nClassifier-free guidance: {} on {n} samples per scale (classes in turn); scale 0 is the model's unconditional prediction, 1 its conditional one.\n\n| scale | FID | conditional accuracy |\n|---|---|---|",
            default.describe()
        );
        for p in &points {
            let _ = writeln!(section, "| {} | {} | {} |", p.scale, cell(p.fid, 3), cell(p.conditional_accuracy, 4));
        }
        section.push('\n');
        let series = |get: fn(&SweepPoint) -> Option<f64>| -> Vec<(f64, f64)> {
            points.iter().filter_map(|p| Some((p.scale, get(p)?))).collect()
        };
        let fid_points = series(|p| p.fid);
        if !fid_points.is_empty() {
            line_plot(
                &cx.run_dir.join("plots/guidance-fid.png"),
                "FID against the guidance scale",
                "FID",
                &[Series { name: "FID", points: fid_points }],
            )?;
            figures.push(("FID against the guidance scale".into(), PathBuf::from("plots/guidance-fid.png")));
        }
        let acc_points = series(|p| p.conditional_accuracy);
        if !acc_points.is_empty() {
            line_plot(
                &cx.run_dir.join("plots/guidance-accuracy.png"),
                "Conditional accuracy against the guidance scale",
                "fraction classified as the class asked for",
                &[Series { name: "conditional accuracy", points: acc_points }],
            )?;
            figures.push((
                "Conditional accuracy against the guidance scale".into(),
                PathBuf::from("plots/guidance-accuracy.png"),
            ));
        }
        record.insert("guidance_sweep".into(), serde_json::to_value(&points).expect("points serialise"));
    }

    // The denoising trajectory.
    figures.push(trajectory(f, model, &default, cx)?);

    // In-painting.
    if o.inpaint_examples > 0 {
        match (&scorer.classifier, splits.eval.labels.is_some()) {
            (Some(net), true) => {
                let (r, fig) = inpainting(f, model, &default, net, splits, cx)?;
                let _ = writeln!(
                    section,
                    "## In-painting\n\nThe {} of {} evaluation images given, the rest generated ({}{}); the completions classified by the MNIST LeNet.\n\n| model given | completions classified as the original digit |\n|---|---|\n| the top half, no class (the model's unconditional prediction) | {:.4} |",
                    r.given,
                    r.examples,
                    r.sampler,
                    if r.repaint_jumps > 1 { format!(", RePaint resampling x{}", r.repaint_jumps) } else { String::new() },
                    r.accuracy_without_class
                );
                if let Some(a) = r.accuracy_with_class {
                    let _ = writeln!(section, "| the top half and the class (guidance {}) | {a:.4} |", default.opts.scale);
                }
                let _ = writeln!(section, "| (the top half alone, the rest black, classified) | {:.4} |\n", r.accuracy_of_top_halves);
                let _ = write!(summary, "; in-painting accuracy {:.4} without the class", r.accuracy_without_class);
                figures.push(fig);
                record.insert("inpainting".into(), serde_json::to_value(&r).expect("rates serialise"));
            }
            _ => {
                let _ = writeln!(
                    section,
                    "## In-painting\n\nNot measured: the test classifies completions with the MNIST LeNet, which needs labelled MNIST digits and the installed network.\n"
                );
            }
        }
    }

    let drawn = (e.metric_samples > 0).then(|| Images {
        pixels: main[..e.metric_samples * len].to_vec(),
        n: e.metric_samples,
        shape,
        description: format!(
            "{}{}, quantised to 8 bits",
            if f.conditional() { format!("classes in turn, guidance {}, ", default.opts.scale) } else { String::new() },
            default.describe()
        ),
        seed: e.seed,
    });
    Ok(Evaluation {
        metrics,
        log: vec![],
        record: serde_json::Value::Object(record),
        section,
        figures,
        summary,
        drawn,
    })
}

/// `work`'s result and its wall time in seconds.
fn timed<T>(work: impl FnOnce() -> T) -> (T, f64) {
    let t0 = Instant::now();
    let out = work();
    (out, t0.elapsed().as_secs_f64())
}

/// The denoising trajectory of one sample per class (or ten unconditional samples): x_t and the
/// predicted x0 at `SNAPSHOTS` steps spread over the sampler's steps.
fn trajectory(
    f: &DiffusionFamily,
    model: &DiffusionModel,
    s: &Sampling,
    cx: &EvalContext<'_>,
) -> Result<(String, PathBuf)> {
    let n = if f.conditional() { f.classes.min(10) } else { 10 };
    let labels = f.cycling_labels(n);
    let steps = s.plan.len();
    let picks: Vec<usize> =
        (0..SNAPSHOTS).map(|k| (k * (steps - 1) + (SNAPSHOTS - 1) / 2) / (SNAPSHOTS - 1)).collect();
    let len: usize = f.shape.iter().product();
    // [sample][snapshot] images of x_t and of x0, in [-1, 1].
    let mut xt = vec![vec![]; n * SNAPSHOTS];
    let mut x0 = vec![vec![]; n * SNAPSHOTS];
    draw(
        model,
        s,
        n,
        f.shape,
        labels.as_deref(),
        None,
        (&[(cx.exp.eval.seed, n)], super::FIXED_STREAM),
        &cx.device,
        &mut Progress::hidden(),
        |_, i, x, pred| {
            if let Some(k) = picks.iter().position(|&p| p == i) {
                let (a, b) = (to_f32_vec(x.clone()), to_f32_vec(pred.clone()));
                for j in 0..n {
                    xt[j * SNAPSHOTS + k] = a[j * len..(j + 1) * len].to_vec();
                    x0[j * SNAPSHOTS + k] = b[j * len..(j + 1) * len].to_vec();
                }
            }
        },
    );
    // Rows: each sample's x_t, then its predicted x0.
    let mut pixels = Vec::with_capacity(2 * n * SNAPSHOTS * len);
    for j in 0..n {
        for rows in [&xt, &x0] {
            for k in 0..SNAPSHOTS {
                pixels.extend(rows[j * SNAPSHOTS + k].iter().copied().map(to_pixel));
            }
        }
    }
    let rel = PathBuf::from("samples/trajectory.png");
    save_grid(&batch_of(&pixels, f.shape), SNAPSHOTS, &cx.run_dir.join(&rel))?;
    let title = format!(
        "Denoising trajectory ({}): for each sample, x_t (upper row) and the predicted x0 (lower row) at steps {}",
        s.describe(),
        picks.iter().map(|p| (p + 1).to_string()).collect::<Vec<_>>().join(", ")
    );
    Ok((title, rel))
}

/// Completes the top half of the first `inpaint_examples` evaluation images without and (a
/// conditional model) with their class; the rates and the figure.
fn inpainting(
    f: &DiffusionFamily,
    model: &DiffusionModel,
    s: &Sampling,
    net: &LenetExtractor,
    splits: &genlab_data::Splits,
    cx: &EvalContext<'_>,
) -> Result<(Inpainting, (String, PathBuf))> {
    let n = f.options.inpaint_examples.min(splits.eval_rows.len());
    let batch = splits.eval.batch(&splits.eval_rows[..n]);
    let labels: Vec<usize> = batch.labels.as_ref().expect("checked: labelled").iter().map(|&y| y as usize).collect();
    let [c, h, w] = f.shape;
    let len = c * h * w;
    let keep: Vec<f32> = (0..len).map(|i| if (i % (h * w)) / w < h / 2 { 1.0 } else { 0.0 }).collect();
    let known = Known {
        image: batch.data.iter().map(|p| p / 127.5 - 1.0).collect(),
        mask: keep.repeat(n),
    };
    let run = |labels: Option<&[usize]>, what: &str| {
        cx.events.message(&format!("in-painting: {n} top halves, {what}"));
        let mut bar = step_bar(Some(&**cx.events), s, n);
        draw(model, s, n, f.shape, labels, Some(&known), (&[(cx.exp.eval.seed, n)], INPAINT_STREAM), &cx.device, &mut bar, |_, _, _, _| {})
    };
    let rate = |px: &[f32]| classes::class_stats(net, px, Some(&labels), n).conditional_accuracy.unwrap_or(0.0);
    let without = run(None, "no class given");
    let with = f.conditional().then(|| run(Some(&labels), "the class given"));
    let halves: Vec<f32> = batch.data.iter().zip(keep.iter().cycle()).map(|(p, k)| p * k).collect();
    let r = Inpainting {
        examples: n,
        given: "top half",
        sampler: s.describe(),
        repaint_jumps: s.opts.jumps,
        accuracy_without_class: rate(&without),
        accuracy_with_class: with.as_deref().map(rate),
        accuracy_of_top_halves: rate(&halves),
    };
    cx.events.message(&format!(
        "in-painting: {:.4} of completions classified as the original digit without the class{}",
        r.accuracy_without_class,
        r.accuracy_with_class.map_or(String::new(), |a| format!(", {a:.4} with it"))
    ));
    // The figure: 10 examples; rows: original, given (unknown pixels gray), completions.
    let m = n.min(10);
    let mut pixels = vec![];
    pixels.extend_from_slice(&batch.data[..m * len]);
    pixels.extend(batch.data[..m * len].iter().zip(keep.iter().cycle()).map(|(p, k)| if *k > 0.5 { *p } else { 128.0 }));
    pixels.extend_from_slice(&without[..m * len]);
    if let Some(with) = &with {
        pixels.extend_from_slice(&with[..m * len]);
    }
    let rel = PathBuf::from("samples/inpainting.png");
    save_grid(&batch_of(&pixels, f.shape), m, &cx.run_dir.join(&rel))?;
    let title = format!(
        "In-painting ({}): originals, the given top halves (gray: to generate), completions without the class{}",
        s.describe(),
        if f.conditional() { ", completions with the class" } else { "" }
    );
    Ok((r, (title, rel)))
}
