//! Noise schedules and prediction targets, computed in float64 on the host (T is at most a few
//! thousand). `alphas_cumprod[t]` is alpha-bar of Ho et al. (2020): x_t = sqrt(a) x0 + sqrt(1 - a)
//! eps. Names and formulas follow diffusers' `DDPMScheduler`: `linear` (DDPM), `scaled_linear`
//! (Stable Diffusion's), `cosine` (Nichol & Dhariwal 2021, <https://arxiv.org/abs/2102.09672>,
//! diffusers' `squaredcos_cap_v2`).

use serde::{Deserialize, Serialize};

/// How the betas are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// `beta_start..beta_end` evenly spaced (DDPM: 1e-4..0.02 over 1000 steps).
    Linear,
    /// `sqrt(beta_start)..sqrt(beta_end)` evenly spaced, squared.
    ScaledLinear,
    /// alpha-bar(t) = cos((t/T + 0.008) / 1.008 * pi/2)^2, each beta capped at 0.999.
    Cosine,
}

/// What the network predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prediction {
    /// The noise eps (Ho et al. 2020).
    Epsilon,
    /// The clean sample x0.
    Sample,
    /// v = sqrt(a) eps - sqrt(1 - a) x0 (Salimans & Ho 2022, <https://arxiv.org/abs/2202.00512>).
    V,
}

/// A discrete noise schedule of `len()` steps.
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseSchedule {
    pub betas: Vec<f64>,
    pub alphas_cumprod: Vec<f64>,
}

/// `n` evenly spaced values from `a` to `b` inclusive (`torch.linspace`).
fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    match n {
        0 => vec![],
        1 => vec![a],
        _ => (0..n).map(|i| a + (b - a) * i as f64 / (n - 1) as f64).collect(),
    }
}

impl NoiseSchedule {
    /// The schedule `kind` over `steps` steps (`beta_start`, `beta_end` unused by `Cosine`).
    pub fn new(kind: BetaSchedule, steps: usize, beta_start: f64, beta_end: f64) -> Self {
        let betas = match kind {
            BetaSchedule::Linear => linspace(beta_start, beta_end, steps),
            BetaSchedule::ScaledLinear => {
                linspace(beta_start.sqrt(), beta_end.sqrt(), steps).into_iter().map(|b| b * b).collect()
            }
            BetaSchedule::Cosine => {
                let bar = |t: f64| ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
                (0..steps)
                    .map(|i| {
                        let (t1, t2) = (i as f64 / steps as f64, (i + 1) as f64 / steps as f64);
                        (1.0 - bar(t2) / bar(t1)).min(0.999)
                    })
                    .collect()
            }
        };
        let alphas_cumprod = betas
            .iter()
            .scan(1.0, |acc, b| {
                *acc *= 1.0 - b;
                Some(*acc)
            })
            .collect();
        NoiseSchedule { betas, alphas_cumprod }
    }

    pub fn len(&self) -> usize {
        self.betas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }

    /// The signal-to-noise ratio a / (1 - a) at step `t` (min-SNR weighting reads it).
    pub fn snr(&self, t: usize) -> f64 {
        let a = self.alphas_cumprod[t];
        a / (1.0 - a)
    }
}

impl Prediction {
    /// The clean sample implied by `output` for `x` at alpha-bar `a`, one value at a time.
    pub fn to_x0(self, output: f64, x: f64, a: f64) -> f64 {
        let (sa, s1) = (a.sqrt(), (1.0 - a).sqrt());
        match self {
            Prediction::Epsilon => (x - s1 * output) / sa,
            Prediction::Sample => output,
            Prediction::V => sa * x - s1 * output,
        }
    }

    /// The noise implied by `output` for `x` at alpha-bar `a`.
    pub fn to_eps(self, output: f64, x: f64, a: f64) -> f64 {
        let (sa, s1) = (a.sqrt(), (1.0 - a).sqrt());
        match self {
            Prediction::Epsilon => output,
            Prediction::Sample => (x - sa * output) / s1,
            Prediction::V => s1 * x + sa * output,
        }
    }

    /// What this target is for the pair (x0, eps) at alpha-bar `a`: the training target.
    pub fn target(self, x0: f64, eps: f64, a: f64) -> f64 {
        match self {
            Prediction::Epsilon => eps,
            Prediction::Sample => x0,
            Prediction::V => a.sqrt() * eps - (1.0 - a).sqrt() * x0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> serde_json::Value {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diffusers_schedulers.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    /// Closed forms: the linear schedule's alpha-bar is the product of (1 - beta_i); the cosine
    /// schedule's is cos^2 of its time, normalised, wherever no beta is capped.
    #[test]
    fn alpha_bar_matches_its_closed_form() {
        let s = NoiseSchedule::new(BetaSchedule::Linear, 1000, 1e-4, 0.02);
        let want: f64 = (0..=499).map(|i| 1.0 - (1e-4 + (0.02 - 1e-4) * i as f64 / 999.0)).product();
        assert!((s.alphas_cumprod[499] - want).abs() < 1e-12);
        let c = NoiseSchedule::new(BetaSchedule::Cosine, 1000, 0.0, 0.0);
        let bar = |t: f64| ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
        for t in [0usize, 100, 500, 900] {
            let want = bar((t + 1) as f64 / 1000.0) / bar(0.0);
            assert!((c.alphas_cumprod[t] - want).abs() < 1e-9, "t {t}: {} vs {want}", c.alphas_cumprod[t]);
        }
    }

    /// Against diffusers' `DDPMScheduler` (float32 there, so 1e-5 relative).
    #[test]
    fn alpha_bar_matches_diffusers() {
        let f = fixture();
        for (name, kind) in [
            ("linear", BetaSchedule::Linear),
            ("scaled_linear", BetaSchedule::ScaledLinear),
            ("squaredcos_cap_v2", BetaSchedule::Cosine),
        ] {
            let r = &f["schedules"][name];
            let s = NoiseSchedule::new(kind, 1000, r["beta_start"].as_f64().unwrap(), r["beta_end"].as_f64().unwrap());
            let want: Vec<f64> = r["alphas_cumprod"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            for (t, (g, w)) in s.alphas_cumprod.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-5 * w.abs().max(1e-4), "{name} t {t}: {g} vs {w}");
            }
        }
    }

    /// eps, x0 and v convert into each other exactly (to rounding), at every noise level.
    #[test]
    fn prediction_targets_round_trip() {
        let (x0, eps) = (0.7, -1.3);
        for a in [0.9999f64, 0.5, 1e-3] {
            let x = a.sqrt() * x0 + (1.0 - a).sqrt() * eps;
            for p in [Prediction::Epsilon, Prediction::Sample, Prediction::V] {
                let out = p.target(x0, eps, a);
                assert!((p.to_x0(out, x, a) - x0).abs() < 1e-9, "{p:?} a {a}");
                assert!((p.to_eps(out, x, a) - eps).abs() < 1e-9, "{p:?} a {a}");
            }
        }
    }
}
