//! Errors of the pipeline: each is one line a user can act on.

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Data(#[from] genlab_data::DataError),
    #[error(transparent)]
    Model(#[from] genlab_models::ModelError),
    #[error(transparent)]
    Train(#[from] genlab_train::TrainError),
    #[error(transparent)]
    Core(#[from] genlab_core::CoreError),
    #[error(transparent)]
    Plot(#[from] genlab_plot::PlotError),
    #[error("{0}")]
    Run(String),
}

/// A configuration that cannot fit in memory is the user's to change.
impl From<genlab_core::memory::TooLarge> for PipelineError {
    fn from(e: genlab_core::memory::TooLarge) -> Self {
        PipelineError::Config(e.to_string())
    }
}

/// Another command holds the run directory (or its lock file cannot be opened).
impl From<genlab_core::lock::LockError> for PipelineError {
    fn from(e: genlab_core::lock::LockError) -> Self {
        PipelineError::Run(e.to_string())
    }
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
