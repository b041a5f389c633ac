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
pub use genlab_eval::suite::SampleMetrics;
use genlab_eval::suite::{memorisation_grid, score, Generated, Pixels};
use genlab_eval::weights::WeightsError;
use std::path::{Path, PathBuf};

/// The sample metrics a goal can name.
pub fn goal_metrics(m: &SampleMetrics) -> Vec<(Metric, f64)> {
    vec![
        (Metric::Fid, m.fid),
        (Metric::Kid, m.kid.mean),
        (Metric::Precision, m.prdc.precision),
        (Metric::Recall, m.prdc.recall),
        (Metric::Density, m.prdc.density),
        (Metric::Coverage, m.prdc.coverage),
    ]
}

/// Loads the experiment's feature network from the weights directory.
pub fn load_features(exp: &Experiment, device: &Device) -> std::result::Result<FeatureExtractor, WeightsError> {
    FeatureExtractor::load(exp.eval.features, None, exp.eval.protocol, device)
}

/// The sample metrics of the `generate`d images, when `eval.metric_samples` asks for them:
/// `(metrics, why they were skipped)`; the memorisation figure is pushed onto `figures`. A missing
/// MNIST LeNet is trained and installed first (unless `eval.make_features = false`). Right after
/// training, a feature network still missing (the FID Inception, or a LeNet whose making failed)
/// skips them with a warning, so the trained model and its report are not lost; `genlab eval`
/// fails with the message instead.
pub(crate) fn sample_metrics_if_asked(
    cx: &crate::evaluation::EvalContext<'_>,
    splits: &Splits,
    figures: &mut Vec<(String, PathBuf)>,
    generate: impl FnOnce() -> Result<Images>,
) -> Result<(Option<SampleMetrics>, Option<String>)> {
    if cx.exp.eval.metric_samples == 0 {
        return Ok((None, None));
    }
    match feature_network(cx)? {
        Ok(net) => {
            let (m, fig) = sample_metrics(cx.exp, &net, &generate()?, splits, cx.run_dir, &**cx.events)?;
            cx.events.message(&format!(
                "samples: FID {:.4}, KID {:.6}, {}",
                m.fid,
                m.kid.mean,
                m.protocol.features.describe()
            ));
            figures.push(fig);
            Ok((Some(m), None))
        }
        Err(why) => Ok((None, Some(why))),
    }
}

/// The experiment's feature network, a missing MNIST LeNet trained and installed first (unless
/// `eval.make_features = false`); right after training, a network still missing is `Ok(Err(why))`
/// with a warning printed (the caller skips what needs it), and an error for `genlab eval`.
pub(crate) fn feature_network(
    cx: &crate::evaluation::EvalContext<'_>,
) -> Result<std::result::Result<FeatureExtractor, String>> {
    let mut loaded = load_features(cx.exp, &cx.device);
    if let Err(WeightsError::MissingLenet { path }) = &loaded {
        if cx.exp.eval.make_features {
            match make_lenet(path, cx.exp.train.device, cx.events) {
                Ok(()) => loaded = load_features(cx.exp, &cx.device),
                Err(e) if cx.after_training => {
                    cx.events.message(&format!("warning: sample metrics skipped: making the MNIST LeNet failed: {e}"));
                    return Ok(Err(format!("making the MNIST LeNet failed: {e}")));
                }
                Err(e) => return Err(e),
            }
        }
    }
    match loaded {
        Ok(net) => Ok(Ok(net)),
        Err(err @ (WeightsError::Missing { .. } | WeightsError::MissingLenet { .. })) if cx.after_training => {
            cx.events.message(&format!("warning: sample metrics skipped: {err}"));
            Ok(Err(err.to_string()))
        }
        Err(err) => Err(PipelineError::Run(err.to_string())),
    }
}

/// The experiment that trains and installs the MNIST LeNet, as the repository ships it.
const LENET_EXPERIMENT: &str = include_str!("../../../configs/mnist-lenet.toml");

/// Trains the MNIST LeNet from [`LENET_EXPERIMENT`] into a new run directory (`runs/mnist-lenet`,
/// or `-2`, ...), which installs it at `path`, as `genlab run configs/mnist-lenet.toml` does.
fn make_lenet(path: &Path, device: genlab_core::DeviceSpec, events: &crate::Events) -> Result<()> {
    events.message(&format!(
        "the MNIST LeNet feature network is not installed: training it now from configs/mnist-lenet.toml (about 2 minutes on 2 cores); it will be installed as {} (eval.make_features = false skips this)",
        path.display()
    ));
    let exp = Experiment::parse(LENET_EXPERIMENT, Path::new("configs/mnist-lenet.toml"), &[])?;
    let opts = crate::run::RunOptions { events: events.clone(), device: Some(device), ..Default::default() };
    let target = crate::run::Target::Fresh { base: exp.default_run_dir(), exact: false };
    crate::run::family_of(&exp)?.execute(&exp, target, crate::run::Mode::Run, &opts, std::time::Instant::now())?;
    if !path.is_file() {
        return Err(PipelineError::Run(format!(
            "the MNIST LeNet trained by configs/mnist-lenet.toml was not installed at {} (its accuracy goal was not met); run it again, or set eval.make_features = false",
            path.display()
        )));
    }
    Ok(())
}

/// The report's sample-metrics section: the metrics with their protocol, why they were skipped
/// (and how to add them later), or that they were not asked for.
pub(crate) fn report_section(metrics: Option<&SampleMetrics>, skipped: Option<&str>, run_dir: &Path) -> String {
    match (metrics, skipped) {
        (Some(m), _) => m.markdown(),
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
