use super::*;
use crate::lm::sampling::Sampling;
use crate::lm::{generate, Finish, Generation};

/// Content tokens 0..4, then pad 5, BOS 6, EOS 7.
const PAD: u32 = 5;
const BOS: u32 = 6;
const EOS: u32 = 7;

fn tiny(seed: u64) -> Seq2Seq {
    let c = Seq2SeqConfig { encoder_layers: 2, decoder_layers: 2, heads: 2, width: 16, max_len: 24, dropout: 0.0 };
    c.init(8, PAD, seed, &Device::flex()).unwrap()
}

fn tokens(v: &[u32], rows: usize) -> Tensor<2, Int> {
    let data: Vec<i64> = v.iter().map(|&t| t as i64).collect();
    Tensor::from_data(TensorData::new(data, [rows, v.len() / rows]), &Device::flex())
}

/// Padding a source changes nothing the decoder sees; changing target token t changes no logit
/// before t.
#[test]
fn padding_is_invisible_and_the_decoder_is_causal() {
    let m = tiny(0);
    let plain = m.encode(tokens(&[1, 2, 3], 1), None);
    let padded = m.encode(tokens(&[1, 2, 3, PAD, PAD], 1), None);
    let target = [BOS, 0, 4, 2, 1];
    let a = genlab_core::tensors::to_f32_vec(m.decode(tokens(&target, 1), &plain, None, None));
    let b = genlab_core::tensors::to_f32_vec(m.decode(tokens(&target, 1), &padded, None, None));
    let err = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(err < 1e-5, "padding changed the logits by {err}");
    let mut changed = target;
    changed[3] = 0;
    let c = genlab_core::tensors::to_f32_vec(m.decode(tokens(&changed, 1), &plain, None, None));
    assert_eq!(a[..3 * 8], c[..3 * 8]);
    assert!(a[3 * 8..].iter().zip(&c[3 * 8..]).any(|(x, y)| (x - y).abs() > 1e-4));
}

/// Decoding with the cache gives the tokens of decoding without it, greedy and sampled.
#[test]
fn cached_and_uncached_decoding_agree() {
    let m = tiny(1);
    let source = [3, 1, 4, 1, 0, 2];
    for sampling in [Sampling::greedy(), Sampling { temperature: 1.3, ..Default::default() }] {
        let g = Generation { max_tokens: 20, sampling, stop: vec![], end: None, seed: 7 };
        let decode = |t: &[u32]| t.iter().map(|&v| char::from(b'a' + v as u8)).collect::<String>();
        let cached = generate(&SourceDecoder::new(&m, &source), &[BOS], &g, &decode, &mut |_| {});
        let uncached =
            generate(&UncachedSourceDecoder(SourceDecoder::new(&m, &source)), &[BOS], &g, &decode, &mut |_| {});
        assert_eq!(cached.tokens.len(), 20);
        assert_eq!(cached, uncached, "{sampling:?}");
        let ended = generate(
            &SourceDecoder::new(&m, &source),
            &[BOS],
            &Generation { end: Some(cached.tokens[4]), ..g },
            &decode,
            &mut |_| {},
        );
        let first = cached.tokens.iter().position(|&t| t == cached.tokens[4]).unwrap();
        assert_eq!((ended.tokens.as_slice(), ended.finish), (&cached.tokens[..first], Finish::Stop));
    }
}

/// log p(tokens then EOS | source), summed, without a cache.
fn log_prob(m: &Seq2Seq, memory: &Memory, tokens: &[u32]) -> f64 {
    let mut target = vec![BOS];
    target.extend_from_slice(tokens);
    let logits = m.decode(tokens_row(&target), memory, None, None).reshape([target.len(), 8]);
    let lp = genlab_core::tensors::to_f32_vec(log_softmax(logits, 1));
    let next: Vec<u32> = tokens.iter().copied().chain([EOS]).collect();
    next.iter().enumerate().map(|(i, &t)| lp[i * 8 + t as usize] as f64).sum()
}

fn tokens_row(v: &[u32]) -> Tensor<2, Int> {
    tokens(v, 1)
}

/// With more beams than continuations, beam search is exhaustive: it finds the hypothesis of
/// best length-normalised score among every sequence of up to 3 tokens (EOS included), scored
/// by brute force. With one beam it is greedy decoding.
#[test]
fn beam_search_finds_the_best_hypothesis_and_one_beam_is_greedy() {
    for seed in 0..4 {
        let m = tiny(10 + seed);
        let source = [2, 0, 1, 3];
        let memory = m.encode(tokens_row(&source), None);
        let mut best = (f64::NEG_INFINITY, vec![]);
        let non_eos: Vec<u32> = (0..8).filter(|&t| t != EOS).collect();
        let mut prefixes: Vec<Vec<u32>> = vec![vec![]];
        for _ in 0..3 {
            let mut longer = vec![];
            for p in &prefixes {
                let s = log_prob(&m, &memory, p) / (p.len() + 1) as f64;
                if s > best.0 {
                    best = (s, p.clone());
                }
                longer.extend(non_eos.iter().map(|&t| [p.clone(), vec![t]].concat()));
            }
            prefixes = longer.into_iter().filter(|p| p.len() < 3).collect();
        }
        let h = beam_search(&m, &source, 100, BOS, EOS, 3);
        assert_eq!(h.tokens, best.1, "seed {seed}");
        assert!((h.score() - best.0).abs() < 1e-4);
        let greedy = generate(
            &SourceDecoder::new(&m, &source),
            &[BOS],
            &Generation { max_tokens: 10, sampling: Sampling::greedy(), stop: vec![], end: Some(EOS), seed: 0 },
            &|_| String::new(),
            &mut |_| {},
        );
        let one = beam_search(&m, &source, 1, BOS, EOS, 10);
        assert_eq!(one.tokens, greedy.tokens, "seed {seed}");
    }
}

#[test]
fn overfits_one_batch() {
    use genlab_train::{OptimizerConfig, Optimizers};
    let dev = Device::flex().autodiff();
    let c = Seq2SeqConfig { encoder_layers: 1, decoder_layers: 1, heads: 2, width: 32, max_len: 16, dropout: 0.0 };
    let mut m = c.init(8, PAD, 0, &dev).unwrap();
    // Reverse short sequences, padded.
    let src = [1u32, 2, 3, 4, PAD, 0, 4, 2, 2, 1, 3, 3, 0, PAD, PAD];
    let tgt = [BOS, 4, 3, 2, 1, EOS, PAD, BOS, 1, 2, 2, 4, 0, EOS, BOS, 0, 3, 3, EOS, PAD, PAD];
    let t = |v: &[u32], rows| {
        let d: Vec<i64> = v.iter().map(|&x| x as i64).collect();
        Tensor::<2, Int>::from_data(TensorData::new(d, [rows, v.len() / rows]), &dev)
    };
    let mut opt = Optimizers::single(OptimizerConfig { lr: 3e-3, ..Default::default() }, None);
    let mut rng = SeededRng::new(0);
    let mut losses = vec![];
    for step in 1..=150 {
        let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &dev };
        let (next, out) = m.train_step((t(&src, 3), t(&tgt, 3)), &mut ctx);
        m = next;
        losses.push(out.loss);
    }
    assert!(losses[149] < losses[0] / 10.0, "loss {} -> {}", losses[0], losses[149]);
}

/// Batched greedy decoding gives each row what decoding it alone gives.
#[test]
fn batched_greedy_equals_one_at_a_time() {
    let m = tiny(3);
    let sources = vec![vec![1, 2, 3], vec![4, 0], vec![2, 2, 1, 0, 3, 4]];
    let batch = greedy_batch(&m, &sources, BOS, EOS, 12);
    for (src, got) in sources.iter().zip(&batch) {
        let g = Generation { max_tokens: 12, sampling: Sampling::greedy(), stop: vec![], end: Some(EOS), seed: 0 };
        let alone = generate(&SourceDecoder::new(&m, src), &[BOS], &g, &|_| String::new(), &mut |_| {});
        assert_eq!(got, &alone.tokens);
    }
}
