//! The vector quantiser of VQ-VAE (van den Oord et al. 2017, <https://arxiv.org/abs/1711.00937>):
//! a codebook of K vectors; each encoder output is replaced by its nearest code, the decoder's
//! gradient passes straight through to the encoder, and a commitment loss pulls the encoder
//! towards its codes.
//!
//! The codebook is not trained by gradients: it follows exponential moving averages of the
//! vectors assigned to each code (the paper's appendix A.1), with Laplace-smoothed counts so a
//! rarely used code never divides by zero. A code whose moving-average count falls below
//! `restart_threshold` is dead: it is restarted at a random encoder output of the current batch
//! (Dhariwal et al. 2020, Jukebox, <https://arxiv.org/abs/2005.00341>), with its count set to the
//! threshold. A restarted code that catches fewer vectors than the threshold in the next batch
//! falls below it again and moves to another encoder output; one that catches more lives. With
//! counts starting at zero, the first step restarts every code the batch barely uses: the codebook
//! starts on the data.

use burn::module::{Module, Param};
use burn::tensor::{Bool, Device, Int, TensorData};
use burn::Tensor;
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;

#[derive(Module, Debug)]
pub struct VectorQuantizer {
    /// The codes, `[codes, dim]`.
    pub codebook: Param<Tensor<2>>,
    /// Moving average of the vectors assigned to each code per batch, `[codes]`.
    pub cluster_size: Param<Tensor<1>>,
    /// Moving average of the sum of the vectors assigned to each code, `[codes, dim]`.
    pub embed_sum: Param<Tensor<2>>,
    pub decay: f64,
    pub epsilon: f64,
    pub restart_threshold: f64,
}

/// One batch quantised.
pub struct Quantized {
    /// The nearest code of each vector, `[n]`.
    pub codes: Tensor<1, Int>,
    /// The codes' vectors, `[n, dim]`; no gradient flows through them.
    pub quantized: Tensor<2>,
    /// `z + (q - z).detach()`: the codes' values forward, the identity backward, `[n, dim]`.
    pub straight_through: Tensor<2>,
    /// Mean squared distance between each vector and its (fixed) code: `|z - sg(q)|^2`, `[1]`.
    pub commitment: Tensor<1>,
}

/// What one moving-average update saw and did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodebookStats {
    /// exp of the entropy of the batch's code frequencies: the number of equally used codes that
    /// would give the same entropy (K when all are used evenly, 1 when one code takes everything).
    pub perplexity: f64,
    /// Codes the batch assigned at least one vector to.
    pub used: usize,
    /// Codes restarted at an encoder output.
    pub restarted: usize,
}

/// Perplexity of code `counts`: `exp(-sum p log p)` with `p = count / total`.
pub fn perplexity(counts: &[f64]) -> f64 {
    let total: f64 = counts.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let h: f64 = counts.iter().filter(|&&c| c > 0.0).map(|&c| -(c / total) * (c / total).ln()).sum();
    h.exp()
}

fn frozen<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_data(TensorData::new(values, shape), device).set_require_grad(false)
}

impl VectorQuantizer {
    /// `codes` vectors of `dim` entries drawn U(-1/K, 1/K) (the paper's code), with zero counts.
    pub fn new(
        rng: &mut SeededRng,
        codes: usize,
        dim: usize,
        (decay, epsilon, restart_threshold): (f64, f64, f64),
        device: &Device,
    ) -> Self {
        let (k, d) = if crate::init::claim(2 * codes as u128 * dim as u128 + codes as u128, || {
            format!("a codebook of {codes} x {dim}")
        }) {
            (codes, dim)
        } else {
            (1, 1)
        };
        let init = rng.symmetric_uniform_vec(k * d, 1.0 / k as f32);
        VectorQuantizer {
            codebook: frozen(init, [k, d], device),
            cluster_size: frozen(vec![0.0; k], [k], device),
            embed_sum: frozen(vec![0.0; k * d], [k, d], device),
            decay,
            epsilon,
            restart_threshold,
        }
    }

    pub fn codes(&self) -> usize {
        self.codebook.dims()[0]
    }

    pub fn dim(&self) -> usize {
        self.codebook.dims()[1]
    }

    /// The index of the nearest code (squared Euclidean distance; the lower index on a tie) of
    /// each row of `z` `[n, dim]`.
    pub fn nearest(&self, z: Tensor<2>) -> Tensor<1, Int> {
        let n = z.dims()[0];
        let e = self.codebook.val(); // [K, dim]
        let z = z.detach();
        let zz = z.clone().powi_scalar(2).sum_dim(1); // [n, 1]
        let ee = e.clone().powi_scalar(2).sum_dim(1).transpose(); // [1, K]
        let d = zz - z.matmul(e.transpose()) * 2.0 + ee; // [n, K]
        d.argmin(1).reshape([n])
    }

    /// The codes' vectors, `[n, dim]`.
    pub fn lookup(&self, codes: Tensor<1, Int>) -> Tensor<2> {
        self.codebook.val().select(0, codes)
    }

    /// Quantises the rows of `z` `[n, dim]`.
    pub fn quantize(&self, z: Tensor<2>) -> Quantized {
        let codes = self.nearest(z.clone());
        let q = self.lookup(codes.clone()).detach(); // [n, dim]
        let commitment = (z.clone() - q.clone()).powi_scalar(2).mean();
        let straight_through = z.clone() + (q.clone() - z).detach();
        Quantized { codes, quantized: q, straight_through, commitment }
    }

    /// The moving-average update with the batch's vectors `z` `[n, dim]` (no gradient) and their
    /// `codes`, then the restart of dead codes at rows of `z` drawn from `rng`.
    pub fn ema_update(self, z: Tensor<2>, codes: Tensor<1, Int>, rng: &mut SeededRng) -> (Self, CodebookStats) {
        let (k, dim) = (self.codes(), self.dim());
        let n = z.dims()[0];
        let device = z.device();
        let z = z.detach();
        let onehot: Tensor<2> = codes.one_hot::<2>(k).float(); // [n, K]
        let counts: Vec<f64> = to_f32_vec(onehot.clone().sum_dim(0)).into_iter().map(f64::from).collect();
        let sums = onehot.transpose().matmul(z.clone()); // [K, dim]
        let decay = self.decay;
        let old: Vec<f32> = to_f32_vec(self.cluster_size.val());
        let mut cluster: Vec<f64> =
            old.iter().zip(&counts).map(|(&c, &m)| decay * f64::from(c) + (1.0 - decay) * m).collect();
        let embed_sum = self.embed_sum.val() * decay + sums * (1.0 - decay);
        // Laplace smoothing: (c + eps) / (total + K eps) * total.
        let total: f64 = cluster.iter().sum();
        let eps = self.epsilon;
        let smoothed: Vec<f32> = cluster
            .iter()
            .map(|&c| ((c + eps) / (total + k as f64 * eps) * total).max(f64::MIN_POSITIVE) as f32)
            .collect();
        let smoothed = Tensor::<1>::from_data(TensorData::new(smoothed, [k]), &device);
        let mut codebook = embed_sum.clone() / smoothed.reshape([k, 1]).expand([k, dim]);
        // Dead codes restart at random rows of the batch, with the threshold's count.
        let dead: Vec<usize> = (0..k).filter(|&j| cluster[j] < self.restart_threshold).collect();
        let mut embed_sum = embed_sum;
        if !dead.is_empty() {
            let mut rows = vec![0i64; k];
            let mut mask = vec![false; k * dim];
            for &j in &dead {
                rows[j] = rng.below(n) as i64;
                mask[j * dim..(j + 1) * dim].fill(true);
                cluster[j] = self.restart_threshold;
            }
            let picked = z.select(0, Tensor::<1, Int>::from_data(TensorData::new(rows, [k]), &device)); // [K, dim]
            let mask = Tensor::<2, Bool>::from_data(TensorData::new(mask, [k, dim]), &device);
            codebook = codebook.mask_where(mask.clone(), picked.clone());
            embed_sum = embed_sum.mask_where(mask, picked * self.restart_threshold);
        }
        let stats = CodebookStats {
            perplexity: perplexity(&counts),
            used: counts.iter().filter(|&&c| c > 0.0).count(),
            restarted: dead.len(),
        };
        let cluster: Vec<f32> = cluster.into_iter().map(|c| c as f32).collect();
        let cluster = Tensor::<1>::from_data(TensorData::new(cluster, [k]), &device);
        let updated = VectorQuantizer {
            codebook: self.codebook.map(|_| codebook),
            cluster_size: self.cluster_size.map(|_| cluster),
            embed_sum: self.embed_sum.map(|_| embed_sum),
            ..self
        };
        (updated, stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev() -> Device {
        Device::flex()
    }

    fn quantizer(
        codebook: &[f32],
        k: usize,
        d: usize,
        cluster: &[f32],
        embed: &[f32],
        threshold: f64,
    ) -> VectorQuantizer {
        let dev = dev();
        VectorQuantizer {
            codebook: frozen(codebook.to_vec(), [k, d], &dev),
            cluster_size: frozen(cluster.to_vec(), [k], &dev),
            embed_sum: frozen(embed.to_vec(), [k, d], &dev),
            decay: 0.9,
            epsilon: 1e-5,
            restart_threshold: threshold,
        }
    }

    fn t2(v: Vec<f32>, n: usize, d: usize, device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v, [n, d]), device)
    }

    fn ints(t: Tensor<1, Int>) -> Vec<usize> {
        genlab_core::tensors::to_i64_vec(t).into_iter().map(|v| v as usize).collect()
    }

    /// The nearest code of each row, by float64 brute force.
    fn nearest64(z: &[f32], e: &[f32], d: usize) -> Vec<usize> {
        z.chunks(d)
            .map(|row| {
                let dist = |c: &[f32]| row.iter().zip(c).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum::<f64>();
                let mut best = 0;
                for (j, c) in e.chunks(d).enumerate() {
                    if dist(c) < dist(&e[best * d..(best + 1) * d]) {
                        best = j;
                    }
                }
                best
            })
            .collect()
    }

    #[test]
    fn nearest_codes_match_brute_force() {
        let (n, k, d) = (50, 7, 3);
        let mut r = SeededRng::new(3);
        let z = r.normal_vec(n * d);
        let e = r.normal_vec(k * d);
        let q = quantizer(&e, k, d, &[1.0; 7], &e, 0.0);
        assert_eq!(ints(q.nearest(t2(z.clone(), n, d, &dev()))), nearest64(&z, &e, d));
    }

    /// Forward, the straight-through vectors are the codes; backward, the gradient of
    /// `sum(w * st) + beta * commitment` with respect to z is `w + beta * 2 (z - q) / (n dim)`:
    /// the decoder's gradient copied to the encoder, plus the commitment's pull.
    #[test]
    fn straight_through_gradient_copies_the_decoder_gradient() {
        let ad = Device::flex().autodiff();
        let (n, k, d, beta) = (6, 4, 3, 0.25f32);
        let mut r = SeededRng::new(11);
        let (z, e, w) = (r.normal_vec(n * d), r.normal_vec(k * d), r.normal_vec(n * d));
        let mut q = quantizer(&e, k, d, &[1.0; 4], &e, 0.0);
        q.codebook = frozen(e.clone(), [k, d], &ad);
        let zt = t2(z.clone(), n, d, &ad).require_grad();
        let out = q.quantize(zt.clone());
        let st = to_f32_vec(out.straight_through.clone());
        let codes = nearest64(&z, &e, d);
        let qv: Vec<f32> = codes.iter().flat_map(|&c| e[c * d..(c + 1) * d].to_vec()).collect();
        for (a, b) in st.iter().zip(&qv) {
            assert!((a - b).abs() < 1e-6, "straight-through forward {a} vs code {b}");
        }
        let loss = (out.straight_through * t2(w.clone(), n, d, &ad)).sum() + out.commitment * beta;
        let grads = loss.backward();
        let g = to_f32_vec(zt.grad(&grads).expect("z should have a gradient"));
        for i in 0..n * d {
            let want = w[i] as f64 + beta as f64 * 2.0 * (z[i] as f64 - qv[i] as f64) / (n * d) as f64;
            assert!((g[i] as f64 - want).abs() < 1e-5, "dL/dz[{i}] = {} vs {want}", g[i]);
        }
    }

    /// The moving averages, the Laplace smoothing and the new codebook against a float64
    /// recomputation of the paper's formulas.
    #[test]
    fn ema_update_matches_float64() {
        let (n, k, d) = (40, 6, 3);
        let mut r = SeededRng::new(5);
        let z = r.normal_vec(n * d);
        let e = r.normal_vec(k * d);
        let cluster: Vec<f32> = r.uniform_vec(k).into_iter().map(|u| 0.5 + 3.0 * u).collect();
        let embed = r.normal_vec(k * d);
        let q = quantizer(&e, k, d, &cluster, &embed, 0.0);
        let codes = q.nearest(t2(z.clone(), n, d, &dev()));
        let assigned = nearest64(&z, &e, d);
        let (q, stats) = q.ema_update(t2(z.clone(), n, d, &dev()), codes, &mut SeededRng::new(0));
        let decay = 0.9f64;
        let mut count = vec![0.0f64; k];
        let mut sum = vec![0.0f64; k * d];
        for (i, &c) in assigned.iter().enumerate() {
            count[c] += 1.0;
            for j in 0..d {
                sum[c * d + j] += z[i * d + j] as f64;
            }
        }
        let c64: Vec<f64> = (0..k).map(|j| decay * cluster[j] as f64 + (1.0 - decay) * count[j]).collect();
        let s64: Vec<f64> = (0..k * d).map(|i| decay * embed[i] as f64 + (1.0 - decay) * sum[i]).collect();
        let total: f64 = c64.iter().sum();
        let got_c = to_f32_vec(q.cluster_size.val());
        let got_s = to_f32_vec(q.embed_sum.val());
        let got_e = to_f32_vec(q.codebook.val());
        for j in 0..k {
            assert!((got_c[j] as f64 - c64[j]).abs() < 1e-5, "cluster {j}");
            let smoothed = (c64[j] + 1e-5) / (total + k as f64 * 1e-5) * total;
            for i in 0..d {
                let at = j * d + i;
                assert!((got_s[at] as f64 - s64[at]).abs() < 1e-5, "embed_sum {at}");
                let want = s64[at] / smoothed;
                assert!(
                    (got_e[at] as f64 - want).abs() < 1e-5 * (1.0 + want.abs()),
                    "code {at}: {} vs {want}",
                    got_e[at]
                );
            }
        }
        assert_eq!(stats.restarted, 0);
        assert_eq!(stats.used, count.iter().filter(|&&c| c > 0.0).count());
        let p: Vec<f64> = count.iter().map(|c| c / n as f64).collect();
        let want = (-p.iter().filter(|&&x| x > 0.0).map(|x| x * x.ln()).sum::<f64>()).exp();
        assert!((stats.perplexity - want).abs() < 1e-12);
    }

    /// A code far from every vector gets none of them; its count falls below the threshold and
    /// it restarts at one of the batch's vectors, exactly, with the threshold's count. The others
    /// keep their moving averages.
    #[test]
    fn a_dead_code_restarts_at_an_encoder_output() {
        let (n, k, d) = (12, 3, 2);
        let mut r = SeededRng::new(9);
        let z: Vec<f32> = r.normal_vec(n * d);
        let e = [0.5, 0.5, -0.5, -0.5, 1000.0, 1000.0];
        let cluster = [2.0, 2.0, 0.5];
        let embed = [1.0, 1.0, -1.0, -1.0, 500.0, 500.0];
        let q = quantizer(&e, k, d, &cluster, &embed, 0.5);
        let codes = q.nearest(t2(z.clone(), n, d, &dev()));
        assert!(!ints(codes.clone()).contains(&2));
        let (q, stats) = q.ema_update(t2(z.clone(), n, d, &dev()), codes, &mut SeededRng::new(1));
        assert_eq!(stats.restarted, 1);
        let book = to_f32_vec(q.codebook.val());
        let restarted = &book[4..6];
        assert!(z.chunks(d).any(|row| row == restarted), "code 2 = {restarted:?} is not a row of the batch");
        assert_eq!(to_f32_vec(q.cluster_size.val())[2], 0.5);
        let sum: Vec<f32> = restarted.iter().map(|v| v * 0.5).collect();
        assert_eq!(&to_f32_vec(q.embed_sum.val())[4..6], &sum[..]);
        // The live codes moved towards their vectors' means, and were not restarted.
        assert!(book[0] < 10.0 && book[2] < 10.0);
        assert!(to_f32_vec(q.cluster_size.val())[0] >= 1.8);
    }

    #[test]
    fn perplexity_of_known_counts() {
        assert!((perplexity(&[5.0, 5.0, 5.0, 5.0]) - 4.0).abs() < 1e-12);
        assert!((perplexity(&[7.0, 0.0, 0.0]) - 1.0).abs() < 1e-12);
        assert_eq!(perplexity(&[0.0, 0.0]), 0.0);
    }
}
