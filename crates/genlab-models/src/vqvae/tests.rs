//! VQ-VAE tests: the code grid's layout (encode then decode is the forward pass), the data-shape
//! check, and the overfit-one-batch check with the codebook's moving averages in the loop.

use super::*;
use burn::tensor::TensorData;
use genlab_core::tensors::{to_f32_vec, to_i64_vec};

fn images(n: usize, seed: u64) -> Vec<f32> {
    // Smooth blobs: a bright square at a random place on a dark ground.
    let mut r = SeededRng::new(seed);
    let mut v = vec![0.0f32; n * 64];
    for i in 0..n {
        let (y0, x0) = (r.below(5), r.below(5));
        for y in y0..y0 + 4 {
            for x in x0..x0 + 4 {
                v[i * 64 + y * 8 + x] = 1.0;
            }
        }
    }
    v
}

fn small() -> VqVaeConfig {
    VqVaeConfig {
        channels: vec![8, 16],
        residual_blocks: 1,
        residual_channels: 8,
        codebook_size: 16,
        code_dim: 4,
        ..Default::default()
    }
}

#[test]
fn encode_then_decode_is_the_forward_pass() {
    let dev = Device::flex();
    let m = small().init([1, 8, 8], 3, &dev).unwrap();
    assert_eq!(m.grid, [2, 2]);
    let x: Tensor<4> = Tensor::from_data(TensorData::new(images(3, 1), [3, 1, 8, 8]), &dev);
    let p = m.pass(x.clone());
    let codes = m.encode(x);
    assert_eq!(codes.dims(), [3, 4]);
    assert_eq!(to_i64_vec(codes.clone()), to_i64_vec(p.codes));
    let a = to_f32_vec(m.decode(codes));
    let b = to_f32_vec(p.reconstruction);
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5));
}

#[test]
fn a_grid_that_does_not_divide_the_image_is_refused() {
    let e = small().init([1, 10, 10], 0, &Device::flex()).unwrap_err().to_string();
    assert!(e.contains("model.channels") && e.contains("divisible by 4") && e.contains("10x10"), "{e}");
}

#[test]
fn overfits_one_batch() {
    use genlab_train::{OptimizerConfig, Optimizers};
    let ad = Device::flex().autodiff();
    let mut m = small().init([1, 8, 8], 0, &ad).unwrap();
    let x: Tensor<4> = Tensor::from_data(TensorData::new(images(16, 9), [16, 1, 8, 8]), &ad);
    let mut opt = Optimizers::single(OptimizerConfig { lr: 3e-3, ..Default::default() }, None);
    let mut rng = SeededRng::new(0);
    let mut mse = vec![];
    for step in 1..=300 {
        let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &ad };
        let (next, out) = m.train_step(x.clone(), &mut ctx);
        m = next;
        mse.push(out.scalars[0].1);
    }
    let first = mse[..10].iter().sum::<f64>() / 10.0;
    let last = mse[mse.len() - 10..].iter().sum::<f64>() / 10.0;
    assert!(last < first / 5.0, "reconstruction error fell from {first:.4} to {last:.4} only");
}
