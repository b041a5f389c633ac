//! Element-wise activations vectorised for the flex backend, as operations of genlab's (burn's backend
//! extension) with their own backward passes: SiLU, `x sigmoid(x)` (Elfwing et al. 2017,
//! <https://arxiv.org/abs/1702.03118>; the diffusion UNet's activation), whose sigmoid flex computes
//! through libm's `expf` one element at a time (a quarter of the UNet's forward pass), here through
//! [`crate::flex_ops::exp`], a polynomial the compiler vectorises; and the leaky ReLU (the DCGAN
//! discriminator's), which flex computes as a comparison and a masked select, forward and backward
//! (a tenth of the DCGAN step). AVX-512 where the CPU has it. Elsewhere they are burn's.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::Tensor;

use crate::flex_ops::{avx512, on_flex_f32, par_filled, sigmoid, tensor, values};

/// An activation applied element-wise.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Silu,
    /// `x` where `x >= 0`, `slope x` below (burn's and PyTorch's derivative at 0: 1).
    LeakyRelu {
        slope: f32,
    },
}

/// The operations: the activation and, from the input and the output's gradient, the input's
/// gradient.
#[backend_extension(Flex, Autodiff)]
pub trait ActivationOps: Backend {
    fn activation_vectorised(x: FloatTensor<Self>, f: Activation) -> FloatTensor<Self>;
    fn activation_vectorised_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        f: Activation,
    ) -> FloatTensor<Self>;
}

fn apply<const D: usize>(x: Tensor<D>, f: Activation) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as ActivationOps>::activation_vectorised(x.into_dispatch(), f))
}

/// `x sigmoid(x)` element-wise: on flex (f32) genlab's vectorised operation, elsewhere burn's `silu`.
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !on_flex_f32(&x.device(), x.dtype()) {
        return burn::tensor::activation::silu(x);
    }
    apply(x, Activation::Silu)
}

/// The leaky ReLU with `slope` below 0: on flex (f32) genlab's vectorised operation, elsewhere burn's.
pub fn leaky_relu<const D: usize>(x: Tensor<D>, slope: f64) -> Tensor<D> {
    if !on_flex_f32(&x.device(), x.dtype()) {
        return burn::tensor::activation::leaky_relu(x, slope);
    }
    apply(x, Activation::LeakyRelu { slope: slope as f32 })
}

/// Each activation in a loop of its own, so each vectorises.
#[inline(always)]
fn forward_slice(x: &[f32], out: &mut [f32], f: Activation) {
    match f {
        Activation::Silu => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = v * sigmoid(v);
            }
        }
        Activation::LeakyRelu { slope } => {
            for (o, &v) in out.iter_mut().zip(x) {
                *o = if v < 0.0 { v * slope } else { v };
            }
        }
    }
}

/// SiLU: d/dx x s(x) = s (1 + x (1 - s)).
#[inline(always)]
fn backward_slice(x: &[f32], grad: &[f32], out: &mut [f32], f: Activation) {
    match f {
        Activation::Silu => {
            for ((o, &v), &g) in out.iter_mut().zip(x).zip(grad) {
                let s = sigmoid(v);
                *o = g * s * (1.0 + v * (1.0 - s));
            }
        }
        Activation::LeakyRelu { slope } => {
            for ((o, &v), &g) in out.iter_mut().zip(x).zip(grad) {
                *o = if v < 0.0 { g * slope } else { g };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn forward_avx512(x: &[f32], out: &mut [f32], f: Activation) {
    forward_slice(x, out, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn backward_avx512(x: &[f32], grad: &[f32], out: &mut [f32], f: Activation) {
    backward_slice(x, grad, out, f)
}

impl ActivationOps for Flex {
    fn activation_vectorised(x: FlexTensor, f: Activation) -> FlexTensor {
        let shape = x.shape();
        let x = x.to_contiguous();
        let (xv, fast) = (values(&x), avx512());
        let out = par_filled(xv.len(), |start, out| {
            let x = &xv[start..][..out.len()];
            #[cfg(target_arch = "x86_64")]
            if fast {
                // SAFETY: the CPU has the features the function is compiled for.
                unsafe { forward_avx512(x, out, f) };
                return;
            }
            forward_slice(x, out, f);
        });
        tensor(out, shape)
    }

    fn activation_vectorised_backward(x: FlexTensor, grad: FlexTensor, f: Activation) -> FlexTensor {
        let shape = x.shape();
        let (x, grad) = (x.to_contiguous(), grad.to_contiguous());
        let (xv, gv, fast) = (values(&x), values(&grad), avx512());
        let out = par_filled(xv.len(), |start, out| {
            let (x, grad) = (&xv[start..][..out.len()], &gv[start..][..out.len()]);
            #[cfg(target_arch = "x86_64")]
            if fast {
                // SAFETY: the CPU has the features the function is compiled for.
                unsafe { backward_avx512(x, grad, out, f) };
                return;
            }
            backward_slice(x, grad, out, f);
        });
        tensor(out, shape)
    }
}

#[derive(Debug)]
struct ActivationBackward(Activation);

impl<B: Backend + ActivationOps> Backward<B, 1> for ActivationBackward {
    /// The input.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = parent {
            grads.register::<B>(node.id, B::activation_vectorised_backward(ops.state, grad, self.0));
        }
    }
}

impl<B: Backend + ActivationOps, C: CheckpointStrategy> ActivationOps for Autodiff<B, C> {
    fn activation_vectorised(x: FloatTensor<Self>, f: Activation) -> FloatTensor<Self> {
        let node = x.node();
        let x = x.into_primitive();
        match ActivationBackward(f).prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(x.clone(), B::activation_vectorised(x, f)),
            OpsKind::UnTracked(prep) => prep.finish(B::activation_vectorised(x, f)),
        }
    }

    fn activation_vectorised_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        f: Activation,
    ) -> FloatTensor<Self> {
        // Not differentiated again (burn has no second-order gradients): computed on the values.
        FloatTensor::<Self>::new(B::activation_vectorised_backward(x.into_primitive(), grad.into_primitive(), f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use genlab_core::SeededRng;

    /// The activation and its gradient (times `r`) by genlab's operation and by burn's.
    #[allow(clippy::type_complexity)]
    fn both(
        v: &[f32],
        r: &[f32],
        ours: impl Fn(Tensor<1>) -> Tensor<1>,
        burns: impl Fn(Tensor<1>) -> Tensor<1>,
    ) -> [Vec<f32>; 4] {
        let device = Device::flex().autodiff();
        let n = v.len();
        let x = || Tensor::<1>::from_data(TensorData::new(v.to_vec(), [n]), &device).require_grad();
        let weights = Tensor::<1>::from_data(TensorData::new(r.to_vec(), [n]), &device);
        let (ours_x, burns_x) = (x(), x());
        let (a, b) = (ours(ours_x.clone()), burns(burns_x.clone()));
        let g_ours = (a.clone() * weights.clone()).sum().backward();
        let g_burn = (b.clone() * weights).sum().backward();
        let f = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
        [f(a), f(b), f(ours_x.grad(&g_ours).unwrap()), f(burns_x.grad(&g_burn).unwrap())]
    }

    /// genlab's SiLU and its gradient equal burn's (libm's `expf`) to float32 rounding, and the
    /// gradient equals central differences of a float64 SiLU, over the range a network meets and
    /// out to where the sigmoid saturates.
    #[test]
    fn silu_and_its_gradient_equal_burns_and_finite_differences() {
        let mut rng = SeededRng::new(6);
        let mut v: Vec<f32> = rng.symmetric_uniform_vec(4000, 12.0);
        v.extend([-120.0, -90.0, -88.5, -30.0, 0.0, 30.0, 90.0, 120.0]);
        let r: Vec<f32> = rng.symmetric_uniform_vec(v.len(), 1.0);
        let [a, b, ga, gb] = both(&v, &r, silu, burn::tensor::activation::silu);
        for i in 0..v.len() {
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

    /// genlab's leaky ReLU and its gradient equal burn's exactly (0 included, where the derivative
    /// is 1), and the gradient equals central differences away from 0.
    #[test]
    fn leaky_relu_and_its_gradient_equal_burns_and_finite_differences() {
        let mut rng = SeededRng::new(7);
        let mut v: Vec<f32> = rng.symmetric_uniform_vec(2000, 5.0);
        v.extend([0.0, -0.0, 1e-30, -1e-30]);
        let r: Vec<f32> = rng.symmetric_uniform_vec(v.len(), 1.0);
        let [a, b, ga, gb] = both(&v, &r, |x| leaky_relu(x, 0.2), |x| burn::tensor::activation::leaky_relu(x, 0.2));
        assert_eq!(a, b, "values");
        assert_eq!(ga, gb, "gradients");
        for i in (0..v.len()).filter(|&i| v[i].abs() > 1e-3) {
            let f = |z: f64| if z < 0.0 { 0.2 * z } else { z };
            let (z, h) = (v[i] as f64, 1e-4);
            let numeric = (f(z + h) - f(z - h)) / (2.0 * h) * r[i] as f64;
            assert!((ga[i] as f64 - numeric).abs() < 1e-6, "leaky_relu'({z}) * r: {} vs {numeric}", ga[i]);
        }
    }
}
