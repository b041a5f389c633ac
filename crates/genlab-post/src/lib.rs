//! genlab-post: what a generated sample passes through before anyone sees it: image steps (smoothing,
//! sharpening, resizing, levels, binarisation), text correction and normalisation, content filters
//! (blocklist, personal data), and the invisible image
//! watermark (the green-list text watermark lives with the language models' sampling, in
//! `genlab_models::lm::watermark`).

pub mod config;
pub mod content;
pub mod error;
pub mod image_ops;
pub mod normalize;
pub mod symspell;
pub mod watermark;

pub use config::{
    ImagePost, MemorisationConfig, PostConfig, TextPost, TextPostConfig, TextWatermarkConfig, WatermarkConfig,
};
pub use error::{PostError, Result};
pub use image_ops::{ImageStep, Picture};
