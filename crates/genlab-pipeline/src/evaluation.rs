//! The evaluation record every family returns, and the one tail that finishes an evaluation: the
//! shared sample metrics for a family that generates images, then `eval.json`, the `metrics.jsonl`
//! test entry, the goal's verdict and `report.md`.

use crate::error::Result;
use crate::experiment::Experiment;
use crate::generate::Images;
use crate::metric::Metric;
use crate::report::{write_report, GoalVerdict, ReportInputs, Verdict};
use crate::run_dir::RunInfo;
use crate::sample_metrics::{goal_metrics, report_section, sample_metrics_if_asked, SampleMetrics};
use burn::tensor::Device;
use genlab_core::events::Events;
use genlab_train::OptimizerConfig;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What an evaluation needs to know of its run.
pub struct EvalContext<'a> {
    pub exp: &'a Experiment,
    pub info: &'a RunInfo,
    pub run_dir: &'a Path,
    pub device: Device,
    /// The step of the weights evaluated.
    pub step: u64,
    /// When the whole command started, for a run that ran every phase.
    pub started: Option<Instant>,
    /// Right after training (`genlab run`): the sample metrics are skipped with a warning when the
    /// feature network is missing and cannot be made, rather than failing after training
    /// (`genlab eval` fails), and a classifier asked to is installed as a feature network
    /// (`genlab eval` never reinstalls).
    pub after_training: bool,
    pub events: &'a Events,
}

impl EvalContext<'_> {
    /// The goal's verdict on `metrics`: "MET" / "NOT MET" with the numbers, or None when the
    /// problem sets no goal.
    pub fn goal_verdict(&self, metrics: &[(Metric, f64)]) -> Option<GoalVerdict> {
        let g = self.exp.problem.goal?;
        let name = g.metric.describe();
        let Some(value) = metrics.iter().find(|(m, _)| *m == g.metric).map(|m| m.1) else {
            return Some(GoalVerdict {
                verdict: Verdict::NotMeasured,
                text: format!("NOT MEASURED: {name} was not computed"),
            });
        };
        let below_ok = g.below.is_none_or(|b| value < b);
        let above_ok = g.above.is_none_or(|a| value > a);
        let bound = match (g.below, g.above) {
            (Some(b), Some(a)) => format!("between {a} and {b}"),
            (Some(b), None) => format!("below {b}"),
            (None, Some(a)) => format!("above {a}"),
            (None, None) => "(no bound set)".into(),
        };
        let verdict = if below_ok && above_ok { Verdict::Met } else { Verdict::NotMet };
        let word = if verdict == Verdict::Met { "MET" } else { "NOT MET" };
        Some(GoalVerdict { verdict, text: format!("{word}: {name} = {value:.4}, goal {bound}") })
    }
}

/// What a family's evaluation protocol measured.
pub struct Evaluation {
    /// The numbers a goal can name.
    pub metrics: Vec<(Metric, f64)>,
    /// The rest of the `metrics.jsonl` test entry (protocol settings, counts, other numbers).
    pub log: Vec<(&'static str, Value)>,
    /// The family's `eval.json` object (the step is added).
    pub record: Value,
    /// The report's metrics section, markdown.
    pub section: String,
    pub figures: Vec<(String, PathBuf)>,
    /// The headline printed at the end of the command.
    pub summary: String,
    /// Samples the protocol already drew with the request the sample metrics make (count aside),
    /// so the metrics read their first `eval.metric_samples` instead of drawing again.
    pub drawn: Option<Images>,
}

/// The loss-curve figure: series of `metrics.jsonl` entries.
pub struct LossCurve {
    pub title: String,
    pub unit: &'static str,
    pub series: Vec<CurveSeries>,
}

/// One line of the loss figure: `key` of the entries of `split` ("train" or "eval"), times `sign`.
pub struct CurveSeries {
    pub name: String,
    pub split: &'static str,
    pub key: &'static str,
    pub sign: f64,
}

impl LossCurve {
    /// The training loss beside one validation series.
    pub fn train_and_validation(title: String, unit: &'static str, val_key: &'static str, val_sign: f64) -> Self {
        LossCurve {
            title,
            unit,
            series: vec![
                CurveSeries { name: "training batches".into(), split: "train", key: "loss", sign: 1.0 },
                CurveSeries { name: "validation subset".into(), split: "eval", key: val_key, sign: val_sign },
            ],
        }
    }
}

/// What a family offers the shared tail.
pub struct FamilyReport<'a> {
    pub model: String,
    pub optimizers: Vec<(String, OptimizerConfig)>,
    pub loss: LossCurve,
    /// Generates `eval.metric_samples` images for the sample metrics; None when the family does
    /// not generate images.
    pub draw: Option<&'a dyn Fn(usize) -> Result<Images>>,
}

/// A NaN or infinite metric is a broken model or a broken computation, never a result: refused
/// before `eval.json`, `metrics.jsonl` or the report is written.
fn refuse_non_finite(metrics: &[(Metric, f64)], step: u64, run_dir: &Path) -> Result<()> {
    match metrics.iter().find(|(_, v)| !v.is_finite()) {
        Some((m, v)) => Err(crate::error::PipelineError::Run(format!(
            "evaluation of step {step} in {}: {} is {v}; eval.json, metrics.jsonl and report.md were left as they were",
            run_dir.display(),
            m.describe()
        ))),
        None => Ok(()),
    }
}

/// Finishes an evaluation: the sample metrics (image generators), `eval.json`, the `metrics.jsonl`
/// test entry, the goal's verdict and `report.md`. Returns the headline and the verdict.
pub fn finish_evaluation(
    cx: &EvalContext<'_>,
    family: FamilyReport<'_>,
    splits: Option<&genlab_data::Splits>,
    mut ev: Evaluation,
    started: Instant,
) -> Result<(String, Option<String>)> {
    // The family's own numbers first, before any sample metric is computed.
    refuse_non_finite(&ev.metrics, cx.step, cx.run_dir)?;
    let mut record = ev.record.take();
    let mut samples: Option<SampleMetrics> = None;
    if let (Some(draw), Some(splits)) = (family.draw, splits) {
        // `[post] memorisation` and the metrics after the image steps are measured on the same
        // draw as the sample metrics (the filter on at least FILTER_SAMPLES of it).
        let image_steps = !cx.exp.post.image.is_empty() && cx.exp.eval.metric_samples > 0;
        let drawn = match (cx.exp.post.memorisation, image_steps) {
            (Some(_), _) => Some(draw(cx.exp.eval.metric_samples.max(crate::post::FILTER_SAMPLES))?),
            (None, true) => Some(draw(cx.exp.eval.metric_samples)?),
            (None, false) => None,
        };
        let (m, skipped) = sample_metrics_if_asked(cx, splits, &mut ev.figures, || match &drawn {
            Some(images) => Ok(images.first(cx.exp.eval.metric_samples)),
            None => draw(cx.exp.eval.metric_samples),
        })?;
        ev.section.push_str(&report_section(m.as_ref(), skipped.as_deref(), cx.run_dir));
        if let (Some(before), Some(images), true) = (&m, &drawn, image_steps) {
            let (md, after) =
                crate::post::metrics_after_steps(cx, splits, &images.first(cx.exp.eval.metric_samples), before)?;
            ev.section.push_str(&md);
            if let Value::Object(o) = &mut record {
                o.insert("samples_after_post".into(), serde_json::to_value(&after).expect("metrics should serialise"));
            }
        }
        if let (Some(config), Some(images)) = (cx.exp.post.memorisation, &drawn) {
            let (md, measured) = crate::post::memorisation_filter_report(cx, config, splits, images)?;
            ev.section.push_str(&md);
            if let Value::Object(o) = &mut record {
                o.insert("memorisation_filter".into(), measured);
            }
        }
        if let Value::Object(o) = &mut record {
            o.insert("samples".into(), serde_json::to_value(&m).expect("metrics should serialise"));
            o.insert("samples_skipped".into(), skipped.into());
        }
        samples = m;
    }
    if let Some(m) = &samples {
        let sampled = goal_metrics(m);
        refuse_non_finite(&sampled, cx.step, cx.run_dir)?;
        ev.metrics.extend(sampled);
        ev.log.extend(m.log_fields());
        ev.summary.push_str(&format!(
            "; FID {:.4}, KID {:.6} ({} samples, {})",
            m.fid, m.kid.mean, m.protocol.samples, m.protocol.features.network
        ));
    }
    if let Value::Object(o) = &mut record {
        o.insert("step".into(), cx.step.into());
    }
    genlab_core::atomic::write_atomic(
        &cx.run_dir.join("eval.json"),
        &serde_json::to_vec_pretty(&record).expect("metrics should serialise"),
    )?;
    let mut entry = serde_json::Map::new();
    entry.insert("split".into(), "test".into());
    entry.insert("step".into(), cx.step.into());
    for (m, v) in &ev.metrics {
        entry.insert(m.key().into(), (*v).into());
    }
    entry.extend(ev.log.into_iter().map(|(k, v)| (k.to_string(), v)));
    genlab_train::metrics::MetricLog::open(&cx.run_dir.join("metrics.jsonl"), None)?.log(entry)?;
    let goal = cx.goal_verdict(&ev.metrics);
    write_report(&ReportInputs {
        exp: cx.exp,
        info: cx.info,
        run_dir: cx.run_dir,
        goal: goal.clone(),
        metrics: ev.section,
        model: family.model,
        optimizers: family.optimizers,
        loss: family.loss,
        eval_seconds: started.elapsed().as_secs_f64(),
        figures: &ev.figures,
        wall_seconds: cx.started.map(|t| t.elapsed().as_secs_f64()),
    })?;
    Ok((ev.summary, goal.map(|g| g.text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12: a NaN likelihood was reported as a result ("NLL NaN nats", exit 0).
    #[test]
    fn a_non_finite_metric_is_an_error_naming_it() {
        let run = Path::new("runs/x");
        assert!(refuse_non_finite(&[(Metric::NllNats, 90.0)], 5, run).is_ok());
        for v in [f64::NAN, f64::INFINITY] {
            let err = refuse_non_finite(&[(Metric::Fid, 1.0), (Metric::NllNats, v)], 5, run).unwrap_err().to_string();
            assert!(err.starts_with("evaluation of step 5 in runs/x: ") && err.contains(&format!(" is {v};")), "{err}");
        }
    }
}
