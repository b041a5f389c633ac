//! Generative adversarial networks (issue 5, in progress): so far the adversarial losses; the
//! DCGAN networks, the conditional model and the family's training step come next.

pub mod losses;
