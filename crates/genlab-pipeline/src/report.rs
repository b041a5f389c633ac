//! `report.md`: what was asked (the problem and its goal), whether the goal was met, what was
//! measured and how, the training run, and the figures.

use crate::error::Result;
use crate::experiment::{Experiment, GoalMetric};
use crate::plots::{line_plot, Series};
use crate::run::RunInfo;
use serde_json::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};

pub struct ReportInputs<'a> {
    pub exp: &'a Experiment,
    pub info: &'a RunInfo,
    pub run_dir: &'a Path,
    /// The goal's verdict (see [`goal_verdict`]).
    pub goal: Option<GoalVerdict>,
    /// The family's metrics section: markdown tables and protocol paragraphs.
    pub metrics: String,
    /// The family's model, in words, for the training table.
    pub model: String,
    pub loss: LossCurve,
    pub eval_seconds: f64,
    pub figures: &'a [(String, PathBuf)],
    /// Wall time of the whole command, when it ran every phase.
    pub wall_seconds: Option<f64>,
}

/// The loss-curve figure: the training loss and one validation series from `metrics.jsonl`.
pub struct LossCurve {
    pub title: String,
    pub unit: &'static str,
    /// The validation entry's key, and the sign that turns it into the loss's direction.
    pub val_key: &'static str,
    pub val_sign: f64,
}

/// Whether a run met its goal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    NotMet,
    /// The goal's metric was not computed (a sample metric whose feature network is missing).
    NotMeasured,
}

/// The verdict and the sentence that gives the numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalVerdict {
    pub verdict: Verdict,
    pub text: String,
}

impl std::fmt::Display for GoalVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// "MET" / "NOT MET" with the numbers, or None when the problem sets no goal.
pub fn goal_verdict(exp: &Experiment, value: impl Fn(GoalMetric) -> Option<f64>) -> Option<GoalVerdict> {
    let g = exp.problem.goal?;
    let name = match g.metric {
        GoalMetric::NllNats => "NLL on the evaluation split (nats)",
        GoalMetric::NegElboNats => "negative ELBO on the evaluation split (nats)",
        GoalMetric::Fid => "FID against the evaluation split",
        GoalMetric::Accuracy => "accuracy on the evaluation split",
        GoalMetric::BitsPerDim => "NLL on the evaluation split (bits/dim)",
    };
    let Some(value) = value(g.metric) else {
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

/// The evaluation split, in words.
pub fn split_name(e: &Experiment) -> String {
    match (e.data.validation.fraction, e.data.validation.from) {
        (Some(f), _) => format!("a fixed {:.0}% held out of the training set", f * 100.0),
        (None, Some(genlab_data::Split::Train)) => "the training split itself".into(),
        (None, _) => "the dataset's test split".into(),
    }
}

fn hms(s: f64) -> String {
    let s = s.round() as u64;
    format!("{}m{:02}s", s / 60, s % 60)
}

/// Draws the loss curve from `metrics.jsonl` and writes `report.md`.
pub fn write_report(r: &ReportInputs<'_>) -> Result<()> {
    let metrics = genlab_train::metrics::read_metrics(&r.run_dir.join("metrics.jsonl"))?;
    let pick = |split: &str, key: &str, sign: f64| -> Vec<(f64, f64)> {
        metrics
            .iter()
            .filter(|m| m.get("split").and_then(Value::as_str) == Some(split))
            .filter_map(|m| Some((m.get("step")?.as_f64()?, sign * m.get(key)?.as_f64()?)))
            .collect()
    };
    let train_curve = pick("train", "loss", 1.0);
    let val_curve = pick("eval", r.loss.val_key, r.loss.val_sign);
    line_plot(
        &r.run_dir.join("plots/loss.png"),
        &r.loss.title,
        r.loss.unit,
        &[
            Series { name: "training batches", points: train_curve.clone() },
            Series { name: "validation subset", points: val_curve },
        ],
    )?;

    let e = r.exp;
    let t = &e.train;
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", e.problem.name);
    if !e.problem.task.is_empty() {
        let _ = writeln!(s, "**Task.** {}\n", e.problem.task);
    }
    match &r.goal {
        Some(v) => {
            let _ = writeln!(s, "**Goal.** {v}\n");
        }
        None => {
            let _ = writeln!(s, "**Goal.** none set in `[problem]`\n");
        }
    }
    s.push_str(&r.metrics);
    if let Some(last) = train_curve.last() {
        let _ = writeln!(s, "Final training loss (mean of the last logged window): {:.4} {}.\n", last.1, r.loss.unit);
    }
    let _ = writeln!(s, "## Training\n\n| | |\n|---|---|");
    let _ = writeln!(
        s,
        "| data | {} ({} training examples, shape {:?}), transforms {:?} |",
        e.data.dataset.describe(),
        r.info.train_examples,
        r.info.data_shape,
        e.data.transforms
    );
    let _ = writeln!(s, "| model | {}; {} parameters |", r.model, r.info.parameters);
    let epochs = t.steps as f64 * t.batch_size as f64 / r.info.train_examples.max(1) as f64;
    let _ = writeln!(s, "| steps | {} (batch {}, {:.1} epochs) |", t.steps, t.batch_size, epochs);
    let o = &t.optimizer;
    let _ = writeln!(
        s,
        "| optimiser | {:?}, lr {:e}, betas {:?}, eps {:e}, weight decay {} |",
        o.kind, o.lr, o.betas, o.eps, o.weight_decay
    );
    let _ = writeln!(
        s,
        "| schedule | {:?}, warm-up {} steps, ending at {} of the base rate |",
        t.schedule.kind, t.schedule.warmup, t.schedule.min_ratio
    );
    let _ = writeln!(s, "| clipping / EMA | {:?} / {:?} |", t.clip_grad_norm, t.ema);
    let _ = writeln!(
        s,
        "| device | {} ({} CPU threads available) |",
        t.device,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if let Some(secs) = r.info.train_seconds {
        let _ = writeln!(s, "| training time | {} ({:.2} steps/s) |", hms(secs), t.steps as f64 / secs.max(1e-9));
    }
    let _ = writeln!(s, "| evaluation time | {} |", hms(r.eval_seconds));
    if let Some(w) = r.wall_seconds {
        let _ = writeln!(s, "| wall time, all phases (this command) | {} |", hms(w));
    }
    let _ = writeln!(s, "| seed | {} |", t.seed);
    let _ = writeln!(s, "\n![loss curve](plots/loss.png)\n");
    let _ = writeln!(s, "## Figures\n");
    for (title, path) in r.figures {
        let _ = writeln!(s, "**{title}**\n\n![{title}]({})\n", path.display());
    }
    let _ = writeln!(s, "## Files\n\n`experiment.toml` (the resolved experiment), `metrics.jsonl` (training log and evaluations), `eval.json`, `checkpoints/latest/`.");
    let _ = writeln!(s, "Reproduce: `genlab run {}/experiment.toml`.", r.run_dir.display());
    genlab_core::atomic::write_atomic(&r.run_dir.join("report.md"), s.as_bytes())?;
    Ok(())
}
