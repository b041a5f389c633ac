//! genlab-nn: layers and probability densities that several model families share.

pub mod activation;
pub mod actnorm;
pub mod attention;
pub mod codebook;
pub mod conv;
pub mod coupling;
pub mod distributions;
pub mod dropout;
pub mod flex_ops;
pub mod fused_attention;
pub mod fused_lstm;
pub mod gelu;
pub mod group_norm;
pub mod init;
pub mod invconv;
pub mod linear;
pub mod logit;
pub mod recurrent;
pub mod resample;
pub mod rotary;
pub mod spectral_norm;
pub mod squeeze;
pub mod testing;
