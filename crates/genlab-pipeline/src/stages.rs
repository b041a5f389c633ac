//! Two-stage experiments: `[stage1]` names the run a second-stage family builds on (a VQ-VAE under
//! its prior). Before a run starts, [`resolve`] makes sure the first stage exists and finished:
//! it runs the named experiment when its run directory is missing, resumes it when it stopped, and
//! reuses it when it finished; the second stage then records the directory in its resolved
//! experiment. [`open`] reopens the first stage for the family, checked to be of the family it
//! needs.

use crate::error::{PipelineError, Result};
use crate::experiment::{Experiment, StageConfig};
use crate::family::{Family, Section};
use crate::reopen::RunTarget;
use crate::run::{Finished, Mode, RunOptions};
use crate::run_dir::RunInfo;
use burn::tensor::Device;
use genlab_core::events::Collected;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Runs, resumes or reuses the first stage of `exp` (read from `file`), and records its run
/// directory in `exp.stage1.run`. Returns the first stage's `Interrupted` when it was stopped.
pub(crate) fn resolve(exp: &mut Experiment, file: &Path, opts: &RunOptions) -> Result<Option<Finished>> {
    let Some(stage) = exp.stage1.clone() else { return Ok(None) };
    if let Some(run) = &stage.run {
        finished(run, "stage1.run")?;
        return Ok(None);
    }
    let written = stage.experiment.expect("[stage1] names a run or an experiment (checked at parse)");
    let path = file.parent().unwrap_or(Path::new("")).join(&written);
    let key = format!("stage1.experiment = \"{}\"", written.display());
    let first = Experiment::load(&path, &[]).map_err(|e| PipelineError::Config(format!("{key}: {e}")))?;
    let dir = first.default_run_dir();
    let events = &opts.events;
    let stage_opts = RunOptions { run_dir: None, overrides: vec![], on_validation: None, ..opts.clone() };
    let outcome = if !dir.exists() {
        events.message(&format!("stage 1: running {} into {}", path.display(), dir.display()));
        Some(crate::run::start(&path, &RunOptions { run_dir: Some(dir.clone()), ..stage_opts }, Mode::Run)?)
    } else {
        let recorded = Experiment::load(&dir.join("experiment.toml"), &[])?;
        if recorded.to_toml() != first.to_toml() {
            return Err(PipelineError::Config(format!(
                "{key}: {} holds a run of another experiment than {}; remove or rename it, or name a finished run with stage1.run",
                dir.display(),
                path.display()
            )));
        }
        if RunInfo::load(&dir)?.train_seconds.is_none() {
            events.message(&format!("stage 1: resuming {}", dir.display()));
            Some(crate::run::resume(&dir, &stage_opts)?)
        } else {
            events.message(&format!("stage 1: reusing {} (finished)", dir.display()));
            None
        }
    };
    if let Some(f @ Finished::Interrupted { .. }) = outcome {
        return Ok(Some(f));
    }
    exp.stage1 = Some(StageConfig { run: Some(dir), experiment: Some(path) });
    Ok(None)
}

/// Refuses a first stage that is not a run directory whose training finished.
fn finished(dir: &Path, key: &str) -> Result<()> {
    let named = format!("{key} = \"{}\"", dir.display());
    if !dir.is_dir() {
        return Err(PipelineError::Config(format!("{named}: no such run directory")));
    }
    let info = RunInfo::load(dir)
        .map_err(|_| PipelineError::Config(format!("{named}: not a genlab run directory (no readable run.json)")))?;
    if info.train_seconds.is_none() {
        return Err(PipelineError::Config(format!(
            "{named}: its training has not finished; finish it with `genlab train --resume {}`",
            dir.display()
        )));
    }
    Ok(())
}

/// A first stage reopened: its run and its family's model with the run's weights.
pub(crate) struct Stage1<F: Family> {
    pub dir: PathBuf,
    pub target: RunTarget,
    pub model: F::Model,
}

/// The first stage of `exp`, which must be a finished run of family `F`, its model on `device`.
pub(crate) fn open<F: Family>(exp: &Experiment, device: &Device) -> Result<Stage1<F>> {
    let stage = exp.stage1.as_ref().ok_or_else(|| {
        PipelineError::Config(format!("stage1: missing; the {} family needs a first stage", exp.model.family))
    })?;
    let dir = stage.run.clone().ok_or_else(|| {
        PipelineError::Config(format!(
            "stage1.experiment = \"{}\": not run yet; `genlab run` runs it first",
            stage.experiment.as_deref().unwrap_or(Path::new("")).display()
        ))
    })?;
    open_run(&dir, "stage1.run", exp.model.family, device)
}

/// The finished run `dir` (named by `key` in errors) of family `F`, its model on `device`, for
/// the family `reader`.
pub(crate) fn open_run<F: Family>(dir: &Path, key: &str, reader: &str, device: &Device) -> Result<Stage1<F>> {
    finished(dir, key)?;
    let target = RunTarget::open(dir, None, &[], Arc::new(Collected::default()))?;
    let named = format!("{key} = \"{}\"", dir.display());
    if target.exp.model.family != F::CARD.name {
        return Err(PipelineError::Config(format!(
            "{named}: a {} run; the {reader} family reads a {} run there",
            target.exp.model.family,
            F::CARD.name
        )));
    }
    let section: Section<F::Network, F::Options> = crate::registry::section_of::<F>(&target.exp);
    let family = F::new(section, &target.exp, &target.info.facts());
    let model = target.load(family.init(target.exp.train.seed, device)?)?;
    Ok(Stage1 { dir: dir.to_path_buf(), target, model })
}

/// Refuses a second stage whose data are not the images its first stage encoded: the same
/// dataset, read through the same transforms.
pub(crate) fn same_data<F: Family>(first: &Stage1<F>, exp: &Experiment) -> Result<()> {
    let (d1, d2) = (&first.target.exp.data, &exp.data);
    if d1.dataset != d2.dataset || d1.transforms != d2.transforms {
        return Err(PipelineError::Config(format!(
            "data: the first stage (stage1.run = \"{}\") read {} with transforms {}; this experiment reads {} with {}: a second stage must see the images its first stage encoded",
            first.dir.display(),
            d1.dataset.describe(),
            names(&d1.transforms),
            d2.dataset.describe(),
            names(&d2.transforms)
        )));
    }
    Ok(())
}

/// Transforms as the experiment file writes them: `["scale_unit"]`.
fn names(t: &[genlab_data::Transform]) -> String {
    serde_json::to_string(t).unwrap_or_default()
}

/// Images encoded at a time by a first stage.
const ENCODE_CHUNK: usize = 1000;

/// `rows` of `set`, transformed as evaluation reads them (no random flips), through a first
/// stage's `encode` a chunk at a time, with a bar on `events`: the encodings one after the other,
/// and the rows' labels (None when the set has none).
pub(crate) fn encode_rows<T>(
    set: &genlab_data::ImageSet,
    rows: &[usize],
    exp: &Experiment,
    device: &Device,
    events: &dyn genlab_core::events::EventSink,
    mut encode: impl FnMut(burn::Tensor<4>) -> Vec<T>,
) -> (Vec<T>, Option<Vec<u32>>) {
    let mut bar = events.progress("encode", rows.len() as u64, 0);
    let (mut out, mut labels, mut done) = (Vec::new(), Vec::with_capacity(rows.len()), 0);
    for chunk in rows.chunks(ENCODE_CHUNK) {
        let images = genlab_data::EvalImages::new(set, chunk, &exp.data.transforms, exp.eval.seed);
        out.extend(encode(images.tensor(0, images.n, device)));
        labels.extend(images.labels.unwrap_or_default());
        done += chunk.len();
        bar.update(done as u64, "images");
    }
    bar.finish();
    (out, (labels.len() == rows.len()).then_some(labels))
}

/// A link from `from_dir`'s report to `to_dir`'s `report.md`: relative when both lie in one
/// folder (`../fashion-vqvae/report.md`), else the absolute path.
pub(crate) fn report_link(from_dir: &Path, to_dir: &Path) -> String {
    let (a, b) = (from_dir.canonicalize(), to_dir.canonicalize());
    match (a, b) {
        (Ok(a), Ok(b)) if a.parent() == b.parent() && b.file_name().is_some() => {
            format!("../{}/report.md", b.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())
        }
        (_, Ok(b)) => b.join("report.md").display().to_string(),
        _ => to_dir.join("report.md").display().to_string(),
    }
}
