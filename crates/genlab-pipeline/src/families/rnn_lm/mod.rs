//! The recurrent language-model family: stacked LSTM or GRU layers (`genlab_models::lm::rnn`)
//! on a text corpus, trained on random windows of `block_size + 1` tokens from the zero state,
//! and judged as every language model is ([`LmFamily`]).

use crate::family::FamilyCard;
use crate::language::{LmFamily, LmNetwork};
use burn::tensor::Device;
use genlab_data::DataKind;
use genlab_models::lm::rnn::{RnnLm, RnnLmConfig};
use genlab_models::ModelError;

pub type RnnLmFamily = LmFamily<RnnLmConfig>;

impl LmNetwork for RnnLmConfig {
    type Model = RnnLm;

    const CARD: FamilyCard = FamilyCard {
        name: "rnn_lm",
        summary: "recurrent language model (stacked LSTM or GRU, PyTorch's cells), carrying its state through generation",
        data: &[DataKind::Text, DataKind::Molecules],
    };

    fn check(&self) -> Result<(), ModelError> {
        RnnLmConfig::check(self)
    }

    fn init(&self, vocab: usize, seed: u64, device: &Device) -> Result<RnnLm, ModelError> {
        RnnLmConfig::init(self, vocab, seed, device)
    }

    fn block_size(&self) -> usize {
        self.block_size
    }

    fn context(&self) -> Option<usize> {
        None
    }

    fn describe(&self) -> String {
        format!(
            "{:?}: {} layers, hidden {}, embedding {}, dropout {}, {} head",
            self.cell,
            self.layers,
            self.hidden,
            self.embedding.unwrap_or(self.hidden),
            self.dropout,
            if self.tie_embeddings { "tied" } else { "untied" }
        )
    }
}
