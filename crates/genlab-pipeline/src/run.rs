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
use crate::run_dir::{lock_run, run_dir_exists, PrivacyRecord, RunDir};
use burn::module::Module;
use burn::tensor::Device;
use genlab_core::events::Events;
use genlab_core::lock::DirLock;
use genlab_core::DeviceSpec;
use genlab_train::checkpoint::newest_intact_checkpoint;
use genlab_train::privacy::{batch_norm_layers, DpSgd, PrivacyConfig};
use genlab_train::{check_resumable, BatchSource};
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
    /// Called with each periodic validation's values (a tuner's pruner); returning true stops
    /// training at once with a checkpoint, as the stop flag does.
    pub on_validation: Option<ValidationHook>,
}

/// See [`RunOptions::on_validation`].
pub type ValidationHook = Arc<dyn Fn(u64, &[(String, f64)]) -> bool + Send + Sync>;

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            run_dir: None,
            device: None,
            overrides: vec![],
            events: genlab_core::events::terminal(),
            stop: None,
            on_validation: None,
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
    /// `base`, or `base-2`, ... when taken; exactly `base` when `exact` (an explicit `--run-dir`).
    Fresh { base: PathBuf, exact: bool },
    /// An existing run, locked by this command; `rewrite` holds its experiment as changed by
    /// `--set`, written back only once the change has been checked against the checkpoint.
    Resume { dir: PathBuf, lock: DirLock, rewrite: Option<String> },
}

/// `genlab run FILE` (mode Run) and `genlab train FILE` (mode Train).
pub fn start(file: &Path, opts: &RunOptions, mode: Mode) -> Result<Finished> {
    let mut exp = Experiment::load(file, &opts.overrides)?;
    if let Some(d) = opts.device {
        exp.train.device = d;
    }
    if let Some(stopped) = crate::stages::resolve(&mut exp, file, opts)? {
        return Ok(stopped);
    }
    let target = match &opts.run_dir {
        Some(dir) if dir.exists() => return Err(run_dir_exists(dir)),
        Some(dir) => Target::Fresh { base: dir.clone(), exact: true },
        None => Target::Fresh { base: exp.default_run_dir(), exact: false },
    };
    family_of(&exp)?.execute(&exp, target, mode, opts, Instant::now())
}

/// `genlab train --resume RUN [--set key=value]`: continues from the latest checkpoint, then runs
/// the phases the run was started with. Overrides (a lower learning rate after a divergence, more
/// steps) are written into the run's `experiment.toml`, once they have been checked against the
/// checkpoint: a refused resume writes nothing. The run is locked against other writers.
pub fn resume(run_dir: &Path, opts: &RunOptions) -> Result<Finished> {
    let (lock, info) = lock_run(run_dir)?;
    let mut exp = Experiment::load(&run_dir.join("experiment.toml"), &opts.overrides)?;
    // The file records the experiment as changed by `--set`; `--device` is this command's choice.
    let rewrite = (!opts.overrides.is_empty()).then(|| exp.to_toml());
    if let Some(d) = opts.device {
        exp.train.device = d;
    }
    let target = Target::Resume { dir: run_dir.to_path_buf(), lock, rewrite };
    family_of(&exp)?.execute(&exp, target, info.mode, opts, Instant::now())
}

/// Refuses, before training, what the data's shape says cannot fit: the sample metrics'
/// `eval.metric_samples` images (floats and 8-bit copies, beside their features), and a training or
/// evaluation batch, counted at 8 floats per input value (the batch, its gradient and a few
/// activations of its size: a floor, not a model's full activation memory).
pub(crate) fn check_memory(exp: &Experiment, facts: &crate::data::DataFacts) -> Result<()> {
    use genlab_core::memory::{check, Bytes};
    let example = facts.shape.iter().product::<usize>() as u128;
    let n = exp.eval.metric_samples as u128;
    check(|| format!("eval.metric_samples = {n}"), Bytes(n * (example * 5 + 4 * 2048)))?;
    for (key, batch) in [("train.batch_size", exp.train.batch_size), ("eval.batch_size", exp.eval.batch_size)] {
        check(|| format!("{key} = {batch}"), Bytes::f32s(batch as u128 * example * 8))?;
    }
    Ok(())
}

/// `family`'s model, refused in one line naming the largest `[model]` key when its parameters
/// cannot fit in memory (instead of an abort in the allocator).
pub(crate) fn init_within_memory<F: Family>(family: &F, exp: &Experiment, device: &Device) -> Result<F::Model> {
    genlab_nn::init::within_memory(|| family.init(exp.train.seed, device)).map_err(|e| {
        let key = exp.model.largest_key().map(|(k, v)| format!("{k} = {v}: ")).unwrap_or_default();
        PipelineError::Config(format!("{key}{e}"))
    })?
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
    // The parameters first: a model too large for memory is the first thing to say.
    let model = init_within_memory(&family, exp, &device)?;
    check_memory(exp, &facts)?;
    crate::post::image_post(exp, family.capabilities().output(), facts.shape)?;
    family.check_data(&data)?;
    let mut batches = family.batches(&data, exp)?;
    let privacy = match &t.privacy {
        Some(p) => Some(dp_sgd::<F>(p, &model, &mut batches, exp, &*events)?),
        None => None,
    };
    let resume_from = match &target {
        Target::Resume { dir, .. } => {
            let point = newest_intact_checkpoint(dir)?.ok_or_else(|| {
                PipelineError::Run(format!("{}: no checkpoint to resume from (checkpoints/ is empty)", dir.display()))
            })?;
            point.fallback_lines().iter().for_each(|l| events.message(l));
            check_resumable(&point, &model, family.optimizers(exp), t.steps, &device)?;
            batches.restore(point.checkpoint.state.source.clone()).map_err(genlab_train::TrainError::Source)?;
            Some(point)
        }
        Target::Fresh { .. } => None,
    };
    let mut run = RunDir::open(exp, target, mode, facts, model.num_params(), &*events)?;
    if let Some(point) = &resume_from {
        point.set_aside_passed_over()?.iter().for_each(|l| events.message(l));
    }
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
            max_seconds: t.max_seconds,
        },
        &run.dir,
    )
    .with_events(events.clone());
    // A validation hook stops training through a stop flag of its own, beside the caller's.
    let asked = opts.on_validation.as_ref().map(|_| Arc::new(AtomicBool::new(false)));
    let trainer = opts.stop.iter().chain(&asked).fold(trainer, |t, flag| t.with_stop_flag(flag.clone()));
    let trainer = match privacy.clone() {
        Some(dp) => trainer.with_privacy(dp),
        None => trainer,
    };
    let outcome = trainer.fit(model, family.optimizers(exp), &mut batches, resume_from, &device, |step, m| {
        let values: Vec<(String, f64)> = family
            .validate(step, m, &set, &periodic)
            .map_err(|err| genlab_train::TrainError::Eval { step, reason: err.to_string() })?
            .into_iter()
            .map(|(k, x)| (k.to_string(), x))
            .collect();
        if let (Some(hook), Some(flag)) = (&opts.on_validation, &asked) {
            if hook(step, &values) {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        Ok(values)
    })?;
    let (model, step) = match outcome {
        TrainOutcome::Interrupted { step, checkpoint } => {
            events.message(&format!(
                "interrupted: checkpoint {} written; continue with `genlab train --resume {}`",
                checkpoint.display(),
                run.dir.display()
            ));
            return Ok(Finished::Interrupted { run_dir: run.dir, step });
        }
        TrainOutcome::Finished { model, ema, step, elapsed_s, privacy: spent } => {
            run.info.train_seconds = Some(elapsed_s);
            run.info.stopped_at = (step < t.steps).then_some(step);
            if let (Some(dp), Some(spent)) = (&privacy, spent) {
                run.info.privacy = Some(PrivacyRecord::new(dp, &spent));
            }
            run.info.save(&run.dir)?;
            if run.info.mode == Mode::Train {
                return Ok(Finished::Done { run_dir: run.dir, summary: None, goal: None });
            }
            (ema.unwrap_or_else(|| model.valid()), step)
        }
    };
    // Phases 6 to 8: the evaluation protocol, figures, report.
    let cx = EvalContext {
        exp,
        info: &run.info,
        run_dir: &run.dir,
        device: eval_device,
        step,
        started: Some(started),
        after_training: true,
        events: &events,
    };
    let (summary, goal) = evaluate(&family, &model, &data, &cx)?;
    Ok(Finished::Done { run_dir: run.dir.clone(), summary: Some(summary), goal })
}

/// DP-SGD for a private run: refuses batch statistics and families without per-example losses,
/// switches the batches to Poisson sampling and sets the noise multiplier (fixed, or calibrated to
/// `target_epsilon` over `train.steps`).
fn dp_sgd<F: Family>(
    p: &PrivacyConfig,
    model: &F::Model,
    batches: &mut crate::family::Batches<F::Model>,
    exp: &Experiment,
    events: &dyn genlab_core::events::EventSink,
) -> Result<DpSgd> {
    let t = &exp.train;
    if let Some(layer) = batch_norm_layers(model).first() {
        return Err(PipelineError::Config(format!(
            "train.privacy: the model's layer `{layer}` is a batch norm, whose statistics mix the examples of a batch, so per-example gradients (and DP-SGD's guarantee) do not exist; use a family or architecture with group norm (GroupNorm) instead, as Opacus's ModuleValidator asks"
        )));
    }
    if !F::trains_privately() {
        return Err(PipelineError::Config(format!(
            "train.privacy: the {} family cannot be trained privately (it does not give per-example losses through one optimiser); families that can: {}",
            F::CARD.name,
            registry::private_families().join(", ")
        )));
    }
    let n = batches.sample_poisson().ok_or_else(|| {
        PipelineError::Config("train.privacy: this family's batches cannot be Poisson-sampled".into())
    })?;
    let q = t.batch_size as f64 / n as f64;
    let sigma = p.noise_multiplier(q, t.steps, "train.privacy").map_err(PipelineError::Config)?;
    if p.delta >= 1.0 / n as f64 {
        events.message(&format!(
            "warning: train.privacy.delta = {} is not below 1 / {n} training examples: a guarantee this weak allows releasing an example outright",
            p.delta
        ));
    }
    let target = p.target_epsilon.map(|e| format!(", budget epsilon {e}")).unwrap_or_default();
    events.message(&format!(
        "DP-SGD: noise multiplier {sigma:.4}, each example's gradient clipped to {}, Poisson sampling rate {q:.6} ({} of {n} examples expected per step), delta {}{target}",
        p.max_grad_norm, t.batch_size, p.delta
    ));
    let dp = DpSgd {
        noise_multiplier: sigma,
        max_grad_norm: p.max_grad_norm,
        sample_rate: q,
        expected_batch_size: t.batch_size as f64,
        delta: p.delta,
        target_epsilon: p.target_epsilon,
        workers: t.replicas,
        accountant: Default::default(),
    };
    // Before anything is written: a budget that allows not even one step.
    if !dp.next_step_allowed() {
        return Err(PipelineError::Config(format!(
            "train.privacy: the budget allows no step: step 1 would spend epsilon {:.4} > target_epsilon {} (delta {}); raise target_epsilon or noise_multiplier",
            dp.epsilon_after_next_step(),
            p.target_epsilon.unwrap_or(f64::INFINITY),
            p.delta
        )));
    }
    Ok(dp)
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
        match family.generate(model, &GenerateRequest::new(n, cx.exp.eval.seed), &cx.device, Some(&**cx.events))? {
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
