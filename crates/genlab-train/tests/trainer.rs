//! The trainer with a toy two-network model: a step drives two optimisers (one for each network,
//! the second stepped twice per step as a GAN critic would be), checked against a float64
//! recomputation; and a stopped-then-resumed fit continues bit-for-bit.

use burn::module::{Module, Param};
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::tensors::to_f32_vec;
use genlab_train::OptimizerKey;
use genlab_train::{
    BatchSource, Optimizer, OptimizerConfig, Optimizers, Schedule, StepContext, StepOutput, TrainOutcome, TrainStep,
    Trainer, TrainerConfig,
};
use serde_json::Value;

const GENERATOR: OptimizerKey = OptimizerKey("generator");
const CRITIC: OptimizerKey = OptimizerKey("critic");

#[derive(Module, Debug)]
struct Net {
    w: Param<Tensor<1>>,
}

#[derive(Module, Debug)]
struct TwoNets {
    generator: Net,
    critic: Net,
}

/// Batches are a scalar target drawn from the source's own counter (so position matters).
struct Targets {
    i: u64,
}

impl BatchSource for Targets {
    type Batch = f32;
    fn next_batch(&mut self, _: &Device) -> f32 {
        self.i += 1;
        1.0 + (self.i % 3) as f32
    }
    fn state(&self) -> Value {
        Value::from(self.i)
    }
    fn restore(&mut self, s: Value) -> Result<(), String> {
        self.i = s.as_u64().ok_or("bad state")?;
        Ok(())
    }
}

impl TrainStep for TwoNets {
    type Batch = f32;
    fn train_step(mut self, target: f32, ctx: &mut StepContext<'_>) -> (Self, StepOutput) {
        // The critic takes two steps toward -target, then the generator one step toward target + noise.
        for _ in 0..2 {
            let loss = (self.critic.w.val() + target).powi_scalar(2).sum();
            self.critic = ctx.optimizers.get(CRITIC).backward_step(self.critic, loss);
        }
        let noise = ctx.rng.normal_vec(1)[0] * 0.1;
        let loss = (self.generator.w.val() - (target + noise)).powi_scalar(2).sum();
        let value = loss.clone().into_scalar::<f32>() as f64;
        self.generator = ctx.optimizers.get(GENERATOR).backward_step(self.generator, loss);
        (self, StepOutput { loss: value, scalars: vec![] })
    }
}

fn nets(dev: &Device) -> TwoNets {
    let p = |v: f32| Net { w: Param::from_data(TensorData::new(vec![v], [1]), dev) };
    TwoNets { generator: p(0.0), critic: p(0.5) }
}

fn optimizers() -> Optimizers {
    Optimizers::new(vec![
        Optimizer::new(GENERATOR, OptimizerConfig { lr: 0.05, ..Default::default() }, None),
        Optimizer::new(CRITIC, OptimizerConfig { lr: 0.2, betas: [0.5, 0.9], ..Default::default() }, None),
    ])
}

fn config(steps: u64) -> TrainerConfig {
    TrainerConfig {
        steps,
        log_every: 5,
        checkpoint_every: 10,
        keep_checkpoints: 2,
        eval_every: None,
        ema: Some(0.9),
        schedule: Schedule::default(),
        seed: 3,
        label: "toy".into(),
        max_seconds: None,
    }
}

/// Adam on one scalar in float64.
struct Adam64 {
    lr: f64,
    b: [f64; 2],
    m: f64,
    v: f64,
    t: i32,
}
impl Adam64 {
    fn step(&mut self, x: f64, g: f64) -> f64 {
        self.t += 1;
        self.m = self.b[0] * self.m + (1.0 - self.b[0]) * g;
        self.v = self.b[1] * self.v + (1.0 - self.b[1]) * g * g;
        let (c1, c2) = (1.0 - self.b[0].powi(self.t), 1.0 - self.b[1].powi(self.t));
        x - self.lr / c1 * self.m / (self.v.sqrt() / c2.sqrt() + 1e-8)
    }
}

/// The run's newest intact checkpoint, to resume from.
fn resume(run: &std::path::Path) -> Option<genlab_train::checkpoint::IntactCheckpoint> {
    Some(genlab_train::checkpoint::newest_intact_checkpoint(run).unwrap().expect("the run has a checkpoint"))
}

#[test]
fn a_step_drives_two_optimizers_like_a_float64_reference() {
    let dev = Device::flex().autodiff();
    let run = tempfile::tempdir().unwrap();
    let out = Trainer::new(config(30), run.path())
        .fit(nets(&dev), optimizers(), &mut Targets { i: 0 }, None, &dev, |_, _| Ok(vec![]))
        .unwrap();
    let TrainOutcome::Finished { model, .. } = out else { panic!("should finish") };

    let mut rng = genlab_core::SeededRng::stream(3, 0x5eed);
    let (mut g, mut c) = (0.0f64, 0.5f64);
    let mut og = Adam64 { lr: 0.05, b: [0.9, 0.999], m: 0.0, v: 0.0, t: 0 };
    let mut oc = Adam64 { lr: 0.2, b: [0.5, 0.9], m: 0.0, v: 0.0, t: 0 };
    for i in 1..=30u64 {
        let target = 1.0 + (i % 3) as f64;
        for _ in 0..2 {
            c = oc.step(c, 2.0 * (c + target));
        }
        let noise = (rng.normal_vec(1)[0] * 0.1) as f64;
        g = og.step(g, 2.0 * (g - (target + noise)));
    }
    let got_g = to_f32_vec(model.generator.w.val())[0] as f64;
    let got_c = to_f32_vec(model.critic.w.val())[0] as f64;
    assert!((got_g - g).abs() < 1e-4 && (got_c - c).abs() < 1e-4, "got ({got_g}, {got_c}), want ({g}, {c})");
    assert_eq!(oc.t, 60, "the critic's optimiser took two updates per step");

    // Each optimiser's state is saved under its own name.
    let ck = genlab_train::checkpoint::read_checkpoint(&run.path().join("checkpoints/latest")).unwrap();
    assert!(ck.optim.get("generator.w.exp_avg").is_some() && ck.optim.get("critic.w.exp_avg_sq").is_some());
    assert_eq!(ck.state.optimizer_updates["critic"], 60);
    assert!(ck.ema.is_some());
}

#[test]
fn stopped_and_resumed_fit_continues_bit_for_bit() {
    let dev = Device::flex().autodiff();
    let whole = tempfile::tempdir().unwrap();
    let TrainOutcome::Finished { model: a, ema: ema_a, .. } = Trainer::new(config(30), whole.path())
        .fit(nets(&dev), optimizers(), &mut Targets { i: 0 }, None, &dev, |_, _| Ok(vec![]))
        .unwrap()
    else {
        panic!()
    };
    let split = tempfile::tempdir().unwrap();
    // First segment stops at step 20 (as if killed after its checkpoint), second resumes to 30.
    Trainer::new(config(20), split.path())
        .fit(nets(&dev), optimizers(), &mut Targets { i: 0 }, None, &dev, |_, _| Ok(vec![]))
        .unwrap();
    let TrainOutcome::Finished { model: b, ema: ema_b, .. } = Trainer::new(config(30), split.path())
        .fit(nets(&dev), optimizers(), &mut Targets { i: 999 }, resume(split.path()), &dev, |_, _| Ok(vec![]))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(a.generator.w.val().to_data(), b.generator.w.val().to_data());
    assert_eq!(a.critic.w.val().to_data(), b.critic.w.val().to_data());
    assert_eq!(ema_a.unwrap().generator.w.val().to_data(), ema_b.unwrap().generator.w.val().to_data());
    let lines = std::fs::read_to_string(split.path().join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 6, "one log line per 5 steps, none repeated:\n{lines}");
}

/// Batches that take `ms` milliseconds each to arrive: steps with a known least duration.
struct Slow {
    targets: Targets,
    ms: u64,
}

impl BatchSource for Slow {
    type Batch = f32;
    fn next_batch(&mut self, dev: &Device) -> f32 {
        std::thread::sleep(std::time::Duration::from_millis(self.ms));
        self.targets.next_batch(dev)
    }
    fn state(&self) -> Value {
        self.targets.state()
    }
    fn restore(&mut self, s: Value) -> Result<(), String> {
        self.targets.restore(s)
    }
}

/// train.max_seconds ends training with a checkpoint of the last step begun within the budget;
/// the spent budget refuses a resume that would train nothing, and a larger one continues bit for bit.
#[test]
fn a_time_budget_stops_with_a_checkpoint_and_resumes_bit_for_bit() {
    let dev = Device::flex().autodiff();
    let whole = tempfile::tempdir().unwrap();
    let TrainOutcome::Finished { model: a, .. } = Trainer::new(config(12), whole.path())
        .fit(nets(&dev), optimizers(), &mut Targets { i: 0 }, None, &dev, |_, _| Ok(vec![]))
        .unwrap()
    else {
        panic!()
    };
    let split = tempfile::tempdir().unwrap();
    let budget = TrainerConfig { max_seconds: Some(0.1), ..config(12) };
    let slow = || Slow { targets: Targets { i: 0 }, ms: 30 };
    let TrainOutcome::Finished { step, elapsed_s, .. } = Trainer::new(budget.clone(), split.path())
        .fit(nets(&dev), optimizers(), &mut slow(), None, &dev, |_, _| Ok(vec![]))
        .unwrap()
    else {
        panic!("a time budget finishes the run")
    };
    // Steps of at least 30 ms: the fifth cannot begin within 0.1 s, the first always does.
    assert!((1..=4).contains(&step), "stopped after step {step}");
    assert!(elapsed_s >= 0.1, "{elapsed_s}");
    let point = resume(split.path()).unwrap();
    assert_eq!(point.checkpoint.state.step, step, "the last step trained is checkpointed");
    let err = Trainer::new(budget, split.path())
        .fit(nets(&dev), optimizers(), &mut slow(), resume(split.path()), &dev, |_, _| Ok(vec![]))
        .err()
        .expect("a spent budget trains nothing");
    assert!(err.to_string().contains("train.max_seconds = 0.1: the run has trained"), "{err}");
    let TrainOutcome::Finished { model: b, step: last, .. } = Trainer::new(config(12), split.path())
        .fit(nets(&dev), optimizers(), &mut slow(), resume(split.path()), &dev, |_, _| Ok(vec![]))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(last, 12);
    assert_eq!(a.generator.w.val().to_data(), b.generator.w.val().to_data());
    assert_eq!(a.critic.w.val().to_data(), b.critic.w.val().to_data());
}

/// A stop request mid-schedule (as Ctrl-C makes), off the checkpoint and log cadence, then resume.
#[test]
fn interrupted_mid_schedule_resumes_bit_for_bit() {
    use genlab_train::ScheduleKind;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Asks its trainer to stop when it hands out batch `stop_at`.
    struct StopAt {
        inner: Targets,
        stop_at: u64,
        flag: Arc<AtomicBool>,
    }
    impl BatchSource for StopAt {
        type Batch = f32;
        fn next_batch(&mut self, d: &Device) -> f32 {
            if self.inner.i + 1 == self.stop_at {
                self.flag.store(true, Ordering::SeqCst);
            }
            self.inner.next_batch(d)
        }
        fn state(&self) -> Value {
            self.inner.state()
        }
        fn restore(&mut self, s: Value) -> Result<(), String> {
            self.inner.restore(s)
        }
    }
    let cfg =
        TrainerConfig { schedule: Schedule { kind: ScheduleKind::Cosine, warmup: 3, min_ratio: 0.1 }, ..config(30) };
    let dev = Device::flex().autodiff();
    let whole = tempfile::tempdir().unwrap();
    let TrainOutcome::Finished { model: a, ema: ema_a, .. } = Trainer::new(cfg.clone(), whole.path())
        .fit(nets(&dev), optimizers(), &mut Targets { i: 0 }, None, &dev, |_, _| Ok(vec![]))
        .unwrap()
    else {
        panic!()
    };
    let split = tempfile::tempdir().unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    let mut source = StopAt { inner: Targets { i: 0 }, stop_at: 17, flag: flag.clone() };
    match Trainer::new(cfg.clone(), split.path())
        .with_stop_flag(flag)
        .fit(nets(&dev), optimizers(), &mut source, None, &dev, |_, _| Ok(vec![]))
        .unwrap()
    {
        TrainOutcome::Interrupted { step, .. } => assert_eq!(step, 17),
        TrainOutcome::Finished { .. } => panic!("should stop at step 17"),
    }
    let TrainOutcome::Finished { model: b, ema: ema_b, .. } = Trainer::new(cfg, split.path())
        .with_stop_flag(Arc::new(AtomicBool::new(false)))
        .fit(nets(&dev), optimizers(), &mut Targets { i: 0 }, resume(split.path()), &dev, |_, _| Ok(vec![]))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(a.generator.w.val().to_data(), b.generator.w.val().to_data());
    assert_eq!(a.critic.w.val().to_data(), b.critic.w.val().to_data());
    assert_eq!(ema_a.unwrap().critic.w.val().to_data(), ema_b.unwrap().critic.w.val().to_data());
    let read = |d: &std::path::Path| genlab_train::checkpoint::read_checkpoint(&d.join("checkpoints/latest")).unwrap();
    assert_eq!(read(whole.path()).optim, read(split.path()).optim, "optimiser state");
}

/// A stop asked for by the evaluation (a tuner's pruner) takes effect at the evaluated step, off
/// the checkpoint cadence, with that step's checkpoint; resuming from it continues bit for bit.
#[test]
fn a_stop_from_the_evaluation_takes_effect_at_that_step() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let cfg = TrainerConfig { eval_every: Some(7), ..config(30) };
    let dev = Device::flex().autodiff();
    let whole = tempfile::tempdir().unwrap();
    let TrainOutcome::Finished { model: a, .. } = Trainer::new(cfg.clone(), whole.path())
        .fit(nets(&dev), optimizers(), &mut Targets { i: 0 }, None, &dev, |_, _| Ok(vec![("v".into(), 1.0)]))
        .unwrap()
    else {
        panic!()
    };
    let split = tempfile::tempdir().unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    let pruner = flag.clone();
    let outcome = Trainer::new(cfg.clone(), split.path())
        .with_stop_flag(flag)
        .fit(nets(&dev), optimizers(), &mut Targets { i: 0 }, None, &dev, move |step, _| {
            if step == 14 {
                pruner.store(true, Ordering::SeqCst);
            }
            Ok(vec![("v".into(), 1.0)])
        })
        .unwrap();
    match outcome {
        TrainOutcome::Interrupted { step, checkpoint } => {
            assert_eq!(step, 14);
            assert!(checkpoint.ends_with("step-000014"), "{}", checkpoint.display());
        }
        TrainOutcome::Finished { .. } => panic!("should stop at step 14"),
    }
    let TrainOutcome::Finished { model: b, .. } = Trainer::new(cfg, split.path())
        .with_stop_flag(Arc::new(AtomicBool::new(false)))
        .fit(nets(&dev), optimizers(), &mut Targets { i: 0 }, resume(split.path()), &dev, |_, _| {
            Ok(vec![("v".into(), 1.0)])
        })
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(a.generator.w.val().to_data(), b.generator.w.val().to_data());
}

#[test]
fn non_finite_loss_names_the_step_and_keeps_the_checkpoint() {
    struct Blows;
    impl BatchSource for Blows {
        type Batch = f32;
        fn next_batch(&mut self, _: &Device) -> f32 {
            1.0
        }
        fn state(&self) -> Value {
            Value::Null
        }
        fn restore(&mut self, _: Value) -> Result<(), String> {
            Ok(())
        }
    }
    #[derive(Module, Debug)]
    struct Exploding {
        w: Param<Tensor<1>>,
    }
    impl TrainStep for Exploding {
        type Batch = f32;
        fn train_step(self, _: f32, ctx: &mut StepContext<'_>) -> (Self, StepOutput) {
            // Reports exp(w) while Adam climbs the constant gradient of -w: w = lr * (step - 1).
            let reported = self.w.val().exp().sum().into_scalar::<f32>() as f64;
            let objective = self.w.val().neg().sum();
            let m = ctx.optimizers.get(OptimizerKey::MODEL).backward_step(self, objective);
            (m, StepOutput { loss: reported, scalars: vec![] })
        }
    }
    let dev = Device::flex().autodiff();
    let run = tempfile::tempdir().unwrap();
    let m = Exploding { w: Param::from_data(TensorData::new(vec![0.0f32], [1]), &dev) };
    let cfg = TrainerConfig { checkpoint_every: 5, ..config(30) };
    let err = match Trainer::new(cfg, run.path()).fit(
        m,
        Optimizers::single(OptimizerConfig { lr: 10.0, ..Default::default() }, None),
        &mut Blows,
        None,
        &dev,
        |_, _| Ok(vec![]),
    ) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("should stop"),
    };
    // exp(w) overflows f32 when w > 88.7: w = 10 * (step - 1), so at step 10.
    assert!(err.starts_with("step 10: loss is inf"), "{err}");
    assert!(err.contains("step-000005") && err.contains("is kept"), "{err}");
    let kept = resume(run.path()).unwrap();
    assert!(kept.dir.ends_with("step-000005"), "the step-10 state was not checkpointed: {:?}", kept.dir);
    let c = kept.checkpoint;
    assert!(c.model.get("w").unwrap().data[0].is_finite());
}
