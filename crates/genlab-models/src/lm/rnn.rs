//! A recurrent language model (char-rnn, Karpathy 2015; Zaremba et al. 2014,
//! <https://arxiv.org/abs/1409.2329>, for dropout between layers): a token embedding, stacked LSTM
//! or GRU layers with PyTorch's cells (`genlab_nn::recurrent`), dropout on the embedding, between
//! layers and before the head, and a linear head, optionally tied to the embedding (Press & Wolf
//! 2017, which needs the embedding as wide as the last layer). Each training window starts from
//! the zero state (truncated back-propagation over `block_size` steps); generation carries the
//! state from token to token, so it has no context limit.

use super::{int_tokens, Autoregressive};
use crate::error::ModelError;
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Int};
use burn::Tensor;
use genlab_core::SeededRng;
use genlab_nn::distributions::categorical_log_prob;
use genlab_nn::dropout::dropout;
use genlab_nn::init::{embedding, linear};
use genlab_nn::recurrent::{Cell, LayerState, RecurrentLayer};
use genlab_train::{StepContext, StepOutput, TrainStep};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RnnLmConfig {
    #[serde(default = "lstm")]
    pub cell: Cell,
    #[serde(default = "two")]
    pub layers: usize,
    #[serde(default = "default_hidden")]
    pub hidden: usize,
    /// Width of the token embedding; the hidden size when unset.
    #[serde(default)]
    pub embedding: Option<usize>,
    #[serde(default)]
    pub dropout: f64,
    #[serde(default)]
    pub tie_embeddings: bool,
    /// Tokens per training window (the truncation of back-propagation through time).
    #[serde(default = "default_block")]
    pub block_size: usize,
}

fn lstm() -> Cell {
    Cell::Lstm
}
fn two() -> usize {
    2
}
fn default_hidden() -> usize {
    256
}
fn default_block() -> usize {
    64
}

impl Default for RnnLmConfig {
    fn default() -> Self {
        RnnLmConfig {
            cell: Cell::Lstm,
            layers: 2,
            hidden: default_hidden(),
            embedding: None,
            dropout: 0.0,
            tie_embeddings: false,
            block_size: default_block(),
        }
    }
}

impl RnnLmConfig {
    fn embedding_width(&self) -> usize {
        self.embedding.unwrap_or(self.hidden)
    }

    pub fn check(&self) -> Result<(), ModelError> {
        let bad = |field, value: String, expected: String| Err(ModelError::Config { field, value, expected });
        for (field, v) in [("layers", self.layers), ("hidden", self.hidden), ("block_size", self.block_size)] {
            if v == 0 {
                return bad(field, "0".into(), "expected at least 1".into());
            }
        }
        if self.embedding == Some(0) {
            return bad("embedding", "0".into(), "expected at least 1".into());
        }
        if self.tie_embeddings && self.embedding_width() != self.hidden {
            return bad(
                "tie_embeddings",
                "true".into(),
                format!("a tied head needs embedding = hidden ({}), not {}", self.hidden, self.embedding_width()),
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", self.dropout.to_string(), "expected a value in [0, 1)".into());
        }
        Ok(())
    }

    /// The model over `vocab` tokens with PyTorch's default initialisation (embedding N(0, 1),
    /// recurrent weights U(+-1/sqrt(hidden)), head U(+-1/sqrt(hidden))), drawn from `seed`.
    pub fn init(&self, vocab: usize, seed: u64, device: &Device) -> Result<RnnLm, ModelError> {
        self.check()?;
        let mut rng = SeededRng::stream(seed, 0x4e4e);
        let e = self.embedding_width();
        let wte = embedding(&mut rng, vocab, e, device);
        let layers = (0..self.layers)
            .map(|i| {
                RecurrentLayer::new(self.cell, if i == 0 { e } else { self.hidden }, self.hidden, &mut rng, device)
            })
            .collect();
        let head = (!self.tie_embeddings).then(|| linear(&mut rng, self.hidden, vocab, device));
        Ok(RnnLm { wte, layers, head, dropout: self.dropout, block_size: self.block_size })
    }
}

#[derive(Module, Debug)]
pub struct RnnLm {
    /// `[vocab, embedding]`.
    pub wte: Param<Tensor<2>>,
    pub layers: Vec<RecurrentLayer>,
    /// The output head when it is not tied to `wte`.
    pub head: Option<Linear>,
    pub dropout: f64,
    pub block_size: usize,
}

impl RnnLm {
    pub fn vocab(&self) -> usize {
        self.wte.dims()[0]
    }

    /// The zero state of every layer for `batch` sequences.
    pub fn zero_state(&self, batch: usize, device: &Device) -> Vec<LayerState> {
        self.layers.iter().map(|l| l.zero_state(batch, device)).collect()
    }

    /// Next-token logits at every position of `tokens`, continuing from `state` (updated);
    /// dropout when `rng` is given (training).
    ///
    /// # Shapes
    /// - `tokens`: `[batch, t]`
    /// - returns `[batch, t, vocab]`
    pub fn forward(
        &self,
        tokens: Tensor<2, Int>,
        state: &mut [LayerState],
        mut rng: Option<&mut SeededRng>,
    ) -> Tensor<3> {
        let [b, t] = tokens.dims();
        let mut x = dropout(burn::tensor::module::embedding(self.wte.val(), tokens), self.dropout, rng.as_deref_mut()); // [b, t, e]
        for (layer, s) in self.layers.iter().zip(state.iter_mut()) {
            let (y, last) = layer.forward(x, s.clone());
            *s = last;
            x = dropout(y, self.dropout, rng.as_deref_mut()); // [b, t, hidden]
        }
        let h = x.dims()[2];
        let x = x.reshape([b * t, h]);
        let logits = match &self.head {
            Some(head) => head.forward(x),
            None => x.matmul(self.wte.val().transpose()),
        };
        logits.reshape([b, t, self.vocab()])
    }

    /// log p of every token but each window's first, from the zero state: `[batch * t]`.
    pub fn token_log_probs(&self, windows: Tensor<2, Int>, rng: Option<&mut SeededRng>) -> Tensor<1> {
        let [b, len] = windows.dims();
        let t = len - 1;
        let x = windows.clone().narrow(1, 0, t);
        let y = windows.narrow(1, 1, t).reshape([b * t]);
        let mut state = self.zero_state(b, &y.device());
        let logits = self.forward(x, &mut state, rng).reshape([b * t, self.vocab()]);
        categorical_log_prob(logits, y)
    }
}

impl TrainStep for RnnLm {
    /// Windows of `block_size + 1` tokens.
    type Batch = Tensor<2, Int>;

    fn train_step(self, batch: Tensor<2, Int>, ctx: &mut StepContext<'_>) -> (Self, StepOutput) {
        let loss = self.token_log_probs(batch, Some(ctx.rng)).neg().mean();
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
        let loss = self.token_log_probs(window, Some(rng)).neg().mean();
        Some(genlab_train::privacy::ExampleLoss { loss, scalars: vec![] })
    }
}

/// Generation carries the recurrent state: each step reads only its new token.
impl Autoregressive for RnnLm {
    type State = Vec<LayerState>;

    fn context(&self) -> Option<usize> {
        None
    }

    fn start(&self) -> Vec<LayerState> {
        self.zero_state(1, &self.wte.device())
    }

    fn feed(&self, state: &mut Vec<LayerState>, tokens: &[u32]) -> Vec<f32> {
        let t = tokens.len();
        let logits = self.forward(int_tokens(tokens, &self.wte.device()), state, None);
        genlab_core::tensors::to_f32_vec(logits.narrow(1, t - 1, 1))
    }
}

/// Many sequences side by side: the state holds a row per sequence.
impl crate::lm::BatchAutoregressive for RnnLm {
    type BatchState = Vec<LayerState>;

    fn batch_context(&self) -> Option<usize> {
        None
    }

    fn start_batch(&self, n: usize) -> Vec<LayerState> {
        self.zero_state(n, &self.wte.device())
    }

    fn feed_batch(&self, state: &mut Vec<LayerState>, tokens: &[u32]) -> Vec<f32> {
        let n = tokens.len();
        let v: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
        let x = Tensor::from_data(burn::tensor::TensorData::new(v, [n, 1]), &self.wte.device());
        genlab_core::tensors::to_f32_vec(self.forward(x, state, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// Reading a text token by token with the carried state gives the logits of reading it in
    /// one pass, for both cells.
    #[test]
    fn carried_state_equals_one_pass() {
        let dev = Device::flex();
        for cell in [Cell::Lstm, Cell::Gru] {
            let m =
                RnnLmConfig { cell, hidden: 12, embedding: Some(8), ..Default::default() }.init(9, 0, &dev).unwrap();
            let toks = [3u32, 1, 4, 1, 5, 2, 6];
            let v: Vec<i64> = toks.iter().map(|&t| t as i64).collect();
            let whole =
                m.forward(Tensor::from_data(TensorData::new(v, [1, 7]), &dev), &mut m.zero_state(1, &dev), None);
            let last = genlab_core::tensors::to_f32_vec(whole.narrow(1, 6, 1));
            let mut s = m.start();
            m.feed(&mut s, &toks[..3]);
            let mut stepped = vec![];
            for &t in &toks[3..] {
                stepped = m.feed(&mut s, &[t]);
            }
            let err = last.iter().zip(&stepped).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(err < 1e-5, "{cell:?}: {err}");
        }
    }

    #[test]
    fn overfits_one_batch() {
        use genlab_train::{OptimizerConfig, Optimizers};
        let dev = Device::flex().autodiff();
        for cell in [Cell::Lstm, Cell::Gru] {
            let mut m = RnnLmConfig { cell, hidden: 32, layers: 2, tie_embeddings: true, ..Default::default() }
                .init(20, 0, &dev)
                .unwrap();
            let mut rng = SeededRng::new(4);
            let v: Vec<i64> = (0..4 * 17).map(|_| rng.below(20) as i64).collect();
            let batch = Tensor::<2, Int>::from_data(TensorData::new(v, [4, 17]), &dev);
            let mut opt = Optimizers::single(OptimizerConfig { lr: 1e-2, ..Default::default() }, None);
            let mut losses = vec![];
            for step in 1..=150 {
                let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &dev };
                let (next, out) = m.train_step(batch.clone(), &mut ctx);
                m = next;
                losses.push(out.loss);
            }
            assert!(losses[149] < losses[0] / 5.0, "{cell:?}: loss {} -> {}", losses[0], losses[149]);
        }
    }
}
