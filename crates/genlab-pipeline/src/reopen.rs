//! The commands that open a finished (or checkpointed) run again: `genlab eval` and `genlab
//! sample`, generic over the run's family like the phases of `run.rs`.

use crate::data::Data;
use crate::error::{PipelineError, Result};
use crate::evaluation::EvalContext;
use crate::experiment::Experiment;
use crate::family::{Family, Section};
use crate::generate::{GenerateRequest, Generated, OutputKind, SampleFormat, MAX_GRID};
use crate::run::family_of;
use crate::run_dir::RunInfo;
use burn::module::Module;
use burn::tensor::Device;
use genlab_core::events::Events;
use genlab_core::memory::Bytes;
use genlab_core::tensors::NamedTensors;
use genlab_core::DeviceSpec;
use genlab_train::checkpoint::{newest_intact_checkpoint, Checkpoint, IntactCheckpoint};
use std::path::{Path, PathBuf};

/// A finished (or checkpointed) run opened again: its experiment (with `overrides` applied, not
/// written back), its facts and its latest checkpoint.
pub struct RunTarget {
    pub exp: Experiment,
    pub info: RunInfo,
    pub run_dir: PathBuf,
    pub device: Device,
    pub checkpoint_dir: PathBuf,
    pub checkpoint: Checkpoint,
    pub events: Events,
}

impl RunTarget {
    pub fn open(run_dir: &Path, device: Option<DeviceSpec>, overrides: &[String], events: Events) -> Result<Self> {
        let mut exp = Experiment::load(&run_dir.join("experiment.toml"), overrides)?;
        if let Some(d) = device {
            exp.train.device = d;
        }
        let info = RunInfo::load(run_dir)?;
        let device = exp.train.device.device()?;
        let point = newest_intact_checkpoint(run_dir)?.ok_or_else(|| {
            PipelineError::Run(format!("{}: no checkpoint yet (checkpoints/ is empty)", run_dir.display()))
        })?;
        point.fallback_lines().iter().for_each(|l| events.message(l));
        let IntactCheckpoint { dir: checkpoint_dir, checkpoint, .. } = point;
        Ok(RunTarget { exp, info, run_dir: run_dir.to_path_buf(), device, checkpoint_dir, checkpoint, events })
    }

    /// Loads the weights to evaluate into `model`: the EMA copy when there is one.
    pub fn load<M: Module>(&self, model: M) -> Result<M> {
        let (weights, file): (&NamedTensors, &str) = match &self.checkpoint.ema {
            Some(e) => (e, "ema.safetensors"),
            None => (&self.checkpoint.model, "model.safetensors"),
        };
        Ok(weights.load_into(model, &self.checkpoint_dir.join(file))?)
    }

    /// The run's family, from its section and the data facts the run recorded.
    fn family<F: Family>(&self, section: Section<F::Network, F::Options>) -> F {
        F::new(section, &self.exp, &self.info.facts())
    }

    /// `family`'s model with the run's weights.
    fn model<F: Family>(&self, family: &F) -> Result<F::Model> {
        self.load(crate::run::init_within_memory(family, &self.exp, &self.device)?)
    }
}

/// `genlab eval RUN [--set eval.key=value]`: the full evaluation protocol on the run's latest
/// weights; returns the headline. Overrides change this evaluation only, not the run's experiment.
/// The run is locked against other writers while it is evaluated.
pub fn eval_run(run_dir: &Path, device: Option<DeviceSpec>, overrides: &[String], events: Events) -> Result<String> {
    let (_lock, _) = crate::run_dir::lock_run(run_dir)?;
    let target = RunTarget::open(run_dir, device, overrides, events)?;
    family_of(&target.exp)?.evaluate(&target)
}

pub(crate) fn evaluate_run<F: Family>(target: &RunTarget, section: Section<F::Network, F::Options>) -> Result<String> {
    let family = target.family::<F>(section);
    let model = target.model(&family)?;
    let data = Data::load(&target.exp)?;
    crate::run::check_memory(&target.exp, &target.info.facts())?;
    family.check_data(&data)?;
    let cx = EvalContext {
        exp: &target.exp,
        info: &target.info,
        run_dir: &target.run_dir,
        device: target.device.clone(),
        step: target.checkpoint.state.step,
        started: None,
        after_training: false,
        events: &target.events,
    };
    Ok(crate::run::evaluate(&family, &model, &data, &cx)?.0)
}

pub(crate) fn generate<F: Family>(
    target: &RunTarget,
    section: Section<F::Network, F::Options>,
    request: &GenerateRequest,
    progress: bool,
) -> Result<Generated> {
    let family = target.family::<F>(section);
    let can = family.capabilities();
    request.check(F::CARD.name, &can)?;
    check_sample_memory(request.count, can.output(), target.info.data_shape)?;
    crate::post::image_post(&target.exp, can.output(), target.info.data_shape)?;
    let model = target.model(&family)?;
    let generated = family.generate(&model, request, &target.device, progress.then_some(&*target.events))?;
    let cell = std::sync::OnceLock::new();
    let data = || crate::post::data_once(&cell, &target.exp);
    let stage = crate::post::Stage {
        exp: &target.exp,
        output: can.output(),
        shape: target.info.data_shape,
        device: &target.device,
        events: &*target.events,
        data: &data,
        filter: &std::sync::OnceLock::new(),
        corrector: &std::sync::OnceLock::new(),
        text_filters: &std::sync::OnceLock::new(),
    };
    let mut counts = genlab_post::content::FilterCounts::default();
    let generated = stage
        .finish(request, generated, &mut counts, &mut |again| family.generate(&model, again, &target.device, None))?;
    if let Some(said) = crate::post::describe_counts(&counts) {
        target.events.message(&format!("[post] {said}"));
    }
    Ok(generated)
}

/// Refuses a sample count whose samples cannot be held in memory (`-n 100000000`).
pub(crate) fn check_sample_memory(count: usize, output: OutputKind, shape: [usize; 3]) -> Result<()> {
    let (per_sample, what): (u128, &str) = match output {
        // The generated floats and their 8-bit copy.
        OutputKind::Images => (shape.iter().product::<usize>() as u128 * 5, "images"),
        OutputKind::Points => (16, "points"),
        OutputKind::Text | OutputKind::Nothing => (0, "samples"),
    };
    Ok(genlab_core::memory::check(|| format!("-n {count} ({what})"), Bytes(per_sample * count as u128))?)
}

/// Refuses, before anything is generated, an output that would destroy work or mislabel its
/// contents: a path inside a run's `checkpoints/` (followed through `latest`), an existing file
/// unless `force`, a non-empty folder, or an extension that is not the samples' format.
pub fn check_output(out: &Path, format: SampleFormat, output: OutputKind, force: bool, family: &str) -> Result<()> {
    let refuse = |why: String| Err(PipelineError::Config(format!("-o {}: {why}", out.display())));
    if let Some(dir) = inside_checkpoints(out) {
        return refuse(format!("is inside {}, a run's checkpoints; write samples elsewhere", dir.display()));
    }
    match format {
        SampleFormat::Folder if !genlab_core::atomic::is_absent_or_empty_dir(out) => {
            refuse("exists and is not an empty directory; samples are never written over other files".into())
        }
        SampleFormat::Folder => Ok(()),
        SampleFormat::Grid if out.is_dir() => refuse("is a directory; give a file name, or use --format folder".into()),
        SampleFormat::Grid if out.exists() && !force => {
            refuse("exists; give a new file name, or --force to replace it".into())
        }
        SampleFormat::Grid => {
            let (allowed, what): (&[&str], &str) = match output {
                OutputKind::Images => (&["png"], "a PNG grid (.png)"),
                OutputKind::Points => (&["csv", "png"], "points: a CSV file (.csv) or a scatter plot (.png)"),
                OutputKind::Text => (&["txt"], "text (.txt)"),
                OutputKind::Nothing => return Ok(()),
            };
            let ext = out.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
            if allowed.contains(&ext.as_str()) {
                Ok(())
            } else {
                refuse(format!("the {family} family's samples are written as {what}"))
            }
        }
    }
}

/// The run's `checkpoints` directory that `path` lies in, if any: the nearest existing ancestor
/// of `path` is resolved (symbolic links such as `checkpoints/latest` followed), then searched for
/// a `checkpoints` directory beside a `run.json`.
fn inside_checkpoints(path: &Path) -> Option<PathBuf> {
    let absolute = if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir().ok()?.join(path) };
    let existing = absolute.ancestors().find(|a| a.exists())?;
    let rest = absolute.strip_prefix(existing).ok()?;
    let resolved = existing.canonicalize().ok()?.join(rest);
    resolved
        .ancestors()
        .find(|a| {
            a.file_name().is_some_and(|n| n == "checkpoints")
                && a.parent().is_some_and(|p| p.join("run.json").is_file())
        })
        .map(Path::to_path_buf)
}

/// `genlab sample RUN -n N --seed S -o OUT [...]`: what `request` asks of the run's latest
/// weights, written to `out` (a PNG grid or a folder of PNG files; points as CSV or a scatter
/// plot; text as a file).
/// `genlab sample`: draws `count` samples (64 images or points, or 1 text, when None) as
/// `request` asks and writes them to `out` (`samples.png`, or `samples.txt` for text, when None);
/// returns the path written. Text also streams to `events` as it is generated.
#[allow(clippy::too_many_arguments)]
pub fn sample_run(
    run_dir: &Path,
    mut request: GenerateRequest,
    count: Option<usize>,
    out: Option<PathBuf>,
    format: SampleFormat,
    force: bool,
    device: Option<DeviceSpec>,
    events: Events,
) -> Result<PathBuf> {
    let target = RunTarget::open(run_dir, device, &[], events)?;
    let family = family_of(&target.exp)?;
    let kind = target.exp.data.dataset.kind();
    let output = family.by_kind().into_iter().find(|(k, ..)| *k == kind).map_or(OutputKind::Nothing, |(.., o)| o);
    let text = output == OutputKind::Text;
    request.count = count.unwrap_or(if text { 1 } else { 64 });
    let out = out.unwrap_or_else(|| PathBuf::from(if text { "samples.txt" } else { "samples.png" }));
    check_output(&out, format, output, force, family.name())?;
    if format == SampleFormat::Grid && output == OutputKind::Images && request.count > MAX_GRID {
        return Err(PipelineError::Config(format!(
            "-n {}: a grid holds at most {MAX_GRID} images; write more with --format folder",
            request.count
        )));
    }
    let generated = family.generate(&target, &request, true)?;
    generated.write(&out, format, family.name())?;
    Ok(out)
}
