//! The VAE's part of the pipeline: training with periodic validation, its evaluation protocol
//! (test ELBO and the IWAE estimate of the negative log-likelihood, in nats per example, and the
//! sample metrics), its figures (prior samples, reconstructions, latent interpolations, the 2-D
//! latent scatter) and its report section.

use crate::error::Result;
use crate::experiment::{Experiment, GoalMetric, ModelConfig};
use crate::images::{sample_in_chunks, EvalImages, ImageBatches, Splits};
use crate::plots::scatter_by_class;
use crate::report::{goal_verdict, split_name, write_report, LossCurve, ReportInputs};
use crate::run::{evaluate_trained, single_optimizer, train, EvalContext, Finished, RunDir};
use crate::sample_metrics::{report_section, sample_metrics_if_asked, Generated, SampleMetrics};
use burn::tensor::Device;
use burn::Tensor;
use genlab_core::grid::{save_grid, save_images, ImageBatch};
use genlab_core::progress::Progress;
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;
use genlab_models::vae::{normal, Vae};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Test-set likelihood numbers, with the protocol that produced them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VaeMetrics {
    /// Mean ELBO (one reparameterised sample, analytic KL), nats per example.
    pub elbo_nats: f64,
    /// Mean negative IWAE bound with `iwae_k` samples: the NLL estimate, nats per example.
    pub nll_nats: f64,
    pub iwae_k: usize,
    pub examples: usize,
    pub seconds: f64,
}

/// Evaluates `vae` on every example of `set`, `batch` examples at a time; `k = 0` skips the IWAE
/// bound. `label`, when given, shows a progress bar.
pub fn evaluate(
    vae: &Vae,
    set: &EvalImages,
    k: usize,
    batch: usize,
    seed: u64,
    device: &Device,
    label: Option<&str>,
) -> VaeMetrics {
    let started = std::time::Instant::now();
    let mut rng = SeededRng::stream(seed, IWAE_STREAM);
    let (mut elbo, mut iwae) = (0.0f64, 0.0f64);
    let chunks = set.n.div_ceil(batch);
    let mut progress = label.map_or_else(Progress::hidden, |l| Progress::new(l, chunks as u64, 0));
    for c in 0..chunks {
        let (s, e) = (c * batch, ((c + 1) * batch).min(set.n));
        let x = set.tensor(s, e, device);
        let t = vae.elbo_terms(x.clone(), normal(&mut rng, [e - s, vae.latent_dim], device));
        elbo += to_f32_vec((t.log_likelihood - t.kl).sum()).iter().map(|&v| v as f64).sum::<f64>();
        if k > 0 {
            let bound = vae.iwae_bound(x, normal(&mut rng, [k, e - s, vae.latent_dim], device));
            iwae += to_f32_vec(bound.sum())[0] as f64;
        }
        let shown = if k > 0 { format!("nll {:.2}", -iwae / e as f64) } else { format!("elbo {:.2}", elbo / e as f64) };
        progress.update(c as u64 + 1, &shown);
    }
    progress.finish();
    let n = set.n.max(1) as f64;
    VaeMetrics {
        elbo_nats: elbo / n,
        nll_nats: -iwae / n,
        iwae_k: k,
        examples: set.n,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// The evaluation noise's stream, apart from training's streams.
const IWAE_STREAM: u64 = 0x1a3e;

/// Images on the host in [0, 1] for drawing; `symmetric` data ([-1, 1]) is mapped there first.
fn host_images(t: Tensor<4>, symmetric: bool) -> ImageBatch {
    let [n, c, h, w] = t.dims();
    let t = if symmetric { (t + 1.0) * 0.5 } else { t };
    ImageBatch::new(to_f32_vec(t), n, c, h, w)
}

/// A grid of `n` prior samples.
pub fn sample_grid(vae: &Vae, n: usize, seed: u64, symmetric: bool, device: &Device, path: &Path) -> Result<()> {
    let mut rng = SeededRng::stream(seed, SAMPLE_STREAM);
    let cols = (n as f64).sqrt().ceil() as usize;
    save_grid(&host_images(vae.sample(n, &mut rng, device), symmetric), cols, path)?;
    Ok(())
}

/// The prior samples' stream.
const SAMPLE_STREAM: u64 = 0x5a3e;

/// `n` prior samples drawn `SAMPLE_CHUNK` at a time, each chunk handed to `sink` with the index of
/// its first sample, with a progress bar. The same seed gives the same samples whatever the sink.
fn sample_chunks(
    vae: &Vae,
    n: usize,
    seed: u64,
    symmetric: bool,
    device: &Device,
    sink: impl FnMut(ImageBatch, usize) -> Result<()>,
) -> Result<()> {
    let mut rng = SeededRng::stream(seed, SAMPLE_STREAM);
    sample_in_chunks(n, true, |_, k| host_images(vae.sample(k, &mut rng, device), symmetric), sink)
}

/// `n` prior samples as PNG files in `dir`.
pub fn sample_folder(vae: &Vae, n: usize, seed: u64, symmetric: bool, device: &Device, dir: &Path) -> Result<()> {
    sample_chunks(vae, n, seed, symmetric, device, |b, start| Ok(save_images(&b, start, dir)?))
}

/// `n` prior samples as 8-bit values (as their PNG files hold them), for the sample metrics.
fn sample_pixels(vae: &Vae, n: usize, seed: u64, symmetric: bool, device: &Device) -> Result<Generated> {
    let mut pixels = Vec::with_capacity(n * vae.shape.iter().product::<usize>());
    sample_chunks(vae, n, seed, symmetric, device, |b, _| {
        pixels.extend(b.data.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round()));
        Ok(())
    })?;
    Ok(Generated {
        pixels,
        n,
        shape: vae.shape,
        description: "prior samples decoded to mean images, quantised to 8 bits".into(),
        seed,
    })
}

/// The figures of a finished run, written under `run_dir`; returns (title, relative path) pairs.
#[allow(clippy::too_many_arguments)]
pub fn figures(
    vae: &Vae,
    set: &EvalImages,
    class_names: &[String],
    samples: usize,
    seed: u64,
    symmetric: bool,
    device: &Device,
    run_dir: &Path,
) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let rel = |p: &str| PathBuf::from(p);
    sample_grid(vae, samples, seed, symmetric, device, &run_dir.join("samples/samples.png"))?;
    out.push(("Samples from the prior (decoder means)".to_string(), rel("samples/samples.png")));

    // Reconstructions: rows of `cols` evaluation images alternate with their reconstructions through
    // the posterior mean (whole rows only, so the caption holds).
    let cols = 8.min(set.n);
    let n = (32.min(set.n) / cols) * cols;
    let x = set.tensor(0, n, device);
    let rec = host_images(vae.reconstruct(x.clone()), symmetric);
    let orig = host_images(x, symmetric);
    let len = rec.channels * rec.height * rec.width;
    let mut inter = Vec::with_capacity(2 * n * len);
    for row in 0..n / cols {
        let (a, b) = (row * cols, (row + 1) * cols);
        inter.extend_from_slice(&orig.data[a * len..b * len]);
        inter.extend_from_slice(&rec.data[a * len..b * len]);
    }
    let rows = ImageBatch::new(inter, 2 * n, rec.channels, rec.height, rec.width);
    save_grid(&rows, cols, &run_dir.join("samples/reconstructions.png"))?;
    out.push((
        "Evaluation images (odd rows) and their reconstructions (even rows)".to_string(),
        rel("samples/reconstructions.png"),
    ));

    // Interpolations: 8 pairs of test images, 10 steps between their posterior means.
    if set.n >= 16 {
        let steps = 10;
        let (mu, _) = vae.encoder.forward(set.tensor(0, 16, device));
        let mu = to_f32_vec(mu);
        let l = vae.latent_dim;
        let mut z = Vec::with_capacity(8 * steps * l);
        for p in 0..8 {
            let (a, b) = (&mu[(2 * p) * l..(2 * p + 1) * l], &mu[(2 * p + 1) * l..(2 * p + 2) * l]);
            for s in 0..steps {
                let t = s as f32 / (steps - 1) as f32;
                z.extend(a.iter().zip(b).map(|(x, y)| (1.0 - t) * x + t * y));
            }
        }
        let zt = Tensor::from_data(burn::tensor::TensorData::new(z, [8 * steps, l]), device);
        save_grid(&host_images(vae.decode_mean(zt), symmetric), steps, &run_dir.join("samples/interpolation.png"))?;
        out.push((
            "Latent interpolations between pairs of evaluation images".to_string(),
            rel("samples/interpolation.png"),
        ));
    }

    // The latent space itself, when it is a plane.
    if vae.latent_dim == 2 {
        if let Some(labels) = &set.labels {
            let mut pts: Vec<(f32, f32, u32)> = Vec::with_capacity(set.n);
            for s in (0..set.n).step_by(500) {
                let e = (s + 500).min(set.n);
                let (mu, _) = vae.encoder.forward(set.tensor(s, e, device));
                let mu = to_f32_vec(mu);
                pts.extend((s..e).map(|i| (mu[2 * (i - s)], mu[2 * (i - s) + 1], labels[i])));
            }
            scatter_by_class(
                &run_dir.join("plots/latent.png"),
                "Posterior means of the test set, by class",
                &pts,
                class_names,
            )?;
            out.push((
                "The 2-D latent space: test posterior means coloured by class".to_string(),
                rel("plots/latent.png"),
            ));
        }
    }
    Ok(out)
}

/// Phases 4 to 7 of a VAE run: training with a validation ELBO and a sample grid at each
/// evaluation step, then the evaluation protocol, figures and report.
pub(crate) fn run_phases(
    exp: &Experiment,
    run: &mut RunDir,
    model: Vae,
    mut batches: ImageBatches,
    splits: &Splits,
    device: &Device,
) -> Result<Finished> {
    let e = &exp.eval;
    let periodic = EvalImages::periodic(splits, exp);
    let eval_device = device.clone().inner();
    let symmetric = exp.data.transforms.contains(&genlab_data::Transform::ScaleSymmetric);
    let samples_dir = run.dir.join("samples");
    let trained = train(exp, run, model, single_optimizer(exp), &mut batches, device, |step, m: &Vae| {
        let v = evaluate(m, &periodic, 0, e.batch_size, e.seed, &eval_device, None);
        sample_grid(m, e.samples, e.seed, symmetric, &eval_device, &samples_dir.join(format!("step-{step:06}.png")))
            .map_err(|err| genlab_train::TrainError::Eval { step, reason: err.to_string() })?;
        Ok(vec![("val_elbo".to_string(), v.elbo_nats)])
    })?;
    evaluate_trained(exp, run, trained, eval_device, |cx, m| eval_and_report(cx, m, splits))
}

/// What `eval.json` holds for a VAE.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VaeEval {
    pub step: u64,
    pub likelihood: VaeMetrics,
    pub samples: Option<SampleMetrics>,
    /// Why the sample metrics are missing, when they were asked for.
    pub samples_skipped: Option<String>,
}

/// The full evaluation protocol: likelihood, figures, sample metrics; writes `eval.json`, a
/// `metrics.jsonl` entry and `report.md`. Returns the headline and the goal's verdict.
pub(crate) fn eval_and_report(cx: &EvalContext<'_>, vae: &Vae, splits: &Splits) -> Result<(String, Option<String>)> {
    let exp = cx.exp;
    let e = &exp.eval;
    let set = EvalImages::evaluation(splits, exp);
    let likelihood = evaluate(vae, &set, e.iwae_k, e.batch_size, e.seed, &cx.device, Some("evaluate"));
    eprintln!(
        "test: ELBO {:.2} nats, NLL (IWAE k={}) {:.2} nats, {} examples, {:.0}s",
        likelihood.elbo_nats, likelihood.iwae_k, likelihood.nll_nats, likelihood.examples, likelihood.seconds
    );
    let symmetric = exp.data.transforms.contains(&genlab_data::Transform::ScaleSymmetric);
    let mut figs = figures(vae, &set, &cx.info.class_names, e.samples, e.seed, symmetric, &cx.device, cx.run_dir)?;
    let (samples, samples_skipped) = sample_metrics_if_asked(cx, splits, &mut figs, || {
        sample_pixels(vae, e.metric_samples, e.seed, symmetric, &cx.device)
    })?;
    let eval = VaeEval { step: cx.step, likelihood, samples, samples_skipped };
    let l = &eval.likelihood;
    genlab_core::atomic::write_atomic(
        &cx.run_dir.join("eval.json"),
        &serde_json::to_vec_pretty(&eval).expect("metrics should serialise"),
    )?;
    let mut fields: Vec<(&str, serde_json::Value)> = vec![
        ("elbo_nats", l.elbo_nats.into()),
        ("nll_nats", l.nll_nats.into()),
        ("iwae_k", l.iwae_k.into()),
        ("examples", l.examples.into()),
    ];
    if let Some(m) = &eval.samples {
        fields.extend(m.log_fields());
    }
    cx.log_evaluation(fields)?;
    let goal = goal_verdict(exp, |g| match g {
        GoalMetric::NllNats => Some(l.nll_nats),
        GoalMetric::NegElboNats => Some(-l.elbo_nats),
        GoalMetric::Fid => eval.samples.as_ref().map(|m| m.fid),
        GoalMetric::Accuracy | GoalMetric::BitsPerDim => None,
    });
    let ModelConfig::Vae(v) = &exp.model else { unreachable!("a VAE run holds a VAE config") };
    let model = format!(
        "VAE, {:?} {}, latent {}, {:?} likelihood, beta {}",
        v.architecture,
        match v.architecture {
            genlab_models::vae::Architecture::Conv => format!("channels {:?}", v.channels),
            genlab_models::vae::Architecture::Mlp => format!("hidden {:?}", v.hidden),
        },
        v.latent_dim,
        v.likelihood,
        v.beta
    );
    let loss_title = if v.beta == 1.0 {
        "Loss: negative ELBO per example".to_string()
    } else {
        format!("Loss: -log p(x|z) + {} KL per example (the validation curve is the negative ELBO)", v.beta)
    };
    write_report(&ReportInputs {
        exp,
        info: cx.info,
        run_dir: cx.run_dir,
        goal: goal.clone(),
        metrics: metrics_markdown(exp, cx, &eval),
        model,
        loss: LossCurve { title: loss_title, unit: "nats", val_key: "val_elbo", val_sign: -1.0 },
        eval_seconds: l.seconds + eval.samples.as_ref().map_or(0.0, |m| m.seconds),
        figures: &figs,
        wall_seconds: cx.started.map(|t| t.elapsed().as_secs_f64()),
    })?;
    let mut summary = format!(
        "NLL (IWAE, k={}) {:.2} nats; ELBO {:.2} nats; {} evaluation examples",
        l.iwae_k, l.nll_nats, l.elbo_nats, l.examples
    );
    if let Some(m) = &eval.samples {
        let _ = write!(
            summary,
            "; FID {:.4}, KID {:.6} ({} samples, {})",
            m.fid, m.kid.mean, m.protocol.samples, m.protocol.features.network
        );
    }
    Ok((summary, goal.map(|g| g.text)))
}

fn metrics_markdown(exp: &Experiment, cx: &EvalContext<'_>, eval: &VaeEval) -> String {
    let m = &eval.likelihood;
    let mut s = String::new();
    let _ = writeln!(s, "## Likelihood, on {}\n\n| metric | value |\n|---|---|", split_name(exp));
    let _ = writeln!(s, "| NLL, minus the IWAE bound with k = {} (nats per example) | {:.2} |", m.iwae_k, m.nll_nats);
    let _ = writeln!(s, "| ELBO (nats per example) | {:.2} |", m.elbo_nats);
    let dims = cx.info.data_shape.iter().product::<usize>();
    let _ =
        writeln!(s, "| NLL in bits per dimension | {:.4} |", genlab_eval::likelihood::bits_per_dim(m.nll_nats, dims));
    let _ = writeln!(s, "| evaluation examples | {} |\n", m.examples);
    let _ = writeln!(
        s,
        "Protocol: {} weights of step {}; the evaluation split ({}) transformed once with evaluation seed {} \
         (so a binarised evaluation set is the same for every run); ELBO with one reparameterised sample and the analytic KL; \
         NLL as minus the importance-weighted bound of Burda et al. (2016) with k = {} posterior samples per example. \
         Both are in nats per example (divide by {} for nats per pixel).\n",
        if exp.train.ema.is_some() { "EMA" } else { "final" },
        cx.step,
        split_name(exp),
        exp.eval.seed,
        m.iwae_k,
        dims
    );
    s.push_str(&report_section(exp, eval.samples.as_ref(), eval.samples_skipped.as_deref(), cx.run_dir));
    s
}
