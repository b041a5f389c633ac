//! `report.md`: what was asked (the problem and its goal), whether the goal was met, what was
//! measured and how, the training run, and the figures.

use crate::error::Result;
use crate::experiment::{Experiment, GoalMetric, ModelConfig};
use crate::plots::{line_plot, Series};
use crate::run::RunInfo;
use crate::vae::VaeMetrics;
use serde_json::Value;
use std::fmt::Write;
use std::path::{Path, PathBuf};

pub struct ReportInputs<'a> {
    pub exp: &'a Experiment,
    pub info: &'a RunInfo,
    pub metrics: &'a VaeMetrics,
    pub figures: &'a [(String, PathBuf)],
    pub run_dir: &'a Path,
    /// Wall time of the whole command, when it ran every phase.
    pub wall_seconds: Option<f64>,
}

/// "met" / "not met" with the numbers, or None when the problem sets no goal.
pub fn goal_verdict(exp: &Experiment, m: &VaeMetrics) -> Option<String> {
    let g = exp.problem.goal?;
    let (name, value) = match g.metric {
        GoalMetric::NllNats => ("NLL on the evaluation split (nats)", m.nll_nats),
        GoalMetric::NegElboNats => ("negative ELBO on the evaluation split (nats)", -m.elbo_nats),
    };
    let below_ok = g.below.is_none_or(|b| value < b);
    let above_ok = g.above.is_none_or(|a| value > a);
    let bound = match (g.below, g.above) {
        (Some(b), Some(a)) => format!("between {a} and {b}"),
        (Some(b), None) => format!("below {b}"),
        (None, Some(a)) => format!("above {a}"),
        (None, None) => "(no bound set)".into(),
    };
    let verdict = if below_ok && above_ok { "MET" } else { "NOT MET" };
    Some(format!("{verdict}: {name} = {value:.2}, goal {bound}"))
}

/// The evaluation split, in words.
fn split_name(e: &Experiment) -> String {
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
    let val_curve = pick("eval", "val_elbo", -1.0);
    let loss_png = r.run_dir.join("plots/loss.png");
    let ModelConfig::Vae(vc) = &r.exp.model;
    let title = if vc.beta == 1.0 {
        "Loss: negative ELBO per example".to_string()
    } else {
        format!("Loss: -log p(x|z) + {} KL per example (the validation curve is the negative ELBO)", vc.beta)
    };
    line_plot(
        &loss_png,
        &title,
        "nats",
        &[
            Series { name: "training batches", points: train_curve.clone() },
            Series { name: "validation subset", points: val_curve },
        ],
    )?;

    let e = r.exp;
    let m = r.metrics;
    let t = &e.train;
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", e.problem.name);
    if !e.problem.task.is_empty() {
        let _ = writeln!(s, "**Task.** {}\n", e.problem.task);
    }
    match goal_verdict(e, m) {
        Some(v) => {
            let _ = writeln!(s, "**Goal.** {v}\n");
        }
        None => {
            let _ = writeln!(s, "**Goal.** none set in `[problem]`\n");
        }
    }
    let _ = writeln!(s, "## Metrics, on {}\n\n| metric | value |\n|---|---|", split_name(e));
    let _ = writeln!(s, "| NLL, minus the IWAE bound with k = {} (nats per example) | {:.2} |", m.iwae_k, m.nll_nats);
    let _ = writeln!(s, "| ELBO (nats per example) | {:.2} |", m.elbo_nats);
    let dims = r.info.data_shape.iter().product::<usize>();
    let _ =
        writeln!(s, "| NLL in bits per dimension | {:.4} |", genlab_eval::likelihood::bits_per_dim(m.nll_nats, dims));
    let _ = writeln!(s, "| evaluation examples | {} |", m.examples);
    if let Some(last) = train_curve.last() {
        let _ = writeln!(s, "| final training loss (nats, mean of the last logged window) | {:.2} |", last.1);
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Protocol: {} weights of the last checkpoint; the evaluation split ({}) transformed once with evaluation seed {} \
         (so a binarised evaluation set is the same for every run); ELBO with one reparameterised sample and the analytic KL; \
         NLL as minus the importance-weighted bound of Burda et al. (2016) with k = {} posterior samples per example. \
         Both are in nats per example (divide by {} for nats per pixel).\n",
        if t.ema.is_some() { "EMA" } else { "final" },
        split_name(e),
        e.eval.seed,
        m.iwae_k,
        r.info.data_shape.iter().product::<usize>()
    );
    let _ = writeln!(s, "## Training\n\n| | |\n|---|---|");
    let _ = writeln!(
        s,
        "| data | {} ({} training examples, shape {:?}), transforms {:?} |",
        e.data.dataset.describe(),
        r.info.train_examples,
        r.info.data_shape,
        e.data.transforms
    );
    let ModelConfig::Vae(v) = &e.model;
    let _ = writeln!(
        s,
        "| model | VAE, {:?} {}, latent {}, {:?} likelihood, beta {}; {} parameters |",
        v.architecture,
        match v.architecture {
            genlab_models::vae::Architecture::Conv => format!("channels {:?}", v.channels),
            genlab_models::vae::Architecture::Mlp => format!("hidden {:?}", v.hidden),
        },
        v.latent_dim,
        v.likelihood,
        v.beta,
        r.info.parameters
    );
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
    let _ = writeln!(s, "| evaluation time | {} |", hms(m.seconds));
    if let Some(w) = r.wall_seconds {
        let _ = writeln!(s, "| wall time, all phases (this command) | {} |", hms(w));
    }
    let _ = writeln!(s, "| seed | {} |", t.seed);
    let _ = writeln!(s, "\n![loss curve](plots/loss.png)\n");
    let _ = writeln!(s, "## Figures\n");
    for (title, path) in r.figures {
        let _ = writeln!(s, "**{title}**\n\n![{title}]({})\n", path.display());
    }
    let _ = writeln!(s, "## Files\n\n`experiment.toml` (the resolved experiment), `metrics.jsonl` (training log), `eval.json`, `checkpoints/latest/`.");
    let _ = writeln!(
        s,
        "Reproduce: `genlab run {}/experiment.toml`; sample: `genlab sample {} -n 64 --seed 1 -o grid.png`.",
        r.run_dir.display(),
        r.run_dir.display()
    );
    genlab_core::atomic::write_atomic(&r.run_dir.join("report.md"), s.as_bytes())?;
    Ok(())
}
