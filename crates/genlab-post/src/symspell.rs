//! A spelling corrector against a vocabulary, by symmetric deletes (Garbe's SymSpell, 2012): every
//! word of the vocabulary is stored under the strings it becomes after deleting up to `max_distance`
//! characters (of its first `prefix_length`), so a misspelling finds its candidates by looking up its
//! own deletes; candidates are ranked by the restricted Damerau-Levenshtein (optimal string
//! alignment) distance, then by how often the word occurs in the training text.
//!
//! Words are matched lowercase and given back in the case pattern of the input (`ROMEO`, `Romeo`,
//! `romeo`), and a line is corrected word by word, leaving everything that is not a word as it was.

use std::collections::{HashMap, HashSet};

/// A vocabulary with its delete index.
#[derive(Debug, Clone)]
pub struct SymSpell {
    max_distance: usize,
    prefix_length: usize,
    counts: HashMap<String, u64>,
    deletes: HashMap<String, Vec<u32>>,
    words: Vec<String>,
}

impl SymSpell {
    /// The index of `counts` (word -> occurrences; words lowercase). SymSpell's defaults are a
    /// distance of 2 and a prefix of 7.
    pub fn new(counts: HashMap<String, u64>, max_distance: usize, prefix_length: usize) -> SymSpell {
        let prefix_length = prefix_length.max(max_distance + 1);
        let mut words: Vec<String> = counts.keys().cloned().collect();
        words.sort();
        let mut deletes: HashMap<String, Vec<u32>> = HashMap::new();
        for (id, word) in words.iter().enumerate() {
            let prefix: String = word.chars().take(prefix_length).collect();
            for key in edits(&prefix, max_distance) {
                deletes.entry(key).or_default().push(id as u32);
            }
        }
        SymSpell { max_distance, prefix_length, counts, deletes, words }
    }

    /// The vocabulary of a text: its words (see [`words`]) lowercase, with their counts.
    pub fn from_text(text: &str, max_distance: usize, prefix_length: usize) -> SymSpell {
        let mut counts: HashMap<String, u64> = HashMap::new();
        for (_, word) in words(text) {
            *counts.entry(word.to_lowercase()).or_default() += 1;
        }
        SymSpell::new(counts, max_distance, prefix_length)
    }

    pub fn contains(&self, word: &str) -> bool {
        self.counts.contains_key(&word.to_lowercase())
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The closest vocabulary word to `word` (lowercase) within the maximum distance, nearest first
    /// and then most frequent (ties broken alphabetically); `None` when nothing is that close.
    pub fn best(&self, word: &str) -> Option<(&str, usize)> {
        let word = word.to_lowercase();
        if self.counts.contains_key(&word) {
            let id = self.words.binary_search(&word).expect("a counted word should be in the word list");
            return Some((&self.words[id], 0));
        }
        let chars: Vec<char> = word.chars().collect();
        let prefix: String = chars.iter().take(self.prefix_length).collect();
        let mut seen = HashSet::new();
        let mut best: Option<(usize, u64, u32)> = None;
        for key in edits(&prefix, self.max_distance) {
            let Some(ids) = self.deletes.get(&key) else { continue };
            for &id in ids {
                if !seen.insert(id) {
                    continue;
                }
                let candidate = &self.words[id as usize];
                let candidate_chars: Vec<char> = candidate.chars().collect();
                if candidate_chars.len().abs_diff(chars.len()) > self.max_distance {
                    continue;
                }
                let distance = osa_distance(&chars, &candidate_chars);
                if distance > self.max_distance {
                    continue;
                }
                let count = self.counts[candidate];
                let better = match best {
                    None => true,
                    Some((d, n, other)) => {
                        (distance, std::cmp::Reverse(count), candidate)
                            < (d, std::cmp::Reverse(n), &self.words[other as usize])
                    }
                };
                if better {
                    best = Some((distance, count, id));
                }
            }
        }
        best.map(|(distance, _, id)| (self.words[id as usize].as_str(), distance))
    }

    /// The line with each word outside the vocabulary replaced by its best correction (in the
    /// word's case pattern); words with no correction within reach stay as they are.
    pub fn correct_line(&self, line: &str) -> String {
        let mut out = String::with_capacity(line.len());
        let mut last = 0;
        for (start, word) in words(line) {
            out.push_str(&line[last..start]);
            match self.best(word) {
                Some((fix, d)) if d > 0 => out.push_str(&in_case_of(word, fix)),
                _ => out.push_str(word),
            }
            last = start + word.len();
        }
        out.push_str(&line[last..]);
        out
    }
}

/// The words of a text with their byte offsets: runs of letters, with apostrophes inside a word
/// (`o'er`, `'tis` keeps only `tis`).
pub fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut spans = Vec::new();
    let mut start: Option<usize> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let inside = c.is_alphabetic()
            || (c == '\'' && start.is_some() && chars.peek().is_some_and(|&(_, next)| next.is_alphabetic()));
        match (inside, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                spans.push((s, &text[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, &text[s..]));
    }
    spans.into_iter()
}

/// `fix` in the case pattern of `word`: all capitals, a capital first, or as it is.
fn in_case_of(word: &str, fix: &str) -> String {
    let letters: Vec<char> = word.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.len() > 1 && letters.iter().all(|c| c.is_uppercase()) {
        fix.to_uppercase()
    } else if letters.first().is_some_and(|c| c.is_uppercase()) {
        let mut chars = fix.chars();
        chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
    } else {
        fix.to_string()
    }
}

/// The word and every string it becomes by deleting up to `max` characters.
fn edits(word: &str, max: usize) -> HashSet<String> {
    let mut all = HashSet::from([word.to_string()]);
    let mut frontier = vec![word.to_string()];
    for _ in 0..max {
        let mut next = Vec::new();
        for w in &frontier {
            let chars: Vec<char> = w.chars().collect();
            for skip in 0..chars.len() {
                let shorter: String = chars.iter().enumerate().filter(|&(i, _)| i != skip).map(|(_, c)| c).collect();
                if all.insert(shorter.clone()) {
                    next.push(shorter);
                }
            }
        }
        frontier = next;
    }
    all
}

/// The restricted Damerau-Levenshtein distance: insertions, deletions, substitutions and swaps of
/// two neighbours, no substring edited twice.
pub fn osa_distance(a: &[char], b: &[char]) -> usize {
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const TEXT: &str = "First Citizen: Before we proceed any further, hear me speak. All: Speak, speak. \
        First Citizen: You are all resolved rather to die than to famish? All: Resolved. resolved. \
        First Citizen: First, you know Caius Marcius is chief enemy to the people. O'er the hills. \
        We know't, we know't. Let us kill him, and we'll have corn at our own price.";

    /// The best correction found by a scan of the whole vocabulary: the reference the index must
    /// agree with.
    fn brute_force<'a>(speller: &'a SymSpell, word: &str) -> Option<(&'a str, usize)> {
        let chars: Vec<char> = word.to_lowercase().chars().collect();
        speller
            .words
            .iter()
            .map(|w| (osa_distance(&chars, &w.chars().collect::<Vec<_>>()), std::cmp::Reverse(speller.counts[w]), w))
            .filter(|&(d, _, _)| d <= speller.max_distance)
            .min()
            .map(|(d, _, w)| (w.as_str(), d))
    }

    #[test]
    fn osa_distance_known_values() {
        let d = |a: &str, b: &str| osa_distance(&a.chars().collect::<Vec<_>>(), &b.chars().collect::<Vec<_>>());
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("ca", "ac"), 1);
        assert_eq!(d("ca", "abc"), 3); // the restricted distance (unrestricted: 2)
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("speak", "speak"), 0);
    }

    /// Random corruptions (deletes, inserts, substitutions, swaps) of vocabulary words corrected
    /// through the delete index and by the full scan: the same word and distance every time.
    #[test]
    fn the_index_finds_what_a_full_scan_finds() {
        let speller = SymSpell::from_text(TEXT, 2, 7);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let alphabet: Vec<char> = "abcdefghijklmnopqrstuvwxyz'".chars().collect();
        for _ in 0..2000 {
            let word = &speller.words[rng.gen_range(0..speller.words.len())];
            let mut chars: Vec<char> = word.chars().collect();
            for _ in 0..rng.gen_range(1..=3) {
                let at = rng.gen_range(0..=chars.len());
                match rng.gen_range(0..4) {
                    0 if at < chars.len() => {
                        chars.remove(at);
                    }
                    1 => chars.insert(at, alphabet[rng.gen_range(0..alphabet.len())]),
                    2 if at < chars.len() => chars[at] = alphabet[rng.gen_range(0..alphabet.len())],
                    _ if at + 1 < chars.len() => chars.swap(at, at + 1),
                    _ => {}
                }
            }
            let typo: String = chars.into_iter().collect();
            assert_eq!(speller.best(&typo), brute_force(&speller, &typo), "{word} -> {typo}");
        }
    }

    #[test]
    fn lines_keep_case_punctuation_and_unreachable_words() {
        let speller = SymSpell::from_text(TEXT, 2, 7);
        assert_eq!(speller.correct_line("Frist Citizan: SPEEK, speek."), "First Citizen: SPEAK, speak.");
        assert_eq!(speller.correct_line("We knwo't, xylophone!"), "We know't, xylophone!");
        assert_eq!(speller.correct_line(""), "");
    }

    #[test]
    fn words_keep_inner_apostrophes_only() {
        let got: Vec<&str> = words("O'er 'tis we'll- know't' 12x").map(|(_, w)| w).collect();
        assert_eq!(got, vec!["O'er", "tis", "we'll", "know't", "x"]);
    }
}
