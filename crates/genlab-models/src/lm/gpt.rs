//! A decoder-only transformer language model (GPT-2, Radford et al. 2019,
//! <https://cdn.openai.com/better-language-models/language_models_are_unsupervised_multitask_learners.pdf>)
//! as nanoGPT writes it (<https://github.com/karpathy/nanoGPT>, `model.py`): token (and learned
//! position) embeddings, pre-LayerNorm blocks of causal self-attention and a GELU MLP, a final
//! LayerNorm and a head tied to the token embedding; GPT-2's initialisation (N(0, 0.02), the
//! residual projections scaled by 1/sqrt(2 * layers)); optional biases, off as in nanoGPT's
//! configs. Rotary positions (RoFormer) may replace the learned table.
//!
//! Generation keeps a KV cache per layer ([`KvCache`]): a decode step computes the keys and
//! values of its one new token and attends over the cached ones, through the same attention
//! function as training ([`genlab_nn::attention::causal_attention`]).

use super::{int_tokens, Autoregressive};
use crate::error::ModelError;
use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, Int};
use burn::Tensor;
use genlab_core::SeededRng;
use genlab_nn::attention::{causal_attention_with_dropout, merge_heads, split_heads};
use genlab_nn::distributions::categorical_log_prob;
use genlab_nn::dropout::dropout;
use genlab_nn::gelu::gelu;
use genlab_nn::init::{normal_embedding, normal_linear};
use genlab_nn::linear::linear;
use genlab_nn::rotary::rotate;
use genlab_train::{StepContext, StepOutput, TrainStep};
use serde::{Deserialize, Serialize};

/// How the model knows where a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Positions {
    /// A learned table of `block_size` vectors added to the token embeddings (GPT-2).
    Learned,
    /// Queries and keys rotated by position in each head (RoFormer, base 10000).
    Rotary,
}

/// The base of the rotary angles.
const ROTARY_BASE: f64 = 10_000.0;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptConfig {
    /// Transformer blocks (nanoGPT's `n_layer`).
    #[serde(default = "four")]
    pub layers: usize,
    /// Attention heads per block (`n_head`).
    #[serde(default = "four")]
    pub heads: usize,
    /// Width of the residual stream (`n_embd`).
    #[serde(default = "default_width")]
    pub width: usize,
    /// The most tokens the model attends over (`block_size`).
    #[serde(default = "default_block")]
    pub block_size: usize,
    /// Dropout on the embeddings, the attention weights and each residual branch.
    #[serde(default)]
    pub dropout: f64,
    /// Biases in the linear layers and LayerNorms (nanoGPT's `bias`).
    #[serde(default)]
    pub bias: bool,
    #[serde(default = "learned")]
    pub positions: Positions,
    /// The output head shares the token embedding's weights (Press & Wolf 2017).
    #[serde(default = "yes")]
    pub tie_embeddings: bool,
}

fn four() -> usize {
    4
}
fn default_width() -> usize {
    128
}
fn default_block() -> usize {
    64
}
fn learned() -> Positions {
    Positions::Learned
}
fn yes() -> bool {
    true
}

impl Default for GptConfig {
    fn default() -> Self {
        GptConfig {
            layers: 4,
            heads: 4,
            width: default_width(),
            block_size: default_block(),
            dropout: 0.0,
            bias: false,
            positions: Positions::Learned,
            tie_embeddings: true,
        }
    }
}

impl GptConfig {
    pub fn check(&self) -> Result<(), ModelError> {
        let bad =
            |field, value: String, expected: &str| Err(ModelError::Config { field, value, expected: expected.into() });
        for (field, v) in [("layers", self.layers), ("heads", self.heads), ("block_size", self.block_size)] {
            if v == 0 {
                return bad(field, "0".into(), "expected at least 1");
            }
        }
        if self.width == 0 || !self.width.is_multiple_of(self.heads) {
            return bad(
                "width",
                self.width.to_string(),
                &format!("expected a positive multiple of heads ({})", self.heads),
            );
        }
        if self.positions == Positions::Rotary && !(self.width / self.heads).is_multiple_of(2) {
            return bad(
                "positions",
                "\"rotary\"".into(),
                &format!("rotary positions need an even head width; width / heads = {}", self.width / self.heads),
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", self.dropout.to_string(), "expected a value in [0, 1)");
        }
        Ok(())
    }

    /// The model over `vocab` tokens, its weights drawn from `seed`.
    pub fn init(&self, vocab: usize, seed: u64, device: &Device) -> Result<Gpt, ModelError> {
        self.check()?;
        let mut rng = SeededRng::stream(seed, 0x6e70);
        let (d, bias) = (self.width, self.bias);
        let residual_std = 0.02 / (2.0 * self.layers as f32).sqrt();
        let norm = |device: &Device| LayerNormConfig::new(d).with_bias(bias).init(device);
        let wte = normal_embedding(&mut rng, vocab, d, 0.02, device);
        let wpe = (self.positions == Positions::Learned)
            .then(|| normal_embedding(&mut rng, self.block_size, d, 0.02, device));
        let blocks = (0..self.layers)
            .map(|_| Block {
                ln_1: norm(device),
                attn: SelfAttention {
                    c_attn: normal_linear(&mut rng, d, 3 * d, 0.02, bias, device),
                    c_proj: normal_linear(&mut rng, d, d, residual_std, bias, device),
                },
                ln_2: norm(device),
                mlp: Mlp::new(&mut rng, d, residual_std, bias, device),
            })
            .collect();
        let lm_head = (!self.tie_embeddings).then(|| normal_linear(&mut rng, d, vocab, 0.02, false, device));
        Ok(Gpt {
            wte,
            wpe,
            blocks,
            ln_f: norm(device),
            lm_head,
            heads: self.heads,
            block_size: self.block_size,
            dropout: self.dropout,
            rotary: self.positions == Positions::Rotary,
        })
    }
}

#[derive(Module, Debug)]
pub struct SelfAttention {
    /// Queries, keys and values of every head in one projection.
    pub c_attn: Linear,
    pub c_proj: Linear,
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub c_fc: Linear,
    pub c_proj: Linear,
}

impl Mlp {
    /// GPT-2's MLP: `c_proj(gelu(c_fc(x)))`, 4x wide inside.
    pub fn new(rng: &mut SeededRng, d: usize, residual_std: f32, bias: bool, device: &Device) -> Self {
        Mlp {
            c_fc: normal_linear(rng, d, 4 * d, 0.02, bias, device),
            c_proj: normal_linear(rng, 4 * d, d, residual_std, bias, device),
        }
    }

    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        linear(&self.c_proj, gelu(linear(&self.c_fc, x)))
    }
}

#[derive(Module, Debug)]
pub struct Block {
    pub ln_1: LayerNorm,
    pub attn: SelfAttention,
    pub ln_2: LayerNorm,
    pub mlp: Mlp,
}

#[derive(Module, Debug)]
pub struct Gpt {
    /// `[vocab, width]`.
    pub wte: Param<Tensor<2>>,
    /// `[block_size, width]`, with learned positions.
    pub wpe: Option<Param<Tensor<2>>>,
    pub blocks: Vec<Block>,
    pub ln_f: LayerNorm,
    /// The output head when it is not tied to `wte`.
    pub lm_head: Option<Linear>,
    pub heads: usize,
    pub block_size: usize,
    pub dropout: f64,
    pub rotary: bool,
}

/// The keys and values of the tokens seen so far, per layer: `[batch, heads, len, head width]`.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    len: usize,
}

impl KvCache {
    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Gpt {
    pub fn vocab(&self) -> usize {
        self.wte.dims()[0]
    }

    /// Next-token logits at every position of `tokens`, which sit at positions `start..` (the
    /// tokens already in `cache`, when there is one); dropout when `rng` is given (training).
    ///
    /// # Shapes
    /// - `tokens`: `[batch, t]` with `start + t <= block_size`
    /// - returns `[batch, t, vocab]`
    pub fn forward(
        &self,
        tokens: Tensor<2, Int>,
        mut cache: Option<&mut KvCache>,
        mut rng: Option<&mut SeededRng>,
    ) -> Tensor<3> {
        let [b, t] = tokens.dims();
        let start = cache.as_ref().map_or(0, |c| c.len);
        assert!(start + t <= self.block_size, "{start} + {t} tokens exceed the block size {}", self.block_size);
        let d = self.wte.dims()[1];
        let mut x = burn::tensor::module::embedding(self.wte.val(), tokens); // [b, t, d]
        if let Some(wpe) = &self.wpe {
            x = x + wpe.val().narrow(0, start, t).unsqueeze::<3>(); // [1, t, d] broadcast
        }
        let mut x = dropout(x, self.dropout, rng.as_deref_mut());
        if let Some(c) = cache.as_deref_mut() {
            c.layers.resize(self.blocks.len(), None);
        }
        for (i, block) in self.blocks.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| &mut c.layers[i]);
            let h = self.attention(&block.attn, block.ln_1.forward(x.clone()), start, slot, rng.as_deref_mut());
            x = x + h;
            let h = block.mlp.forward(block.ln_2.forward(x.clone()));
            x = x + dropout(h, self.dropout, rng.as_deref_mut());
        }
        if let Some(c) = cache {
            c.len += t;
        }
        let x = self.ln_f.forward(x).reshape([b * t, d]);
        let logits = match &self.lm_head {
            Some(head) => head.forward(x),
            None => x.matmul(self.wte.val().transpose()), // [b * t, vocab]
        };
        logits.reshape([b, t, self.vocab()])
    }

    /// Causal self-attention of `x` `[batch, t, width]` at positions `start..`, appending its
    /// keys and values to `slot`.
    fn attention(
        &self,
        attn: &SelfAttention,
        x: Tensor<3>,
        start: usize,
        slot: Option<&mut Option<(Tensor<4>, Tensor<4>)>>,
        mut rng: Option<&mut SeededRng>,
    ) -> Tensor<3> {
        let d = x.dims()[2];
        let qkv = linear(&attn.c_attn, x); // [b, t, 3d]
        let part = |i: usize| split_heads(qkv.clone().narrow(2, i * d, d), self.heads); // [b, h, t, d / h]
        let (mut q, mut k, v) = (part(0), part(1), part(2));
        if self.rotary {
            q = rotate(q, start, ROTARY_BASE);
            k = rotate(k, start, ROTARY_BASE);
        }
        let (k, v) = match slot {
            Some(slot) => {
                let kv = match slot.take() {
                    Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
                    None => (k, v),
                };
                *slot = Some(kv.clone());
                kv
            }
            None => (k, v),
        };
        let y = causal_attention_with_dropout(q, k, v, self.dropout, rng.as_deref_mut()); // [b, h, t, hd]
        let y = linear(&attn.c_proj, merge_heads(y));
        dropout(y, self.dropout, rng)
    }

    /// Mean cross-entropy (nats per token) of predicting each token of `windows` `[batch, t + 1]`
    /// from those before it.
    pub fn loss(&self, windows: Tensor<2, Int>, rng: Option<&mut SeededRng>) -> Tensor<1> {
        self.token_log_probs(windows, rng).neg().mean()
    }

    /// log p(token | the tokens before it in its window) of every token but each window's first:
    /// `[batch * t]`.
    pub fn token_log_probs(&self, windows: Tensor<2, Int>, rng: Option<&mut SeededRng>) -> Tensor<1> {
        let [b, len] = windows.dims();
        let t = len - 1;
        let x = windows.clone().narrow(1, 0, t);
        let y = windows.narrow(1, 1, t).reshape([b * t]);
        let logits = self.forward(x, None, rng).reshape([b * t, self.vocab()]);
        categorical_log_prob(logits, y)
    }
}

impl TrainStep for Gpt {
    /// Windows of `block_size + 1` tokens.
    type Batch = Tensor<2, Int>;

    fn train_step(self, batch: Tensor<2, Int>, ctx: &mut StepContext<'_>) -> (Self, StepOutput) {
        let loss = self.loss(batch, Some(ctx.rng));
        let shown = genlab_core::tensors::to_f32_vec(loss.clone().detach())[0] as f64;
        let model = ctx.optimizers.get(genlab_train::OptimizerKey::MODEL).backward_step(self, loss);
        (model, StepOutput { loss: shown, scalars: vec![] })
    }

    fn examples(batch: Tensor<2, Int>) -> Option<Vec<Tensor<2, Int>>> {
        Some(genlab_train::privacy::rows(batch))
    }

    fn example_loss(
        &self,
        window: Tensor<2, Int>,
        rng: &mut SeededRng,
        _: &burn::tensor::Device,
    ) -> Option<genlab_train::privacy::ExampleLoss> {
        Some(genlab_train::privacy::ExampleLoss { loss: self.loss(window, Some(rng)), scalars: vec![] })
    }
}

/// Generation with the KV cache: each step feeds only its new token.
impl Autoregressive for Gpt {
    type State = KvCache;

    fn context(&self) -> Option<usize> {
        Some(self.block_size)
    }

    fn start(&self) -> KvCache {
        KvCache::default()
    }

    fn feed(&self, cache: &mut KvCache, tokens: &[u32]) -> Vec<f32> {
        let t = tokens.len();
        let logits = self.forward(int_tokens(tokens, &self.wte.device()), Some(cache), None);
        genlab_core::tensors::to_f32_vec(logits.narrow(1, t - 1, 1))
    }
}

/// Many sequences side by side: one KV cache with a row per sequence.
impl crate::lm::BatchAutoregressive for Gpt {
    type BatchState = KvCache;

    fn batch_context(&self) -> Option<usize> {
        Some(self.block_size)
    }

    fn start_batch(&self, _: usize) -> KvCache {
        KvCache::default()
    }

    fn feed_batch(&self, cache: &mut KvCache, tokens: &[u32]) -> Vec<f32> {
        let n = tokens.len();
        let v: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
        let x = Tensor::from_data(burn::tensor::TensorData::new(v, [n, 1]), &self.wte.device());
        genlab_core::tensors::to_f32_vec(self.forward(x, Some(cache), None))
    }
}

/// Generation without a cache, as nanoGPT's `generate` does it: each step runs the model over
/// every token in its context. The reference the cached path is tested against.
pub struct Uncached<'a>(pub &'a Gpt);

impl Autoregressive for Uncached<'_> {
    type State = Vec<u32>;

    fn context(&self) -> Option<usize> {
        Some(self.0.block_size)
    }

    fn start(&self) -> Vec<u32> {
        Vec::new()
    }

    fn feed(&self, context: &mut Vec<u32>, tokens: &[u32]) -> Vec<f32> {
        context.extend_from_slice(tokens);
        let t = context.len();
        let logits = self.0.forward(int_tokens(context, &self.0.wte.device()), None, None);
        genlab_core::tensors::to_f32_vec(logits.narrow(1, t - 1, 1))
    }
}

#[cfg(test)]
mod tests;
