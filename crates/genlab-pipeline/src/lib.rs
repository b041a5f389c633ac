//! genlab-pipeline: the experiment file and the phases it drives (data -> model -> train -> eval
//! -> samples -> report), generic over the model families of the registry, with the run
//! directory, figures and the report.

pub mod classes;
pub mod data;
pub mod error;
pub mod evaluation;
pub mod experiment;
pub mod families;
pub mod family;
pub mod generate;
pub mod language;
pub mod metric;
pub mod molecules;
pub mod post;
pub mod registry;
pub mod reopen;
pub mod report;
pub mod run;
pub mod run_dir;
pub mod sample_metrics;
pub mod serving;
mod stages;
pub mod tune;

pub use error::{PipelineError, Result};
pub use experiment::Experiment;

pub use generate::{GenerateRequest, Generated, SampleFormat};
pub use genlab_core::events::{Collected, EventSink, Events, Terminal};
pub use genlab_train::install_interrupt_handler;
pub use reopen::{eval_run, sample_run, RunTarget};
pub use run::{resume, start, Finished, Mode, RunOptions};
pub use run_dir::RunInfo;
