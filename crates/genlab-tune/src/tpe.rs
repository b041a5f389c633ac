//! The Tree-structured Parzen Estimator (Bergstra et al. 2011,
//! <https://papers.nips.cc/paper/4443-algorithms-for-hyper-parameter-optimization>), as Optuna's
//! `TPESampler` (5.0) computes it, univariate or multivariate (Falkner et al. 2018, BOHB,
//! <https://arxiv.org/abs/1807.01774>): the finished trials split into the best `gamma(n)` and the
//! rest; a Parzen estimator (a truncated-normal or categorical kernel per observation, plus a
//! prior kernel) is fitted to each group; 24 candidates drawn from the "good" estimator are scored
//! by log l(x) - log g(x) and the best is proposed. Running trials count as "bad" observations
//! (Optuna's constant liar), so parallel workers spread out.

use crate::space::Distribution;
use crate::trial::{Direction, Trial, TrialState};
use crate::truncnorm;
use rand::Rng;

/// The TPE settings (Optuna's defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TpeSettings {
    pub multivariate: bool,
    /// Random trials before the model is used.
    pub startup: usize,
    pub candidates: usize,
    pub constant_liar: bool,
    pub prior_weight: f64,
}

impl Default for TpeSettings {
    fn default() -> Self {
        TpeSettings { multivariate: true, startup: 10, candidates: 24, constant_liar: true, prior_weight: 1.0 }
    }
}

/// Optuna's `default_gamma`: the size of the "good" group.
pub fn gamma(n: usize) -> usize {
    ((0.1 * n as f64).ceil() as usize).min(25)
}

/// Optuna's `default_weights`: older observations ramp down once there are more than 25.
pub fn default_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let m = n - 25;
    let ramp = (0..m).map(|i| {
        if m == 1 {
            1.0 / n as f64
        } else {
            1.0 / n as f64 + (1.0 - 1.0 / n as f64) * i as f64 / (m - 1) as f64
        }
    });
    ramp.chain(std::iter::repeat_n(1.0, 25)).collect()
}

/// One dimension of a mixture: a kernel per component.
#[derive(Debug, Clone)]
enum Dim {
    Categorical {
        weights: Vec<Vec<f64>>,
    },
    Numerical {
        mu: Vec<f64>,
        sigma: Vec<f64>,
        low: f64,
        high: f64,
        adapted_low: f64,
        adapted_high: f64,
        log: bool,
        step: f64,
    },
}

/// A mixture of product kernels (Optuna's `_MixtureOfProductDistribution`).
#[derive(Debug, Clone)]
pub struct ParzenEstimator {
    weights: Vec<f64>,
    dims: Vec<Dim>,
}

impl ParzenEstimator {
    /// `observations[i]` holds one trial's internal values, in the order of `dists`.
    pub fn new(observations: &[Vec<f64>], dists: &[&Distribution], prior_weight: f64) -> ParzenEstimator {
        let n = observations.len();
        let mut weights = if n == 0 { vec![1.0] } else { default_weights(n) };
        if n > 0 {
            weights.push(prior_weight);
        }
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        let dims = dists
            .iter()
            .enumerate()
            .map(|(j, d)| {
                let column: Vec<f64> = observations.iter().map(|o| o[j]).collect();
                Self::dim(&column, d, prior_weight)
            })
            .collect();
        ParzenEstimator { weights, dims }
    }

    fn dim(obs: &[f64], d: &Distribution, prior_weight: f64) -> Dim {
        let (low, high, log, step) = match *d {
            Distribution::Categorical { ref choices } => {
                let k = choices.len();
                if obs.is_empty() {
                    return Dim::Categorical { weights: vec![vec![1.0 / k as f64; k]] };
                }
                let kernels = obs.len() + 1;
                let mut w = vec![vec![prior_weight / kernels as f64; k]; kernels];
                for (row, &x) in w.iter_mut().zip(obs) {
                    row[x as usize] += 1.0;
                }
                for row in &mut w {
                    let s: f64 = row.iter().sum();
                    let s = if s == 0.0 { 1.0 } else { s };
                    row.iter_mut().for_each(|v| *v /= s);
                }
                return Dim::Categorical { weights: w };
            }
            Distribution::Float { low, high, log, step } => (low, high, log, step.unwrap_or(0.0)),
            Distribution::Int { low, high, log, step } => (low as f64, high as f64, log, step as f64),
        };
        let (mut lo, mut hi) = (low - step / 2.0, high + step / 2.0);
        let mut mus: Vec<f64> = obs.to_vec();
        if log {
            lo = lo.ln();
            hi = hi.ln();
            mus.iter_mut().for_each(|m| *m = m.ln());
        }
        let mut sigma = sigmas(&mus, lo, hi);
        mus.push(0.5 * (lo + hi));
        sigma.push(hi - lo);
        Dim::Numerical { mu: mus, sigma, low, high, adapted_low: lo, adapted_high: hi, log, step }
    }

    /// Draws `n` points (internal values, one vector per point).
    pub fn sample<R: Rng>(&self, rng: &mut R, n: usize) -> Vec<Vec<f64>> {
        (0..n)
            .map(|_| {
                let k = pick(&self.weights, rng.gen());
                self.dims
                    .iter()
                    .map(|d| match d {
                        Dim::Categorical { weights } => pick(&weights[k], rng.gen()) as f64,
                        Dim::Numerical { mu, sigma, low, high, adapted_low, adapted_high, log, step } => {
                            let (m, s) = (mu[k], sigma[k]);
                            let q: f64 = rng.gen();
                            let z = truncnorm::ppf(q, (adapted_low - m) / s, (adapted_high - m) / s);
                            let mut x = m + s * z;
                            if *log {
                                x = x.exp();
                            }
                            if *step > 0.0 {
                                x = (low + ((x - low) / step).round() * step).clamp(*low, *high);
                            }
                            x
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// log density (probability for categorical and stepped dimensions) of a point.
    pub fn log_pdf(&self, x: &[f64]) -> f64 {
        let per_component: Vec<f64> = (0..self.weights.len())
            .map(|k| {
                let mut lp = self.weights[k].ln();
                for (d, &xi) in self.dims.iter().zip(x) {
                    lp += match d {
                        Dim::Categorical { weights } => weights[k][xi as usize].ln(),
                        Dim::Numerical { mu, sigma, adapted_low, adapted_high, log, step, .. } => {
                            let (m, s) = (mu[k], sigma[k]);
                            let (a, b) = ((adapted_low - m) / s, (adapted_high - m) / s);
                            if *step == 0.0 {
                                let xt = if *log { xi.ln() } else { xi };
                                truncnorm::logpdf(xt, a, b, m, s)
                            } else {
                                let (l, r) = (xi - step / 2.0, xi + step / 2.0);
                                let (l, r) = if *log { (l.ln(), r.ln()) } else { (l, r) };
                                truncnorm::log_gauss_mass((l - m) / s, (r - m) / s) - truncnorm::log_gauss_mass(a, b)
                            }
                        }
                    };
                }
                lp
            })
            .collect();
        let max = per_component.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let max = if max == f64::NEG_INFINITY { 0.0 } else { max };
        per_component.iter().map(|v| (v - max).exp()).sum::<f64>().ln() + max
    }
}

/// The index `u` (uniform in [0, 1)) lands on in the cumulative `probabilities` (the last when
/// rounding leaves their sum short of `u`).
fn pick(probabilities: &[f64], u: f64) -> usize {
    let mut acc = 0.0;
    for (i, p) in probabilities.iter().enumerate() {
        acc += p;
        if u < acc {
            return i;
        }
    }
    probabilities.len() - 1
}

/// Kernel widths: the larger gap to a sorted neighbour (the bounds stand in at the ends), the end
/// kernels taking their inner gap (`consider_endpoints = False`), clipped to
/// [(high - low) / min(100, 1 + kernels), high - low] (the "magic clip").
fn sigmas(mus: &[f64], low: f64, high: f64) -> Vec<f64> {
    let n = mus.len();
    if n == 0 {
        return vec![];
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| mus[a].total_cmp(&mus[b]));
    let mut ext = Vec::with_capacity(n + 2);
    ext.push(low);
    ext.extend(order.iter().map(|&i| mus[i]));
    ext.push(high);
    let mut sorted: Vec<f64> = (1..=n).map(|i| (ext[i] - ext[i - 1]).max(ext[i + 1] - ext[i])).collect();
    if ext.len() >= 4 {
        sorted[0] = ext[2] - ext[1];
        sorted[n - 1] = ext[n] - ext[n - 1];
    }
    let max_sigma = high - low;
    let min_sigma = (high - low) / 100f64.min(1.0 + (n + 1) as f64);
    let mut out = vec![0.0; n];
    for (rank, &i) in order.iter().enumerate() {
        out[i] = sorted[rank].clamp(min_sigma, max_sigma);
    }
    out
}

/// The "good" and "bad" trials (Optuna's `_split_trials`): the best `n_below` complete trials,
/// topped up with pruned trials ranked by how far and how well they got; running trials are bad.
pub fn split<'a>(trials: &[&'a Trial], n_below: usize, direction: Direction) -> (Vec<&'a Trial>, Vec<&'a Trial>) {
    let mut complete: Vec<&Trial> = trials.iter().copied().filter(|t| t.state == TrialState::Complete).collect();
    let mut pruned: Vec<&Trial> = trials.iter().copied().filter(|t| t.state == TrialState::Pruned).collect();
    let running = trials.iter().copied().filter(|t| t.state == TrialState::Running);
    complete.sort_by(|a, b| {
        direction.loss(a.value.unwrap_or(f64::NAN)).total_cmp(&direction.loss(b.value.unwrap_or(f64::NAN)))
    });
    let score = |t: &Trial| -> (i64, f64) {
        match t.last_step() {
            Some((step, v)) if v.is_nan() => (-step, f64::INFINITY),
            Some((step, v)) => (-step, direction.loss(v)),
            None => (1, 0.0),
        }
    };
    pruned.sort_by(|a, b| {
        let (sa, sb) = (score(a), score(b));
        sa.0.cmp(&sb.0).then(sa.1.total_cmp(&sb.1))
    });
    let nc = n_below.min(complete.len());
    let np = (n_below - nc).min(pruned.len());
    let mut below: Vec<&Trial> = complete[..nc].iter().chain(&pruned[..np]).copied().collect();
    let mut above: Vec<&Trial> = complete[nc..].iter().chain(&pruned[np..]).copied().chain(running).collect();
    below.sort_by_key(|t| t.number);
    above.sort_by_key(|t| t.number);
    (below, above)
}

/// Proposes internal values for `names` (with `dists`) from the study's `trials`.
pub fn propose<R: Rng>(
    s: &TpeSettings,
    names: &[&str],
    dists: &[&Distribution],
    trials: &[Trial],
    direction: Direction,
    rng: &mut R,
) -> Option<Vec<f64>> {
    let done = trials.iter().filter(|t| matches!(t.state, TrialState::Complete | TrialState::Pruned)).count();
    if done < s.startup {
        return None;
    }
    let pool: Vec<&Trial> = trials
        .iter()
        .filter(|t| match t.state {
            TrialState::Complete => t.value.is_some_and(|v| !v.is_nan()),
            TrialState::Pruned => true,
            TrialState::Running => s.constant_liar,
            _ => false,
        })
        .collect();
    let n = pool.iter().filter(|t| t.state != TrialState::Running).count();
    let (below, above) = split(&pool, gamma(n), direction);
    let groups: Vec<Vec<usize>> =
        if s.multivariate { vec![(0..names.len()).collect()] } else { (0..names.len()).map(|i| vec![i]).collect() };
    let mut out = vec![0.0; names.len()];
    for group in groups {
        let g_names: Vec<&str> = group.iter().map(|&i| names[i]).collect();
        let g_dists: Vec<&Distribution> = group.iter().map(|&i| dists[i]).collect();
        let obs = |ts: &[&Trial]| -> Vec<Vec<f64>> { ts.iter().filter_map(|t| t.values_of(&g_names)).collect() };
        let l = ParzenEstimator::new(&obs(&below), &g_dists, s.prior_weight);
        let g = ParzenEstimator::new(&obs(&above), &g_dists, s.prior_weight);
        let candidates = l.sample(rng, s.candidates.max(1));
        let best = candidates
            .iter()
            .map(|c| (l.log_pdf(c) - g.log_pdf(c), c))
            .fold(None, |acc: Option<(f64, &Vec<f64>)>, (score, c)| match acc {
                Some((s, _)) if s >= score || score.is_nan() => acc,
                _ => Some((score, c)),
            })
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| candidates[0].clone());
        for (k, &i) in group.iter().enumerate() {
            out[i] = best[k];
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Log densities from Optuna's own `_ParzenEstimator` (fixtures/make_parzen.py) on a space
    /// with every kind of distribution, from 0 to 30 observations (the last past the weight ramp).
    #[test]
    fn log_pdf_matches_optunas_parzen_estimator() {
        let fixture: serde_json::Value =
            serde_json::from_str(include_str!("../fixtures/parzen.json")).expect("fixture");
        let dists = [
            Distribution::Float { low: -2.0, high: 3.0, log: false, step: None },
            Distribution::Float { low: 1e-4, high: 1e-1, log: true, step: None },
            Distribution::Float { low: 0.0, high: 1.0, log: false, step: Some(0.25) },
            Distribution::Int { low: 8, high: 64, log: false, step: 8 },
            Distribution::Int { low: 1, high: 100, log: true, step: 1 },
            Distribution::Categorical {
                choices: ["a", "b", "c"]
                    .iter()
                    .map(|c| crate::space::Choice::from_toml(&toml::Value::from(*c)))
                    .collect(),
            },
        ];
        let names = ["f", "flog", "fstep", "i", "ilog", "c"];
        let column = |m: &serde_json::Value, k: &str| -> Vec<f64> {
            m[k].as_array().expect("column").iter().map(|v| v.as_f64().expect("number")).collect()
        };
        for case in fixture["cases"].as_array().expect("cases") {
            let order: Vec<&str> =
                case["order"].as_array().expect("order").iter().map(|v| v.as_str().expect("name")).collect();
            let refs: Vec<&Distribution> =
                order.iter().map(|k| &dists[names.iter().position(|n| n == k).expect("known")]).collect();
            let rows = |m: &serde_json::Value| -> Vec<Vec<f64>> {
                let cols: Vec<Vec<f64>> = order.iter().map(|k| column(m, k)).collect();
                (0..cols[0].len()).map(|i| cols.iter().map(|c| c[i]).collect()).collect()
            };
            let pe = ParzenEstimator::new(&rows(&case["observations"]), &refs, 1.0);
            let want = case["log_pdf"].as_array().expect("log_pdf");
            for (x, w) in rows(&case["points"]).iter().zip(want) {
                let (got, w) = (pe.log_pdf(x), w.as_f64().expect("number"));
                assert!((got - w).abs() < 1e-9 * w.abs().max(1.0), "{x:?}: {got} vs Optuna {w}");
            }
        }
    }

    #[test]
    fn samples_follow_the_estimator() {
        // One observation at 0.8 on [0, 1]: draws concentrate near it, inside the bounds.
        let d = Distribution::Float { low: 0.0, high: 1.0, log: false, step: None };
        let pe = ParzenEstimator::new(&[vec![0.8]], &[&d], 1.0);
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        let xs = pe.sample(&mut rng, 20_000);
        assert!(xs.iter().all(|x| (0.0..=1.0).contains(&x[0])));
        // The histogram's share in [0.6, 1.0] matches the mixture's integral there.
        let share = xs.iter().filter(|x| x[0] >= 0.6).count() as f64 / xs.len() as f64;
        let n = 4000;
        let mass: f64 =
            (0..n).map(|i| pe.log_pdf(&[0.6 + 0.4 * (i as f64 + 0.5) / n as f64]).exp()).sum::<f64>() * 0.4 / n as f64;
        assert!((share - mass).abs() < 0.015, "{share} vs {mass}");
    }

    #[test]
    fn optunas_gamma_and_weights() {
        assert_eq!((gamma(1), gamma(10), gamma(11), gamma(300)), (1, 1, 2, 25));
        let w = default_weights(30);
        assert_eq!(w.len(), 30);
        assert!((w[0] - 1.0 / 30.0).abs() < 1e-15 && (w[4] - 1.0).abs() < 1e-15 && w[29] == 1.0);
    }
}
