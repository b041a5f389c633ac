//! genlab-models: one module per generative model family. Each family is a burn `Module` with its
//! own config (`XConfig::init`), its family operations as plain methods (`encode`, `decode`,
//! `sample`, ...) and an implementation of the trainer's `TrainStep`.

pub mod classifier;
pub mod diffusion;
pub mod error;
pub mod flow;
pub mod gan;
pub mod gaussian_mixture;
pub mod hybrid;
pub mod lm;
pub mod sentence_vae;
pub mod vae;
pub mod vqvae;

pub use error::ModelError;
