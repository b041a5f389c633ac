//! Glow's invertible 1x1 convolution (Kingma & Dhariwal 2018, <https://arxiv.org/abs/1807.03039>),
//! LU-parameterised: `W = P L (U + diag(sign(s) exp(log|s|)))` with `P` a fixed permutation, `L`
//! unit lower triangular and `U` strictly upper triangular, so `log |det W| = sum(log|s|)` and the
//! layer's log-determinant is `h * w * sum(log|s|)`. `W` starts as a random rotation.

use burn::module::{Module, Param};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;

#[derive(Module, Debug)]
pub struct InvConv1x1 {
    /// Strictly lower part of `L` (the diagonal and above are masked out).
    pub lower: Param<Tensor<2>>,
    /// Strictly upper part of `U`.
    pub upper: Param<Tensor<2>>,
    pub log_s: Param<Tensor<1>>,
    /// Constants: the permutation, sign(s), and the triangular masks.
    pub permutation: Tensor<2>,
    pub sign_s: Tensor<1>,
    pub lower_mask: Tensor<2>,
}

/// A random `c x c` rotation (Gram-Schmidt on a Gaussian matrix), row-major, float64.
fn random_rotation(rng: &mut SeededRng, c: usize) -> Vec<f64> {
    let mut q: Vec<Vec<f64>> = Vec::with_capacity(c);
    while q.len() < c {
        let mut v: Vec<f64> = rng.normal_vec(c).into_iter().map(f64::from).collect();
        for u in &q {
            let d: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= d * b);
        }
        let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > 1e-6 {
            q.push(v.into_iter().map(|a| a / norm).collect());
        }
    }
    q.concat()
}

/// `A = P L U` with partial pivoting: returns (P, L, U) row-major; `P` as a matrix.
fn lu(a: &[f64], c: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut u = a.to_vec();
    let mut l = vec![0.0; c * c];
    let mut perm: Vec<usize> = (0..c).collect();
    for k in 0..c {
        let p = (k..c).max_by(|&i, &j| u[i * c + k].abs().total_cmp(&u[j * c + k].abs())).expect("a row");
        if p != k {
            for j in 0..c {
                u.swap(k * c + j, p * c + j);
                l.swap(k * c + j, p * c + j);
            }
            perm.swap(k, p);
        }
        for i in k + 1..c {
            let f = u[i * c + k] / u[k * c + k];
            l[i * c + k] = f;
            for j in k..c {
                u[i * c + j] -= f * u[k * c + j];
            }
        }
    }
    for i in 0..c {
        l[i * c + i] = 1.0;
    }
    // Rows were permuted: P^T A = L U, so A = P L U with P[perm[i]][i] = 1.
    let mut pm = vec![0.0; c * c];
    for (i, &r) in perm.iter().enumerate() {
        pm[r * c + i] = 1.0;
    }
    (pm, l, u)
}

/// The inverse of a `c x c` matrix by Gauss-Jordan elimination with partial pivoting, float64.
fn invert(a: &[f64], c: usize) -> Vec<f64> {
    let mut m = a.to_vec();
    let mut inv: Vec<f64> = (0..c * c).map(|i| if i / c == i % c { 1.0 } else { 0.0 }).collect();
    for k in 0..c {
        let p = (k..c).max_by(|&i, &j| m[i * c + k].abs().total_cmp(&m[j * c + k].abs())).expect("a row");
        for j in 0..c {
            m.swap(k * c + j, p * c + j);
            inv.swap(k * c + j, p * c + j);
        }
        let d = m[k * c + k];
        for j in 0..c {
            m[k * c + j] /= d;
            inv[k * c + j] /= d;
        }
        for i in (0..c).filter(|&i| i != k) {
            let f = m[i * c + k];
            for j in 0..c {
                m[i * c + j] -= f * m[k * c + j];
                inv[i * c + j] -= f * inv[k * c + j];
            }
        }
    }
    inv
}

impl InvConv1x1 {
    pub fn new(rng: &mut SeededRng, c: usize, device: &Device) -> Self {
        let (p, l, u) = lu(&random_rotation(rng, c), c);
        let t2 = |v: Vec<f64>| {
            Tensor::<2>::from_data(TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), [c, c]), device)
        };
        let strict_upper: Vec<f64> = (0..c * c).map(|i| if i % c > i / c { u[i] } else { 0.0 }).collect();
        let strict_lower: Vec<f64> = (0..c * c).map(|i| if i % c < i / c { l[i] } else { 0.0 }).collect();
        let diag: Vec<f64> = (0..c).map(|i| u[i * c + i]).collect();
        let t1 = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [c]), device);
        InvConv1x1 {
            lower: Param::from_tensor(t2(strict_lower)),
            upper: Param::from_tensor(t2(strict_upper)),
            log_s: Param::from_tensor(t1(diag.iter().map(|d| d.abs().ln() as f32).collect())),
            permutation: t2(p),
            sign_s: t1(diag.iter().map(|d| d.signum() as f32).collect()),
            lower_mask: t2((0..c * c).map(|i| if i % c < i / c { 1.0 } else { 0.0 }).collect()),
        }
    }

    /// `W`, `[c, c]`.
    pub fn weight(&self) -> Tensor<2> {
        let c = self.log_s.dims()[0];
        let device = self.log_s.val().device();
        let eye = Tensor::<2>::from_data(
            TensorData::new((0..c * c).map(|i| if i / c == i % c { 1.0f32 } else { 0.0 }).collect::<Vec<_>>(), [c, c]),
            &device,
        );
        let upper_mask = self.lower_mask.clone().transpose();
        let l = self.lower.val() * self.lower_mask.clone() + eye.clone();
        let s = (self.log_s.val().exp() * self.sign_s.clone()).reshape([1, c]).expand([c, c]);
        let u = self.upper.val() * upper_mask + eye * s;
        self.permutation.clone().matmul(l).matmul(u)
    }

    fn apply(x: Tensor<4>, w: Tensor<2>) -> Tensor<4> {
        let c = w.dims()[0];
        conv2d(x, w.reshape([c, c, 1, 1]), None, ConvOptions::new([1, 1], [0, 0], [1, 1], 1))
    }

    /// # Shapes
    /// `x: [batch, c, h, w]` -> `([batch, c, h, w], [batch])`
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>) {
        let [n, _, h, w] = x.dims();
        let log_det = (self.log_s.val().sum() * (h * w) as f32).expand([n]);
        (Self::apply(x, self.weight()), log_det)
    }

    /// The inverse, with `W^-1` computed on the host in float64 (inference only: not differentiated).
    pub fn inverse(&self, y: Tensor<4>) -> Tensor<4> {
        let c = self.log_s.dims()[0];
        let w: Vec<f64> = to_f32_vec(self.weight()).into_iter().map(f64::from).collect();
        let inv: Vec<f32> = invert(&w, c).into_iter().map(|v| v as f32).collect();
        let device = y.device();
        Self::apply(y, Tensor::from_data(TensorData::new(inv, [c, c]), &device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lu_reconstructs_the_rotation_and_the_layer_inverts() {
        let d = Device::flex();
        let mut rng = SeededRng::new(3);
        let rot = random_rotation(&mut SeededRng::new(11), 5);
        let (p, l, u) = lu(&rot, 5);
        let mul = |a: &[f64], b: &[f64]| -> Vec<f64> {
            (0..25).map(|i| (0..5).map(|k| a[i / 5 * 5 + k] * b[k * 5 + i % 5]).sum()).collect()
        };
        let back = mul(&mul(&p, &l), &u);
        assert!(back.iter().zip(&rot).all(|(a, b)| (a - b).abs() < 1e-12), "P L U = W");
        let layer = InvConv1x1::new(&mut rng, 4, &d);
        let x = Tensor::<4>::from_data(TensorData::new(rng.normal_vec(2 * 4 * 3 * 3), [2, 4, 3, 3]), &d);
        let (y, ld) = layer.forward(x.clone());
        assert!(to_f32_vec(ld).iter().all(|v| v.abs() < 1e-5), "a rotation has |det| = 1");
        let back = to_f32_vec(layer.inverse(y));
        let max = back.iter().zip(to_f32_vec(x)).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(max <= 1e-4, "max |x - f^-1(f(x))| = {max}");
    }

    #[test]
    fn log_det_equals_the_brute_force_jacobian() {
        let ad = Device::flex().autodiff();
        let mut layer = InvConv1x1::new(&mut SeededRng::new(5), 3, &ad);
        // Move off the rotation, so log |det| is not 0.
        layer.log_s = Param::from_data(TensorData::new(vec![0.4f32, -0.9, 0.3], [3]), &ad);
        let x0 = SeededRng::new(6).normal_vec(3 * 2 * 2);
        let brute = crate::testing::check_log_det("invconv", |x| layer.forward(x), &x0, [3, 2, 2], &ad);
        assert!((brute - (-0.2 * 4.0)).abs() < 1e-4, "brute force {brute}");
        let x = Tensor::<4>::from_data(TensorData::new(x0, [1, 3, 2, 2]), &ad);
        let back = to_f32_vec(layer.inverse(layer.forward(x.clone()).0));
        let max = back.iter().zip(to_f32_vec(x)).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(max <= 1e-4, "max |x - f^-1(f(x))| = {max}");
    }
}
