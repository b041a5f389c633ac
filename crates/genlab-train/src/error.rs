//! Errors of the training loop.

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Core(#[from] genlab_core::CoreError),
    #[error("{path}: {reason}")]
    Checkpoint { path: std::path::PathBuf, reason: String },
    #[error("{path}: damaged checkpoint: {reason}")]
    Damaged { path: std::path::PathBuf, reason: String },
    #[error("{run_dir}: no intact checkpoint: {reasons}")]
    NoIntactCheckpoint { run_dir: std::path::PathBuf, reasons: String },
    #[error("{path}: writing the checkpoint failed ({reason}); its partial files were removed and the previous checkpoint is intact{free}")]
    CheckpointWrite { path: std::path::PathBuf, reason: String, free: String },
    #[error("step {step}: {name} is {value}; training stopped. {kept}")]
    NonFinite { step: u64, name: String, value: f64, kept: String },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Source(String),
    /// An evaluation run during training failed.
    #[error("evaluation at step {step}: {reason}")]
    Eval { step: u64, reason: String },
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
