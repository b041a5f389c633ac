//! The experiment file: one typed section per phase of the pipeline. Parsing gives one error line
//! naming `file:line`, the key path and what was expected; `--set key.path=value` overrides apply
//! before the types are checked, so they are checked the same way.

use crate::error::PipelineError;
use genlab_core::DeviceSpec;
use genlab_data::{DatasetSource, Split, Transform};
use genlab_eval::extract::FeatureNetwork;
use genlab_eval::preprocess::ResizeProtocol;
use genlab_models::classifier::ClassifierConfig;
use genlab_models::flow::{Dequantization, FlowConfig};
use genlab_models::gan::GanConfig;
use genlab_models::vae::{Likelihood, VaeConfig};
use genlab_models::ModelError;
use genlab_train::{OptimizerConfig, Schedule};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The whole experiment, every default filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub problem: ProblemConfig,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    #[serde(default)]
    pub eval: EvalConfig,
    #[serde(default)]
    pub deploy: DeployConfig,
}

/// Phase 1: what is asked, and how success is judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProblemConfig {
    pub name: String,
    #[serde(default)]
    pub task: String,
    pub goal: Option<Goal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goal {
    pub metric: GoalMetric,
    pub below: Option<f64>,
    pub above: Option<f64>,
}

/// Metrics a goal can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoalMetric {
    /// Test negative log-likelihood in nats per example (IWAE estimate for a VAE).
    NllNats,
    /// Test negative ELBO in nats per example.
    NegElboNats,
    /// FID of `eval.metric_samples` samples against the evaluation split.
    Fid,
    /// Classification accuracy on the evaluation split, in [0, 1].
    Accuracy,
    /// Test negative log-likelihood in bits per dimension (a flow on dequantised images).
    BitsPerDim,
}

/// Phase 2: data and preprocessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub dataset: DatasetSource,
    #[serde(default)]
    pub transforms: Vec<Transform>,
    #[serde(default)]
    pub validation: Validation,
}

/// Which examples evaluation uses: the dataset's test split, or a fixed fraction held out of train.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    pub from: Option<Split>,
    pub fraction: Option<f64>,
}

impl Default for Validation {
    fn default() -> Self {
        Validation { from: Some(Split::Test), fraction: None }
    }
}

/// Phase 3: the model family and its own fields, checked by that family's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum ModelConfig {
    Vae(VaeConfig),
    /// A normalizing flow (RealNVP or Glow).
    Flow(FlowConfig),
    /// A generative adversarial network (DCGAN, optionally conditional and spectrally normalised).
    Gan(GanConfig),
    /// Not generative: the LeNet that serves as the in-domain feature network of the sample metrics.
    Classifier(ClassifierConfig),
}

impl ModelConfig {
    /// The `family` value.
    pub fn family(&self) -> &'static str {
        match self {
            ModelConfig::Vae(_) => "vae",
            ModelConfig::Flow(_) => "flow",
            ModelConfig::Gan(_) => "gan",
            ModelConfig::Classifier(_) => "classifier",
        }
    }
}

/// Phase 4: training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub steps: u64,
    pub batch_size: usize,
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// A GAN's discriminator optimiser (`optimizer` is then the generator's): two learning rates
    /// are TTUR. The generator's settings when absent.
    pub discriminator_optimizer: Option<OptimizerConfig>,
    #[serde(default)]
    pub schedule: Schedule,
    pub clip_grad_norm: Option<f64>,
    pub ema: Option<f64>,
    #[serde(default)]
    pub device: DeviceSpec,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "default_log_every")]
    pub log_every: u64,
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u64,
    #[serde(default = "default_keep")]
    pub keep_checkpoints: usize,
    /// Evaluate on a validation subset every this many steps.
    pub eval_every: Option<u64>,
    #[serde(default = "default_true")]
    pub drop_last: bool,
}

fn default_log_every() -> u64 {
    100
}
fn default_checkpoint_every() -> u64 {
    1000
}
fn default_keep() -> usize {
    3
}
fn default_true() -> bool {
    true
}

/// Phase 6: evaluation protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Importance samples of the IWAE likelihood estimate.
    #[serde(default = "default_iwae_k")]
    pub iwae_k: usize,
    /// Evaluation examples (also the reference images of the sample metrics); all of the
    /// evaluation split when absent.
    pub examples: Option<usize>,
    /// Examples per evaluation batch (each expands to `iwae_k` decoder passes).
    #[serde(default = "default_eval_batch")]
    pub batch_size: usize,
    /// Samples in the sample grid.
    #[serde(default = "default_samples")]
    pub samples: usize,
    /// Seed of the evaluation noise and of the evaluation set's one fixed binarisation.
    #[serde(default)]
    pub seed: u64,
    /// Examples of the periodic validation during training.
    #[serde(default = "default_periodic")]
    pub periodic_examples: usize,
    /// Samples generated for FID, KID, Inception Score, precision/recall, density/coverage and
    /// memorisation; 0 leaves those metrics out.
    #[serde(default)]
    pub metric_samples: usize,
    /// Training images searched by the memorisation check (and compared with the evaluation
    /// split for the real-data FID); all when absent.
    pub memorisation_examples: Option<usize>,
    /// The feature network of those metrics.
    #[serde(default = "default_features")]
    pub features: FeatureNetwork,
    /// How images are resized for the Inception network.
    #[serde(default = "default_resize")]
    pub resize: ResizeProtocol,
    /// A flow's sampling temperature (the prior's standard deviation) for the sample grid and the
    /// sample metrics; 1 samples the model itself.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
}

fn default_temperature() -> f64 {
    1.0
}

fn default_features() -> FeatureNetwork {
    FeatureNetwork::MnistLenet
}
fn default_resize() -> ResizeProtocol {
    ResizeProtocol::Legacy
}

/// Phase 8: what a finished run is put to work as.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// Install the trained classifier as this feature network (in the weights directory) once the
    /// evaluation has run and the goal, if any, is met.
    pub feature_network: Option<FeatureNetwork>,
}

fn default_iwae_k() -> usize {
    100
}
fn default_eval_batch() -> usize {
    50
}
fn default_samples() -> usize {
    64
}
fn default_periodic() -> usize {
    1000
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            iwae_k: default_iwae_k(),
            examples: None,
            batch_size: default_eval_batch(),
            samples: default_samples(),
            seed: 0,
            periodic_examples: default_periodic(),
            metric_samples: 0,
            memorisation_examples: None,
            features: default_features(),
            resize: default_resize(),
            temperature: default_temperature(),
        }
    }
}

impl Experiment {
    /// Reads `path`, applies `overrides` (`key.path=value`), and checks every field.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Experiment, PipelineError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PipelineError::Config(format!("{}: cannot read the experiment file: {e}", path.display())))?;
        Self::parse(&text, path, overrides)
    }

    /// Parses experiment text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<Experiment, PipelineError> {
        let at = |line: Option<usize>| match line {
            Some(l) => format!("{}:{l}", path.display()),
            None => path.display().to_string(),
        };
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e.span().map(|s| text[..s.start].lines().count().max(1));
            let msg: Vec<&str> = e.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            PipelineError::Config(format!("{}: TOML syntax: {}", at(line), msg.join("; ")))
        })?;
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        // The family's own fields are checked by the family's config struct, so its errors name
        // their keys (an internally tagged enum would only say "data did not match").
        let model = table.remove("model");
        let exp: ExperimentWithoutModel = typed(toml::Value::Table(table), "", |p| at(locate(text, p)))?;
        let model = match model {
            None => return Err(PipelineError::Config(format!("{}: missing section [model]", at(None)))),
            Some(toml::Value::Table(mut m)) => {
                let family = m.remove("family").ok_or_else(|| {
                    PipelineError::Config(format!(
                        "{}: model.family is missing: expected \"vae\", \"flow\", \"gan\" or \"classifier\"",
                        at(locate(text, "model"))
                    ))
                })?;
                let fields = toml::Value::Table(m);
                match family.as_str() {
                    Some("vae") => ModelConfig::Vae(typed(fields, "model.", |p| at(locate(text, p)))?),
                    Some("gan") => ModelConfig::Gan(typed(fields, "model.", |p| at(locate(text, p)))?),
                    Some("flow") => ModelConfig::Flow(typed(fields, "model.", |p| at(locate(text, p)))?),
                    Some("classifier") => ModelConfig::Classifier(typed(fields, "model.", |p| at(locate(text, p)))?),
                    _ => {
                        return Err(PipelineError::Config(format!(
                            "{}: model.family = {family}: expected \"vae\", \"flow\", \"gan\" or \"classifier\" (the families of later issues are not built yet)",
                            at(locate(text, "model.family"))
                        )))
                    }
                }
            }
            Some(other) => {
                return Err(PipelineError::Config(format!(
                    "{}: model: expected a table, found {}",
                    at(locate(text, "model")),
                    other.type_str()
                )))
            }
        };
        let e = Experiment {
            problem: exp.problem,
            data: exp.data,
            model,
            train: exp.train,
            eval: exp.eval.unwrap_or_default(),
            deploy: exp.deploy.unwrap_or_default(),
        };
        e.validate().map_err(|(key, msg)| PipelineError::Config(format!("{}: {key}{msg}", at(locate(text, &key)))))?;
        Ok(e)
    }

    /// Range checks serde cannot express: `(key path, " = value: what was expected")`.
    fn validate(&self) -> Result<(), (String, String)> {
        let t = &self.train;
        let err = |k: &str, m: String| Err((k.to_string(), m));
        if t.batch_size == 0 {
            return err("train.batch_size", " = 0: expected at least 1".into());
        }
        if t.steps == 0 {
            return err("train.steps", " = 0: expected at least 1".into());
        }
        if let Some(c) = t.clip_grad_norm {
            if !(c > 0.0) {
                return err("train.clip_grad_norm", format!(" = {c}: expected a positive number"));
            }
        }
        if let Some(e) = t.ema {
            if !(0.0..1.0).contains(&e) {
                return err("train.ema", format!(" = {e}: expected a decay in [0, 1)"));
            }
        }
        let key_and_message = |m: String| {
            let (k, rest) = m.split_once(' ').expect("optimizer messages start with the key");
            (k.to_string(), format!(" {rest}"))
        };
        t.optimizer.validate("train.optimizer").map_err(key_and_message)?;
        if let Some(d) = &t.discriminator_optimizer {
            if !matches!(self.model, ModelConfig::Gan(_)) {
                return err("train.discriminator_optimizer", ": only a GAN has a discriminator".into());
            }
            d.validate("train.discriminator_optimizer").map_err(key_and_message)?;
        }
        if !(0.0..=1.0).contains(&t.schedule.min_ratio) {
            return err("train.schedule.min_ratio", format!(" = {}: expected a value in [0, 1]", t.schedule.min_ratio));
        }
        Transform::validate(&self.data.transforms).map_err(|m| ("data.".to_string() + &m, String::new()))?;
        let v = self.data.validation;
        match (v.from, v.fraction) {
            (Some(_), None) => {}
            (None, Some(f)) if f > 0.0 && f < 1.0 => {}
            (None, Some(f)) => return err("data.validation.fraction", format!(" = {f}: expected a value in (0, 1)")),
            _ => return err("data.validation", ": expected { from = \"test\" } or { fraction = 0.1 }".into()),
        }
        for (key, v) in [
            ("train.log_every", t.log_every),
            ("train.checkpoint_every", t.checkpoint_every),
            ("train.eval_every", t.eval_every.unwrap_or(1)),
        ] {
            if v == 0 {
                return err(key, " = 0: expected at least 1".into());
            }
        }
        if t.keep_checkpoints == 0 {
            return err("train.keep_checkpoints", " = 0: expected at least 1".into());
        }
        let e = &self.eval;
        for (key, v) in [
            ("eval.iwae_k", e.iwae_k),
            ("eval.batch_size", e.batch_size),
            ("eval.samples", e.samples),
            ("eval.periodic_examples", e.periodic_examples),
            ("eval.examples", e.examples.unwrap_or(1)),
            ("eval.memorisation_examples", e.memorisation_examples.unwrap_or(1)),
        ] {
            if v == 0 {
                return err(key, " = 0: expected at least 1".into());
            }
        }
        if e.metric_samples == 1 || (2..10).contains(&e.metric_samples) {
            return err(
                "eval.metric_samples",
                format!(
                    " = {}: expected 0 (no sample metrics) or at least 10 (the Inception Score's 10 splits)",
                    e.metric_samples
                ),
            );
        }
        if e.metric_samples > 0 {
            if self.data.validation.from == Some(Split::Train) {
                return err(
                    "data.validation",
                    ": the sample metrics compare samples with held-out images; validating on the training split leaves none (use { from = \"test\" } or { fraction = 0.1 })".into(),
                );
            }
            if let Some(n) = e.examples.filter(|&n| n < 10) {
                return err(
                    "eval.examples",
                    format!(" = {n}: the sample metrics use these as reference images; expected at least 10"),
                );
            }
            if let Some(n) = e.memorisation_examples.filter(|&n| n < 2) {
                return err("eval.memorisation_examples", format!(" = {n}: expected at least 2"));
            }
        }
        let model_err = |e: ModelError| match e {
            ModelError::Config { field, value, expected } => {
                (format!("model.{field}"), format!(" = {value}: {expected}"))
            }
        };
        let goal = self.problem.goal.map(|g| g.metric);
        if let Some(g) = self.problem.goal {
            if g.below.is_none() && g.above.is_none() {
                return err("problem.goal", ": expected a bound, `below = ...` or `above = ...`".into());
            }
        }
        let family = self.model.family();
        if !(e.temperature >= 0.0 && e.temperature.is_finite()) {
            return err("eval.temperature", format!(" = {}: expected a finite number >= 0", e.temperature));
        }
        let toy = self.data.dataset.toy();
        if let Some(t) = toy {
            if !matches!(&self.model, ModelConfig::Flow(f) if f.dequantization == Dequantization::None) {
                return err(
                    "data.dataset",
                    format!(
                        " = \"{}\": a 2-D point dataset is modelled by a flow with dequantization = \"none\"",
                        t.name()
                    ),
                );
            }
            if self.data.validation != Validation::default() {
                return err(
                    "data.validation",
                    ": a toy dataset has its own fixed test split; leave validation out".into(),
                );
            }
            if !self.data.transforms.is_empty() {
                return err("data.transforms", ": a toy dataset takes no image transforms; expected []".into());
            }
        }
        match &self.model {
            ModelConfig::Gan(g) => {
                g.check().map_err(model_err)?;
                if !self.data.transforms.contains(&Transform::ScaleSymmetric) {
                    return err(
                        "data.transforms",
                        ": the generator ends in tanh, so the images must be in [-1, 1]; add \"scale_symmetric\""
                            .into(),
                    );
                }
                if goal.is_some_and(|g| g != GoalMetric::Fid) {
                    return err("problem.goal.metric", ": a GAN has no likelihood; it is judged by \"fid\"".into());
                }
            }
            ModelConfig::Flow(f) => {
                f.check().map_err(model_err)?;
                match (f.dequantization, toy) {
                    (Dequantization::None, None) => {
                        return err(
                            "model.dequantization",
                            " = \"none\": is for continuous data (a 2-D toy dataset); 8-bit images need \"uniform\""
                                .into(),
                        )
                    }
                    (Dequantization::Uniform, None) => {
                        if let Some(t) = self.data.transforms.iter().find(|t| {
                            matches!(t, Transform::ScaleUnit | Transform::ScaleSymmetric | Transform::Binarize)
                        }) {
                            return err(
                                "data.transforms",
                                format!(": {t:?}: a flow dequantises the 8-bit pixels itself, so only hflip and resize apply"),
                            );
                        }
                    }
                    _ => {}
                }
                match goal {
                    Some(GoalMetric::Accuracy | GoalMetric::NegElboNats) => {
                        return err(
                            "problem.goal.metric",
                            ": a flow is judged by bits_per_dim or nll_nats (its exact likelihood), or fid".into(),
                        )
                    }
                    Some(GoalMetric::BitsPerDim) if toy.is_some() => {
                        return err(
                            "problem.goal.metric",
                            " = \"bits_per_dim\": 2-D points are judged by nll_nats".into(),
                        )
                    }
                    _ => {}
                }
                if toy.is_some() && e.metric_samples > 0 {
                    return err(
                        "eval.metric_samples",
                        format!(
                            " = {}: the sample metrics compare images; a 2-D flow is judged by its NLL",
                            e.metric_samples
                        ),
                    );
                }
            }
            ModelConfig::Vae(v) => {
                v.check().map_err(model_err)?;
                if v.likelihood == Likelihood::Bernoulli && !self.data.transforms.contains(&Transform::ScaleUnit) {
                    return err(
                        "model.likelihood",
                        " = \"bernoulli\": needs pixels in [0, 1]; add \"scale_unit\" to data.transforms".into(),
                    );
                }
                if matches!(goal, Some(GoalMetric::Accuracy | GoalMetric::BitsPerDim)) {
                    return err("problem.goal.metric", ": a VAE is judged by nll_nats, neg_elbo_nats or fid".into());
                }
            }
            ModelConfig::Classifier(c) => {
                c.check().map_err(model_err)?;
                if goal.is_some_and(|g| g != GoalMetric::Accuracy) {
                    return err("problem.goal.metric", format!(": a {family} is judged by \"accuracy\""));
                }
                if e.metric_samples > 0 {
                    return err(
                        "eval.metric_samples",
                        format!(" = {}: a classifier draws no samples", e.metric_samples),
                    );
                }
                match self.deploy.feature_network {
                    None => {}
                    Some(FeatureNetwork::MnistLenet)
                        if self.data.dataset != DatasetSource::Named(genlab_data::DatasetName::Mnist) =>
                    {
                        return err(
                            "deploy.feature_network",
                            format!(" = \"mnist_lenet\": installs the MNIST feature network, so data.dataset must be \"mnist\", not {}", self.data.dataset.describe()),
                        )
                    }
                    Some(FeatureNetwork::MnistLenet) if self.data.transforms == [Transform::ScaleUnit] => {}
                    Some(FeatureNetwork::MnistLenet) => {
                        return err(
                            "deploy.feature_network",
                            " = \"mnist_lenet\": the feature network reads pixels / 255, so data.transforms must be [\"scale_unit\"]".into(),
                        )
                    }
                    Some(FeatureNetwork::Inception) => {
                        return err(
                            "deploy.feature_network",
                            " = \"inception\": the FID Inception comes from its own file; a classifier run installs \"mnist_lenet\"".into(),
                        )
                    }
                }
            }
        }
        // Checks every generative family shares.
        if goal == Some(GoalMetric::Fid) && e.metric_samples == 0 {
            return err(
                "problem.goal.metric",
                " = \"fid\": needs eval.metric_samples (10000 is the usual count)".into(),
            );
        }
        if self.deploy.feature_network.is_some() && !matches!(self.model, ModelConfig::Classifier(_)) {
            return err(
                "deploy.feature_network",
                ": only a classifier run can be installed as a feature network".into(),
            );
        }
        Ok(())
    }

    /// Checks that need the data's `[channels, height, width]`: the MNIST LeNet reads 1x28x28.
    pub fn check_data_shape(&self, shape: [usize; 3]) -> Result<(), PipelineError> {
        let lenet = genlab_eval::lenet::LENET_INPUT;
        let key = if self.eval.metric_samples > 0 && self.eval.features == FeatureNetwork::MnistLenet {
            "eval.features"
        } else if self.deploy.feature_network == Some(FeatureNetwork::MnistLenet) {
            "deploy.feature_network"
        } else {
            return Ok(());
        };
        if shape == lenet {
            return Ok(());
        }
        Err(PipelineError::Config(format!(
            "{key} = \"mnist_lenet\": the MNIST LeNet reads 1x28x28 gray images, the data is {}x{}x{}{}",
            shape[0],
            shape[1],
            shape[2],
            if key == "eval.features" { " (use eval.features = \"inception\")" } else { "" }
        )))
    }

    /// The run's resolved experiment, as written into its directory.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("an experiment should serialise to TOML")
    }

    pub fn run_name(&self) -> &str {
        &self.problem.name
    }

    pub fn default_run_dir(&self) -> PathBuf {
        PathBuf::from("runs").join(&self.problem.name)
    }
}

/// The experiment with the model left out, deserialised first.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExperimentWithoutModel {
    problem: ProblemConfig,
    data: DataConfig,
    train: TrainConfig,
    eval: Option<EvalConfig>,
    deploy: Option<DeployConfig>,
}

/// Deserialises `value` as `T`; the error names the key path (with `prefix`) and its location.
fn typed<T: DeserializeOwned>(
    value: toml::Value,
    prefix: &str,
    at: impl Fn(&str) -> String,
) -> Result<T, PipelineError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = format!("{prefix}{}", e.path());
        let key = key.trim_end_matches('.').trim_end_matches("?").to_string();
        let msg = e.inner().to_string();
        let msg = msg.lines().next().unwrap_or("").trim().to_string();
        if key.is_empty() || key == "." {
            PipelineError::Config(format!("{}: {msg}", at("")))
        } else {
            PipelineError::Config(format!("{}: {key}: {msg}", at(&key)))
        }
    })
}

/// Applies `key.path=value`; the value is read as TOML (`3`, `1e-3`, `"adam"`, `[1, 2]`), or as a
/// string when it does not parse.
pub fn apply_override(table: &mut toml::Table, spec: &str) -> Result<(), PipelineError> {
    let (key, raw) =
        spec.split_once('=').ok_or_else(|| PipelineError::Config(format!("--set {spec}: expected key.path=value")))?;
    let value: toml::Value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let parts: Vec<&str> = key.trim().split('.').collect();
    let mut cur = table;
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            cur.insert(p.to_string(), value);
            return Ok(());
        }
        let next = cur.entry(p.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = next.as_table_mut().ok_or_else(|| {
            PipelineError::Config(format!("--set {spec}: `{}` is not a table", parts[..=i].join(".")))
        })?;
    }
    Ok(())
}

/// The 1-based line where `key_path` (`train.optimizer.lr`) is written, or its nearest written
/// ancestor (`optimizer = { ... }` inside `[train]`).
pub fn locate(text: &str, key_path: &str) -> Option<usize> {
    let parts: Vec<&str> = key_path.split('.').filter(|p| !p.is_empty()).collect();
    let mut best: Option<(usize, usize)> = None; // (matched segments, line)
    let mut section: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if let Some(h) = l.strip_prefix('[').and_then(|h| h.split(']').next()) {
            section = h.trim_matches('[').split('.').map(|s| s.trim().to_string()).collect();
            let n = section.iter().zip(&parts).take_while(|(a, b)| a == *b).count();
            if n == section.len() && n > best.map_or(0, |b| b.0) {
                best = Some((n, i + 1));
            }
            continue;
        }
        let Some((k, _)) = l.split_once('=') else { continue };
        let k = k.trim().trim_matches('"');
        let full: Vec<&str> = section.iter().map(String::as_str).chain(k.split('.').map(str::trim)).collect();
        let n = full.iter().zip(&parts).take_while(|(a, b)| a == b).count();
        if n == full.len() && n > best.map_or(0, |b| b.0) {
            best = Some((n, i + 1));
        }
    }
    best.map(|b| b.1)
}

#[cfg(test)]
mod tests;
