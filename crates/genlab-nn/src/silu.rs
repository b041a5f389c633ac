//! SiLU, `x sigmoid(x)` (Elfwing et al. 2017, <https://arxiv.org/abs/1702.03118>; the diffusion UNet's
//! activation), vectorised for the flex backend: flex's sigmoid calls libm's `expf` one element at
//! a time (a quarter of the UNet's forward pass), so on flex this is an operation of genlab's (burn's
//! backend extension) whose forward and backward passes use [`crate::flex_ops::exp`], a polynomial
//! the compiler vectorises (AVX-512 where the CPU has it). Elsewhere it is burn's `silu`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::Tensor;

use crate::flex_ops::{avx512, exp, on_flex_f32, tensor, values};

/// SiLU's operations: the activation and, from the input and the output's gradient, the input's
/// gradient.
#[backend_extension(Flex, Autodiff)]
pub trait SiluOps: Backend {
    fn silu_vectorised(x: FloatTensor<Self>) -> FloatTensor<Self>;
    fn silu_vectorised_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `x sigmoid(x)` element-wise: on flex (f32) genlab's vectorised operation, elsewhere burn's `silu`.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !on_flex_f32(&x.device(), x.dtype()) {
        return burn::tensor::activation::silu(x);
    }
    Tensor::from_dispatch(<Dispatch as SiluOps>::silu_vectorised(x.into_dispatch()))
}

/// `1 / (1 + exp(-x))`; `exp` saturates at `exp(88)`, where the sigmoid is 0 to float32 precision.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
fn forward_slice(x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v * sigmoid(v);
    }
}

/// d/dx x s(x) = s (1 + x (1 - s)).
#[inline(always)]
fn backward_slice(x: &[f32], grad: &[f32], out: &mut [f32]) {
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(grad) {
        let s = sigmoid(v);
        *o = g * s * (1.0 + v * (1.0 - s));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn forward_avx512(x: &[f32], out: &mut [f32]) {
    forward_slice(x, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn backward_avx512(x: &[f32], grad: &[f32], out: &mut [f32]) {
    backward_slice(x, grad, out)
}

impl SiluOps for Flex {
    fn silu_vectorised(x: FlexTensor) -> FlexTensor {
        let shape = x.shape();
        let x = x.to_contiguous();
        let mut out = vec![0.0f32; shape.num_elements()];
        #[cfg(target_arch = "x86_64")]
        if avx512() {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { forward_avx512(values(&x), &mut out) };
            return tensor(out, shape);
        }
        forward_slice(values(&x), &mut out);
        tensor(out, shape)
    }

    fn silu_vectorised_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let shape = x.shape();
        let (x, grad) = (x.to_contiguous(), grad.to_contiguous());
        let mut out = vec![0.0f32; shape.num_elements()];
        #[cfg(target_arch = "x86_64")]
        if avx512() {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { backward_avx512(values(&x), values(&grad), &mut out) };
            return tensor(out, shape);
        }
        backward_slice(values(&x), values(&grad), &mut out);
        tensor(out, shape)
    }
}

#[derive(Debug)]
struct SiluBackward;

impl<B: Backend + SiluOps> Backward<B, 1> for SiluBackward {
    /// The input.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = parent {
            grads.register::<B>(node.id, B::silu_vectorised_backward(ops.state, grad));
        }
    }
}

impl<B: Backend + SiluOps, C: CheckpointStrategy> SiluOps for Autodiff<B, C> {
    fn silu_vectorised(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let node = x.node();
        let x = x.into_primitive();
        match SiluBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(x.clone(), B::silu_vectorised(x)),
            OpsKind::UnTracked(prep) => prep.finish(B::silu_vectorised(x)),
        }
    }

    fn silu_vectorised_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        // Not differentiated again (burn has no second-order gradients): computed on the values.
        FloatTensor::<Self>::new(B::silu_vectorised_backward(x.into_primitive(), grad.into_primitive()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use genlab_core::SeededRng;

    /// genlab's SiLU and its gradient equal burn's (libm's `expf`) to float32 rounding, and the
    /// gradient equals central differences of a float64 SiLU, over the range a network meets and
    /// out to where the sigmoid saturates.
    #[test]
    fn silu_and_its_gradient_equal_burns_and_finite_differences() {
        let device = Device::flex().autodiff();
        let mut rng = SeededRng::new(6);
        let mut v: Vec<f32> = rng.symmetric_uniform_vec(4000, 12.0);
        v.extend([-120.0, -90.0, -88.5, -30.0, 0.0, 30.0, 90.0, 120.0]);
        let n = v.len();
        let r: Vec<f32> = rng.symmetric_uniform_vec(n, 1.0);
        let x = || Tensor::<1>::from_data(TensorData::new(v.clone(), [n]), &device).require_grad();
        let weights = Tensor::<1>::from_data(TensorData::new(r.clone(), [n]), &device);
        let (ours_x, burns_x) = (x(), x());
        let ours = silu(ours_x.clone());
        let burns = burn::tensor::activation::silu(burns_x.clone());
        let g_ours = (ours.clone() * weights.clone()).sum().backward();
        let g_burn = (burns.clone() * weights).sum().backward();
        let f = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
        let (a, b) = (f(ours), f(burns));
        let (ga, gb) = (f(ours_x.grad(&g_ours).unwrap()), f(burns_x.grad(&g_burn).unwrap()));
        for i in 0..n {
            let tol = 4.0 * f32::EPSILON * (1.0 + b[i].abs());
            assert!((a[i] - b[i]).abs() <= tol, "silu({}): {} vs {}", v[i], a[i], b[i]);
            let tol = 4.0 * f32::EPSILON * (1.0 + gb[i].abs());
            assert!((ga[i] - gb[i]).abs() <= tol, "silu'({}): {} vs {}", v[i], ga[i], gb[i]);
            let silu64 = |z: f64| z / (1.0 + (-z).exp());
            let (z, h) = (v[i] as f64, 1e-4);
            let numeric = (silu64(z + h) - silu64(z - h)) / (2.0 * h) * r[i] as f64;
            assert!((ga[i] as f64 - numeric).abs() < 1e-6, "silu'({z}) * r: {} vs {numeric}", ga[i]);
        }
    }
}
