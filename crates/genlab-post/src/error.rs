//! Errors of post-processing: each names the step or the key, the value and what was expected.

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("[post] {step}: {field} = {value}, expected {expected}")]
    Step { step: String, field: String, value: String, expected: String },
    #[error("watermark key \"{key}\": {why}")]
    Key { key: String, why: String },
    #[error(
        "watermark: a {height}x{width} image holds {blocks} blocks of 4x4 wavelet coefficients, a 32-bit key needs {needed} (at least 96x96 pixels; resize first in [post] image)"
    )]
    WatermarkSize { height: usize, width: usize, blocks: usize, needed: usize },
}

pub type Result<T, E = PostError> = std::result::Result<T, E>;
