//! genlab-pipeline: the experiment file and the phases it drives (data -> model -> train -> eval
//! -> samples -> report), the run directory, figures and the report.

pub mod classifier;
pub mod error;
pub mod experiment;
pub mod fid;
pub mod flow;
pub mod gan;
pub mod images;
pub mod plots;
pub mod report;
pub mod run;
pub mod sample_metrics;
pub mod vae;

pub use error::{PipelineError, Result};
pub use experiment::Experiment;
pub use run::{eval_run, resume, sample_run, start, Finished, Mode, RunOptions, SampleFormat};
