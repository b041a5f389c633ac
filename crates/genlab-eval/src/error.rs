//! Errors of the metrics: each says which metric needed what.

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{metric}: needs at least {needed} samples, got {got}")]
    TooFewSamples { metric: &'static str, needed: usize, got: usize },
    #[error("{metric}: feature dimensions differ ({a} vs {b})")]
    DimensionMismatch { metric: &'static str, a: usize, b: usize },
    #[error("{network} reads {expected} images, got {got}")]
    ImageShape { network: &'static str, expected: String, got: String },
    #[error("{metric}: {reason}")]
    Numerical { metric: &'static str, reason: String },
    /// Input that cannot be scored (a missing folder, too few images, missing weights).
    #[error("{0}")]
    Input(String),
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;
