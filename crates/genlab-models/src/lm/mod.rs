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
