//! Language models: a decoder-only transformer ([`gpt`]) and the token-by-token generation loop
//! every autoregressive model shares ([`generate`]), with the sampling controls of
//! [`sampling`].
//!
//! Context sliding: a model with a block size sees at most that many tokens. When the prompt
//! and the text generated so far fill it, generation keeps the newest half of the tokens and
//! re-reads them into a fresh cache before going on (llama.cpp's context shift): the cost is one
//! prefill per half block, not a full forward pass per token. The uncached reference follows
//! the same policy, so the two give the same tokens.

pub mod gpt;
pub mod rnn;
pub mod sampling;
pub mod seq2seq;
pub mod watermark;

use burn::tensor::{Device, Int, TensorData};
use burn::Tensor;
use genlab_core::SeededRng;
use sampling::Sampling;

/// A model that reads tokens one after another and predicts the next.
pub trait Autoregressive {
    /// What the model keeps of the tokens read so far (a KV cache, a recurrent state).
    type State;
    /// The most tokens the model can hold (its block size); None for a recurrent model.
    fn context(&self) -> Option<usize>;
    /// The state before any token.
    fn start(&self) -> Self::State;
    /// Reads `tokens` (at least one) after those in `state`; returns the next token's logits.
    fn feed(&self, state: &mut Self::State, tokens: &[u32]) -> Vec<f32>;
}

/// A model that generates many sequences side by side, one token of each per step.
pub trait BatchAutoregressive {
    /// What the model keeps of the sequences read so far.
    type BatchState;
    /// The most tokens a sequence may hold; None for a recurrent model.
    fn batch_context(&self) -> Option<usize>;
    /// The state of `n` empty sequences.
    fn start_batch(&self, n: usize) -> Self::BatchState;
    /// Reads one token per sequence; returns the next-token logits, `[n, vocab]` row-major.
    fn feed_batch(&self, state: &mut Self::BatchState, tokens: &[u32]) -> Vec<f32>;
}

/// Which lines [`sample_lines`] draws.
#[derive(Debug, Clone, Copy)]
pub struct LineSpec<'a> {
    pub count: usize,
    /// Lines drawn side by side.
    pub batch: usize,
    pub start: u32,
    pub end: u32,
    pub max_tokens: usize,
    pub banned: &'a [u32],
    pub not_first: &'a [u32],
}

/// `n` (`count`) sequences drawn side by side, `batch` at a time, each begun with the token `start` (which
/// they leave out) and ended at its first `end` (left out) or after `max_tokens` (capped by the
/// model's context), with the controls of `sampling`; the tokens of `banned` are never drawn, nor
/// `end` or those of `not_first` as a line's first token (a line holds at least one token, and
/// begins as the data's lines may). One seeded stream draws them all, so the lines depend on `seed`
/// and `batch`, not on the machine.
pub fn sample_lines<M: BatchAutoregressive>(
    model: &M,
    lines: &LineSpec<'_>,
    sampling: &Sampling,
    seed: u64,
    mut progress: impl FnMut(usize),
) -> Vec<Vec<u32>> {
    let LineSpec { count: n, batch, start, end, max_tokens, banned, not_first } = *lines;
    let max_tokens = model.batch_context().map_or(max_tokens, |c| max_tokens.min(c.saturating_sub(1)));
    let mut rng = SeededRng::stream(seed, GENERATION_STREAM);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let b = batch.max(1).min(n - out.len());
        let mut state = model.start_batch(b);
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); b];
        let mut done = vec![false; b];
        let mut input = vec![start; b];
        for _ in 0..max_tokens {
            let mut logits = model.feed_batch(&mut state, &input);
            let v = logits.len() / b;
            for i in 0..b {
                let row = &mut logits[i * v..(i + 1) * v];
                let first = if rows[i].is_empty() { not_first } else { &[] };
                for &t in banned.iter().chain(first).chain(rows[i].is_empty().then_some(&end)) {
                    if let Some(x) = row.get_mut(t as usize) {
                        *x = f32::NEG_INFINITY;
                    }
                }
                let next = sampling.pick(row, &rows[i], &mut rng);
                input[i] = next;
                if done[i] {
                    continue;
                }
                if next == end {
                    done[i] = true;
                } else {
                    rows[i].push(next);
                }
            }
            if done.iter().all(|&d| d) {
                break;
            }
        }
        out.extend(rows);
        progress(out.len());
    }
    out
}

/// Tokens as a `[1, n]` tensor.
pub(crate) fn int_tokens(tokens: &[u32], device: &Device) -> Tensor<2, Int> {
    let v: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
    Tensor::from_data(TensorData::new(v, [1, tokens.len()]), device)
}

/// What to generate after a prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub max_tokens: usize,
    pub sampling: Sampling,
    /// Generation ends at the first of these strings (which the text leaves out).
    pub stop: Vec<String>,
    /// Generation ends when this token is drawn (an end-of-sequence token, left out).
    pub end: Option<u32>,
    pub seed: u64,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// `max_tokens` were generated.
    Length,
    /// A stop string appeared, or the end token was drawn.
    Stop,
}

/// Generated tokens and their text.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub tokens: Vec<u32>,
    /// The decoded text, cut before a stop string.
    pub text: String,
    pub finish: Finish,
}

/// The random stream of generation.
const GENERATION_STREAM: u64 = 0x7e47;

/// Generates after `prompt` (at least one token, at most the model's context). `decode` turns
/// tokens into text; `on_text` receives the text as it is settled (streaming): text that could
/// still turn out to begin a stop string, or an incomplete character, is held back until it
/// cannot.
pub fn generate<M: Autoregressive>(
    model: &M,
    prompt: &[u32],
    g: &Generation,
    decode: &dyn Fn(&[u32]) -> String,
    on_text: &mut dyn FnMut(&str),
) -> Generated {
    let context = model.context();
    assert!(!prompt.is_empty(), "generation needs a prompt of at least one token");
    assert!(context.is_none_or(|c| prompt.len() <= c), "a prompt should fit in the model's context");
    let mut rng = SeededRng::stream(g.seed, GENERATION_STREAM);
    let hold = g.stop.iter().map(|s| s.chars().count()).max().unwrap_or(1).saturating_sub(1);
    let mut history = prompt.to_vec();
    let mut window = prompt.to_vec();
    let mut state = model.start();
    let mut logits = model.feed(&mut state, &window);
    let (mut tokens, mut text, mut streamed) = (Vec::new(), String::new(), 0usize);
    let mut finish = Finish::Length;
    for i in 0..g.max_tokens {
        let next = g.sampling.pick(&logits, &history, &mut rng);
        if Some(next) == g.end {
            finish = Finish::Stop;
            break;
        }
        tokens.push(next);
        history.push(next);
        text = decode(&tokens);
        if let Some(at) = g.stop.iter().filter_map(|s| text.find(s.as_str())).min() {
            text.truncate(at);
            finish = Finish::Stop;
            break;
        }
        // Stream what can no longer change: all but a possible stop-string prefix and an
        // incomplete character (decoded as U+FFFD) at the end.
        let settled = text.trim_end_matches('\u{fffd}');
        let safe = settled.char_indices().rev().nth(hold.saturating_sub(1)).map_or(0, |(at, _)| at);
        let safe = if hold == 0 { settled.len() } else { safe };
        if safe > streamed {
            on_text(&text[streamed..safe]);
            streamed = safe;
        }
        if i + 1 == g.max_tokens {
            break;
        }
        if let Some(c) = context.filter(|&c| window.len() == c) {
            window.drain(..c - c / 2);
            state = model.start();
            if !window.is_empty() {
                model.feed(&mut state, &window);
            }
        }
        window.push(next);
        logits = model.feed(&mut state, &[next]);
    }
    if text.len() > streamed {
        on_text(&text[streamed..]);
    }
    Generated { tokens, text, finish }
}

#[cfg(test)]
mod batch_tests {
    use super::*;
    use crate::lm::gpt::GptConfig;
    use crate::lm::rnn::RnnLmConfig;

    /// Rows fed side by side get the logits each row gets fed alone, step after step.
    fn rows_match_single_sequences<M: Autoregressive + BatchAutoregressive>(m: &M, rows: &[Vec<u32>]) {
        let mut batch = m.start_batch(rows.len());
        let mut single: Vec<M::State> = rows.iter().map(|_| m.start()).collect();
        for t in 0..rows[0].len() {
            let tokens: Vec<u32> = rows.iter().map(|r| r[t]).collect();
            let side = m.feed_batch(&mut batch, &tokens);
            let v = side.len() / rows.len();
            for (i, s) in single.iter_mut().enumerate() {
                let alone = m.feed(s, &[rows[i][t]]);
                let err = alone.iter().zip(&side[i * v..(i + 1) * v]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
                assert!(err < 1e-5, "row {i}, step {t}: {err}");
            }
        }
    }

    /// Greedy lines drawn side by side are the lines `generate` writes one at a time from the same
    /// start token.
    fn greedy_lines_match_generate<M: Autoregressive + BatchAutoregressive>(m: &M, vocab: u32) {
        let (start, max) = (0u32, 12);
        let g = Generation { max_tokens: max, sampling: Sampling::greedy(), stop: vec![], end: None, seed: 0 };
        let expected = generate(m, &[start], &g, &|_| String::new(), &mut |_| {}).tokens;
        // `vocab` is no token: the lines run to `max`.
        let lines = sample_lines(
            m,
            &LineSpec { count: 5, batch: 2, start, end: vocab, max_tokens: max, banned: &[], not_first: &[] },
            &Sampling::greedy(),
            0,
            |_| {},
        );
        assert_eq!(lines.len(), 5);
        assert!(lines.iter().all(|l| *l == expected), "{lines:?} vs {expected:?}");
    }

    /// A model that prefers the token after the one it read (logit 2), then the one after that
    /// (logit 1), over a vocabulary of 9.
    struct Cycle;

    impl BatchAutoregressive for Cycle {
        type BatchState = ();
        fn batch_context(&self) -> Option<usize> {
            None
        }
        fn start_batch(&self, _: usize) {}
        fn feed_batch(&self, _: &mut (), tokens: &[u32]) -> Vec<f32> {
            let mut logits = vec![0.0; tokens.len() * 9];
            for (i, &t) in tokens.iter().enumerate() {
                logits[i * 9 + ((t + 1) % 9) as usize] = 2.0;
                logits[i * 9 + ((t + 2) % 9) as usize] = 1.0;
            }
            logits
        }
    }

    /// Lines end at the end token (left out), never before their first token, never hold a banned
    /// token, and stop at `max_tokens`.
    #[test]
    fn lines_end_at_the_end_token_and_skip_banned_ones() {
        let greedy = Sampling::greedy();
        assert_eq!(
            sample_lines(
                &Cycle,
                &LineSpec { count: 2, batch: 2, start: 0, end: 4, max_tokens: 20, banned: &[], not_first: &[] },
                &greedy,
                0,
                |_| {}
            ),
            vec![vec![1, 2, 3]; 2]
        );
        // The end is the start's successor: banned as a first token, the next best is drawn.
        assert_eq!(
            sample_lines(
                &Cycle,
                &LineSpec { count: 1, batch: 1, start: 3, end: 4, max_tokens: 20, banned: &[], not_first: &[] },
                &greedy,
                0,
                |_| {}
            ),
            vec![vec![5, 6, 7, 8, 0, 1, 2, 3]]
        );
        assert_eq!(
            sample_lines(
                &Cycle,
                &LineSpec { count: 1, batch: 1, start: 0, end: 4, max_tokens: 20, banned: &[2], not_first: &[] },
                &greedy,
                0,
                |_| {}
            ),
            vec![vec![1, 3]]
        );
        assert_eq!(
            sample_lines(
                &Cycle,
                &LineSpec { count: 3, batch: 2, start: 0, end: 99, max_tokens: 5, banned: &[], not_first: &[] },
                &greedy,
                0,
                |_| {}
            ),
            vec![vec![1, 2, 3, 4, 5]; 3]
        );
        // Tokens a line may not begin with: the first is the best of the others, the rest are free.
        assert_eq!(
            sample_lines(
                &Cycle,
                &LineSpec { count: 1, batch: 1, start: 0, end: 4, max_tokens: 20, banned: &[], not_first: &[1] },
                &greedy,
                0,
                |_| {}
            ),
            vec![vec![2, 3]]
        );
        assert_eq!(
            sample_lines(
                &Cycle,
                &LineSpec { count: 1, batch: 1, start: 8, end: 4, max_tokens: 20, banned: &[], not_first: &[0] },
                &greedy,
                0,
                |_| {}
            ),
            vec![vec![1, 2, 3]]
        );
    }

    #[test]
    fn batched_sampling_equals_one_sequence_at_a_time() {
        let dev = Device::flex();
        let rows = vec![vec![1u32, 4, 2, 7, 3], vec![5, 5, 0, 8, 1], vec![2, 6, 6, 3, 0]];
        let rnn =
            RnnLmConfig { hidden: 12, embedding: Some(8), layers: 2, ..Default::default() }.init(9, 0, &dev).unwrap();
        rows_match_single_sequences(&rnn, &rows);
        greedy_lines_match_generate(&rnn, 9);
        let gpt = GptConfig { layers: 2, heads: 2, width: 16, block_size: 16, ..Default::default() }
            .init(9, 1, &dev)
            .unwrap();
        rows_match_single_sequences(&gpt, &rows);
        greedy_lines_match_generate(&gpt, 9);
    }
}
