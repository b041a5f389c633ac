//! genlab-pipeline: the experiment file and the phases it drives (data -> model -> train -> eval
//! -> samples -> report), the run directory, figures and the report.

pub mod error;
pub mod experiment;

pub use error::{PipelineError, Result};
pub use experiment::Experiment;
