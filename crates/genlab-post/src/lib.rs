//! genlab-post: what a generated sample passes through before anyone sees it: image steps (smoothing,
//! sharpening, resizing, levels, binarisation), text correction and normalisation, content filters
//! (blocklist, personal data), the verbatim-copy check of generated text, the invisible image
//! watermark and the green-list text watermark.

pub mod config;
pub mod content;
pub mod error;
pub mod image_ops;
pub mod normalize;
pub mod symspell;
pub mod text_watermark;
pub mod verbatim;
pub mod watermark;

pub use config::{ImagePost, PostConfig, WatermarkConfig};
pub use error::{PostError, Result};
pub use image_ops::{ImageStep, Picture};
