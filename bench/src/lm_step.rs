//! Times genlab's language-model training steps on fixed windows of the vendored Shakespeare:
//! `--model gpt`, configs/shakespeare-gpt.toml's GPT (4 layers, 4 heads, width 128, block 64,
//! batch 12, AdamW with weight decay 0.1 on matrices, gradients clipped to norm 1); `--model lstm`,
//! configs/shakespeare-lstm.toml's LSTM (embedding 64, two layers of 128, block 64, batch 32, Adam
//! at 2e-3, clipped to norm 1). With `--generate N`, the speed of generating N tokens with and
//! without the KV cache: the GPT (block 64, so the context slides) and an untrained seq2seq
//! decoder long enough to hold them (max_len N + 1).
//! `lm-step [--model gpt|lstm] [--device flex] [--warmup N] [--steps N]` prints one RESULT line,
//! the format `bench/lm_step.py` prints for PyTorch, so `bench/compare.py --model gpt|lstm`
//! interleaves them; `lm-step --generate 500` prints one GENERATE line per path.

use burn::tensor::{Int, TensorData};
use burn::Tensor;
use genlab_bench::{arg, fail, step_args, time_steps};
use genlab_core::SeededRng;
use genlab_models::lm::gpt::{GptConfig, Uncached};
use genlab_models::lm::rnn::RnnLmConfig;
use genlab_models::lm::sampling::Sampling;
use genlab_models::lm::seq2seq::{Seq2SeqConfig, SourceDecoder, UncachedSourceDecoder};
use genlab_models::lm::{generate, Autoregressive, Generation};
use genlab_train::{Optimizer, OptimizerConfig, OptimizerKey, OptimizerKind, Optimizers, StepContext, TrainStep};

/// Batch, block: the baby config's.
const BATCH: usize = 12;
const BLOCK: usize = 64;

/// `batch` windows of `BLOCK + 1` tokens at fixed, spread-out starts: real text, the windows the
/// PyTorch twin reads.
fn windows(train: &[u32], batch: usize, device: &burn::tensor::Device) -> Tensor<2, Int> {
    let stride = train.len() / batch;
    let v: Vec<i64> =
        (0..batch).flat_map(|b| train[b * stride..b * stride + BLOCK + 1].iter().map(|&t| t as i64)).collect();
    Tensor::from_data(TensorData::new(v, [batch, BLOCK + 1]), device)
}

/// The corpus's training split as character tokens (the tokenizer genlab fits).
fn tokens() -> (Vec<u32>, usize) {
    let corpus = genlab_data::DatasetSource::Named(genlab_data::DatasetName::Shakespeare)
        .load_text()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let s = corpus.split(0.1, genlab_data::TokenizerSpec::Char).unwrap_or_else(|e| fail(&e.to_string()));
    (s.train.to_vec(), s.tokenizer.vocab_size())
}

fn time_generation<M: Autoregressive>(label: &str, model: &M, n: usize) {
    let g = Generation { max_tokens: n, sampling: Sampling::greedy(), stop: vec![], end: None, seed: 0 };
    let decode = |t: &[u32]| t.iter().map(|&v| char::from(b'a' + (v % 26) as u8)).collect::<String>();
    let t0 = std::time::Instant::now();
    let out = generate(model, &[0], &g, &decode, &mut |_| {});
    let s = t0.elapsed().as_secs_f64();
    println!(
        "GENERATE impl=genlab-{label} tokens={} seconds={s:.3} tokens_per_s={:.1}",
        out.tokens.len(),
        n as f64 / s
    );
}

fn main() {
    let (spec, warmup, steps) = step_args();
    let model = arg("--model", "gpt");
    if model != "gpt" && model != "lstm" {
        fail(&format!("--model {model}: expected gpt or lstm"));
    }
    let (train, vocab) = tokens();
    let generate_n: usize = arg("--generate", "0").parse().unwrap_or_else(|_| fail("--generate: expected a count"));
    if generate_n > 0 {
        let device = spec.device().unwrap_or_else(|e| fail(&e.to_string()));
        let m = GptConfig::default().init(vocab, 0, &device).unwrap_or_else(|e| fail(&e.to_string()));
        time_generation("gpt-cached", &m, generate_n);
        time_generation("gpt-uncached", &Uncached(&m), generate_n);
        let s2s = Seq2SeqConfig { max_len: generate_n + 1, ..Default::default() }
            .init(vocab + 6, vocab as u32, 0, &device)
            .unwrap_or_else(|e| fail(&e.to_string()));
        let source: Vec<u32> = train[..60].to_vec();
        time_generation("seq2seq-cached", &SourceDecoder::new(&s2s, &source), generate_n);
        time_generation("seq2seq-uncached", &UncachedSourceDecoder(SourceDecoder::new(&s2s, &source)), generate_n);
        return;
    }
    let device = spec.autodiff_device().unwrap_or_else(|e| fail(&e.to_string()));
    let mut rng = SeededRng::new(0);
    if model == "lstm" {
        let cfg = RnnLmConfig { hidden: 128, embedding: Some(64), ..Default::default() };
        let mut lstm = Some(cfg.init(vocab, 0, &device).unwrap_or_else(|e| fail(&e.to_string())));
        let x = windows(&train, 32, &device);
        let c = OptimizerConfig { lr: 2e-3, ..Default::default() };
        let mut opt = Optimizers::single(c, Some(1.0));
        time_steps(spec, warmup, steps, |step| {
            let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &device };
            let (m, out) = lstm.take().expect("the model is put back each step").train_step(x.clone(), &mut ctx);
            lstm = Some(m);
            out.loss
        });
        return;
    }
    let device = spec.autodiff_device().unwrap_or_else(|e| fail(&e.to_string()));
    let mut gpt = Some(GptConfig::default().init(vocab, 0, &device).unwrap_or_else(|e| fail(&e.to_string())));
    // Windows at fixed, spread-out starts: real text, the same windows as the PyTorch twin reads.
    let stride = train.len() / BATCH;
    let v: Vec<i64> =
        (0..BATCH).flat_map(|b| train[b * stride..b * stride + BLOCK + 1].iter().map(|&t| t as i64)).collect();
    let x: Tensor<2, Int> = Tensor::from_data(TensorData::new(v, [BATCH, BLOCK + 1]), &device);
    let c = OptimizerConfig { kind: OptimizerKind::Adamw, lr: 1e-3, betas: [0.9, 0.99], eps: 1e-8, weight_decay: 0.1 };
    let mut opt = Optimizers::new(vec![Optimizer::new(OptimizerKey::MODEL, c, Some(1.0)).decaying_matrices_only()]);
    time_steps(spec, warmup, steps, |step| {
        let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &device };
        let (m, out) = gpt.take().expect("the model is put back each step").train_step(x.clone(), &mut ctx);
        gpt = Some(m);
        out.loss
    });
}
