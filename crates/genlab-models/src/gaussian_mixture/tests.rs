use super::*;
use burn::module::Param;
use genlab_train::{OptimizerConfig, Optimizers};

fn device() -> Device {
    genlab_core::DeviceSpec::default().autodiff_device().unwrap()
}

/// A mixture with set parameters (weights from `logits`).
fn mixture(logits: &[f32], means: &[f32], log_std: &[f32], d: &Device) -> GaussianMixture {
    let k = logits.len();
    GaussianMixture {
        logits: Param::from_data(TensorData::new(logits.to_vec(), [k]), d),
        means: Param::from_data(TensorData::new(means.to_vec(), [k, 2]), d),
        log_std: Param::from_data(TensorData::new(log_std.to_vec(), [k, 2]), d),
    }
}

/// The same density in float64, written out term by term.
fn reference_log_prob(logits: &[f32], means: &[f32], log_std: &[f32], x: f64, y: f64) -> f64 {
    let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
    let p: f64 = (0..logits.len())
        .map(|k| {
            let w = (logits[k] as f64).exp() / z;
            let (sx, sy) = ((log_std[2 * k] as f64).exp(), (log_std[2 * k + 1] as f64).exp());
            let (dx, dy) = ((x - means[2 * k] as f64) / sx, (y - means[2 * k + 1] as f64) / sy);
            w * (-(dx * dx + dy * dy) / 2.0).exp() / (2.0 * std::f64::consts::PI * sx * sy)
        })
        .sum();
    p.ln()
}

const LOGITS: [f32; 3] = [0.3, -0.2, 1.1];
const MEANS: [f32; 6] = [-1.0, 0.5, 2.0, -1.5, 0.2, 0.1];
const LOG_STD: [f32; 6] = [-0.3, 0.2, 0.0, -0.6, 0.4, -0.1];

#[test]
fn log_prob_matches_a_float64_recomputation() {
    let d = device();
    let m = mixture(&LOGITS, &MEANS, &LOG_STD, &d);
    let pts: Vec<f32> = SeededRng::new(3).normal_vec(40).into_iter().map(|v| 2.0 * v).collect();
    let lp = to_f32_vec(m.log_prob(Tensor::from_data(TensorData::new(pts.clone(), [20, 2]), &d)));
    for (i, p) in pts.chunks(2).enumerate() {
        let want = reference_log_prob(&LOGITS, &MEANS, &LOG_STD, p[0] as f64, p[1] as f64);
        assert!((lp[i] as f64 - want).abs() < 1e-4 * want.abs().max(1.0), "point {i}: {} vs {want}", lp[i]);
    }
    // Far from every component the shifted log-sum-exp stays finite.
    let far = m.log_prob(Tensor::from_data(TensorData::new(vec![300.0f32, -300.0], [1, 2]), &d));
    assert!(to_f32_vec(far)[0].is_finite());
}

/// Every parameter's gradient of the mean NLL against central finite differences of the float64
/// reference.
#[test]
fn gradients_match_finite_differences() {
    let d = device();
    let pts: Vec<f32> = SeededRng::new(5).normal_vec(16).into_iter().map(|v| 1.5 * v).collect();
    let nll = |l: &[f32], mu: &[f32], ls: &[f32]| -> f64 {
        -pts.chunks(2).map(|p| reference_log_prob(l, mu, ls, p[0] as f64, p[1] as f64)).sum::<f64>() / 8.0
    };
    let m = mixture(&LOGITS, &MEANS, &LOG_STD, &d);
    let x = Tensor::<2>::from_data(TensorData::new(pts.clone(), [8, 2]), &d).reshape([8, 2, 1, 1]);
    let grads = m.loss(x).backward();
    let autodiff = [
        to_f32_vec(m.logits.val().grad(&grads).unwrap()),
        to_f32_vec(m.means.val().grad(&grads).unwrap()),
        to_f32_vec(m.log_std.val().grad(&grads).unwrap()),
    ];
    let h = 1e-3f32;
    for (which, g) in autodiff.iter().enumerate() {
        for (i, &gi) in g.iter().enumerate() {
            let mut params = [LOGITS.to_vec(), MEANS.to_vec(), LOG_STD.to_vec()];
            params[which][i] += h;
            let up = nll(&params[0], &params[1], &params[2]);
            params[which][i] -= 2.0 * h;
            let down = nll(&params[0], &params[1], &params[2]);
            let numeric = (up - down) / (2.0 * h as f64);
            assert!((gi as f64 - numeric).abs() < 2e-3 + 1e-2 * numeric.abs(), "param {which}[{i}]: {gi} vs {numeric}");
        }
    }
}

/// The sampler draws from the density: the sample mean and covariance match the mixture's, and
/// temperature 0 gives only component means.
#[test]
fn samples_have_the_mixture_moments() {
    let d = device();
    let m = mixture(&LOGITS, &MEANS, &LOG_STD, &d);
    let (w, mu, sd) = m.parameters();
    let n = 40_000;
    let s = m.sample(n, 1.0, &mut SeededRng::new(9));
    for axis in 0..2 {
        let mean: f64 = (0..3).map(|k| w[k] * mu[2 * k + axis]).sum();
        let second: f64 = (0..3).map(|k| w[k] * (sd[2 * k + axis].powi(2) + mu[2 * k + axis].powi(2))).sum();
        let var = second - mean * mean;
        let got: Vec<f64> = s.chunks(2).map(|p| p[axis] as f64).collect();
        let gm = got.iter().sum::<f64>() / n as f64;
        let gv = got.iter().map(|v| (v - gm).powi(2)).sum::<f64>() / n as f64;
        // Standard errors at 40,000 draws are below 0.01 for the mean and 0.02 for the variance.
        assert!((gm - mean).abs() < 0.03, "axis {axis}: mean {gm} vs {mean}");
        assert!((gv - var).abs() < 0.06 * var.max(1.0), "axis {axis}: variance {gv} vs {var}");
    }
    let cold = m.sample(50, 0.0, &mut SeededRng::new(1));
    assert!(cold.chunks(2).all(|p| (0..3).any(|k| p[0] == MEANS[2 * k] && p[1] == MEANS[2 * k + 1])));
}

/// One overfit check: Adam on one fixed batch drawn from two separated Gaussians brings the NLL
/// from its start near the entropy of the generating pair.
#[test]
fn training_lowers_the_nll() {
    let d = device();
    let mut rng = SeededRng::new(2);
    let pts: Vec<f32> = (0..256)
        .flat_map(|i| {
            let e = rng.normal_vec(2);
            let c = if i % 2 == 0 { 3.0 } else { -3.0 };
            [c + 0.3 * e[0], -c + 0.3 * e[1]]
        })
        .collect();
    let batch = || Tensor::<2>::from_data(TensorData::new(pts.clone(), [256, 2]), &d).reshape([256, 2, 1, 1]);
    let mut model = GaussianMixtureConfig { components: 2, init_spread: 1.0 }.init(0, &d).unwrap();
    let mut opt = Optimizers::single(OptimizerConfig { lr: 5e-2, ..Default::default() }, None);
    let mut rng = SeededRng::new(0);
    let first = to_f32_vec(model.loss(batch()))[0];
    for step in 1..=400 {
        let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &d };
        model = model.train_step(batch(), &mut ctx).0;
    }
    let last = to_f32_vec(model.loss(batch()))[0];
    // The generating pair (equal weights, std 0.3, far apart) has entropy
    // 2 (1/2 ln(2 pi e) + ln 0.3) + ln 2 = 1.123 nats; the fit on 256 points comes within 0.1.
    let entropy = 2.0 * (0.5 * (2.0 * std::f32::consts::PI * std::f32::consts::E).ln() + 0.3f32.ln()) + 2f32.ln();
    assert!(first > 4.0 && (last - entropy).abs() < 0.1, "NLL {first} -> {last} (entropy {entropy})");
}

#[test]
fn bad_configs_name_the_field() {
    let e = GaussianMixtureConfig { components: 0, ..Default::default() }.check().unwrap_err().to_string();
    assert_eq!(e, "model.components = 0: expected between 1 and 4096");
    let e = GaussianMixtureConfig { init_spread: -1.0, ..Default::default() }.check().unwrap_err().to_string();
    assert!(e.starts_with("model.init_spread = -1"), "{e}");
}
