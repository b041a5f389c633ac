//! Dropout (Srivastava et al. 2014, <https://jmlr.org/papers/v15/srivastava14a.html>) with its mask
//! drawn from genlab's seeded host stream rather than the backend's generator, so a training step
//! with dropout is reproducible and a resumed run continues bit for bit.

use burn::tensor::TensorData;
use burn::Tensor;
use genlab_core::SeededRng;

/// Zeroes each value with probability `p` and scales the rest by 1 / (1 - p), with a mask drawn
/// from `rng`; the identity without a stream (evaluation) or when `p` is 0.
pub fn dropout<const D: usize>(x: Tensor<D>, p: f64, rng: Option<&mut SeededRng>) -> Tensor<D> {
    let Some(rng) = rng.filter(|_| p > 0.0) else { return x };
    let dims = x.dims();
    let keep = (1.0 / (1.0 - p)) as f32;
    let mask: Vec<f32> =
        rng.uniform_vec(dims.iter().product()).into_iter().map(|u| if (u as f64) < p { 0.0 } else { keep }).collect();
    let mask = Tensor::from_data(TensorData::new(mask, dims), &x.device());
    x * mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn dropout_keeps_the_mean_and_is_the_identity_without_a_stream() {
        let dev = Device::flex();
        let x = Tensor::<2>::ones([100, 100], &dev);
        assert_eq!(dropout(x.clone(), 0.5, None).to_data(), x.to_data());
        let y = genlab_core::tensors::to_f32_vec(dropout(x, 0.25, Some(&mut SeededRng::new(1))));
        let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / 1e4;
        let mean = y.iter().map(|&v| v as f64).sum::<f64>() / 1e4;
        assert!((zeros - 0.25).abs() < 0.02 && (mean - 1.0).abs() < 0.03, "{zeros} {mean}");
    }
}
