//! Errors of post-processing: each names the step, the field and what was expected.

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("[post] {step}: {field} = {value}, expected {expected}")]
    Step { step: String, field: String, value: String, expected: String },
}

pub type Result<T, E = PostError> = std::result::Result<T, E>;
