//! The tuner's errors: each names the study, storage, trial or key it is about.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum TuneError {
    /// A mistake in `[tune]` or on the command line.
    #[error("{0}")]
    Config(String),
    /// The study database: unreachable, malformed, another schema, or a query that failed.
    #[error("{0}")]
    Storage(String),
    /// A study that exists and differs from what this run asks (direction, space).
    #[error("{0}")]
    Study(String),
    /// An objective that could not run.
    #[error("{0}")]
    Objective(String),
}

pub type Result<T, E = TuneError> = std::result::Result<T, E>;
