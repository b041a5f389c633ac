//! Errors of the data crate: each names the file and what was expected of it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an IDX file: {reason}")]
    Idx { path: PathBuf, reason: String },
    #[error("{path}: cannot decode image: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error("{path}: image is {found_w}x{found_h}, but {first} is {want_w}x{want_h}; set a `resize` transform or make all images one size")]
    MixedSizes { path: PathBuf, first: PathBuf, found_w: u32, found_h: u32, want_w: u32, want_h: u32 },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("dataset `{name}` not found: {reason}")]
    NotFound { name: String, reason: String },
    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
        let path = path.into();
        move |source| DataError::Io { path, source }
    }
}
