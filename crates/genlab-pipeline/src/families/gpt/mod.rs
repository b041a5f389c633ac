//! The GPT family: a decoder-only transformer language model (`genlab_models::lm::gpt`) on a text
//! corpus, trained as nanoGPT trains it (random windows of `block_size + 1` tokens, AdamW with
//! weight decay on matrices only) and judged as every language model is ([`LmFamily`]).

use crate::family::FamilyCard;
use crate::language::{LmFamily, LmNetwork};
use burn::tensor::Device;
use genlab_data::DataKind;
use genlab_models::lm::gpt::{Gpt, GptConfig};
use genlab_models::ModelError;

pub type GptFamily = LmFamily<GptConfig>;

impl LmNetwork for GptConfig {
    type Model = Gpt;

    const CARD: FamilyCard = FamilyCard {
        name: "gpt",
        summary: "decoder-only transformer language model (nanoGPT's GPT-2), with a KV cache for generation",
        data: &[DataKind::Text, DataKind::Molecules],
    };

    fn check(&self) -> Result<(), ModelError> {
        GptConfig::check(self)
    }

    fn init(&self, vocab: usize, seed: u64, device: &Device) -> Result<Gpt, ModelError> {
        GptConfig::init(self, vocab, seed, device)
    }

    fn block_size(&self) -> usize {
        self.block_size
    }

    fn context(&self) -> Option<usize> {
        Some(self.block_size)
    }

    fn describe(&self) -> String {
        format!(
            "GPT: {} layers, {} heads, width {}, block {}, {:?} positions, dropout {}",
            self.layers, self.heads, self.width, self.block_size, self.positions, self.dropout
        )
    }
}
