//! RealNVP's logit transform (Dinh et al. 2017, <https://arxiv.org/abs/1605.08803>, section 4.1):
//! data `y` in [0, 1] (dequantised pixels) is mapped to the real line by
//! `x = logit(alpha + (1 - 2 alpha) y)`, so the flow models an unbounded variable; `alpha` keeps
//! the boundary pixels away from the logit's poles. Per entry, with `p = alpha + (1 - 2 alpha) y`,
//! `log |dx/dy| = log(1 - 2 alpha) - log p - log(1 - p)`.

use crate::distributions::sum_but_batch;
use burn::tensor::activation::{sigmoid, softplus};
use burn::Tensor;

/// `y -> (x, log |det dx/dy|)`.
///
/// # Shapes
/// `y: [batch, ...]` -> `([batch, ...], [batch])`
pub fn logit_forward<const D: usize>(y: Tensor<D>, alpha: f64) -> (Tensor<D>, Tensor<1>) {
    let p = y * (1.0 - 2.0 * alpha) + alpha;
    let x = p.clone().log() - p.clone().neg().log1p();
    // log p + log(1 - p) = -(softplus(x) + softplus(-x)), stable for p near 0 or 1.
    let log_det = (softplus(x.clone(), 1.0) + softplus(x.clone().neg(), 1.0)) + (1.0 - 2.0 * alpha).ln();
    (x, sum_but_batch(log_det))
}

/// `x -> y`, the inverse of [`logit_forward`].
pub fn logit_inverse<const D: usize>(x: Tensor<D>, alpha: f64) -> Tensor<D> {
    (sigmoid(x) - alpha) / (1.0 - 2.0 * alpha)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use genlab_core::tensors::to_f32_vec;
    use genlab_core::SeededRng;

    #[test]
    fn inverts_and_matches_the_float64_log_det_and_the_brute_force_jacobian() {
        let d = Device::flex();
        let alpha = 0.05;
        let y0: Vec<f32> = SeededRng::new(3).uniform_vec(2 * 8);
        let y = Tensor::<4>::from_data(TensorData::new(y0.clone(), [2, 2, 2, 2]), &d);
        let (x, ld) = logit_forward(y.clone(), alpha);
        let back = to_f32_vec(logit_inverse(x, alpha));
        let max = back.iter().zip(&y0).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(max <= 1e-4, "max |y - f^-1(f(y))| = {max}");
        for (i, got) in to_f32_vec(ld).into_iter().enumerate() {
            let want: f64 = y0[i * 8..(i + 1) * 8]
                .iter()
                .map(|&v| {
                    let p = alpha + (1.0 - 2.0 * alpha) * v as f64;
                    (1.0 - 2.0 * alpha).ln() - p.ln() - (1.0 - p).ln()
                })
                .sum();
            assert!((got as f64 - want).abs() <= 1e-3 * want.abs().max(1.0), "{got} vs float64 {want}");
        }
        let ad = d.autodiff();
        crate::testing::check_log_det("logit", |y| logit_forward(y, alpha), &y0[..8], [2, 2, 2], &ad);
    }
}
