//! The exact GELU, `x Φ(x)` (Hendrycks & Gimpel 2016; PyTorch's `approximate='none'`), vectorised for
//! the flex backend: flex computes it one element at a time through the `libm` crate's `erff` (7% of
//! the GPT's step), so on flex this is an operation of genlab's (burn's backend extension) whose
//! forward and backward passes run through a polynomial `exp` and an erf (its Taylor series below 1,
//! Abramowitz & Stegun 7.1.26 above) that the compiler vectorises, with AVX-512 where the CPU has it:
//! within a few float32 ulps of the library functions.
//! Elsewhere it is burn's `gelu`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex, TensorMetadata};
use burn::tensor::Tensor;

use crate::flex_ops::{avx512, exp, on_flex_f32, par_filled, tensor, values};

/// The GELU's operations: the activation and, from the input and the output's gradient, the
/// input's gradient.
#[backend_extension(Flex, Autodiff)]
pub trait GeluOps: Backend {
    fn gelu_exact(x: FloatTensor<Self>) -> FloatTensor<Self>;
    fn gelu_exact_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `x Φ(x)` element-wise: on flex (f32) genlab's vectorised operation, elsewhere burn's `gelu`.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !on_flex_f32(&x.device(), x.dtype()) {
        return burn::tensor::activation::gelu(x);
    }
    Tensor::from_dispatch(<Dispatch as GeluOps>::gelu_exact(x.into_dispatch()))
}

/// erf: below 1 in magnitude its Taylor series to x^21 (relative error about 1e-7, no cancellation
/// near 0); above, Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7 where erf is above 0.84).
/// Both are computed and one chosen, so the loop stays branch-free and vectorises.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let z = a * a;
    let mut p = 1.312_253_3e-8;
    for c in [
        -1.450_385_2e-7,
        1.458_916_9e-6,
        -1.322_751_3e-5,
        1.068_376_1e-4,
        -7.575_757_6e-4,
        4.629_629_6e-3,
        -2.380_952_4e-2,
        0.1,
        -1.0 / 3.0,
        1.0,
    ] {
        p = p * z + c;
    }
    let series = std::f32::consts::FRAC_2_SQRT_PI * a * p;
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let tail = 1.0 - poly * exp(-z);
    (if a < 1.0 { series } else { tail }).copysign(x)
}

/// 1 / sqrt(2 pi).
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

#[inline(always)]
fn forward_slice(x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[inline(always)]
fn backward_slice(x: &[f32], grad: &[f32], out: &mut [f32]) {
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(grad) {
        let cdf = 0.5 * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
        let pdf = FRAC_1_SQRT_2PI * exp(-0.5 * v * v);
        *o = g * (cdf + v * pdf);
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

/// The GELU of every element of `x`, on the threads.
fn gelu_values(x: &[f32]) -> Vec<f32> {
    let fast = avx512();
    par_filled(x.len(), |start, out| {
        let x = &x[start..][..out.len()];
        #[cfg(target_arch = "x86_64")]
        if fast {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { forward_avx512(x, out) };
            return;
        }
        forward_slice(x, out);
    })
}

/// The GELU's derivative at every element of `x`, times `grad`, on the threads.
fn gelu_grad_values(x: &[f32], grad: &[f32]) -> Vec<f32> {
    let fast = avx512();
    par_filled(x.len(), |start, out| {
        let (x, grad) = (&x[start..][..out.len()], &grad[start..][..out.len()]);
        #[cfg(target_arch = "x86_64")]
        if fast {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { backward_avx512(x, grad, out) };
            return;
        }
        backward_slice(x, grad, out);
    })
}

impl GeluOps for Flex {
    fn gelu_exact(x: FlexTensor) -> FlexTensor {
        let shape = x.shape();
        let x = x.to_contiguous();
        tensor(gelu_values(values(&x)), shape)
    }

    fn gelu_exact_backward(x: FlexTensor, grad: FlexTensor) -> FlexTensor {
        let shape = x.shape();
        let (x, grad) = (x.to_contiguous(), grad.to_contiguous());
        tensor(gelu_grad_values(values(&x), values(&grad)), shape)
    }
}

#[derive(Debug)]
struct GeluBackward;

impl<B: Backend + GeluOps> Backward<B, 1> for GeluBackward {
    /// The input.
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = parent {
            grads.register::<B>(node.id, B::gelu_exact_backward(ops.state, grad));
        }
    }
}

impl<B: Backend + GeluOps, C: CheckpointStrategy> GeluOps for Autodiff<B, C> {
    fn gelu_exact(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let node = x.node();
        let x = x.into_primitive();
        match GeluBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(x.clone(), B::gelu_exact(x)),
            OpsKind::UnTracked(prep) => prep.finish(B::gelu_exact(x)),
        }
    }

    fn gelu_exact_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        // Not differentiated again (burn has no second-order gradients): computed on the values.
        FloatTensor::<Self>::new(B::gelu_exact_backward(x.into_primitive(), grad.into_primitive()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use genlab_core::SeededRng;

    /// erf in float64 by its Taylor series (accurate to 1e-9 for |x| <= 4.3, where the terms'
    /// cancellation stays small).
    fn erf64(x: f64) -> f64 {
        let (mut term, mut sum, mut n) = (x, x, 0.0f64);
        while term.abs() > 1e-18 && n < 400.0 {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        (2.0 / std::f64::consts::PI.sqrt() * sum).clamp(-1.0, 1.0)
    }

    /// erf within 3e-7 of a float64 erf, relatively below 1 in magnitude.
    #[test]
    fn erf_matches_a_float64_series() {
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            let want = if x.abs() <= 4.3 { erf64(x as f64) } else { (x as f64).signum() };
            let err = (erf(x) as f64 - want).abs();
            // Relative near 0 (the series), absolute in the tail (where erf is above 0.84).
            assert!(
                err < 3e-7 * want.abs().max(if x.abs() < 1.0 { 0.0 } else { 1.0 }) + 1e-12,
                "erf({x}): {} vs {want}",
                erf(x)
            );
        }
    }

    /// genlab's GELU and its gradient equal burn's exact GELU (libm's erf) on flex to 3e-7, and the
    /// gradient equals central differences of a float64 GELU.
    #[test]
    fn gelu_and_its_gradient_equal_burns_and_finite_differences() {
        let device = Device::flex().autodiff();
        let mut rng = SeededRng::new(5);
        let v: Vec<f32> = rng.symmetric_uniform_vec(4000, 6.0); // |x / sqrt 2| <= 4.3: erf64's range
        let r: Vec<f32> = rng.symmetric_uniform_vec(4000, 1.0);
        let x = || Tensor::<2>::from_data(TensorData::new(v.clone(), [40, 100]), &device).require_grad();
        let weights = Tensor::<2>::from_data(TensorData::new(r.clone(), [40, 100]), &device);
        let (ours_x, burns_x) = (x(), x());
        let ours = gelu(ours_x.clone());
        let burns = burn::tensor::activation::gelu(burns_x.clone());
        let g_ours = (ours.clone() * weights.clone()).sum().backward();
        let g_burn = (burns.clone() * weights).sum().backward();
        let f = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
        let (a, b) = (f(ours), f(burns));
        let (ga, gb) = (f(ours_x.grad(&g_ours).unwrap()), f(burns_x.grad(&g_burn).unwrap()));
        for i in 0..v.len() {
            assert!((a[i] - b[i]).abs() <= 3e-7 * (1.0 + b[i].abs()), "gelu({}): {} vs {}", v[i], a[i], b[i]);
            assert!((ga[i] - gb[i]).abs() <= 3e-7 * (1.0 + gb[i].abs()), "gelu'({}): {} vs {}", v[i], ga[i], gb[i]);
            let gelu64 = |z: f64| 0.5 * z * (1.0 + erf64(z * std::f64::consts::FRAC_1_SQRT_2));
            let (z, h) = (v[i] as f64, 1e-3);
            let numeric = (gelu64(z + h) - gelu64(z - h)) / (2.0 * h) * r[i] as f64;
            assert!((ga[i] as f64 - numeric).abs() < 1e-5, "gelu'({z}) * r: {} vs {numeric}", ga[i]);
        }
    }
}
