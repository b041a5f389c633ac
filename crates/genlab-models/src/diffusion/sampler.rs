//! Samplers, chosen at sampling time, as plans of linear updates. Each step evaluates the network
//! at one timestep, reads its output as a predicted clean sample x0 and noise eps (see
//! [`Prediction`](super::schedule::Prediction)), and then sets
//!
//! `x <- x_coef * x + x0_coef * x0 + eps_coef * eps + prev_x0_coef * prev_x0 + noise_coef * z`
//!
//! where `prev_x0` is the previous step's x0 and `z` fresh standard noise. DDPM's ancestral step,
//! DDIM's and DPM-Solver++(2M)'s are all of this form, so one loop runs them all. When x0 is
//! clipped (diffusers' `clip_sample`), the plans' tests keep eps the network's, as diffusers' DDIM
//! does; the sampling loop (`model.rs`) re-derives eps from the clipped x0, as
//! denoising-diffusion-pytorch does. Timesteps and
//! coefficients follow diffusers' `DDPMScheduler`, `DDIMScheduler` ("leading" spacing,
//! `set_alpha_to_one`) and `DPMSolverMultistepScheduler` (its defaults: "linspace" spacing,
//! second-order midpoint, first order at the first and the last step, final sigma zero).
//! DDIM: Song et al. 2021, <https://arxiv.org/abs/2010.02502>; DPM-Solver++: Lu et al. 2022,
//! <https://arxiv.org/abs/2211.01095>.

use super::schedule::NoiseSchedule;
use serde::{Deserialize, Serialize};

/// The sampler and its settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sampler {
    /// Ancestral sampling with the posterior's variance (beta-tilde), on `steps` timesteps.
    Ddpm,
    /// DDIM; `eta = 0` is deterministic, `eta = 1` is DDPM's variance.
    Ddim { eta: f64 },
    /// DPM-Solver++ multistep, second order (diffusers' default fast sampler).
    DpmSolver2M,
}

/// One step of a plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// The timestep the network is evaluated at.
    pub t: usize,
    /// alpha-bar at `t`.
    pub alpha_bar: f64,
    pub x_coef: f64,
    pub x0_coef: f64,
    pub eps_coef: f64,
    pub prev_x0_coef: f64,
    pub noise_coef: f64,
}

/// diffusers' "leading" spacing: `0, r, 2r, ...` descending, with `r = T / steps`.
fn leading(len: usize, steps: usize) -> Vec<usize> {
    let ratio = len / steps;
    (0..steps).rev().map(|i| i * ratio).collect()
}

/// diffusers' "linspace" spacing: `steps` of `steps + 1` points from `T - 1` down to 0 (rounded
/// half to even, as numpy), the last (0) left out.
fn linspace_spacing(len: usize, steps: usize) -> Vec<usize> {
    let last = (len - 1) as f64;
    let mut t: Vec<usize> =
        (0..=steps).map(|i| (last * i as f64 / steps as f64).round_ties_even() as usize).rev().collect();
    t.pop();
    t
}

impl Sampler {
    /// The plan of `steps` steps on `schedule`; an error names a step count it cannot take.
    pub fn plan(self, schedule: &NoiseSchedule, steps: usize) -> Result<Vec<Step>, String> {
        let len = schedule.len();
        if steps == 0 || steps > len {
            return Err(format!("steps = {steps}: expected 1 to {len} (the schedule's length)"));
        }
        let ac = &schedule.alphas_cumprod;
        Ok(match self {
            Sampler::Ddpm | Sampler::Ddim { .. } => {
                let ts = leading(len, steps);
                let ratio = len / steps;
                ts.iter()
                    .map(|&t| {
                        let a_t = ac[t];
                        let a_prev = if t >= ratio { ac[t - ratio] } else { 1.0 };
                        let variance = (1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev);
                        match self {
                            Sampler::Ddim { eta } => {
                                let sigma = eta * variance.sqrt();
                                Step {
                                    t,
                                    alpha_bar: a_t,
                                    x_coef: 0.0,
                                    x0_coef: a_prev.sqrt(),
                                    eps_coef: (1.0 - a_prev - sigma * sigma).max(0.0).sqrt(),
                                    prev_x0_coef: 0.0,
                                    noise_coef: if t > 0 { sigma } else { 0.0 },
                                }
                            }
                            _ => {
                                let beta = 1.0 - a_t / a_prev;
                                Step {
                                    t,
                                    alpha_bar: a_t,
                                    x_coef: (1.0 - beta).sqrt() * (1.0 - a_prev) / (1.0 - a_t),
                                    x0_coef: a_prev.sqrt() * beta / (1.0 - a_t),
                                    eps_coef: 0.0,
                                    prev_x0_coef: 0.0,
                                    noise_coef: if t > 0 { variance.max(1e-20).sqrt() } else { 0.0 },
                                }
                            }
                        }
                    })
                    .collect()
            }
            Sampler::DpmSolver2M => {
                let ts = linspace_spacing(len, steps);
                let sigma = |t: usize| ((1.0 - ac[t]) / ac[t]).sqrt();
                let mut sigmas: Vec<f64> = ts.iter().map(|&t| sigma(t)).collect();
                sigmas.push(0.0);
                // alpha_t, sigma_t and lambda = log(alpha_t / sigma_t) of a sigma (lambda is +inf at 0).
                let at = |s: f64| 1.0 / (s * s + 1.0).sqrt();
                let lambda = |s: f64| at(s).ln() - (s * at(s)).ln();
                ts.iter()
                    .enumerate()
                    .map(|(i, &t)| {
                        let (s0, s_next) = (sigmas[i], sigmas[i + 1]);
                        let (alpha_t, sigma_t) = (at(s_next), s_next * at(s_next));
                        let h = lambda(s_next) - lambda(s0);
                        let phi = (-h).exp() - 1.0; // exp(-h) - 1; -1 at the final sigma 0
                        let x_coef = sigma_t / (s0 * at(s0));
                        let first_order = i == 0 || i == ts.len() - 1;
                        let (x0_coef, prev_x0_coef) = if first_order {
                            (-alpha_t * phi, 0.0)
                        } else {
                            let r0 = (lambda(s0) - lambda(sigmas[i - 1])) / h;
                            (-alpha_t * phi * (1.0 + 0.5 / r0), alpha_t * phi * 0.5 / r0)
                        };
                        Step { t, alpha_bar: ac[t], x_coef, x0_coef, eps_coef: 0.0, prev_x0_coef, noise_coef: 0.0 }
                    })
                    .collect()
            }
        })
    }
}

impl Step {
    /// The update of one value.
    pub fn apply(&self, x: f64, x0: f64, eps: f64, prev_x0: f64, z: f64) -> f64 {
        self.x_coef * x + self.x0_coef * x0 + self.eps_coef * eps + self.prev_x0_coef * prev_x0 + self.noise_coef * z
    }
}

#[cfg(test)]
mod tests {
    use super::super::schedule::{BetaSchedule, Prediction};
    use super::*;

    fn linear() -> NoiseSchedule {
        NoiseSchedule::new(BetaSchedule::Linear, 1000, 1e-4, 0.02)
    }

    /// Runs `plan` on host values with an epsilon-predicting `model`, clipping x0 when asked.
    fn run(plan: &[Step], x_t: &[f64], clip: bool, model: impl Fn(f64, usize) -> f64) -> Vec<Vec<f64>> {
        let mut x = x_t.to_vec();
        let mut prev = vec![0.0; x.len()];
        let mut out = vec![];
        for s in plan {
            let eps: Vec<f64> = x.iter().map(|&v| model(v, s.t)).collect();
            let x0: Vec<f64> = x
                .iter()
                .zip(&eps)
                .map(|(&v, &e)| {
                    let x0 = Prediction::Epsilon.to_x0(e, v, s.alpha_bar);
                    if clip {
                        x0.clamp(-1.0, 1.0)
                    } else {
                        x0
                    }
                })
                .collect();
            x = (0..x.len()).map(|i| s.apply(x[i], x0[i], eps[i], prev[i], 0.0)).collect();
            prev = x0;
            out.push(x.clone());
        }
        out
    }

    /// diffusers' trajectories with the toy predictor of make_diffusers_fixture.py.
    #[test]
    fn ddim_and_dpm_solver_match_diffusers_step_for_step() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diffusers_schedulers.json");
        let f: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        let x_t: Vec<f64> = f["x_T"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let model = |x: f64, t: usize| 0.3 * x + 0.1 * t as f64 / 1000.0;
        for (name, sampler, steps, clip) in [
            ("ddim_10", Sampler::Ddim { eta: 0.0 }, 10, false),
            ("ddim_10_clipped", Sampler::Ddim { eta: 0.0 }, 10, true),
            ("dpmsolver++_2m_10", Sampler::DpmSolver2M, 10, false),
            ("dpmsolver++_2m_20", Sampler::DpmSolver2M, 20, false),
        ] {
            let r = &f["samplers"][name];
            let plan = sampler.plan(&linear(), steps).unwrap();
            let ts: Vec<u64> = plan.iter().map(|s| s.t as u64).collect();
            let want_ts: Vec<u64> = r["timesteps"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
            assert_eq!(ts, want_ts, "{name} timesteps");
            let got = run(&plan, &x_t, clip, model);
            for (k, (g, w)) in got.iter().zip(r["trajectory"].as_array().unwrap()).enumerate() {
                for (a, b) in g.iter().zip(w.as_array().unwrap()) {
                    let b = b.as_f64().unwrap();
                    assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{name} step {k}: {a} vs {b}");
                }
            }
        }
    }

    /// With an oracle denoiser (it returns the true noise of a known x0), DDIM with eta = 0 lands
    /// on x0 from pure noise, for any step count.
    #[test]
    fn ddim_with_an_oracle_recovers_x0() {
        let s = linear();
        let (x0, eps) = (0.37, -1.21);
        for steps in [1000, 50, 10, 3] {
            let plan = Sampler::Ddim { eta: 0.0 }.plan(&s, steps).unwrap();
            let a = s.alphas_cumprod[plan[0].t];
            let mut x = a.sqrt() * x0 + (1.0 - a).sqrt() * eps;
            for st in &plan {
                // The oracle's x0: exactly x0, whatever the step.
                let oracle_eps = (x - st.alpha_bar.sqrt() * x0) / (1.0 - st.alpha_bar).sqrt();
                let pred = Prediction::Epsilon.to_x0(oracle_eps, x, st.alpha_bar);
                x = st.apply(x, pred, oracle_eps, 0.0, 0.0);
            }
            assert!((x - x0).abs() < 1e-4, "{steps} steps: {x}");
        }
    }

    /// DDPM's step is the posterior q(x_{t-1} | x_t, x0): mean and variance of the closed form
    /// (Ho et al. 2020, eq. 7).
    #[test]
    fn ddpm_step_is_the_posterior() {
        let s = linear();
        let plan = Sampler::Ddpm.plan(&s, 1000).unwrap();
        for st in plan.iter().filter(|st| [999usize, 500, 1].contains(&st.t)) {
            let t = st.t;
            let (a_t, a_prev, beta) = (s.alphas_cumprod[t], s.alphas_cumprod[t - 1], s.betas[t]);
            let mean_x0 = a_prev.sqrt() * beta / (1.0 - a_t);
            let mean_x = (1.0 - beta).sqrt() * (1.0 - a_prev) / (1.0 - a_t);
            let var = (1.0 - a_prev) / (1.0 - a_t) * beta;
            assert!((st.x0_coef - mean_x0).abs() < 1e-10 && (st.x_coef - mean_x).abs() < 1e-10, "t {t}");
            assert!((st.noise_coef.powi(2) - var).abs() < 1e-12, "t {t}");
        }
        assert_eq!(plan.last().unwrap().noise_coef, 0.0, "no noise at the last step");
    }

    #[test]
    fn step_counts_out_of_range_are_refused() {
        for steps in [0, 1001] {
            let e = Sampler::DpmSolver2M.plan(&linear(), steps).unwrap_err();
            assert!(e.starts_with(&format!("steps = {steps}: expected 1 to 1000")), "{e}");
        }
    }
}
