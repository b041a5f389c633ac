//! Generative adversarial networks (issue 5, in progress): so far the adversarial losses and the
//! DCGAN networks (conditional and spectrally normalised variants); the model around them, its
//! training step on the one trainer and the pipeline come next.

pub mod losses;
pub mod networks;
