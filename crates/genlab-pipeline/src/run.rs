//! The phases of a run, in order: data -> model -> train -> eval -> samples -> report, and the
//! commands that re-enter a run directory (resume, eval, sample).

use crate::error::{PipelineError, Result};
use crate::experiment::{Experiment, ModelConfig};
use crate::images::{load_splits, ImageBatches, LabelledBatches, Splits};
use crate::vae::{sample_folder, sample_grid};
use burn::module::Module;
use burn::tensor::Device;
use genlab_core::tensors::NamedTensors;
use genlab_core::DeviceSpec;
use genlab_models::flow::Flow;
use genlab_models::gan::Gan;
use genlab_models::vae::Vae;
use genlab_train::checkpoint::{latest_checkpoint, read_checkpoint, Checkpoint};
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
    /// Every phase that was asked for ran; `summary` is the evaluation's headline.
    Done { run_dir: PathBuf, summary: Option<String>, goal: Option<String> },
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
pub(crate) enum Target {
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

/// What a run directory records of its data.
pub(crate) struct DataFacts {
    pub shape: [usize; 3],
    pub class_names: Vec<String>,
    pub train_examples: usize,
    pub eval_examples: usize,
}

impl Splits {
    pub(crate) fn facts(&self) -> DataFacts {
        DataFacts {
            shape: [self.train.channels, self.train.height, self.train.width],
            class_names: self.train.class_names.clone(),
            train_examples: self.train_rows.len(),
            eval_examples: self.eval_rows.len(),
        }
    }
}

/// A run directory being trained into, with the facts recorded about it.
pub(crate) struct RunDir {
    pub dir: PathBuf,
    pub info: RunInfo,
    pub resuming: bool,
    pub started: Instant,
}

impl RunDir {
    /// Makes the directory (fresh runs) and writes `run.json`; called once data and model are ready.
    pub(crate) fn open(
        exp: &Experiment,
        target: Target,
        mode: Mode,
        data: DataFacts,
        parameters: usize,
        started: Instant,
    ) -> Result<Self> {
        let (dir, resuming) = match target {
            Target::Fresh(base) => {
                let dir = fresh_run_dir(&base)?;
                genlab_core::atomic::write_atomic(&dir.join("experiment.toml"), exp.to_toml().as_bytes())?;
                eprintln!("run directory: {}", dir.display());
                (dir, false)
            }
            Target::Resume(dir) => (dir, true),
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
            genlab_version: env!("CARGO_PKG_VERSION").into(),
        };
        if resuming {
            info.train_seconds = RunInfo::load(&dir).ok().and_then(|i| i.train_seconds);
        }
        info.save(&dir)?;
        eprintln!(
            "data: {} ({} training, {} evaluation examples of shape {shape:?}); model: {} ({} parameters); device: {}",
            exp.data.dataset.describe(),
            info.train_examples,
            info.eval_examples,
            exp.model.family(),
            info.parameters,
            exp.train.device
        );
        Ok(RunDir { dir, info, resuming, started })
    }
}

/// What training left to do.
pub(crate) enum Trained<M> {
    /// Evaluate these weights (the EMA copy when kept).
    Evaluate(M),
    /// Stop here: interrupted, or a `genlab train` command.
    Stop(Finished),
}

/// The one optimiser of a single-network family, from `[train]`.
pub(crate) fn single_optimizer(exp: &Experiment) -> Optimizers {
    Optimizers::single(exp.train.optimizer, exp.train.clip_grad_norm)
}

/// Phase 4, the same for every family: the one trainer over `batches` with the family's
/// `optimizers`, and `periodic` called at each evaluation step.
pub(crate) fn train<M, S, E>(
    exp: &Experiment,
    run: &mut RunDir,
    model: M,
    optimizers: Optimizers,
    batches: &mut S,
    device: &Device,
    periodic: E,
) -> Result<Trained<M>>
where
    M: genlab_train::TrainStep,
    S: genlab_train::BatchSource<Batch = M::Batch>,
    E: FnMut(u64, &M) -> genlab_train::Result<Vec<(String, f64)>>,
{
    let t = &exp.train;
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
    );
    match trainer.fit(model, optimizers, batches, run.resuming, device, periodic)? {
        TrainOutcome::Interrupted { step, checkpoint } => {
            eprintln!(
                "interrupted: checkpoint {} written; continue with `genlab train --resume {}`",
                checkpoint.display(),
                run.dir.display()
            );
            Ok(Trained::Stop(Finished::Interrupted { run_dir: run.dir.clone(), step }))
        }
        TrainOutcome::Finished { model, ema, elapsed_s, .. } => {
            run.info.train_seconds = Some(elapsed_s);
            run.info.save(&run.dir)?;
            if run.info.mode == Mode::Train {
                return Ok(Trained::Stop(Finished::Done { run_dir: run.dir.clone(), summary: None, goal: None }));
            }
            Ok(Trained::Evaluate(ema.unwrap_or_else(|| model.valid())))
        }
    }
}

/// Phases 6 to 8 after training, unless training stopped: `evaluate` runs the family's protocol
/// and returns its headline and the goal's verdict.
pub(crate) fn evaluate_trained<M>(
    exp: &Experiment,
    run: &RunDir,
    trained: Trained<M>,
    device: Device,
    evaluate: impl FnOnce(&EvalContext<'_>, &M) -> Result<(String, Option<String>)>,
) -> Result<Finished> {
    let model = match trained {
        Trained::Stop(f) => return Ok(f),
        Trained::Evaluate(m) => m,
    };
    let (summary, goal) = evaluate(&EvalContext::after_training(exp, run, device), &model)?;
    Ok(Finished::Done { run_dir: run.dir.clone(), summary: Some(summary), goal })
}

fn execute(exp: Experiment, target: Target, mode: Mode) -> Result<Finished> {
    let started = Instant::now();
    let t = &exp.train;
    let device = t.device.autodiff_device()?;
    // Phase 2: data (2-D toy points, generated in code, or images).
    if let (Some(toy), ModelConfig::Flow(cfg)) = (exp.data.dataset.toy(), &exp.model) {
        return crate::flow::run_points(&exp, cfg, toy, target, mode, &device, started);
    }
    let splits = load_splits(&exp.data)?;
    if t.drop_last && t.batch_size > splits.train_rows.len() {
        return Err(PipelineError::Config(format!("train.batch_size = {}: larger than the {} training examples (set a smaller batch or train.drop_last = false)", t.batch_size, splits.train_rows.len())));
    }
    let shape = [splits.train.channels, splits.train.height, splits.train.width];
    let batches = ImageBatches::new(
        splits.train.clone(),
        splits.train_rows.clone(),
        &exp.data.transforms,
        t.batch_size,
        t.drop_last,
        t.seed,
    );
    exp.check_data_shape(shape)?;
    // Phase 3: model; then phases 4 to 8, by family.
    match &exp.model {
        ModelConfig::Vae(cfg) => {
            let model = cfg.init(shape, t.seed, &device)?;
            let mut run = RunDir::open(&exp, target, mode, splits.facts(), model.num_params(), started)?;
            crate::vae::run_phases(&exp, &mut run, model, batches, &splits, &device)
        }
        ModelConfig::Flow(cfg) => {
            let model = cfg.init(shape, t.seed, &device)?;
            let mut run = RunDir::open(&exp, target, mode, splits.facts(), model.num_params(), started)?;
            crate::flow::run_images(&exp, &mut run, model, batches, &splits, &device)
        }
        ModelConfig::Gan(cfg) => {
            let classes = splits.train.class_names.len();
            if cfg.conditional {
                crate::classifier::check_labels(&splits, &exp.data.dataset.describe())?;
            }
            let model = cfg.init(shape, classes, t.seed, &device)?;
            let mut run = RunDir::open(&exp, target, mode, splits.facts(), model.num_params(), started)?;
            crate::gan::run_phases(&exp, &mut run, model, batches, &splits, &device)
        }
        ModelConfig::Classifier(cfg) => {
            let batches = LabelledBatches::new(batches)?;
            crate::classifier::check_labels(&splits, &exp.data.dataset.describe())?;
            let model = cfg.init(shape, splits.train.class_names.len(), t.seed, &device)?;
            let mut run = RunDir::open(&exp, target, mode, splits.facts(), model.num_params(), started)?;
            crate::classifier::run_phases(&exp, &mut run, model, batches, &splits, &device)
        }
    }
}

/// A run's experiment (with `overrides` applied, not written back), its facts and its latest
/// checkpoint's step and directory.
pub(crate) struct EvalTarget {
    pub exp: Experiment,
    pub info: RunInfo,
    pub device: Device,
    pub checkpoint_dir: PathBuf,
    pub checkpoint: Checkpoint,
}

impl EvalTarget {
    pub fn open(run_dir: &Path, device: Option<DeviceSpec>, overrides: &[String]) -> Result<Self> {
        let mut exp = Experiment::load(&run_dir.join("experiment.toml"), overrides)?;
        if let Some(d) = device {
            exp.train.device = d;
        }
        let info = RunInfo::load(run_dir)?;
        let device = exp.train.device.device()?;
        let checkpoint_dir = latest_checkpoint(run_dir)?.ok_or_else(|| {
            PipelineError::Run(format!("{}: no checkpoint yet (checkpoints/latest is missing)", run_dir.display()))
        })?;
        let checkpoint = read_checkpoint(&checkpoint_dir)?;
        Ok(EvalTarget { exp, info, device, checkpoint_dir, checkpoint })
    }

    pub fn step(&self) -> u64 {
        self.checkpoint.state.step
    }

    /// Loads the weights to evaluate into `model`: the EMA copy when there is one.
    pub fn load<M: Module>(&self, model: M) -> Result<M> {
        let (weights, file): (&NamedTensors, &str) = match &self.checkpoint.ema {
            Some(e) => (e, "ema.safetensors"),
            None => (&self.checkpoint.model, "model.safetensors"),
        };
        Ok(weights.load_into(model, &self.checkpoint_dir.join(file))?)
    }

    pub fn flow(&self) -> Result<Flow> {
        match &self.exp.model {
            ModelConfig::Flow(cfg) => self.load(cfg.init(self.info.data_shape, self.exp.train.seed, &self.device)?),
            other => Err(PipelineError::Run(format!("this is a {} run, not a flow", other.family()))),
        }
    }

    pub fn gan(&self) -> Result<Gan> {
        match &self.exp.model {
            ModelConfig::Gan(cfg) => self.load(cfg.init(
                self.info.data_shape,
                self.info.class_names.len(),
                self.exp.train.seed,
                &self.device,
            )?),
            other => Err(PipelineError::Run(format!("this is a {} run, not a GAN", other.family()))),
        }
    }

    pub fn vae(&self) -> Result<Vae> {
        match &self.exp.model {
            ModelConfig::Vae(cfg) => self.load(cfg.init(self.info.data_shape, self.exp.train.seed, &self.device)?),
            other => Err(PipelineError::Run(format!(
                "this is a {} run; it has no generative model to sample from",
                other.family()
            ))),
        }
    }
}

/// What an evaluation needs to know of its run.
pub(crate) struct EvalContext<'a> {
    pub exp: &'a Experiment,
    pub info: &'a RunInfo,
    pub run_dir: &'a Path,
    pub device: Device,
    /// The step of the weights evaluated.
    pub step: u64,
    /// When the whole command started, for a run that ran every phase.
    pub started: Option<Instant>,
    /// Right after training (`genlab run`): the sample metrics are skipped with a warning when the
    /// feature network is not installed, rather than failing after training (`genlab eval` fails),
    /// and a classifier asked to is installed as a feature network (`genlab eval` never reinstalls).
    pub after_training: bool,
}

impl<'a> EvalContext<'a> {
    pub fn after_training(exp: &'a Experiment, run: &'a RunDir, device: Device) -> Self {
        EvalContext {
            exp,
            info: &run.info,
            run_dir: &run.dir,
            device,
            step: exp.train.steps,
            started: Some(run.started),
            after_training: true,
        }
    }

    fn of_target(t: &'a EvalTarget, run_dir: &'a Path) -> Self {
        EvalContext {
            exp: &t.exp,
            info: &t.info,
            run_dir,
            device: t.device.clone(),
            step: t.step(),
            started: None,
            after_training: false,
        }
    }

    /// Appends the evaluation to `metrics.jsonl` as a `"split": "test"` entry.
    pub fn log_evaluation(&self, fields: Vec<(&str, serde_json::Value)>) -> Result<()> {
        let mut entry = serde_json::Map::new();
        entry.insert("split".into(), "test".into());
        entry.insert("step".into(), self.step.into());
        entry.extend(fields.into_iter().map(|(k, v)| (k.to_string(), v)));
        genlab_train::metrics::MetricLog::open(&self.run_dir.join("metrics.jsonl"), None)?.log(entry)?;
        Ok(())
    }
}

/// `genlab eval RUN [--set eval.key=value]`: the full evaluation protocol on the run's latest
/// weights; returns the headline. Overrides change this evaluation only, not the run's experiment.
pub fn eval_run(run_dir: &Path, device: Option<DeviceSpec>, overrides: &[String]) -> Result<String> {
    let target = EvalTarget::open(run_dir, device, overrides)?;
    target.exp.check_data_shape(target.info.data_shape)?;
    let cx = EvalContext::of_target(&target, run_dir);
    if let Some(toy) = target.exp.data.dataset.toy() {
        return Ok(crate::flow::eval_points_and_report(&cx, &target.flow()?, toy)?.0);
    }
    let splits = load_splits(&target.exp.data)?;
    let (summary, _) = match &target.exp.model {
        ModelConfig::Flow(_) => crate::flow::eval_images_and_report(&cx, &target.flow()?, &splits)?,
        ModelConfig::Gan(_) => crate::gan::eval_and_report(&cx, &target.gan()?, &splits)?,
        ModelConfig::Vae(_) => crate::vae::eval_and_report(&cx, &target.vae()?, &splits)?,
        ModelConfig::Classifier(cfg) => {
            let model = cfg.init(target.info.data_shape, target.info.class_names.len(), 0, &target.device)?;
            crate::classifier::eval_and_report(&cx, &target.load(model)?, &splits)?
        }
    };
    Ok(summary)
}

/// `genlab sample RUN -n N --seed S -o OUT [--temperature T]`: `n` samples as a grid or a folder
/// of PNG files; a flow on 2-D points writes them as CSV (`x,y` lines) or, for any other
/// extension, a scatter plot. `temperature` (flows only) defaults to the run's `eval.temperature`;
/// `class` asks a conditional GAN for one class (without it, its samples cycle through them).
#[allow(clippy::too_many_arguments)]
pub fn sample_run(
    run_dir: &Path,
    n: usize,
    seed: u64,
    out: &Path,
    format: SampleFormat,
    temperature: Option<f64>,
    class: Option<usize>,
    device: Option<DeviceSpec>,
) -> Result<()> {
    if n == 0 {
        return Err(PipelineError::Config("-n 0: expected at least one sample".into()));
    }
    if let Some(t) = temperature.filter(|t| !(*t >= 0.0 && t.is_finite())) {
        return Err(PipelineError::Config(format!("--temperature {t}: expected a finite number >= 0")));
    }
    if format == SampleFormat::Folder && !genlab_core::atomic::is_absent_or_empty_dir(out) {
        return Err(PipelineError::Run(format!(
            "{}: exists and is not an empty directory; samples are never written over other files",
            out.display()
        )));
    }
    let target = EvalTarget::open(run_dir, device, &[])?;
    let d = &target.device;
    if class.is_some() && !matches!(&target.exp.model, ModelConfig::Gan(g) if g.conditional) {
        return Err(PipelineError::Config(format!(
            "--class: only a conditional GAN generates a requested class; this is a {} run",
            target.exp.model.family()
        )));
    }
    if let ModelConfig::Gan(_) = target.exp.model {
        if temperature.is_some() {
            return Err(PipelineError::Config("--temperature: applies to flows; this is a gan run".into()));
        }
        let gan = target.gan()?;
        let classes = target.info.class_names.len();
        if let Some(c) = class.filter(|&c| c >= classes) {
            return Err(PipelineError::Config(format!("--class {c}: the run has {classes} classes (0..{classes})")));
        }
        return crate::gan::sample_out(&gan, n, seed, class, d, out, format == SampleFormat::Folder);
    }
    if let ModelConfig::Flow(_) = target.exp.model {
        let flow = target.flow()?;
        let t = temperature.unwrap_or(target.exp.eval.temperature);
        if let Some(toy) = target.exp.data.dataset.toy() {
            if format == SampleFormat::Folder {
                return Err(PipelineError::Config(
                    "--format folder: a 2-D flow's samples are points; write them to a .csv or .png file".into(),
                ));
            }
            let pts = crate::flow::sample_points(&flow, n, seed, t, d);
            if out.extension().is_some_and(|e| e == "csv") {
                let text: String = pts.chunks(2).map(|p| format!("{},{}\n", p[0], p[1])).collect();
                genlab_core::atomic::write_atomic(out, format!("x,y\n{text}").as_bytes())?;
                return Ok(());
            }
            return crate::plots::density_panels(
                out,
                &format!("{n} samples at temperature {t}"),
                toy.window(),
                &[crate::plots::DensityPanel::Points { title: toy.name(), points: &pts }],
            );
        }
        return match format {
            SampleFormat::Grid => crate::flow::sample_grid(&flow, n, seed, t, d, out),
            SampleFormat::Folder => crate::flow::sample_folder(&flow, n, seed, t, d, out),
        };
    }
    if temperature.is_some() {
        return Err(PipelineError::Config(format!(
            "--temperature: applies to flows; this is a {} run",
            target.exp.model.family()
        )));
    }
    let vae = target.vae().map_err(|e| PipelineError::Run(format!("{}: {e}", run_dir.display())))?;
    let symmetric = target.exp.data.transforms.contains(&genlab_data::Transform::ScaleSymmetric);
    match format {
        SampleFormat::Grid => sample_grid(&vae, n, seed, symmetric, d, out),
        SampleFormat::Folder => sample_folder(&vae, n, seed, symmetric, d, out),
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
