//! The classifier's part of the pipeline: training with a periodic validation loss and accuracy,
//! the test accuracy with a confusion matrix and a figure of the misclassified images, and, when
//! `[deploy] feature_network` asks for it, installing the weights as the feature network of the
//! sample metrics.

use crate::error::{PipelineError, Result};
use crate::experiment::{Experiment, GoalMetric, ModelConfig};
use crate::images::{EvalImages, LabelledBatches, Splits};
use crate::report::{goal_verdict, split_name, write_report, LossCurve, ReportInputs, Verdict};
use crate::run::{evaluate_trained, single_optimizer, train, EvalContext, Finished, RunDir};
use burn::tensor::Device;
use genlab_core::grid::{save_grid, ImageBatch};
use genlab_core::progress::Progress;
use genlab_core::tensors::to_f32_vec;
use genlab_eval::extract::FeatureNetwork;
use genlab_eval::lenet::{install, LenetCard};
use genlab_models::classifier::Classifier;
use genlab_nn::distributions::categorical_log_prob;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::PathBuf;

/// Test-set numbers of a classifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifierEval {
    pub step: u64,
    pub accuracy: f64,
    /// Mean cross-entropy, nats per example.
    pub nll_nats: f64,
    pub examples: usize,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    pub seconds: f64,
    /// Where the weights were installed as a feature network, with the file's SHA-1.
    pub installed: Option<(PathBuf, String)>,
    /// The predicted class of each example.
    #[serde(skip)]
    pub predictions: Vec<usize>,
}

/// Every label of the evaluation split must be one the classifier was built for.
pub(crate) fn check_labels(splits: &Splits, describe: &str) -> Result<()> {
    let classes = splits.train.class_names.len();
    let Some(labels) = &splits.eval.labels else {
        return Err(PipelineError::Config(format!(
            "{describe}: the evaluation split has no labels; a classifier is evaluated on labelled data"
        )));
    };
    match splits.eval_rows.iter().map(|&r| labels[r]).find(|&l| l as usize >= classes) {
        Some(l) => Err(PipelineError::Config(format!(
            "{describe}: the evaluation split has label {l}, but the training split has {classes} classes (0..{classes})"
        ))),
        None => Ok(()),
    }
}

/// Accuracy, mean cross-entropy, confusion matrix and the predictions of `model` on `set`, `batch`
/// examples at a time.
fn classify(
    model: &Classifier,
    set: &EvalImages,
    batch: usize,
    device: &Device,
    label: Option<&str>,
) -> ClassifierEval {
    let started = std::time::Instant::now();
    let labels = set.labels.as_ref().expect("checked by check_labels");
    let classes = model.out.weight.val().dims()[1];
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut predictions = Vec::with_capacity(set.n);
    let mut nll = 0.0f64;
    let mut progress = label.map_or_else(Progress::hidden, |l| Progress::new(l, set.n as u64, 0));
    for s in (0..set.n).step_by(batch) {
        let e = (s + batch).min(set.n);
        let logits = model.logits(set.tensor(s, e, device));
        let y = set.labels_tensor(s, e, device).expect("checked by check_labels");
        nll -= to_f32_vec(categorical_log_prob(logits.clone(), y).sum())[0] as f64;
        for (i, row) in to_f32_vec(logits).chunks(classes).enumerate() {
            let pred = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(k, _)| k);
            confusion[labels[s + i] as usize][pred] += 1;
            predictions.push(pred);
        }
        progress.update(e as u64, "images");
    }
    progress.finish();
    let correct: usize = (0..classes).map(|k| confusion[k][k]).sum();
    let n = set.n.max(1) as f64;
    ClassifierEval {
        step: 0,
        accuracy: correct as f64 / n,
        nll_nats: nll / n,
        examples: set.n,
        confusion,
        seconds: started.elapsed().as_secs_f64(),
        installed: None,
        predictions,
    }
}

/// Phases 4 to 8 of a classifier run.
pub(crate) fn run_phases(
    exp: &Experiment,
    run: &mut RunDir,
    model: Classifier,
    mut batches: LabelledBatches,
    splits: &Splits,
    device: &Device,
) -> Result<Finished> {
    let periodic = EvalImages::periodic(splits, exp);
    let eval_device = device.clone().inner();
    let trained = train(exp, run, model, single_optimizer(exp), &mut batches, device, |_, m: &Classifier| {
        let v = classify(m, &periodic, exp.eval.batch_size, &eval_device, None);
        Ok(vec![("val_loss".to_string(), v.nll_nats), ("val_accuracy".to_string(), v.accuracy)])
    })?;
    evaluate_trained(exp, run, trained, eval_device, |cx, m| eval_and_report(cx, m, splits))
}

/// Test accuracy, the misclassified images, the installation when asked for; writes `eval.json`,
/// a `metrics.jsonl` entry and `report.md`.
pub(crate) fn eval_and_report(
    cx: &EvalContext<'_>,
    model: &Classifier,
    splits: &Splits,
) -> Result<(String, Option<String>)> {
    let exp = cx.exp;
    let e = &exp.eval;
    let set = EvalImages::evaluation(splits, exp);
    check_labels(splits, &exp.data.dataset.describe())?;
    let mut eval = classify(model, &set, e.batch_size, &cx.device, Some("evaluate"));
    eval.step = cx.step;
    eprintln!(
        "test: accuracy {:.4}, cross-entropy {:.4} nats, {} examples",
        eval.accuracy, eval.nll_nats, eval.examples
    );
    let figures = vec![misclassified_figure(&set, &eval.predictions, cx)?];
    let goal = goal_verdict(exp, |g| (g == GoalMetric::Accuracy).then_some(eval.accuracy));
    // Installed by the run that trained it, scored on the whole evaluation split; a later
    // `genlab eval` (perhaps on a subset) never replaces the installed file.
    if exp.deploy.feature_network == Some(FeatureNetwork::MnistLenet) {
        if !cx.after_training {
            eprintln!("not installed again: only the run that trains a feature network installs it");
        } else if set.n < splits.eval_rows.len() {
            eprintln!(
                "not installed as a feature network: evaluated on {} of {} examples (eval.examples)",
                set.n,
                splits.eval_rows.len()
            );
        } else if goal.as_ref().is_some_and(|g| g.verdict != Verdict::Met) {
            eprintln!("not installed as a feature network: the goal was not met");
        } else {
            eval.installed = Some(install_lenet(cx, model, &eval)?);
        }
    }
    genlab_core::atomic::write_atomic(
        &cx.run_dir.join("eval.json"),
        &serde_json::to_vec_pretty(&eval).expect("metrics should serialise"),
    )?;
    cx.log_evaluation(vec![
        ("accuracy", eval.accuracy.into()),
        ("nll_nats", eval.nll_nats.into()),
        ("examples", eval.examples.into()),
    ])?;
    let ModelConfig::Classifier(c) = &exp.model else { unreachable!("a classifier run holds a classifier config") };
    write_report(&ReportInputs {
        exp,
        info: cx.info,
        run_dir: cx.run_dir,
        goal: goal.clone(),
        metrics: markdown(cx, &eval),
        model: format!(
            "LeNet-style classifier: {}x{} convolutions {:?} each with 2x2 max pooling, hidden layer {}, {} classes",
            c.kernel,
            c.kernel,
            c.channels,
            c.hidden,
            eval.confusion.len()
        ),
        loss: LossCurve {
            title: "Loss: cross-entropy per example".into(),
            unit: "nats",
            val_key: "val_loss",
            val_sign: 1.0,
        },
        eval_seconds: eval.seconds,
        figures: &figures,
        wall_seconds: cx.started.map(|t| t.elapsed().as_secs_f64()),
    })?;
    let mut summary = format!("test accuracy {:.4} ({} examples)", eval.accuracy, eval.examples);
    if let Some((path, sha1)) = &eval.installed {
        let _ = write!(summary, "; installed as the MNIST LeNet feature network: {} (sha1 {sha1})", path.display());
    }
    Ok((summary, goal.map(|g| g.text)))
}

/// Installs the weights as the MNIST LeNet feature network; returns the file and its SHA-1.
fn install_lenet(cx: &EvalContext<'_>, model: &Classifier, eval: &ClassifierEval) -> Result<(PathBuf, String)> {
    let ModelConfig::Classifier(config) = &cx.exp.model else {
        unreachable!("a classifier run holds a classifier config")
    };
    let card = LenetCard {
        config: config.clone(),
        classes: eval.confusion.len(),
        test_accuracy: eval.accuracy,
        source_run: cx.run_dir.display().to_string(),
    };
    let path = FeatureNetwork::MnistLenet.default_path();
    let sha1 = install(model, &card, &path)?;
    eprintln!("installed the MNIST LeNet feature network: {} (sha1 {sha1})", path.display());
    Ok((path, sha1))
}

/// Up to 64 misclassified evaluation images, in order.
fn misclassified_figure(set: &EvalImages, predictions: &[usize], cx: &EvalContext<'_>) -> Result<(String, PathBuf)> {
    let labels = set.labels.as_ref().expect("checked by check_labels");
    let len: usize = set.shape.iter().product();
    let symmetric = cx.exp.data.transforms.contains(&genlab_data::Transform::ScaleSymmetric);
    let (mut data, mut captions) = (Vec::new(), Vec::new());
    for (i, &pred) in predictions.iter().enumerate().filter(|&(i, &p)| p != labels[i] as usize).take(64) {
        data.extend(set.data[i * len..(i + 1) * len].iter().map(|&v| if symmetric { (v + 1.0) * 0.5 } else { v }));
        captions.push(format!("{}->{pred}", labels[i]));
    }
    let rel = PathBuf::from("samples/misclassified.png");
    let [c, h, w] = set.shape;
    save_grid(&ImageBatch::new(data, captions.len(), c, h, w), 8, &cx.run_dir.join(&rel))?;
    let title = format!(
        "The first {} misclassified evaluation images, row by row (true->predicted: {})",
        captions.len(),
        captions.join(", ")
    );
    Ok((title, rel))
}

fn markdown(cx: &EvalContext<'_>, eval: &ClassifierEval) -> String {
    let exp = cx.exp;
    let mut s = String::new();
    let _ = writeln!(s, "## Metrics, on {}\n\n| metric | value |\n|---|---|", split_name(exp));
    let _ = writeln!(s, "| accuracy | {:.4} |", eval.accuracy);
    let _ = writeln!(s, "| cross-entropy (nats per example) | {:.4} |", eval.nll_nats);
    let _ = writeln!(s, "| evaluation examples | {} |\n", eval.examples);
    let names = &cx.info.class_names;
    let name = |k: usize| names.get(k).cloned().unwrap_or_else(|| k.to_string());
    let _ = writeln!(s, "Confusion matrix (rows: true class, columns: predicted class):\n");
    let _ = writeln!(s, "| | {} |", (0..eval.confusion.len()).map(name).collect::<Vec<_>>().join(" | "));
    let _ = writeln!(s, "|---|{}", "---|".repeat(eval.confusion.len()));
    for (k, row) in eval.confusion.iter().enumerate() {
        let cells: Vec<String> = row.iter().map(usize::to_string).collect();
        let _ = writeln!(s, "| **{}** | {} |", name(k), cells.join(" | "));
    }
    let _ = writeln!(
        s,
        "\nProtocol: {} weights of step {}; the evaluation split transformed once with evaluation seed {}; the predicted class is the largest logit.\n",
        if exp.train.ema.is_some() { "EMA" } else { "final" },
        eval.step,
        exp.eval.seed
    );
    if let Some((path, sha1)) = &eval.installed {
        let _ = writeln!(
            s,
            "Installed as the MNIST LeNet feature network (`eval.features = \"mnist_lenet\"`): `{}`, SHA-1 `{sha1}`.\n",
            path.display()
        );
    }
    s
}
