//! The registry: every family, listed once. A family is a folder here (its [`Family`]
//! implementation) beside its model in `genlab-models`; adding one is that folder and one line in
//! the list below, which declares the folder's module and registers its family.
//!
//! [`Family`]: crate::family::Family

use crate::registry::{Entry, Registered};

/// Declares each `module` and lists `module::Family` in [`FAMILIES`].
macro_rules! families {
    ($($module:ident::$family:ident),* $(,)?) => {
        $(pub mod $module;)*

        /// Every family, in the order `genlab families` lists them.
        pub static FAMILIES: &[&dyn Registered] = &[$(&Entry::<$module::$family>::new()),*];
    };
}

families! {
    vae::VaeFamily,
    flow::FlowFamily,
    gan::GanFamily,
    diffusion::DiffusionFamily,
    classifier::ClassifierFamily,
    gaussian_mixture::MixtureFamily,
    gpt::GptFamily,
    rnn_lm::RnnLmFamily,
    seq2seq::Seq2SeqFamily,
    vqvae::VqVaeFamily,
    vqvae_prior::PriorFamily,
    latent_diffusion::LatentDiffusionFamily,
    sentence_vae::SentenceVaeFamily,
}
