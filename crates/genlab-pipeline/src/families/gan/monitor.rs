//! The GAN's mode-collapse monitor: the class histogram of generated digits under the installed
//! MNIST LeNet, its entropy and largest class, and for a conditional GAN how often the class asked
//! for is the class generated; during training (each evaluation step) and in the evaluation.

use crate::error::Result;
use crate::evaluation::Evaluation;
use crate::generate::Images;
use crate::experiment::Experiment;
use crate::metric::Metric;
use genlab_plot::{line_plot, Series};
use burn::tensor::Device;
use genlab_data::DatasetName;
use genlab_eval::lenet::{LenetExtractor, LENET_INPUT, MNIST_LENET_FILE};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Samples of the monitor at each evaluation step.
pub(super) const SAMPLES: usize = 1000;

/// What the MNIST LeNet says of generated digits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassStats {
    pub samples: usize,
    /// Fraction of samples per predicted class.
    pub histogram: Vec<f64>,
    /// Entropy of the histogram, nats (ln 10 = 2.303 for uniform digits); a collapse lowers it.
    pub entropy: f64,
    /// The largest class's fraction.
    pub top_fraction: f64,
    /// Conditional GANs: the fraction of samples the classifier puts in the class they were asked for.
    pub conditional_accuracy: Option<f64>,
}

/// The class statistics of `n` generated images (8-bit `pixels`), asked for `labels` when
/// conditional.
pub(super) fn class_stats(net: &LenetExtractor, pixels: &[f32], labels: Option<&[usize]>, n: usize) -> ClassStats {
    let predicted = net.classify(pixels, n);
    let k = net.card.classes;
    let mut counts = vec![0usize; k];
    predicted.iter().for_each(|&p| counts[p] += 1);
    let histogram: Vec<f64> = counts.iter().map(|&c| c as f64 / n as f64).collect();
    let entropy = -histogram.iter().filter(|&&p| p > 0.0).map(|p| p * p.ln()).sum::<f64>();
    let top_fraction = histogram.iter().copied().fold(0.0, f64::max);
    let conditional_accuracy =
        labels.map(|l| l.iter().zip(&predicted).filter(|(a, b)| a == b).count() as f64 / n as f64);
    ClassStats { samples: n, histogram, entropy, top_fraction, conditional_accuracy }
}

/// The MNIST LeNet when the data are MNIST digits and the network is installed.
pub(super) fn network(
    exp: &Experiment,
    shape: [usize; 3],
    device: &Device,
) -> std::result::Result<LenetExtractor, String> {
    if exp.data.dataset != genlab_data::DatasetSource::Named(DatasetName::Mnist) || shape != LENET_INPUT {
        return Err(format!("the MNIST classifier does not know the classes of {}", exp.data.dataset.describe()));
    }
    LenetExtractor::load(&genlab_eval::weights::weights_dir().join(MNIST_LENET_FILE), device).map_err(|e| e.to_string())
}

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
