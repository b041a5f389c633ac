//! The classifier family: not generative, the LeNet-style network that serves as the in-domain
//! feature network of the sample metrics. Trained with a periodic validation loss and accuracy;
//! evaluated by the test accuracy with a confusion matrix and a figure of the misclassified
//! images; `[deploy] feature_network` installs the weights as the MNIST LeNet.

use crate::data::{Data, DataFacts};
use crate::error::{PipelineError, Result};
use crate::evaluation::{EvalContext, Evaluation, LossCurve};
use crate::experiment::{Experiment, KeyError};
use crate::family::{model_error, Batches, Family, FamilyCard, NoOptions, PeriodicContext, Section};
use crate::generate::{Capabilities, GenerateRequest, Generated, OutputKind};
use genlab_data::EvalImages;
use crate::metric::Metric;
use crate::report::Verdict;
use burn::tensor::Device;
use genlab_core::events::EventSink;
use genlab_core::grid::{save_grid, ImageBatch};
use genlab_core::progress::Progress;
use genlab_core::tensors::to_f32_vec;
use genlab_data::{DataKind, DatasetName, DatasetSource, Transform};
use genlab_eval::extract::FeatureNetwork;
use genlab_eval::lenet::{install, LenetCard};
use genlab_models::classifier::{Classifier, ClassifierConfig};
use genlab_nn::distributions::categorical_log_prob;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::PathBuf;

/// Test-set numbers of a classifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassifierEval {
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

pub struct ClassifierFamily {
    config: ClassifierConfig,
    shape: [usize; 3],
    classes: usize,
    exp: Experiment,
}

impl Family for ClassifierFamily {
    type Network = ClassifierConfig;
    type Options = NoOptions;
    type Model = Classifier;
    type Validation = EvalImages;

    const CARD: FamilyCard = FamilyCard {
        name: "classifier",
        summary: "LeNet-style image classifier (not generative): the in-domain feature network of the sample metrics",
        data: &[DataKind::Images],
    };

    fn check(s: &Section<ClassifierConfig, NoOptions>, exp: &Experiment) -> Result<(), KeyError> {
        s.network.check().map_err(model_error)?;
        let err = |m: String| Err(("deploy.feature_network".to_string(), m));
        match exp.deploy.feature_network {
            None => Ok(()),
            Some(FeatureNetwork::MnistLenet) if exp.data.dataset != DatasetSource::Named(DatasetName::Mnist) => err(format!(
                " = \"mnist_lenet\": installs the MNIST feature network, so data.dataset must be \"mnist\", not {}",
                exp.data.dataset.describe()
            )),
            Some(FeatureNetwork::MnistLenet) if exp.data.transforms == [Transform::ScaleUnit] => Ok(()),
            Some(FeatureNetwork::MnistLenet) => err(
                " = \"mnist_lenet\": the feature network reads pixels / 255, so data.transforms must be [\"scale_unit\"]".into(),
            ),
            Some(FeatureNetwork::Inception) => err(
                " = \"inception\": the FID Inception comes from its own file; a classifier run installs \"mnist_lenet\"".into(),
            ),
        }
    }

    fn metrics(_: &Section<ClassifierConfig, NoOptions>, _: DataKind) -> Vec<Metric> {
        vec![Metric::Accuracy]
    }

    fn output(_: &Section<ClassifierConfig, NoOptions>, _: DataKind) -> OutputKind {
        OutputKind::Nothing
    }

    fn deploys_feature_network() -> bool {
        true
    }

    fn trains_privately() -> bool {
        true
    }

    fn new(s: Section<ClassifierConfig, NoOptions>, exp: &Experiment, facts: &DataFacts) -> Self {
        ClassifierFamily { config: s.network, shape: facts.shape, classes: facts.class_names.len(), exp: exp.clone() }
    }

    fn check_data(&self, data: &Data) -> Result<()> {
        Ok(data.images()?.check_labels(&self.exp.data.dataset.describe())?)
    }

    fn init(&self, seed: u64, device: &Device) -> Result<Classifier> {
        Ok(self.config.init(self.shape, self.classes, seed, device)?)
    }

    fn batches(&self, data: &Data, exp: &Experiment) -> Result<Batches<Classifier>> {
        Ok(Box::new(data.labelled_batches(exp)?))
    }

    fn validation_set(&self, data: &Data, exp: &Experiment, _: &dyn EventSink) -> Result<EvalImages> {
        data.periodic_images(exp)
    }

    fn validate(
        &self,
        _: u64,
        m: &Classifier,
        set: &EvalImages,
        cx: &PeriodicContext<'_>,
    ) -> Result<Vec<(&'static str, f64)>> {
        let v = classify(m, set, self.exp.eval.batch_size, cx.device, Progress::hidden());
        Ok(vec![("val_loss", v.nll_nats), ("val_accuracy", v.accuracy)])
    }

    fn evaluate(&self, model: &Classifier, data: &Data, cx: &EvalContext<'_>) -> Result<Evaluation> {
        let exp = cx.exp;
        let splits = data.images()?;
        let set = splits.eval_images(exp.eval.examples, &exp.data.transforms, exp.eval.seed);
        let bar = cx.events.progress("evaluate", set.n as u64, 0);
        let mut eval = classify(model, &set, exp.eval.batch_size, &cx.device, bar);
        cx.events.message(&format!(
            "test: accuracy {:.4}, cross-entropy {:.4} nats, {} examples",
            eval.accuracy, eval.nll_nats, eval.examples
        ));
        let figures = vec![misclassified_figure(&set, &eval.predictions, cx)?];
        let metrics = vec![(Metric::Accuracy, eval.accuracy)];
        // Installed by the run that trained it, scored on the whole evaluation split; a later
        // `genlab eval` (perhaps on a subset) never replaces the installed file.
        if exp.deploy.feature_network == Some(FeatureNetwork::MnistLenet) {
            let goal = cx.goal_verdict(&metrics);
            if !cx.after_training {
                cx.events.message("not installed again: only the run that trains a feature network installs it");
            } else if set.n < splits.eval_rows.len() {
                cx.events.message(&format!(
                    "not installed as a feature network: evaluated on {} of {} examples (eval.examples)",
                    set.n,
                    splits.eval_rows.len()
                ));
            } else if goal.as_ref().is_some_and(|g| g.verdict != Verdict::Met) {
                cx.events.message("not installed as a feature network: the goal was not met");
            } else {
                eval.installed = Some(self.install(cx, model, &eval)?);
            }
        }
        let mut summary = format!("test accuracy {:.4} ({} examples)", eval.accuracy, eval.examples);
        if let Some((path, sha1)) = &eval.installed {
            let _ = write!(summary, "; installed as the MNIST LeNet feature network: {} (sha1 {sha1})", path.display());
        }
        Ok(Evaluation {
            metrics,
            log: vec![("nll_nats", eval.nll_nats.into()), ("examples", eval.examples.into())],
            section: markdown(cx, &eval),
            record: serde_json::to_value(&eval).expect("metrics should serialise"),
            figures,
            summary,
            drawn: None,
        })
    }

    fn describe(&self) -> String {
        let c = &self.config;
        format!(
            "LeNet-style classifier: {}x{} convolutions {:?} each with 2x2 max pooling, hidden layer {}, {} classes",
            c.kernel, c.kernel, c.channels, c.hidden, self.classes
        )
    }

    fn loss_curve(&self) -> LossCurve {
        LossCurve::train_and_validation("Loss: cross-entropy per example".into(), "nats", "val_loss", 1.0)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    fn generate(
        &self,
        _: &Classifier,
        _: &GenerateRequest,
        _: &Device,
        _: Option<&dyn EventSink>,
    ) -> Result<Generated> {
        Err(PipelineError::Config("sample: the classifier family is not generative; it draws no samples".into()))
    }
}

/// Accuracy, mean cross-entropy, confusion matrix and the predictions of `model` on `set`, `batch`
/// examples at a time.
fn classify(
    model: &Classifier,
    set: &EvalImages,
    batch: usize,
    device: &Device,
    mut progress: Progress,
) -> ClassifierEval {
    let started = std::time::Instant::now();
    let labels = set.labels.as_ref().expect("labels are checked by check_data");
    let classes = model.out.weight.val().dims()[1];
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut predictions = Vec::with_capacity(set.n);
    let mut nll = 0.0f64;
    for s in (0..set.n).step_by(batch) {
        let e = (s + batch).min(set.n);
        let logits = model.logits(set.tensor(s, e, device));
        let y = set.labels_tensor(s, e, device).expect("labels are checked by check_data");
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
        accuracy: correct as f64 / n,
        nll_nats: nll / n,
        examples: set.n,
        confusion,
        seconds: started.elapsed().as_secs_f64(),
        installed: None,
        predictions,
    }
}

impl ClassifierFamily {
    /// Installs the weights as the MNIST LeNet feature network; returns the file and its SHA-1.
    fn install(&self, cx: &EvalContext<'_>, model: &Classifier, eval: &ClassifierEval) -> Result<(PathBuf, String)> {
        let card = LenetCard {
            config: self.config.clone(),
            classes: eval.confusion.len(),
            test_accuracy: eval.accuracy,
            source_run: cx.run_dir.display().to_string(),
        };
        let path = FeatureNetwork::MnistLenet.default_path();
        let sha1 = install(model, &card, &path)?;
        cx.events.message(&format!("installed the MNIST LeNet feature network: {} (sha1 {sha1})", path.display()));
        Ok((path, sha1))
    }
}

/// Up to 64 misclassified evaluation images, in order.
fn misclassified_figure(set: &EvalImages, predictions: &[usize], cx: &EvalContext<'_>) -> Result<(String, PathBuf)> {
    let labels = set.labels.as_ref().expect("labels are checked by check_data");
    let len: usize = set.shape.iter().product();
    let symmetric = cx.exp.symmetric();
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
    let _ = writeln!(s, "## Metrics, on {}\n\n| metric | value |\n|---|---|", crate::report::split_name(exp));
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
        exp.weights_word(),
        cx.step,
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
