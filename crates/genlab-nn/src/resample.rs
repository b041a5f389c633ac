//! Nearest-neighbour doubling of a feature map's height and width (the diffusion UNet's way up), as an
//! operation of genlab's on flex (burn's backend extension) with its own backward pass. Composed of
//! burn's operations it is a broadcast view made contiguous, which flex copies one element at a time
//! through a strided index (5% of the UNet's forward pass); here each input row is written twice,
//! each element twice in it, and the gradient is the sum of each 2 x 2 block. Elsewhere it is burn's.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::Tensor;
use rayon::prelude::*;
use std::mem::MaybeUninit;

use crate::flex_ops::{on_flex_f32, tensor, values, written};

/// The doubling and, from the output's gradient, the input's.
#[backend_extension(Flex, Autodiff)]
pub trait ResampleOps: Backend {
    fn double_nearest(x: FloatTensor<Self>) -> FloatTensor<Self>;
    fn double_nearest_backward(grad: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `x` (`[batch, c, h, w]`) with every element repeated over a 2 x 2 block (`[batch, c, 2h, 2w]`): on
/// flex (f32) genlab's operation, elsewhere a broadcast of burn's made contiguous.
pub fn double(x: Tensor<4>) -> Tensor<4> {
    if !on_flex_f32(&x.device(), x.dtype()) {
        let [b, c, h, w] = x.dims();
        return x.reshape([b, c, h, 1, w, 1]).expand([b, c, h, 2, w, 2]).reshape([b, c, 2 * h, 2 * w]);
    }
    Tensor::from_dispatch(<Dispatch as ResampleOps>::double_nearest(x.into_dispatch()))
}

fn dims(t: &FlexTensor) -> [usize; 4] {
    let shape = t.shape();
    assert_eq!(shape.num_dims(), 4, "double: a 4-D tensor was expected, got {shape:?}");
    [shape[0], shape[1], shape[2], shape[3]]
}

/// Rows handed to one thread at a time.
const ROWS: usize = 64;

impl ResampleOps for Flex {
    fn double_nearest(x: FlexTensor) -> FlexTensor {
        let [b, c, h, w] = dims(&x);
        if b * c * h * w == 0 {
            return tensor(Vec::new(), [b, c, 2 * h, 2 * w]);
        }
        let x = x.to_contiguous();
        let xv = values(&x);
        let fill = |out: &mut [MaybeUninit<f32>]| {
            // Output rows in pairs: input row r becomes output rows 2r and 2r + 1.
            out.par_chunks_mut(4 * w * ROWS).zip(xv.par_chunks(w * ROWS)).for_each(|(out, x)| {
                for (pair, row) in out.chunks_exact_mut(4 * w).zip(x.chunks_exact(w)) {
                    let (top, bottom) = pair.split_at_mut(2 * w);
                    for (o, &v) in top.chunks_exact_mut(2).zip(row) {
                        o[0].write(v);
                        o[1].write(v);
                    }
                    bottom.copy_from_slice(top);
                }
            })
        };
        // SAFETY: every output row pair is written: the top row element by element, the bottom as
        // its copy.
        tensor(unsafe { written(4 * b * c * h * w, fill) }, [b, c, 2 * h, 2 * w])
    }

    fn double_nearest_backward(grad: FlexTensor) -> FlexTensor {
        let [b, c, h2, w2] = dims(&grad);
        assert!(h2 % 2 == 0 && w2 % 2 == 0, "double: the gradient of a doubled map has even sides, got {h2} x {w2}");
        let (h, w) = (h2 / 2, w2 / 2);
        if b * c * h * w == 0 {
            return tensor(Vec::new(), [b, c, h, w]);
        }
        let grad = grad.to_contiguous();
        let gv = values(&grad);
        let fill = |dx: &mut [MaybeUninit<f32>]| {
            dx.par_chunks_mut(w * ROWS).zip(gv.par_chunks(4 * w * ROWS)).for_each(|(dx, g)| {
                for (row, pair) in dx.chunks_exact_mut(w).zip(g.chunks_exact(4 * w)) {
                    let (top, bottom) = pair.split_at(2 * w);
                    for ((d, t), u) in row.iter_mut().zip(top.chunks_exact(2)).zip(bottom.chunks_exact(2)) {
                        d.write((t[0] + t[1]) + (u[0] + u[1]));
                    }
                }
            })
        };
        // SAFETY: every input-gradient row is written element by element from its output row pair.
        tensor(unsafe { written(b * c * h * w, fill) }, [b, c, h, w])
    }
}

#[derive(Debug)]
struct DoubleBackward;

impl<B: Backend + ResampleOps> Backward<B, 1> for DoubleBackward {
    type State = ();

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = parent {
            grads.register::<B>(node.id, B::double_nearest_backward(grad));
        }
    }
}

impl<B: Backend + ResampleOps, C: CheckpointStrategy> ResampleOps for Autodiff<B, C> {
    fn double_nearest(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let node = x.node();
        let x = x.into_primitive();
        DoubleBackward.prepare::<C>([node]).compute_bound().stateless(B::double_nearest(x))
    }

    fn double_nearest_backward(grad: FloatTensor<Self>) -> FloatTensor<Self> {
        // Not differentiated again (burn has no second-order gradients): computed on the values.
        FloatTensor::<Self>::new(B::double_nearest_backward(grad.into_primitive()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use genlab_core::SeededRng;

    /// The doubling and its input gradient (of the output weighted by `r`), by genlab's operation or
    /// by burn's broadcast.
    fn run(x: &[f32], r: &[f32], shape: [usize; 4], genlab: bool) -> [Vec<f32>; 2] {
        let device = Device::flex().autodiff();
        let [b, c, h, w] = shape;
        let x = Tensor::<4>::from_data(TensorData::new(x.to_vec(), shape), &device).require_grad();
        let y = if genlab {
            double(x.clone())
        } else {
            x.clone().reshape([b, c, h, 1, w, 1]).expand([b, c, h, 2, w, 2]).reshape([b, c, 2 * h, 2 * w])
        };
        let weights = Tensor::<4>::from_data(TensorData::new(r.to_vec(), [b, c, 2 * h, 2 * w]), &device);
        let grads = (y.clone() * weights).sum().backward();
        let f = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
        [f(y), f(x.grad(&grads).unwrap())]
    }

    /// The values by definition, the gradient as the float64 sum of each 2 x 2 block (within
    /// rounding), burn's broadcast the same, over shapes with more rows than one thread's share, and
    /// the same bits on one thread as on two.
    #[test]
    fn doubling_and_its_gradient_are_the_blocks() {
        for shape in [[2, 3, 5, 7], [3, 5, 30, 4], [1, 1, 1, 1]] {
            let [b, c, h, w] = shape;
            let n = b * c * h * w;
            let mut rng = SeededRng::new(n as u64);
            let x = rng.symmetric_uniform_vec(n, 2.0);
            let r = rng.symmetric_uniform_vec(4 * n, 1.0);
            let [y, dx] = run(&x, &r, shape, true);
            for plane in 0..b * c {
                for (yy, xx) in (0..2 * h).flat_map(|yy| (0..2 * w).map(move |xx| (yy, xx))) {
                    let (i, o) = ((plane * h + yy / 2) * w + xx / 2, (plane * 2 * h + yy) * 2 * w + xx);
                    assert_eq!(y[o], x[i], "{shape:?}: output {o}");
                }
                for (yy, xx) in (0..h).flat_map(|yy| (0..w).map(move |xx| (yy, xx))) {
                    let at = |dy: usize, dx: usize| r[(plane * 2 * h + 2 * yy + dy) * 2 * w + 2 * xx + dx] as f64;
                    let want = at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1);
                    let got = dx[(plane * h + yy) * w + xx] as f64;
                    assert!((got - want).abs() <= 1e-6 * (1.0 + want.abs()), "{shape:?}: gradient {got} vs {want}");
                }
            }
            let [y_burn, dx_burn] = run(&x, &r, shape, false);
            assert_eq!(y, y_burn, "{shape:?}: burn's doubling differs");
            for (a, b) in dx.iter().zip(&dx_burn) {
                assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{shape:?}: gradient {a} vs burn's {b}");
            }
            let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().expect("a thread pool");
            let one = pool(1).install(|| run(&x, &r, shape, true));
            let two = pool(2).install(|| run(&x, &r, shape, true));
            assert_eq!(one, two, "{shape:?}: one thread and two differ");
        }
    }
}
