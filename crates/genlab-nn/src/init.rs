//! Layer constructors whose parameters are drawn from genlab's seeded host RNG with PyTorch's
//! default initialisation (`kaiming_uniform_(a=sqrt(5))` for weights, which is U(-1/sqrt(fan_in),
//! 1/sqrt(fan_in)), and the same bound for biases). The draw does not touch a backend's global RNG,
//! so the same seed gives the same weights on every backend and in parallel tests.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, TensorData};
use genlab_core::SeededRng;

fn uniform_param<const D: usize>(
    rng: &mut SeededRng,
    shape: [usize; D],
    fan_in: usize,
    device: &Device,
) -> Param<burn::Tensor<D>> {
    let n = shape.iter().product();
    let bound = 1.0 / (fan_in as f32).sqrt();
    Param::from_data(TensorData::new(rng.symmetric_uniform_vec(n, bound), shape), device)
}

/// A fully connected layer `d_in -> d_out` (burn stores the weight as `[d_in, d_out]`).
pub fn linear(rng: &mut SeededRng, d_in: usize, d_out: usize, device: &Device) -> Linear {
    let mut l = LinearConfig::new(d_in, d_out).init(device);
    l.weight = uniform_param(rng, [d_in, d_out], d_in, device);
    l.bias = Some(uniform_param(rng, [d_out], d_in, device));
    l
}

/// A 2-D convolution; weight `[out, in / groups, kh, kw]`, fan-in `in / groups * kh * kw`.
pub fn conv2d(rng: &mut SeededRng, config: &Conv2dConfig, device: &Device) -> Conv2d {
    let [c_in, c_out] = config.channels;
    let [kh, kw] = config.kernel_size;
    let fan_in = c_in / config.groups * kh * kw;
    let mut c = config.init(device);
    c.weight = uniform_param(rng, [c_out, c_in / config.groups, kh, kw], fan_in, device);
    if config.bias {
        c.bias = Some(uniform_param(rng, [c_out], fan_in, device));
    }
    c
}

/// A 2-D transposed convolution; weight `[in, out / groups, kh, kw]`. PyTorch computes its fan-in
/// from the weight's second dimension (`out / groups * kh * kw`), and so does this.
pub fn conv_transpose2d(rng: &mut SeededRng, config: &ConvTranspose2dConfig, device: &Device) -> ConvTranspose2d {
    let [c_in, c_out] = config.channels;
    let [kh, kw] = config.kernel_size;
    let fan_in = c_out / config.groups * kh * kw;
    let mut c = config.init(device);
    c.weight = uniform_param(rng, [c_in, c_out / config.groups, kh, kw], fan_in, device);
    if config.bias {
        c.bias = Some(uniform_param(rng, [c_out], fan_in, device));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_weights_within_pytorch_bound() {
        let dev = Device::flex();
        let a = linear(&mut SeededRng::new(3), 50, 7, &dev);
        let b = linear(&mut SeededRng::new(3), 50, 7, &dev);
        let (wa, wb) = (a.weight.val(), b.weight.val());
        assert_eq!(wa.to_data(), wb.to_data());
        let max = wa.abs().max().into_scalar::<f32>();
        let bound = 1.0 / 50f32.sqrt();
        assert!(max <= bound && max > 0.9 * bound, "max {max} bound {bound}");
        let c = conv_transpose2d(&mut SeededRng::new(1), &ConvTranspose2dConfig::new([8, 4], [3, 3]), &dev);
        assert_eq!(c.weight.val().dims(), [8, 4, 3, 3]);
        let bound = 1.0 / ((4 * 9) as f32).sqrt();
        assert!(c.weight.val().abs().max().into_scalar::<f32>() <= bound);
    }
}
