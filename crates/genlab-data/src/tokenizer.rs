//! Tokenizers of text data. The character tokenizer is nanoGPT's `shakespeare_char` scheme: one
//! token per distinct character of the training split, sorted, plus one `<unk>` token. The BPE
//! tokenizer is GPT-2's byte-level BPE (Radford et al. 2019; Sennrich et al. 2016,
//! <https://arxiv.org/abs/1508.07909>) trained on the training split by the `tokenizers` crate, the
//! Rust core of Hugging Face tokenizers, and saved as its `tokenizer.json`, which Python's
//! `tokenizers` loads unchanged. It reads bytes, so it has no unseen characters and decodes back
//! to exactly the text it encoded.
//!
//! Unseen characters (the policy): text the model reads as data (the validation split) maps a
//! character that the training split lacks to `<unk>`, so it is counted, at the model's (low)
//! probability of `<unk>`, in the validation loss rather than silently dropped; text a person
//! gives (a prompt) is refused with the character and its position, since the model has never
//! seen it and cannot continue it honestly.

use crate::error::{DataError, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// How text becomes tokens, as a run records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tokenizer {
    Char(CharTokenizer),
    /// Byte-level BPE: the Hugging Face tokenizer itself (its JSON is `tokenizer.json`).
    Bpe(Box<tokenizers::Tokenizer>),
}

impl PartialEq for Tokenizer {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Tokenizer::Char(a), Tokenizer::Char(b)) => a == b,
            (Tokenizer::Bpe(a), Tokenizer::Bpe(b)) => a.to_string(false).ok() == b.to_string(false).ok(),
            _ => false,
        }
    }
}

/// Which tokenizer a text run fits on its training split (`data.tokenizer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenizerSpec {
    /// One token per character.
    #[default]
    Char,
    /// Byte-level BPE with this many tokens (the 256 bytes and the merges learned).
    Bpe { vocab_size: usize },
}

impl TokenizerSpec {
    /// Fits the tokenizer on `text` (the training split).
    pub fn fit(self, text: &str) -> Result<Tokenizer> {
        match self {
            TokenizerSpec::Char => Ok(Tokenizer::Char(CharTokenizer::fit(text))),
            TokenizerSpec::Bpe { vocab_size } => {
                if vocab_size < 257 {
                    return Err(DataError::Config(format!(
                        "data.tokenizer.bpe.vocab_size = {vocab_size}: expected at least 257 (the 256 bytes and one merge)"
                    )));
                }
                Ok(Tokenizer::Bpe(Box::new(train_byte_level_bpe(text, vocab_size)?)))
            }
        }
    }
}

/// GPT-2's byte-level BPE trained on `text` to `vocab_size` tokens: no normaliser, the
/// byte-level pre-tokenizer without a prefix space, the byte-level decoder.
fn train_byte_level_bpe(text: &str, vocab_size: usize) -> Result<tokenizers::Tokenizer> {
    use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::{DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, TokenizerBuilder};
    let fail = |e: tokenizers::Error| DataError::Config(format!("training the BPE tokenizer: {e}"));
    let mut trainer = BpeTrainerBuilder::new()
        .show_progress(false)
        .vocab_size(vocab_size)
        .min_frequency(0)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let byte_level = ByteLevel::default().add_prefix_space(false);
    let mut t =
        TokenizerBuilder::<BPE, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>::new()
            .with_model(BPE::default())
            .with_normalizer(None)
            .with_pre_tokenizer(Some(byte_level.into()))
            .with_post_processor(Some(byte_level.into()))
            .with_decoder(Some(byte_level.into()))
            .build()
            .map_err(fail)?;
    // Paragraphs (split after blank lines) are the training sequences: the pre-tokenizer never
    // joins across them, so the merges learned are those of the whole text.
    t.train(&mut trainer, text.split_inclusive("\n\n")).map_err(fail)?;
    Ok(t.into())
}

/// One token per character of the training split (sorted) and a final `<unk>` token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "CharList", into = "CharList")]
pub struct CharTokenizer {
    chars: Vec<char>,
    index: HashMap<char, u32>,
}

/// The tokenizer as stored: its characters as one string.
#[derive(Serialize, Deserialize)]
struct CharList {
    chars: String,
}

impl From<CharList> for CharTokenizer {
    fn from(c: CharList) -> Self {
        CharTokenizer::from_chars(c.chars.chars().collect())
    }
}

impl From<CharTokenizer> for CharList {
    fn from(t: CharTokenizer) -> Self {
        CharList { chars: t.chars.iter().collect() }
    }
}

/// The text of `<unk>` when decoded: U+FFFD, the Unicode replacement character.
pub const UNK_TEXT: char = '\u{fffd}';

impl CharTokenizer {
    /// The distinct characters of `text`, sorted.
    pub fn fit(text: &str) -> Self {
        let set: std::collections::BTreeSet<char> = text.chars().collect();
        Self::from_chars(set.into_iter().collect())
    }

    fn from_chars(chars: Vec<char>) -> Self {
        let index = chars.iter().enumerate().map(|(i, &c)| (c, i as u32)).collect();
        CharTokenizer { chars, index }
    }

    /// The characters, sorted; character `i` is token `i`.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// The `<unk>` token: the last id.
    pub fn unk(&self) -> u32 {
        self.chars.len() as u32
    }
}

impl Tokenizer {
    /// Tokens, `<unk>` included.
    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Char(c) => c.chars.len() + 1,
            Tokenizer::Bpe(t) => t.get_vocab_size(true),
        }
    }

    /// The byte-level BPE tokenizer, encoding `text` whole (`what` names it in an error).
    fn bpe_encode(t: &tokenizers::Tokenizer, text: &str, what: &str) -> Result<Vec<u32>> {
        let e = t
            .encode_fast(text, false)
            .map_err(|e| DataError::Config(format!("{what}: the BPE tokenizer cannot encode it: {e}")))?;
        Ok(e.get_ids().to_vec())
    }

    /// The tokens of data text: an unseen character becomes `<unk>`. Returns the tokens and the
    /// number of unseen characters.
    pub fn encode_lossy(&self, text: &str) -> (Vec<u32>, usize) {
        match self {
            Tokenizer::Char(c) => {
                let mut unknown = 0;
                let ids = text
                    .chars()
                    .map(|ch| {
                        c.index.get(&ch).copied().unwrap_or_else(|| {
                            unknown += 1;
                            c.unk()
                        })
                    })
                    .collect();
                (ids, unknown)
            }
            Tokenizer::Bpe(t) => (Self::bpe_encode(t, text, "text").expect("byte-level BPE encodes any text"), 0),
        }
    }

    /// The tokens of text a person gave (`what` names it in the error): a character the
    /// tokenizer cannot encode is refused.
    pub fn encode_strict(&self, text: &str, what: &str) -> Result<Vec<u32>> {
        match self {
            Tokenizer::Char(c) => text
                .chars()
                .enumerate()
                .map(|(i, ch)| {
                    c.index.get(&ch).copied().ok_or_else(|| {
                        DataError::Config(format!(
                            "{what}: character {ch:?} (U+{:04X}) at position {i} is not in the model's vocabulary of {} characters (the characters of its training text); expected only those",
                            ch as u32,
                            c.chars.len()
                        ))
                    })
                })
                .collect(),
            Tokenizer::Bpe(t) => Self::bpe_encode(t, text, what),
        }
    }

    /// The text of `tokens`; `<unk>` (and any id out of range) decodes to U+FFFD.
    pub fn decode(&self, tokens: &[u32]) -> String {
        match self {
            Tokenizer::Char(c) => {
                tokens.iter().map(|&t| c.chars.get(t as usize).copied().unwrap_or(UNK_TEXT)).collect()
            }
            // Byte-level decoding: bytes that end mid-character decode as U+FFFD.
            Tokenizer::Bpe(t) => t.decode(tokens, false).unwrap_or_default(),
        }
    }

    /// The tokenizer as Hugging Face's `tokenizer.json` (None for the character tokenizer, which
    /// genlab records in `run.json` alone).
    pub fn hf_json(&self) -> Option<String> {
        match self {
            Tokenizer::Char(_) => None,
            Tokenizer::Bpe(t) => Some(t.to_string(true).expect("a trained tokenizer serialises")),
        }
    }

    /// What the tokenizer is, in words.
    pub fn describe(&self) -> String {
        match self {
            Tokenizer::Char(c) => format!("characters ({} of the training text, and <unk>)", c.chars.len()),
            Tokenizer::Bpe(t) => {
                format!("byte-level BPE ({} tokens, trained on the training text)", t.get_vocab_size(true))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_round_trip_and_unseen_ones_follow_the_policy() {
        let t = Tokenizer::Char(CharTokenizer::fit("hello world"));
        assert_eq!(t.vocab_size(), 9); // " dehlorw" and <unk>
        let ids = t.encode_strict("hello", "prompt").unwrap();
        assert_eq!(t.decode(&ids), "hello");
        let (ids, unknown) = t.encode_lossy("hex");
        assert_eq!((unknown, ids[2]), (1, 8));
        assert_eq!(t.decode(&ids), "he\u{fffd}");
        let err = t.encode_strict("hex", "--prompt").unwrap_err().to_string();
        assert!(err.contains("--prompt: character 'x' (U+0078) at position 2"), "{err}");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"char":{"chars":" dehlorw"}}"#);
        assert_eq!(serde_json::from_str::<Tokenizer>(&json).unwrap(), t);
    }
}
