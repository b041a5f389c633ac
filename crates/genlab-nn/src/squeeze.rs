//! RealNVP's squeeze (Dinh et al. 2017, <https://arxiv.org/abs/1605.08803>): each 2x2 block of
//! pixels becomes four channels, `[c, h, w] -> [4c, h/2, w/2]`, a permutation (log-det 0) that lets
//! the next coupling layers mix neighbouring pixels and lets the multi-scale flow factor out
//! channels. Channel `4 * c + 2 * dy + dx` holds pixel `(2y + dy, 2x + dx)` of channel `c`.

use burn::Tensor;

/// # Shapes
/// `[batch, c, h, w]` (h, w even) -> `[batch, 4c, h/2, w/2]`
pub fn squeeze(x: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let x: Tensor<6> = x.reshape([n, c, h / 2, 2, w / 2, 2]); // [n, c, y, dy, x, dx]
    x.permute([0, 1, 3, 5, 2, 4]).reshape([n, 4 * c, h / 2, w / 2])
}

/// The inverse of [`squeeze`]: `[batch, 4c, h, w] -> [batch, c, 2h, 2w]`.
pub fn unsqueeze(y: Tensor<4>) -> Tensor<4> {
    let [n, c4, h, w] = y.dims();
    let y: Tensor<6> = y.reshape([n, c4 / 4, 2, 2, h, w]); // [n, c, dy, dx, y, x]
    y.permute([0, 1, 4, 2, 5, 3]).reshape([n, c4 / 4, 2 * h, 2 * w])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use genlab_core::tensors::to_f32_vec;

    #[test]
    fn squeeze_places_each_pixel_and_inverts_exactly() {
        let d = Device::flex();
        let (n, c, h, w) = (2, 3, 4, 6);
        let v: Vec<f32> = (0..n * c * h * w).map(|i| i as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(v.clone(), [n, c, h, w]), &d);
        let y = squeeze(x);
        assert_eq!(y.dims(), [n, 4 * c, h / 2, w / 2]);
        let got = to_f32_vec(y.clone());
        for b in 0..n {
            for ch in 0..c {
                for yy in 0..h {
                    for xx in 0..w {
                        let out_c = 4 * ch + 2 * (yy % 2) + xx % 2;
                        let at = ((b * 4 * c + out_c) * (h / 2) + yy / 2) * (w / 2) + xx / 2;
                        assert_eq!(got[at], v[((b * c + ch) * h + yy) * w + xx]);
                    }
                }
            }
        }
        assert_eq!(to_f32_vec(unsqueeze(y)), v, "unsqueeze(squeeze(x)) == x, exactly");
        // A permutation: log |det J| = 0.
        let ad = Device::flex().autodiff();
        let x0: Vec<f32> = (0..2 * 4 * 4).map(|i| (i as f32 * 0.37).sin()).collect();
        let brute = crate::testing::brute_force_log_det(squeeze, &x0, [2, 4, 4], &ad);
        assert!(brute.abs() < 1e-9, "{brute}");
    }
}
