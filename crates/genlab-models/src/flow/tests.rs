//! Flow tests: exact inversion and brute-force Jacobian log-determinants of whole flows with
//! random (non-identity) parameters, the likelihood of the identity flow against a float64
//! recomputation, a 2-D density that integrates to one, temperature, and overfitting one batch.

use super::*;
use genlab_core::tensors::{to_f32_vec, NamedTensors};
use std::path::Path;

fn dev() -> Device {
    Device::flex()
}

/// Every parameter moved by uniform noise of `bound`, so no coupling is the identity.
fn trained_like(flow: Flow, seed: u64, bound: f32) -> Flow {
    let mut w = NamedTensors::from_module(&flow);
    let mut rng = SeededRng::new(seed);
    for t in w.0.values_mut() {
        let noise = rng.symmetric_uniform_vec(t.data.len(), bound);
        t.data.iter_mut().zip(noise).for_each(|(v, e)| *v += e);
    }
    w.load_into(flow, Path::new("test")).expect("the same module")
}

fn pixels(n: usize, shape: [usize; 3], seed: u64, d: &Device) -> (Tensor<4>, Tensor<4>) {
    let len = n * shape.iter().product::<usize>();
    let mut r = SeededRng::new(seed);
    let x: Vec<f32> = r.uniform_vec(len).into_iter().map(|v| (v * 256.0).floor().min(255.0)).collect();
    let s = [n, shape[0], shape[1], shape[2]];
    (Tensor::from_data(TensorData::new(x, s), d), uniform_noise(&mut r, s, d))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max)
}

fn configs() -> Vec<(&'static str, FlowConfig, [usize; 3])> {
    let image = |architecture, scales| FlowConfig { architecture, scales, steps: 2, hidden: 8, ..Default::default() };
    let vector = |architecture| FlowConfig {
        architecture,
        scales: 1,
        steps: 4,
        hidden: 16,
        dequantization: Dequantization::None,
        ..Default::default()
    };
    vec![
        ("realnvp 1x8x8", image(FlowArchitecture::RealNvp, 3), [1, 8, 8]),
        ("glow 1x8x8", image(FlowArchitecture::Glow, 2), [1, 8, 8]),
        ("realnvp 2-d", vector(FlowArchitecture::RealNvp), [2, 1, 1]),
        ("glow 2-d", vector(FlowArchitecture::Glow), [2, 1, 1]),
    ]
}

#[test]
fn latent_shapes_cover_every_dimension() {
    let d = dev();
    let flow = FlowConfig::default().init([1, 28, 28], 0, &d).unwrap();
    assert_eq!(flow.latent_shapes(), vec![[2, 14, 14], [2, 14, 14]]);
    let glow =
        FlowConfig { architecture: FlowArchitecture::Glow, ..Default::default() }.init([1, 28, 28], 0, &d).unwrap();
    assert_eq!(glow.latent_shapes(), vec![[2, 14, 14], [8, 7, 7]]);
    for (what, cfg, shape) in configs() {
        let f = cfg.init(shape, 0, &d).unwrap();
        let total: usize = f.latent_shapes().iter().map(|s| s.iter().product::<usize>()).sum();
        assert_eq!(total, f.dims(), "{what}");
    }
}

#[test]
fn every_flow_inverts_with_random_parameters() {
    let d = dev();
    for (what, cfg, shape) in configs() {
        let flow = trained_like(cfg.init(shape, 1, &d).unwrap(), 2, 0.3);
        let n = 4;
        // The flow proper, in its input space.
        let h = Tensor::<4>::from_data(
            TensorData::new(SeededRng::new(3).normal_vec(n * flow.dims()), [n, shape[0], shape[1], shape[2]]),
            &d,
        );
        let (zs, log_det) = flow.forward_levels(h.clone());
        assert!(to_f32_vec(log_det).iter().all(|v| v.abs() > 0.1), "{what}: not the identity");
        let z = Tensor::<2>::cat(zs.into_iter().map(|z| z.flatten(1, 3)).collect(), 1);
        let back = Flow { dequantize: false, ..flow.clone() }.decode(z);
        let m = max_diff(&to_f32_vec(back), &to_f32_vec(h));
        assert!(m <= 1e-4, "{what}: max |h - f^-1(f(h))| = {m}");
        // The encode/decode pair, through the dequantisation and the logit for images.
        if flow.dequantize {
            let (x, u) = pixels(n, shape, 4, &d);
            let want = to_f32_vec((x.clone() + u.clone()) / 256.0);
            let m = max_diff(&to_f32_vec(flow.decode(flow.encode(x, Some(u)))), &want);
            assert!(m <= 1e-4, "{what}: max |(x + u)/256 - decode(encode(x, u))| = {m}");
        }
    }
}

#[test]
fn whole_flow_log_det_equals_the_brute_force_jacobian() {
    let ad = dev().autodiff();
    for (what, cfg, shape) in configs() {
        let flow = trained_like(cfg.init(shape, 5, &ad).unwrap(), 6, 0.3);
        let flow = if cfg.architecture == FlowArchitecture::Glow {
            let (x, u) = pixels(8, shape, 7, &ad);
            let x = if flow.dequantize { x } else { x / 128.0 - 1.0 };
            flow.initialize(x, Some(u))
        } else {
            flow
        };
        let d = flow.dims();
        let x0 = SeededRng::new(8).normal_vec(d);
        let log_det = genlab_nn::testing::check_log_det(
            what,
            |h| {
                let (zs, ld) = flow.forward_levels(h);
                (Tensor::<2>::cat(zs.into_iter().map(|z| z.flatten(1, 3)).collect(), 1).reshape([1, d, 1, 1]), ld)
            },
            &x0,
            shape,
            &ad,
        );
        assert!(log_det.abs() > 0.1, "{what}: a non-trivial Jacobian ({log_det})");
    }
}

#[test]
fn identity_flow_likelihood_matches_a_float64_recomputation() {
    let d = dev();
    let flow = FlowConfig::default().init([1, 4, 4], 0, &d).unwrap();
    let (x, u) = pixels(3, [1, 4, 4], 9, &d);
    let xs = to_f32_vec(x.clone());
    let us = to_f32_vec(u.clone());
    let got = to_f32_vec(flow.log_prob(x, Some(u)));
    let alpha = 0.05f64;
    for (i, g) in got.iter().enumerate() {
        let mut lp = 0.0f64;
        for j in i * 16..(i + 1) * 16 {
            let y = (xs[j] as f64 + us[j] as f64) / 256.0;
            let p = alpha + (1.0 - 2.0 * alpha) * y;
            let h = (p / (1.0 - p)).ln();
            lp += -0.5 * h * h - 0.5 * (2.0 * std::f64::consts::PI).ln();
            lp += (1.0 - 2.0 * alpha).ln() - p.ln() - (1.0 - p).ln() - 256f64.ln();
        }
        assert!((*g as f64 - lp).abs() <= 1e-4 * lp.abs(), "example {i}: {g} vs float64 {lp}");
    }
    let bpd = to_f32_vec(flow.bits_per_dim(Tensor::from_data(TensorData::new(got.clone(), [3]), &d)));
    assert!((bpd[0] as f64 - (-got[0] as f64 / (16.0 * std::f64::consts::LN_2))).abs() < 1e-5);
}

#[test]
fn a_2d_flow_density_integrates_to_one() {
    let d = dev();
    let cfg = &configs()[2].1;
    let flow = trained_like(cfg.init([2, 1, 1], 11, &d).unwrap(), 12, 0.3);
    // A 400 x 400 grid over [-10, 10]^2 (the density's mass is well inside).
    let (k, lo, hi) = (400usize, -10.0f32, 10.0f32);
    let step = (hi - lo) / k as f32;
    let pts: Vec<f32> = (0..k * k)
        .flat_map(|i| [lo + (i / k) as f32 * step + step / 2.0, lo + (i % k) as f32 * step + step / 2.0])
        .collect();
    let lp = to_f32_vec(flow.log_prob(Tensor::from_data(TensorData::new(pts, [k * k, 2, 1, 1]), &d), None));
    let mass: f64 = lp.iter().map(|&l| (l as f64).exp()).sum::<f64>() * (step as f64).powi(2);
    assert!((mass - 1.0).abs() < 0.01, "the density integrates to {mass}");
}

#[test]
fn temperature_scales_the_latent_spread() {
    let d = dev();
    let cfg = &configs()[2].1;
    let flow = trained_like(cfg.init([2, 1, 1], 13, &d).unwrap(), 14, 0.3);
    let mut rng = SeededRng::new(1);
    let x = flow.sample(4000, 0.5, &mut rng, &d);
    let z = to_f32_vec(flow.encode(x, None));
    let var = z.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / z.len() as f64;
    assert!((var.sqrt() - 0.5).abs() < 0.02, "latent std {} at temperature 0.5", var.sqrt());
    let again = to_f32_vec(flow.sample(4000, 0.5, &mut SeededRng::new(1), &d));
    assert_eq!(again, to_f32_vec(flow.sample(4000, 0.5, &mut SeededRng::new(1), &d)), "seeded sampling repeats");
}

#[test]
fn overfits_one_batch() {
    use genlab_train::{OptimizerConfig, Optimizers};
    let ad = dev().autodiff();
    let cfg = FlowConfig { scales: 2, steps: 2, hidden: 16, ..Default::default() };
    let mut flow = cfg.init([1, 8, 8], 0, &ad).unwrap();
    // Two images, eight copies each: every pixel is predictable from the others.
    let (two, _) = pixels(2, [1, 8, 8], 15, &ad);
    let x = two.repeat_dim(0, 8);
    let mut opt = Optimizers::single(OptimizerConfig { lr: 3e-3, ..Default::default() }, None);
    let mut rng = SeededRng::new(0);
    let mut losses = vec![];
    for step in 1..=200 {
        let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &ad };
        let (m, out) = flow.train_step(x.clone(), &mut ctx);
        flow = m;
        losses.push(out.loss);
    }
    // Random pixels start above 8 bits/dim; two memorised images leave only the dequantisation
    // noise to model.
    let first = losses[0];
    let last = losses[190..].iter().sum::<f64>() / 10.0;
    assert!(last < 0.6 * first, "bits/dim should fall by 40% on one batch: {first} -> {last}");
}
