//! Rotary position embedding (Su et al. 2021, RoFormer, <https://arxiv.org/abs/2104.09864>), in the
//! rotate-half layout of GPT-NeoX and Llama: the head's channels `c` and `c + d/2` form a pair
//! rotated by the angle `position * base^(-2c/d)`. The angles are computed on the host for the
//! positions asked for, so a cached decode step rotates its one query at its true position.

use burn::tensor::{Device, TensorData};
use burn::Tensor;

/// cos and sin of every (position, pair) angle: two `[1, 1, n, d/2]` tensors.
fn angles(start: usize, n: usize, d: usize, base: f64, device: &Device) -> (Tensor<4>, Tensor<4>) {
    let half = d / 2;
    let (mut cos, mut sin) = (Vec::with_capacity(n * half), Vec::with_capacity(n * half));
    for p in start..start + n {
        for c in 0..half {
            let a = p as f64 * base.powf(-2.0 * c as f64 / d as f64);
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    let t = |v: Vec<f32>| Tensor::from_data(TensorData::new(v, [1, 1, n, half]), device);
    (t(cos), t(sin))
}

/// Rotates `x` `[batch, heads, n, d]` (d even) as positions `start..start + n`.
pub fn rotate(x: Tensor<4>, start: usize, base: f64) -> Tensor<4> {
    let [_, _, n, d] = x.dims();
    let (cos, sin) = angles(start, n, d, base, &x.device());
    let a = x.clone().narrow(3, 0, d / 2);
    let b = x.narrow(3, d / 2, d / 2);
    Tensor::cat(vec![a.clone() * cos.clone() - b.clone() * sin.clone(), b * cos + a * sin], 3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use genlab_core::SeededRng;

    /// A rotation keeps norms, and the dot product of a rotated query and key depends only on
    /// their distance: the property that makes the embedding relative.
    #[test]
    fn rotation_is_relative() {
        let dev = Device::flex();
        let mut rng = SeededRng::new(0);
        let d = 8;
        let q = Tensor::<4>::from_data(TensorData::new(rng.normal_vec(d), [1, 1, 1, d]), &dev);
        let k = Tensor::<4>::from_data(TensorData::new(rng.normal_vec(d), [1, 1, 1, d]), &dev);
        let dot =
            |pq, pk| -> f32 { (rotate(q.clone(), pq, 10000.0) * rotate(k.clone(), pk, 10000.0)).sum().into_scalar() };
        assert!((dot(5, 2) - dot(13, 10)).abs() < 1e-4);
        assert!((dot(5, 2) - dot(2, 5)).abs() > 1e-3, "a rotation by distance, not by its absolute value");
        let n0: f32 = q.clone().powi_scalar(2).sum().into_scalar();
        let n1: f32 = rotate(q, 7, 10000.0).powi_scalar(2).sum().into_scalar();
        assert!((n0 - n1).abs() < 1e-4);
        // Position 0 is the identity.
        let x = Tensor::<4>::from_data(TensorData::new(rng.normal_vec(2 * d), [1, 1, 2, d]), &dev);
        assert_eq!(rotate(x.clone(), 0, 10000.0).narrow(2, 0, 1).to_data(), x.narrow(2, 0, 1).to_data());
    }
}
