use super::*;
use crate::lm::sampling::Sampling;
use crate::lm::{generate, Finish, Generation};
use burn::tensor::TensorData;

fn tiny(positions: Positions, block_size: usize) -> GptConfig {
    GptConfig { layers: 2, heads: 2, width: 16, block_size, positions, ..Default::default() }
}

fn tokens(v: &[i64], dev: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(v.to_vec(), [1, v.len()]), dev)
}

/// Changing token t changes no logit at a position before t, and does change those from t on.
#[test]
fn logits_before_a_changed_token_do_not_change() {
    let dev = Device::flex();
    for positions in [Positions::Learned, Positions::Rotary] {
        let m = tiny(positions, 12).init(11, 0, &dev).unwrap();
        let a: Vec<i64> = vec![1, 4, 2, 7, 3, 9, 0, 5, 6, 2];
        let mut b = a.clone();
        let t = 6;
        b[t] = 10;
        let la = genlab_core::tensors::to_f32_vec(m.forward(tokens(&a, &dev), None, None));
        let lb = genlab_core::tensors::to_f32_vec(m.forward(tokens(&b, &dev), None, None));
        let v = 11;
        assert_eq!(la[..t * v], lb[..t * v], "{positions:?}: a logit before position {t} changed");
        let moved = la[t * v..].iter().zip(&lb[t * v..]).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(moved > 1e-4, "{positions:?}: the changed token should change the logits from {t} on");
    }
}

/// Generation with the KV cache gives the tokens of generation without it, greedy and sampled,
/// through several context slides (block 8, a 3-token prompt and 40 new tokens).
#[test]
fn cached_and_uncached_generation_agree() {
    let dev = Device::flex();
    for positions in [Positions::Learned, Positions::Rotary] {
        let m = tiny(positions, 8).init(13, 1, &dev).unwrap();
        let decode = |t: &[u32]| t.iter().map(|&v| char::from(b'a' + v as u8)).collect::<String>();
        for sampling in [Sampling::greedy(), Sampling { temperature: 1.5, top_p: Some(0.95), ..Default::default() }] {
            let g = Generation { max_tokens: 40, sampling, stop: vec![], end: None, seed: 3 };
            let cached = generate(&m, &[1, 2, 3], &g, &decode, &mut |_| {});
            let uncached = generate(&Uncached(&m), &[1, 2, 3], &g, &decode, &mut |_| {});
            assert_eq!(cached.tokens.len(), 40);
            assert_eq!(cached, uncached, "{positions:?} {sampling:?}");
        }
    }
}

/// Streaming hands out exactly the final text, and a stop string ends generation with the text
/// cut before it.
#[test]
fn streamed_text_is_the_text_and_stop_strings_cut_it() {
    let dev = Device::flex();
    let m = tiny(Positions::Learned, 8).init(5, 2, &dev).unwrap();
    let decode = |t: &[u32]| t.iter().map(|&v| char::from(b'a' + v as u8)).collect::<String>();
    let g = Generation { max_tokens: 30, sampling: Sampling::default(), stop: vec![], end: None, seed: 9 };
    let mut streamed = String::new();
    let full = generate(&m, &[0], &g, &decode, &mut |s| streamed.push_str(s));
    assert_eq!(streamed, full.text);
    // Stop at the first two-letter string of the full text that starts after position 4.
    let stop = full.text[5..7].to_string();
    let at = full.text.find(&stop).unwrap();
    let g = Generation { stop: vec![stop.clone(), "zzzz".into()], ..g };
    let mut streamed = String::new();
    let cut = generate(&m, &[0], &g, &decode, &mut |s| streamed.push_str(s));
    assert_eq!((cut.text.as_str(), cut.finish), (&full.text[..at], Finish::Stop));
    assert_eq!(streamed, cut.text);
}

/// nanoGPT's initialisation: N(0, 0.02) weights, residual projections N(0, 0.02 / sqrt(2 L)), no
/// biases, tied head.
#[test]
fn initialisation_follows_gpt2() {
    let dev = Device::flex();
    let m = GptConfig { layers: 8, width: 64, ..Default::default() }.init(50, 0, &dev).unwrap();
    let sd = |t: Tensor<2>| {
        let v = genlab_core::tensors::to_f32_vec(t);
        (v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    };
    assert!((sd(m.wte.val()) - 0.02).abs() < 0.001);
    assert!((sd(m.blocks[0].mlp.c_fc.weight.val()) - 0.02).abs() < 0.001);
    assert!((sd(m.blocks[0].mlp.c_proj.weight.val()) - 0.005).abs() < 0.0003);
    assert!(m.blocks[0].attn.c_attn.bias.is_none() && m.lm_head.is_none());
    // Parameters: wte 50x64, wpe 64x64, per block 2 LayerNorm gains, 64x192, 64x64, 64x256,
    // 256x64; the final LayerNorm.
    let per_block = 2 * 64 + 64 * 192 + 64 * 64 + 64 * 256 + 256 * 64;
    assert_eq!(m.num_params(), 50 * 64 + 64 * 64 + 8 * per_block + 64);
}

/// One batch, trained on repeatedly, is learned: the loss falls from about ln(vocab) by a factor
/// of 10.
#[test]
fn overfits_one_batch() {
    use genlab_train::{OptimizerConfig, Optimizers};
    let dev = Device::flex().autodiff();
    let mut m = tiny(Positions::Learned, 16).init(20, 0, &dev).unwrap();
    let mut rng = SeededRng::new(4);
    let v: Vec<i64> = (0..4 * 17).map(|_| rng.below(20) as i64).collect();
    let batch = Tensor::<2, Int>::from_data(TensorData::new(v, [4, 17]), &dev);
    let mut opt = Optimizers::single(OptimizerConfig { lr: 3e-3, ..Default::default() }, None);
    let mut losses = vec![];
    for step in 1..=200 {
        let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &dev };
        let (next, out) = m.train_step(batch.clone(), &mut ctx);
        m = next;
        losses.push(out.loss);
    }
    let (first, last) = (losses[0], losses[199]);
    assert!((first - 20f64.ln()).abs() < 0.1, "initial loss {first}");
    assert!(last < first / 10.0, "loss {first} -> {last}");
}
