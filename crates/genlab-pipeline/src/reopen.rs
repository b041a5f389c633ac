//! The commands that open a finished (or checkpointed) run again: `genlab eval` and `genlab
//! sample`, generic over the run's family like the phases of `run.rs`.

use crate::data::Data;
use crate::error::{PipelineError, Result};
use crate::evaluation::EvalContext;
use crate::experiment::Experiment;
use crate::family::{Family, Section};
use crate::generate::{GenerateRequest, Generated, SampleFormat};
use crate::run::family_of;
use crate::run_dir::RunInfo;
use burn::module::Module;
use burn::tensor::Device;
use genlab_core::events::Events;
use genlab_core::tensors::NamedTensors;
use genlab_core::DeviceSpec;
use genlab_train::checkpoint::{latest_checkpoint, read_checkpoint, Checkpoint};
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
        let checkpoint_dir = latest_checkpoint(run_dir)?.ok_or_else(|| {
            PipelineError::Run(format!("{}: no checkpoint yet (checkpoints/latest is missing)", run_dir.display()))
        })?;
        let checkpoint = read_checkpoint(&checkpoint_dir)?;
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
        self.load(family.init(self.exp.train.seed, &self.device)?)
    }
}

/// `genlab eval RUN [--set eval.key=value]`: the full evaluation protocol on the run's latest
/// weights; returns the headline. Overrides change this evaluation only, not the run's experiment.
pub fn eval_run(run_dir: &Path, device: Option<DeviceSpec>, overrides: &[String], events: Events) -> Result<String> {
    let target = RunTarget::open(run_dir, device, overrides, events)?;
    family_of(&target.exp)?.evaluate(&target)
}

pub(crate) fn evaluate_run<F: Family>(target: &RunTarget, section: Section<F::Network, F::Options>) -> Result<String> {
    let family = target.family::<F>(section);
    let model = target.model(&family)?;
    let data = Data::load(&target.exp)?;
    family.check_data(&data)?;
    let cx = EvalContext {
        exp: &target.exp,
        info: &target.info,
        run_dir: &target.run_dir,
        device: target.device.clone(),
        step: target.checkpoint.state.step,
        started: None,
        after_training: false,
        events: &*target.events,
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
    request.check(F::CARD.name, &family.capabilities())?;
    let model = target.model(&family)?;
    family.generate(&model, request, &target.device, progress.then_some(&*target.events))
}

/// `genlab sample RUN -n N --seed S -o OUT [...]`: what `request` asks of the run's latest
/// weights, written to `out` (a PNG grid or a folder of PNG files; points as CSV or a scatter
/// plot; text as a file).
pub fn sample_run(
    run_dir: &Path,
    request: &GenerateRequest,
    out: &Path,
    format: SampleFormat,
    device: Option<DeviceSpec>,
    events: Events,
) -> Result<()> {
    if format == SampleFormat::Folder && !genlab_core::atomic::is_absent_or_empty_dir(out) {
        return Err(PipelineError::Run(format!(
            "{}: exists and is not an empty directory; samples are never written over other files",
            out.display()
        )));
    }
    let target = RunTarget::open(run_dir, device, &[], events)?;
    let family = family_of(&target.exp)?;
    let generated = family.generate(&target, request, format == SampleFormat::Folder)?;
    generated.write(out, format, family.name())
}
