//! Causal scaled dot-product attention (Vaswani et al. 2017, <https://arxiv.org/abs/1706.03762>,
//! eq. 1) for queries that continue a sequence: the queries are the last `tq` positions of the
//! `tk` keys, so query `i` sits at position `tk - tq + i` and sees keys `0..=tk - tq + i` (the
//! bottom-right alignment of a decoder step against a KV cache; with `tq == tk` it is the usual
//! lower-triangular mask of training). One code path serves training, a prompt's prefill and
//! each cached decode step, so cached and uncached generation compute the same sums.

use crate::dropout::dropout;
use crate::flex_ops::on_flex_f32;
use burn::tensor::activation::softmax;
use burn::tensor::TensorData;
use burn::Tensor;
use genlab_core::SeededRng;

/// The additive causal mask `[1, 1, tq, tk]`: 0 where query `i` may see key `j`, minus infinity
/// elsewhere. Every row keeps at least its own position, so no softmax row is empty.
pub fn causal_mask(tq: usize, tk: usize, device: &burn::tensor::Device) -> Tensor<4> {
    let offset = tk - tq;
    let v: Vec<f32> =
        (0..tq).flat_map(|i| (0..tk).map(move |j| if j <= offset + i { 0.0 } else { f32::NEG_INFINITY })).collect();
    Tensor::from_data(TensorData::new(v, [1, 1, tq, tk]), device)
}

/// softmax(q kᵀ / sqrt(d) + causal mask) v (on flex, genlab's fused operation,
/// [`crate::fused_attention`]; elsewhere composed of burn's).
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
    let tq = q.dims()[2];
    let tk = k.dims()[2];
    assert!(tk >= tq, "causal attention: {tq} queries should continue {tk} keys");
    if (p == 0.0 || rng.is_none()) && on_flex_f32(&q.device(), q.dtype()) {
        // No dropout on flex: genlab's fused operation (crate::fused_attention).
        return crate::fused_attention::causal_attention(q, k, v);
    }
    let mask = (tq > 1).then(|| causal_mask(tq, tk, &v.device()));
    attention(q, k, v, mask, p, rng)
}

/// softmax(q kᵀ / sqrt(d) + mask) v, with dropout `p` on the weights when `rng` is given; `mask`
/// is additive and broadcasts to `[batch, heads, tq, tk]` (0 to keep, minus infinity to hide).
pub fn attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Option<Tensor<4>>,
    p: f64,
    rng: Option<&mut SeededRng>,
) -> Tensor<4> {
    let d = q.dims()[3];
    let scores = q.matmul(k.transpose()) * (1.0 / (d as f64).sqrt()); // [b, h, tq, tk]
    let scores = match mask {
        Some(m) => scores + m,
        None => scores,
    };
    dropout(softmax(scores, 3), p, rng).matmul(v) // [b, h, tq, d]
}

/// The additive mask `[batch, 1, 1, keys]` hiding the keys whose token is `pad`.
pub fn padding_mask(tokens: &[i64], batch: usize, pad: i64, device: &burn::tensor::Device) -> Tensor<4> {
    let keys = tokens.len() / batch.max(1);
    let v: Vec<f32> = tokens.iter().map(|&t| if t == pad { f32::NEG_INFINITY } else { 0.0 }).collect();
    Tensor::from_data(TensorData::new(v, [batch, 1, 1, keys]), device)
}

/// `[batch, t, heads * d]` as `[batch, heads, t, d]`.
pub fn split_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
    let [b, t, w] = x.dims();
    x.reshape([b, t, heads, w / heads]).swap_dims(1, 2)
}

/// `[batch, heads, t, d]` as `[batch, t, heads * d]`.
pub fn merge_heads(x: Tensor<4>) -> Tensor<3> {
    let [b, h, t, d] = x.dims();
    x.swap_dims(1, 2).reshape([b, t, h * d])
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
