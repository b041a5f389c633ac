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
    /// Molecules as SMILES, one per line: the molecular transformer's atom-level tokens.
    Smiles(TokenList),
    /// Molecules as SELFIES, one per line: one token per bracketed symbol.
    Selfies(TokenList),
}

impl PartialEq for Tokenizer {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Tokenizer::Char(a), Tokenizer::Char(b)) => a == b,
            (Tokenizer::Bpe(a), Tokenizer::Bpe(b)) => a.to_string(false).ok() == b.to_string(false).ok(),
            (Tokenizer::Smiles(a), Tokenizer::Smiles(b)) | (Tokenizer::Selfies(a), Tokenizer::Selfies(b)) => a == b,
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
    /// Molecule datasets only: SMILES's atom-level tokens (bracket atoms, two-letter elements,
    /// ring bonds and `%nn` are one token each).
    Smiles,
    /// Molecule datasets only: each molecule written as SELFIES (Krenn et al. 2020), one token per
    /// symbol; every string of symbols decodes to a valid molecule.
    Selfies,
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
            TokenizerSpec::Smiles => Ok(Tokenizer::Smiles(TokenList::fit(text, Molecular::Smiles)?)),
            TokenizerSpec::Selfies => Ok(Tokenizer::Selfies(TokenList::fit(text, Molecular::Selfies)?)),
        }
    }

    /// Whether the tokenizer reads molecules (a molecule dataset's lines) rather than text.
    pub fn is_molecular(self) -> bool {
        matches!(self, TokenizerSpec::Smiles | TokenizerSpec::Selfies)
    }
}

/// How a molecule tokenizer splits a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Molecular {
    Smiles,
    Selfies,
}

impl Molecular {
    /// The tokens of one molecule's line.
    fn split(self, line: &str) -> std::result::Result<Vec<&str>, String> {
        match self {
            Molecular::Smiles => genlab_chem::tokenize(line).map_err(|e| e.to_string()),
            Molecular::Selfies => genlab_chem::selfies::symbols(line).map_err(|e| e.to_string()),
        }
    }
}

/// The tokens of a molecule tokenizer: those of the training lines, sorted, then the line end
/// (`\n`, which ends every molecule), then `<unk>` (the last id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "Tokens", into = "Tokens")]
pub struct TokenList {
    tokens: Vec<String>,
    index: HashMap<String, u32>,
}

/// A token list as stored.
#[derive(Serialize, Deserialize)]
struct Tokens {
    tokens: Vec<String>,
}

impl From<Tokens> for TokenList {
    fn from(t: Tokens) -> Self {
        TokenList::from_tokens(t.tokens)
    }
}

impl From<TokenList> for Tokens {
    fn from(t: TokenList) -> Self {
        Tokens { tokens: t.tokens }
    }
}

impl TokenList {
    fn from_tokens(tokens: Vec<String>) -> Self {
        let index = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        TokenList { tokens, index }
    }

    /// The tokens of `text`'s lines (molecules); a line the tokenizer refuses is an error naming it.
    fn fit(text: &str, how: Molecular) -> Result<Self> {
        let mut set = std::collections::BTreeSet::new();
        for (i, line) in text.split('\n').enumerate().filter(|(_, l)| !l.is_empty()) {
            let toks = how.split(line).map_err(|e| DataError::Config(format!("training molecule {}: {e}", i + 1)))?;
            set.extend(toks.into_iter().map(str::to_string));
        }
        let mut tokens: Vec<String> = set.into_iter().collect();
        tokens.push("\n".into());
        Ok(Self::from_tokens(tokens))
    }

    /// The tokens, the line end last; token `i` is `tokens()[i]`.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The `<unk>` token: the last id.
    pub fn unk(&self) -> u32 {
        self.tokens.len() as u32
    }

    /// The line end's token.
    pub fn end(&self) -> u32 {
        self.tokens.len() as u32 - 1
    }

    /// `text`'s tokens, line ends included; `refuse` turns a token outside the list (or a line
    /// the splitter refuses) into an error, otherwise it becomes `<unk>` and is counted.
    fn encode(&self, text: &str, how: Molecular, refuse: Option<&str>) -> Result<(Vec<u32>, usize)> {
        let (mut ids, mut unknown) = (Vec::new(), 0);
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                ids.push(self.end());
            }
            if line.is_empty() {
                continue;
            }
            let toks = match how.split(line) {
                Ok(t) => t,
                Err(e) => match refuse {
                    Some(what) => return Err(DataError::Config(format!("{what}: {e}"))),
                    None => {
                        unknown += 1;
                        ids.push(self.unk());
                        continue;
                    }
                },
            };
            for t in toks {
                match self.index.get(t) {
                    Some(&id) => ids.push(id),
                    None => match refuse {
                        Some(what) => {
                            return Err(DataError::Config(format!(
                                "{what}: token {t:?} is not in the model's vocabulary of {} tokens (those of its training molecules); expected only those",
                                self.tokens.len()
                            )))
                        }
                        None => {
                            unknown += 1;
                            ids.push(self.unk());
                        }
                    },
                }
            }
        }
        Ok((ids, unknown))
    }

    fn decode(&self, tokens: &[u32]) -> String {
        tokens.iter().map(|&t| self.tokens.get(t as usize).map_or("\u{fffd}", String::as_str)).collect()
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
            Tokenizer::Smiles(t) | Tokenizer::Selfies(t) => t.tokens.len() + 1,
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
            Tokenizer::Smiles(t) => t.encode(text, Molecular::Smiles, None).expect("lossy encoding never fails"),
            Tokenizer::Selfies(t) => t.encode(text, Molecular::Selfies, None).expect("lossy encoding never fails"),
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
            Tokenizer::Smiles(t) => Ok(t.encode(text, Molecular::Smiles, Some(what))?.0),
            Tokenizer::Selfies(t) => Ok(t.encode(text, Molecular::Selfies, Some(what))?.0),
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
            Tokenizer::Smiles(t) | Tokenizer::Selfies(t) => t.decode(tokens),
        }
    }

    /// The tokenizer as Hugging Face's `tokenizer.json` (None for the character tokenizer, which
    /// genlab records in `run.json` alone).
    pub fn hf_json(&self) -> Option<String> {
        match self {
            Tokenizer::Char(_) | Tokenizer::Smiles(_) | Tokenizer::Selfies(_) => None,
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
            Tokenizer::Smiles(t) => format!(
                "SMILES atom-level tokens ({} of the training molecules, the line end and <unk>)",
                t.tokens.len() - 1
            ),
            Tokenizer::Selfies(t) => {
                format!("SELFIES symbols ({} of the training molecules, the line end and <unk>)", t.tokens.len() - 1)
            }
        }
    }

    /// The line end's token of a molecule tokenizer (None for text).
    pub fn molecule_end(&self) -> Option<u32> {
        match self {
            Tokenizer::Smiles(t) | Tokenizer::Selfies(t) => Some(t.end()),
            _ => None,
        }
    }

    /// The tokens a molecule's line may not begin with: a SELFIES string's branch and ring symbols
    /// (every SELFIES line of the data begins with an atom, and one that does decodes to at least
    /// one atom); none for other tokenizers.
    pub fn not_first(&self) -> Vec<u32> {
        match self {
            Tokenizer::Selfies(t) => (0..t.tokens.len() as u32)
                .filter(|&i| {
                    let s = &t.tokens[i as usize];
                    s.contains("Branch") || s.contains("Ring")
                })
                .collect(),
            _ => vec![],
        }
    }

    /// Whether the tokenizer writes molecules as SELFIES.
    pub fn is_selfies(&self) -> bool {
        matches!(self, Tokenizer::Selfies(_))
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

    /// The SMILES tokenizer: atom-level tokens of the training lines and the line end; the text
    /// round-trips; an unseen token is `<unk>` in data and refused, named, in a prompt; it is
    /// stored as its token list.
    #[test]
    fn smiles_tokens_round_trip_and_unseen_ones_follow_the_policy() {
        let t = TokenizerSpec::Smiles.fit("CC(=O)Cl\nc1ccccc1Br\n").unwrap();
        let Tokenizer::Smiles(list) = &t else { panic!("{t:?}") };
        assert_eq!(list.tokens(), ["(", ")", "1", "=", "Br", "C", "Cl", "O", "c", "\n"]);
        assert_eq!((t.vocab_size(), t.molecule_end(), t.is_selfies()), (11, Some(9), false));
        let (ids, unknown) = t.encode_lossy("CC(=O)Cl\nc1ccccc1Br\n");
        assert_eq!(unknown, 0);
        assert_eq!(&ids[..7], [5, 5, 0, 3, 7, 1, 6]);
        assert_eq!(ids[7], 9);
        assert_eq!(t.decode(&ids), "CC(=O)Cl\nc1ccccc1Br\n");
        // [nH] and N are unseen: <unk> each in data, refused by name in a prompt.
        let (ids, unknown) = t.encode_lossy("c1cc[nH]c1N");
        assert_eq!((unknown, ids.iter().filter(|&&i| i == 10).count()), (2, 2));
        let e = t.encode_strict("CCN", "--prompt").unwrap_err().to_string();
        assert!(e.contains("--prompt: token \"N\" is not in the model's vocabulary of 10 tokens"), "{e}");
        let e = t.encode_strict("CC%1", "--prompt").unwrap_err().to_string();
        assert!(e.contains("--prompt") && e.contains("%"), "{e}");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, r#"{"smiles":{"tokens":["(",")","1","=","Br","C","Cl","O","c","\n"]}}"#);
        assert_eq!(serde_json::from_str::<Tokenizer>(&json).unwrap(), t);
        let e = TokenizerSpec::Smiles.fit("CC\nC[C\n").map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("training molecule 2"), "{e}");
    }

    /// The SELFIES tokenizer: one token per bracketed symbol.
    #[test]
    fn selfies_symbols_are_tokens() {
        let t = TokenizerSpec::Selfies.fit("[C][=C][Branch1][C][O]\n[N]\n").unwrap();
        let Tokenizer::Selfies(list) = &t else { panic!("{t:?}") };
        assert_eq!(list.tokens(), ["[=C]", "[Branch1]", "[C]", "[N]", "[O]", "\n"]);
        assert!(t.is_selfies());
        let (ids, unknown) = t.encode_lossy("[C][O]\n[F]");
        assert_eq!((ids, unknown), (vec![2, 4, 5, 6], 1));
        assert_eq!(t.decode(&[2, 4, 5, 3]), "[C][O]\n[N]");
        assert_eq!(t.not_first(), [1]);
        assert!(TokenizerSpec::Smiles.fit("C1CC1\n").unwrap().not_first().is_empty());
    }
}
