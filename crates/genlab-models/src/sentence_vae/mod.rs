//! The sentence VAE of Bowman et al. 2016 (<https://arxiv.org/abs/1511.06349>): a recurrent
//! encoder reads a line into q(z | x), and a recurrent decoder, its initial state computed from z,
//! writes the line back token by token. Against posterior collapse (a decoder strong enough to
//! ignore z): the KL weight rises linearly from 0 over `kl_anneal_steps` (Bowman's annealing),
//! a fraction `word_dropout` of the decoder's input tokens is replaced by a blank token (Bowman's
//! word dropout), and the KL of each latent dimension counts at least `free_bits` nats (Kingma et
//! al. 2016, <https://arxiv.org/abs/1606.04934>).
//!
//! Token ids: `0..vocab` are the tokenizer's; `vocab` ends a line (and starts the decoder),
//! `vocab + 1` is the blank of word dropout, `vocab + 2` pads a batch's shorter lines.

use crate::error::ModelError;
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Int, TensorData};
use burn::Tensor;
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;
use genlab_nn::distributions::{diag_normal_log_prob, log_mean_exp, std_normal_log_prob};
use genlab_nn::init::{embedding, linear};
use genlab_nn::recurrent::{Cell, LayerState, RecurrentLayer};
use genlab_train::{StepContext, StepOutput, TrainStep};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentenceVaeConfig {
    #[serde(default = "lstm")]
    pub cell: Cell,
    #[serde(default = "default_embedding")]
    pub embedding: usize,
    #[serde(default = "default_hidden")]
    pub hidden: usize,
    #[serde(default = "default_latent")]
    pub latent_dim: usize,
    /// Fraction of the decoder's input tokens replaced by the blank during training.
    #[serde(default = "default_word_dropout")]
    pub word_dropout: f64,
    /// Steps over which the KL weight rises linearly from 0 to 1 (0: 1 from the start).
    #[serde(default = "default_anneal")]
    pub kl_anneal_steps: u64,
    /// The KL weight the annealing ends at (1: the ELBO; MOSES's molecular VAE ends at 0.05).
    #[serde(default = "one")]
    pub kl_weight_max: f64,
    /// The least KL (nats) each latent dimension is charged in training, as a batch mean.
    #[serde(default = "default_free_bits")]
    pub free_bits: f64,
}

fn lstm() -> Cell {
    Cell::Lstm
}
fn default_embedding() -> usize {
    64
}
fn default_hidden() -> usize {
    256
}
fn default_latent() -> usize {
    16
}
fn default_word_dropout() -> f64 {
    0.25
}
fn default_anneal() -> u64 {
    2000
}
fn one() -> f64 {
    1.0
}
fn default_free_bits() -> f64 {
    0.1
}

impl Default for SentenceVaeConfig {
    fn default() -> Self {
        SentenceVaeConfig {
            cell: Cell::Lstm,
            embedding: default_embedding(),
            hidden: default_hidden(),
            latent_dim: default_latent(),
            word_dropout: default_word_dropout(),
            kl_anneal_steps: default_anneal(),
            kl_weight_max: 1.0,
            free_bits: default_free_bits(),
        }
    }
}

impl SentenceVaeConfig {
    pub fn check(&self) -> Result<(), ModelError> {
        let bad =
            |field, value: String, expected: &str| Err(ModelError::Config { field, value, expected: expected.into() });
        for (field, v) in [("embedding", self.embedding), ("hidden", self.hidden), ("latent_dim", self.latent_dim)] {
            if v == 0 {
                return bad(field, "0".into(), "expected at least 1");
            }
        }
        if !(0.0..1.0).contains(&self.word_dropout) {
            return bad("word_dropout", self.word_dropout.to_string(), "expected a fraction in [0, 1)");
        }
        if !(self.kl_weight_max > 0.0 && self.kl_weight_max <= 1.0) {
            return bad("kl_weight_max", self.kl_weight_max.to_string(), "expected a weight in (0, 1]");
        }
        if !(self.free_bits >= 0.0 && self.free_bits.is_finite()) {
            return bad("free_bits", self.free_bits.to_string(), "expected a finite number of nats >= 0");
        }
        Ok(())
    }

    /// The model over a tokenizer of `vocab` tokens (three more are added), PyTorch's default
    /// initialisation, drawn from `seed`.
    pub fn init(&self, vocab: usize, seed: u64, device: &Device) -> Result<SentenceVae, ModelError> {
        self.check()?;
        let mut rng = SeededRng::stream(seed, 0x5e7e);
        let (e, h, l) = (self.embedding, self.hidden, self.latent_dim);
        Ok(SentenceVae {
            wte: embedding(&mut rng, vocab + 3, e, device),
            encoder: RecurrentLayer::new(self.cell, e, h, &mut rng, device),
            mu: linear(&mut rng, h, l, device),
            logvar: linear(&mut rng, h, l, device),
            latent_to_state: linear(&mut rng, l, h, device),
            decoder: RecurrentLayer::new(self.cell, e, h, &mut rng, device),
            head: linear(&mut rng, h, vocab + 3, device),
            vocab,
            latent_dim: l,
            word_dropout: self.word_dropout,
            kl_anneal_steps: self.kl_anneal_steps,
            kl_weight_max: self.kl_weight_max,
            free_bits: self.free_bits,
        })
    }
}

#[derive(Module, Debug)]
pub struct SentenceVae {
    /// One table for the encoder's and the decoder's inputs, `[vocab + 3, embedding]`.
    pub wte: Param<Tensor<2>>,
    pub encoder: RecurrentLayer,
    pub mu: Linear,
    pub logvar: Linear,
    /// z to the decoder's initial hidden state (through tanh).
    pub latent_to_state: Linear,
    pub decoder: RecurrentLayer,
    pub head: Linear,
    /// The tokenizer's vocabulary, without the three added tokens.
    pub vocab: usize,
    pub latent_dim: usize,
    pub word_dropout: f64,
    pub kl_anneal_steps: u64,
    pub kl_weight_max: f64,
    pub free_bits: f64,
}

/// A batch of lines: `tokens` `[batch, width]` holds each line's tokens, its end token, then
/// padding; `lengths` the tokens of each line (without the end).
#[derive(Debug, Clone)]
pub struct Lines {
    pub tokens: Vec<u32>,
    pub lengths: Vec<usize>,
    pub width: usize,
}

impl Lines {
    /// `lines` padded to the longest plus its end token.
    pub fn new(lines: &[&[u32]], end: u32) -> Self {
        let width = lines.iter().map(|l| l.len()).max().unwrap_or(0) + 1;
        let mut tokens = Vec::with_capacity(lines.len() * width);
        for l in lines {
            tokens.extend_from_slice(l);
            tokens.push(end);
            tokens.extend(std::iter::repeat_n(end + 2, width - l.len() - 1));
        }
        Lines { tokens, lengths: lines.iter().map(|l| l.len()).collect(), width }
    }

    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }
}

/// Per-line terms, nats.
pub struct LineTerms {
    /// -log p(x | z) at one z ~ q(z | x), `[batch]`.
    pub nll: Tensor<1>,
    /// KL(q(z | x) || p(z)) per dimension, `[batch, latent]`.
    pub kl: Tensor<2>,
    /// The posterior means, `[batch, latent]`.
    pub mu: Tensor<2>,
}

fn ints(v: Vec<i64>, shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

impl SentenceVae {
    pub fn end(&self) -> u32 {
        self.vocab as u32
    }

    fn blank(&self) -> u32 {
        self.vocab as u32 + 1
    }

    fn device(&self) -> Device {
        self.wte.device()
    }

    /// Mean and log-variance of q(z | line): the encoder's state after each line's end token.
    ///
    /// # Shapes
    /// -> `([batch, latent], [batch, latent])`
    pub fn encode(&self, lines: &Lines) -> (Tensor<2>, Tensor<2>) {
        let (b, w, d) = (lines.len(), lines.width, self.device());
        let x = ints(lines.tokens.iter().map(|&t| i64::from(t)).collect(), [b, w], &d);
        let emb = burn::tensor::module::embedding(self.wte.val(), x); // [b, w, e]
        let (out, _) = self.encoder.forward(emb, self.encoder.zero_state(b, &d)); // [b, w, hidden]
        let h = self.encoder.hidden();
        let at: Vec<i64> = lines.lengths.iter().flat_map(|&n| std::iter::repeat_n(n as i64, h)).collect();
        let last = out.gather(1, Tensor::<1, Int>::from_data(TensorData::new(at, [b * h]), &d).reshape([b, 1, h]));
        let last = last.reshape([b, h]); // the state after the end token
        (self.mu.forward(last.clone()), self.logvar.forward(last))
    }

    /// The decoder's initial state from z `[batch, latent]`.
    fn initial_state(&self, z: Tensor<2>) -> LayerState {
        let h = self.latent_to_state.forward(z).tanh();
        let c = self.decoder.zero_state(h.dims()[0], &h.device()).c;
        LayerState { h, c }
    }

    /// -log p(line | z) per line `[batch]`; the decoder's inputs are `[end, line...]`, with a
    /// fraction of the line's tokens blanked when `rng` is given (training).
    pub fn reconstruction_nll(&self, lines: &Lines, z: Tensor<2>, rng: Option<&mut SeededRng>) -> Tensor<1> {
        let (b, w, d) = (lines.len(), lines.width, self.device());
        let mut input = Vec::with_capacity(b * w);
        let mut rng = rng;
        for (row, &n) in lines.lengths.iter().enumerate() {
            input.push(i64::from(self.end()));
            for i in 0..w - 1 {
                let t = lines.tokens[row * w + i];
                let blank = i < n
                    && self.word_dropout > 0.0
                    && rng.as_deref_mut().is_some_and(|r| (r.uniform() as f64) < self.word_dropout);
                input.push(i64::from(if blank { self.blank() } else { t }));
            }
        }
        let emb = burn::tensor::module::embedding(self.wte.val(), ints(input, [b, w], &d)); // [b, w, e]
        let (out, _) = self.decoder.forward(emb, self.initial_state(z)); // [b, w, hidden]
        let logits = self.head.forward(out.reshape([b * w, self.decoder.hidden()])); // [b * w, V]
        let targets = Tensor::<1, Int>::from_data(
            TensorData::new(lines.tokens.iter().map(|&t| i64::from(t)).collect::<Vec<_>>(), [b * w]),
            &d,
        );
        let lp = genlab_nn::distributions::categorical_log_prob(logits, targets).reshape([b, w]);
        let mask: Vec<f32> =
            lines.lengths.iter().flat_map(|&n| (0..w).map(move |i| if i <= n { 1.0 } else { 0.0 })).collect();
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [b, w]), &d);
        (lp * mask).sum_dim(1).reshape([b]).neg()
    }

    /// The terms of the ELBO with the noise `eps` `[batch, latent]`.
    pub fn terms(&self, lines: &Lines, eps: Tensor<2>, rng: Option<&mut SeededRng>) -> LineTerms {
        let (mu, logvar) = self.encode(lines);
        let z = mu.clone() + (logvar.clone() * 0.5).exp() * eps;
        let kl = (logvar.clone().exp() + mu.clone().powi_scalar(2) - logvar - 1.0) * 0.5; // [b, latent]
        LineTerms { nll: self.reconstruction_nll(lines, z, rng), kl, mu }
    }

    /// The KL weight at 1-based `step`: rising linearly to `kl_weight_max`.
    pub fn kl_weight(&self, step: u64) -> f64 {
        let ramp = if self.kl_anneal_steps == 0 { 1.0 } else { (step as f64 / self.kl_anneal_steps as f64).min(1.0) };
        ramp * self.kl_weight_max
    }

    /// The training loss: mean reconstruction NLL plus `weight` times the KL, each dimension's
    /// batch mean charged at least `free_bits`. Returns (loss, mean NLL, mean KL).
    pub fn loss(&self, t: &LineTerms, weight: f64) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
        let nll = t.nll.clone().mean();
        let per_dim = t.kl.clone().mean_dim(0); // [1, latent]
        let kl = per_dim.clone().sum().reshape([1]);
        let charged =
            if self.free_bits > 0.0 { per_dim.clamp_min(self.free_bits).sum().reshape([1]) } else { kl.clone() };
        (nll.clone() + charged * weight, nll, kl)
    }

    /// The importance-weighted bound per line with `eps` `[k, batch, latent]`: log (1/k)
    /// sum_i p(x, z_i) / q(z_i | x).
    pub fn iwae_bound(&self, lines: &Lines, eps: Tensor<3>) -> Tensor<1> {
        let [k, b, l] = eps.dims();
        let (mu, logvar) = self.encode(lines);
        let rep = |t: Tensor<2>| t.unsqueeze_dim::<3>(0).expand([k, b, l]).reshape([k * b, l]);
        let (mu, logvar) = (rep(mu), rep(logvar));
        let z = mu.clone() + (logvar.clone() * 0.5).exp() * eps.reshape([k * b, l]); // [k * b, latent]
        let w = lines.width;
        let repeated = Lines {
            tokens: (0..k).flat_map(|_| lines.tokens.iter().copied()).collect(),
            lengths: (0..k).flat_map(|_| lines.lengths.iter().copied()).collect(),
            width: w,
        };
        let log_px = self.reconstruction_nll(&repeated, z.clone(), None).neg();
        let log_w = log_px + std_normal_log_prob(z.clone()) - diag_normal_log_prob(z, mu, logvar); // [k * b]
        log_mean_exp(log_w.reshape([k, b]), 0).reshape([b])
    }

    /// Lines decoded from each z `[n, latent]`, greedily or by `pick` over the tokenizer's
    /// tokens and the end token (the blank and the padding are never drawn), at most `max_len`
    /// tokens each; `pick` is given the logits and the position of the token it draws.
    pub fn decode(
        &self,
        z: Tensor<2>,
        max_len: usize,
        pick: &mut dyn FnMut(&mut [f32], usize) -> u32,
    ) -> Vec<Vec<u32>> {
        let n = z.dims()[0];
        let d = self.device();
        let v = self.vocab + 3;
        let mut state = self.initial_state(z);
        let mut lines = vec![Vec::new(); n];
        let mut done = vec![false; n];
        let mut input = vec![i64::from(self.end()); n];
        for position in 0..=max_len {
            let emb = burn::tensor::module::embedding(self.wte.val(), ints(input.clone(), [n, 1], &d)); // [n, 1, e]
            let (out, next) = self.decoder.forward(emb, state);
            state = next;
            let mut logits = to_f32_vec(self.head.forward(out.reshape([n, self.decoder.hidden()]))); // [n, V]
            for i in 0..n {
                let t = pick(&mut logits[i * v..i * v + self.vocab + 1], position);
                input[i] = i64::from(t);
                if !done[i] {
                    if t == self.end() || lines[i].len() == max_len {
                        done[i] = true;
                    } else {
                        lines[i].push(t);
                    }
                }
            }
            if done.iter().all(|&x| x) {
                break;
            }
        }
        lines
    }
}

/// The index of the largest value (the first on a tie).
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

impl TrainStep for SentenceVae {
    type Batch = Lines;

    fn train_step(self, lines: Lines, ctx: &mut StepContext<'_>) -> (Self, StepOutput) {
        let n = lines.len() * self.latent_dim;
        let eps = Tensor::from_data(TensorData::new(ctx.rng.normal_vec(n), [lines.len(), self.latent_dim]), ctx.device);
        let t = self.terms(&lines, eps, Some(ctx.rng));
        let weight = self.kl_weight(ctx.step);
        let (loss, nll, kl) = self.loss(&t, weight);
        let shown = to_f32_vec(Tensor::cat(vec![loss.clone().detach(), nll.detach(), kl.detach()], 0));
        let model = ctx.optimizers.get(genlab_train::OptimizerKey::MODEL).backward_step(self, loss);
        let scalars = vec![("nll", shown[1] as f64), ("kl", shown[2] as f64), ("kl_weight", weight)];
        (model, StepOutput { loss: shown[0] as f64, scalars })
    }
}

#[cfg(test)]
mod tests;
