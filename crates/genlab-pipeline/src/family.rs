//! The family seam. A family is one folder under `families/` that implements [`Family`]: its
//! `[model]` section (the network's config from `genlab-models` and the family's own options, typed
//! and checked by the family), the data kinds it reads, how it builds its model, optimisers and
//! batches, its periodic validation, its evaluation protocol and report section, its metrics and
//! what it can generate. The shared phases (`run.rs`, `evaluation.rs`) are generic over it, and
//! the registry (`families/mod.rs`, reached through [`crate::registry`]) is the one list of families.

use crate::data::{Data, DataFacts};
use crate::error::Result;
use crate::evaluation::{EvalContext, Evaluation, LossCurve};
use crate::experiment::{Experiment, KeyError};
use crate::generate::{Capabilities, GenerateRequest, Generated, OutputKind};
use crate::metric::Metric;
use burn::module::Module;
use burn::tensor::Device;
use genlab_core::events::EventSink;
use genlab_data::{BatchSource, DataKind};
use genlab_train::{Optimizers, TrainStep};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::path::Path;

/// What `genlab families` and error messages say of a family.
pub struct FamilyCard {
    /// The `model.family` value.
    pub name: &'static str,
    /// One line: what the family is.
    pub summary: &'static str,
    /// The kinds of data it models.
    pub data: &'static [DataKind],
}

/// A family's own keys in `[model]` beside its network's (a VAE's `iwae_k`, a GAN's
/// `discriminator_optimizer`): a serde struct with a default for every field.
pub trait FamilyOptions: Serialize + DeserializeOwned + Clone + Debug {
    /// The struct's keys, which the parser hands to it rather than to the network's config.
    const KEYS: &'static [&'static str];
}

/// A family with no keys of its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

impl FamilyOptions for NoOptions {
    const KEYS: &'static [&'static str] = &[];
}

/// The own key of a family that samples at a temperature (a flow, a mixture).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemperatureOption {
    /// Sampling temperature of the sample grid, the sample metrics and `genlab sample` (the
    /// prior's or the components' standard deviation scaled by it); 1 samples the model itself.
    #[serde(default = "one")]
    pub temperature: f64,
}

fn one() -> f64 {
    1.0
}

impl FamilyOptions for TemperatureOption {
    const KEYS: &'static [&'static str] = &["temperature"];
}

impl TemperatureOption {
    /// `model.temperature` must be a finite number >= 0.
    pub fn check(&self) -> Result<(), KeyError> {
        let t = self.temperature;
        if t >= 0.0 && t.is_finite() {
            return Ok(());
        }
        Err(("model.temperature".into(), format!(" = {t}: expected a finite number >= 0")))
    }
}

/// A family's `[model]` section: its network's config and its own options, side by side in one
/// TOML table.
#[derive(Debug, Clone, PartialEq)]
pub struct Section<N, O> {
    pub network: N,
    pub options: O,
}

/// The batches a family's model trains on.
pub type Batches<M> = Box<dyn BatchSource<Batch = <M as TrainStep>::Batch>>;

/// A model family as the pipeline drives it. Static items describe and check a configuration;
/// an instance (from [`Family::new`]) holds one run's configuration and data facts.
pub trait Family: Sized + 'static {
    /// The network's config (`genlab-models`), `deny_unknown_fields`, a default for every field.
    type Network: Serialize + DeserializeOwned + Clone + Debug;
    type Options: FamilyOptions;
    /// The trained module (every network the family trains).
    type Model: TrainStep + Module;
    /// What the periodic validation reads, prepared once from the data.
    type Validation;

    const CARD: FamilyCard;

    /// The family a second-stage family builds on (`[stage1]` names a finished run of it); None
    /// for a family that trains on its data alone.
    const STAGE1: Option<&'static str> = None;

    /// Checks of the family's section, and of the shared sections as they bear on this family
    /// (the data kind is checked against [`FamilyCard::data`] before).
    fn check(section: &Section<Self::Network, Self::Options>, exp: &Experiment) -> Result<(), KeyError>;

    /// The family's own metrics on `kind` data (the shared sample metrics are added for a family
    /// that generates images); a goal may name any of them.
    fn metrics(section: &Section<Self::Network, Self::Options>, kind: DataKind) -> Vec<Metric>;

    /// What this configuration generates.
    fn output(section: &Section<Self::Network, Self::Options>, kind: DataKind) -> OutputKind;

    /// Whether a training step can split its batch across `train.replicas` model replicas on
    /// their own threads (`genlab_train::replicas`): one optimiser, a loss that is a mean over
    /// examples, no batch statistics.
    fn trains_on_replicas() -> bool {
        false
    }

    /// Whether DP-SGD (`train.privacy`, `genlab_train::privacy`) can train the family: its model
    /// gives per-example losses (`TrainStep::examples`, `example_loss`) through one optimiser.
    /// `train.replicas` then spreads each step's per-example passes over threads.
    fn trains_privately() -> bool {
        false
    }

    /// Whether `[deploy] feature_network` can install a run of this family.
    fn deploys_feature_network() -> bool {
        false
    }

    fn new(section: Section<Self::Network, Self::Options>, exp: &Experiment, facts: &DataFacts) -> Self;

    /// Checks of the loaded data beyond its kind (labels a conditional model needs).
    fn check_data(&self, _data: &Data) -> Result<()> {
        Ok(())
    }

    /// The model with freshly initialised weights.
    fn init(&self, seed: u64, device: &Device) -> Result<Self::Model>;

    /// Data-dependent initialisation of a fresh run (Glow's ActNorm); the identity by default.
    fn initialize(&self, model: Self::Model, _data: &Data, _device: &Device) -> Result<Self::Model> {
        Ok(model)
    }

    /// The optimisers, one per network the family trains.
    fn optimizers(&self, exp: &Experiment) -> Optimizers {
        Optimizers::single(exp.train.optimizer, exp.train.clip_grad_norm)
    }

    fn batches(&self, data: &Data, exp: &Experiment) -> Result<Batches<Self::Model>>;

    fn validation_set(&self, data: &Data, exp: &Experiment, events: &dyn EventSink) -> Result<Self::Validation>;

    /// The periodic validation at an evaluation step: named numbers for `metrics.jsonl`.
    fn validate(
        &self,
        step: u64,
        model: &Self::Model,
        set: &Self::Validation,
        cx: &PeriodicContext<'_>,
    ) -> Result<Vec<(&'static str, f64)>>;

    /// The family's evaluation protocol on the final weights: its metrics, figures and report
    /// section (the shared sample metrics and the report's frame are added by the caller).
    fn evaluate(&self, model: &Self::Model, data: &Data, cx: &EvalContext<'_>) -> Result<Evaluation>;

    /// The model, in words, for the report's training table.
    fn describe(&self) -> String;

    fn loss_curve(&self) -> LossCurve;

    /// What a request may ask of this run's model.
    fn capabilities(&self) -> Capabilities;

    /// The latent vectors a request with `seed` decodes (`count x latent` values), for a family
    /// whose capabilities give a latent size: the server interpolates between seeds with them and
    /// merges concurrent requests into one batch.
    fn latents(&self, _seed: u64, _count: usize) -> Option<Vec<f32>> {
        None
    }

    /// Up to `k` principal directions of the latent codes the model's encoder gives `data`'s
    /// evaluation images, largest variance first: each a unit vector with its standard deviation.
    /// Asked only of a family whose capabilities say `directions` (a VAE); None otherwise.
    fn latent_directions(
        &self,
        _model: &Self::Model,
        _data: &Data,
        _k: usize,
        _device: &Device,
    ) -> Result<Option<Vec<crate::serving::Direction>>> {
        Ok(None)
    }

    /// Generates what `request` asks (checked against [`Family::capabilities`] by the caller).
    fn generate(
        &self,
        model: &Self::Model,
        request: &GenerateRequest,
        device: &Device,
        progress: Option<&dyn EventSink>,
    ) -> Result<Generated>;
}

/// What the periodic validation may use besides its set.
pub struct PeriodicContext<'a> {
    pub exp: &'a Experiment,
    pub run_dir: &'a Path,
    pub device: &'a Device,
}

/// `ModelError::Config` as a key error under `model.`.
pub fn model_error(e: genlab_models::ModelError) -> KeyError {
    match e {
        genlab_models::ModelError::Config { field, value, expected } => {
            (format!("model.{field}"), format!(" = {value}: {expected}"))
        }
    }
}
