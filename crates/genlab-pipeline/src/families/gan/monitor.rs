//! The GAN's mode-collapse monitor: the class histogram of generated digits under the installed
//! MNIST LeNet, its entropy and largest class, and for a conditional GAN how often the class asked
//! for is the class generated; during training (each evaluation step) and in the evaluation.

use crate::error::Result;
use crate::evaluation::Evaluation;
use crate::generate::Images;
use crate::metric::Metric;
use genlab_plot::{line_plot, Series};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Samples of the monitor at each evaluation step.
pub(super) const SAMPLES: usize = 1000;

pub(super) use crate::classes::{class_stats, network, ClassStats};

/// The monitor's curves during training, when it ran.
pub(super) fn figure(run_dir: &Path) -> Result<Option<(String, PathBuf)>> {
    let log = genlab_train::metrics::read_metrics(&run_dir.join("metrics.jsonl"))?;
    let series = |key: &str| -> Vec<(f64, f64)> {
        log.iter()
            .filter(|m| m.get("split").and_then(|s| s.as_str()) == Some("eval"))
            .filter_map(|m| Some((m.get("step")?.as_f64()?, m.get(key)?.as_f64()?)))
            .collect()
    };
    if series("class_entropy").is_empty() {
        return Ok(None);
    }
    line_plot(
        &run_dir.join("plots/classes.png"),
        "Mode-collapse monitor: generated digits under the MNIST LeNet",
        "nats / fraction",
        &[
            Series { name: "class entropy (nats)", points: series("class_entropy") },
            Series { name: "largest class fraction", points: series("top_class_fraction") },
            Series { name: "conditional accuracy", points: series("conditional_accuracy") },
        ],
    )?;
    Ok(Some(("The class histogram's entropy during training".into(), PathBuf::from("plots/classes.png"))))
}

/// The GAN's part of the evaluation record: the class statistics, or why they are missing.
pub(super) fn evaluation(
    stats: std::result::Result<ClassStats, String>,
    figures: Vec<(String, PathBuf)>,
    drawn: Option<Images>,
) -> Evaluation {
    let mut metrics = vec![];
    let mut log: Vec<(&'static str, serde_json::Value)> = vec![];
    let mut section = String::new();
    let mut summary = String::from("GAN evaluated");
    match &stats {
        Ok(c) => {
            metrics.push((Metric::ClassEntropy, c.entropy));
            log.push(("top_class_fraction", c.top_fraction.into()));
            let _ = write!(summary, "; class entropy {:.3} nats", c.entropy);
            if let Some(a) = c.conditional_accuracy {
                metrics.push((Metric::ConditionalAccuracy, a));
                let _ = write!(summary, ", conditional accuracy {a:.4}");
            }
            let _ = writeln!(section, "## Classes of the samples\n\n| metric | value |\n|---|---|");
            let _ = writeln!(section, "| samples classified by the MNIST LeNet | {} |", c.samples);
            let _ = writeln!(
                section,
                "| entropy of the class histogram (nats; 2.303 for uniform digits) | {:.4} |",
                c.entropy
            );
            let _ = writeln!(section, "| largest class fraction | {:.4} |", c.top_fraction);
            if let Some(a) = c.conditional_accuracy {
                let _ = writeln!(section, "| samples classified as the class they were asked for | {a:.4} |");
            }
            let h: Vec<String> = c.histogram.iter().enumerate().map(|(k, p)| format!("{k}: {p:.3}")).collect();
            let _ = writeln!(section, "| histogram | {} |\n", h.join(", "));
        }
        Err(why) => {
            let _ = writeln!(section, "## Classes of the samples\n\nNot measured: {why}.\n");
        }
    }
    let (classes, classes_skipped) = match stats {
        Ok(c) => (Some(c), None),
        Err(why) => (None, Some(why)),
    };
    Evaluation {
        metrics,
        log,
        record: serde_json::json!({ "classes": classes, "classes_skipped": classes_skipped }),
        section,
        figures,
        summary,
        drawn,
    }
}
