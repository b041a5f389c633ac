//! A text corpus (plain or gzipped UTF-8) with its character vocabulary.

use crate::error::{DataError, Result};
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
        let bytes = crate::files::read_maybe_gzip(path)?;
        let text = String::from_utf8(bytes).map_err(|e| DataError::Invalid {
            path: path.to_path_buf(),
            reason: format!("not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()),
        })?;
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

/// A corpus as character tokens: a training stream and its held-out tail.
pub struct TextSplits {
    pub name: String,
    /// The characters, sorted; a token is an index into it.
    pub vocab: Vec<char>,
    pub train: std::sync::Arc<Vec<u32>>,
    pub eval: std::sync::Arc<Vec<u32>>,
}

impl TextCorpus {
    /// The tokens with the last `fraction` held out (nanoGPT's contiguous split); fails on a
    /// corpus of fewer than 2 characters.
    pub fn split(self, fraction: f64) -> Result<TextSplits> {
        let mut tokens = self.encode();
        if tokens.len() < 2 {
            return Err(DataError::Config(format!(
                "{}: {} character(s); a training stream and a held-out tail need at least 2",
                self.name,
                tokens.len()
            )));
        }
        let held = ((tokens.len() as f64 * fraction).round() as usize).clamp(1, tokens.len() - 1);
        let eval = tokens.split_off(tokens.len() - held);
        Ok(TextSplits {
            name: self.name,
            vocab: self.vocab,
            train: std::sync::Arc::new(tokens),
            eval: std::sync::Arc::new(eval),
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
    fn encode_uses_sorted_vocabulary() {
        let c = TextCorpus::from_text("t", "abca".into());
        assert_eq!(c.vocab, vec!['a', 'b', 'c']);
        assert_eq!(c.encode(), vec![0, 1, 2, 0]);
    }
}
