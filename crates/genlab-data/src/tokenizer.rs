//! Tokenizers of text data. The character tokenizer is nanoGPT's `shakespeare_char` scheme: one
//! token per distinct character of the training split, sorted, plus one `<unk>` token.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tokenizer {
    Char(CharTokenizer),
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
        }
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
        }
    }

    /// The text of `tokens`; `<unk>` (and any id out of range) decodes to U+FFFD.
    pub fn decode(&self, tokens: &[u32]) -> String {
        match self {
            Tokenizer::Char(c) => {
                tokens.iter().map(|&t| c.chars.get(t as usize).copied().unwrap_or(UNK_TEXT)).collect()
            }
        }
    }

    /// What the tokenizer is, in words.
    pub fn describe(&self) -> String {
        match self {
            Tokenizer::Char(c) => format!("characters ({} of the training text, and <unk>)", c.chars.len()),
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
