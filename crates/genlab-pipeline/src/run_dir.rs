//! The run directory: made fresh (never over another run) once data and model are ready, with
//! `run.json`, the facts about the run that its experiment file does not hold.

use crate::data::DataFacts;
use crate::error::{PipelineError, Result};
use crate::experiment::Experiment;
use crate::run::{Mode, Target};
use genlab_core::events::EventSink;
use genlab_core::lock::DirLock;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Facts about a run that its experiment file does not hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    pub mode: Mode,
    pub data_shape: [usize; 3],
    pub class_names: Vec<String>,
    pub train_examples: usize,
    pub eval_examples: usize,
    pub parameters: usize,
    pub train_seconds: Option<f64>,
    /// The steps trained when a budget (train.max_seconds, the privacy budget) ended training
    /// before train.steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<u64>,
    pub genlab_version: String,
    /// A text run's tokenizer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<genlab_data::Tokenizer>,
    /// A private run's guarantee (DP-SGD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivacyRecord>,
}

/// What a private run spent and how: the (epsilon, delta) guarantee of its weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrivacyRecord {
    pub epsilon: f64,
    pub delta: f64,
    pub noise_multiplier: f64,
    pub max_grad_norm: f64,
    pub sample_rate: f64,
    pub steps: u64,
    pub target_epsilon: Option<f64>,
    /// The accountant's phases (noise multiplier, sampling rate, steps).
    pub history: Vec<genlab_train::privacy::accountant::Phase>,
}

impl PrivacyRecord {
    pub fn new(dp: &genlab_train::privacy::DpSgd, spent: &genlab_train::privacy::accountant::RdpAccountant) -> Self {
        PrivacyRecord {
            epsilon: spent.epsilon(dp.delta),
            delta: dp.delta,
            noise_multiplier: dp.noise_multiplier,
            max_grad_norm: dp.max_grad_norm,
            sample_rate: dp.sample_rate,
            steps: spent.steps(),
            target_epsilon: dp.target_epsilon,
            history: spent.history.clone(),
        }
    }
}

impl RunInfo {
    fn path(run_dir: &Path) -> PathBuf {
        run_dir.join("run.json")
    }
    pub(crate) fn save(&self, run_dir: &Path) -> Result<()> {
        genlab_core::atomic::write_atomic(
            &Self::path(run_dir),
            &serde_json::to_vec_pretty(self).expect("run info should serialise"),
        )?;
        Ok(())
    }
    pub fn load(run_dir: &Path) -> Result<Self> {
        let p = Self::path(run_dir);
        let bytes = std::fs::read(&p).map_err(|e| {
            PipelineError::Run(format!("{}: {e} (is {} a genlab run directory?)", p.display(), run_dir.display()))
        })?;
        serde_json::from_slice(&bytes).map_err(|e| PipelineError::Run(format!("{}: {e}", p.display())))
    }

    /// The data facts recorded when the run started.
    pub fn facts(&self) -> DataFacts {
        DataFacts {
            shape: self.data_shape,
            class_names: self.class_names.clone(),
            train_examples: self.train_examples,
            eval_examples: self.eval_examples,
            tokenizer: self.tokenizer.clone(),
        }
    }
}

/// A new run directory: `base`, or when `exact` is false and `base` is taken, `base-2`, `base-3`,
/// ... Each is claimed by creating it (atomic: two commands never get the same one), so nothing is
/// ever written into an existing directory. An explicit `--run-dir` (`exact`) that exists is an
/// error, never a silent `-2`.
fn claim_run_dir(base: &Path, exact: bool) -> Result<PathBuf> {
    if let Some(parent) = base.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(genlab_core::CoreError::io(parent))?;
    }
    let mut i = 2;
    let mut dir = base.to_path_buf();
    loop {
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && !exact => {
                dir = PathBuf::from(format!("{}-{i}", base.display()));
                i += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(run_dir_exists(&dir)),
            Err(e) => return Err(genlab_core::CoreError::io(&dir)(e).into()),
        }
    }
}

/// The refusal of an explicit `--run-dir` that exists.
pub(crate) fn run_dir_exists(dir: &Path) -> PipelineError {
    PipelineError::Config(format!(
        "--run-dir {}: exists; give a new directory (a run continues with `genlab train --resume {}`)",
        dir.display(),
        dir.display()
    ))
}

/// Takes `dir`'s writer lock, for a command that writes into an existing run (resume, eval), and
/// returns it with the run's facts: the directory must be a run (have `run.json`), so a mistaken
/// path gets no lock file.
pub(crate) fn lock_run(dir: &Path) -> Result<(DirLock, RunInfo)> {
    let info = RunInfo::load(dir)?;
    Ok((DirLock::acquire(dir, &genlab_core::lock::this_command())?, info))
}

/// A run directory being trained into, with the facts recorded about it; this command holds its
/// writer lock until it is dropped.
pub(crate) struct RunDir {
    pub dir: PathBuf,
    pub info: RunInfo,
    pub resuming: bool,
    _lock: DirLock,
}

impl RunDir {
    /// Makes the directory (fresh runs) and writes `run.json` (and, for a resumed run whose
    /// experiment was changed by `--set`, `experiment.toml`); called once data and model are ready
    /// and, for a resumed run, once the checkpoint has been checked against them.
    pub(crate) fn open(
        exp: &Experiment,
        target: Target,
        mode: Mode,
        data: DataFacts,
        parameters: usize,
        events: &dyn EventSink,
    ) -> Result<Self> {
        let (dir, resuming, lock) = match target {
            Target::Fresh { base, exact } => {
                let dir = claim_run_dir(&base, exact)?;
                let lock = DirLock::acquire(&dir, &genlab_core::lock::this_command())?;
                for sub in ["checkpoints", "samples", "plots"] {
                    std::fs::create_dir_all(dir.join(sub)).map_err(genlab_core::CoreError::io(dir.join(sub)))?;
                }
                genlab_core::atomic::write_atomic(&dir.join("experiment.toml"), exp.to_toml().as_bytes())?;
                events.message(&format!("run directory: {}", dir.display()));
                (dir, false, lock)
            }
            Target::Resume { dir, lock, rewrite } => {
                if let Some(text) = rewrite {
                    genlab_core::atomic::write_atomic(&dir.join("experiment.toml"), text.as_bytes())?;
                }
                (dir, true, lock)
            }
        };
        let shape = data.shape;
        let mut info = RunInfo {
            mode,
            data_shape: shape,
            class_names: data.class_names,
            train_examples: data.train_examples,
            eval_examples: data.eval_examples,
            parameters,
            train_seconds: None,
            stopped_at: None,
            genlab_version: env!("CARGO_PKG_VERSION").into(),
            tokenizer: data.tokenizer,
            privacy: None,
        };
        if resuming {
            info.train_seconds = RunInfo::load(&dir).ok().and_then(|i| i.train_seconds);
        }
        info.save(&dir)?;
        // A BPE tokenizer also as Hugging Face's file, which Python's `tokenizers` loads as it is.
        if let Some(json) = info.tokenizer.as_ref().and_then(|t| t.hf_json()) {
            genlab_core::atomic::write_atomic(&dir.join("tokenizer.json"), json.as_bytes())?;
        }
        events.message(&format!(
            "data: {} ({} training, {} evaluation examples of shape {shape:?}); model: {} ({} parameters); device: {}",
            exp.data.dataset.describe(),
            info.train_examples,
            info.eval_examples,
            exp.model.family,
            info.parameters,
            exp.train.device
        ));
        Ok(RunDir { dir, info, resuming, _lock: lock })
    }
}
