//! Every layer and density the VAE and the LeNet classifier are built from: autodiff gradients with respect to each input
//! and parameter against central finite differences of the same float32 forward pass.

use burn::tensor::activation::relu;
use burn::tensor::module::{conv2d, conv_transpose2d, linear, max_pool2d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions, MaxPoolOptions};
use burn::tensor::Int;
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;
use genlab_nn::distributions::*;

type Inputs = Vec<(Vec<usize>, Vec<f32>)>;

fn t<const D: usize>(x: &Tensor<1>, shape: [usize; D]) -> Tensor<D> {
    x.clone().reshape(shape)
}

/// Checks d f / d input for every element of every input (inputs are small).
fn check(name: &str, inputs: Inputs, f: impl Fn(&[Tensor<1>]) -> Tensor<1>) {
    let ad = Device::flex().autodiff();
    let plain = Device::flex();
    let leaves: Vec<Tensor<1>> = inputs
        .iter()
        .map(|(_, v)| Tensor::<1>::from_data(TensorData::new(v.clone(), [v.len()]), &ad).require_grad())
        .collect();
    let grads = f(&leaves).backward();
    let eval = |vals: &[Vec<f32>]| -> f64 {
        let ts: Vec<Tensor<1>> =
            vals.iter().map(|v| Tensor::from_data(TensorData::new(v.clone(), [v.len()]), &plain)).collect();
        f(&ts).into_scalar::<f32>() as f64
    };
    let base: Vec<Vec<f32>> = inputs.iter().map(|(_, v)| v.clone()).collect();
    for (i, leaf) in leaves.iter().enumerate() {
        let g = to_f32_vec(leaf.grad(&grads).unwrap_or_else(|| panic!("{name}: input {i} has no gradient")));
        for j in 0..base[i].len() {
            let h = 1e-2f32;
            let mut plus = base.clone();
            plus[i][j] += h;
            let mut minus = base.clone();
            minus[i][j] -= h;
            let fd = (eval(&plus) - eval(&minus)) / (2.0 * h as f64);
            assert!(
                (g[j] as f64 - fd).abs() <= 1e-2 * fd.abs().max(1.0),
                "{name}: d/d input{i}[{j}]: autodiff {} vs finite difference {fd}",
                g[j]
            );
        }
    }
}

fn rand(rng: &mut SeededRng, shape: &[usize]) -> (Vec<usize>, Vec<f32>) {
    (shape.to_vec(), rng.normal_vec(shape.iter().product()).into_iter().map(|v| v * 0.5).collect())
}

/// Away from 0, where ReLU has its kink.
fn off_zero(rng: &mut SeededRng, shape: &[usize]) -> (Vec<usize>, Vec<f32>) {
    let (s, v) = rand(rng, shape);
    (s, v.into_iter().map(|x| x.signum() * (0.2 + x.abs())).collect())
}

fn weights(rng: &mut SeededRng, n: usize) -> Tensor<1> {
    Tensor::from_data(TensorData::new(rng.normal_vec(n), [n]), &Device::flex())
}

#[test]
fn linear_layer() {
    let mut r = SeededRng::new(1);
    let w = weights(&mut r, 12);
    check("linear", vec![rand(&mut r, &[3, 5]), rand(&mut r, &[5, 4]), rand(&mut r, &[4])], |x| {
        let y = linear(t(&x[0], [3, 5]), t(&x[1], [5, 4]), Some(t(&x[2], [4])));
        (y.reshape([12]) * w.clone()).sum()
    });
}

#[test]
fn conv2d_stride2_layer() {
    let mut r = SeededRng::new(2);
    let w = weights(&mut r, 2 * 3 * 3 * 3);
    check("conv2d", vec![rand(&mut r, &[2, 2, 6, 6]), rand(&mut r, &[3, 2, 4, 4]), rand(&mut r, &[3])], |x| {
        let y = conv2d(
            t(&x[0], [2, 2, 6, 6]),
            t(&x[1], [3, 2, 4, 4]),
            Some(t(&x[2], [3])),
            ConvOptions::new([2, 2], [1, 1], [1, 1], 1),
        );
        (y.reshape([54]) * w.clone()).sum()
    });
}

#[test]
fn conv_transpose2d_stride2_layer() {
    let mut r = SeededRng::new(3);
    let w = weights(&mut r, 2 * 2 * 6 * 6);
    check(
        "conv_transpose2d",
        vec![rand(&mut r, &[2, 3, 3, 3]), rand(&mut r, &[3, 2, 4, 4]), rand(&mut r, &[2])],
        |x| {
            let y = conv_transpose2d(
                t(&x[0], [2, 3, 3, 3]),
                t(&x[1], [3, 2, 4, 4]),
                Some(t(&x[2], [2])),
                ConvTransposeOptions::new([2, 2], [1, 1], [0, 0], [1, 1], 1),
            );
            (y.reshape([144]) * w.clone()).sum()
        },
    );
}

#[test]
fn relu_activation() {
    let mut r = SeededRng::new(4);
    let w = weights(&mut r, 10);
    check("relu", vec![off_zero(&mut r, &[10])], |x| (relu(x[0].clone()) * w.clone()).sum());
}

#[test]
fn densities_and_divergences() {
    let mut r = SeededRng::new(5);
    let target: Vec<f32> = r.uniform_vec(6);
    let dev = Device::flex();
    let tgt = Tensor::<1>::from_data(TensorData::new(target, [6]), &dev);
    check("bernoulli_log_prob (logits)", vec![rand(&mut r, &[2, 3])], |x| {
        bernoulli_log_prob(t(&x[0], [2, 3]), tgt.clone().reshape([2, 3])).sum()
    });
    check("gaussian_log_prob (mean, log_sigma)", vec![rand(&mut r, &[2, 3]), rand(&mut r, &[2, 3])], |x| {
        gaussian_log_prob(t(&x[0], [2, 3]), t(&x[1], [2, 3]), tgt.clone().reshape([2, 3])).sum()
    });
    check("kl_diag_normal_std_normal", vec![rand(&mut r, &[2, 3]), rand(&mut r, &[2, 3])], |x| {
        kl_diag_normal_std_normal(t(&x[0], [2, 3]), t(&x[1], [2, 3])).sum()
    });
    check("diag_normal_log_prob", vec![rand(&mut r, &[2, 3]), rand(&mut r, &[2, 3]), rand(&mut r, &[2, 3])], |x| {
        diag_normal_log_prob(t(&x[0], [2, 3]), t(&x[1], [2, 3]), t(&x[2], [2, 3])).sum()
    });
    check("std_normal_log_prob", vec![rand(&mut r, &[2, 3])], |x| std_normal_log_prob(t(&x[0], [2, 3])).sum());
    let w = weights(&mut r, 2);
    check("log_mean_exp", vec![rand(&mut r, &[4, 2])], |x| {
        (log_mean_exp(t(&x[0], [4, 2]), 0).reshape([2]) * w.clone()).sum()
    });
}

#[test]
fn max_pool2d_layer() {
    let mut r = SeededRng::new(6);
    let w = weights(&mut r, 2 * 2 * 3 * 3);
    // Distinct values, so each window's maximum is unique and the function is smooth at the point.
    let (shape, mut v) = rand(&mut r, &[2, 2, 6, 6]);
    for (i, x) in v.iter_mut().enumerate() {
        *x += 0.07 * i as f32;
    }
    check("max_pool2d", vec![(shape, v)], |x| {
        let y = max_pool2d(t(&x[0], [2, 2, 6, 6]), MaxPoolOptions::new([2, 2]).with_stride([2, 2]));
        (y.reshape([36]) * w.clone()).sum()
    });
}

#[test]
fn categorical_log_prob_gradient() {
    let mut r = SeededRng::new(7);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0, 3], [3]), &Device::flex());
    check("categorical_log_prob (logits)", vec![rand(&mut r, &[3, 4])], |x| {
        let labels = labels.clone().to_device(&x[0].device());
        categorical_log_prob(t(&x[0], [3, 4]), labels).sum()
    });
}
