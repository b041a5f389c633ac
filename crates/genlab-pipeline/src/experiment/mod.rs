//! The experiment file: one typed section per phase of the pipeline. The shared sections are typed
//! here; `[model]` belongs to the family it names, which types and checks it (see
//! [`crate::family`]). Reading, `--set` overrides and `file:line` errors are in `parse.rs`; the
//! checks of the shared sections in `validate.rs`.

mod parse;
mod validate;

pub(crate) use parse::typed;
pub use parse::{apply_override, locate};
pub(crate) use validate::{key_and_message, KeyError};

use crate::metric::Metric;
use genlab_core::DeviceSpec;
use genlab_data::{DatasetSource, Split, Transform};
use genlab_eval::extract::FeatureNetwork;
use genlab_eval::preprocess::FidProtocol;
use genlab_train::{OptimizerConfig, Schedule};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The whole experiment, every default filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experiment {
    pub problem: ProblemConfig,
    pub data: DataConfig,
    pub model: ModelSection,
    pub train: TrainConfig,
    pub eval: EvalConfig,
    pub deploy: DeployConfig,
    /// Phase 7, `[post]`: what every generated sample passes through.
    #[serde(skip_serializing_if = "genlab_post::PostConfig::is_empty")]
    pub post: genlab_post::PostConfig,
    /// The finished run a second-stage family builds on (a VQ-VAE under its prior).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage1: Option<StageConfig>,
    /// Phase 5, `[tune]`: read by `genlab tune`, ignored by a run (and never written into a run's
    /// resolved experiment, so a trial's `experiment.toml` runs on its own).
    #[serde(skip)]
    pub tune: Option<genlab_tune::TuneConfig>,
}

/// `[stage1]`: the earlier stage of a two-stage experiment, as a finished run directory or as an
/// experiment file to run first (its path relative to this file's folder). `genlab run` runs the
/// experiment when its run directory (`runs/<its problem.name>`) does not exist, resumes it when
/// it stopped, and reuses it when it finished; the resolved experiment a run writes names the
/// directory in `run`, so the run reloads alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// A finished run directory; when given, `experiment` is only a record of where it came from.
    pub run: Option<PathBuf>,
    pub experiment: Option<PathBuf>,
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
    /// One of the metrics the family reports.
    pub metric: Metric,
    pub below: Option<f64>,
    pub above: Option<f64>,
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
    /// How text becomes tokens (text data only): `"char"` or `{ bpe = { vocab_size = N } }`.
    #[serde(default)]
    pub tokenizer: genlab_data::TokenizerSpec,
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

/// Phase 3: the family's own section. `family` picks the entry of the registry; `fields` are the
/// family's keys with every default filled in, already typed and checked by that family.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSection {
    pub family: &'static str,
    pub(crate) fields: toml::Table,
}

impl ModelSection {
    /// The `[model]` key with the largest number (in an array, its largest element): the one a
    /// model too large for memory is blamed on.
    pub fn largest_key(&self) -> Option<(String, i64)> {
        let largest = |v: &toml::Value| -> Option<i64> {
            match v {
                toml::Value::Integer(i) => Some(*i),
                toml::Value::Array(a) => a.iter().filter_map(|x| x.as_integer()).max(),
                _ => None,
            }
        };
        self.fields.iter().filter_map(|(k, v)| Some((format!("model.{k}"), largest(v)?))).max_by_key(|(_, v)| *v)
    }

    /// The family's keys with their values, every default filled in.
    pub fn fields(&self) -> &toml::Table {
        &self.fields
    }
}

impl Serialize for ModelSection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = toml::Table::new();
        t.insert("family".into(), toml::Value::String(self.family.into()));
        t.extend(self.fields.clone());
        t.serialize(s)
    }
}

/// Phase 4: training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub steps: u64,
    pub batch_size: usize,
    /// The optimiser of a single-network family; a family with several networks takes its
    /// first network's settings from here and the others' from its own section.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
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
    /// Model replicas each batch is split across, each on its own thread, the gradients averaged
    /// before the one update (data parallelism on one machine; families that support it). The
    /// result depends on this count, not on the machine's cores.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// Differentially private training (DP-SGD with an RDP accountant): Poisson batches,
    /// per-example clipping, Gaussian noise; `train.replicas` threads share each step's
    /// per-example passes.
    pub privacy: Option<genlab_train::privacy::PrivacyConfig>,
    /// A wall-clock budget: training stops (checkpointed, then evaluated as a finished run) before
    /// the first step that would start after this many seconds of training, counted across
    /// resumes; `steps` still sets the schedule's length and the most steps.
    pub max_seconds: Option<f64>,
}

fn default_replicas() -> usize {
    1
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

/// Phase 6: the evaluation protocol every family shares; a family's own evaluation settings
/// (a VAE's `iwae_k`, a flow's `temperature`) are in its section. Every key has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Evaluation examples (also the reference images of the sample metrics); all of the
    /// evaluation split when absent.
    pub examples: Option<usize>,
    /// Examples per evaluation batch (50).
    pub batch_size: usize,
    /// Samples in the sample grid (64).
    pub samples: usize,
    /// Seed of the evaluation noise and of the evaluation set's one fixed binarisation (0).
    pub seed: u64,
    /// Examples of the periodic validation during training (1000).
    pub periodic_examples: usize,
    /// Samples generated for FID, KID, Inception Score, precision/recall, density/coverage and
    /// memorisation; 0 (the default) leaves those metrics out.
    pub metric_samples: usize,
    /// Training images searched by the memorisation check (and compared with the evaluation
    /// split for the real-data FID); all when absent.
    pub memorisation_examples: Option<usize>,
    /// The feature network of those metrics (the MNIST LeNet).
    pub features: FeatureNetwork,
    /// Whose preprocessing reaches the Inception network: "pytorch-fid" (the default),
    /// "torch-fidelity" or "clean-fid" (`resize`, with "legacy" and "clean", is read as before).
    #[serde(alias = "resize")]
    pub protocol: FidProtocol,
    /// When the feature network is one genlab makes (the MNIST LeNet) and it is not installed,
    /// train and install it from `configs/mnist-lenet.toml` before the sample metrics (true).
    pub make_features: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            examples: None,
            batch_size: 50,
            samples: 64,
            seed: 0,
            periodic_examples: 1000,
            metric_samples: 0,
            memorisation_examples: None,
            features: FeatureNetwork::MnistLenet,
            protocol: FidProtocol::PytorchFid,
            make_features: true,
        }
    }
}

/// Phase 8: what a finished run is put to work as.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// Install the trained classifier as this feature network (in the weights directory) once the
    /// evaluation has run and the goal, if any, is met.
    pub feature_network: Option<FeatureNetwork>,
}

impl Experiment {
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

    /// Whether the data are scaled to [-1, 1] (drawn after mapping back to [0, 1]).
    pub fn symmetric(&self) -> bool {
        self.data.transforms.contains(&Transform::ScaleSymmetric)
    }

    /// "EMA" or "final": which weights an evaluation reads.
    pub fn weights_word(&self) -> &'static str {
        if self.train.ema.is_some() {
            "EMA"
        } else {
            "final"
        }
    }
}

#[cfg(test)]
mod tests;
