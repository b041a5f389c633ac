//! Hybrids: models made of two trained stages, the second composed with the first rather than
//! copied from it.
//!
//! - [`code_prior`]: a GPT over a VQ-VAE's code grids (van den Oord et al. 2017's two-stage
//!   recipe, with a transformer as the prior in place of PixelCNN, as in Esser et al. 2021).
//! - [`latent_diffusion`]: a diffusion model in the latent space of a KL-regularised autoencoder
//!   (Rombach et al. 2022).

pub mod code_prior;
pub mod latent_diffusion;
