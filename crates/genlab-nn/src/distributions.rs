//! Log-densities and divergences used by likelihood-based families, each summed over every axis but
//! the batch axis: the result has shape `[batch]`, in nats.

use burn::tensor::activation::{log_sigmoid, log_softmax};
use burn::tensor::Int;
use burn::Tensor;

const LOG_2PI: f32 = 1.837_877_1; // ln(2 * pi)

/// log Bernoulli(x | sigmoid(logits)) = x * l - softplus(l), written stably as
/// `log_sigmoid(l) - (1 - x) * l`. `x` may be any value in [0, 1] (continuous BCE).
pub fn bernoulli_log_prob<const D: usize>(logits: Tensor<D>, x: Tensor<D>) -> Tensor<1> {
    let lp = log_sigmoid(logits.clone()) - (x.neg() + 1.0) * logits;
    sum_but_batch(lp)
}

/// log Categorical(label | softmax(logits)): `logits [batch, classes]`, `labels [batch]` in, `[batch]` out.
/// Minus its mean is PyTorch's `F.cross_entropy`.
pub fn categorical_log_prob(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let b = logits.dims()[0];
    log_softmax(logits, 1).gather(1, labels.reshape([b, 1])).reshape([b])
}

/// log N(x | mean, exp(log_sigma)^2), with `log_sigma` broadcast against `mean`.
pub fn gaussian_log_prob<const D: usize>(mean: Tensor<D>, log_sigma: Tensor<D>, x: Tensor<D>) -> Tensor<1> {
    let z = (x - mean) * log_sigma.clone().neg().exp();
    let lp = (z.powi_scalar(2) * 0.5 + log_sigma).neg() - 0.5 * LOG_2PI;
    sum_but_batch(lp)
}

/// log N(z | mu, diag(exp(logvar))), `[batch, dim]` in, `[batch]` out.
pub fn diag_normal_log_prob(z: Tensor<2>, mu: Tensor<2>, logvar: Tensor<2>) -> Tensor<1> {
    let lp = ((z - mu).powi_scalar(2) * logvar.clone().neg().exp() + logvar + LOG_2PI) * -0.5;
    sum_but_batch(lp)
}

/// log N(z | 0, I), `[batch, dim]` in, `[batch]` out.
pub fn std_normal_log_prob(z: Tensor<2>) -> Tensor<1> {
    sum_but_batch((z.powi_scalar(2) + LOG_2PI) * -0.5)
}

/// KL( N(mu, diag(exp(logvar))) || N(0, I) ) in closed form: 0.5 * sum(exp(lv) + mu^2 - 1 - lv).
pub fn kl_diag_normal_std_normal(mu: Tensor<2>, logvar: Tensor<2>) -> Tensor<1> {
    sum_but_batch((logvar.clone().exp() + mu.powi_scalar(2) - logvar - 1.0) * 0.5)
}

/// log(mean(exp(x))) along `dim`, stably: the IWAE bound's average of importance weights.
pub fn log_mean_exp<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let n = x.dims()[dim] as f32;
    let m = x.clone().max_dim(dim).detach();
    (x - m.clone()).exp().sum_dim(dim).log() + m - n.ln()
}

/// Sums every axis but the first: `[batch, ...]` -> `[batch]`.
pub fn sum_but_batch<const D: usize>(x: Tensor<D>) -> Tensor<1> {
    let b = x.dims()[0];
    x.reshape([b as i64, -1]).sum_dim(1).reshape([b])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use genlab_core::SeededRng;

    fn t2(v: Vec<f32>, r: usize, c: usize) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v, [r, c]), &Device::flex())
    }
    fn vec1(t: Tensor<1>) -> Vec<f32> {
        genlab_core::tensors::to_f32_vec(t)
    }

    #[test]
    fn densities_match_float64_formulas() {
        let x = [0.0f32, 1.0, 0.3, 1.0];
        let l = [-30.0f32, 2.0, 0.5, 40.0];
        let got = vec1(bernoulli_log_prob(t2(l.to_vec(), 1, 4), t2(x.to_vec(), 1, 4)))[0] as f64;
        let want: f64 = x
            .iter()
            .zip(l)
            .map(|(&x, l)| {
                let (x, l) = (x as f64, l as f64);
                let p = 1.0 / (1.0 + (-l).exp());
                // stable form for the saturated entries
                if l > 20.0 {
                    x * -(-l).exp().ln_1p() + (1.0 - x) * (-l)
                } else if l < -20.0 {
                    x * l + (1.0 - x) * -(l.exp()).ln_1p()
                } else {
                    x * p.ln() + (1.0 - x) * (1.0 - p).ln()
                }
            })
            .sum();
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");

        let (m, ls, xv) = ([0.1f32, -0.4], [-1.0f32, 0.3], [0.5f32, 0.2]);
        let got = vec1(gaussian_log_prob(t2(m.to_vec(), 1, 2), t2(ls.to_vec(), 1, 2), t2(xv.to_vec(), 1, 2)))[0] as f64;
        let want: f64 = (0..2)
            .map(|i| {
                let s = (ls[i] as f64).exp();
                -0.5 * ((xv[i] - m[i]) as f64 / s).powi(2) - s.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
            })
            .sum();
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    /// The closed-form KL equals E_q[log q(z) - log p(z)], estimated by Monte Carlo with 200k samples.
    #[test]
    fn analytic_kl_matches_monte_carlo() {
        let mu = [0.7f32, -1.2, 0.1];
        let lv = [-0.5f32, 0.4, -2.0];
        let kl = vec1(kl_diag_normal_std_normal(t2(mu.to_vec(), 1, 3), t2(lv.to_vec(), 1, 3)))[0] as f64;
        let n = 200_000;
        let mut rng = SeededRng::new(11);
        let eps = rng.normal_vec(n * 3);
        let z: Vec<f32> = eps.chunks(3).flat_map(|e| (0..3).map(move |i| mu[i] + (0.5 * lv[i]).exp() * e[i])).collect();
        let zt = t2(z, n, 3);
        let rep = |v: [f32; 3]| t2(v.iter().cycle().take(n * 3).copied().collect(), n, 3);
        let diff = diag_normal_log_prob(zt.clone(), rep(mu), rep(lv)) - std_normal_log_prob(zt);
        let d: Vec<f32> = vec1(diff);
        let mean = d.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let sd = (d.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        let se = sd / (n as f64).sqrt();
        assert!((mean - kl).abs() < 4.0 * se, "MC {mean} +- {se} vs analytic {kl}");
    }

    #[test]
    fn categorical_log_prob_matches_float64_log_softmax() {
        let logits = [2.0f32, -1.0, 0.5, 80.0, 79.0, -80.0];
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 1], [2]), &Device::flex());
        let got = vec1(categorical_log_prob(t2(logits.to_vec(), 2, 3), labels));
        for (row, label, g) in [(0usize, 2usize, got[0]), (1, 1, got[1])] {
            let l: Vec<f64> = logits[row * 3..row * 3 + 3].iter().map(|&v| v as f64).collect();
            let m = l.iter().cloned().fold(f64::MIN, f64::max);
            let want = l[label] - m - l.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            assert!((g as f64 - want).abs() < 1e-5, "row {row}: {g} vs {want}");
        }
    }

    #[test]
    fn log_mean_exp_is_stable_and_exact() {
        let x = t2(vec![1000.0, 1000.0, -5.0, 0.0], 2, 2);
        let r = genlab_core::tensors::to_f32_vec(log_mean_exp(x, 1));
        assert!((r[0] - 1000.0).abs() < 1e-3);
        let want = ((((-5.0f64).exp() + 1.0) / 2.0).ln()) as f32;
        assert!((r[1] - want).abs() < 1e-6, "{} vs {want}", r[1]);
    }
}
