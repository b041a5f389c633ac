//! The sample metrics of a generative run: FID, KID, Inception Score, precision/recall,
//! density/coverage and memorisation of `eval.metric_samples` generated images against the
//! evaluation split, in the feature space of `eval.features`, each number recorded with its
//! protocol. Samples are quantised to 8 bits first, as PNG files are, so `genlab eval` and
//! `genlab fid` over exported folders give the same numbers.

use crate::error::{PipelineError, Result};
use crate::experiment::Experiment;
use crate::generate::Images;
use crate::metric::Metric;
use crate::report::split_name;
use burn::tensor::Device;
use genlab_core::events::EventSink;
use genlab_data::Splits;
use genlab_eval::extract::FeatureExtractor;
use genlab_eval::inception_score::InceptionScore;
pub use genlab_eval::suite::SampleMetrics;
use genlab_eval::suite::{memorisation_grid, score, Generated, Pixels};
use genlab_eval::weights::WeightsError;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// What the report says of the sample metrics.
pub trait SampleReport {
    /// The numbers a goal can name.
    fn metrics(&self) -> Vec<(Metric, f64)>;
    /// The report's section: a table, the real-data baseline and the protocol.
    fn markdown(&self, exp: &Experiment) -> String;
}

impl SampleReport for SampleMetrics {
    fn metrics(&self) -> Vec<(Metric, f64)> {
        vec![
            (Metric::Fid, self.fid),
            (Metric::Kid, self.kid.mean),
            (Metric::Precision, self.prdc.precision),
            (Metric::Recall, self.prdc.recall),
            (Metric::Density, self.prdc.density),
            (Metric::Coverage, self.prdc.coverage),
        ]
    }

    fn markdown(&self, exp: &Experiment) -> String {
        let p = &self.protocol;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "## Sample metrics: {} samples against {} images of {}\n\n| metric | samples | real images (baseline) |\n|---|---|---|",
            p.samples,
            p.reference_images,
            split_name(exp)
        );
        let _ = writeln!(
            s,
            "| FID | {:.4} | {:.4} (training vs evaluation images) |",
            self.fid, self.real.fid_train_vs_reference
        );
        let _ = writeln!(s, "| KID | {:.6} +- {:.6} | |", self.kid.mean, self.kid.std);
        let is = |v: Option<InceptionScore>| v.map_or("n/a".to_string(), |i| format!("{:.4} +- {:.4}", i.mean, i.std));
        let _ = writeln!(s, "| Inception Score | {} | {} |", is(self.inception_score), is(self.real.inception_score));
        let _ = writeln!(s, "| precision / recall | {:.4} / {:.4} | |", self.prdc.precision, self.prdc.recall);
        let _ = writeln!(s, "| density / coverage | {:.4} / {:.4} | |", self.prdc.density, self.prdc.coverage);
        let m = &self.memorisation;
        let _ = writeln!(
            s,
            "| memorisation: samples closer to a training image than {:.0}% of held-out images | {:.4} (expected about {:.2} without copying) | |",
            m.quantile * 100.0,
            m.suspicious_fraction,
            m.quantile
        );
        let _ = writeln!(
            s,
            "| memorisation: median nearest-training distance, samples / held-out | {:.4} | |\n",
            m.median_ratio
        );
        let _ = writeln!(
            s,
            "Protocol: features of {}. Samples: {} ({} of them, seed {}; `genlab sample RUN -n {} --seed {} --format folder` writes the same images). \
             Reference: {}, {} images, 8-bit pixels without the training transforms; memorisation searches {} training images. \
             FID in float64 with the trace of the matrix square root from symmetric eigendecompositions (pytorch-fid's formula); \
             KID as torch-fidelity: unbiased MMD², cubic polynomial kernel, {} subsets of {}, seed {}; \
             Inception Score from the network's logits, {} splits; precision/recall/density/coverage as the `prdc` package with k = {}; \
             memorisation threshold: the {:.0}% quantile of held-out images' nearest-training distances ({:.4}). Metrics took {:.0}s.\n",
            p.features.describe(),
            p.samples_are,
            p.samples,
            p.sample_seed,
            p.samples,
            p.sample_seed,
            split_name(exp),
            p.reference_images,
            p.train_images,
            p.kid.subsets,
            p.kid.subset_size,
            p.kid.seed,
            p.inception_score_splits,
            p.prdc_k,
            m.quantile * 100.0,
            m.threshold,
            self.seconds
        );
        s
    }
}

/// Loads the experiment's feature network from the weights directory.
pub fn load_features(exp: &Experiment, device: &Device) -> std::result::Result<FeatureExtractor, WeightsError> {
    FeatureExtractor::load(exp.eval.features, None, exp.eval.resize, device)
}

/// The sample metrics of the `generate`d images, when `eval.metric_samples` asks for them:
/// `(metrics, why they were skipped)`; the memorisation figure is pushed onto `figures`. Right
/// after training a missing feature network skips them with a warning, so the trained model is
/// not lost; `genlab eval` fails with the message instead.
pub(crate) fn sample_metrics_if_asked(
    cx: &crate::evaluation::EvalContext<'_>,
    splits: &Splits,
    figures: &mut Vec<(String, PathBuf)>,
    generate: impl FnOnce() -> Result<Images>,
) -> Result<(Option<SampleMetrics>, Option<String>)> {
    if cx.exp.eval.metric_samples == 0 {
        return Ok((None, None));
    }
    match load_features(cx.exp, &cx.device) {
        Ok(net) => {
            let (m, fig) = sample_metrics(cx.exp, &net, &generate()?, splits, cx.run_dir, cx.events)?;
            cx.events.message(&format!(
                "samples: FID {:.4}, KID {:.6}, {}",
                m.fid,
                m.kid.mean,
                m.protocol.features.describe()
            ));
            figures.push(fig);
            Ok((Some(m), None))
        }
        Err(err @ (WeightsError::Missing { .. } | WeightsError::MissingLenet { .. })) if cx.after_training => {
            cx.events.message(&format!("warning: sample metrics skipped: {err}"));
            Ok((None, Some(err.to_string())))
        }
        Err(err) => Err(PipelineError::Run(err.to_string())),
    }
}

/// The report's sample-metrics section: the metrics with their protocol, why they were skipped
/// (and how to add them later), or that they were not asked for.
pub(crate) fn report_section(
    exp: &Experiment,
    metrics: Option<&SampleMetrics>,
    skipped: Option<&str>,
    run_dir: &Path,
) -> String {
    match (metrics, skipped) {
        (Some(m), _) => m.markdown(exp),
        (None, Some(why)) => format!(
            "## Sample metrics\n\nSkipped: {why}. Run `genlab eval {}` once the weights are there.\n\n",
            run_dir.display()
        ),
        (None, None) => "## Sample metrics\n\nNot asked for (`eval.metric_samples = 0`).\n\n".to_string(),
    }
}

/// Computes every sample metric and draws the memorisation figure under `run_dir`; returns the
/// metrics and the figure's (title, relative path).
pub fn sample_metrics(
    exp: &Experiment,
    net: &FeatureExtractor,
    generated: &Images,
    splits: &Splits,
    run_dir: &Path,
    events: &dyn EventSink,
) -> Result<(SampleMetrics, (String, PathBuf))> {
    let e = &exp.eval;
    let ref_rows = &splits.eval_rows[..e.examples.unwrap_or(usize::MAX).min(splits.eval_rows.len())];
    let train_rows = &splits.train_rows[..e.memorisation_examples.unwrap_or(usize::MAX).min(splits.train_rows.len())];
    let reference = splits.eval.batch(ref_rows).data;
    let train = splits.train.batch(train_rows).data;
    let reference = Pixels { values: &reference, n: ref_rows.len() };
    let train = Pixels { values: &train, n: train_rows.len() };
    let generated = Generated {
        pixels: Pixels { values: &generated.pixels, n: generated.n },
        shape: generated.shape,
        description: &generated.description,
        seed: generated.seed,
    };
    let run = |e: genlab_eval::EvalError| PipelineError::Run(e.to_string());
    let metrics =
        score(net, &generated, reference, train, &split_name(exp), e.batch_size.max(50), events).map_err(run)?;
    let rel = PathBuf::from("samples/memorisation.png");
    memorisation_grid(&metrics.memorisation, &generated, train, &run_dir.join(&rel)).map_err(run)?;
    let title = format!(
        "Memorisation check: the {} samples closest to a training image (top row) and that training image (bottom row), closest first",
        metrics.memorisation.closest.len()
    );
    Ok((metrics, (title, rel)))
}
