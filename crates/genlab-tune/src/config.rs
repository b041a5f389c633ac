//! `[tune]`: the search space, the objective, the budget, the sampler, the pruner and the workers.
//!
//! ```toml
//! [tune]
//! objective = { metric = "val_elbo", direction = "minimize" }   # or { function = "branin" }
//! trials = 16                 # and/or timeout_minutes = 35
//! sampler = { kind = "tpe" }  # random | grid | tpe
//! pruner = { kind = "asha", min_resource = 250, reduction_factor = 2 }   # none | median | asha
//! workers = 2
//!
//! [tune.space]
//! "train.optimizer.lr" = { float = [1e-4, 3e-3], log = true }
//! "model.latent_dim" = { int = [8, 64], step = 8 }
//! "model.channels" = { choices = [[16, 32], [32, 64]] }
//! ```

use crate::benchmarks::Benchmark;
use crate::pruner::PrunerConfig;
use crate::sampler::{grid_of, SamplerConfig};
use crate::space::SearchSpace;
use crate::trial::Direction;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuneConfig {
    /// The study's name in the database (default: the problem's name).
    pub study: Option<String>,
    /// What is optimised (default: the problem's goal metric, in the goal's direction).
    pub objective: Option<ObjectiveConfig>,
    /// Trials in the study, all workers together (failed trials that were run again count once).
    pub trials: Option<u32>,
    /// Stop starting trials after this long.
    pub timeout_minutes: Option<f64>,
    #[serde(default)]
    pub sampler: SamplerConfig,
    #[serde(default)]
    pub pruner: PrunerConfig,
    /// Trials run at once by this process.
    #[serde(default = "one")]
    pub workers: u32,
    /// Seeds the samplers (with each trial's number).
    #[serde(default)]
    pub seed: u64,
    /// How often a running trial's worker says it is alive.
    #[serde(default = "ten")]
    pub heartbeat_seconds: f64,
    /// How long without a heartbeat before a running trial is failed and run again (default: twice
    /// the heartbeat, as Optuna).
    pub grace_seconds: Option<f64>,
    /// Key path -> distribution.
    #[serde(default)]
    pub space: toml::Table,
}

fn one() -> u32 {
    1
}
fn ten() -> f64 {
    10.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveConfig {
    /// A metric the run reports: at each evaluation (what the pruner sees), or in its final
    /// evaluation (`eval.json`).
    pub metric: Option<String>,
    pub direction: Option<Direction>,
    /// A built-in benchmark function instead of training (`branin`, `hartmann6`, `rosenbrock`).
    pub function: Option<Benchmark>,
}

impl TuneConfig {
    /// The search space: the benchmark's own, or `[tune.space]`. Errors are (key path, message).
    pub fn search_space(&self) -> Result<SearchSpace, (String, String)> {
        if let Some(f) = self.benchmark() {
            if !self.space.is_empty() {
                return Err((
                    "tune.space".into(),
                    format!(": the {} benchmark brings its own space (x0, x1, ...); remove [tune.space]", f.name()),
                ));
            }
            return Ok(f.space());
        }
        if self.space.is_empty() {
            return Err(("tune.space".into(), ": empty: name at least one key path with a distribution".into()));
        }
        SearchSpace::from_toml(&self.space)
    }

    pub fn benchmark(&self) -> Option<Benchmark> {
        self.objective.as_ref().and_then(|o| o.function)
    }

    /// The checks that need nothing but `[tune]`.
    pub fn check(&self) -> Result<(), (String, String)> {
        let space = self.search_space()?;
        if let Some(o) = &self.objective {
            if o.function.is_some() && o.metric.is_some() {
                return Err(("tune.objective".into(), ": give a metric or a function, not both".into()));
            }
        }
        if self.workers == 0 {
            return Err(("tune.workers".into(), " = 0: expected at least 1".into()));
        }
        if self.trials == Some(0) {
            return Err(("tune.trials".into(), " = 0: expected at least 1".into()));
        }
        if let Some(t) = self.timeout_minutes.filter(|t| !t.is_finite() || *t <= 0.0 || *t > 525_600.0) {
            return Err((
                "tune.timeout_minutes".into(),
                format!(" = {t}: expected a positive number of minutes, at most a year (525600)"),
            ));
        }
        let grid = self.sampler == SamplerConfig::Grid;
        if grid {
            grid_of(&space).map_err(|e| ("tune.sampler".into(), format!(": {e}")))?;
        }
        if self.trials.is_none() && self.timeout_minutes.is_none() && !grid {
            return Err((
                "tune.trials".into(),
                ": missing: give a trial budget (trials = N) and/or timeout_minutes".into(),
            ));
        }
        if !self.heartbeat_seconds.is_finite() || self.heartbeat_seconds <= 0.0 || self.heartbeat_seconds > 3600.0 {
            return Err((
                "tune.heartbeat_seconds".into(),
                format!(" = {}: expected a positive number of seconds, at most 3600", self.heartbeat_seconds),
            ));
        }
        if let Some(g) = self.grace_seconds.filter(|g| !g.is_finite() || *g <= self.heartbeat_seconds || *g > 86_400.0)
        {
            return Err((
                "tune.grace_seconds".into(),
                format!(
                    " = {g}: expected more than heartbeat_seconds = {} and at most a day (86400)",
                    self.heartbeat_seconds
                ),
            ));
        }
        if let SamplerConfig::Tpe { candidates: 0, .. } = self.sampler {
            return Err(("tune.sampler.candidates".into(), " = 0: expected at least 1".into()));
        }
        self.pruner.check().map_err(|m| {
            let (k, rest) = m.split_once(' ').unwrap_or((&m, ""));
            (k.to_string(), format!(" {rest}"))
        })
    }

    pub fn grace_seconds(&self) -> f64 {
        self.grace_seconds.unwrap_or(2.0 * self.heartbeat_seconds)
    }
}
