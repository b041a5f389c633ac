//! Times genlab's language-model training steps (configs/shakespeare-gpt.toml's GPT: 4 layers, 4
//! heads, width 128, block 64, batch 12, AdamW with weight decay 0.1 on matrices, gradients clipped
//! to norm 1) on fixed windows of the vendored Shakespeare, and (with `--generate N`) the speed of
//! generating N tokens with and without the KV cache.
//! `lm-step [--model gpt] [--device flex] [--warmup N] [--steps N]` prints one RESULT line, the
//! format `bench/lm_step.py` prints for PyTorch, so `bench/compare.py --model gpt` interleaves
//! them; `lm-step --generate 500` prints one GENERATE line per path.

use burn::tensor::{Int, TensorData};
use burn::Tensor;
use genlab_bench::{arg, fail, step_args, time_steps};
use genlab_core::SeededRng;
use genlab_models::lm::gpt::{GptConfig, Uncached};
use genlab_models::lm::sampling::Sampling;
use genlab_models::lm::{generate, Autoregressive, Generation};
use genlab_train::{Optimizer, OptimizerConfig, OptimizerKey, OptimizerKind, Optimizers, StepContext, TrainStep};

/// Batch, block: the baby config's.
const BATCH: usize = 12;
const BLOCK: usize = 64;

/// The corpus's training split as character tokens (the tokenizer genlab fits).
fn tokens() -> (Vec<u32>, usize) {
    let corpus = genlab_data::DatasetSource::Named(genlab_data::DatasetName::Shakespeare)
        .load_text()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let s = corpus.split(0.1).unwrap_or_else(|e| fail(&e.to_string()));
    (s.train.to_vec(), s.tokenizer.vocab_size())
}

fn time_generation<M: Autoregressive>(label: &str, model: &M, n: usize) {
    let g = Generation { max_tokens: n, sampling: Sampling::greedy(), stop: vec![], seed: 0 };
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
    if model != "gpt" {
        fail(&format!("--model {model}: expected gpt"));
    }
    let (train, vocab) = tokens();
    let generate_n: usize = arg("--generate", "0").parse().unwrap_or_else(|_| fail("--generate: expected a count"));
    if generate_n > 0 {
        let device = spec.device().unwrap_or_else(|e| fail(&e.to_string()));
        let m = GptConfig::default().init(vocab, 0, &device).unwrap_or_else(|e| fail(&e.to_string()));
        time_generation("cached", &m, generate_n);
        time_generation("uncached", &Uncached(&m), generate_n);
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
    let mut rng = SeededRng::new(0);
    time_steps(spec, warmup, steps, |step| {
        let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &device };
        let (m, out) = gpt.take().expect("the model is put back each step").train_step(x.clone(), &mut ctx);
        gpt = Some(m);
        out.loss
    });
}
