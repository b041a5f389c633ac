//! What the language-model families share: their `[model]` options, the validation loss over a
//! token stream (nats per token, bits per character, perplexity), the memorisation check of
//! generated text against the training text, and the sampling request they honour.

use crate::error::{PipelineError, Result};
use crate::family::{FamilyCard, FamilyOptions};
use crate::generate::GenerateRequest;
use burn::module::Module;
use burn::tensor::{Device, Int, TensorData};
use burn::Tensor;
use genlab_data::Tokenizer;
use genlab_models::lm::sampling::Sampling;
use genlab_models::lm::{Autoregressive, BatchAutoregressive, Generation};
use genlab_train::TrainStep;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;

mod family;
pub mod post_text;
pub mod watermark;
pub use family::LmFamily;

/// A language model as the pipeline trains, scores and samples it.
pub trait LanguageModel: Autoregressive + BatchAutoregressive + TrainStep<Batch = Tensor<2, Int>> + Module {
    /// log p of every token but each window's first, from the tokens before it in its window:
    /// `[batch * t]` for windows `[batch, t + 1]`.
    fn token_log_probs(&self, windows: Tensor<2, Int>) -> Tensor<1>;
}

impl LanguageModel for genlab_models::lm::gpt::Gpt {
    fn token_log_probs(&self, windows: Tensor<2, Int>) -> Tensor<1> {
        genlab_models::lm::gpt::Gpt::token_log_probs(self, windows, None)
    }
}

impl LanguageModel for genlab_models::lm::rnn::RnnLm {
    fn token_log_probs(&self, windows: Tensor<2, Int>) -> Tensor<1> {
        genlab_models::lm::rnn::RnnLm::token_log_probs(self, windows, None)
    }
}

/// A language-model family's network config: a family folder implements it, and [`LmFamily`]
/// does the rest.
pub trait LmNetwork: Serialize + DeserializeOwned + Clone + Debug + 'static {
    type Model: LanguageModel;
    const CARD: FamilyCard;
    fn check(&self) -> std::result::Result<(), genlab_models::ModelError>;
    fn init(
        &self,
        vocab: usize,
        seed: u64,
        device: &Device,
    ) -> std::result::Result<Self::Model, genlab_models::ModelError>;
    /// Tokens per training window (and per scored window).
    fn block_size(&self) -> usize;
    /// The most tokens a prompt may hold; None when unlimited.
    fn context(&self) -> Option<usize>;
    /// The model, in words.
    fn describe(&self) -> String;
}

/// A text run's tokenizer, from the data facts it recorded.
pub fn run_tokenizer(tokenizer: &Option<Tokenizer>) -> Result<&Tokenizer> {
    tokenizer.as_ref().ok_or_else(|| PipelineError::Run("the run records no tokenizer (not a text run)".into()))
}

/// One optimiser with AdamW's weight decay on weight matrices and embeddings only, as nanoGPT's
/// `configure_optimizers` groups them: the transformer language models'.
pub fn matrix_decay_optimizers(exp: &crate::experiment::Experiment) -> genlab_train::Optimizers {
    let t = &exp.train;
    genlab_train::Optimizers::new(vec![genlab_train::Optimizer::new(
        genlab_train::OptimizerKey::MODEL,
        t.optimizer,
        t.clip_grad_norm,
    )
    .decaying_matrices_only()])
}

/// A language model's own keys in `[model]`: the report's samples and `genlab sample`'s defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LmOptions {
    /// Temperatures of the report's samples.
    #[serde(default = "default_temperatures")]
    pub sample_temperatures: Vec<f64>,
    /// Tokens of each report sample, and `genlab sample`'s default `--max-tokens`.
    #[serde(default = "default_sample_tokens")]
    pub sample_tokens: usize,
    /// The prompt of the report's samples and of `genlab sample` without `--prompt`.
    #[serde(default = "newline")]
    pub sample_prompt: String,
    /// `genlab sample`'s default temperature.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Tokens generated at temperature 1 for the memorisation check (0 skips it).
    #[serde(default = "default_memorisation_tokens")]
    pub memorisation_tokens: usize,
}

fn default_temperatures() -> Vec<f64> {
    vec![0.5, 0.8, 1.0]
}
fn default_sample_tokens() -> usize {
    300
}
fn newline() -> String {
    "\n".into()
}
fn default_temperature() -> f64 {
    0.8
}
fn default_memorisation_tokens() -> usize {
    5000
}

impl FamilyOptions for LmOptions {
    const KEYS: &'static [&'static str] =
        &["sample_temperatures", "sample_tokens", "sample_prompt", "temperature", "memorisation_tokens"];
}

impl LmOptions {
    pub fn check(&self) -> std::result::Result<(), crate::experiment::KeyError> {
        let bad = |k: &str, v: String, e: &str| Err((format!("model.{k}"), format!(" = {v}: {e}")));
        if let Some(t) =
            self.sample_temperatures.iter().chain([&self.temperature]).find(|t| !(**t >= 0.0 && t.is_finite()))
        {
            return bad("temperature", t.to_string(), "expected finite temperatures >= 0");
        }
        if self.sample_tokens == 0 {
            return bad("sample_tokens", "0".into(), "expected at least 1");
        }
        if self.sample_prompt.is_empty() {
            return bad("sample_prompt", "\"\"".into(), "expected at least one character");
        }
        Ok(())
    }
}

/// The sampling controls of `request`, with the run's default temperature.
pub fn sampling(request: &GenerateRequest, options: &LmOptions) -> Sampling {
    Sampling {
        temperature: request.temperature.unwrap_or(options.temperature),
        top_k: request.top_k,
        top_p: request.top_p,
        repetition_penalty: request.repetition_penalty.unwrap_or(1.0),
        watermark: None,
    }
}

/// The prompt's tokens: `--prompt` (or the run's sample prompt), refused when the tokenizer
/// cannot encode it or when it is longer than the model's context.
pub fn prompt_tokens(
    request: &GenerateRequest,
    options: &LmOptions,
    tokenizer: &Tokenizer,
    context: Option<usize>,
) -> Result<Vec<u32>> {
    let text = request.prompt.as_deref().unwrap_or(&options.sample_prompt);
    if text.is_empty() {
        return Err(PipelineError::Config("--prompt: empty; expected at least one character".into()));
    }
    let tokens = tokenizer.encode_strict(text, "--prompt")?;
    if let Some(c) = context.filter(|&c| tokens.len() > c) {
        return Err(PipelineError::Config(format!(
            "--prompt: {} tokens; the model reads at most {c} (its block_size); give a shorter prompt",
            tokens.len()
        )));
    }
    Ok(tokens)
}

/// A model's loss over a token stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamLoss {
    /// Mean negative log-likelihood, nats per predicted token.
    pub nats_per_token: f64,
    /// The same total in bits per character of the predicted tokens' text.
    pub bits_per_char: f64,
    pub tokens: usize,
    pub chars: usize,
}

impl StreamLoss {
    pub fn perplexity(&self) -> f64 {
        self.nats_per_token.exp()
    }
}

/// `-log p` summed over `tokens` in consecutive windows of `block + 1` tokens that overlap by one
/// (so each token but the first is predicted exactly once, from the tokens before it in its
/// window), `batch` windows per call of `log_probs` (which returns log p of every token but each
/// window's first); at most `max_windows` windows. Characters are counted from the predicted
/// tokens' text, so bits per character compares character and BPE models.
pub fn stream_loss(
    tokens: &[u32],
    block: usize,
    max_windows: Option<usize>,
    batch: usize,
    tokenizer: &Tokenizer,
    device: &Device,
    mut log_probs: impl FnMut(Tensor<2, Int>) -> Vec<f32>,
) -> StreamLoss {
    let starts: Vec<usize> =
        (0..tokens.len().saturating_sub(1)).step_by(block).take(max_windows.unwrap_or(usize::MAX)).collect();
    let (mut nats, mut count, mut end) = (0.0f64, 0usize, 1usize);
    // Full windows go in batches; the last, shorter one alone.
    let full: Vec<usize> = starts.iter().copied().filter(|&s| s + block < tokens.len()).collect();
    let mut run = |group: &[usize], len: usize| {
        let v: Vec<i64> = group.iter().flat_map(|&s| tokens[s..s + len].iter().map(|&t| i64::from(t))).collect();
        let lp = log_probs(Tensor::from_data(TensorData::new(v, [group.len(), len]), device));
        nats -= lp.iter().map(|&v| v as f64).sum::<f64>();
        count += lp.len();
        end = end.max(group.iter().map(|&s| s + len).max().unwrap_or(1));
    };
    for group in full.chunks(batch.max(1)) {
        run(group, block + 1);
    }
    if let Some(&last) = starts.iter().find(|&&s| s + block >= tokens.len()) {
        run(&[last], tokens.len() - last);
    }
    // The predicted tokens are tokens[1..end], contiguous: their text, decoded whole.
    let chars = tokenizer.decode(&tokens[1..end]).chars().count();
    StreamLoss {
        nats_per_token: nats / count.max(1) as f64,
        bits_per_char: nats / std::f64::consts::LN_2 / chars.max(1) as f64,
        tokens: count,
        chars,
    }
}

/// Every suffix of the training text, sorted (a suffix array over its bytes): finds the longest
/// prefix of any string that occurs in the training text.
/// It holds its own copy of the text, so a server can keep it between requests.
pub struct TrainingIndex {
    text: Vec<u8>,
    suffixes: Vec<u32>,
}

impl TrainingIndex {
    pub fn new(text: &str) -> Self {
        let bytes = text.as_bytes().to_vec();
        let mut suffixes: Vec<u32> = (0..bytes.len() as u32).collect();
        suffixes.sort_unstable_by(|&a, &b| bytes[a as usize..].cmp(&bytes[b as usize..]));
        TrainingIndex { text: bytes, suffixes }
    }

    /// The length in bytes of the longest prefix of `s` found in the training text.
    pub fn longest_prefix(&self, s: &[u8]) -> usize {
        let common = |i: usize| {
            let t = &self.text[self.suffixes[i] as usize..];
            t.iter().zip(s).take_while(|(a, b)| a == b).count()
        };
        // The suffixes sharing the longest prefix with s sit next to where s would be inserted.
        let at = self.suffixes.partition_point(|&p| &self.text[p as usize..] < s);
        let mut best = 0;
        for i in [at.wrapping_sub(1), at] {
            if i < self.suffixes.len() {
                best = best.max(common(i));
            }
        }
        best
    }
}

/// How much of a generated text is copied from the training text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Memorisation {
    /// `window`-character windows of the generated text.
    pub windows: usize,
    pub window: usize,
    /// Those found verbatim in the training text.
    pub copied: usize,
    /// The longest span of the generated text found verbatim in the training text, in characters.
    pub longest: usize,
    pub longest_text: String,
}

impl Memorisation {
    pub fn fraction(&self) -> f64 {
        self.copied as f64 / self.windows.max(1) as f64
    }
}

/// The memorisation check of `generated` against `index` with windows of `window` characters.
pub fn memorisation(index: &TrainingIndex, generated: &str, window: usize) -> Memorisation {
    let chars: Vec<(usize, char)> = generated.char_indices().collect();
    let (mut copied, mut windows, mut longest, mut longest_at) = (0, 0, 0, 0);
    for (i, &(at, _)) in chars.iter().enumerate() {
        let bytes = index.longest_prefix(&generated.as_bytes()[at..]);
        let span = generated[at..at + bytes].chars().count();
        if i + window <= chars.len() {
            windows += 1;
            copied += usize::from(span >= window);
        }
        if span > longest {
            (longest, longest_at) = (span, at);
        }
    }
    let longest_text: String = generated[longest_at..].chars().take(longest).collect();
    Memorisation { windows, window, copied, longest, longest_text }
}

/// Characters in a window of the memorisation check (the issue's 50).
pub const MEMORISATION_WINDOW: usize = 50;

/// The report's loss table.
pub fn loss_table(l: &StreamLoss, exp: &crate::experiment::Experiment, step: u64, block: usize) -> String {
    format!(
        "| validation | nats per token | bits per character | perplexity | tokens | characters |\n|---|---|---|---|---|---|\n\
         | held-out tail | {:.4} | {:.4} | {:.3} | {} | {} |\n\n\
         Protocol: {} weights of step {step}; every token of the held-out text but the first, each predicted once from \
         the tokens before it in consecutive windows of {} tokens (`block_size + 1`, overlapping by one); bits per \
         character divide the same total by ln 2 and by the characters of the predicted tokens.\n\n",
        l.nats_per_token,
        l.bits_per_char,
        l.perplexity(),
        l.tokens,
        l.chars,
        exp.weights_word(),
        block + 1
    )
}

/// The report's samples, one fenced block per temperature.
pub fn samples_section(samples: &[(f64, String)], prompt: &str) -> String {
    let mut s = format!("### Samples\n\nAfter the prompt {prompt:?}, at each temperature (seed `eval.seed`):\n\n");
    for (t, text) in samples {
        s.push_str(&format!("Temperature {t}:\n\n```text\n{prompt}{text}\n```\n\n"));
    }
    s
}

/// The report's memorisation paragraph.
pub fn memorisation_section(m: &Memorisation, tokens: usize) -> String {
    format!(
        "### Memorisation\n\n{} of {} windows of {} characters ({:.2}%) in {tokens} tokens generated at temperature 1 \
         occur verbatim in the training text; the longest copied span is {} characters:\n\n```text\n{}\n```\n\n",
        m.copied,
        m.windows,
        m.window,
        100.0 * m.fraction(),
        m.longest,
        m.longest_text
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use genlab_data::CharTokenizer;

    #[test]
    fn memorisation_finds_copied_windows_and_the_longest_span() {
        let train = "the quick brown fox jumps over the lazy dog";
        let index = TrainingIndex::new(train);
        assert_eq!(index.longest_prefix(b"brown fox leaps"), "brown fox ".len());
        assert_eq!(index.longest_prefix(b"zebra"), 1); // the "z" of "lazy"
        assert_eq!(index.longest_prefix(b"#zebra"), 0);
        let m = memorisation(&index, "a quick brown cat", 5);
        // Windows of 5 characters: 13; copied: " quic", "quick", "uick ", "ick b", "ck br", "k bro",
        // " brow", "brown", "rown " (9); the longest copied span is " quick brown ".
        assert_eq!((m.windows, m.copied, m.longest, m.longest_text.as_str()), (13, 9, 13, " quick brown "));
    }

    /// Bits per character is nats per token / ln 2 for a character model, and each token but the
    /// first is scored once whatever the block.
    #[test]
    fn stream_loss_scores_each_token_once() {
        let tok = Tokenizer::Char(CharTokenizer::fit("abcd"));
        let tokens: Vec<u32> = (0..23).map(|i| i % 4).collect();
        let dev = Device::flex();
        for block in [1, 4, 7, 30] {
            // A "model" that gives every token log p = -(its id + 1).
            let loss = stream_loss(&tokens, block, None, 3, &tok, &dev, |w| {
                let [b, len] = w.dims();
                let v: Vec<i64> = w.into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
                (0..b).flat_map(|r| (1..len).map(move |c| r * len + c)).map(|i| -(v[i] as f32 + 1.0)).collect()
            });
            let want: f64 = tokens[1..].iter().map(|&t| t as f64 + 1.0).sum::<f64>() / 22.0;
            assert_eq!((loss.tokens, loss.chars), (22, 22), "block {block}");
            assert!((loss.nats_per_token - want).abs() < 1e-12);
            assert!((loss.bits_per_char - want / std::f64::consts::LN_2).abs() < 1e-12);
        }
    }
}
