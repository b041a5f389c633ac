//! Phase 5, `genlab tune FILE`: the experiment's `[tune]` section drives a study (genlab-tune);
//! each trial is an ordinary run directory under the study's (`trials/trial-NNNN`, its resolved
//! `experiment.toml` holding the trial's values), trained by the one trainer, its periodic
//! validation values reported to the pruner, its objective read from the validation log or the
//! final evaluation. The study directory gets `report.md`, its figures and `best.toml`.

mod report;

use crate::error::{PipelineError, Result};
use crate::experiment::{locate, typed, Experiment};
use crate::run::{start, Finished, Mode, RunOptions};
use genlab_core::events::{Collected, Events};
use genlab_core::DeviceSpec;
use genlab_tune::benchmarks::Benchmark;
use genlab_tune::space::toml_text;
use genlab_tune::study::{best, StudySpec};
use genlab_tune::{Direction, Event, Objective, Outcome, TrialRun, TrialState, TuneConfig, TuneError};
use serde_json::Value as Json;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Choices made on the command line.
#[derive(Clone)]
pub struct TuneOptions {
    /// `--storage URL` (default: `sqlite:///STUDY_DIR/study.db`).
    pub storage: Option<String>,
    /// `--study NAME` (default: `[tune] study`, else the problem's name).
    pub study: Option<String>,
    pub workers: Option<u32>,
    pub trials: Option<u32>,
    /// `--dir DIR` (default: `runs/STUDY`).
    pub study_dir: Option<PathBuf>,
    pub device: Option<DeviceSpec>,
    pub events: Events,
    /// Ctrl-C: no new trials; running ones stop with a checkpoint and are run again later.
    pub stop: Arc<AtomicBool>,
}

impl Default for TuneOptions {
    fn default() -> Self {
        TuneOptions {
            storage: None,
            study: None,
            workers: None,
            trials: None,
            study_dir: None,
            device: None,
            events: genlab_core::events::terminal(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// What a study came to.
#[derive(Debug)]
pub struct TuneSummary {
    pub study: String,
    pub storage: String,
    pub study_dir: PathBuf,
    pub trials: Vec<genlab_tune::Trial>,
    pub best: Option<(i64, f64)>,
    /// `best.toml`, when the best trial is a training run.
    pub best_experiment: Option<PathBuf>,
}

fn tune_err(e: TuneError) -> PipelineError {
    match e {
        TuneError::Config(m) => PipelineError::Config(m),
        other => PipelineError::Run(other.to_string()),
    }
}

/// What a study optimises, resolved from `[tune]` and `[problem]`.
enum Target {
    Benchmark(Benchmark),
    Training { metric: String },
}

/// `genlab tune FILE`.
pub fn tune(file: &Path, opts: &TuneOptions) -> Result<TuneSummary> {
    let text = String::from_utf8(
        genlab_core::files::read_regular(file, 16 << 20)
            .map_err(|e| PipelineError::Config(format!("{}: cannot read the experiment file: {e}", file.display())))?,
    )
    .map_err(|_| PipelineError::Config(format!("{}: the experiment file is not UTF-8 text", file.display())))?;
    let at = |key: &str| match locate(&text, key) {
        Some(l) => format!("{}:{l}", file.display()),
        None => file.display().to_string(),
    };
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        PipelineError::Config(format!("{}: TOML syntax: {}", file.display(), e.message().trim()))
    })?;
    let cfg: TuneConfig = match table.remove("tune") {
        Some(t) => typed(t, "tune.", at)?,
        None => return Err(PipelineError::Config(format!("{}: no [tune] section: nothing to tune", file.display()))),
    };
    cfg.check().map_err(|(key, msg)| PipelineError::Config(format!("{}: {key}{msg}", at(&key))))?;
    let space = cfg.search_space().map_err(|(key, msg)| PipelineError::Config(format!("{}: {key}{msg}", at(&key))))?;
    let (target, direction, name) = match cfg.benchmark() {
        Some(b) => {
            let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| b.name().into());
            (Target::Benchmark(b), Direction::Minimize, cfg.study.clone().unwrap_or(stem))
        }
        None => {
            let exp = Experiment::parse(&text, file, &[])?;
            check_space(file, &text, &space)?;
            let goal = exp.problem.goal;
            let o = cfg.objective.clone();
            let metric = o.as_ref().and_then(|o| o.metric.clone()).or_else(|| goal.map(|g| g.metric.key().to_string())).ok_or_else(|| {
                PipelineError::Config(format!("{}: tune.objective: no metric: give objective = {{ metric = \"...\", direction = \"minimize\" }} or a [problem] goal", at("tune")))
            })?;
            let from_goal = goal.filter(|g| g.metric.key() == metric).and_then(|g| match (g.below, g.above) {
                (Some(_), None) => Some(Direction::Minimize),
                (None, Some(_)) => Some(Direction::Maximize),
                _ => None,
            });
            let direction = o.as_ref().and_then(|o| o.direction).or(from_goal).ok_or_else(|| {
                PipelineError::Config(format!(
                    "{}: tune.objective.direction: missing for {metric}: expected \"minimize\" or \"maximize\"",
                    at("tune.objective")
                ))
            })?;
            let name = cfg.study.clone().unwrap_or_else(|| exp.problem.name.clone());
            (Target::Training { metric }, direction, name)
        }
    };
    let name = opts.study.clone().unwrap_or(name);
    let study_dir = opts.study_dir.clone().unwrap_or_else(|| PathBuf::from("runs").join(&name));
    let storage = opts.storage.clone().unwrap_or_else(|| format!("sqlite:///{}", study_dir.join("study.db").display()));
    genlab_tune::storage::db::Location::parse(&storage).map_err(tune_err)?;
    // The outermost directory this command makes, taken back if the study is refused.
    let created =
        study_dir.ancestors().take_while(|a| !a.as_os_str().is_empty() && !a.exists()).last().map(Path::to_path_buf);
    std::fs::create_dir_all(study_dir.join("trials"))
        .map_err(|e| PipelineError::Run(format!("{}: cannot create the study directory: {e}", study_dir.display())))?;
    let spec = StudySpec {
        name: name.clone(),
        storage: storage.clone(),
        direction,
        space,
        sampler: cfg.sampler,
        pruner: cfg.pruner,
        trials: opts.trials.or(cfg.trials),
        timeout: cfg.timeout_minutes.map(|m| Duration::from_secs_f64(m * 60.0)),
        workers: opts.workers.unwrap_or(cfg.workers),
        seed: cfg.seed,
        heartbeat: Duration::from_secs_f64(cfg.heartbeat_seconds),
        grace: Duration::from_secs_f64(cfg.grace_seconds()),
    };
    // The study first: a database that cannot be reached, or a study made for another direction
    // or space, is refused before anything runs (and a directory made for it is taken back).
    let opened = match genlab_tune::study::open_study(&spec) {
        Ok(opened) => opened,
        Err(e) => {
            if let Some(dir) = created {
                let _ = std::fs::remove_dir_all(dir);
            }
            return Err(tune_err(e));
        }
    };
    let events = opts.events.clone();
    events.message(&format!(
        "genlab tune: study {name} in {storage}; {} worker(s), budget {}, sampler {}, pruner {}",
        spec.workers,
        spec.trials.map_or("unbounded".into(), |n| format!("{n} trials")),
        sampler_name(&spec),
        pruner_name(&spec)
    ));
    let table = LiveTable::new(events.clone(), &spec, &metric_name(&target));
    let on_event = |e: &Event| table.show(e);
    let trials = match &target {
        Target::Benchmark(b) => {
            genlab_tune::optimize(&spec, opened, &BenchmarkObjective(*b), opts.stop.clone(), &on_event)
        }
        Target::Training { metric, .. } => {
            let objective = TrainingObjective {
                file: file.to_path_buf(),
                metric: metric.clone(),
                study_dir: study_dir.clone(),
                device: opts.device,
                stop: opts.stop.clone(),
            };
            genlab_tune::optimize(&spec, opened, &objective, opts.stop.clone(), &on_event)
        }
    }
    .map_err(tune_err)?;
    table.finish();
    let best = best(&trials, direction);
    let best_experiment = match (&target, best) {
        (Target::Training { .. }, Some((n, _))) => {
            let src = trial_dir(&study_dir, n).join("experiment.toml");
            let dst = study_dir.join("best.toml");
            match std::fs::read(&src) {
                Ok(bytes) => {
                    let header =
                        format!("# The best trial ({n}) of study {name}: its resolved experiment, ready to run.\n");
                    genlab_core::atomic::write_atomic(&dst, &[header.as_bytes(), &bytes].concat())?;
                    Some(dst)
                }
                // Another machine ran it: its run directory is there, not here.
                Err(_) => None,
            }
        }
        _ => None,
    };
    let summary = TuneSummary { study: name, storage, study_dir, trials, best, best_experiment };
    report::write(&summary, &spec, &metric_name(&target), &text)?;
    Ok(summary)
}

fn metric_name(t: &Target) -> String {
    match t {
        Target::Benchmark(b) => b.name().to_string(),
        Target::Training { metric, .. } => metric.clone(),
    }
}

fn sampler_name(spec: &StudySpec) -> String {
    match spec.sampler {
        genlab_tune::sampler::SamplerConfig::Random => "random".into(),
        genlab_tune::sampler::SamplerConfig::Grid => "grid".into(),
        genlab_tune::sampler::SamplerConfig::Tpe { multivariate, startup, candidates, .. } => format!(
            "TPE ({}, {startup} random startup trials, {candidates} candidates)",
            if multivariate { "multivariate" } else { "univariate" }
        ),
    }
}

fn pruner_name(spec: &StudySpec) -> String {
    match spec.pruner {
        genlab_tune::pruner::PrunerConfig::None => "none".into(),
        genlab_tune::pruner::PrunerConfig::Median { startup, warmup } => {
            format!("median (after {startup} complete trials, from step {warmup})")
        }
        genlab_tune::pruner::PrunerConfig::Asha { reduction_factor, min_resource, .. } => format!(
            "ASHA (reduction factor {reduction_factor}, first rung at {})",
            min_resource.map_or("1/100 of the longest complete trial".into(), |r| format!("step {r}"))
        ),
    }
}

pub(crate) fn trial_dir(study_dir: &Path, number: i64) -> PathBuf {
    study_dir.join("trials").join(format!("trial-{number:04}"))
}

/// Each key path of the space, set to its first value, must give an experiment that loads: an
/// unknown key or a value of the wrong type is found before any trial starts.
fn check_space(file: &Path, text: &str, space: &genlab_tune::space::SearchSpace) -> Result<()> {
    for (name, d) in &space.params {
        let first = match d {
            genlab_tune::space::Distribution::Float { low, .. } => *low,
            genlab_tune::space::Distribution::Int { low, .. } => *low as f64,
            genlab_tune::space::Distribution::Categorical { .. } => 0.0,
        };
        let value = toml_text(&d.to_toml(first));
        Experiment::parse(text, file, &[format!("{name}={value}")]).map_err(|e| {
            let inner = e.to_string();
            // The parse names the file; say which search-space key made the difference.
            let inner = inner.split_once(": ").map_or(inner.as_str(), |(_, rest)| rest).to_string();
            PipelineError::Config(format!("{}: tune.space.\"{name}\" = {value}: {inner}", file.display()))
        })?;
    }
    Ok(())
}

/// A benchmark function: the trial's value is the function at its parameters.
struct BenchmarkObjective(Benchmark);

impl Objective for BenchmarkObjective {
    fn run(&self, trial: &TrialRun) -> Outcome {
        Outcome::Complete(self.0.value(&trial.values))
    }
}

/// A training run per trial.
struct TrainingObjective {
    file: PathBuf,
    metric: String,
    study_dir: PathBuf,
    device: Option<DeviceSpec>,
    stop: Arc<AtomicBool>,
}

impl Objective for TrainingObjective {
    fn run(&self, trial: &TrialRun) -> Outcome {
        let overrides: Vec<String> = trial.toml_params().iter().map(|(k, v)| format!("{k}={}", toml_text(v))).collect();
        let dir = trial_dir(&self.study_dir, trial.number);
        let last = Arc::new(Mutex::new(None::<f64>));
        let failure = Arc::new(Mutex::new(None::<String>));
        let hook = {
            let (trial, metric, last, failure, stop) =
                (trial.clone(), self.metric.clone(), last.clone(), failure.clone(), self.stop.clone());
            move |step: u64, values: &[(String, f64)]| -> bool {
                if stop.load(Ordering::SeqCst) {
                    return true;
                }
                let Some(&(_, v)) = values.iter().find(|(k, _)| *k == metric) else { return false };
                *last.lock().expect("lock") = Some(v);
                match trial.report(step, v) {
                    Ok(prune) => prune,
                    Err(e) => {
                        *failure.lock().expect("lock") = Some(format!("reporting step {step}: {e}"));
                        true
                    }
                }
            }
        };
        let opts = RunOptions {
            run_dir: Some(dir.clone()),
            device: self.device,
            overrides,
            events: Arc::new(Collected::default()),
            // Ctrl-C stops every trial at its next step, with a checkpoint.
            stop: Some(self.stop.clone()),
            on_validation: Some(Arc::new(hook)),
        };
        let result = start(&self.file, &opts, Mode::Run);
        if let Some(why) = failure.lock().expect("lock").take() {
            return Outcome::Failed(why);
        }
        match result {
            Ok(Finished::Done { run_dir, .. }) => {
                let final_value = std::fs::read(run_dir.join("eval.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Json>(&b).ok())
                    .and_then(|j| find_metric(&j, &self.metric));
                match final_value.or(*last.lock().expect("lock")) {
                    Some(v) => Outcome::Complete(v),
                    None => Outcome::Failed(format!("the run reported no {}", self.metric)),
                }
            }
            Ok(Finished::Interrupted { .. }) if trial.was_pruned() => Outcome::Pruned,
            Ok(Finished::Interrupted { .. }) => Outcome::Interrupted,
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}

/// `name`'s value anywhere in an `eval.json` (a number, or an object's `mean`).
fn find_metric(j: &Json, name: &str) -> Option<f64> {
    match j {
        Json::Object(m) => {
            if let Some(v) = m.get(name) {
                if let Some(x) = v.as_f64().or_else(|| v.get("mean").and_then(Json::as_f64)) {
                    return Some(x);
                }
            }
            m.values().find_map(|v| find_metric(v, name))
        }
        _ => None,
    }
}

/// The live table: a line per trial started and finished, a bar over the budget.
struct LiveTable {
    events: Events,
    bar: Mutex<genlab_core::progress::Progress>,
    finished: AtomicU64,
}

impl LiveTable {
    fn new(events: Events, spec: &StudySpec, metric: &str) -> LiveTable {
        let total = spec.trials.map(u64::from).unwrap_or(0);
        let bar = events.progress("tune", total, 0);
        let t = LiveTable { events, bar: Mutex::new(bar), finished: AtomicU64::new(0) };
        t.line(&format!(
            "{:>6}  {:<9} {:>14}  {:>20}  {:>8}  params",
            "trial", "state", metric, "best (trial)", "seconds"
        ));
        t
    }

    fn line(&self, l: &str) {
        let bar = self.bar.lock().expect("lock");
        if bar.is_visible() {
            bar.println(l);
        } else {
            self.events.message(l);
        }
    }

    fn show(&self, e: &Event) {
        match e {
            Event::Started { number, params, retry_of } => {
                let again = retry_of.map_or(String::new(), |n| format!(" (trial {n} again)"));
                self.line(&format!(
                    "{number:>6}  {:<9} {:>14}  {:>20}  {:>8}  {}{again}",
                    "running",
                    "",
                    "",
                    "",
                    params_text(params)
                ));
            }
            Event::Finished { number, state, value, best, seconds, note } => {
                let n = self.finished.fetch_add(1, Ordering::SeqCst) + 1;
                let value = value.map_or("-".into(), |v| format!("{v:.6}"));
                let best = best.map_or("-".into(), |(n, v)| format!("{v:.6} ({n})"));
                let note = note.as_ref().map_or(String::new(), |n| format!("  {n}"));
                self.line(&format!(
                    "{number:>6}  {:<9} {value:>14}  {best:>20}  {seconds:>8.1}{note}",
                    state.as_str().to_lowercase()
                ));
                self.bar.lock().expect("lock").update(n, &format!("best {best}"));
            }
            Event::Requeued { failed, number } => {
                self.line(&format!("trial {failed}'s worker stopped beating: failed, and its parameters queued again as trial {number}"));
            }
            Event::Waiting { running } => {
                self.line(&format!("budget taken: waiting for {running} running trial(s) of the study"))
            }
        }
    }

    fn finish(&self) {
        self.bar.lock().expect("lock").finish();
    }
}

fn params_text(params: &[(String, Json)]) -> String {
    params.iter().map(|(k, v)| format!("{}={v}", k.rsplit('.').next().unwrap_or(k))).collect::<Vec<_>>().join(" ")
}

/// The state names of the report.
pub(crate) fn state_word(s: TrialState) -> &'static str {
    match s {
        TrialState::Complete => "complete",
        TrialState::Pruned => "pruned",
        TrialState::Fail => "failed",
        TrialState::Running => "running",
        TrialState::Waiting => "waiting",
    }
}
