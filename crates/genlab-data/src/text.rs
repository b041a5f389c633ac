//! A text corpus (plain or gzipped UTF-8) with its character vocabulary.

use crate::error::{DataError, Result};
use crate::tokenizer::{Tokenizer, TokenizerSpec};
use std::path::Path;

#[derive(Debug, Clone)]
pub struct TextCorpus {
    pub name: String,
    pub text: String,
    /// Distinct characters, sorted.
    pub vocab: Vec<char>,
}

impl TextCorpus {
    pub fn read(path: &Path) -> Result<Self> {
        let text = crate::files::read_text(path)?;
        Ok(Self::from_text(&path.display().to_string(), text))
    }

    pub fn from_text(name: &str, text: String) -> Self {
        let mut vocab: Vec<char> = text.chars().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        vocab.sort();
        TextCorpus { name: name.to_string(), text, vocab }
    }

    /// Each character's index in the vocabulary.
    pub fn encode(&self) -> Vec<u32> {
        let index: std::collections::HashMap<char, u32> =
            self.vocab.iter().enumerate().map(|(i, &c)| (c, i as u32)).collect();
        self.text.chars().map(|c| index[&c]).collect()
    }
}

/// A corpus split into a training text and its held-out tail, with the tokenizer fitted on the
/// training text and both parts as tokens.
pub struct TextSplits {
    pub name: String,
    pub tokenizer: Tokenizer,
    pub train_text: std::sync::Arc<String>,
    pub eval_text: std::sync::Arc<String>,
    pub train: std::sync::Arc<Vec<u32>>,
    pub eval: std::sync::Arc<Vec<u32>>,
    /// Characters of the held-out text the tokenizer does not know (each read as `<unk>`).
    pub eval_unknown: usize,
    /// A molecule dataset's molecules as SMILES (its texts hold them one per line, as SMILES or
    /// SELFIES by the tokenizer).
    pub molecules: Option<std::sync::Arc<crate::molecules::MoleculeSet>>,
}

impl TextCorpus {
    /// The text with the last `fraction` of its characters held out (nanoGPT's contiguous
    /// split), the tokenizer `spec` fitted on the rest, and both parts encoded; fails on a
    /// corpus of fewer than 2 characters.
    pub fn split(self, fraction: f64, spec: TokenizerSpec) -> Result<TextSplits> {
        let chars = self.text.chars().count();
        if chars < 2 {
            return Err(DataError::Config(format!(
                "{}: {chars} character(s); a training text and a held-out tail need at least 2",
                self.name
            )));
        }
        let held = ((chars as f64 * fraction).round() as usize).clamp(1, chars - 1);
        let cut = self.text.char_indices().nth(chars - held).map_or(self.text.len(), |(i, _)| i);
        let (train_text, eval_text) = self.text.split_at(cut);
        TextSplits::fit(&self.name, train_text.to_string(), eval_text.to_string(), spec, None)
    }
}

impl TextSplits {
    /// The tokenizer `spec` fitted on `train_text`, and both texts encoded (the held-out text's
    /// unseen tokens counted as `<unk>`).
    pub fn fit(
        name: &str,
        train_text: String,
        eval_text: String,
        spec: TokenizerSpec,
        molecules: Option<std::sync::Arc<crate::molecules::MoleculeSet>>,
    ) -> Result<TextSplits> {
        let tokenizer = spec.fit(&train_text)?;
        let (train, _) = tokenizer.encode_lossy(&train_text);
        let (eval, eval_unknown) = tokenizer.encode_lossy(&eval_text);
        Ok(TextSplits {
            name: name.to_string(),
            train_text: std::sync::Arc::new(train_text),
            eval_text: std::sync::Arc::new(eval_text),
            tokenizer,
            train: std::sync::Arc::new(train),
            eval: std::sync::Arc::new(eval),
            eval_unknown,
            molecules,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendored_shakespeare_reads() {
        let c = TextCorpus::read(&crate::source::data_dir().join("shakespeare/shakespeare.txt.gz")).unwrap();
        assert_eq!(c.text.len(), 5_057_282);
        assert_eq!(c.vocab.len(), 84);
        assert!(c.text.contains("To be, or not to be"));
    }

    #[test]
    fn the_split_is_contiguous_and_the_vocabulary_is_the_training_text_s() {
        let s = TextCorpus::from_text("t", "abcabcabcz".into()).split(0.1, TokenizerSpec::Char).unwrap();
        assert_eq!((s.train_text.as_str(), s.eval_text.as_str()), ("abcabcabc", "z"));
        assert_eq!(s.tokenizer.vocab_size(), 4); // a b c <unk>
        assert_eq!((s.eval.as_slice(), s.eval_unknown), (&[3u32][..], 1));
        assert_eq!(s.train.len(), 9);
        assert!(TextCorpus::from_text("t", "a".into()).split(0.1, TokenizerSpec::Char).is_err());
    }

    #[test]
    fn encode_uses_sorted_vocabulary() {
        let c = TextCorpus::from_text("t", "abca".into());
        assert_eq!(c.vocab, vec!['a', 'b', 'c']);
        assert_eq!(c.encode(), vec![0, 1, 2, 0]);
    }
}
