//! Sentence VAE tests: a line's terms do not depend on the batch it sits in (the padding is
//! masked and the encoder reads each line up to its end), free bits charge each dimension its
//! batch-mean KL or the floor, greedy decoding follows the teacher-forced logits, and the
//! overfit-one-batch check.

use super::*;

fn small(free_bits: f64) -> SentenceVae {
    let cfg = SentenceVaeConfig { embedding: 8, hidden: 12, latent_dim: 3, free_bits, ..Default::default() };
    cfg.init(10, 0, &Device::flex()).unwrap()
}

fn eps(rows: &[[f32; 3]]) -> Tensor<2> {
    let v: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(v, [rows.len(), 3]), &Device::flex())
}

#[test]
fn a_line_scores_the_same_alone_or_padded_in_a_batch() {
    let m = small(0.0);
    let (a, b): (&[u32], &[u32]) = (&[1, 2, 3], &[4, 5, 6, 7, 8, 9, 0, 1]);
    let e = [0.3f32, -1.2, 0.5];
    let alone = m.terms(&Lines::new(&[a], m.end()), eps(&[e]), None);
    let batch = m.terms(&Lines::new(&[b, a], m.end()), eps(&[[0.1, 0.2, 0.3], e]), None);
    let (n1, n2) = (to_f32_vec(alone.nll), to_f32_vec(batch.nll));
    assert!((n1[0] - n2[1]).abs() < 1e-4, "{} vs {}", n1[0], n2[1]);
    let (k1, k2) = (to_f32_vec(alone.kl), to_f32_vec(batch.kl));
    for j in 0..3 {
        assert!((k1[j] - k2[3 + j]).abs() < 1e-5);
    }
    // A line's NLL counts its tokens and its end: a longer line is not cheaper for free.
    assert!(n2[0] > 0.0 && n1[0] > 0.0);
}

#[test]
fn free_bits_charge_each_dimension_at_least_the_floor() {
    let m = small(0.4);
    let lines = Lines::new(&[&[1, 2], &[3, 4, 5]], m.end());
    let t = m.terms(&lines, eps(&[[0.0; 3], [0.0; 3]]), None);
    let kl = to_f32_vec(t.kl.clone());
    let nll = to_f32_vec(t.nll.clone());
    let (loss, mean_nll, mean_kl) = m.loss(&t, 0.5);
    let per_dim: Vec<f64> = (0..3).map(|j| (kl[j] as f64 + kl[3 + j] as f64) / 2.0).collect();
    let charged: f64 = per_dim.iter().map(|&k| k.max(0.4)).sum();
    let want = (nll[0] as f64 + nll[1] as f64) / 2.0 + 0.5 * charged;
    assert!((to_f32_vec(loss)[0] as f64 - want).abs() < 1e-4);
    assert!((to_f32_vec(mean_kl)[0] as f64 - per_dim.iter().sum::<f64>()).abs() < 1e-5);
    assert!((to_f32_vec(mean_nll)[0] as f64 - (nll[0] as f64 + nll[1] as f64) / 2.0).abs() < 1e-4);
}

#[test]
fn kl_weight_rises_linearly() {
    let m = SentenceVaeConfig { kl_anneal_steps: 100, ..Default::default() }.init(5, 0, &Device::flex()).unwrap();
    assert_eq!((m.kl_weight(1), m.kl_weight(50), m.kl_weight(100), m.kl_weight(500)), (0.01, 0.5, 1.0, 1.0));
    let m = SentenceVaeConfig { kl_anneal_steps: 0, ..Default::default() }.init(5, 0, &Device::flex()).unwrap();
    assert_eq!(m.kl_weight(1), 1.0);
    let m = SentenceVaeConfig { kl_anneal_steps: 100, kl_weight_max: 0.05, ..Default::default() }
        .init(5, 0, &Device::flex())
        .unwrap();
    assert_eq!((m.kl_weight(50), m.kl_weight(100), m.kl_weight(500)), (0.025, 0.05, 0.05));
    let bad = SentenceVaeConfig { kl_weight_max: 0.0, ..Default::default() }.check().unwrap_err().to_string();
    assert!(bad.contains("kl_weight_max"), "{bad}");
}

/// Greedy decoding picks, at each step, the argmax (over the tokens and the end) of the logits
/// the decoder gives the line decoded so far when read in one teacher-forced pass.
#[test]
fn greedy_decoding_follows_teacher_forcing() {
    let m = small(0.0);
    let dev = Device::flex();
    for (i, row) in [[0.4f32, -0.7, 1.1], [-2.0, 0.3, 0.0], [1.5, 1.5, -1.5]].into_iter().enumerate() {
        let line = m.decode(eps(&[row]), 6, &mut |l, _| argmax(l)).remove(0);
        assert!(line.iter().all(|&t| t < 10), "the blank or the padding was drawn: {line:?}");
        let input: Vec<i64> = std::iter::once(i64::from(m.end())).chain(line.iter().map(|&t| i64::from(t))).collect();
        let n = input.len();
        let emb = burn::tensor::module::embedding(m.wte.val(), ints(input, [1, n], &dev));
        let (out, _) = m.decoder.forward(emb, m.initial_state(eps(&[row])));
        let logits = to_f32_vec(m.head.forward(out.reshape([n, m.decoder.hidden()])));
        let v = m.vocab + 3;
        for pos in 0..n {
            let best = argmax(&logits[pos * v..pos * v + m.vocab + 1]);
            match line.get(pos) {
                Some(&t) => assert_eq!(best, t, "z {i}, position {pos}"),
                None if line.len() < 6 => assert_eq!(best, m.end(), "z {i}: the line should end here"),
                None => {}
            }
        }
    }
}

#[test]
fn overfits_one_batch() {
    use genlab_train::{OptimizerConfig, Optimizers};
    let ad = Device::flex().autodiff();
    let cfg = SentenceVaeConfig {
        embedding: 16,
        hidden: 32,
        latent_dim: 4,
        word_dropout: 0.0,
        kl_anneal_steps: 50,
        free_bits: 0.0,
        ..Default::default()
    };
    let mut m = cfg.init(12, 0, &ad).unwrap();
    let mut r = SeededRng::new(3);
    let owned: Vec<Vec<u32>> = (0..8).map(|_| (0..5 + r.below(6)).map(|_| r.below(12) as u32).collect()).collect();
    let lines: Vec<&[u32]> = owned.iter().map(|l| l.as_slice()).collect();
    let batch = Lines::new(&lines, m.end());
    let mut opt = Optimizers::single(OptimizerConfig { lr: 1e-2, ..Default::default() }, None);
    let mut rng = SeededRng::new(0);
    let mut nll = vec![];
    for step in 1..=200 {
        let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &ad };
        let (next, out) = m.train_step(batch.clone(), &mut ctx);
        m = next;
        nll.push(out.scalars[0].1);
    }
    assert!(nll[199] < nll[0] / 4.0, "reconstruction NLL fell from {} to {} only", nll[0], nll[199]);
}
