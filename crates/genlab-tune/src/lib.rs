//! genlab-tune: hyperparameter search. A study lives in a database in Optuna's schema (SQLite by
//! default, PostgreSQL for many machines), so Optuna reads and writes it too; trials are proposed
//! by random, grid or TPE samplers and stopped early by median or ASHA pruners; workers send
//! heartbeats and a dead worker's trial runs again.

pub mod benchmarks;
pub mod config;
pub mod error;
pub mod importance;
pub mod pruner;
pub mod sampler;
pub mod space;
pub mod storage;
pub mod study;
pub mod tpe;
pub mod trial;
pub mod truncnorm;

pub use config::TuneConfig;
pub use error::{Result, TuneError};
pub use study::{optimize, Event, Objective, Outcome, StudySpec, TrialRun};
pub use trial::{Direction, Trial, TrialState};
