//! Layer constructors whose parameters are drawn from genlab's seeded host RNG with PyTorch's
//! default initialisation (`kaiming_uniform_(a=sqrt(5))` for weights, which is U(-1/sqrt(fan_in),
//! 1/sqrt(fan_in)), and the same bound for biases). The draw does not touch a backend's global RNG,
//! so the same seed gives the same weights on every backend and in parallel tests.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::{Device, TensorData};
use genlab_core::memory::{self, Bytes, TooLarge};
use genlab_core::SeededRng;
use std::cell::RefCell;

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

/// Bytes a parameter costs in training: its value, its gradient and Adam's two moments, float32.
pub const TRAINING_BYTES_PER_PARAMETER: u128 = 16;

/// The parameter memory claimed by the layers built on this thread inside [`within_memory`].
struct Budget {
    available: Bytes,
    claimed: u128,
    /// The first layer that did not fit, and the memory the whole model needs.
    refused: Option<String>,
}

thread_local! {
    static BUDGET: RefCell<Option<Budget>> = const { RefCell::new(None) };
}

/// Builds a model with `build`, refusing it before its layers are allocated when its parameters
/// (with gradients and Adam's moments) need more memory than the machine has: a layer that does
/// not fit is built 1 x 1 instead, the rest are only counted, and the error names the first such
/// layer and the whole model's estimate. Without it, `latent_dim = 100000000` aborts the process
/// in the allocator.
pub fn within_memory<T>(build: impl FnOnce() -> T) -> Result<T, TooLarge> {
    let available = memory::budget();
    BUDGET.with(|b| *b.borrow_mut() = Some(Budget { available, claimed: 0, refused: None }));
    let built = build();
    let budget = BUDGET.with(|b| b.borrow_mut().take()).expect("the budget was set above");
    match budget.refused {
        None => Ok(built),
        Some(layer) => Err(TooLarge {
            what: format!("the model's parameters ({layer} among them)"),
            needs: Bytes(budget.claimed * TRAINING_BYTES_PER_PARAMETER),
            available,
        }),
    }
}

/// Counts `params` against the budget; false when they do not fit (the caller then builds a 1 x 1
/// stand-in that [`within_memory`] discards, without claiming again). Always true outside
/// `within_memory`.
pub(crate) fn claim(params: u128, layer: impl FnOnce() -> String) -> bool {
    BUDGET.with(|b| {
        let mut b = b.borrow_mut();
        let Some(b) = b.as_mut() else { return true };
        b.claimed = b.claimed.saturating_add(params);
        let fits = b.refused.is_none() && Bytes(b.claimed * TRAINING_BYTES_PER_PARAMETER) <= b.available;
        if !fits && b.refused.is_none() {
            b.refused = Some(layer());
        }
        fits
    })
}

/// A fully connected layer `d_in -> d_out` (burn stores the weight as `[d_in, d_out]`).
pub fn linear(rng: &mut SeededRng, d_in: usize, d_out: usize, device: &Device) -> Linear {
    let params = d_in as u128 * d_out as u128 + d_out as u128;
    let (d_in, d_out) =
        if claim(params, || format!("a linear layer of {d_in} x {d_out}")) { (d_in, d_out) } else { (1, 1) };
    let mut l = LinearConfig::new(d_in, d_out).init(device);
    l.weight = uniform_param(rng, [d_in, d_out], d_in, device);
    l.bias = Some(uniform_param(rng, [d_out], d_in, device));
    l
}

/// A learned table of `rows` vectors of `dim` entries, initialised N(0, 1) as PyTorch's
/// `nn.Embedding`.
pub fn embedding(rng: &mut SeededRng, rows: usize, dim: usize, device: &Device) -> Param<burn::Tensor<2>> {
    let (rows, dim) = if claim(rows as u128 * dim as u128, || format!("an embedding of {rows} x {dim}")) {
        (rows, dim)
    } else {
        (1, 1)
    };
    Param::from_data(TensorData::new(rng.normal_vec(rows * dim), [rows, dim]), device)
}

/// A fully connected layer `d_in -> d_out` with weights drawn N(0, std^2) and a zero bias (or
/// none): GPT-2's initialisation as nanoGPT writes it (`normal_(std=0.02)`, `zeros_` bias).
pub fn normal_linear(rng: &mut SeededRng, d_in: usize, d_out: usize, std: f32, bias: bool, device: &Device) -> Linear {
    let params = d_in as u128 * d_out as u128 + if bias { d_out as u128 } else { 0 };
    let (d_in, d_out) =
        if claim(params, || format!("a linear layer of {d_in} x {d_out}")) { (d_in, d_out) } else { (1, 1) };
    let mut l = LinearConfig::new(d_in, d_out).with_bias(bias).init(device);
    let w: Vec<f32> = rng.normal_vec(d_in * d_out).into_iter().map(|v| v * std).collect();
    l.weight = Param::from_data(TensorData::new(w, [d_in, d_out]), device);
    if bias {
        l.bias = Some(Param::from_data(TensorData::new(vec![0.0f32; d_out], [d_out]), device));
    }
    l
}

/// A learned table of `rows` vectors of `dim` entries drawn N(0, std^2).
pub fn normal_embedding(
    rng: &mut SeededRng,
    rows: usize,
    dim: usize,
    std: f32,
    device: &Device,
) -> Param<burn::Tensor<2>> {
    let (rows, dim) = if claim(rows as u128 * dim as u128, || format!("an embedding of {rows} x {dim}")) {
        (rows, dim)
    } else {
        (1, 1)
    };
    let v: Vec<f32> = rng.normal_vec(rows * dim).into_iter().map(|x| x * std).collect();
    Param::from_data(TensorData::new(v, [rows, dim]), device)
}

/// Batch normalisation over `channels` (scale, shift and the two running statistics).
pub fn batch_norm(channels: usize, device: &Device) -> BatchNorm {
    let channels =
        if claim(4 * channels as u128, || format!("a batch norm of {channels} channels")) { channels } else { 1 };
    BatchNormConfig::new(channels).init(device)
}

/// A 2-D convolution; weight `[out, in / groups, kh, kw]`, fan-in `in / groups * kh * kw`.
pub fn conv2d(rng: &mut SeededRng, config: &Conv2dConfig, device: &Device) -> Conv2d {
    let [c_in, c_out] = config.channels;
    let [kh, kw] = config.kernel_size;
    let fan_in = c_in / config.groups * kh * kw;
    let params = c_out as u128 * (c_in / config.groups) as u128 * kh as u128 * kw as u128 + c_out as u128;
    if !claim(params, || format!("a {kh}x{kw} convolution of {c_in} -> {c_out} channels")) {
        return Conv2dConfig::new([1, 1], [1, 1]).init(device);
    }
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
    let params = c_in as u128 * (c_out / config.groups) as u128 * kh as u128 * kw as u128 + c_out as u128;
    if !claim(params, || format!("a {kh}x{kw} transposed convolution of {c_in} -> {c_out} channels")) {
        return ConvTranspose2dConfig::new([1, 1], [1, 1]).init(device);
    }
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
    fn a_model_too_large_is_refused_before_its_layers_are_allocated() {
        let dev = Device::flex();
        let small = within_memory(|| linear(&mut SeededRng::new(0), 10, 10, &dev)).unwrap();
        assert_eq!(small.weight.val().dims(), [10, 10]);
        // 3136 x 1e8 floats would be 1.25 TB; the stand-in is 1 x 1 and the error names the layer.
        let err = within_memory(|| {
            let mut rng = SeededRng::new(0);
            (linear(&mut rng, 3136, 100_000_000, &dev), linear(&mut rng, 5, 5, &dev))
        })
        .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "the model's parameters (a linear layer of 3136 x 100000000 among them) needs about 4.6 TiB"
            ),
            "{err}"
        );
    }

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
