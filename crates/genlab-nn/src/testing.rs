//! Test helpers shared by the tests of the layers (here) and of the models built from them
//! (`genlab-models`): the brute-force Jacobian log-determinant and central differences.

use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::tensors::to_f32_vec;

/// log |det J| of `f` at `x0` (one example of shape `[c, h, w]`), from the Jacobian built row by
/// row with autodiff and reduced in float64 by Gaussian elimination with partial pivoting.
pub fn brute_force_log_det(f: impl Fn(Tensor<4>) -> Tensor<4>, x0: &[f32], [c, h, w]: [usize; 3], ad: &Device) -> f64 {
    let n = x0.len();
    let mut jac = vec![vec![0.0f64; n]; n];
    for (i, row) in jac.iter_mut().enumerate() {
        let x = Tensor::<1>::from_data(TensorData::new(x0.to_vec(), [n]), ad).require_grad();
        let y = f(x.clone().reshape([1, c, h, w]));
        let g = y.reshape([n]).narrow(0, i, 1).sum().backward();
        for (j, v) in to_f32_vec(x.grad(&g).expect("x has a gradient")).into_iter().enumerate() {
            row[j] = v as f64;
        }
    }
    let mut log_det = 0.0f64;
    for col in 0..n {
        let p = (col..n).max_by(|&a, &b| jac[a][col].abs().total_cmp(&jac[b][col].abs())).expect("a column");
        jac.swap(col, p);
        let pivot_row = jac[col].clone();
        let pivot = pivot_row[col];
        log_det += pivot.abs().ln();
        for row in jac.iter_mut().skip(col + 1) {
            let f = row[col] / pivot;
            for (a, b) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *a -= f * b;
            }
        }
    }
    log_det
}

/// Checks a layer's own log-determinant (`forward(x).1`) against [`brute_force_log_det`] at `x0`,
/// to relative 1e-3 (`what` names the case); returns the brute-force value for further checks.
pub fn check_log_det(
    what: &str,
    forward: impl Fn(Tensor<4>) -> (Tensor<4>, Tensor<1>),
    x0: &[f32],
    shape: [usize; 3],
    ad: &Device,
) -> f64 {
    let brute = brute_force_log_det(|x| forward(x).0, x0, shape, ad);
    let [c, h, w] = shape;
    let got = to_f32_vec(forward(Tensor::from_data(TensorData::new(x0.to_vec(), [1, c, h, w]), ad)).1)[0] as f64;
    assert!((got - brute).abs() <= 1e-3 * brute.abs().max(1.0), "{what}: {got} vs brute force {brute}");
    brute
}

/// The gradient of `f` at `v` by central differences of step `h`, every coordinate in turn.
pub fn central_differences(v: &[f64], h: f64, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    (0..v.len())
        .map(|i| {
            let (mut up, mut down) = (v.to_vec(), v.to_vec());
            up[i] += h;
            down[i] -= h;
            (f(&up) - f(&down)) / (2.0 * h)
        })
        .collect()
}
