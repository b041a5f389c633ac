//! Sequence pairs made from a text for a sequence-to-sequence model: text correction (a line with
//! random character edits mapped back to the line) and infilling (a line with a span of words
//! replaced by a mask mapped to the span), drawn fresh for every batch from the lines of one
//! split only, so evaluation pairs come from text the model never trained on.
//!
//! The edits are those a typist makes, each character of a line edited with probability `rate`
//! by one of four, chosen uniformly: deletion, insertion of a random character of the alphabet,
//! substitution by one, or a swap with the next character.

use crate::batches::BatchSource;
use burn::tensor::{Device, Int, TensorData};
use burn::Tensor;
use genlab_core::SeededRng;
use serde_json::{json, Value};
use std::sync::Arc;

/// The lines of `text` a pair may come from: those of `min..=max` characters after trimming.
pub fn pair_lines(text: &str, min: usize, max: usize) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| (min..=max).contains(&l.chars().count())).map(String::from).collect()
}

/// `line` with each character edited with probability `rate`.
pub fn corrupt(line: &str, rate: f64, alphabet: &[char], rng: &mut SeededRng) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len() + 4);
    let mut i = 0;
    while i < chars.len() {
        if (rng.uniform() as f64) >= rate {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        match rng.below(4) {
            0 => i += 1,
            1 => {
                out.push(alphabet[rng.below(alphabet.len())]);
                out.push(chars[i]);
                i += 1;
            }
            2 => {
                out.push(alphabet[rng.below(alphabet.len())]);
                i += 1;
            }
            _ if i + 1 < chars.len() => {
                out.push(chars[i + 1]);
                out.push(chars[i]);
                i += 2;
            }
            _ => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

/// `line` parted around a span of 1 to 3 consecutive words: `(before, span, after)`, the span
/// without its surrounding spaces.
pub fn mask_span(line: &str, rng: &mut SeededRng) -> (String, String, String) {
    let words: Vec<&str> = line.split(' ').collect();
    let n = 1 + rng.below(3.min(words.len()));
    let start = rng.below(words.len() - n + 1);
    let before = words[..start].iter().map(|w| format!("{w} ")).collect();
    let span = words[start..start + n].join(" ");
    let after = words[start + n..].iter().map(|w| format!(" {w}")).collect();
    (before, span, after)
}

/// Which task a pair is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairTask {
    Correct,
    Infill,
}

/// One pair as text: the source (with `mask` standing for an infilling span) and the target.
#[derive(Debug, Clone, PartialEq)]
pub struct TextPair {
    pub task: PairTask,
    /// For infilling, the text before and after the span; for correction, the corrupted line.
    pub source: Vec<String>,
    pub target: String,
}

/// Draws one pair from `line`: infilling with probability `infill`, correction otherwise.
pub fn draw_pair(line: &str, rate: f64, infill: f64, alphabet: &[char], rng: &mut SeededRng) -> TextPair {
    if (rng.uniform() as f64) >= infill {
        TextPair { task: PairTask::Correct, source: vec![corrupt(line, rate, alphabet, rng)], target: line.to_string() }
    } else {
        let (before, span, after) = mask_span(line, rng);
        TextPair { task: PairTask::Infill, source: vec![before, after], target: span }
    }
}

/// Turns a pair into token ids: `(source, target)` where the target starts with BOS and ends
/// with EOS. The caller's `encode` maps text to ids (unseen characters to `<unk>`).
pub type PairEncoder = dyn Fn(&TextPair) -> (Vec<u32>, Vec<u32>) + Send + Sync;

/// Batches of freshly drawn pairs from `lines`, padded with `pad`: `(source [b, s], target [b, t])`.
/// Batch `i` is drawn from its own stream (seed, i), so the state is the batch count alone.
pub struct PairBatches {
    lines: Arc<Vec<String>>,
    alphabet: Vec<char>,
    rate: f64,
    infill: f64,
    batch_size: usize,
    pad: u32,
    encode: Arc<PairEncoder>,
    seed: u64,
    drawn: u64,
}

impl PairBatches {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        lines: Arc<Vec<String>>,
        alphabet: Vec<char>,
        (rate, infill): (f64, f64),
        batch_size: usize,
        pad: u32,
        encode: Arc<PairEncoder>,
        seed: u64,
    ) -> Self {
        PairBatches { lines, alphabet, rate, infill, batch_size, pad, encode, seed, drawn: 0 }
    }
}

/// Token sequences padded with `pad` into one `[n, longest]` tensor.
pub fn padded(seqs: &[Vec<u32>], pad: u32, device: &Device) -> Tensor<2, Int> {
    let len = seqs.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let v: Vec<i64> =
        seqs.iter().flat_map(|s| s.iter().copied().chain(std::iter::repeat(pad)).take(len).map(i64::from)).collect();
    Tensor::from_data(TensorData::new(v, [seqs.len(), len]), device)
}

impl BatchSource for PairBatches {
    type Batch = (Tensor<2, Int>, Tensor<2, Int>);

    fn next_batch(&mut self, device: &Device) -> Self::Batch {
        let mut rng = SeededRng::stream(self.seed, 0x9a17_0000 + self.drawn);
        self.drawn += 1;
        let (src, tgt): (Vec<Vec<u32>>, Vec<Vec<u32>>) = (0..self.batch_size)
            .map(|_| {
                let line = &self.lines[rng.below(self.lines.len())];
                (self.encode)(&draw_pair(line, self.rate, self.infill, &self.alphabet, &mut rng))
            })
            .unzip();
        (padded(&src, self.pad, device), padded(&tgt, self.pad, device))
    }

    fn state(&self) -> Value {
        json!({ "drawn": self.drawn })
    }

    fn restore(&mut self, state: Value) -> Result<(), String> {
        self.drawn = state["drawn"].as_u64().ok_or_else(|| format!("pair batches: no batch count in {state}"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corruption_edits_at_the_rate_and_spans_part_the_line() {
        let alphabet: Vec<char> = "abcdefghijklmnopqrstuvwxyz ".chars().collect();
        let line = "to be or not to be that is the question";
        let mut rng = SeededRng::new(0);
        assert_eq!(corrupt(line, 0.0, &alphabet, &mut rng), line);
        let changed = (0..200).filter(|_| corrupt(line, 0.1, &alphabet, &mut rng) != line).count();
        assert!(changed > 150, "{changed} of 200 lines changed at rate 0.1");
        for _ in 0..50 {
            let (b, s, a) = mask_span(line, &mut rng);
            assert_eq!(format!("{b}{s}{a}"), line);
            assert!((1..=3).contains(&s.split(' ').count()) && !s.starts_with(' '));
        }
        assert_eq!(pair_lines("  short\nthis line is long enough\n\n", 10, 30), vec!["this line is long enough"]);
    }

    #[test]
    fn pair_batches_resume() {
        let lines = Arc::new(vec!["the first line".to_string(), "and the second one".to_string()]);
        let enc: Arc<PairEncoder> = Arc::new(|p: &TextPair| {
            (p.source.concat().bytes().map(u32::from).collect(), p.target.bytes().map(u32::from).collect())
        });
        let dev = Device::flex();
        let mut a = PairBatches::new(lines.clone(), vec!['x'], (0.2, 0.5), 3, 0, enc.clone(), 5);
        for _ in 0..4 {
            a.next_batch(&dev);
        }
        let mut b = PairBatches::new(lines, vec!['x'], (0.2, 0.5), 3, 0, enc, 5);
        b.restore(a.state()).unwrap();
        let (x, y) = (a.next_batch(&dev), b.next_batch(&dev));
        assert_eq!((x.0.to_data(), x.1.to_data()), (y.0.to_data(), y.1.to_data()));
    }
}
