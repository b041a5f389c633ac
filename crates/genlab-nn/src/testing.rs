//! Test helpers shared by the invertible layers' tests.

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
