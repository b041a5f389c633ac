//! An encoder-decoder transformer (Vaswani et al. 2017, <https://arxiv.org/abs/1706.03762>) in the
//! pre-LayerNorm arrangement of GPT-2's blocks: the encoder's blocks attend over the whole source
//! (padding hidden), the decoder's over the target so far (causal) and then over the encoder's
//! output (cross-attention); one token table shared by source, target and the tied output head,
//! learned positions, GPT-2's initialisation. It learns text correction and infilling
//! (`genlab_data::pairs`).
//!
//! Decoding keeps a cache ([`DecoderCache`]): each layer's self-attention keys and values grow by
//! one token per step, and its cross-attention keys and values are computed from the encoder's
//! output once. Greedy and sampled decoding run through the shared generation loop
//! ([`super::generate`]); beam search is [`beam_search`].

use super::gpt::Mlp;
use super::{int_tokens, Autoregressive};
use crate::error::ModelError;
use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, TensorData};
use burn::Tensor;
use genlab_core::SeededRng;
use genlab_nn::attention::{attention, causal_attention_with_dropout, merge_heads, padding_mask, split_heads};
use genlab_nn::distributions::categorical_log_prob;
use genlab_nn::dropout::dropout;
use genlab_nn::init::{normal_embedding, normal_linear};
use genlab_nn::linear::linear;
use genlab_train::{StepContext, StepOutput, TrainStep};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seq2SeqConfig {
    #[serde(default = "three")]
    pub encoder_layers: usize,
    #[serde(default = "three")]
    pub decoder_layers: usize,
    #[serde(default = "four")]
    pub heads: usize,
    #[serde(default = "default_width")]
    pub width: usize,
    /// The longest source and target, in tokens (the position table's rows).
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    #[serde(default)]
    pub dropout: f64,
}

fn three() -> usize {
    3
}
fn four() -> usize {
    4
}
fn default_width() -> usize {
    128
}
fn default_max_len() -> usize {
    96
}

impl Default for Seq2SeqConfig {
    fn default() -> Self {
        Seq2SeqConfig {
            encoder_layers: 3,
            decoder_layers: 3,
            heads: 4,
            width: default_width(),
            max_len: default_max_len(),
            dropout: 0.0,
        }
    }
}

impl Seq2SeqConfig {
    pub fn check(&self) -> Result<(), ModelError> {
        let bad = |field, value: String, expected: String| Err(ModelError::Config { field, value, expected });
        for (field, v) in [
            ("encoder_layers", self.encoder_layers),
            ("decoder_layers", self.decoder_layers),
            ("heads", self.heads),
            ("max_len", self.max_len),
        ] {
            if v == 0 {
                return bad(field, "0".into(), "expected at least 1".into());
            }
        }
        if self.width == 0 || !self.width.is_multiple_of(self.heads) {
            return bad(
                "width",
                self.width.to_string(),
                format!("expected a positive multiple of heads ({})", self.heads),
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", self.dropout.to_string(), "expected a value in [0, 1)".into());
        }
        Ok(())
    }

    /// The model over `vocab` tokens, `pad` among them, its weights drawn from `seed`.
    pub fn init(&self, vocab: usize, pad: u32, seed: u64, device: &Device) -> Result<Seq2Seq, ModelError> {
        self.check()?;
        let mut rng = SeededRng::stream(seed, 0x5e25);
        let d = self.width;
        let norm = |device: &Device| LayerNormConfig::new(d).with_bias(false).init(device);
        let enc_std = 0.02 / (2.0 * self.encoder_layers as f32).sqrt();
        let dec_std = 0.02 / (3.0 * self.decoder_layers as f32).sqrt();
        let wte = normal_embedding(&mut rng, vocab, d, 0.02, device);
        let wpe = normal_embedding(&mut rng, self.max_len, d, 0.02, device);
        let encoder = (0..self.encoder_layers)
            .map(|_| EncoderLayer {
                ln_1: norm(device),
                attn: SelfAttention {
                    qkv: normal_linear(&mut rng, d, 3 * d, 0.02, false, device),
                    proj: normal_linear(&mut rng, d, d, enc_std, false, device),
                },
                ln_2: norm(device),
                mlp: Mlp::new(&mut rng, d, enc_std, false, device),
            })
            .collect();
        let decoder = (0..self.decoder_layers)
            .map(|_| DecoderLayer {
                ln_1: norm(device),
                attn: SelfAttention {
                    qkv: normal_linear(&mut rng, d, 3 * d, 0.02, false, device),
                    proj: normal_linear(&mut rng, d, d, dec_std, false, device),
                },
                ln_2: norm(device),
                cross: CrossAttention {
                    q: normal_linear(&mut rng, d, d, 0.02, false, device),
                    kv: normal_linear(&mut rng, d, 2 * d, 0.02, false, device),
                    proj: normal_linear(&mut rng, d, d, dec_std, false, device),
                },
                ln_3: norm(device),
                mlp: Mlp::new(&mut rng, d, dec_std, false, device),
            })
            .collect();
        Ok(Seq2Seq {
            wte,
            wpe,
            encoder,
            ln_enc: norm(device),
            decoder,
            ln_dec: norm(device),
            heads: self.heads,
            max_len: self.max_len,
            dropout: self.dropout,
            pad: pad as usize,
        })
    }
}

#[derive(Module, Debug)]
pub struct SelfAttention {
    pub qkv: Linear,
    pub proj: Linear,
}

#[derive(Module, Debug)]
pub struct CrossAttention {
    pub q: Linear,
    pub kv: Linear,
    pub proj: Linear,
}

#[derive(Module, Debug)]
pub struct EncoderLayer {
    pub ln_1: LayerNorm,
    pub attn: SelfAttention,
    pub ln_2: LayerNorm,
    pub mlp: Mlp,
}

#[derive(Module, Debug)]
pub struct DecoderLayer {
    pub ln_1: LayerNorm,
    pub attn: SelfAttention,
    pub ln_2: LayerNorm,
    pub cross: CrossAttention,
    pub ln_3: LayerNorm,
    pub mlp: Mlp,
}

#[derive(Module, Debug)]
pub struct Seq2Seq {
    /// `[vocab, width]`: source, target and output head.
    pub wte: Param<Tensor<2>>,
    /// `[max_len, width]`.
    pub wpe: Param<Tensor<2>>,
    pub encoder: Vec<EncoderLayer>,
    pub ln_enc: LayerNorm,
    pub decoder: Vec<DecoderLayer>,
    pub ln_dec: LayerNorm,
    pub heads: usize,
    pub max_len: usize,
    pub dropout: f64,
    pub pad: usize,
}

/// The encoder's output for a batch of sources, with their padding mask `[batch, 1, 1, s]`.
#[derive(Debug, Clone)]
pub struct Memory {
    pub states: Tensor<3>,
    pub mask: Tensor<4>,
}

/// The decoder's cache: per layer, the self-attention keys and values so far and the
/// cross-attention keys and values of the memory, each `[batch, heads, len, head width]`.
#[derive(Debug, Clone, Default)]
pub struct DecoderCache {
    self_kv: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    cross_kv: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    len: usize,
}

impl DecoderCache {
    /// Keeps, in order, the batch rows `rows` (a beam search's surviving beams).
    pub fn reorder(&mut self, rows: &[usize]) {
        let Some(device) = self.self_kv.iter().flatten().next().map(|(k, _)| k.device()) else { return };
        let idx: Tensor<1, Int> = Tensor::from_data(
            TensorData::new(rows.iter().map(|&r| r as i64).collect::<Vec<_>>(), [rows.len()]),
            &device,
        );
        for slot in self.self_kv.iter_mut().chain(self.cross_kv.iter_mut()).flatten() {
            *slot = (slot.0.clone().select(0, idx.clone()), slot.1.clone().select(0, idx.clone()));
        }
    }
}

impl Seq2Seq {
    pub fn vocab(&self) -> usize {
        self.wte.dims()[0]
    }

    fn embed(&self, tokens: Tensor<2, Int>, start: usize, rng: Option<&mut SeededRng>) -> Tensor<3> {
        let t = tokens.dims()[1];
        assert!(start + t <= self.max_len, "{start} + {t} tokens exceed max_len {}", self.max_len);
        let x = burn::tensor::module::embedding(self.wte.val(), tokens)
            + self.wpe.val().narrow(0, start, t).unsqueeze::<3>();
        dropout(x, self.dropout, rng)
    }

    /// Encodes `source` `[batch, s]` (padded with the pad token).
    pub fn encode(&self, source: Tensor<2, Int>, mut rng: Option<&mut SeededRng>) -> Memory {
        let [b, _] = source.dims();
        let host: Vec<i64> = source.to_data().convert::<i64>().try_to_vec::<i64>().expect("token ids read back as i64");
        let mask = padding_mask(&host, b, self.pad as i64, &source.device());
        let mut x = self.embed(source, 0, rng.as_deref_mut()); // [b, s, d]
        for layer in &self.encoder {
            let h = layer.ln_1.forward(x.clone());
            let d = h.dims()[2];
            let qkv = linear(&layer.attn.qkv, h);
            let part = |i: usize| split_heads(qkv.clone().narrow(2, i * d, d), self.heads);
            let y = attention(part(0), part(1), part(2), Some(mask.clone()), self.dropout, rng.as_deref_mut());
            x = x + dropout(linear(&layer.attn.proj, merge_heads(y)), self.dropout, rng.as_deref_mut());
            x = x.clone() + dropout(layer.mlp.forward(layer.ln_2.forward(x)), self.dropout, rng.as_deref_mut());
        }
        Memory { states: self.ln_enc.forward(x), mask }
    }

    /// Next-token logits at every position of `target` `[batch, t]`, which continues the tokens
    /// in `cache` (when given), attending over `memory`.
    ///
    /// # Shapes
    /// - returns `[batch, t, vocab]`
    pub fn decode(
        &self,
        target: Tensor<2, Int>,
        memory: &Memory,
        mut cache: Option<&mut DecoderCache>,
        mut rng: Option<&mut SeededRng>,
    ) -> Tensor<3> {
        let [b, t] = target.dims();
        let start = cache.as_ref().map_or(0, |c| c.len);
        let mut x = self.embed(target, start, rng.as_deref_mut()); // [b, t, d]
        let d = x.dims()[2];
        if let Some(c) = cache.as_deref_mut() {
            c.self_kv.resize(self.decoder.len(), None);
            c.cross_kv.resize(self.decoder.len(), None);
        }
        for (i, layer) in self.decoder.iter().enumerate() {
            // Causal self-attention over the target so far.
            let qkv = linear(&layer.attn.qkv, layer.ln_1.forward(x.clone()));
            let part = |j: usize| split_heads(qkv.clone().narrow(2, j * d, d), self.heads);
            let (q, mut k, mut v) = (part(0), part(1), part(2));
            if let Some(c) = cache.as_deref_mut() {
                if let Some((pk, pv)) = c.self_kv[i].take() {
                    (k, v) = (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2));
                }
                c.self_kv[i] = Some((k.clone(), v.clone()));
            }
            let y = causal_attention_with_dropout(q, k, v, self.dropout, rng.as_deref_mut());
            x = x + dropout(linear(&layer.attn.proj, merge_heads(y)), self.dropout, rng.as_deref_mut());
            // Cross-attention over the source.
            let q = split_heads(linear(&layer.cross.q, layer.ln_2.forward(x.clone())), self.heads);
            let cross = |m: &Memory| {
                let kv = linear(&layer.cross.kv, m.states.clone());
                (split_heads(kv.clone().narrow(2, 0, d), self.heads), split_heads(kv.narrow(2, d, d), self.heads))
            };
            let (k, v) = match cache.as_deref_mut() {
                Some(c) => c.cross_kv[i].get_or_insert_with(|| cross(memory)).clone(),
                None => cross(memory),
            };
            let y = attention(q, k, v, Some(memory.mask.clone()), self.dropout, rng.as_deref_mut());
            x = x + dropout(linear(&layer.cross.proj, merge_heads(y)), self.dropout, rng.as_deref_mut());
            x = x.clone() + dropout(layer.mlp.forward(layer.ln_3.forward(x)), self.dropout, rng.as_deref_mut());
        }
        if let Some(c) = cache {
            c.len += t;
        }
        let logits = self.ln_dec.forward(x).reshape([b * t, d]).matmul(self.wte.val().transpose());
        logits.reshape([b, t, self.vocab()])
    }

    /// Summed negative log-likelihood of the targets' tokens after the first (padding left out)
    /// and the number of tokens it sums: `(source [b, s], target [b, t])`, targets from BOS to EOS.
    pub fn nll(
        &self,
        source: Tensor<2, Int>,
        target: Tensor<2, Int>,
        mut rng: Option<&mut SeededRng>,
    ) -> (Tensor<1>, usize) {
        let [b, t] = target.dims();
        let memory = self.encode(source, rng.as_deref_mut());
        let input = target.clone().narrow(1, 0, t - 1);
        let labels = target.narrow(1, 1, t - 1).reshape([b * (t - 1)]);
        let host: Vec<i64> = labels.to_data().convert::<i64>().try_to_vec::<i64>().expect("token ids read back as i64");
        let keep: Vec<f32> = host.iter().map(|&y| if y == self.pad as i64 { 0.0 } else { 1.0 }).collect();
        let count = keep.iter().filter(|&&k| k > 0.0).count();
        let keep = Tensor::<1>::from_data(TensorData::new(keep, [b * (t - 1)]), &labels.device());
        let logits = self.decode(input, &memory, None, rng).reshape([b * (t - 1), self.vocab()]);
        ((categorical_log_prob(logits, labels) * keep).sum().neg(), count)
    }
}

impl Seq2Seq {
    /// log p(target | source) of each row: the summed log-probabilities of every target token
    /// after BOS (padding left out), for `(source [b, s], target [b, t])`.
    pub fn sequence_log_probs(&self, source: Tensor<2, Int>, target: Tensor<2, Int>) -> Vec<f64> {
        let [b, t] = target.dims();
        let memory = self.encode(source, None);
        let input = target.clone().narrow(1, 0, t - 1);
        let labels = target.narrow(1, 1, t - 1);
        let host: Vec<i64> = labels.to_data().convert::<i64>().try_to_vec::<i64>().expect("token ids read back as i64");
        let logits = self.decode(input, &memory, None, None).reshape([b * (t - 1), self.vocab()]);
        let lp = genlab_core::tensors::to_f32_vec(categorical_log_prob(logits, labels.reshape([b * (t - 1)])));
        (0..b)
            .map(|r| {
                (0..t - 1)
                    .filter(|&c| host[r * (t - 1) + c] != self.pad as i64)
                    .map(|c| lp[r * (t - 1) + c] as f64)
                    .sum()
            })
            .collect()
    }
}

impl TrainStep for Seq2Seq {
    /// `(source, target)` token batches, padded.
    type Batch = (Tensor<2, Int>, Tensor<2, Int>);

    fn train_step(self, (source, target): Self::Batch, ctx: &mut StepContext<'_>) -> (Self, StepOutput) {
        let (nll, count) = self.nll(source, target, Some(ctx.rng));
        let loss = nll / count.max(1) as f64;
        let shown = genlab_core::tensors::to_f32_vec(loss.clone().detach())[0] as f64;
        let model = ctx.optimizers.get(genlab_train::OptimizerKey::MODEL).backward_step(self, loss);
        (model, StepOutput { loss: shown, scalars: vec![] })
    }
}

/// The decoder of one source, as an autoregressive model over the target: with its cache.
pub struct SourceDecoder<'a> {
    pub model: &'a Seq2Seq,
    pub memory: Memory,
}

impl<'a> SourceDecoder<'a> {
    pub fn new(model: &'a Seq2Seq, source: &[u32]) -> Self {
        let memory = model.encode(int_tokens(source, &model.wte.device()), None);
        SourceDecoder { model, memory }
    }
}

impl Autoregressive for SourceDecoder<'_> {
    type State = DecoderCache;

    fn context(&self) -> Option<usize> {
        Some(self.model.max_len)
    }

    fn start(&self) -> DecoderCache {
        DecoderCache::default()
    }

    fn feed(&self, cache: &mut DecoderCache, tokens: &[u32]) -> Vec<f32> {
        let t = tokens.len();
        let logits = self.model.decode(int_tokens(tokens, &self.model.wte.device()), &self.memory, Some(cache), None);
        genlab_core::tensors::to_f32_vec(logits.narrow(1, t - 1, 1))
    }
}

/// The same decoder without a cache: each step runs it over the whole target so far. The
/// reference the cached path is tested against.
pub struct UncachedSourceDecoder<'a>(pub SourceDecoder<'a>);

impl Autoregressive for UncachedSourceDecoder<'_> {
    type State = Vec<u32>;

    fn context(&self) -> Option<usize> {
        Some(self.0.model.max_len)
    }

    fn start(&self) -> Vec<u32> {
        Vec::new()
    }

    fn feed(&self, target: &mut Vec<u32>, tokens: &[u32]) -> Vec<f32> {
        target.extend_from_slice(tokens);
        let m = self.0.model;
        let logits = m.decode(int_tokens(target, &m.wte.device()), &self.0.memory, None, None);
        genlab_core::tensors::to_f32_vec(logits.narrow(1, target.len() - 1, 1))
    }
}

/// Greedy decoding of many sources at once (padded into one batch, decoded in lockstep with the
/// cache): each row's tokens after BOS until its EOS (left out) or `max_new` tokens. Row `i`
/// equals greedy decoding of `sources[i]` alone.
pub fn greedy_batch(model: &Seq2Seq, sources: &[Vec<u32>], bos: u32, eos: u32, max_new: usize) -> Vec<Vec<u32>> {
    let device = model.wte.device();
    let b = sources.len();
    let s = sources.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let flat: Vec<i64> = sources
        .iter()
        .flat_map(|src| src.iter().map(|&t| t as i64).chain(std::iter::repeat(model.pad as i64)).take(s))
        .collect();
    let memory = model.encode(Tensor::from_data(TensorData::new(flat, [b, s]), &device), None);
    let mut cache = DecoderCache::default();
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); b];
    let mut done = vec![false; b];
    let mut last = vec![bos as i64; b];
    for _ in 0..max_new.min(model.max_len - 1) {
        let input = Tensor::<2, Int>::from_data(TensorData::new(last.clone(), [b, 1]), &device);
        let logits = genlab_core::tensors::to_f32_vec(model.decode(input, &memory, Some(&mut cache), None));
        let v = model.vocab();
        for (i, row) in logits.chunks(v).enumerate() {
            // The first of the largest logits, as Sampling::greedy picks it.
            let next = row.iter().enumerate().fold(0, |best, (t, &x)| if x > row[best] { t } else { best }) as u32;
            if !done[i] {
                if next == eos {
                    done[i] = true;
                } else {
                    out[i].push(next);
                }
            }
            last[i] = next as i64;
        }
        if done.iter().all(|&d| d) {
            break;
        }
    }
    out
}

/// A finished hypothesis of beam search.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// The tokens after BOS, without EOS.
    pub tokens: Vec<u32>,
    /// The summed log-probability of the tokens and the EOS.
    pub log_prob: f64,
}

impl Hypothesis {
    /// Hugging Face's length-normalised score (length penalty 1): log-probability per token,
    /// EOS included.
    pub fn score(&self) -> f64 {
        self.log_prob / (self.tokens.len() + 1) as f64
    }
}

/// Beam search of `width` beams for the target of `source`, from `bos` until `eos` or `max_new`
/// tokens, as Hugging Face's `generate(num_beams = width)` with length penalty 1 and early stopping
/// off: each step extends every live beam by every token, keeps the `width` best live
/// continuations, sets aside those that end in EOS among the best `width`, and stops once `width`
/// hypotheses are finished and no live beam could still beat the worst of them. Returns the
/// best-scoring hypothesis (a live beam when none finished).
pub fn beam_search(model: &Seq2Seq, source: &[u32], width: usize, bos: u32, eos: u32, max_new: usize) -> Hypothesis {
    assert!(width >= 1, "beam search needs at least one beam");
    let device = model.wte.device();
    let one = model.encode(int_tokens(source, &device), None);
    let memory = Memory { states: one.states.repeat_dim(0, width), mask: one.mask.repeat_dim(0, width) };
    let mut cache = DecoderCache::default();
    // Beam 0 starts alone: the others at minus infinity, so the first step does not repeat it.
    let mut beams: Vec<(Vec<u32>, f64)> =
        (0..width).map(|i| (Vec::new(), if i == 0 { 0.0 } else { f64::NEG_INFINITY })).collect();
    let mut finished: Vec<Hypothesis> = Vec::new();
    let mut last: Vec<u32> = vec![bos; width];
    let max_new = max_new.min(model.max_len - 1);
    for step in 0..max_new {
        let tokens: Vec<i64> = last.iter().map(|&t| t as i64).collect();
        let input = Tensor::<2, Int>::from_data(TensorData::new(tokens, [width, 1]), &device);
        let logits = model.decode(input, &memory, Some(&mut cache), None).reshape([width, model.vocab()]);
        let lp = genlab_core::tensors::to_f32_vec(log_softmax(logits, 1));
        let v = model.vocab();
        let mut candidates: Vec<(f64, usize, u32)> = (0..width)
            .filter(|&b| beams[b].1.is_finite())
            .flat_map(|b| (0..v).map(move |t| (b, t)))
            .map(|(b, t)| (beams[b].1 + lp[b * v + t] as f64, b, t as u32))
            .collect();
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut next: Vec<(Vec<u32>, f64, usize)> = Vec::with_capacity(width);
        for (rank, &(score, b, t)) in candidates.iter().enumerate() {
            if t == eos {
                if rank < width {
                    finished.push(Hypothesis { tokens: beams[b].0.clone(), log_prob: score });
                }
            } else if next.len() < width {
                let mut seq = beams[b].0.clone();
                seq.push(t);
                next.push((seq, score, b));
            }
            if next.len() == width {
                break;
            }
        }
        if next.is_empty() {
            break;
        }
        // Fewer live continuations than beams (a tiny vocabulary): dead rows keep the batch whole.
        while next.len() < width {
            let row = next[0].2;
            next.push((Vec::new(), f64::NEG_INFINITY, row));
        }
        // Done when `width` hypotheses are finished and the best live beam, even at its current
        // length, scores below the worst kept one (Hugging Face's `is_done` without early stopping).
        finished.sort_by(|a, b| b.score().total_cmp(&a.score()));
        finished.truncate(width);
        let best_live = next[0].1 / (step + 2) as f64;
        if finished.len() == width && finished[width - 1].score() >= best_live {
            break;
        }
        let rows: Vec<usize> = next.iter().map(|n| n.2).collect();
        cache.reorder(&rows);
        last = next.iter().map(|n| n.0.last().copied().unwrap_or(bos)).collect();
        beams = next.into_iter().map(|(seq, score, _)| (seq, score)).collect();
    }
    if finished.is_empty() {
        let (tokens, log_prob) = beams.into_iter().max_by(|a, b| a.1.total_cmp(&b.1)).expect("at least one beam");
        return Hypothesis { tokens, log_prob };
    }
    finished.sort_by(|a, b| b.score().total_cmp(&a.score()));
    finished.swap_remove(0)
}

#[cfg(test)]
mod tests;
