//! Choosing the next token from a language model's logits, with the controls of Hugging Face's
//! `generate` applied in its order: the repetition penalty (Keskar et al. 2019, CTRL,
//! <https://arxiv.org/abs/1909.05858>: a logit of a token already in the text is divided by the
//! penalty when positive and multiplied by it when negative), the temperature, top-k (Fan et al.
//! 2018), then nucleus top-p (Holtzman et al. 2020, <https://arxiv.org/abs/1904.09751>: the
//! smallest set of most likely tokens whose probability reaches p). Temperature 0 is greedy
//! decoding. The arithmetic is float64 on the host; one uniform draw per token.

use crate::lm::watermark::GreenList;
use genlab_core::SeededRng;

/// The sampling controls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Softmax temperature; 0 picks the most likely token.
    pub temperature: f64,
    pub top_k: Option<usize>,
    /// In (0, 1].
    pub top_p: Option<f64>,
    /// 1 leaves the logits as they are.
    pub repetition_penalty: f64,
    /// The green-list watermark: `delta` added to the logits of the tokens green after the
    /// previous one, after the repetition penalty and before the temperature (as Kirchenbauer et
    /// al.'s logits processor sits before Hugging Face's warpers).
    pub watermark: Option<GreenList>,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling { temperature: 1.0, top_k: None, top_p: None, repetition_penalty: 1.0, watermark: None }
    }
}

impl Sampling {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        Sampling { temperature: 0.0, ..Default::default() }
    }

    /// The next-token distribution the controls leave: `(token, probability)` of every token
    /// that may still be drawn, most likely first (one token with probability 1 when greedy).
    pub fn distribution(&self, logits: &[f32], history: &[u32]) -> Vec<(u32, f64)> {
        let mut z: Vec<f64> = logits.iter().map(|&v| v as f64).collect();
        if self.repetition_penalty != 1.0 {
            let mut seen = vec![false; z.len()];
            let n = z.len();
            for &t in history.iter().filter(|&&t| (t as usize) < n) {
                if !std::mem::replace(&mut seen[t as usize], true) {
                    let v = &mut z[t as usize];
                    *v = if *v > 0.0 { *v / self.repetition_penalty } else { *v * self.repetition_penalty };
                }
            }
        }
        if let (Some(mark), Some(&previous)) = (self.watermark, history.last()) {
            for (v, green) in z.iter_mut().zip(mark.green(previous)) {
                if green {
                    *v += mark.delta as f64;
                }
            }
        }
        let mut order: Vec<u32> = (0..z.len() as u32).collect();
        // Most likely first; ties keep the lower id first (a stable sort), so greedy is the first argmax.
        order.sort_by(|&a, &b| z[b as usize].total_cmp(&z[a as usize]));
        if self.temperature == 0.0 {
            return vec![(order[0], 1.0)];
        }
        if let Some(k) = self.top_k {
            // Tokens tied with the k-th stay, as Hugging Face's `TopKLogitsWarper` keeps them.
            let kth = z[order[k.clamp(1, order.len()) - 1] as usize];
            order.retain(|&t| z[t as usize] >= kth);
        }
        let max = z[order[0] as usize];
        let weights: Vec<f64> = order.iter().map(|&t| ((z[t as usize] - max) / self.temperature).exp()).collect();
        let total: f64 = weights.iter().sum();
        let mut dist: Vec<(u32, f64)> = order.into_iter().zip(weights.into_iter().map(|w| w / total)).collect();
        if let Some(p) = self.top_p {
            let mut cumulative = 0.0;
            let keep = dist
                .iter()
                .position(|&(_, q)| {
                    cumulative += q;
                    cumulative >= p
                })
                .map_or(dist.len(), |i| i + 1);
            dist.truncate(keep);
            let kept: f64 = dist.iter().map(|d| d.1).sum();
            dist.iter_mut().for_each(|d| d.1 /= kept);
        }
        dist
    }

    /// Draws the next token.
    pub fn pick(&self, logits: &[f32], history: &[u32], rng: &mut SeededRng) -> u32 {
        let dist = self.distribution(logits, history);
        let u = rng.uniform() as f64;
        let mut cumulative = 0.0;
        for &(t, q) in &dist {
            cumulative += q;
            if u < cumulative {
                return t;
            }
        }
        dist.last().expect("at least one token stays").0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGITS: [f32; 8] = [1.0, 2.5, 0.3, -1.0, 2.0, 0.0, 1.7, -0.5];

    /// The softmax of `logits / t` restricted to `keep`, renormalised: the truncated distribution
    /// written out independently.
    fn truncated(keep: &[usize], t: f64) -> Vec<f64> {
        let w: Vec<f64> =
            (0..LOGITS.len()).map(|i| if keep.contains(&i) { (LOGITS[i] as f64 / t).exp() } else { 0.0 }).collect();
        let z: f64 = w.iter().sum();
        w.into_iter().map(|v| v / z).collect()
    }

    /// Pearson's chi-square statistic of `draws` from `sampling` against `expected`; any draw of a
    /// token with expected probability 0 fails at once.
    fn chi_square(sampling: Sampling, expected: &[f64], draws: usize, seed: u64) -> f64 {
        let mut rng = SeededRng::new(seed);
        let mut counts = vec![0usize; LOGITS.len()];
        for _ in 0..draws {
            counts[sampling.pick(&LOGITS, &[], &mut rng) as usize] += 1;
        }
        let mut stat = 0.0;
        for (i, &c) in counts.iter().enumerate() {
            if expected[i] == 0.0 {
                assert_eq!(c, 0, "token {i} is outside the truncated distribution but was drawn");
                continue;
            }
            let e = expected[i] * draws as f64;
            stat += (c as f64 - e).powi(2) / e;
        }
        stat
    }

    /// Sorted by logit: 1 (2.5), 4 (2.0), 6 (1.7), 0 (1.0), 2 (0.3), 5 (0.0), 7 (-0.5), 3 (-1.0).
    /// The 0.999 quantiles of chi-square with 2, 3 and 7 degrees of freedom are 13.82, 16.27 and
    /// 24.32; each test uses a fixed seed, so it is deterministic.
    #[test]
    fn top_k_and_top_p_draw_from_the_truncated_distribution() {
        let k = Sampling { temperature: 0.8, top_k: Some(4), ..Default::default() };
        assert!(chi_square(k, &truncated(&[1, 4, 6, 0], 0.8), 20_000, 1) < 16.27);
        // At temperature 1 the sorted probabilities are 0.392, 0.238, 0.176, 0.087, ...: top-p 0.7
        // keeps the first three (0.392 + 0.238 < 0.7 <= 0.806).
        let p = Sampling { top_p: Some(0.7), ..Default::default() };
        let full = truncated(&[0, 1, 2, 3, 4, 5, 6, 7], 1.0);
        assert!(full[1] + full[4] < 0.7 && full[1] + full[4] + full[6] >= 0.7);
        assert!(chi_square(p, &truncated(&[1, 4, 6], 1.0), 20_000, 2) < 13.82);
        assert!(chi_square(Sampling::default(), &full, 20_000, 3) < 24.32);
        // The statistic does reject a wrong distribution (the untruncated one) at these counts.
        assert!(chi_square(k, &truncated(&[0, 1, 2, 3, 4, 5, 6, 7], 0.8), 20_000, 1) > 100.0);
    }

    #[test]
    fn greedy_penalties_and_edge_values() {
        let mut rng = SeededRng::new(0);
        assert_eq!(Sampling::greedy().pick(&LOGITS, &[], &mut rng), 1);
        // A penalty of 2 halves token 1's logit (2.5 -> 1.25), so token 4 (2.0) leads.
        let pen = Sampling { repetition_penalty: 2.0, ..Sampling::greedy() };
        assert_eq!(pen.pick(&LOGITS, &[1, 1], &mut rng), 4);
        // A negative logit is multiplied: token 3 (-1.0) becomes -2.0.
        let d = Sampling { repetition_penalty: 2.0, ..Default::default() }.distribution(&LOGITS, &[3]);
        let q3 = d.iter().find(|x| x.0 == 3).unwrap().1;
        let mut z: Vec<f64> = LOGITS.iter().map(|&v| v as f64).collect();
        z[3] = -2.0;
        let want = z[3].exp() / z.iter().map(|v| v.exp()).sum::<f64>();
        assert!((q3 - want).abs() < 1e-12);
        // top_k = 1 is greedy; top_p = 1 keeps everything.
        let one = Sampling { top_k: Some(1), ..Default::default() }.distribution(&LOGITS, &[]);
        assert_eq!(one, vec![(1, 1.0)]);
        assert_eq!(Sampling { top_p: Some(1.0), ..Default::default() }.distribution(&LOGITS, &[]).len(), 8);
    }

    /// The watermark multiplies each green token's odds by e^delta against the others, after
    /// the previous token's green list; no previous token, no change.
    #[test]
    fn the_watermark_raises_green_tokens_by_delta_before_the_temperature() {
        let mark = GreenList { key: 5, gamma: 0.5, delta: 1.5, vocab: LOGITS.len() };
        let green = mark.green(3);
        let t = 0.7;
        let marked = Sampling { temperature: t, watermark: Some(mark), ..Default::default() };
        let got: std::collections::HashMap<u32, f64> = marked.distribution(&LOGITS, &[3]).into_iter().collect();
        let raised: Vec<f64> =
            (0..LOGITS.len()).map(|i| ((LOGITS[i] as f64 + if green[i] { 1.5 } else { 0.0 }) / t).exp()).collect();
        let z: f64 = raised.iter().sum();
        for (i, w) in raised.iter().enumerate() {
            assert!((got[&(i as u32)] - w / z).abs() < 1e-12, "token {i}");
        }
        let plain = Sampling { temperature: t, ..Default::default() }.distribution(&LOGITS, &[]);
        assert_eq!(marked.distribution(&LOGITS, &[]), plain);
    }
}
