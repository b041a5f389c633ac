//! The phases of a run, in order: data -> model -> train -> eval -> samples -> report, and the
//! commands that re-enter a run directory (resume, eval, sample).

use crate::error::{PipelineError, Result};
use crate::experiment::{Experiment, ModelConfig};
use crate::images::{load_splits, EvalImages, ImageBatches, Splits};
use crate::report::{write_report, ReportInputs};
use crate::vae::{evaluate, figures, sample_folder, sample_grid, VaeMetrics};
use burn::module::Module;
use burn::tensor::Device;
use genlab_core::tensors::NamedTensors;
use genlab_core::DeviceSpec;
use genlab_models::vae::Vae;
use genlab_train::checkpoint::{latest_checkpoint, read_checkpoint};
use genlab_train::{Optimizers, TrainOutcome, Trainer, TrainerConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Choices made on the command line rather than in the experiment file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub run_dir: Option<PathBuf>,
    pub device: Option<DeviceSpec>,
    pub overrides: Vec<String>,
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
pub enum Finished {
    /// Every phase that was asked for ran.
    Done { run_dir: PathBuf, metrics: Option<VaeMetrics>, goal: Option<String> },
    /// Ctrl-C: a checkpoint was written and the run can resume.
    Interrupted { run_dir: PathBuf, step: u64 },
}

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
    pub genlab_version: String,
}

impl RunInfo {
    fn path(run_dir: &Path) -> PathBuf {
        run_dir.join("run.json")
    }
    fn save(&self, run_dir: &Path) -> Result<()> {
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
}

/// A new run directory: `base`, or `base-2`, `base-3`, ... when it exists (nothing is overwritten).
pub fn fresh_run_dir(base: &Path) -> Result<PathBuf> {
    let mut dir = base.to_path_buf();
    let mut i = 2;
    while dir.exists() {
        dir = PathBuf::from(format!("{}-{i}", base.display()));
        i += 1;
    }
    for sub in ["checkpoints", "samples", "plots"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(genlab_core::CoreError::io(dir.join(sub)))?;
    }
    Ok(dir)
}

/// Where a run goes: a new directory (made only once data and model are ready, so a mistake
/// leaves nothing behind), or an existing run being resumed.
enum Target {
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
    execute(exp, Target::Fresh(base), mode)
}

/// `genlab train --resume RUN [--set key=value]`: continues from the latest checkpoint, then runs
/// the phases the run was started with. Overrides (a lower learning rate after a divergence, more
/// steps) are written into the run's `experiment.toml`.
pub fn resume(run_dir: &Path, device: Option<DeviceSpec>, overrides: &[String]) -> Result<Finished> {
    let file = run_dir.join("experiment.toml");
    let mut exp = Experiment::load(&file, overrides)?;
    if !overrides.is_empty() {
        genlab_core::atomic::write_atomic(&file, exp.to_toml().as_bytes())?;
    }
    if let Some(d) = device {
        exp.train.device = d;
    }
    let info = RunInfo::load(run_dir)?;
    execute(exp, Target::Resume(run_dir.to_path_buf()), info.mode)
}

fn build_vae(exp: &Experiment, shape: [usize; 3], device: &Device) -> Result<Vae> {
    let ModelConfig::Vae(cfg) = &exp.model;
    Ok(cfg.init(shape, exp.train.seed, device)?)
}

fn execute(exp: Experiment, target: Target, mode: Mode) -> Result<Finished> {
    let wall = Instant::now();
    let t = &exp.train;
    let device = t.device.autodiff_device()?;
    // Phase 2: data.
    let Splits { train, train_rows, eval, eval_rows } = load_splits(&exp.data)?;
    if t.drop_last && t.batch_size > train_rows.len() {
        return Err(PipelineError::Config(format!("train.batch_size = {}: larger than the {} training examples (set a smaller batch or train.drop_last = false)", t.batch_size, train_rows.len())));
    }
    let shape = [train.channels, train.height, train.width];
    // Phase 3: model.
    let model = build_vae(&exp, shape, &device)?;
    let (run_dir, resuming) = match target {
        Target::Fresh(base) => {
            let dir = fresh_run_dir(&base)?;
            genlab_core::atomic::write_atomic(&dir.join("experiment.toml"), exp.to_toml().as_bytes())?;
            eprintln!("run directory: {}", dir.display());
            (dir, false)
        }
        Target::Resume(dir) => (dir, true),
    };
    let mut info = RunInfo {
        mode,
        data_shape: shape,
        class_names: train.class_names.clone(),
        train_examples: train_rows.len(),
        eval_examples: eval_rows.len(),
        parameters: model.num_params(),
        train_seconds: None,
        genlab_version: env!("CARGO_PKG_VERSION").into(),
    };
    if resuming {
        info.train_seconds = RunInfo::load(&run_dir).ok().and_then(|i| i.train_seconds);
    }
    info.save(&run_dir)?;
    eprintln!(
        "data: {} ({} training, {} evaluation examples of shape {shape:?}); model: {} parameters; device: {}",
        exp.data.dataset.describe(),
        info.train_examples,
        info.eval_examples,
        info.parameters,
        t.device
    );
    // Phase 4: training, with a validation ELBO and a sample grid at every evaluation step.
    let eval_set = EvalImages::new(&eval, &eval_rows, &exp.data.transforms, exp.eval.seed);
    let periodic = EvalImages::new(
        &eval,
        &eval_rows[..exp.eval.periodic_examples.min(eval_rows.len())],
        &exp.data.transforms,
        exp.eval.seed,
    );
    let mut batches = ImageBatches::new(train, train_rows, &exp.data.transforms, t.batch_size, t.drop_last, t.seed);
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
        &run_dir,
    );
    let optimizers = Optimizers::single(t.optimizer, t.clip_grad_norm);
    let eval_device = device.clone().inner();
    let samples_n = exp.eval.samples;
    let symmetric = exp.data.transforms.contains(&genlab_data::Transform::ScaleSymmetric);
    let samples_dir = run_dir.join("samples");
    let outcome = trainer.fit(model, optimizers, &mut batches, resuming, &device, |step, m: &Vae| {
        let v = evaluate(m, &periodic, 0, exp.eval.batch_size, exp.eval.seed, &eval_device, None);
        sample_grid(
            m,
            samples_n,
            exp.eval.seed,
            symmetric,
            &eval_device,
            &samples_dir.join(format!("step-{step:06}.png")),
        )
        .map_err(|e| genlab_train::TrainError::Eval { step, reason: e.to_string() })?;
        Ok(vec![("val_elbo".to_string(), v.elbo_nats)])
    })?;
    let (model, ema, elapsed) = match outcome {
        TrainOutcome::Interrupted { step, checkpoint } => {
            eprintln!(
                "interrupted: checkpoint {} written; continue with `genlab train --resume {}`",
                checkpoint.display(),
                run_dir.display()
            );
            return Ok(Finished::Interrupted { run_dir, step });
        }
        TrainOutcome::Finished { model, ema, elapsed_s, .. } => (model, ema, elapsed_s),
    };
    info.train_seconds = Some(elapsed);
    info.save(&run_dir)?;
    if mode == Mode::Train {
        return Ok(Finished::Done { run_dir, metrics: None, goal: None });
    }
    // Phases 6-7: evaluation, samples and figures, with the EMA weights when kept.
    let eval_model = ema.unwrap_or_else(|| model.valid());
    let metrics = eval_and_report(&exp, &info, &eval_model, &eval_set, &run_dir, &eval_device, Some(wall))?;
    Ok(Finished::Done { goal: crate::report::goal_verdict(&exp, &metrics), run_dir, metrics: Some(metrics) })
}

/// Runs the full evaluation protocol, writes `eval.json`, the figures and `report.md`.
fn eval_and_report(
    exp: &Experiment,
    info: &RunInfo,
    vae: &Vae,
    set: &EvalImages,
    run_dir: &Path,
    device: &Device,
    started: Option<Instant>,
) -> Result<VaeMetrics> {
    let e = &exp.eval;
    let set_n = e.examples.map_or(set.n, |n| n.min(set.n));
    let subset;
    let set = if set_n < set.n {
        subset = EvalImages {
            data: set.data[..set_n * set.shape.iter().product::<usize>()].to_vec(),
            labels: set.labels.as_ref().map(|l| l[..set_n].to_vec()),
            n: set_n,
            shape: set.shape,
        };
        &subset
    } else {
        set
    };
    let metrics = evaluate(vae, set, e.iwae_k, e.batch_size, e.seed, device, Some("evaluate"));
    eprintln!(
        "test: ELBO {:.2} nats, NLL (IWAE k={}) {:.2} nats, {} examples, {:.0}s",
        metrics.elbo_nats, metrics.iwae_k, metrics.nll_nats, metrics.examples, metrics.seconds
    );
    genlab_core::atomic::write_atomic(
        &run_dir.join("eval.json"),
        &serde_json::to_vec_pretty(&metrics).expect("metrics should serialise"),
    )?;
    let symmetric = exp.data.transforms.contains(&genlab_data::Transform::ScaleSymmetric);
    let figs = figures(vae, set, &info.class_names, e.samples, e.seed, symmetric, device, run_dir)?;
    let wall_seconds = started.map(|t| t.elapsed().as_secs_f64());
    write_report(&ReportInputs { exp, info, metrics: &metrics, figures: &figs, run_dir, wall_seconds })?;
    Ok(metrics)
}

/// Loads the weights to evaluate from a run's latest checkpoint: the EMA copy when there is one.
pub fn load_eval_model(run_dir: &Path, device: Option<DeviceSpec>) -> Result<(Experiment, RunInfo, Vae, Device)> {
    let mut exp = Experiment::load(&run_dir.join("experiment.toml"), &[])?;
    if let Some(d) = device {
        exp.train.device = d;
    }
    let info = RunInfo::load(run_dir)?;
    let device = exp.train.device.device()?;
    let dir = latest_checkpoint(run_dir)?.ok_or_else(|| {
        PipelineError::Run(format!("{}: no checkpoint yet (checkpoints/latest is missing)", run_dir.display()))
    })?;
    let ckpt = read_checkpoint(&dir)?;
    let (weights, file): (&NamedTensors, &str) = match &ckpt.ema {
        Some(e) => (e, "ema.safetensors"),
        None => (&ckpt.model, "model.safetensors"),
    };
    let vae = weights.load_into(build_vae(&exp, info.data_shape, &device)?, &dir.join(file))?;
    Ok((exp, info, vae, device))
}

/// `genlab eval RUN`: the full evaluation protocol on the run's latest weights.
pub fn eval_run(run_dir: &Path, device: Option<DeviceSpec>) -> Result<VaeMetrics> {
    let (exp, info, vae, device) = load_eval_model(run_dir, device)?;
    let Splits { eval, eval_rows, .. } = load_splits(&exp.data)?;
    let set = EvalImages::new(&eval, &eval_rows, &exp.data.transforms, exp.eval.seed);
    eval_and_report(&exp, &info, &vae, &set, run_dir, &device, None)
}

/// `genlab sample RUN -n N --seed S -o FILE`: a grid of `n` samples.
pub fn sample_run(
    run_dir: &Path,
    n: usize,
    seed: u64,
    out: &Path,
    format: SampleFormat,
    device: Option<DeviceSpec>,
) -> Result<()> {
    if n == 0 {
        return Err(PipelineError::Config("-n 0: expected at least one sample".into()));
    }
    if format == SampleFormat::Folder && !genlab_core::atomic::is_absent_or_empty_dir(out) {
        return Err(PipelineError::Run(format!(
            "{}: exists and is not an empty directory; samples are never written over other files",
            out.display()
        )));
    }
    let (exp, _, vae, device) = load_eval_model(run_dir, device)?;
    let symmetric = exp.data.transforms.contains(&genlab_data::Transform::ScaleSymmetric);
    match format {
        SampleFormat::Grid => sample_grid(&vae, n, seed, symmetric, &device, out),
        SampleFormat::Folder => sample_folder(&vae, n, seed, symmetric, &device, out),
    }
}

/// How `genlab sample` writes its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// One PNG grid.
    Grid,
    /// A folder of PNG files, one per sample (for `genlab fid`).
    Folder,
}
