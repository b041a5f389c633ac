//! The Rényi-DP accountant of the sampled Gaussian mechanism (Mironov 2017,
//! <https://arxiv.org/abs/1702.07476>; Mironov, Talwar & Zhang 2019, <https://arxiv.org/abs/1908.10530>,
//! section 3.3), converted to (epsilon, delta) by Balle et al. 2020, theorem 21
//! (<https://arxiv.org/abs/1905.09982>), over Opacus's default orders: the computation of Opacus's
//! `RDPAccountant` (TF Privacy's `rdp_accountant`), checked against it on a committed grid
//! (`fixtures/make_accountant_fixture.py`). Noise calibration for a target epsilon is Opacus's
//! `get_noise_multiplier` search.

use serde::{Deserialize, Serialize};

/// Opacus's `RDPAccountant.DEFAULT_ALPHAS`: 1.1, 1.2, ..., 10.9, then 12, 13, ..., 63.
pub fn default_orders() -> Vec<f64> {
    (1..100).map(|x| 1.0 + x as f64 / 10.0).chain((12..64).map(f64::from)).collect()
}

/// log(exp(a) + exp(b)).
fn log_add(a: f64, b: f64) -> f64 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    (lo - hi).exp().ln_1p() + hi
}

/// log(exp(a) - exp(b)) for a >= b.
fn log_sub(a: f64, b: f64) -> f64 {
    if b == f64::NEG_INFINITY {
        return a;
    }
    if a <= b {
        return f64::NEG_INFINITY;
    }
    let d = (a - b).exp_m1();
    if d.is_infinite() {
        return a;
    }
    d.ln() + b
}

/// log(erfc(x)), accurate where erfc underflows: the asymptotic series of erfc beyond x = 20
/// (its terms there fall below 1e-11 after the fifth).
fn log_erfc(x: f64) -> f64 {
    if x < 20.0 {
        return libm::erfc(x).ln();
    }
    let r = 1.0 / (x * x);
    let series = 1.0 - 0.5 * r + 0.75 * r * r - 1.875 * r * r * r + 6.5625 * r * r * r * r;
    -x * x - x.ln() - 0.5 * std::f64::consts::PI.ln() + series.ln()
}

/// log |binom(alpha, i)| and its sign for i = 0, 1, 2, ... and real `alpha`, each from the last
/// by binom(alpha, i) = binom(alpha, i - 1) (alpha - i + 1) / i.
struct LogBinomials {
    alpha: f64,
    i: u64,
    log: f64,
    sign: f64,
}

impl LogBinomials {
    fn new(alpha: f64) -> Self {
        LogBinomials { alpha, i: 0, log: 0.0, sign: 1.0 }
    }
}

impl Iterator for LogBinomials {
    type Item = (f64, f64);
    fn next(&mut self) -> Option<(f64, f64)> {
        if self.i > 0 {
            let f = (self.alpha - self.i as f64 + 1.0) / self.i as f64;
            if f == 0.0 {
                (self.log, self.sign) = (f64::NEG_INFINITY, 0.0);
            } else {
                self.log += f.abs().ln();
                if f < 0.0 {
                    self.sign = -self.sign;
                }
            }
        }
        self.i += 1;
        Some((self.log, self.sign))
    }
}

/// log(A_alpha) for whole `alpha` (the binomial expansion).
fn log_a_int(q: f64, sigma: f64, alpha: u64) -> f64 {
    let mut log_a = f64::NEG_INFINITY;
    for (i, (log_coef, _)) in (0..=alpha).zip(LogBinomials::new(alpha as f64)) {
        let fi = i as f64;
        let s = log_coef + fi * q.ln() + (alpha - i) as f64 * (1.0 - q).ln() + (fi * fi - fi) / (2.0 * sigma * sigma);
        log_a = log_add(log_a, s);
    }
    log_a
}

/// log(A_alpha) for fractional `alpha` (the two erfc series, summed until their terms fall below
/// e^-30).
fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> f64 {
    let (mut log_a0, mut log_a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let s2 = std::f64::consts::SQRT_2 * sigma;
    for (i, (log_coef, sign)) in (0u64..).zip(LogBinomials::new(alpha)) {
        let fi = i as f64;
        let j = alpha - fi;
        let log_t0 = log_coef + fi * q.ln() + j * (1.0 - q).ln();
        let log_t1 = log_coef + j * q.ln() + fi * (1.0 - q).ln();
        let log_e0 = 0.5f64.ln() + log_erfc((fi - z0) / s2);
        let log_e1 = 0.5f64.ln() + log_erfc((z0 - j) / s2);
        let log_s0 = log_t0 + (fi * fi - fi) / (2.0 * sigma * sigma) + log_e0;
        let log_s1 = log_t1 + (j * j - j) / (2.0 * sigma * sigma) + log_e1;
        if sign > 0.0 {
            log_a0 = log_add(log_a0, log_s0);
            log_a1 = log_add(log_a1, log_s1);
        } else {
            log_a0 = log_sub(log_a0, log_s0);
            log_a1 = log_sub(log_a1, log_s1);
        }
        if log_s0.max(log_s1) < -30.0 {
            break;
        }
    }
    log_add(log_a0, log_a1)
}

/// The RDP of one step of the sampled Gaussian mechanism at order `alpha`: sampling rate `q`,
/// noise multiplier `sigma` (noise standard deviation over the L2 sensitivity).
pub fn rdp_step(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if sigma == 0.0 || alpha.is_infinite() {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return alpha / (2.0 * sigma * sigma);
    }
    let log_a = if alpha.fract() == 0.0 { log_a_int(q, sigma, alpha as u64) } else { log_a_frac(q, sigma, alpha) };
    log_a / (alpha - 1.0)
}

/// The smallest epsilon of (epsilon, delta)-DP that RDP values `rdp` at `orders` give, with the
/// order that gives it (Balle et al. 2020, theorem 21); infinite when no order gives a number.
pub fn epsilon_from_rdp(orders: &[f64], rdp: &[f64], delta: f64) -> (f64, f64) {
    let mut best = (f64::INFINITY, f64::NAN);
    for (&a, &r) in orders.iter().zip(rdp) {
        let eps = r - (delta.ln() + a.ln()) / (a - 1.0) + ((a - 1.0) / a).ln();
        if eps < best.0 {
            best = (eps, a);
        }
    }
    best
}

/// One run of steps at a fixed sampling rate and noise multiplier (Opacus's history entry).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub noise_multiplier: f64,
    pub sample_rate: f64,
    pub steps: u64,
}

/// The privacy spent so far: the phases of training, as Opacus's `RDPAccountant.history`; saved in
/// checkpoints so that a resumed run continues the budget exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RdpAccountant {
    pub history: Vec<Phase>,
}

impl RdpAccountant {
    /// Records one step (merged into the last phase when its parameters are the same).
    pub fn step(&mut self, noise_multiplier: f64, sample_rate: f64) {
        match self.history.last_mut() {
            Some(p) if p.noise_multiplier == noise_multiplier && p.sample_rate == sample_rate => p.steps += 1,
            _ => self.history.push(Phase { noise_multiplier, sample_rate, steps: 1 }),
        }
    }

    /// Steps recorded.
    pub fn steps(&self) -> u64 {
        self.history.iter().map(|p| p.steps).sum()
    }

    /// The total RDP at each of `orders`.
    pub fn rdp(&self, orders: &[f64]) -> Vec<f64> {
        let mut total = vec![0.0; orders.len()];
        for p in &self.history {
            for (t, &a) in total.iter_mut().zip(orders) {
                *t += rdp_step(p.sample_rate, p.noise_multiplier, a) * p.steps as f64;
            }
        }
        total
    }

    /// Epsilon at `delta` over the default orders (0 before the first step).
    pub fn epsilon(&self, delta: f64) -> f64 {
        if self.history.is_empty() {
            return 0.0;
        }
        let orders = default_orders();
        epsilon_from_rdp(&orders, &self.rdp(&orders), delta).0
    }
}

/// Epsilon after `steps` steps at one sampling rate and noise multiplier.
pub fn epsilon_after(noise_multiplier: f64, sample_rate: f64, steps: u64, delta: f64) -> f64 {
    RdpAccountant { history: vec![Phase { noise_multiplier, sample_rate, steps }] }.epsilon(delta)
}

/// Opacus's `MAX_SIGMA`: the search gives up beyond this noise multiplier.
pub const MAX_NOISE_MULTIPLIER: f64 = 1e6;

/// The noise multiplier that spends at most `target_epsilon` (within `tolerance` below it) in
/// `steps` steps at `sample_rate`: Opacus's `get_noise_multiplier` (double until under the
/// target, then bisect). None when even a multiplier of 1e6 spends more: the budget is too low.
pub fn noise_multiplier_for(
    target_epsilon: f64,
    delta: f64,
    sample_rate: f64,
    steps: u64,
    tolerance: f64,
) -> Option<f64> {
    let (mut low, mut high) = (0.0, 10.0);
    let mut eps_high = f64::INFINITY;
    while eps_high > target_epsilon {
        high *= 2.0;
        eps_high = epsilon_after(high, sample_rate, steps, delta);
        if high > MAX_NOISE_MULTIPLIER {
            return None;
        }
    }
    while target_epsilon - eps_high > tolerance {
        let mid = (low + high) / 2.0;
        let eps = epsilon_after(mid, sample_rate, steps, delta);
        if eps < target_epsilon {
            high = mid;
            eps_high = eps;
        } else {
            low = mid;
        }
    }
    Some(high)
}

#[cfg(test)]
mod tests;
