//! A fused LSTM sequence for the flex backend: the whole recurrence of one layer (every time step's
//! recurrent product, gates and state update) as one operation with its own backward pass
//! (backpropagation through time in one kernel), registered through burn's backend-extension
//! mechanism. Composed of tensor operations, an LSTM layer of 64 steps is about 1,000 small
//! operations and autodiff nodes a pass; fused, it is one node, as `torch.lstm` is in PyTorch.
//!
//! The equations are [`crate::recurrent`]'s (PyTorch's gate order i, f, g, o):
//! `a = xi_t + h_{t-1} W + b`, `i, f, o = sigmoid(a_i, a_f, a_o)`, `g = tanh(a_g)`,
//! `c_t = f c_{t-1} + i g`, `h_t = o tanh(c_t)`, where `xi_t` is the input's projection (with its
//! bias) computed for every step beforehand. Other backends (and float types other than f32) take
//! the composed path; [`crate::flex_ops::on_flex_f32`] says which.

use crate::flex_ops::{avx512, exp, matmul, matmul_on, sigmoid, tensor, transpose, values, View};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::Tensor;
use rayon::prelude::*;
use std::ops::Range;

/// The fused LSTM's operations. `lstm_sequence` returns the states `[batch, steps, 2 * hidden]`
/// (`h_t` then `c_t` for each step) and the gate activations `[batch, steps, 4 * hidden]` that the
/// backward pass reads; `lstm_sequence_backward` returns the gradients of `xi`, `h0`, `c0`, `w`
/// and `b` from the gradient of the states.
#[backend_extension(Flex, Autodiff)]
pub trait LstmOps: Backend {
    fn lstm_sequence(
        xi: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    #[allow(clippy::type_complexity)]
    fn lstm_sequence_backward(
        grad: FloatTensor<Self>,
        states: FloatTensor<Self>,
        gates: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        w: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// One LSTM layer over a sequence, fused (see the module's documentation); only where
/// [`crate::flex_ops::on_flex_f32`].
///
/// # Shapes
/// - `xi`: `[batch, steps, 4 * hidden]`, the input's projection with its bias
/// - `h0`, `c0`: `[batch, hidden]`
/// - `w`: `[hidden, 4 * hidden]`, `b`: `[4 * hidden]` (the recurrent projection, burn's `Linear` layout)
/// - returns `[batch, steps, 2 * hidden]`: `h_t` in the first half of the last axis, `c_t` in the second
pub fn fused_lstm(xi: Tensor<3>, h0: Tensor<2>, c0: Tensor<2>, w: Tensor<2>, b: Tensor<1>) -> Tensor<3> {
    let (states, _) = <Dispatch as LstmOps>::lstm_sequence(
        xi.into_dispatch(),
        h0.into_dispatch(),
        c0.into_dispatch(),
        w.into_dispatch(),
        b.into_dispatch(),
    );
    Tensor::from_dispatch(states)
}

/// tanh through one `exp`, the polynomial the compiler vectorises, as the gates' sigmoid does (glibc's
/// `tanhf` goes through `expm1f` and was a third of the fused step's time): `sign(x) (1 - e) / (1 + e)`,
/// `e = exp(-2|x|)`; within 1e-7 of `tanh` absolutely.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    let e = exp(-2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

/// `v`'s four gate blocks of `h` (PyTorch's order i, f, g, o).
#[inline(always)]
fn blocks(v: &[f32], h: usize) -> [&[f32]; 4] {
    let (a, rest) = v[..4 * h].split_at(h);
    let (b, rest) = rest.split_at(h);
    let (c, d) = rest.split_at(h);
    [a, b, c, d]
}

/// One row of one step: the gates from the pre-activations `a` (`4h`), then `c_t`, `h_t` into
/// `out` (`2h`) and into the running `h_prev`, `c_prev`.
#[inline(always)]
fn forward_gates(a: &[f32], gates: &mut [f32], out: &mut [f32], h_prev: &mut [f32], c_prev: &mut [f32]) {
    let h = c_prev.len();
    let [ai, af, ag, ao] = blocks(a, h);
    let (gi, rest) = gates[..4 * h].split_at_mut(h);
    let (gf, rest) = rest.split_at_mut(h);
    let (gg, go) = rest.split_at_mut(h);
    let (oh, oc) = out[..2 * h].split_at_mut(h);
    let h_prev = &mut h_prev[..h];
    for j in 0..h {
        let (i, f, g, o) = (sigmoid(ai[j]), sigmoid(af[j]), tanh(ag[j]), sigmoid(ao[j]));
        (gi[j], gf[j], gg[j], go[j]) = (i, f, g, o);
        let c = f * c_prev[j] + i * g;
        let hv = o * tanh(c);
        (oh[j], oc[j], h_prev[j], c_prev[j]) = (hv, c, hv, c);
    }
}

/// One row of one step backwards: from the step's gates and cell state `c` (`h`), the output's
/// gradient `gr` (`2h`: of `h_t`, then of `c_t`) and the gradients `dh`, `dc` reaching `h_t`, `c_t`
/// through the recurrence, the pre-activations' gradient `da` (`4h`); `dc` becomes `c_{t-1}`'s.
#[inline(always)]
fn backward_gates(gates: &[f32], c: &[f32], gr: &[f32], c_prev: &[f32], dh: &[f32], dc: &mut [f32], da: &mut [f32]) {
    let h = dc.len();
    let [gi, gf, gg, go] = blocks(gates, h);
    let (gh, gc) = gr[..2 * h].split_at(h);
    let (c, c_prev, dh) = (&c[..h], &c_prev[..h], &dh[..h]);
    let (dai, rest) = da[..4 * h].split_at_mut(h);
    let (daf, rest) = rest.split_at_mut(h);
    let (dag, dao) = rest.split_at_mut(h);
    for j in 0..h {
        let (i, f, g, o) = (gi[j], gf[j], gg[j], go[j]);
        let tc = tanh(c[j]);
        let dh_t = gh[j] + dh[j];
        let dc_t = gc[j] + dc[j] + dh_t * o * (1.0 - tc * tc);
        dai[j] = dc_t * g * i * (1.0 - i);
        daf[j] = dc_t * c_prev[j] * f * (1.0 - f);
        dag[j] = dc_t * i * (1.0 - g * g);
        dao[j] = dh_t * tc * o * (1.0 - o);
        dc[j] = dc_t * f;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn forward_gates_avx512(a: &[f32], gates: &mut [f32], out: &mut [f32], h_prev: &mut [f32], c_prev: &mut [f32]) {
    forward_gates(a, gates, out, h_prev, c_prev)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn backward_gates_avx512(
    gates: &[f32],
    c: &[f32],
    gr: &[f32],
    c_prev: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    da: &mut [f32],
) {
    backward_gates(gates, c, gr, c_prev, dh, dc, da)
}

/// `dst [m, n] += lhs [m, k] rhs [k, n]`, row-major and contiguous: the recurrence's small product of
/// every step. With AVX-512 it is register-blocked (4 rows by 64 columns of accumulators, each row of
/// `rhs` read once for 4 rows of `lhs`), which at these sizes beats the general kernel's packing;
/// elsewhere the general kernel.
fn step_matmul(dst: &mut [f32], lhs: &[f32], rhs: &[f32], m: usize, n: usize, k: usize) {
    assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n, "step_matmul: operands too short");
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU has the features the function is compiled for.
        unsafe { blocked_avx512(dst, lhs, rhs, m, n, k) };
        return;
    }
    matmul(dst, true, View::rows(lhs, k), View::rows(rhs, n), m, n, k);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn blocked_avx512(dst: &mut [f32], lhs: &[f32], rhs: &[f32], m: usize, n: usize, k: usize) {
    blocked(dst, lhs, rhs, m, n, k)
}

/// [`step_matmul`]'s blocked loops, inlined into the caller compiled for its vector width.
#[inline(always)]
fn blocked(dst: &mut [f32], lhs: &[f32], rhs: &[f32], m: usize, n: usize, k: usize) {
    const R: usize = 4;
    const C: usize = 64;
    for r0 in (0..m).step_by(R) {
        for c0 in (0..n).step_by(C) {
            if r0 + R <= m && c0 + C <= n {
                let mut acc = [[0.0f32; C]; R];
                for (rr, a) in acc.iter_mut().enumerate() {
                    a.copy_from_slice(&dst[(r0 + rr) * n + c0..][..C]);
                }
                let rows: [&[f32]; R] = std::array::from_fn(|rr| &lhs[(r0 + rr) * k..][..k]);
                for kk in 0..k {
                    let w: &[f32; C] = rhs[kk * n + c0..][..C].try_into().expect("C columns");
                    for (a, row) in acc.iter_mut().zip(&rows) {
                        let s = row[kk];
                        for (x, wv) in a.iter_mut().zip(w) {
                            *x = s.mul_add(*wv, *x);
                        }
                    }
                }
                for (rr, a) in acc.iter().enumerate() {
                    dst[(r0 + rr) * n + c0..][..C].copy_from_slice(a);
                }
            } else {
                for r in r0..(r0 + R).min(m) {
                    for c in c0..(c0 + C).min(n) {
                        let mut x = dst[r * n + c];
                        for kk in 0..k {
                            x = lhs[r * k + kk].mul_add(rhs[kk * n + c], x);
                        }
                        dst[r * n + c] = x;
                    }
                }
            }
        }
    }
}

/// The forward recurrence on f32 slices: (states `[batch, steps, 2h]`, gates `[batch, steps, 4h]`).
#[allow(clippy::too_many_arguments)]
fn forward(
    xi: &[f32],
    h0: &[f32],
    c0: &[f32],
    w: &[f32],
    bias: &[f32],
    batch: usize,
    steps: usize,
    h: usize,
) -> (Vec<f32>, Vec<f32>) {
    let g4 = 4 * h;
    let mut states = vec![0.0f32; batch * steps * 2 * h];
    let mut gates = vec![0.0f32; batch * steps * g4];
    let mut a = vec![0.0f32; batch * g4];
    let (mut hp, mut cp) = (h0.to_vec(), c0.to_vec());
    let fast = avx512();
    for t in 0..steps {
        for r in 0..batch {
            let row = &xi[(r * steps + t) * g4..][..g4];
            for ((v, x), b) in a[r * g4..][..g4].iter_mut().zip(row).zip(bias) {
                *v = x + b;
            }
        }
        step_matmul(&mut a, &hp, w, batch, g4, h);
        for r in 0..batch {
            let ar = &a[r * g4..][..g4];
            let gr = &mut gates[(r * steps + t) * g4..][..g4];
            let out = &mut states[(r * steps + t) * 2 * h..][..2 * h];
            let (hr, cr) = (&mut hp[r * h..][..h], &mut cp[r * h..][..h]);
            #[cfg(target_arch = "x86_64")]
            if fast {
                // SAFETY: the CPU has the features the function is compiled for.
                unsafe { forward_gates_avx512(ar, gr, out, hr, cr) };
                continue;
            }
            forward_gates(ar, gr, out, hr, cr);
        }
    }
    (states, gates)
}

/// Backpropagation through time on f32 slices: the gradients of (xi, h0, c0, w, b).
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn backward(
    grad: &[f32],
    states: &[f32],
    gates: &[f32],
    h0: &[f32],
    c0: &[f32],
    w: &[f32],
    batch: usize,
    steps: usize,
    h: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let g4 = 4 * h;
    let wt = transpose(w, h, g4); // W^T, [4h, h]
    let [d_xi, dh, dc] = by_row_blocks(batch, |rows| {
        let (per_row, n) = (steps * 2 * h, rows.len());
        let (grad, states) =
            (&grad[rows.start * per_row..][..n * per_row], &states[rows.start * per_row..][..n * per_row]);
        let gates = &gates[rows.start * steps * g4..][..n * steps * g4];
        bptt(grad, states, gates, &c0[rows.start * h..][..n * h], &wt, n, steps, h)
    });
    // dW = sum_t h_{t-1}^T da_t: one product over every (row, step), the previous states gathered.
    let mut prev = Vec::with_capacity(batch * steps * h);
    for r in 0..batch {
        for t in 0..steps {
            prev.extend_from_slice(if t == 0 {
                &h0[r * h..][..h]
            } else {
                &states[(r * steps + t - 1) * 2 * h..][..h]
            });
        }
    }
    let n = batch * steps;
    let mut dw = vec![0.0f32; h * g4];
    let prev_t = View { data: &prev, offset: 0, rs: 1, cs: h };
    // On every thread: the product splits the output, not the sum, so its values do not depend on them.
    matmul_on((&mut dw, g4, 1), false, prev_t, View::rows(&d_xi, g4), [h, g4, n], gemm::Parallelism::Rayon(0));
    let mut db = vec![0.0f32; g4];
    for row in d_xi.chunks_exact(g4) {
        for (s, v) in db.iter_mut().zip(row) {
            *s += v;
        }
    }
    (d_xi, dh, dc, dw, db)
}

/// Rows per block of the recurrence. Rows are independent, so blocks run on separate threads; the
/// size is fixed (a multiple of the blocked product's 4 rows), so every row's arithmetic is the same
/// whatever the number of threads.
const ROW_BLOCK: usize = 16;

/// `f(rows)` for each block of [`ROW_BLOCK`] rows of `0..batch`, in parallel, each of its outputs
/// concatenated in row order.
fn by_row_blocks<const N: usize>(batch: usize, f: impl Fn(Range<usize>) -> [Vec<f32>; N] + Sync) -> [Vec<f32>; N] {
    let blocks: Vec<[Vec<f32>; N]> = (0..batch.div_ceil(ROW_BLOCK))
        .into_par_iter()
        .map(|i| f(i * ROW_BLOCK..((i + 1) * ROW_BLOCK).min(batch)))
        .collect();
    std::array::from_fn(|k| {
        let mut all = Vec::with_capacity(blocks.iter().map(|b| b[k].len()).sum());
        blocks.iter().for_each(|b| all.extend_from_slice(&b[k]));
        all
    })
}

/// Backpropagation through time for `batch` rows: the gradients of (xi, h0, c0).
#[allow(clippy::too_many_arguments)]
fn bptt(
    grad: &[f32],
    states: &[f32],
    gates: &[f32],
    c0: &[f32],
    wt: &[f32],
    batch: usize,
    steps: usize,
    h: usize,
) -> [Vec<f32>; 3] {
    let g4 = 4 * h;
    let mut d_xi = vec![0.0f32; batch * steps * g4];
    let mut dh = vec![0.0f32; batch * h]; // the gradient reaching h_t through the recurrence
    let mut dc = vec![0.0f32; batch * h]; // likewise c_t
    let mut da = vec![0.0f32; batch * g4];
    let fast = avx512();
    for t in (0..steps).rev() {
        for r in 0..batch {
            let at = (r * steps + t) * 2 * h;
            let (gs, st) = (&gates[(r * steps + t) * g4..][..g4], &states[at..][..2 * h]);
            let gr = &grad[at..][..2 * h];
            let c_prev = if t == 0 { &c0[r * h..][..h] } else { &states[at - 2 * h + h..][..h] };
            let dar = &mut da[r * g4..][..g4];
            let (dhr, dcr) = (&dh[r * h..][..h], &mut dc[r * h..][..h]);
            #[cfg(target_arch = "x86_64")]
            if fast {
                // SAFETY: the CPU has the features the function is compiled for.
                unsafe { backward_gates_avx512(gs, &st[h..], gr, c_prev, dhr, dcr, dar) };
            } else {
                backward_gates(gs, &st[h..], gr, c_prev, dhr, dcr, dar);
            }
            #[cfg(not(target_arch = "x86_64"))]
            backward_gates(gs, &st[h..], gr, c_prev, dhr, dcr, dar);
            d_xi[(r * steps + t) * g4..][..g4].copy_from_slice(dar);
        }
        // dh_{t-1} = da W^T.
        dh.fill(0.0);
        step_matmul(&mut dh, &da, wt, batch, h, g4);
    }
    [d_xi, dh, dc]
}

impl LstmOps for Flex {
    fn lstm_sequence(
        xi: FlexTensor,
        h0: FlexTensor,
        c0: FlexTensor,
        w: FlexTensor,
        b: FlexTensor,
    ) -> (FlexTensor, FlexTensor) {
        let [batch, steps, g4] = xi.shape().dims();
        let h = g4 / 4;
        let [xi, h0, c0, w, b] = [xi, h0, c0, w, b].map(|t| t.to_contiguous());
        let (xi, h0, c0, w, b) = (values(&xi), values(&h0), values(&c0), values(&w), values(&b));
        let [states, gates] = by_row_blocks(batch, |rows| {
            let (n, g4) = (rows.len(), 4 * h);
            let (h0, c0) = (&h0[rows.start * h..][..n * h], &c0[rows.start * h..][..n * h]);
            let (states, gates) = forward(&xi[rows.start * steps * g4..][..n * steps * g4], h0, c0, w, b, n, steps, h);
            [states, gates]
        });
        (tensor(states, [batch, steps, 2 * h]), tensor(gates, [batch, steps, g4]))
    }

    fn lstm_sequence_backward(
        grad: FlexTensor,
        states: FlexTensor,
        gates: FlexTensor,
        h0: FlexTensor,
        c0: FlexTensor,
        w: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor, FlexTensor, FlexTensor) {
        let [batch, steps, g4] = gates.shape().dims();
        let h = g4 / 4;
        let [grad, states, gates, h0, c0, w] = [grad, states, gates, h0, c0, w].map(|t| t.to_contiguous());
        let (d_xi, dh0, dc0, dw, db) = backward(
            values(&grad),
            values(&states),
            values(&gates),
            values(&h0),
            values(&c0),
            values(&w),
            batch,
            steps,
            h,
        );
        (
            tensor(d_xi, [batch, steps, g4]),
            tensor(dh0, [batch, h]),
            tensor(dc0, [batch, h]),
            tensor(dw, [h, g4]),
            tensor(db, [g4]),
        )
    }
}

/// The backward node of the fused sequence: its parents are (xi, h0, c0, w, b).
#[derive(Debug)]
struct LstmSequenceBackward;

impl<B: Backend + LstmOps> Backward<B, 5> for LstmSequenceBackward {
    /// The states and gates of the forward pass, h0, c0 and w.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 5>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [xi, h0, c0, w, b] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (states, gates, h0_value, c0_value, w_value) = ops.state;
        let (d_xi, dh0, dc0, dw, db) = B::lstm_sequence_backward(grad, states, gates, h0_value, c0_value, w_value);
        for (node, g) in [(xi, d_xi), (h0, dh0), (c0, dc0), (w, dw), (b, db)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

/// A tensor of the autodiff backend over `B`.
type Tracked<B, C> = FloatTensor<Autodiff<B, C>>;

impl<B: Backend + LstmOps, C: CheckpointStrategy> LstmOps for Autodiff<B, C> {
    fn lstm_sequence(
        xi: Tracked<B, C>,
        h0: Tracked<B, C>,
        c0: Tracked<B, C>,
        w: Tracked<B, C>,
        b: Tracked<B, C>,
    ) -> (Tracked<B, C>, Tracked<B, C>) {
        let nodes = [xi.node(), h0.node(), c0.node(), w.node(), b.node()];
        let (h0, c0, w) = (h0.into_primitive(), c0.into_primitive(), w.into_primitive());
        let (states, gates) =
            B::lstm_sequence(xi.into_primitive(), h0.clone(), c0.clone(), w.clone(), b.into_primitive());
        let states = match LstmSequenceBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((states.clone(), gates.clone(), h0, c0, w), states),
            OpsKind::UnTracked(prep) => prep.finish(states),
        };
        (states, Tracked::<B, C>::new(gates))
    }

    fn lstm_sequence_backward(
        grad: Tracked<B, C>,
        states: Tracked<B, C>,
        gates: Tracked<B, C>,
        h0: Tracked<B, C>,
        c0: Tracked<B, C>,
        w: Tracked<B, C>,
    ) -> (Tracked<B, C>, Tracked<B, C>, Tracked<B, C>, Tracked<B, C>, Tracked<B, C>) {
        // Not differentiated again (burn has no second-order gradients): computed on the values.
        let (a, b, c, d, e) = B::lstm_sequence_backward(
            grad.into_primitive(),
            states.into_primitive(),
            gates.into_primitive(),
            h0.into_primitive(),
            c0.into_primitive(),
            w.into_primitive(),
        );
        (
            Tracked::<B, C>::new(a),
            Tracked::<B, C>::new(b),
            Tracked::<B, C>::new(c),
            Tracked::<B, C>::new(d),
            Tracked::<B, C>::new(e),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flex_ops::on_flex_f32;
    use crate::recurrent::{Cell, LayerState, RecurrentLayer};
    use burn::tensor::{DType, Device, TensorData};
    use genlab_core::SeededRng;

    /// sum(states * r) in float64, from the fused forward pass on slices.
    #[allow(clippy::too_many_arguments)]
    fn loss(xi: &[f32], h0: &[f32], c0: &[f32], w: &[f32], b: &[f32], r: &[f32], dims: [usize; 3]) -> f64 {
        let [batch, steps, h] = dims;
        let (states, _) = forward(xi, h0, c0, w, b, batch, steps, h);
        states.iter().zip(r).map(|(s, r)| *s as f64 * *r as f64).sum()
    }

    /// The blocked product (full blocks and ragged edges) and the general one against a float64 product.
    #[test]
    fn step_matmul_matches_a_float64_product() {
        let mut rng = SeededRng::new(11);
        for [m, n, k] in [[32, 512, 128], [7, 70, 5], [4, 64, 1], [9, 130, 33]] {
            let (a, b, d0) = (
                rng.symmetric_uniform_vec(m * k, 1.0),
                rng.symmetric_uniform_vec(k * n, 1.0),
                rng.symmetric_uniform_vec(m * n, 1.0),
            );
            let mut d = d0.clone();
            step_matmul(&mut d, &a, &b, m, n, k);
            // The general kernel, which machines without AVX-512 use.
            let mut g = d0.clone();
            matmul(&mut g, true, View::rows(&a, k), View::rows(&b, n), m, n, k);
            for r in 0..m {
                for c in 0..n {
                    let want =
                        d0[r * n + c] as f64 + (0..k).map(|j| a[r * k + j] as f64 * b[j * n + c] as f64).sum::<f64>();
                    assert!((d[r * n + c] as f64 - want).abs() < 1e-4, "[{m}, {n}, {k}] ({r}, {c})");
                    assert!((g[r * n + c] as f64 - want).abs() < 1e-4, "general kernel [{m}, {n}, {k}] ({r}, {c})");
                }
            }
        }
    }

    #[test]
    fn tanh_is_within_1e7_of_the_library_tanh() {
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4;
            assert!((tanh(x) - x.tanh()).abs() <= 1.2e-7, "tanh({x}): {} vs {}", tanh(x), x.tanh());
        }
        assert_eq!(tanh(1e4), 1.0);
        assert_eq!(tanh(-1e4), -1.0);
    }

    /// The kernel's backward pass against central differences of its forward pass, every input
    /// coordinate of a small problem (h_t and c_t both weighted, so both output gradients enter).
    #[test]
    fn backward_matches_finite_differences() {
        let [batch, steps, h] = [2, 4, 3];
        let mut rng = SeededRng::new(7);
        let mut draw = |n: usize, s: f32| rng.symmetric_uniform_vec(n, s);
        let mut inputs = [
            draw(batch * steps * 4 * h, 1.5),
            draw(batch * h, 0.8),
            draw(batch * h, 0.8),
            draw(h * 4 * h, 0.9),
            draw(4 * h, 0.5),
        ];
        let r = draw(batch * steps * 2 * h, 1.0);
        let (states, gates) = forward(&inputs[0], &inputs[1], &inputs[2], &inputs[3], &inputs[4], batch, steps, h);
        let (d_xi, dh0, dc0, dw, db) =
            backward(&r, &states, &gates, &inputs[1], &inputs[2], &inputs[3], batch, steps, h);
        let analytic = [d_xi, dh0, dc0, dw, db];
        let eps = 1e-2f32;
        for (which, name) in ["xi", "h0", "c0", "w", "b"].iter().enumerate() {
            for k in 0..inputs[which].len() {
                let at = |v: &mut [Vec<f32>; 5], d: f32| {
                    v[which][k] += d;
                    let l = loss(&v[0], &v[1], &v[2], &v[3], &v[4], &r, [batch, steps, h]);
                    v[which][k] -= d;
                    l
                };
                let numeric = (at(&mut inputs, eps) - at(&mut inputs, -eps)) / (2.0 * eps as f64);
                let got = analytic[which][k] as f64;
                assert!((got - numeric).abs() < 2e-3 * (1.0 + numeric.abs()), "d{name}[{k}]: {got} vs {numeric}");
            }
        }
    }

    fn layer_grads(layer: &RecurrentLayer, fused: bool, x: &Tensor<3>, s: &LayerState, r: &Tensor<3>) -> Vec<Vec<f32>> {
        let (x, h0, c0) = (x.clone().require_grad(), s.h.clone().require_grad(), s.c.clone().unwrap().require_grad());
        let state = LayerState { h: h0.clone(), c: Some(c0.clone()) };
        let (y, last) = if fused { layer.forward(x.clone(), state) } else { layer.forward_composed(x.clone(), state) };
        let loss = (y.clone() * r.clone()).sum() + last.h.sum() * 0.5 + (last.c.unwrap() * 0.25).sum();
        let grads = loss.backward();
        let v = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
        vec![
            y.into_data().try_to_vec::<f32>().unwrap(),
            x.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap(),
            v(h0.grad(&grads).unwrap()),
            v(c0.grad(&grads).unwrap()),
            v(layer.hh.weight.grad(&grads).unwrap()),
            layer.hh.bias.as_ref().unwrap().grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap(),
            v(layer.ih.weight.grad(&grads).unwrap()),
        ]
    }

    /// An LSTM layer on flex (fused) computes the outputs, final state and every gradient that the
    /// composed step-by-step layer computes, to float rounding.
    #[test]
    fn the_fused_layer_equals_the_composed_layer() {
        let device = Device::flex().autodiff();
        assert!(on_flex_f32(&device, DType::F32));
        let mut rng = SeededRng::new(3);
        let layer = RecurrentLayer::new(Cell::Lstm, 5, 6, &mut rng, &device);
        // 21 rows: a block of ROW_BLOCK rows and a partial one.
        for [b, t] in [[3, 7], [21, 5]] {
            let x =
                Tensor::<3>::from_data(TensorData::new(rng.symmetric_uniform_vec(b * t * 5, 1.0), [b, t, 5]), &device);
            let s = LayerState {
                h: Tensor::from_data(TensorData::new(rng.symmetric_uniform_vec(b * 6, 0.5), [b, 6]), &device),
                c: Some(Tensor::from_data(TensorData::new(rng.symmetric_uniform_vec(b * 6, 0.5), [b, 6]), &device)),
            };
            let r =
                Tensor::<3>::from_data(TensorData::new(rng.symmetric_uniform_vec(b * t * 6, 1.0), [b, t, 6]), &device);
            let fused = layer_grads(&layer, true, &x, &s, &r);
            let composed = layer_grads(&layer, false, &x, &s, &r);
            for (what, (a, c)) in
                ["outputs", "dx", "dh0", "dc0", "dW_hh", "db_hh", "dW_ih"].iter().zip(fused.iter().zip(&composed))
            {
                let err = a.iter().zip(c).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
                assert!(err < 1e-5, "batch {b}: {what}: max difference {err}");
            }
            let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().expect("a thread pool");
            let one = pool(1).install(|| layer_grads(&layer, true, &x, &s, &r));
            assert_eq!(one, fused, "batch {b}: one thread and two differ");
        }
    }
}
