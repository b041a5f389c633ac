//! The one trainer. A family implements [`TrainStep`] (compute its losses, apply its updates through
//! the optimisers it owns); [`Trainer::fit`] drives it through the schedule, logs, evaluates,
//! checkpoints, resumes, and stops cleanly on Ctrl-C or a non-finite loss.

use crate::checkpoint::{check_continues, write_checkpoint, Checkpoint, IntactCheckpoint, TrainerState};
use crate::ema::Ema;
use crate::error::{Result, TrainError};
use crate::metrics::MetricLog;
use crate::optim::Optimizers;
use crate::params::all_finite;
use crate::privacy::accountant::RdpAccountant;
use crate::privacy::{DpSgd, ExampleLoss};
use crate::schedule::Schedule;
use burn::module::Module;
use burn::tensor::Device;
use genlab_core::events::Events;
use genlab_core::tensors::NamedTensors;
use genlab_core::SeededRng;
use genlab_data::BatchSource;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// What a model family implements to be trained. The family's struct is a burn `Module` holding
/// every network it trains (a GAN holds its generator and discriminator).
pub trait TrainStep: Module + Sized {
    type Batch: Send;
    /// One optimisation step: compute the losses of `batch`, update through `ctx.optimizers`
    /// (as many as the family owns, in the order it chooses) and return the updated model.
    fn train_step(self, batch: Self::Batch, ctx: &mut StepContext<'_>) -> (Self, StepOutput);

    /// `batch`'s examples, each a batch of one, for differentially private training
    /// ([`crate::privacy`]); None for a family DP-SGD cannot train (several optimisers, losses
    /// that are not a mean over examples). A family that gives them gives [`TrainStep::example_loss`].
    fn examples(_batch: Self::Batch) -> Option<Vec<Self::Batch>> {
        None
    }

    /// The loss of one example (a batch of one) as `train_step` computes it, its noise drawn
    /// from `rng`; None where [`TrainStep::examples`] is None.
    fn example_loss(&self, _example: Self::Batch, _rng: &mut SeededRng, _device: &Device) -> Option<ExampleLoss> {
        None
    }
}

/// What a step may use besides its batch.
pub struct StepContext<'a> {
    pub optimizers: &'a mut Optimizers,
    /// The family's noise stream (reparameterisation, latent draws); saved in checkpoints.
    pub rng: &'a mut SeededRng,
    /// 1-based step number.
    pub step: u64,
    pub device: &'a Device,
}

/// The numbers a step reports. `loss` is the one shown on the bar and checked for NaN.
#[derive(Debug, Clone, Default)]
pub struct StepOutput {
    pub loss: f64,
    pub scalars: Vec<(&'static str, f64)>,
}

#[derive(Debug, Clone)]
pub struct TrainerConfig {
    pub steps: u64,
    pub log_every: u64,
    pub checkpoint_every: u64,
    pub keep_checkpoints: usize,
    /// Evaluate every this many steps and at the last step, if set.
    pub eval_every: Option<u64>,
    pub ema: Option<f64>,
    pub schedule: Schedule,
    pub seed: u64,
    /// Shown before the progress bar.
    pub label: String,
    /// Stop before the first step that would start after this many seconds of training (counted
    /// across resumes, as checkpoints record it), checkpoint, and finish there.
    pub max_seconds: Option<f64>,
}

/// How [`Trainer::fit`] ended.
pub enum TrainOutcome<M> {
    /// All steps ran. `ema` holds the averaged weights when EMA is on.
    /// `privacy` is the accountant of a private run.
    Finished { model: M, ema: Option<M>, step: u64, elapsed_s: f64, privacy: Option<RdpAccountant> },
    /// Ctrl-C: a checkpoint of the last completed step was written.
    Interrupted { step: u64, checkpoint: PathBuf },
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static TRAINING: AtomicBool = AtomicBool::new(false);

/// Makes Ctrl-C (SIGINT) during training request a checkpoint and a clean stop; a second Ctrl-C,
/// or one outside training (evaluation, figures), exits at once: there is nothing to save then,
/// and every file genlab writes is written atomically. A process-wide handler, so a program
/// (the `genlab` command) installs it; a library that trains (a server, a tuner) gives each
/// trainer its own stop flag instead ([`Trainer::with_stop_flag`]).
pub fn install_interrupt_handler() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = ctrlc::set_handler(|| {
            if !TRAINING.load(Ordering::SeqCst) {
                eprintln!("\ninterrupted");
                std::process::exit(130);
            }
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                eprintln!("\nsecond interrupt: exiting without a checkpoint (the last one is intact)");
                std::process::exit(130);
            }
        });
    });
}

/// Marks the span of [`Trainer::fit`]'s loop for the interrupt handler.
struct TrainingSpan;

impl TrainingSpan {
    fn enter() -> Self {
        TRAINING.store(true, Ordering::SeqCst);
        TrainingSpan
    }
}

impl Drop for TrainingSpan {
    fn drop(&mut self) {
        TRAINING.store(false, Ordering::SeqCst);
    }
}

pub struct Trainer {
    pub config: TrainerConfig,
    pub run_dir: PathBuf,
    /// Stop requests of this trainer's own (any one set stops it); without any, the process-wide
    /// flag that the Ctrl-C handler sets (once a program has installed it, see
    /// [`install_interrupt_handler`]) stops it.
    stops: Vec<Arc<AtomicBool>>,
    events: Events,
    /// DP-SGD in place of the family's own step, when training privately.
    privacy: Option<DpSgd>,
}

impl Trainer {
    pub fn new(config: TrainerConfig, run_dir: &Path) -> Self {
        Trainer {
            config,
            run_dir: run_dir.to_path_buf(),
            stops: vec![],
            events: genlab_core::events::terminal(),
            privacy: None,
        }
    }

    /// Sends the progress bar and the evaluation lines to `events` instead of the terminal.
    pub fn with_events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// Gives this trainer a stop flag of its own: setting it checkpoints and stops as Ctrl-C does
    /// (for a server that trains, for tests that run trainers side by side in one process, and
    /// beside a caller's flag, for a tuner's pruner). Any of its flags stops it.
    pub fn with_stop_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.stops.push(flag);
        self
    }

    /// Trains with DP-SGD ([`crate::privacy`]): the family's per-example losses, clipped and
    /// noised, through its one optimiser; the accountant's history is saved in checkpoints.
    pub fn with_privacy(mut self, dp: DpSgd) -> Self {
        self.privacy = Some(dp);
        self
    }

    fn stop_requested(&self) -> bool {
        if self.stops.is_empty() {
            return INTERRUPTED.load(Ordering::SeqCst);
        }
        self.stops.iter().any(|f| f.load(Ordering::SeqCst))
    }

    /// Trains `model` from step 0, or from `resume` (see
    /// [`newest_intact_checkpoint`](crate::checkpoint::newest_intact_checkpoint)).
    /// `evaluate` receives the weights to evaluate (the EMA copy when EMA is on) and returns
    /// named metrics to log.
    pub fn fit<M, S, E>(
        &self,
        mut model: M,
        mut optimizers: Optimizers,
        source: &mut S,
        resume: Option<IntactCheckpoint>,
        device: &Device,
        mut evaluate: E,
    ) -> Result<TrainOutcome<M>>
    where
        M: TrainStep,
        S: BatchSource<Batch = M::Batch>,
        E: FnMut(u64, &M) -> Result<Vec<(String, f64)>>,
    {
        let cfg = &self.config;
        let mut rng = SeededRng::stream(cfg.seed, 0x5eed);
        let mut ema = cfg.ema.map(|d| Ema::new(&model, d));
        let mut start = 0;
        let mut elapsed_before = 0.0;
        let mut last_ckpt: Option<PathBuf> = None;
        let mut dp = self.privacy.clone();
        if let Some(point) = resume {
            let c = &point.checkpoint;
            check_continues(c.state.step, cfg.steps)?;
            match (dp.as_mut(), &c.state.privacy) {
                (Some(dp), Some(spent)) => dp.accountant = spent.clone(),
                (None, None) => {}
                (Some(_), None) => {
                    return Err(TrainError::Config(format!(
                        "train.privacy: {} was trained without privacy; a private run must start private (train it afresh)",
                        point.dir.display()
                    )))
                }
                (None, Some(_)) => {
                    return Err(TrainError::Config(format!(
                        "train.privacy: {} was trained privately; resume it with the same train.privacy (without it the privacy accounting would stop)",
                        point.dir.display()
                    )))
                }
            }
            model = c.model.load_into(model, &point.file(false))?;
            if let (Some(e), Some(saved)) = (ema.as_mut(), c.ema.as_ref()) {
                e.model = saved.load_into(e.model.clone(), &point.file(true))?;
                e.updates = c.state.ema_updates.unwrap_or(0);
            }
            load_optimizer_states(c, &mut optimizers, device)?;
            source.restore(c.state.source.clone()).map_err(TrainError::Source)?;
            rng = c.state.rng.clone();
            start = c.state.step;
            elapsed_before = c.state.elapsed_s;
            last_ckpt = Some(point.dir);
        }
        let resuming = last_ckpt.is_some();
        let mut saved_step = resuming.then_some(start);
        let mut log = MetricLog::open(&self.run_dir.join("metrics.jsonl"), resuming.then_some(start))?;
        if cfg.log_every == 0 || cfg.checkpoint_every == 0 || cfg.eval_every == Some(0) {
            return Err(TrainError::Config("log_every, checkpoint_every and eval_every must be at least 1".into()));
        }
        if self.stops.is_empty() {
            INTERRUPTED.store(false, Ordering::SeqCst);
        }
        let _span = TrainingSpan::enter();
        let mut progress = self.events.progress(&cfg.label, cfg.steps, start);
        let started = Instant::now();
        let mut window = Window::default();
        let checkpoint = |model: &M,
                          ema: &Option<Ema<M>>,
                          optimizers: &Optimizers,
                          source: &S,
                          rng: &SeededRng,
                          dp: &Option<DpSgd>,
                          step: u64,
                          elapsed: f64| {
            let mut optim = NamedTensors::default();
            for o in optimizers.iter() {
                o.state_tensors(&format!("{}.", o.name), &mut optim);
            }
            let c = Checkpoint {
                model: NamedTensors::from_module(model),
                ema: ema.as_ref().map(|e| NamedTensors::from_module(&e.model)),
                optim,
                state: TrainerState {
                    step,
                    optimizer_updates: optimizers.iter().map(|o| (o.name.clone(), o.updates)).collect(),
                    ema_updates: ema.as_ref().map(|e| e.updates),
                    source: source.state(),
                    rng: rng.clone(),
                    elapsed_s: elapsed,
                    genlab_version: env!("CARGO_PKG_VERSION").into(),
                    privacy: dp.as_ref().map(|d| d.accountant.clone()),
                },
            };
            write_checkpoint(&self.run_dir, &c, self.config.keep_checkpoints)
        };

        let advice = |last: &Option<PathBuf>| {
            match last {
            Some(p) => format!(
                "The last good checkpoint, {}, is kept; resume from it with a lower learning rate or with clipping, e.g. `genlab train --resume {} --set train.optimizer.lr=1e-4` or `--set train.clip_grad_norm=1.0`",
                p.display(),
                self.run_dir.display()
            ),
            None => "No checkpoint had been written yet; lower train.optimizer.lr or set train.clip_grad_norm".into(),
        }
        };
        for step in start + 1..=cfg.steps {
            // A budget (privacy's epsilon, train.max_seconds) that the next step would exceed ends
            // training here, as if this were the last step.
            let trained = elapsed_before + started.elapsed().as_secs_f64();
            let budget = if let Some(d) = dp.as_ref().filter(|d| !d.next_step_allowed()) {
                let spent = format!(
                    "step {step} would spend epsilon {:.4} > train.privacy.target_epsilon {} (delta {})",
                    d.epsilon_after_next_step(),
                    d.target_epsilon.unwrap_or(f64::INFINITY),
                    d.delta
                );
                Some((
                    format!(
                        "train.privacy: the budget allows no {}step: {spent}; raise target_epsilon or noise_multiplier",
                        if start == 0 { "" } else { "further " }
                    ),
                    format!(
                        "privacy budget reached: {spent}; training stopped after step {} at epsilon {:.4}",
                        step - 1,
                        d.epsilon()
                    ),
                ))
            } else {
                cfg.max_seconds.filter(|&limit| trained >= limit).map(|limit| {
                    (
                        format!("train.max_seconds = {limit}: the run has trained {trained:.1} s already; raise it to train further"),
                        format!("time budget reached: training stopped after step {} at {trained:.1} s (train.max_seconds = {limit})", step - 1),
                    )
                })
            };
            if let Some((nothing_done, stopped)) = budget {
                progress.finish();
                let done = step - 1;
                if done == start {
                    return Err(TrainError::Config(nothing_done));
                }
                if saved_step != Some(done) {
                    checkpoint(&model, &ema, &optimizers, source, &rng, &dp, done, trained)?;
                }
                self.events.message(&stopped);
                return Ok(TrainOutcome::Finished {
                    model,
                    ema: ema.map(|e| e.model),
                    step: done,
                    elapsed_s: trained,
                    privacy: dp.map(|d| d.accountant),
                });
            }
            let lr_factor = cfg.schedule.factor(step, cfg.steps);
            optimizers.set_lr_factor(lr_factor);
            let batch = source.next_batch(device);
            let (m, out) = match dp.as_mut() {
                Some(d) => d.step(model, batch, &mut optimizers, &mut rng, device)?,
                None => {
                    let mut ctx = StepContext { optimizers: &mut optimizers, rng: &mut rng, step, device };
                    model.train_step(batch, &mut ctx)
                }
            };
            model = m;
            let grad_norm = optimizers.iter().find_map(|o| o.last_grad_norm());
            let reported = std::iter::once(("loss", out.loss))
                .chain(out.scalars.iter().copied())
                .chain(grad_norm.map(|g| ("gradient norm", g)));
            for (name, v) in reported {
                if !v.is_finite() {
                    progress.finish();
                    return Err(TrainError::NonFinite { step, name: name.into(), value: v, kept: advice(&last_ckpt) });
                }
            }
            if let Some(e) = ema.as_mut() {
                e.update(&model);
            }
            window.add(&out, optimizers.iter().next().map(|o| o.lr()).unwrap_or(0.0), grad_norm);
            if let Some(limit) = cfg.max_seconds.filter(|_| step % 10 == 0) {
                // Under a time budget the bar ends where the budget will, at the rate so far.
                let secs = started.elapsed().as_secs_f64().max(1e-9);
                let left = (limit - elapsed_before - secs).max(0.0) * (step - start) as f64 / secs;
                progress.set_total(step, (step + left.ceil() as u64).min(cfg.steps));
            }
            progress.update(step, &format!("loss {:.4}", out.loss));
            let elapsed = elapsed_before + started.elapsed().as_secs_f64();
            if step % cfg.log_every == 0 || step == cfg.steps {
                let mut entry = window.flush(step, elapsed);
                if let Some(d) = &dp {
                    entry.insert("epsilon".into(), json!(d.epsilon()));
                }
                log.log(entry)?;
            }
            // Checkpoint before evaluating, so a failing evaluation cannot cost the checkpoint.
            let interrupted = self.stop_requested();
            let saved = step % cfg.checkpoint_every == 0 || step == cfg.steps || interrupted;
            if saved {
                if !all_finite(&model) {
                    progress.finish();
                    return Err(TrainError::NonFinite {
                        step,
                        name: "a weight".into(),
                        value: f64::NAN,
                        kept: advice(&last_ckpt),
                    });
                }
                let dir = checkpoint(&model, &ema, &optimizers, source, &rng, &dp, step, elapsed)?;
                last_ckpt = Some(dir.clone());
                saved_step = Some(step);
                if interrupted {
                    progress.finish();
                    return Ok(TrainOutcome::Interrupted { step, checkpoint: dir });
                }
            }
            if cfg.eval_every.is_some_and(|e| step % e == 0 || step == cfg.steps) {
                let eval_model = match &ema {
                    Some(e) => e.model.clone(),
                    None => model.valid(),
                };
                let metrics = evaluate(step, &eval_model)?;
                if !metrics.is_empty() {
                    let mut entry = Map::new();
                    entry.insert("step".into(), json!(step));
                    entry.insert("split".into(), json!("eval"));
                    for (k, v) in &metrics {
                        entry.insert(k.clone(), json!(v));
                    }
                    let shown: Vec<String> = metrics.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
                    let line = format!("step {step}: {}", shown.join(", "));
                    if progress.is_visible() {
                        progress.println(&line);
                    } else {
                        self.events.message(&line);
                    }
                    log.log(entry)?;
                }
                // A stop the evaluation asked for (a tuner's pruner) takes effect at this step.
                if step < cfg.steps && self.stop_requested() {
                    let dir = match (&last_ckpt, saved) {
                        (Some(dir), true) => dir.clone(),
                        _ => checkpoint(&model, &ema, &optimizers, source, &rng, &dp, step, elapsed)?,
                    };
                    progress.finish();
                    return Ok(TrainOutcome::Interrupted { step, checkpoint: dir });
                }
            }
        }
        progress.finish();
        let elapsed_s = elapsed_before + started.elapsed().as_secs_f64();
        let privacy = dp.map(|d| d.accountant);
        Ok(TrainOutcome::Finished { model, ema: ema.map(|e| e.model), step: cfg.steps, elapsed_s, privacy })
    }
}

/// Loads each optimiser's state (moments, update count) from `c`.
fn load_optimizer_states(c: &Checkpoint, optimizers: &mut Optimizers, device: &Device) -> Result<()> {
    for o in optimizers.iter_mut() {
        let updates = c.state.optimizer_updates.get(&o.name).copied().unwrap_or(0);
        o.load_state(&format!("{}.", o.name), &c.optim, updates, device)?;
    }
    Ok(())
}

/// Whether `point` can continue `model` trained by `optimizers` (built as the run will build
/// them): what resuming loads, loaded into copies, so that a command refuses a changed
/// architecture (`--set model.latent_dim=16`) or a step count already passed before it writes
/// anything.
pub fn check_resumable<M: Module>(
    point: &IntactCheckpoint,
    model: &M,
    mut optimizers: Optimizers,
    steps: u64,
    device: &Device,
) -> Result<()> {
    let c = &point.checkpoint;
    check_continues(c.state.step, steps)?;
    c.model.load_into(model.clone(), &point.file(false))?;
    if let Some(ema) = &c.ema {
        ema.load_into(model.clone(), &point.file(true))?;
    }
    load_optimizer_states(c, &mut optimizers, device)
}

/// Means of the step outputs since the last log line.
#[derive(Default)]
struct Window {
    n: u64,
    sums: Vec<(&'static str, f64)>,
    lr: f64,
    grad_norm: Option<f64>,
    since: Option<Instant>,
}

impl Window {
    fn add(&mut self, out: &StepOutput, lr: f64, grad_norm: Option<f64>) {
        self.since.get_or_insert_with(Instant::now);
        self.n += 1;
        for (name, v) in std::iter::once(("loss", out.loss)).chain(out.scalars.iter().copied()) {
            match self.sums.iter_mut().find(|(k, _)| *k == name) {
                Some((_, s)) => *s += v,
                None => self.sums.push((name, v)),
            }
        }
        self.lr = lr;
        self.grad_norm = grad_norm;
    }

    fn flush(&mut self, step: u64, elapsed: f64) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("step".into(), json!(step));
        m.insert("split".into(), json!("train"));
        for (k, s) in &self.sums {
            m.insert((*k).into(), json!(s / self.n.max(1) as f64));
        }
        m.insert("lr".into(), json!(self.lr));
        if let Some(g) = self.grad_norm {
            m.insert("grad_norm".into(), json!(g));
        }
        if let Some(t) = self.since {
            m.insert("steps_per_s".into(), json!(self.n as f64 / t.elapsed().as_secs_f64().max(1e-9)));
        }
        m.insert("time_s".into(), json!(elapsed));
        *self = Window::default();
        m
    }
}
