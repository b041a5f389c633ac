//! genlab-train: THE training loop. A model family implements [`TrainStep`]; the [`Trainer`] owns
//! everything else: the step loop, learning-rate schedules, gradient clipping, EMA weights,
//! checkpoints and resume, progress, the metric log, Ctrl-C and NaN detection.

pub mod checkpoint;
pub mod ema;
pub mod error;
pub mod metrics;
pub mod optim;
pub mod params;
pub mod privacy;
pub mod replicas;
pub mod schedule;
pub mod trainer;

pub use error::{Result, TrainError};
pub use genlab_data::BatchSource;
pub use optim::{Optimizer, OptimizerConfig, OptimizerKey, OptimizerKind, Optimizers};
pub use schedule::{Schedule, ScheduleKind};
pub use trainer::{
    check_resumable, install_interrupt_handler, StepContext, StepOutput, TrainOutcome, TrainStep, Trainer,
    TrainerConfig,
};
