//! `report.md`: what was asked (the problem and its goal), whether the goal was met, what was
//! measured and how, the training run, and the figures.

use crate::error::Result;
use crate::evaluation::LossCurve;
use crate::experiment::Experiment;
use crate::run_dir::RunInfo;
use genlab_data::ToyPoints;
use genlab_plot::{line_plot, Series};
use genlab_train::OptimizerConfig;
use serde_json::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};

pub struct ReportInputs<'a> {
    pub exp: &'a Experiment,
    pub info: &'a RunInfo,
    pub run_dir: &'a Path,
    /// The goal's verdict (see [`crate::evaluation::EvalContext::goal_verdict`]).
    pub goal: Option<GoalVerdict>,
    /// The family's metrics section: markdown tables and protocol paragraphs.
    pub metrics: String,
    /// The family's model, in words, for the training table.
    pub model: String,
    /// Each optimiser the family trains with, by name.
    pub optimizers: Vec<(String, OptimizerConfig)>,
    pub loss: LossCurve,
    pub eval_seconds: f64,
    pub figures: &'a [(String, PathBuf)],
    /// Wall time of the whole command, when it ran every phase.
    pub wall_seconds: Option<f64>,
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

/// The report's table of a 2-D density model's test NLL (`model`: "flow", "mixture") beside
/// the exact density's.
pub fn likelihood_table(points: &ToyPoints, model: &str, nll: f64) -> String {
    let reference = points.reference_nll();
    format!(
        "## Likelihood, on the test points\n\n| metric | value |\n|---|---|\n\
         | NLL of the {model} (nats per point) | {nll:.4} |\n\
         | NLL of the exact density, same points (nats per point) | {reference:.4} |\n\
         | excess of the {model} over the exact density | {:.4} |\n\
         | test points | {} |\n\n",
        nll - reference,
        points.test.len() / 2
    )
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
    let series: Vec<Series<'_>> =
        r.loss.series.iter().map(|c| Series { name: &c.name, points: pick(c.split, c.key, c.sign) }).collect();
    line_plot(&r.run_dir.join("plots/loss.png"), &r.loss.title, r.loss.unit, &series)?;
    let curves: Vec<String> = series
        .iter()
        .map(|c| match c.points.last() {
            Some(last) => format!("{} ({} points, last {:.4} at step {})", c.name, c.points.len(), last.1, last.0),
            None => format!("{} (no points logged)", c.name),
        })
        .collect();

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
    let trained = r.info.stopped_at.unwrap_or(t.steps);
    let epochs = trained as f64 * t.batch_size as f64 / r.info.train_examples.max(1) as f64;
    let budget = match (r.info.stopped_at, t.max_seconds, &r.info.privacy) {
        (None, ..) => String::new(),
        (Some(_), _, Some(_)) => format!(" of {}, stopped at the privacy budget", t.steps),
        (Some(_), Some(limit), None) => format!(" of {}, stopped at train.max_seconds = {limit}", t.steps),
        (Some(_), None, None) => format!(" of {}", t.steps),
    };
    let _ = writeln!(s, "| steps | {trained}{budget} (batch {}, {:.1} epochs) |", t.batch_size, epochs);
    for (name, o) in &r.optimizers {
        let which = if r.optimizers.len() > 1 { format!("optimiser ({name})") } else { "optimiser".into() };
        let _ = writeln!(
            s,
            "| {which} | {:?}, lr {:e}, betas {:?}, eps {:e}, weight decay {} |",
            o.kind, o.lr, o.betas, o.eps, o.weight_decay
        );
    }
    let _ = writeln!(
        s,
        "| schedule | {:?}, warm-up {} steps, ending at {} of the base rate |",
        t.schedule.kind, t.schedule.warmup, t.schedule.min_ratio
    );
    let _ = writeln!(s, "| clipping / EMA | {:?} / {:?} |", t.clip_grad_norm, t.ema);
    let replicas =
        if t.replicas > 1 { format!(", each batch split across {} replicas", t.replicas) } else { String::new() };
    let _ = writeln!(
        s,
        "| device | {} ({} CPU threads available{replicas}) |",
        t.device,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if let Some(secs) = r.info.train_seconds {
        let _ = writeln!(s, "| training time | {} ({:.2} steps/s) |", hms(secs), trained as f64 / secs.max(1e-9));
    }
    let _ = writeln!(s, "| evaluation time | {} |", hms(r.eval_seconds));
    if let Some(w) = r.wall_seconds {
        let _ = writeln!(s, "| wall time, all phases (this command) | {} |", hms(w));
    }
    let _ = writeln!(s, "| seed | {} |", t.seed);
    let _ = writeln!(s, "\n![loss curve](plots/loss.png)\n");
    let _ = writeln!(s, "The loss figure's curves: {}.\n", curves.join("; "));
    if let Some(p) = &r.info.privacy {
        s.push_str(&privacy_section(r.run_dir, p, &pick("train", "epsilon", 1.0))?);
    }
    let _ = writeln!(s, "## Figures\n");
    for (title, path) in r.figures {
        let _ = writeln!(s, "**{title}**\n\n![{title}]({})\n", path.display());
    }
    s.push_str(&responsibility(e, &s));
    let _ = writeln!(s, "## Files\n\n`experiment.toml` (the resolved experiment), `metrics.jsonl` (training log and evaluations), `eval.json`, `checkpoints/latest/`.");
    let _ = writeln!(s, "Reproduce: `genlab run {}/experiment.toml`.", r.run_dir.display());
    genlab_core::atomic::write_atomic(&r.run_dir.join("report.md"), s.as_bytes())?;
    Ok(())
}

/// The report's "Privacy" section of a private run: the guarantee, how it was obtained, and
/// epsilon over the steps (`plots/epsilon.png`).
fn privacy_section(
    run_dir: &std::path::Path,
    p: &crate::run_dir::PrivacyRecord,
    curve: &[(f64, f64)],
) -> Result<String> {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Privacy
"
    );
    let _ = writeln!(
        s,
        "These weights are **({:.3}, {:e})-differentially private** with respect to one training example: DP-SGD (Abadi et al. 2016) with Poisson sampling, each example's gradient clipped to L2 norm {} and Gaussian noise of standard deviation {:.4} x {} added to their sum, accounted by the Rényi-DP accountant of the sampled Gaussian mechanism (Mironov et al. 2019) over Opacus's orders, converted to (epsilon, delta) as Opacus converts it.\n",
        p.epsilon, p.delta, p.max_grad_norm, p.noise_multiplier, p.max_grad_norm
    );
    let _ = writeln!(s, "| | |\n|---|---|");
    let target = p.target_epsilon.map_or("none (a fixed noise multiplier)".to_string(), |t| t.to_string());
    let _ = writeln!(s, "| epsilon spent / target | {:.4} / {target} |", p.epsilon);
    let _ = writeln!(s, "| delta | {:e} |", p.delta);
    let _ = writeln!(s, "| noise multiplier | {:.4} |", p.noise_multiplier);
    let _ = writeln!(s, "| per-example clipping norm | {} |", p.max_grad_norm);
    let _ = writeln!(s, "| sampling rate q | {:.6} (Poisson) |", p.sample_rate);
    let _ = writeln!(s, "| private steps | {} |", p.steps);
    let phases: Vec<String> = p
        .history
        .iter()
        .map(|h| format!("{} steps at noise {:.4}, q {:.6}", h.steps, h.noise_multiplier, h.sample_rate))
        .collect();
    let _ = writeln!(s, "| accountant's phases | {} |", phases.join("; "));
    if !curve.is_empty() {
        line_plot(
            &run_dir.join("plots/epsilon.png"),
            "privacy spent",
            "epsilon",
            &[Series { name: "epsilon (delta fixed)", points: curve.to_vec() }],
        )?;
        let _ = writeln!(s, "\n![epsilon over steps](plots/epsilon.png)\n");
    }
    let _ = writeln!(
        s,
        "The guarantee covers the weights and everything computed from them (samples, scores); the evaluation reads held-out data, which the guarantee does not cover. The noise comes from the run's seeded stream, so the run is reproducible; a deployment that needs noise an adversary cannot predict should use a fresh seed that is kept secret (Opacus's `secure_mode` draws it from the operating system).\n"
    );
    Ok(s)
}

/// The report's "Data and responsibility" section: where the data came from and under what
/// licence, the memorisation figures the report holds, and the post-processing in force on what
/// the run generates (filters, watermarks) with what they withhold.
fn responsibility(e: &Experiment, report: &str) -> String {
    let mut s = String::from("## Data and responsibility\n\n| | |\n|---|---|\n");
    let _ = writeln!(s, "| data | {}: {} |", e.data.dataset.describe(), e.data.dataset.licence());
    let memorised = if report.contains("Memorisation") || report.contains("memorised") {
        "measured: see the memorisation figures above"
    } else {
        "not measured by this evaluation (images: `eval.metric_samples`; text: `model.memorisation_tokens`)"
    };
    let _ = writeln!(s, "| memorisation | {memorised} |");
    let p = &e.post;
    let image: Vec<String> = p.image.iter().map(|step| step.describe()).collect();
    let _ = writeln!(
        s,
        "| image post-processing | {} |",
        if image.is_empty() { "none".into() } else { image.join(", then ") }
    );
    let _ = writeln!(
        s,
        "| image watermark | {} |",
        p.watermark.as_ref().map_or("none".to_string(), |w| format!(
            "dwtDct (invisible-watermark's method), key {}, step {}: `genlab watermark detect DIR --run RUN`",
            w.key, w.scale
        ))
    );
    let _ = writeln!(
        s,
        "| text watermark | {} |",
        p.text_watermark.map_or("none".to_string(), |t| format!(
            "green list (Kirchenbauer et al. 2023), gamma {}, delta {}: `genlab watermark detect --text FILE --run RUN`",
            t.gamma, t.delta
        ))
    );
    let text = p.text.as_ref().map_or("none".to_string(), |t| {
        let mut parts = Vec::new();
        if let Some(c) = &t.corrector {
            parts.push(format!("each line corrected by the seq2seq run {}", c.display()));
        }
        if t.normalize {
            parts.push("whitespace and punctuation normalised".to_string());
        }
        if let Some(sp) = t.spelling {
            parts.push(format!("spelling corrected within {} edits", sp.max_distance));
        }
        if !t.blocklist.is_empty() {
            parts.push(format!("a blocklist of {} words ({:?})", t.blocklist.len(), t.block_action));
        }
        if t.redact {
            parts.push("e-mail addresses, URLs and phone numbers redacted".into());
        }
        if let Some(n) = t.verbatim_chars {
            parts.push(format!("texts repeating {n} training characters withheld"));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join("; ")
        }
    });
    let _ = writeln!(s, "| text filters | {text} |");
    let _ = writeln!(
        s,
        "\n`genlab sample` and `genlab serve` apply all of these to every sample (`genlab sample --raw` shows the model's own); `genlab sample` says what a filter withheld, the server counts it in `/metrics` (`genlab_post_filtered_total`).\n"
    );
    s
}
