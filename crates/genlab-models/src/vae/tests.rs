//! VAE tests: the ELBO and IWAE bound of fixed weights against a float64 recomputation written
//! from the formulas (MLP and conv), end-to-end gradients against finite differences, and the
//! overfit-one-batch check.

use super::*;
use genlab_core::tensors::{to_f32_vec, NamedTensors};

fn dev() -> Device {
    Device::flex()
}

fn tensor4(v: Vec<f32>, s: [usize; 4]) -> Tensor<4> {
    Tensor::from_data(TensorData::new(v, s), &dev())
}

fn binary_images(n: usize, len: usize, seed: u64) -> Vec<f32> {
    let mut r = SeededRng::new(seed);
    r.uniform_vec(n * len).into_iter().map(|u| if u < 0.4 { 1.0 } else { 0.0 }).collect()
}

/// Float64 reference of a VAE's forward pass, from the saved weights alone.
struct Ref64 {
    w: NamedTensors,
}

impl Ref64 {
    fn t(&self, name: &str) -> (Vec<usize>, Vec<f64>) {
        let t = self.w.get(name).unwrap_or_else(|| panic!("missing {name}: {:?}", self.w.0.keys()));
        (t.shape.clone(), t.data.iter().map(|&v| v as f64).collect())
    }
    /// y = x W + b with burn's [in, out] weight layout.
    fn linear(&self, x: &[f64], name: &str) -> Vec<f64> {
        let (s, w) = self.t(&format!("{name}.weight"));
        let (_, b) = self.t(&format!("{name}.bias"));
        (0..s[1]).map(|o| b[o] + (0..s[0]).map(|i| x[i] * w[i * s[1] + o]).sum::<f64>()).collect()
    }
    /// Conv 4x4, stride 2, padding 1, weight [out, in, 4, 4]; x is [in, h, w].
    fn conv(&self, x: &[f64], (c, h, w): (usize, usize, usize), name: &str) -> (Vec<f64>, (usize, usize, usize)) {
        let (s, wt) = self.t(&format!("{name}.weight"));
        let (_, b) = self.t(&format!("{name}.bias"));
        let (oc, oh, ow) = (s[0], h / 2, w / 2);
        let mut y = vec![0.0; oc * oh * ow];
        for o in 0..oc {
            for yy in 0..oh {
                for xx in 0..ow {
                    let mut acc = b[o];
                    for i in 0..c {
                        for ky in 0..4 {
                            for kx in 0..4 {
                                let (iy, ix) = ((2 * yy + ky) as isize - 1, (2 * xx + kx) as isize - 1);
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    acc += x[(i * h + iy as usize) * w + ix as usize]
                                        * wt[((o * c + i) * 4 + ky) * 4 + kx];
                                }
                            }
                        }
                    }
                    y[(o * oh + yy) * ow + xx] = acc;
                }
            }
        }
        (y, (oc, oh, ow))
    }
    /// Transposed conv 4x4, stride 2, padding 1, weight [in, out, 4, 4]: each input pixel scatters.
    fn deconv(&self, x: &[f64], (c, h, w): (usize, usize, usize), name: &str) -> (Vec<f64>, (usize, usize, usize)) {
        let (s, wt) = self.t(&format!("{name}.weight"));
        let (_, b) = self.t(&format!("{name}.bias"));
        let (oc, oh, ow) = (s[1], 2 * h, 2 * w);
        let mut y: Vec<f64> = (0..oc * oh * ow).map(|k| b[k / (oh * ow)]).collect();
        for i in 0..c {
            for yy in 0..h {
                for xx in 0..w {
                    for o in 0..oc {
                        for ky in 0..4 {
                            for kx in 0..4 {
                                let (oy, ox) = ((2 * yy + ky) as isize - 1, (2 * xx + kx) as isize - 1);
                                if oy >= 0 && ox >= 0 && (oy as usize) < oh && (ox as usize) < ow {
                                    y[(o * oh + oy as usize) * ow + ox as usize] +=
                                        x[(i * h + yy) * w + xx] * wt[((i * oc + o) * 4 + ky) * 4 + kx];
                                }
                            }
                        }
                    }
                }
            }
        }
        (y, (oc, oh, ow))
    }

    fn relu(v: Vec<f64>) -> Vec<f64> {
        v.into_iter().map(|x| x.max(0.0)).collect()
    }

    /// (mu, logvar) of one image.
    fn encode(&self, x: &[f64], shape: [usize; 3], conv_layers: usize, hidden: usize) -> (Vec<f64>, Vec<f64>) {
        let h = if conv_layers > 0 {
            let (mut h, mut s) = (x.to_vec(), (shape[0], shape[1], shape[2]));
            for i in 0..conv_layers {
                let (y, ns) = self.conv(&h, s, &format!("encoder.convs.{i}"));
                (h, s) = (Self::relu(y), ns);
            }
            h
        } else {
            (0..hidden).fold(x.to_vec(), |h, i| Self::relu(self.linear(&h, &format!("encoder.hidden.{i}"))))
        };
        (self.linear(&h, "encoder.mu"), self.linear(&h, "encoder.logvar"))
    }

    /// Bernoulli logits of one z.
    fn decode(&self, z: &[f64], conv_layers: usize, hidden: usize, start: (usize, usize, usize)) -> Vec<f64> {
        if conv_layers > 0 {
            let (mut h, mut s) = (Self::relu(self.linear(z, "decoder.fc")), start);
            for i in 0..conv_layers {
                let (y, ns) = self.deconv(&h, s, &format!("decoder.deconvs.{i}"));
                h = if i + 1 < conv_layers { Self::relu(y) } else { y };
                s = ns;
            }
            h
        } else {
            let h = (0..hidden).fold(z.to_vec(), |h, i| Self::relu(self.linear(&h, &format!("decoder.hidden.{i}"))));
            self.linear(&h, "decoder.out")
        }
    }
}

fn bernoulli64(logits: &[f64], x: &[f64]) -> f64 {
    logits.iter().zip(x).map(|(&l, &x)| x * l - (l.max(0.0) + (-l.abs()).exp().ln_1p())).sum()
}

fn check_elbo_and_iwae(
    cfg: VaeConfig,
    shape: [usize; 3],
    conv_layers: usize,
    hidden: usize,
    start: (usize, usize, usize),
) {
    let vae = cfg.init(shape, 5, &dev()).unwrap();
    let r = Ref64 { w: NamedTensors::from_module(&vae) };
    let (n, len, l) = (3, shape.iter().product::<usize>(), cfg.latent_dim);
    let x = binary_images(n, len, 1);
    let mut rng = SeededRng::new(2);
    let eps = rng.normal_vec(n * l);
    let xt = tensor4(x.clone(), [n, shape[0], shape[1], shape[2]]);
    let t = vae.elbo_terms(xt.clone(), Tensor::from_data(TensorData::new(eps.clone(), [n, l]), &dev()));
    let (ll, kl) = (to_f32_vec(t.log_likelihood), to_f32_vec(t.kl));
    let k = 4;
    let eps_k = rng.normal_vec(k * n * l);
    let iwae = to_f32_vec(vae.iwae_bound(xt, Tensor::from_data(TensorData::new(eps_k.clone(), [k, n, l]), &dev())));
    for i in 0..n {
        let xi: Vec<f64> = x[i * len..(i + 1) * len].iter().map(|&v| v as f64).collect();
        let (mu, lv) = r.encode(&xi, shape, conv_layers, hidden);
        let z: Vec<f64> = (0..l).map(|j| mu[j] + (0.5 * lv[j]).exp() * eps[i * l + j] as f64).collect();
        let ll64 = bernoulli64(&r.decode(&z, conv_layers, hidden, start), &xi);
        let kl64: f64 = (0..l).map(|j| 0.5 * (lv[j].exp() + mu[j] * mu[j] - 1.0 - lv[j])).sum();
        assert!((ll[i] as f64 - ll64).abs() < 1e-4 * ll64.abs().max(1.0), "log p(x|z) {} vs {ll64}", ll[i]);
        assert!((kl[i] as f64 - kl64).abs() < 1e-4 * kl64.abs().max(1.0), "KL {} vs {kl64}", kl[i]);
        let log_w: Vec<f64> = (0..k)
            .map(|s| {
                let e: Vec<f64> = (0..l).map(|j| eps_k[(s * n + i) * l + j] as f64).collect();
                let z: Vec<f64> = (0..l).map(|j| mu[j] + (0.5 * lv[j]).exp() * e[j]).collect();
                let log_pz: f64 = z.iter().map(|z| -0.5 * (z * z + (2.0 * std::f64::consts::PI).ln())).sum();
                let log_q: f64 = (0..l).map(|j| -0.5 * (e[j] * e[j] + lv[j] + (2.0 * std::f64::consts::PI).ln())).sum();
                bernoulli64(&r.decode(&z, conv_layers, hidden, start), &xi) + log_pz - log_q
            })
            .collect();
        let m = log_w.iter().cloned().fold(f64::MIN, f64::max);
        let iwae64 = m + (log_w.iter().map(|v| (v - m).exp()).sum::<f64>() / k as f64).ln();
        assert!((iwae[i] as f64 - iwae64).abs() < 1e-4 * iwae64.abs().max(1.0), "IWAE {} vs {iwae64}", iwae[i]);
    }
}

#[test]
fn mlp_elbo_and_iwae_match_float64_recomputation() {
    let cfg = VaeConfig { architecture: Architecture::Mlp, latent_dim: 3, hidden: vec![7, 5], ..Default::default() };
    check_elbo_and_iwae(cfg, [1, 3, 4], 0, 2, (0, 0, 0));
}

#[test]
fn conv_elbo_and_iwae_match_float64_recomputation() {
    let cfg = VaeConfig { architecture: Architecture::Conv, latent_dim: 2, channels: vec![3, 4], ..Default::default() };
    check_elbo_and_iwae(cfg, [1, 8, 8], 2, 0, (4, 2, 2));
}

#[test]
fn iwae_bound_tightens_with_k() {
    let cfg = VaeConfig { architecture: Architecture::Mlp, latent_dim: 4, hidden: vec![16], ..Default::default() };
    let vae = cfg.init([1, 4, 4], 1, &dev()).unwrap();
    let x = tensor4(binary_images(8, 16, 3), [8, 1, 4, 4]);
    let mut rng = SeededRng::new(4);
    let mean_bound = |k: usize, rng: &mut SeededRng| {
        let v = to_f32_vec(vae.iwae_bound(x.clone(), normal(rng, [k, 8, 4], &dev())));
        v.iter().map(|&v| v as f64).sum::<f64>() / 8.0
    };
    let (b1, b50) = (mean_bound(1, &mut rng), mean_bound(50, &mut rng));
    assert!(b50 > b1, "IWAE with k=50 ({b50}) should exceed k=1 ({b1})");
}

/// The whole loss's gradient against central finite differences, for a weight of every layer.
#[test]
fn loss_gradients_match_finite_differences() {
    let ad = Device::flex().autodiff();
    let cfg = VaeConfig {
        architecture: Architecture::Conv,
        latent_dim: 2,
        channels: vec![2, 3],
        likelihood: Likelihood::Gaussian(GaussianLikelihood { sigma: None }),
        ..Default::default()
    };
    let vae = cfg.init([1, 4, 4], 7, &ad).unwrap();
    let mut rng = SeededRng::new(8);
    let x = rng.uniform_vec(2 * 16);
    let eps = rng.normal_vec(2 * 2);
    let loss_of = |w: &NamedTensors, device: &Device| -> (f64, Vae) {
        let m = w.load_into(cfg.init([1, 4, 4], 7, device).unwrap(), std::path::Path::new("mem")).unwrap();
        let xt = Tensor::from_data(TensorData::new(x.clone(), [2, 1, 4, 4]), device);
        let et = Tensor::from_data(TensorData::new(eps.clone(), [2, 2]), device);
        let (loss, _, _) = m.loss(xt, et);
        (loss.into_scalar::<f32>() as f64, m)
    };
    let base = NamedTensors::from_module(&vae);
    let xt = Tensor::from_data(TensorData::new(x.clone(), [2, 1, 4, 4]), &ad);
    let et = Tensor::from_data(TensorData::new(eps.clone(), [2, 2]), &ad);
    let (loss, _, _) = vae.loss(xt, et);
    let grads = loss.backward();
    for name in [
        "encoder.convs.0.weight",
        "encoder.convs.1.bias",
        "encoder.mu.weight",
        "encoder.logvar.bias",
        "decoder.fc.weight",
        "decoder.deconvs.0.weight",
        "decoder.deconvs.1.bias",
        "log_sigma",
    ] {
        let g = param_grad(&vae, name, &grads).unwrap_or_else(|| panic!("no gradient for {name}"));
        let len = base.get(name).unwrap().data.len();
        for idx in [0, len / 2, len - 1] {
            let h = 1e-2f32;
            let mut plus = base.clone();
            plus.0.get_mut(name).unwrap().data[idx] += h;
            let mut minus = base.clone();
            minus.0.get_mut(name).unwrap().data[idx] -= h;
            let fd = (loss_of(&plus, &dev()).0 - loss_of(&minus, &dev()).0) / (2.0 * h as f64);
            let tol = 2e-2 * fd.abs().max(1.0);
            assert!((g[idx] as f64 - fd).abs() < tol, "{name}[{idx}]: autodiff {} vs finite difference {fd}", g[idx]);
        }
    }
}

/// The gradient of the parameter at `path`.
fn param_grad(vae: &Vae, path: &str, grads: &burn::tensor::Gradients) -> Option<Vec<f32>> {
    use genlab_core::params::{visit_params, ParamVisitor};
    struct Find<'a> {
        want: &'a str,
        grads: &'a burn::tensor::Gradients,
        out: Option<Vec<f32>>,
    }
    impl ParamVisitor for Find<'_> {
        fn visit<const D: usize>(&mut self, path: &str, _: burn::module::ParamId, value: Tensor<D>) {
            if path == self.want {
                self.out = value.grad(self.grads).map(to_f32_vec);
            }
        }
    }
    let mut f = Find { want: path, grads, out: None };
    visit_params(vae, &mut f);
    f.out
}

#[test]
fn overfits_one_batch() {
    use genlab_train::{OptimizerConfig, Optimizers};
    let ad = Device::flex().autodiff();
    let cfg = VaeConfig { architecture: Architecture::Mlp, latent_dim: 8, hidden: vec![64], ..Default::default() };
    let mut vae = cfg.init([1, 8, 8], 0, &ad).unwrap();
    let x: Tensor<4> = Tensor::from_data(TensorData::new(binary_images(16, 64, 9), [16, 1, 8, 8]), &ad);
    let mut opt = Optimizers::single(OptimizerConfig { lr: 3e-3, ..Default::default() }, None);
    let mut rng = SeededRng::new(0);
    let mut losses = vec![];
    for step in 1..=400 {
        let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &ad };
        let (m, out) = vae.train_step(x.clone(), &mut ctx);
        vae = m;
        losses.push(out.loss);
    }
    let first = losses[0];
    let last = losses[380..].iter().sum::<f64>() / 20.0;
    assert!(last < first / 3.0, "loss should fall at least threefold on one batch: {first} -> {last}");
}

#[test]
fn bad_configs_name_the_field() {
    let e = VaeConfig { latent_dim: 0, ..Default::default() }.init([1, 28, 28], 0, &dev()).unwrap_err().to_string();
    assert!(e.starts_with("model.latent_dim = 0"), "{e}");
    let e = VaeConfig { channels: vec![8, 8, 8], ..Default::default() }
        .init([1, 28, 28], 0, &dev())
        .unwrap_err()
        .to_string();
    assert!(e.contains("divisible by 8") && e.contains("28x28"), "{e}");
}

#[test]
fn same_seed_same_model() {
    let a = NamedTensors::from_module(&VaeConfig::default().init([1, 28, 28], 3, &dev()).unwrap());
    let b = NamedTensors::from_module(&VaeConfig::default().init([1, 28, 28], 3, &dev()).unwrap());
    assert_eq!(a, b);
    assert_eq!(a.0.len(), 14, "{:?}", a.0.keys());
}

#[test]
fn likelihood_forms_parse_as_the_readme_writes_them() {
    #[derive(serde::Deserialize)]
    struct H {
        likelihood: Likelihood,
    }
    let parse = |s: &str| toml::from_str::<H>(s).map(|h| h.likelihood).map_err(|e| e.to_string());
    assert_eq!(parse(r#"likelihood = "bernoulli""#), Ok(Likelihood::Bernoulli));
    assert_eq!(
        parse("likelihood = { gaussian = { sigma = 0.1 } }"),
        Ok(Likelihood::Gaussian(GaussianLikelihood { sigma: Some(0.1) }))
    );
    assert_eq!(parse("likelihood = { gaussian = {} }"), Ok(Likelihood::Gaussian(GaussianLikelihood { sigma: None })));
    assert!(parse("likelihood = { gaussian = { sigma = 0.1, mu = 2 } }").unwrap_err().contains("unknown field `mu`"));
}

#[test]
fn gaussian_vae_learns_its_sigma() {
    use genlab_train::{OptimizerConfig, Optimizers};
    let ad = Device::flex().autodiff();
    let cfg = VaeConfig {
        architecture: Architecture::Mlp,
        latent_dim: 4,
        hidden: vec![32],
        likelihood: Likelihood::Gaussian(GaussianLikelihood { sigma: None }),
        ..Default::default()
    };
    let mut vae = cfg.init([1, 4, 4], 0, &ad).unwrap();
    let mut r = SeededRng::new(1);
    let x: Tensor<4> = Tensor::from_data(
        TensorData::new(
            r.uniform_vec(32 * 16).into_iter().map(|u| 0.5 + 0.05 * u).collect::<Vec<f32>>(),
            [32, 1, 4, 4],
        ),
        &ad,
    );
    let mut opt = Optimizers::single(OptimizerConfig { lr: 1e-2, ..Default::default() }, None);
    for step in 1..=300 {
        let mut ctx = StepContext { optimizers: &mut opt, rng: &mut r, step, device: &ad };
        vae = vae.train_step(x.clone(), &mut ctx).0;
    }
    // The data's spread around its mean is about 0.05 / sqrt(12) ~ 0.014: sigma should shrink from 1 toward it.
    let sigma = to_f32_vec(vae.log_sigma.as_ref().unwrap().val())[0].exp();
    assert!(sigma < 0.2, "learned sigma {sigma}");
    // A fixed sigma stays fixed.
    let fixed = VaeConfig { likelihood: Likelihood::Gaussian(GaussianLikelihood { sigma: Some(0.3) }), ..cfg }
        .init([1, 4, 4], 0, &ad)
        .unwrap();
    let l = fixed.loss(x.clone(), normal(&mut r, [32, 4], &ad)).0;
    let g = param_grad(&fixed, "log_sigma", &l.backward());
    assert!(g.is_none(), "a fixed sigma gets no gradient");
}
