//! Diffusion models (Ho et al. 2020, <https://arxiv.org/abs/2006.11239>): the noise schedule and
//! the prediction targets ([`schedule`]), the forward process, loss, guidance and in-painting on
//! tensors ([`process`]), and the samplers as plans of linear updates
//! ([`sampler`]), the denoising UNet ([`unet`]), and the model the trainer trains with its
//! sampling loop ([`model`]). The family comes with the rest of issue 13.

pub mod model;
pub mod process;
pub mod sampler;
pub mod schedule;
pub mod unet;
