//! Spectral normalisation (Miyato et al. 2018, <https://arxiv.org/abs/1802.05957>): a weight `W`,
//! viewed as a matrix (a convolution's `[out, in, kh, kw]` as `[out, in * kh * kw]`, as PyTorch's
//! `spectral_norm` does), is divided by an estimate of its largest singular value,
//! `sigma = u^T W v`, where `u` and `v` come from power iteration on a persistent vector `u`. One
//! iteration per training step suffices because `W` changes slowly; `u` is a parameter without a
//! gradient, so checkpoints carry it and a resumed run continues with the same estimate.

use burn::module::{Module, Param};
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::SeededRng;

#[derive(Module, Debug)]
pub struct SpectralNorm {
    /// The estimate of the leading left singular vector, `[rows]`, unit length; not trained.
    pub u: Param<Tensor<1>>,
}

/// Keeps a zero vector from dividing by zero, as PyTorch's `eps`.
const EPS: f64 = 1e-12;

fn normalized(v: Tensor<1>) -> Tensor<1> {
    let norm = v.clone().powi_scalar(2).sum().sqrt() + EPS;
    v / norm
}

impl SpectralNorm {
    /// A random unit `u` of `rows` entries (the weight matrix's rows).
    pub fn new(rng: &mut SeededRng, rows: usize, device: &Device) -> Self {
        let u: Vec<f32> = rng.normal_vec(rows);
        let norm = u.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        let u: Vec<f32> = u.into_iter().map(|x| x / norm).collect();
        SpectralNorm { u: Param::from_data(TensorData::new(u, [rows]), device).set_require_grad(false) }
    }

    /// `iterations` power-iteration steps from `u` on `w` (`[rows, cols]`, detached): `(u, v)`.
    fn iterate(&self, w: Tensor<2>, iterations: usize) -> (Tensor<1>, Tensor<1>) {
        let [rows, cols] = w.dims();
        let mut u = self.u.val().detach();
        let mut v = Tensor::<1>::zeros([cols], &w.device());
        for _ in 0..iterations.max(1) {
            v = normalized(w.clone().transpose().matmul(u.reshape([rows, 1])).reshape([cols])); // W^T u
            u = normalized(w.clone().matmul(v.clone().reshape([cols, 1])).reshape([rows]));
            // W v
        }
        (u, v)
    }

    /// `(W / sigma, sigma)` for `w` as `[rows, cols]`, with `iterations` power steps (the gradient
    /// flows through `W` in both places, `u` and `v` are constants, as in the paper). With `update`
    /// (training) the new `u` is kept for the next call; without (evaluation) it is left as it is.
    pub fn normalize(&mut self, w: Tensor<2>, iterations: usize, update: bool) -> (Tensor<2>, Tensor<1>) {
        let [rows, cols] = w.dims();
        let (u, v) = self.iterate(w.clone().detach(), iterations);
        let sigma = u.clone().reshape([1, rows]).matmul(w.clone()).matmul(v.reshape([cols, 1])).reshape([1]);
        if update {
            self.u = self.u.clone().map(|_| u);
        }
        (w / sigma.clone().reshape([1, 1]), sigma)
    }

    /// [`normalize`](Self::normalize) for a weight of any rank, viewed as `[dim 0, the rest]`.
    pub fn normalize_weight<const D: usize>(
        &mut self,
        w: Tensor<D>,
        iterations: usize,
        update: bool,
    ) -> (Tensor<D>, Tensor<1>) {
        let dims = w.dims();
        let rows = dims[0];
        let cols = dims.iter().skip(1).product();
        let (wn, sigma) = self.normalize(w.reshape([rows, cols]), iterations, update);
        (wn.reshape(dims), sigma)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use genlab_core::tensors::{to_f32_vec, NamedTensors};

    /// The exact largest singular values, from NumPy's SVD in float64 (`fixtures/spectral_norm_svd.py`).
    const SIGMA_6X10: f64 = 4.316916702019314;
    const SIGMA_CONV: f64 = 5.583673540152145;

    fn matrix(d: &Device) -> Tensor<2> {
        let v: Vec<f32> = (0..6)
            .flat_map(|i| {
                (0..10).map(move |j| ((0.7 * i as f64 + 1.3 * j as f64).sin() + 0.05 * (i - j) as f64) as f32)
            })
            .collect();
        Tensor::from_data(TensorData::new(v, [6, 10]), d)
    }

    #[test]
    fn estimate_matches_the_svd_within_one_percent() {
        let d = Device::flex();
        // Many iterations at once.
        let mut sn = SpectralNorm::new(&mut SeededRng::new(0), 6, &d);
        let (wn, sigma) = sn.normalize(matrix(&d), 30, true);
        let s = to_f32_vec(sigma)[0] as f64;
        assert!((s - SIGMA_6X10).abs() <= 0.01 * SIGMA_6X10, "sigma {s} vs SVD {SIGMA_6X10}");
        // The normalised matrix has largest singular value 1: W/sigma applied to the top right
        // singular direction (found again by power iteration, fresh u) has norm 1.
        let (_, s1) = SpectralNorm::new(&mut SeededRng::new(5), 6, &d).normalize(wn, 50, false);
        assert!((to_f32_vec(s1)[0] - 1.0).abs() < 0.01);
        // One iteration per call, as in training: the persistent u converges across calls.
        let mut sn = SpectralNorm::new(&mut SeededRng::new(1), 6, &d);
        let mut s = 0.0;
        for _ in 0..20 {
            s = to_f32_vec(sn.normalize(matrix(&d), 1, true).1)[0] as f64;
        }
        assert!((s - SIGMA_6X10).abs() <= 0.01 * SIGMA_6X10, "sigma {s} after 20 steps vs SVD {SIGMA_6X10}");
        // Without `update`, u does not move.
        let before = to_f32_vec(sn.u.val());
        sn.normalize(matrix(&d), 1, false);
        assert_eq!(before, to_f32_vec(sn.u.val()));
    }

    #[test]
    fn a_conv_weight_is_normalised_as_out_by_the_rest_and_u_is_checkpointed() {
        let d = Device::flex();
        let w: Vec<f32> = (0..72).map(|k| ((0.3 * k as f64).cos() + 0.01 * k as f64) as f32).collect();
        let w = Tensor::<4>::from_data(TensorData::new(w, [4, 2, 3, 3]), &d);
        let mut sn = SpectralNorm::new(&mut SeededRng::new(2), 4, &d);
        let (wn, sigma) = sn.normalize_weight(w.clone(), 30, true);
        let s = to_f32_vec(sigma)[0] as f64;
        assert!((s - SIGMA_CONV).abs() <= 0.01 * SIGMA_CONV, "sigma {s} vs SVD {SIGMA_CONV}");
        assert_eq!(wn.dims(), [4, 2, 3, 3]);
        let names: Vec<String> = NamedTensors::from_module(&sn).0.into_keys().collect();
        assert_eq!(names, vec!["u".to_string()]);
    }

    #[test]
    fn the_gradient_flows_through_w_only() {
        // d sigma / d W = u v^T for the top singular pair: the gradient of sigma(W) = u^T W v with
        // u, v held constant, checked against the outer product in float64.
        let ad = Device::flex().autodiff();
        let mut sn = SpectralNorm::new(&mut SeededRng::new(3), 6, &ad);
        let w = matrix(&ad).require_grad();
        let (_, sigma) = sn.normalize(w.clone(), 30, true);
        let g = sigma.sum().backward();
        let grad = to_f32_vec(w.grad(&g).expect("W has a gradient"));
        let u = to_f32_vec(sn.u.val());
        let (uu, vv) = sn.iterate(matrix(&ad), 0);
        let (uu, vv) = (to_f32_vec(uu), to_f32_vec(vv));
        assert!(uu.iter().zip(&u).all(|(a, b)| (a - b).abs() < 1e-3), "u is a fixed point");
        for i in 0..6 {
            for j in 0..10 {
                let want = uu[i] as f64 * vv[j] as f64;
                assert!((grad[i * 10 + j] as f64 - want).abs() < 2e-3, "({i},{j}): {} vs {want}", grad[i * 10 + j]);
            }
        }
    }
}
