//! A study being optimised: opening (or creating) it in the database and checking it is the same
//! study, then workers that each claim a trial under the database's lock (a re-queued one first,
//! else a new one from the sampler while the budget lasts), run it with a heartbeat, let the
//! pruner judge each reported value, and record the outcome. A trial whose worker stopped beating
//! is failed after the grace period and its parameters re-queued once (Optuna's
//! `RetryFailedTrialCallback(max_retry=1)`), so the budget completes with no trial lost or
//! counted twice.

use crate::error::{Result, TuneError};
use crate::pruner::PrunerConfig;
use crate::sampler::{propose, SamplerConfig};
use crate::space::SearchSpace;
use crate::storage::{Storage, StudyRecord};
use crate::trial::{Direction, Trial, TrialState};
use serde_json::Value as Json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where genlab records its search space in the study (a study system attribute).
pub const SPACE_ATTR: &str = "genlab:search_space";

/// Everything a worker needs to know about the study.
#[derive(Debug, Clone)]
pub struct StudySpec {
    pub name: String,
    pub storage: String,
    pub direction: Direction,
    pub space: SearchSpace,
    pub sampler: SamplerConfig,
    pub pruner: PrunerConfig,
    pub trials: Option<u32>,
    pub timeout: Option<Duration>,
    pub workers: u32,
    pub seed: u64,
    pub heartbeat: Duration,
    pub grace: Duration,
}

/// How one trial ended, as the objective tells it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Complete(f64),
    /// Stopped by the pruner after its last report.
    Pruned,
    Failed(String),
    /// Stopped from outside (Ctrl-C): failed and re-queued, like a dead worker's trial.
    Interrupted,
}

/// What a live table shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Started {
        number: i64,
        params: Vec<(String, Json)>,
        retry_of: Option<i64>,
    },
    Finished {
        number: i64,
        state: TrialState,
        value: Option<f64>,
        best: Option<(i64, f64)>,
        seconds: f64,
        note: Option<String>,
    },
    Requeued {
        failed: i64,
        number: i64,
    },
    Waiting {
        running: usize,
    },
}

/// The trial an objective runs: its parameters, and `report` for the pruner. Cloning it shares
/// the worker's connection, so a training loop's callback can hold one.
#[derive(Clone)]
pub struct TrialRun {
    pub number: i64,
    pub id: i64,
    /// Internal values in the space's order.
    pub values: Vec<f64>,
    spec: Arc<StudySpec>,
    storage: Arc<Mutex<Storage>>,
    study: StudyRecord,
    pruned: Arc<AtomicBool>,
}

impl TrialRun {
    pub fn space(&self) -> &SearchSpace {
        &self.spec.space
    }

    /// Key path -> the value the experiment gets.
    pub fn toml_params(&self) -> Vec<(String, toml::Value)> {
        self.spec.space.params.iter().zip(&self.values).map(|((n, d), &x)| (n.clone(), d.to_toml(x))).collect()
    }

    /// Key path -> the value as Optuna shows it.
    pub fn external_params(&self) -> Vec<(String, Json)> {
        self.spec.space.params.iter().zip(&self.values).map(|((n, d), &x)| (n.clone(), d.to_external(x))).collect()
    }

    /// Records an intermediate value; true when the pruner says to stop now.
    pub fn report(&self, step: u64, value: f64) -> Result<bool> {
        let mut st = self.storage.lock().expect("the storage lock should not be poisoned");
        st.report(self.id, step as i64, value)?;
        if self.spec.pruner == PrunerConfig::None {
            return Ok(false);
        }
        let trials = st.trials(self.study.id)?;
        let Some(me) = trials.iter().find(|t| t.id == self.id) else { return Ok(true) };
        // Failed as stale by another worker (its heartbeat missed the grace period): stop; its
        // re-queued copy runs instead.
        if me.state != TrialState::Running {
            return Ok(true);
        }
        let verdict = self.spec.pruner.judge(me, &trials, self.spec.direction);
        for (k, v) in &verdict.record {
            st.set_trial_system_attr(self.id, k, v)?;
        }
        if verdict.prune {
            self.pruned.store(true, Ordering::SeqCst);
        }
        Ok(verdict.prune)
    }

    pub fn was_pruned(&self) -> bool {
        self.pruned.load(Ordering::SeqCst)
    }
}

/// Runs a trial.
pub trait Objective: Sync {
    fn run(&self, trial: &TrialRun) -> Outcome;
}

/// Opens the study, creating it when absent; refuses one made with another direction or space.
pub fn open_study(spec: &StudySpec) -> Result<(Storage, StudyRecord)> {
    let mut st = Storage::open(&spec.storage)?;
    let record = match st.find_study(&spec.name)? {
        Some(r) => r,
        None => st.create_study(&spec.name, spec.direction)?,
    };
    if record.direction != spec.direction {
        return Err(TuneError::Study(format!(
            "study {} in {} was made to {} its objective; this run asks to {}: use another study name, or the same direction",
            spec.name,
            spec.storage,
            record.direction.as_str().to_lowercase(),
            spec.direction.as_str().to_lowercase()
        )));
    }
    // The space: what genlab recorded, else what the study's trials (Optuna's) hold.
    let mine = spec.space.to_json();
    match st.study_system_attr(record.id, SPACE_ATTR)? {
        Some(Json::String(s)) if s != mine => {
            let theirs: Json = serde_json::from_str(&s).unwrap_or(Json::Null);
            let ours: Json = serde_json::from_str(&mine).expect("a space's JSON should parse");
            let differs = space_difference(&theirs, &ours);
            return Err(TuneError::Study(format!(
                "study {} in {} has another search space ({differs}); resume it with the same [tune.space], or use another study name",
                spec.name, spec.storage
            )));
        }
        Some(_) => {}
        None => {
            for t in st.trials(record.id)? {
                for (name, (_, d)) in &t.params {
                    if let Some(ours) = spec.space.get(name).filter(|ours| !ours.same_as(d)) {
                        return Err(TuneError::Study(format!(
                            "study {} in {}: trial {} has {name} from {}, this run's space draws it from {}",
                            spec.name,
                            spec.storage,
                            t.number,
                            d.to_json(),
                            ours.to_json()
                        )));
                    }
                }
            }
            st.set_study_system_attr(record.id, SPACE_ATTR, &Json::String(mine))?;
        }
    }
    Ok((st, record))
}

fn space_difference(theirs: &Json, ours: &Json) -> String {
    let (Some(a), Some(b)) = (theirs.as_object(), ours.as_object()) else { return "unreadable".into() };
    for (k, v) in b {
        match a.get(k) {
            None => return format!("it has no {k}"),
            Some(w) if w != v => return format!("{k} was {w}, now {v}"),
            _ => {}
        }
    }
    a.keys().find(|k| !b.contains_key(*k)).map_or("differs".into(), |k| format!("it has {k}, this run does not"))
}

/// Trials in the budget: each re-queued copy stands in for the failed trial it retries, so the
/// failed one does not count (Optuna's longer retry chains included: each retry replaces one).
fn counted(trials: &[Trial]) -> usize {
    trials.len() - trials.iter().filter(|t| t.retries().is_some()).count()
}

/// The best complete trial.
pub fn best(trials: &[Trial], direction: Direction) -> Option<(i64, f64)> {
    trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .filter_map(|t| t.value.filter(|v| !v.is_nan()).map(|v| (t.number, v)))
        .fold(None, |acc, (n, v)| match acc {
            Some((_, b)) if !direction.better(v, b) => acc,
            _ => Some((n, v)),
        })
}

enum Claim {
    Run {
        id: i64,
        number: i64,
        values: Vec<f64>,
        retry_of: Option<i64>,
    },
    /// A waiting trial that could not run (its enqueued values are outside the space): failed.
    Refused {
        number: i64,
        why: String,
    },
    Wait(usize),
    Done,
}

struct Worker<'a> {
    spec: &'a Arc<StudySpec>,
    study: StudyRecord,
    started: Instant,
    stop: &'a AtomicBool,
    on_event: &'a (dyn Fn(&Event) + Sync),
}

impl Worker<'_> {
    fn timed_out(&self) -> bool {
        self.spec.timeout.is_some_and(|t| self.started.elapsed() >= t)
    }

    /// Fails running trials that stopped beating and re-queues each once.
    fn reap(&self, st: &mut Storage) -> Result<()> {
        let grace = self.spec.grace.as_secs_f64();
        if st.stale_trials(self.study.id, grace)?.is_empty() {
            return Ok(());
        }
        let events = st.locked(|st| {
            // Again under the lock: a heartbeat may have come in meanwhile.
            let stale = st.stale_trials(self.study.id, grace)?;
            let mut events = vec![];
            let trials = st.trials(self.study.id)?;
            for id in stale {
                if !st.fail_running(id)? {
                    continue;
                }
                if let Some(t) = trials.iter().find(|t| t.id == id) {
                    if let Some(n) = requeue(st, self.study.id, t)? {
                        events.push(Event::Requeued { failed: t.number, number: n });
                    }
                }
            }
            Ok(events)
        })?;
        for e in events {
            (self.on_event)(&e);
        }
        Ok(())
    }

    /// Takes the next trial, under the database's lock.
    fn claim(&self, st: &mut Storage) -> Result<Claim> {
        st.locked(|st| self.claim_locked(st))
    }

    fn claim_locked(&self, st: &mut Storage) -> Result<Claim> {
        let trials = st.trials(self.study.id)?;
        let running = trials.iter().filter(|t| t.state == TrialState::Running).count();
        if self.timed_out() || self.stop.load(Ordering::SeqCst) {
            return Ok(Claim::Done);
        }
        if let Some(w) = trials.iter().find(|t| t.state == TrialState::Waiting) {
            if st.start_waiting(w.id)? {
                let values = match self.fixed_values(w, &trials) {
                    Ok(v) => v,
                    Err(e) => {
                        // An enqueued value outside the space fails that trial, not the worker.
                        let why = e.to_string();
                        st.fail_running(w.id)?;
                        st.set_trial_user_attr(w.id, "genlab:failure", &Json::String(why.clone()))?;
                        return Ok(Claim::Refused { number: w.number, why });
                    }
                };
                // An enqueued trial's values (`fixed_params`) and the ones drawn for what it left
                // open are recorded as its parameters; a re-queued trial has them already.
                for ((name, d), &x) in self.spec.space.params.iter().zip(&values) {
                    if !w.params.contains_key(name) {
                        st.add_param(w.id, name, x, d)?;
                    }
                }
                return Ok(Claim::Run { id: w.id, number: w.number, values, retry_of: w.retries() });
            }
        }
        let used = counted(&trials);
        let room = self.spec.trials.is_none_or(|n| used < n as usize);
        if room {
            let number = trials.len() as i64;
            let proposal =
                propose(&self.spec.sampler, &self.spec.space, &trials, self.spec.direction, self.spec.seed, number)?;
            if let Some(p) = proposal {
                let params: Vec<_> = self
                    .spec
                    .space
                    .params
                    .iter()
                    .zip(&p.values)
                    .map(|((n, d), &x)| (n.clone(), x, d.clone()))
                    .collect();
                let (id, number) = st.insert_trial(self.study.id, TrialState::Running, &params, &p.system_attrs)?;
                return Ok(Claim::Run { id, number, values: p.values, retry_of: None });
            }
        }
        Ok(if running > 0 { Claim::Wait(running) } else { Claim::Done })
    }

    /// A waiting trial's values: its stored parameters, else its `fixed_params` (an Optuna
    /// `enqueue_trial`), the rest drawn by the sampler.
    fn fixed_values(&self, w: &Trial, trials: &[Trial]) -> Result<Vec<f64>> {
        let fixed = w.system_attrs.get("fixed_params").and_then(Json::as_object);
        // The sampler runs only for what is left open (a re-queued trial has every value).
        let open = self
            .spec
            .space
            .params
            .iter()
            .any(|(n, _)| !w.params.contains_key(n) && !fixed.is_some_and(|f| f.contains_key(n)));
        let drawn = match open {
            true => {
                propose(&self.spec.sampler, &self.spec.space, trials, self.spec.direction, self.spec.seed, w.number)?
                    .map(|p| p.values)
            }
            false => None,
        };
        self.spec
            .space
            .params
            .iter()
            .enumerate()
            .map(|(i, (name, d))| {
                if let Some((x, _)) = w.params.get(name) {
                    return Ok(*x);
                }
                if let Some(v) = fixed.and_then(|f| f.get(name)) {
                    return d
                        .to_internal(v)
                        .filter(|x| d.contains(*x) || matches!(d, crate::space::Distribution::Float { .. }))
                        .ok_or_else(|| {
                            TuneError::Study(format!(
                                "trial {}: enqueued {name} = {v} is not in {}",
                                w.number,
                                d.to_json()
                            ))
                        });
                }
                Ok(drawn.as_ref().map_or_else(
                    || crate::sampler::random_value(d, &mut crate::sampler::trial_rng(self.spec.seed, w.number)),
                    |v| v[i],
                ))
            })
            .collect()
    }

    fn run_one(
        &self,
        st: &Arc<Mutex<Storage>>,
        objective: &dyn Objective,
        claim: (i64, i64, Vec<f64>, Option<i64>),
    ) -> Result<()> {
        let (id, number, values, retry_of) = claim;
        let run = TrialRun {
            number,
            id,
            values,
            spec: self.spec.clone(),
            storage: st.clone(),
            study: self.study,
            pruned: Arc::new(AtomicBool::new(false)),
        };
        (self.on_event)(&Event::Started { number, params: run.external_params(), retry_of });
        let t0 = Instant::now();
        let beating = AtomicBool::new(true);
        let outcome = std::thread::scope(|s| {
            // The heartbeat has its own connection, so a long query elsewhere never delays it.
            // A failed beat (the database busy or unreachable a moment) is tried again at the
            // next tick, on a fresh connection, rather than given up.
            let beat = s.spawn(|| {
                let mut hb: Option<Storage> = None;
                let tick = Duration::from_millis(100);
                let mut last = Instant::now();
                while beating.load(Ordering::SeqCst) {
                    if last.elapsed() >= self.spec.heartbeat {
                        if hb.is_none() {
                            hb = Storage::open(&self.spec.storage).ok();
                        }
                        match hb.as_mut().map(|h| h.heartbeat(id)) {
                            Some(Ok(())) => last = Instant::now(),
                            _ => hb = None,
                        }
                    }
                    std::thread::sleep(tick);
                }
            });
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| objective.run(&run)))
                .unwrap_or_else(|p| Outcome::Failed(panic_text(&p)));
            beating.store(false, Ordering::SeqCst);
            let _ = beat.join();
            outcome
        });
        let mut st = st.lock().expect("the storage lock should not be poisoned");
        let interrupted = outcome == Outcome::Interrupted;
        // The trial as it ran (its parameters, attributes and reports do not change as it ends).
        let before = st.trials(self.study.id)?;
        let me = before.iter().find(|t| t.id == id);
        let last_step = me.and_then(Trial::last_step);
        let last = last_step.map(|(_, v)| v).filter(|v| v.is_finite());
        let (state, value, note) = match outcome {
            Outcome::Complete(v) if v.is_nan() => (TrialState::Fail, None, Some("the objective is NaN".to_string())),
            Outcome::Complete(v) => (TrialState::Complete, Some(v), None),
            // As Optuna: a pruned trial's value is its last intermediate value.
            Outcome::Pruned => (TrialState::Pruned, last, None),
            Outcome::Failed(why) => (TrialState::Fail, None, Some(why)),
            Outcome::Interrupted => (TrialState::Fail, None, Some("interrupted".into())),
        };
        let recorded = st.finish(id, state, value)?;
        if let (Some(why), true) = (&note, recorded) {
            st.set_trial_user_attr(id, "genlab:failure", &Json::String(why.clone()))?;
        }
        let note =
            if recorded { note } else { Some("another worker had failed it as stale; its result was dropped".into()) };
        if let (true, true, Some(t)) = (recorded, interrupted, me) {
            if let Some(n) = st.locked(|st| requeue(st, self.study.id, t))? {
                (self.on_event)(&Event::Requeued { failed: number, number: n });
            }
        }
        let trials = st.trials(self.study.id)?;
        // A pruned trial's last reported value says where it stopped.
        let note = match (state, last_step) {
            (TrialState::Pruned, Some((step, v))) if recorded => Some(format!("at step {step}: {v:.6}")),
            _ => note,
        };
        (self.on_event)(&Event::Finished {
            number,
            state: if recorded { state } else { TrialState::Fail },
            value,
            best: best(&trials, self.spec.direction),
            seconds: t0.elapsed().as_secs_f64(),
            note,
        });
        Ok(())
    }

    fn work(&self, objective: &dyn Objective) -> Result<()> {
        let st = Arc::new(Mutex::new(Storage::open(&self.spec.storage)?));
        let mut said_waiting = None;
        loop {
            let claim = {
                let mut s = st.lock().expect("the storage lock should not be poisoned");
                self.reap(&mut s)?;
                self.claim(&mut s)?
            };
            match claim {
                Claim::Run { id, number, values, retry_of } => {
                    said_waiting = None;
                    self.run_one(&st, objective, (id, number, values, retry_of))?
                }
                Claim::Refused { number, why } => (self.on_event)(&Event::Finished {
                    number,
                    state: TrialState::Fail,
                    value: None,
                    best: None,
                    seconds: 0.0,
                    note: Some(why),
                }),
                Claim::Wait(running) => {
                    if said_waiting != Some(running) {
                        (self.on_event)(&Event::Waiting { running });
                        said_waiting = Some(running);
                    }
                    std::thread::sleep(self.spec.heartbeat.min(Duration::from_secs(1)));
                }
                Claim::Done => return Ok(()),
            }
        }
    }
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".into())
}

/// Adds a WAITING copy of failed trial `t` with its parameters, unless `t` is itself a retry
/// (each trial is run again at most once). Returns the new trial's number.
fn requeue(st: &mut Storage, study: i64, t: &Trial) -> Result<Option<i64>> {
    if t.retries().is_some() {
        return Ok(None);
    }
    let params: Vec<_> = t.params.iter().map(|(n, (x, d))| (n.clone(), *x, d.clone())).collect();
    let mut attrs: Vec<(String, Json)> = t
        .system_attrs
        .iter()
        .filter(|(k, _)| !k.starts_with("completed_rung_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    attrs.push(("failed_trial".into(), Json::from(t.number)));
    attrs.push(("retry_history".into(), Json::Array(vec![Json::from(t.number)])));
    let (_, number) = st.insert_trial(study, TrialState::Waiting, &params, &attrs)?;
    Ok(Some(number))
}

/// Runs the study opened by [`open_study`] with `spec.workers` workers in this process until
/// the budget is spent (or the grid exhausted, or the time is up, or `stop` is set), then returns
/// the study's trials.
pub fn optimize(
    spec: &StudySpec,
    opened: (Storage, StudyRecord),
    objective: &dyn Objective,
    stop: Arc<AtomicBool>,
    on_event: &(dyn Fn(&Event) + Sync),
) -> Result<Vec<Trial>> {
    let (mut st, study) = opened;
    let spec = &Arc::new(spec.clone());
    let started = Instant::now();
    let errors: Vec<TuneError> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..spec.workers)
            .map(|_| {
                let w = Worker { spec, study, started, stop: &stop, on_event };
                s.spawn(move || w.work(objective))
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap_or_else(|p| Err(TuneError::Objective(panic_text(&p)))).err())
            .collect()
    });
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    st.trials(study.id)
}
