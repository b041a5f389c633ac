//! Causal scaled dot-product attention (Vaswani et al. 2017, <https://arxiv.org/abs/1706.03762>,
//! eq. 1) for queries that continue a sequence: the queries are the last `tq` positions of the
//! `tk` keys, so query `i` sits at position `tk - tq + i` and sees keys `0..=tk - tq + i` (the
//! bottom-right alignment of a decoder step against a KV cache; with `tq == tk` it is the usual
//! lower-triangular mask of training). One code path serves training, a prompt's prefill and
//! each cached decode step, so cached and uncached generation compute the same sums.

use crate::dropout::dropout;
use burn::tensor::activation::softmax;
use burn::tensor::TensorData;
use burn::Tensor;
use genlab_core::SeededRng;

/// The additive causal mask `[1, 1, tq, tk]`: 0 where query `i` may see key `j`, minus infinity
/// elsewhere. Every row keeps at least its own position, so no softmax row is empty.
fn causal_mask(tq: usize, tk: usize, device: &burn::tensor::Device) -> Tensor<4> {
    let offset = tk - tq;
    let v: Vec<f32> =
        (0..tq).flat_map(|i| (0..tk).map(move |j| if j <= offset + i { 0.0 } else { f32::NEG_INFINITY })).collect();
    Tensor::from_data(TensorData::new(v, [1, 1, tq, tk]), device)
}

/// softmax(q kᵀ / sqrt(d) + causal mask) v.
///
/// # Shapes
/// - `q`: `[batch, heads, tq, d]`
/// - `k`, `v`: `[batch, heads, tk, d]` with `tk >= tq`
/// - returns `[batch, heads, tq, d]`
pub fn causal_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    causal_attention_with_dropout(q, k, v, 0.0, None)
}

/// [`causal_attention`] with dropout `p` on the attention weights when `rng` is given (training),
/// as `torch.nn.functional.scaled_dot_product_attention(dropout_p = p)`.
pub fn causal_attention_with_dropout(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    p: f64,
    rng: Option<&mut SeededRng>,
) -> Tensor<4> {
    let [_, _, tq, d] = q.dims();
    let tk = k.dims()[2];
    assert!(tk >= tq, "causal attention: {tq} queries should continue {tk} keys");
    let scores = q.matmul(k.transpose()) * (1.0 / (d as f64).sqrt()); // [b, h, tq, tk]
    let scores = if tq > 1 { scores + causal_mask(tq, tk, &v.device()) } else { scores };
    dropout(softmax(scores, 3), p, rng).matmul(v) // [b, h, tq, d]
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    /// The same attention in float64 on the host, one query at a time.
    fn naive(q: &[f32], k: &[f32], v: &[f32], [b, h, tq, tk, d]: [usize; 5]) -> Vec<f64> {
        let mut out = vec![0.0; b * h * tq * d];
        for bh in 0..b * h {
            for i in 0..tq {
                let visible = tk - tq + i + 1;
                let s: Vec<f64> = (0..visible)
                    .map(|j| {
                        (0..d).map(|c| q[(bh * tq + i) * d + c] as f64 * k[(bh * tk + j) * d + c] as f64).sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
                for c in 0..d {
                    out[(bh * tq + i) * d + c] =
                        (0..visible).map(|j| (s[j] - m).exp() / z * v[(bh * tk + j) * d + c] as f64).sum();
                }
            }
        }
        out
    }

    #[test]
    fn attention_matches_a_float64_reference_for_training_prefill_and_decode_shapes() {
        let dev = Device::flex();
        for (tq, tk) in [(7, 7), (3, 9), (1, 6)] {
            let (b, h, d) = (2, 3, 5);
            let mut rng = SeededRng::new(tq as u64 * 31 + tk as u64);
            let q = rng.normal_vec(b * h * tq * d);
            let k = rng.normal_vec(b * h * tk * d);
            let v = rng.normal_vec(b * h * tk * d);
            let t = |x: &Vec<f32>, n| Tensor::<4>::from_data(TensorData::new(x.clone(), [b, h, n, d]), &dev);
            let got = genlab_core::tensors::to_f32_vec(causal_attention(t(&q, tq), t(&k, tk), t(&v, tk)));
            let want = naive(&q, &k, &v, [b, h, tq, tk, d]);
            let err = got.iter().zip(&want).map(|(g, w)| (*g as f64 - w).abs()).fold(0.0, f64::max);
            assert!(err < 1e-5, "tq {tq} tk {tk}: max error {err}");
        }
    }
}
