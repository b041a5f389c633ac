//! The registry: every family behind one object-safe trait, so the parser, the commands and
//! `genlab families` reach a family by its name; [`Entry`] adapts a [`Family`] to it. The list
//! itself is `families/mod.rs`.

use crate::error::{PipelineError, Result};
use crate::experiment::{Experiment, KeyError};
use crate::family::{Family, FamilyCard, FamilyOptions, Section};
use crate::generate::{GenerateRequest, Generated, OutputKind};
use crate::metric::{self, Metric};
use crate::reopen::RunTarget;
use crate::run::{Finished, Mode, RunOptions, Target};
use genlab_data::DataKind;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::time::Instant;

/// A registered family, with its type erased: what the parser, the commands and `genlab
/// families` ask of it.
pub trait Registered: Sync {
    fn card(&self) -> &'static FamilyCard;
    fn name(&self) -> &'static str {
        self.card().name
    }
    /// The family's own option keys in `[model]`.
    fn option_keys(&self) -> &'static [&'static str];
    /// Whether `train.privacy` (DP-SGD) can train it.
    fn trains_privately(&self) -> bool;
    /// Types `[model]` (without `family`); returns it with every default filled in.
    fn parse_section(&self, table: toml::Table, at: &dyn Fn(&str) -> String) -> Result<toml::Table>;
    /// The section's keys with their defaults.
    fn defaults(&self) -> toml::Table;
    /// The family's checks of an experiment that names it.
    fn validate(&self, exp: &Experiment) -> Result<(), KeyError>;
    /// On each data kind the family models: what its default configuration reports and generates
    /// (an image generator also reports the sample metrics when `eval.metric_samples` asks).
    fn by_kind(&self) -> Vec<(DataKind, Vec<Metric>, OutputKind)>;
    fn execute(
        &self,
        exp: &Experiment,
        target: Target,
        mode: Mode,
        opts: &RunOptions,
        started: Instant,
    ) -> Result<Finished>;
    fn evaluate(&self, target: &RunTarget) -> Result<String>;
    fn generate(&self, target: &RunTarget, request: &GenerateRequest, progress: bool) -> Result<Generated>;
    /// The run's model, loaded to serve many requests.
    fn load(&self, target: RunTarget) -> Result<Box<dyn crate::serving::Loaded>>;
}

/// The registry's entry of family `F`.
pub struct Entry<F>(PhantomData<fn() -> F>);

impl<F> Entry<F> {
    pub const fn new() -> Self {
        Entry(PhantomData)
    }
}

impl<F> Default for Entry<F> {
    fn default() -> Self {
        Self::new()
    }
}

/// The family section of an experiment that names family `F`.
pub(crate) fn section_of<F: Family>(exp: &Experiment) -> Section<F::Network, F::Options> {
    split(&exp.model.fields)
}

/// `[model]`'s keys parted into the family's options and the network's keys.
fn partition<O: FamilyOptions>(fields: toml::Table) -> (toml::Table, toml::Table) {
    fields.into_iter().partition(|(k, _)| O::KEYS.contains(&k.as_str()))
}

/// The network's and the options' keys of a resolved section.
fn split<N: DeserializeOwned, O: FamilyOptions>(fields: &toml::Table) -> Section<N, O> {
    let (options, network) = partition::<O>(fields.clone());
    Section {
        network: toml::Value::Table(network)
            .try_into()
            .unwrap_or_else(|e| panic!("a resolved [model] section should type: {e}")),
        options: toml::Value::Table(options)
            .try_into()
            .unwrap_or_else(|e| panic!("resolved family options should type: {e}")),
    }
}

fn merged<N: Serialize, O: Serialize>(network: &N, options: &O) -> toml::Table {
    let mut t = toml::Table::try_from(network).expect("a network config should serialise to a table");
    t.extend(toml::Table::try_from(options).expect("family options should serialise to a table"));
    t
}

impl<F: Family> Registered for Entry<F> {
    fn card(&self) -> &'static FamilyCard {
        &F::CARD
    }

    fn option_keys(&self) -> &'static [&'static str] {
        F::Options::KEYS
    }

    fn trains_privately(&self) -> bool {
        F::trains_privately()
    }

    fn parse_section(&self, table: toml::Table, at: &dyn Fn(&str) -> String) -> Result<toml::Table> {
        let (options, network) = partition::<F::Options>(table);
        let network: F::Network = crate::experiment::typed(toml::Value::Table(network), "model.", at)?;
        let options: F::Options = crate::experiment::typed(toml::Value::Table(options), "model.", at)?;
        Ok(merged(&network, &options))
    }

    fn defaults(&self) -> toml::Table {
        self.parse_section(toml::Table::new(), &|_| String::new())
            .unwrap_or_else(|e| panic!("the {} family should have a default for every key: {e}", F::CARD.name))
    }

    fn validate(&self, exp: &Experiment) -> Result<(), KeyError> {
        let kind = exp.data.dataset.kind();
        let name = F::CARD.name;
        if !F::CARD.data.contains(&kind) {
            let readers: Vec<&str> = all().iter().filter(|f| f.card().data.contains(&kind)).map(|f| f.name()).collect();
            return Err((
                "data.dataset".into(),
                format!(
                    " = \"{}\": {}; the {name} family models {} (families for {}: {})",
                    exp.data.dataset.describe(),
                    kind.describe(),
                    F::CARD.data.iter().map(|k| k.describe()).collect::<Vec<_>>().join(", "),
                    kind.describe(),
                    if readers.is_empty() { "none yet".into() } else { readers.join(", ") }
                ),
            ));
        }
        check_molecule_data(exp)?;
        match (F::STAGE1, &exp.stage1) {
            (Some(first), None) => {
                return Err((
                    "stage1".into(),
                    format!(
                        ": missing; the {name} family trains on a finished {first} run: name it in [stage1] with run = \"runs/NAME\" or experiment = \"FILE.toml\""
                    ),
                ))
            }
            (None, Some(_)) => {
                return Err((
                    "stage1".into(),
                    format!(": the {name} family trains on its data alone; only a second-stage family (vqvae_prior) reads [stage1]"),
                ))
            }
            _ => {}
        }
        let section = section_of::<F>(exp);
        F::check(&section, exp)?;
        if exp.train.replicas > 1 && !F::trains_on_replicas() && exp.train.privacy.is_none() {
            return Err((
                "train.replicas".into(),
                format!(" = {}: the {name} family trains on one thread; expected 1", exp.train.replicas),
            ));
        }
        let output = F::output(&section, kind);
        let mut metrics = F::metrics(&section, kind);
        if output == OutputKind::Images && exp.eval.metric_samples > 0 {
            metrics.extend(metric::SAMPLE_METRICS);
        }
        if kind == DataKind::Molecules && exp.eval.metric_samples > 0 {
            metrics.extend(metric::MOLECULE_METRICS);
        }
        if let Some(g) = exp.problem.goal.filter(|g| !metrics.contains(&g.metric)) {
            let more = if output == OutputKind::Images && exp.eval.metric_samples == 0 {
                format!(" (and, with eval.metric_samples, {})", metric::list(&metric::SAMPLE_METRICS))
            } else if kind == DataKind::Molecules && exp.eval.metric_samples == 0 {
                format!(" (and, with eval.metric_samples, {})", metric::list(&metric::MOLECULE_METRICS))
            } else {
                String::new()
            };
            return Err((
                "problem.goal.metric".into(),
                format!(
                    " = \"{}\": a {name} run on {} reports {}{more}",
                    g.metric.key(),
                    kind.describe(),
                    metric::list(&metrics)
                ),
            ));
        }
        if exp.eval.metric_samples > 0 && output != OutputKind::Images && kind != DataKind::Molecules {
            return Err((
                "eval.metric_samples".into(),
                format!(
                    " = {}: the sample metrics compare generated images; a {name} run on {} {}",
                    exp.eval.metric_samples,
                    kind.describe(),
                    if output == OutputKind::Nothing {
                        "draws no samples".to_string()
                    } else {
                        "is judged by its own metrics".to_string()
                    }
                ),
            ));
        }
        if exp.deploy.feature_network.is_some() && !F::deploys_feature_network() {
            return Err((
                "deploy.feature_network".into(),
                format!(": a {name} run cannot be installed as a feature network (only a classifier run can)"),
            ));
        }
        Ok(())
    }

    fn by_kind(&self) -> Vec<(DataKind, Vec<Metric>, OutputKind)> {
        let section = split::<F::Network, F::Options>(&self.defaults());
        F::CARD.data.iter().map(|&k| (k, F::metrics(&section, k), F::output(&section, k))).collect()
    }

    fn execute(
        &self,
        exp: &Experiment,
        target: Target,
        mode: Mode,
        opts: &RunOptions,
        started: Instant,
    ) -> Result<Finished> {
        crate::run::execute::<F>(exp, section_of::<F>(exp), target, mode, opts, started)
    }

    fn evaluate(&self, target: &RunTarget) -> Result<String> {
        crate::reopen::evaluate_run::<F>(target, section_of::<F>(&target.exp))
    }

    fn generate(&self, target: &RunTarget, request: &GenerateRequest, progress: bool) -> Result<Generated> {
        crate::reopen::generate::<F>(target, section_of::<F>(&target.exp), request, progress)
    }

    fn load(&self, target: RunTarget) -> Result<Box<dyn crate::serving::Loaded>> {
        let section = section_of::<F>(&target.exp);
        crate::serving::load_family::<F>(target, section)
    }
}

/// Every family, in the order `genlab families` lists them.
pub fn all() -> &'static [&'static dyn Registered] {
    crate::families::FAMILIES
}

pub fn find(name: &str) -> Option<&'static dyn Registered> {
    all().iter().copied().find(|f| f.name() == name)
}

/// The families DP-SGD can train.
pub fn private_families() -> Vec<&'static str> {
    all().iter().filter(|f| f.trains_privately()).map(|f| f.name()).collect()
}

/// The registered names, quoted: `"vae", "flow", ... or "gaussian_mixture"`.
pub fn names_quoted() -> String {
    metric::quoted(all().iter().map(|f| f.name()))
}

/// `genlab families [NAME]`: each family (or the one named), its data, its keys with
/// defaults, its metrics, and what it generates. An unknown name lists the known ones.
pub fn describe(name: Option<&str>) -> crate::error::Result<String> {
    let chosen: Vec<&'static dyn Registered> = match name {
        None => all().to_vec(),
        Some(n) => vec![find(n).ok_or_else(|| unknown_family(n))?],
    };
    let mut s = String::new();
    for f in chosen {
        let c = f.card();
        s.push_str(&format!("{}: {}\n", c.name, c.summary));
        for (kind, metrics, output) in f.by_kind() {
            let sample_line;
            let mut m: Vec<&str> = metrics.iter().map(|m| m.key()).collect();
            let extra = match (output, kind) {
                (OutputKind::Images, _) => &metric::SAMPLE_METRICS[..],
                (_, DataKind::Molecules) => &metric::MOLECULE_METRICS[..],
                _ => &[],
            };
            if !extra.is_empty() {
                let sample: Vec<&str> = extra.iter().map(|m| m.key()).collect();
                let and = if m.is_empty() { "" } else { "and, " };
                sample_line = format!("{and}with eval.metric_samples, {}", sample.join(", "));
                m.push(&sample_line);
            }
            let output = output.describe();
            s.push_str(&format!("  on {}: metrics {}; generates {output}\n", kind.describe(), m.join(", ")));
        }
        if f.trains_privately() {
            s.push_str("  trains privately: train.privacy (DP-SGD)\n");
        }
        s.push_str("  [model] keys (defaults):\n");
        let defaults = f.defaults();
        for (k, v) in &defaults {
            let own = if f.option_keys().contains(&k.as_str()) { "  (family option)" } else { "" };
            s.push_str(&format!("    {k} = {v}{own}\n"));
        }
        for k in f.option_keys().iter().filter(|k| !defaults.contains_key(**k)) {
            s.push_str(&format!("    {k} (unset by default)  (family option)\n"));
        }
    }
    Ok(s)
}

/// One line naming the family a command reached for but which does not know `name`.
pub fn unknown_family(name: &str) -> PipelineError {
    PipelineError::Config(format!("unknown family \"{name}\": expected {}", names_quoted()))
}

/// A molecule dataset's tokenizer and held-out split, checked before any file is written: molecules
/// are read as SMILES or SELFIES tokens, text never is; MOSES has its own test split, a SMILES file
/// holds out its last rows.
fn check_molecule_data(exp: &Experiment) -> Result<(), KeyError> {
    let d = &exp.data;
    let molecular = d.tokenizer.is_molecular();
    match d.dataset.kind() {
        DataKind::Molecules if !molecular => Err((
            "data.tokenizer".into(),
            format!(
                ": {} holds molecules; expected tokenizer = \"smiles\" (atom-level tokens) or \"selfies\"",
                d.dataset.describe()
            ),
        )),
        DataKind::Molecules => match (&d.dataset, d.validation.fraction) {
            (genlab_data::DatasetSource::Named(_), Some(_)) => Err((
                "data.validation".into(),
                format!(
                    ": {} has its own test split; leave validation out (or {{ from = \"test\" }})",
                    d.dataset.describe()
                ),
            )),
            (genlab_data::DatasetSource::Smiles { .. }, None) => Err((
                "data.validation".into(),
                format!(": {} is one file; hold out its last rows with {{ fraction = 0.1 }}", d.dataset.describe()),
            )),
            _ => Ok(()),
        },
        kind if molecular => Err((
            "data.tokenizer".into(),
            format!(
                ": \"smiles\" and \"selfies\" read molecules, and {} holds {}",
                d.dataset.describe(),
                kind.describe()
            ),
        )),
        _ => Ok(()),
    }
}
