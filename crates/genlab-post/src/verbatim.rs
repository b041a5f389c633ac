//! Verbatim copies of the training text in generated text: an index of every `span`-character window
//! of the training text (by a 64-bit hash, each hit confirmed against the text itself, so a hash
//! collision never withholds a sample), and the longest training span a generated text contains.
//!
//! This is the text side of the memorisation filter: an output that repeats `span` or more
//! characters of the training text verbatim is withheld (Carlini et al. 2021 count extraction the
//! same way, by verbatim spans).

use std::collections::HashMap;

/// The training text's windows of `span` characters.
#[derive(Debug, Clone)]
pub struct SpanIndex {
    span: usize,
    text: Vec<char>,
    windows: HashMap<u64, Vec<u32>>,
}

/// Where a generated text repeats the training text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerbatimMatch {
    /// Character offset in the generated text.
    pub at: usize,
    /// Character offset in the training text.
    pub training_at: usize,
    /// Length of the repeated span in characters (at least the index's span).
    pub length: usize,
}

fn window_hash(chars: &[char]) -> u64 {
    // FNV-1a over the characters: cheap, and any collision is checked against the text.
    chars.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &c| (h ^ c as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

impl SpanIndex {
    /// Every window of `span` characters of `training` (span >= 1).
    pub fn new(training: &str, span: usize) -> SpanIndex {
        let span = span.max(1);
        let text: Vec<char> = training.chars().collect();
        let mut windows: HashMap<u64, Vec<u32>> = HashMap::new();
        if text.len() >= span {
            for start in 0..=text.len() - span {
                windows.entry(window_hash(&text[start..start + span])).or_default().push(start as u32);
            }
        }
        SpanIndex { span, text, windows }
    }

    pub fn span(&self) -> usize {
        self.span
    }

    /// The first place where `generated` repeats `span` or more training characters, grown to the
    /// longest repeat from there; `None` when there is none.
    pub fn find(&self, generated: &str) -> Option<VerbatimMatch> {
        let chars: Vec<char> = generated.chars().collect();
        if chars.len() < self.span {
            return None;
        }
        for at in 0..=chars.len() - self.span {
            let window = &chars[at..at + self.span];
            let Some(starts) = self.windows.get(&window_hash(window)) else { continue };
            let mut best: Option<VerbatimMatch> = None;
            for &start in starts {
                let start = start as usize;
                if &self.text[start..start + self.span] != window {
                    continue;
                }
                let length = chars[at..].iter().zip(&self.text[start..]).take_while(|(a, b)| a == b).count();
                if best.as_ref().is_none_or(|b| length > b.length) {
                    best = Some(VerbatimMatch { at, training_at: start, length });
                }
            }
            if best.is_some() {
                return best;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The reference: every substring of `span` characters of the generated text searched in the
    /// training text by `str::find`.
    fn naive(training: &str, generated: &str, span: usize) -> Option<usize> {
        let chars: Vec<char> = generated.chars().collect();
        (0..=chars.len().saturating_sub(span))
            .filter(|&at| at + span <= chars.len())
            .find(|&at| training.contains(&chars[at..at + span].iter().collect::<String>()))
    }

    #[test]
    fn planted_spans_are_found_where_they_were_planted() {
        let training = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer \
                        the slings and arrows of outrageous fortune, or to take arms against a sea of troubles.";
        let index = SpanIndex::new(training, 20);
        let generated = "Methinks the slings and arrows of outrageous fortune, or so, my lord.";
        let m = index.find(generated).unwrap();
        assert_eq!(&generated[m.at..m.at + m.length], " the slings and arrows of outrageous fortune, or ");
        assert_eq!(&training[m.training_at..m.training_at + m.length], &generated[m.at..m.at + m.length]);
        assert_eq!(index.find("the slings and arrow"), Some(VerbatimMatch { at: 0, training_at: 85, length: 20 }));
        assert_eq!(index.find("the slings and arroz"), None);
        assert_eq!(index.find("short"), None);
    }

    /// Random texts over a small alphabet (so that repeats happen) against the naive search.
    #[test]
    fn agrees_with_a_naive_search() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut draw = |n: usize| -> String { (0..n).map(|_| ['a', 'b', 'é', ' '][rng.gen_range(0..4)]).collect() };
        let training = draw(3000);
        for span in [4, 6, 9] {
            let index = SpanIndex::new(&training, span);
            for _ in 0..200 {
                let generated = draw(30);
                assert_eq!(index.find(&generated).map(|m| m.at), naive(&training, &generated, span), "{generated:?}");
            }
        }
    }
}
