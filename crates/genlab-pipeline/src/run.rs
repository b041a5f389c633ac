//! The phases of a run, the same for every family and in order: data -> model -> train -> eval ->
//! samples -> report; and the commands that re-enter a run directory (resume, eval, sample). The
//! family is chosen once, from the registry; everything below is generic over [`Family`].

use crate::data::Data;
use crate::error::{PipelineError, Result};
use crate::evaluation::{finish_evaluation, EvalContext, FamilyReport};
use crate::experiment::Experiment;
use crate::family::{Family, PeriodicContext, Section};
use crate::generate::{GenerateRequest, Generated, Images};
use crate::registry::{self, unknown_family, Registered};
use crate::run_dir::RunDir;
use crate::run_dir::RunInfo;
use burn::module::Module;
use genlab_core::events::Events;
use genlab_core::DeviceSpec;
use genlab_train::{TrainOutcome, Trainer, TrainerConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// Choices made on the command line rather than in the experiment file.
#[derive(Clone)]
pub struct RunOptions {
    pub run_dir: Option<PathBuf>,
    pub device: Option<DeviceSpec>,
    pub overrides: Vec<String>,
    /// Where progress and messages go.
    pub events: Events,
    /// Set it to stop training at the next step with a checkpoint, as Ctrl-C does in the CLI (for
    /// a server or a tuner that trains); without it, the process-wide Ctrl-C flag is read.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            run_dir: None,
            device: None,
            overrides: vec![],
            events: genlab_core::events::terminal(),
            stop: None,
        }
    }
}

/// Which phases a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every phase (`genlab run`).
    Run,
    /// Training only (`genlab train`).
    Train,
}

/// How a command ended.
#[derive(Debug)]
pub enum Finished {
    /// Every phase that was asked for ran; `summary` is the evaluation's headline.
    Done { run_dir: PathBuf, summary: Option<String>, goal: Option<String> },
    /// Stopped (Ctrl-C or the trainer's stop flag): a checkpoint was written and the run can resume.
    Interrupted { run_dir: PathBuf, step: u64 },
}

/// Where a run goes: a new directory (made only once data and model are ready, so a mistake
/// leaves nothing behind), or an existing run being resumed.
pub enum Target {
    Fresh(PathBuf),
    Resume(PathBuf),
}

/// `genlab run FILE` (mode Run) and `genlab train FILE` (mode Train).
pub fn start(file: &Path, opts: &RunOptions, mode: Mode) -> Result<Finished> {
    let mut exp = Experiment::load(file, &opts.overrides)?;
    if let Some(d) = opts.device {
        exp.train.device = d;
    }
    let base = opts.run_dir.clone().unwrap_or_else(|| exp.default_run_dir());
    family_of(&exp)?.execute(&exp, Target::Fresh(base), mode, opts, Instant::now())
}

/// `genlab train --resume RUN [--set key=value]`: continues from the latest checkpoint, then runs
/// the phases the run was started with. Overrides (a lower learning rate after a divergence, more
/// steps) are written into the run's `experiment.toml`.
pub fn resume(run_dir: &Path, opts: &RunOptions) -> Result<Finished> {
    let file = run_dir.join("experiment.toml");
    let mut exp = Experiment::load(&file, &opts.overrides)?;
    if !opts.overrides.is_empty() {
        genlab_core::atomic::write_atomic(&file, exp.to_toml().as_bytes())?;
    }
    if let Some(d) = opts.device {
        exp.train.device = d;
    }
    let info = RunInfo::load(run_dir)?;
    family_of(&exp)?.execute(&exp, Target::Resume(run_dir.to_path_buf()), info.mode, opts, Instant::now())
}

pub(crate) fn family_of(exp: &Experiment) -> Result<&'static dyn Registered> {
    registry::find(exp.model.family).ok_or_else(|| unknown_family(exp.model.family))
}

/// Phases 2 to 8 of family `F`.
pub(crate) fn execute<F: Family>(
    exp: &Experiment,
    section: Section<F::Network, F::Options>,
    target: Target,
    mode: Mode,
    opts: &RunOptions,
    started: Instant,
) -> Result<Finished> {
    let t = &exp.train;
    let events = opts.events.clone();
    let device = t.device.autodiff_device()?;
    // Phase 2: data, its kind resolved once.
    let data = Data::load(exp)?;
    // Phase 3: the model.
    let facts = data.facts();
    let family = F::new(section, exp, &facts);
    family.check_data(&data)?;
    let mut batches = family.batches(&data, exp)?;
    let model = family.init(t.seed, &device)?;
    let mut run = RunDir::open(exp, target, mode, facts, model.num_params(), &*events)?;
    let model = if run.resuming { model } else { family.initialize(model, &data, &device)? };
    // Phase 4: the one trainer, with the family's periodic validation at each evaluation step.
    let eval_device = device.clone().inner();
    let set = family.validation_set(&data, exp, &*events)?;
    let periodic = PeriodicContext { exp, run_dir: &run.dir, device: &eval_device };
    let trainer = Trainer::new(
        TrainerConfig {
            steps: t.steps,
            log_every: t.log_every,
            checkpoint_every: t.checkpoint_every,
            keep_checkpoints: t.keep_checkpoints,
            eval_every: t.eval_every,
            ema: t.ema,
            schedule: t.schedule,
            seed: t.seed,
            label: "train".into(),
        },
        &run.dir,
    )
    .with_events(events.clone());
    let trainer = match &opts.stop {
        Some(flag) => trainer.with_stop_flag(flag.clone()),
        None => trainer,
    };
    let outcome = trainer.fit(model, family.optimizers(exp), &mut batches, run.resuming, &device, |step, m| {
        family
            .validate(step, m, &set, &periodic)
            .map_err(|err| genlab_train::TrainError::Eval { step, reason: err.to_string() })
            .map(|v| v.into_iter().map(|(k, x)| (k.to_string(), x)).collect())
    })?;
    let model = match outcome {
        TrainOutcome::Interrupted { step, checkpoint } => {
            events.message(&format!(
                "interrupted: checkpoint {} written; continue with `genlab train --resume {}`",
                checkpoint.display(),
                run.dir.display()
            ));
            return Ok(Finished::Interrupted { run_dir: run.dir, step });
        }
        TrainOutcome::Finished { model, ema, elapsed_s, .. } => {
            run.info.train_seconds = Some(elapsed_s);
            run.info.save(&run.dir)?;
            if run.info.mode == Mode::Train {
                return Ok(Finished::Done { run_dir: run.dir, summary: None, goal: None });
            }
            ema.unwrap_or_else(|| model.valid())
        }
    };
    // Phases 6 to 8: the evaluation protocol, figures, report.
    let cx = EvalContext {
        exp,
        info: &run.info,
        run_dir: &run.dir,
        device: eval_device,
        step: t.steps,
        started: Some(started),
        after_training: true,
        events: &*events,
    };
    let (summary, goal) = evaluate(&family, &model, &data, &cx)?;
    Ok(Finished::Done { run_dir: run.dir.clone(), summary: Some(summary), goal })
}

/// The family's evaluation protocol, then the shared tail.
pub(crate) fn evaluate<F: Family>(
    family: &F,
    model: &F::Model,
    data: &Data,
    cx: &EvalContext<'_>,
) -> Result<(String, Option<String>)> {
    let started = Instant::now();
    let mut ev = family.evaluate(model, data, cx)?;
    let draws_images = family.capabilities().output() == crate::generate::OutputKind::Images;
    let drawn = ev.drawn.take();
    let draw = |n: usize| -> Result<Images> {
        if let Some(im) = drawn.as_ref().filter(|im| im.n >= n) {
            return Ok(im.first(n));
        }
        match family.generate(model, &GenerateRequest::new(n, cx.exp.eval.seed), &cx.device, Some(cx.events))? {
            Generated::Images(im) => Ok(im),
            _ => Err(PipelineError::Run(format!("the {} family drew no images", F::CARD.name))),
        }
    };
    let report = FamilyReport {
        model: family.describe(),
        optimizers: family.optimizers(cx.exp).iter().map(|o| (o.name.clone(), o.config)).collect(),
        loss: family.loss_curve(),
        draw: draws_images.then_some(&draw as &dyn Fn(usize) -> Result<Images>),
    };
    finish_evaluation(cx, report, data.images().ok(), ev, started)
}
