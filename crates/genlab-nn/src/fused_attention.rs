//! Causal scaled dot-product attention as one operation of genlab's on flex (burn's backend
//! extension) with its own backward pass, for [`crate::attention::causal_attention_with_dropout`]
//! without dropout. Composed of burn's operations it is two batched products around a scale, the
//! mask's addition and a softmax of four passes, and about twice as many operations backward; flex
//! runs each element-wise pass on one thread, and in the GPT's step they held the second core idle.
//! Here each (batch, head) is one task on the threads: `S = q k^T / sqrt(d)` by a product, the
//! softmax over each query's visible keys (the vectorised [`crate::flex_ops::exp`]), `P v` by a
//! product. The backward pass recomputes `P` from `q` and `k` (as FlashAttention does, Dao et al.
//! 2022, <https://arxiv.org/abs/2205.14135>; nothing of the forward pass but its inputs is kept) and
//! forms `dv = P^T do`, `dP = do v^T`, `dS = P (dP - rowsum(P dP))`, `dq = dS k / sqrt(d)`,
//! `dk = dS^T q / sqrt(d)`. Queries continue the keys (bottom-right alignment, as the composed path).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::{Shape, Tensor};
use rayon::prelude::*;

use crate::flex_ops::{avx512, exp, lane_sum, matmul, tensor, values, View};

/// The attention and, from its output's gradient, the gradients of `q`, `k` and `v`.
#[backend_extension(Flex, Autodiff)]
pub trait FusedAttentionOps: Backend {
    fn causal_attention_fused(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>) -> FloatTensor<Self>;

    #[allow(clippy::type_complexity)]
    fn causal_attention_fused_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// `softmax(q k^T / sqrt(d) + causal mask) v` for `q` `[batch, heads, tq, d]` and `k`, `v`
/// `[batch, heads, tk, d]` (`tk >= tq`; query `i` sees keys `0..=tk - tq + i`), on flex (f32).
pub(crate) fn causal_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as FusedAttentionOps>::causal_attention_fused(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
    ))
}

/// Below this many products of a query and a key coordinate (a decoding step's attention) the heads
/// run one after another on the calling thread: waking the other threads would cost more.
const PARALLEL_WORK: usize = 64 * 1024;

/// The sizes: (batch x heads, tq, tk, d).
fn sizes(q: &FlexTensor, k: &FlexTensor) -> (usize, usize, usize, usize) {
    let (qs, ks) = (q.shape(), k.shape());
    assert!(qs.num_dims() == 4 && ks.num_dims() == 4, "attention: 4-D q and k were expected, got {qs:?}, {ks:?}");
    let same = qs[0] == ks[0] && qs[1] == ks[1] && qs[3] == ks[3];
    assert!(same, "attention: q {qs:?} and k {ks:?} should share batch, heads and width");
    assert!(ks[2] >= qs[2], "attention: {} queries should continue {} keys", qs[2], ks[2]);
    (qs[0] * qs[1], qs[2], ks[2], qs[3])
}

/// One head's attention weights `p` (`[tq, tk]`, zero where hidden) from its `q` and `k`.
fn weights(q: &[f32], k: &[f32], p: &mut [f32], (tq, tk, d): (usize, usize, usize)) {
    let k_t = View { data: k, offset: 0, rs: 1, cs: d };
    matmul(p, false, View::rows(q, d), k_t, tq, tk, d);
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { softmax_rows_avx512(p, tq, tk, d) };
    }
    softmax_rows(p, tq, tk, d)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn softmax_rows_avx512(p: &mut [f32], tq: usize, tk: usize, d: usize) {
    softmax_rows(p, tq, tk, d)
}

/// Each row of the scores `p` (`q k^T`) replaced by the softmax of its visible part after scaling by
/// `1 / sqrt(d)`, zeros beyond it.
#[inline(always)]
fn softmax_rows(p: &mut [f32], tq: usize, tk: usize, d: usize) {
    let scale = 1.0 / (d as f32).sqrt();
    for (i, row) in p.chunks_exact_mut(tk).enumerate() {
        let (seen, hidden) = row.split_at_mut(tk - tq + i + 1);
        let max = seen.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        for s in seen.iter_mut() {
            *s = exp((*s - max) * scale);
        }
        let inv = (1.0 / lane_sum(seen, seen, |s, _| s)) as f32;
        seen.iter_mut().for_each(|s| *s *= inv);
        hidden.fill(0.0);
    }
}

impl FusedAttentionOps for Flex {
    fn causal_attention_fused(q: FlexTensor, k: FlexTensor, v: FlexTensor) -> FlexTensor {
        let shape = q.shape();
        let (heads, tq, tk, d) = sizes(&q, &k);
        assert_eq!(v.shape(), k.shape(), "attention: v should have k's shape");
        if heads * tq * d == 0 {
            return tensor(Vec::new(), shape);
        }
        let (q, k, v) = (q.to_contiguous(), k.to_contiguous(), v.to_contiguous());
        let (qv, kv, vv) = (values(&q), values(&k), values(&v));
        let mut out = vec![0.0f32; heads * tq * d];
        let head = |p: &mut Vec<f32>, (h, out): (usize, &mut [f32])| {
            let k = &kv[h * tk * d..][..tk * d];
            weights(&qv[h * tq * d..][..tq * d], k, p, (tq, tk, d));
            matmul(out, false, View::rows(p, tk), View::rows(&vv[h * tk * d..][..tk * d], d), tq, d, tk);
        };
        if heads * tq * tk * d < PARALLEL_WORK {
            let mut p = vec![0.0f32; tq * tk];
            out.chunks_mut(tq * d).enumerate().for_each(|task| head(&mut p, task));
        } else {
            out.par_chunks_mut(tq * d).enumerate().for_each_init(|| vec![0.0f32; tq * tk], head);
        }
        tensor(out, shape)
    }

    fn causal_attention_fused_backward(
        q: FlexTensor,
        k: FlexTensor,
        v: FlexTensor,
        grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (q_shape, k_shape) = (q.shape(), k.shape());
        let (heads, tq, tk, d) = sizes(&q, &k);
        if heads * tq * d == 0 {
            let zeros = |shape: Shape| tensor(vec![0.0; shape.num_elements()], shape);
            return (zeros(q_shape), zeros(k_shape.clone()), zeros(k_shape));
        }
        let (q, k, v, grad) = (q.to_contiguous(), k.to_contiguous(), v.to_contiguous(), grad.to_contiguous());
        let (qv, kv, vv, gv) = (values(&q), values(&k), values(&v), values(&grad));
        let scale = 1.0 / (d as f32).sqrt();
        let mut dq = vec![0.0f32; heads * tq * d];
        let mut dk = vec![0.0f32; heads * tk * d];
        let mut dv = vec![0.0f32; heads * tk * d];
        dq.par_chunks_mut(tq * d)
            .zip(dk.par_chunks_mut(tk * d))
            .zip(dv.par_chunks_mut(tk * d))
            .enumerate()
            .for_each_init(
                || (vec![0.0f32; tq * tk], vec![0.0f32; tq * tk]),
                |(p, ds), (h, ((dq, dk), dv))| {
                    let (q, k) = (&qv[h * tq * d..][..tq * d], &kv[h * tk * d..][..tk * d]);
                    let (v, g) = (&vv[h * tk * d..][..tk * d], &gv[h * tq * d..][..tq * d]);
                    weights(q, k, p, (tq, tk, d));
                    // dv = P^T do
                    let p_t = View { data: p, offset: 0, rs: 1, cs: tk };
                    matmul(dv, false, p_t, View::rows(g, d), tk, d, tq);
                    // dP = do v^T, then dS = P (dP - rowsum(P dP)) / sqrt(d) in its place
                    let v_t = View { data: v, offset: 0, rs: 1, cs: d };
                    matmul(ds, false, View::rows(g, d), v_t, tq, tk, d);
                    for (row, prow) in ds.chunks_exact_mut(tk).zip(p.chunks_exact(tk)) {
                        let dot = lane_sum(row, prow, |a, b| a * b) as f32;
                        for (x, &pv) in row.iter_mut().zip(prow) {
                            *x = pv * (*x - dot) * scale;
                        }
                    }
                    // dq = dS k, dk = dS^T q
                    matmul(dq, false, View::rows(ds, tk), View::rows(k, d), tq, d, tk);
                    let ds_t = View { data: ds, offset: 0, rs: 1, cs: tk };
                    matmul(dk, false, ds_t, View::rows(q, d), tk, d, tq);
                },
            );
        (tensor(dq, q_shape), tensor(dk, k_shape.clone()), tensor(dv, k_shape))
    }
}

#[derive(Debug)]
struct AttentionBackward;

impl<B: Backend + FusedAttentionOps> Backward<B, 3> for AttentionBackward {
    /// `q`, `k` and `v`.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (q, k, v) = ops.state;
        let (dq, dk, dv) = B::causal_attention_fused_backward(q, k, v, grad);
        for (node, g) in ops.parents.into_iter().zip([dq, dk, dv]) {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

impl<B: Backend + FusedAttentionOps, C: CheckpointStrategy> FusedAttentionOps for Autodiff<B, C> {
    fn causal_attention_fused(q: FloatTensor<Self>, k: FloatTensor<Self>, v: FloatTensor<Self>) -> FloatTensor<Self> {
        let nodes = [q.node(), k.node(), v.node()];
        let [q, k, v] = [q, k, v].map(|t| t.into_primitive());
        match AttentionBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let state = (q.clone(), k.clone(), v.clone());
                prep.finish(state, B::causal_attention_fused(q, k, v))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::causal_attention_fused(q, k, v)),
        }
    }

    fn causal_attention_fused_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // Not differentiated again (burn has no second-order gradients): computed on the values.
        let [q, k, v, grad] = [q, k, v, grad].map(|t| t.into_primitive());
        let (dq, dk, dv) = B::causal_attention_fused_backward(q, k, v, grad);
        (FloatTensor::<Self>::new(dq), FloatTensor::<Self>::new(dk), FloatTensor::<Self>::new(dv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::{attention, causal_mask};
    use crate::testing::central_differences;
    use burn::tensor::{Device, TensorData};
    use genlab_core::SeededRng;

    /// The attention by definition in float64: `[heads, tq, d]` queries against `[heads, tk, d]`.
    fn attention64(q: &[f64], k: &[f64], v: &[f64], (heads, tq, tk, d): (usize, usize, usize, usize)) -> Vec<f64> {
        let mut out = vec![0.0; heads * tq * d];
        for h in 0..heads {
            for i in 0..tq {
                let seen = tk - tq + i + 1;
                let s: Vec<f64> = (0..seen)
                    .map(|j| {
                        (0..d).map(|c| q[(h * tq + i) * d + c] * k[(h * tk + j) * d + c]).sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
                for c in 0..d {
                    out[(h * tq + i) * d + c] = (0..seen).map(|j| (s[j] - m).exp() / z * v[(h * tk + j) * d + c]).sum();
                }
            }
        }
        out
    }

    /// The output and the gradients of q, k, v (of the output weighted by `r`), by genlab's fused
    /// operation or by burn's composed attention.
    fn run(qkv: [&[f32]; 3], r: &[f32], [b, h, tq, tk, d]: [usize; 5], fused: bool) -> [Vec<f32>; 4] {
        let device = Device::flex().autodiff();
        let t = |x: &[f32], n: usize| {
            Tensor::<4>::from_data(TensorData::new(x.to_vec(), [b, h, n, d]), &device).require_grad()
        };
        let (q, k, v) = (t(qkv[0], tq), t(qkv[1], tk), t(qkv[2], tk));
        let out = if fused {
            causal_attention(q.clone(), k.clone(), v.clone())
        } else {
            let mask = (tq > 1).then(|| causal_mask(tq, tk, &device));
            attention(q.clone(), k.clone(), v.clone(), mask, 0.0, None)
        };
        let weights = Tensor::<4>::from_data(TensorData::new(r.to_vec(), [b, h, tq, d]), &device);
        let grads = (out.clone() * weights).sum().backward();
        let f = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
        [f(out), f(q.grad(&grads).unwrap()), f(k.grad(&grads).unwrap()), f(v.grad(&grads).unwrap())]
    }

    fn inputs(shape: [usize; 5], seed: u64) -> [Vec<f32>; 4] {
        let [b, h, tq, tk, d] = shape;
        let mut rng = SeededRng::new(seed);
        [
            rng.normal_vec(b * h * tq * d),
            rng.normal_vec(b * h * tk * d),
            rng.normal_vec(b * h * tk * d),
            rng.normal_vec(b * h * tq * d),
        ]
    }

    /// Training (tq = tk), prefill after cached keys (tq < tk) and a decode step (tq = 1): the output
    /// equals the float64 definition, every gradient its central differences, and both burn's
    /// composed attention.
    #[test]
    fn fused_attention_equals_float64_finite_differences_and_burns() {
        for shape in [[2, 3, 5, 5, 4], [1, 2, 3, 7, 3], [2, 1, 1, 6, 5]] {
            let [b, h, tq, tk, d] = shape;
            let [q, k, v, r] = inputs(shape, (tq * 10 + tk) as u64);
            let ours = run([&q, &k, &v], &r, shape, true);
            let sizes = (b * h, tq, tk, d);
            let to64 = |x: &[f32]| x.iter().map(|&v| v as f64).collect::<Vec<f64>>();
            let (q64, k64, v64, r64) = (to64(&q), to64(&k), to64(&v), to64(&r));
            for (i, (a, e)) in ours[0].iter().zip(attention64(&q64, &k64, &v64, sizes)).enumerate() {
                assert!((*a as f64 - e).abs() < 1e-5, "{shape:?}: output {i}: {a} vs {e}");
            }
            let loss = |q: &[f64], k: &[f64], v: &[f64]| -> f64 {
                attention64(q, k, v, sizes).iter().zip(&r64).map(|(y, r)| y * r).sum()
            };
            let numeric = [
                central_differences(&q64, 1e-4, |x: &[f64]| loss(x, &k64, &v64)),
                central_differences(&k64, 1e-4, |x: &[f64]| loss(&q64, x, &v64)),
                central_differences(&v64, 1e-4, |x: &[f64]| loss(&q64, &k64, x)),
            ];
            for (what, (got, want)) in ["q", "k", "v"].iter().zip(ours[1..].iter().zip(&numeric)) {
                for (i, (&g, &n)) in got.iter().zip(want).enumerate() {
                    assert!((g as f64 - n).abs() < 1e-4 * (1.0 + n.abs()), "{shape:?}: d{what}[{i}]: {g} vs {n}");
                }
            }
            let burns = run([&q, &k, &v], &r, shape, false);
            for (what, (a, b)) in ["output", "dq", "dk", "dv"].iter().zip(ours.iter().zip(&burns)) {
                for (i, (a, b)) in a.iter().zip(b).enumerate() {
                    assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{shape:?}: {what}[{i}]: {a} vs burn's {b}");
                }
            }
        }
    }

    /// The same bits on one thread as on two (each head is one task).
    #[test]
    fn fused_attention_is_thread_independent() {
        let shape = [3, 4, 16, 16, 8];
        let [q, k, v, r] = inputs(shape, 7);
        let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().expect("a thread pool");
        let one = pool(1).install(|| run([&q, &k, &v], &r, shape, true));
        let two = pool(2).install(|| run([&q, &k, &v], &r, shape, true));
        assert_eq!(one, two);
    }
}
