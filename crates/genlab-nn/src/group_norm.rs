//! Group normalisation (Wu & He 2018, <https://arxiv.org/abs/1803.08494>), optionally followed by SiLU,
//! as one operation of genlab's on flex (burn's backend extension), forward and backward. burn composes
//! GroupNorm from eight tensor operations (mean, subtraction, square, mean, square root, division, scale,
//! shift), each a pass over the activations and a node of the autodiff graph, and SiLU adds two more;
//! the diffusion UNet normalises before nearly every convolution. Here each (image, group) is
//! normalised in one pass after its statistics (a float64 mean and variance, two passes over a slice
//! that stays in cache), and the backward pass is the closed form: with `x̂` the normalised input and
//! `d` the gradient reaching `x̂`, `dx = (d - mean(d) - x̂ mean(d x̂)) / σ` over the group. Elsewhere it
//! is burn's `GroupNorm` (and SiLU).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex, TensorMetadata};
use burn::nn::GroupNorm;
use burn::tensor::Tensor;
use rayon::prelude::*;

use crate::flex_ops::{avx512, lane_sum, on_flex_f32, sigmoid, tensor, values, written};
use std::mem::MaybeUninit;

/// What follows the normalisation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Norm {
    pub groups: usize,
    pub epsilon: f64,
    /// SiLU after the scale and shift.
    pub silu: bool,
}

/// The operations: `x` (`[batch, c, h, w]`) normalised per image and group, scaled by `gamma` and
/// shifted by `beta` (`[c]`), and from the output's gradient the gradients of `x`, `gamma`, `beta`.
#[backend_extension(Flex, Autodiff)]
pub trait GroupNormOps: Backend {
    fn group_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        norm: Norm,
    ) -> FloatTensor<Self>;

    #[allow(clippy::type_complexity)]
    fn group_norm_fused_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        norm: Norm,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

/// burn's `GroupNorm` layer applied to `x` (`[batch, c, h, w]`), then SiLU where `silu`: on flex (f32)
/// with an affine layer genlab's fused operation, elsewhere the layer's `forward` and SiLU.
pub fn group_norm(layer: &GroupNorm, x: Tensor<4>, silu: bool) -> Tensor<4> {
    let channels_divide = layer.num_groups > 0 && x.dims()[1].is_multiple_of(layer.num_groups);
    match (&layer.gamma, &layer.beta) {
        (Some(gamma), Some(beta)) if channels_divide && on_flex_f32(&x.device(), x.dtype()) => {
            let norm = Norm { groups: layer.num_groups, epsilon: layer.epsilon, silu };
            Tensor::from_dispatch(<Dispatch as GroupNormOps>::group_norm_fused(
                x.into_dispatch(),
                gamma.val().into_dispatch(),
                beta.val().into_dispatch(),
                norm,
            ))
        }
        _ if silu => crate::activation::silu(layer.forward(x)),
        _ => layer.forward(x),
    }
}

/// The mean and `1 / sqrt(var + eps)` of a group's values, accumulated in float64.
#[inline(always)]
fn moments(v: &[f32], epsilon: f64) -> (f32, f32) {
    let n = v.len().max(1) as f64;
    let mean = lane_sum(v, v, |x, _| x) / n;
    let var = lane_sum(v, v, |x, _| (x as f64 - mean).powi(2)) / n;
    (mean as f32, (1.0 / (var + epsilon).sqrt()) as f32)
}

/// The shape's batch, channels and plane size, and the channels of a group.
fn sizes(x: &FlexTensor, groups: usize) -> (usize, usize, usize, usize) {
    let shape = x.shape();
    assert_eq!(shape.num_dims(), 4, "group_norm: a [batch, c, h, w] input was expected, got {shape:?}");
    let (c, plane) = (shape[1], shape[2] * shape[3]);
    assert!(groups > 0 && c % groups == 0, "group_norm: {c} channels do not divide into {groups} groups");
    (shape[0], c, plane, c / groups)
}

/// One (image, group) of the forward pass: `x` and `out` hold its channels' planes, `gamma` and
/// `beta` its channels' scale and shift.
#[inline(always)]
fn forward_group(x: &[f32], out: &mut [MaybeUninit<f32>], (gamma, beta): (&[f32], &[f32]), plane: usize, norm: Norm) {
    let (mean, rstd) = moments(x, norm.epsilon);
    for ((out, x), (&g, &b)) in out.chunks_mut(plane).zip(x.chunks(plane)).zip(gamma.iter().zip(beta)) {
        let (scale, shift) = (g * rstd, b - mean * g * rstd);
        if norm.silu {
            for (o, &v) in out.iter_mut().zip(x) {
                let a = v * scale + shift;
                o.write(a * sigmoid(a));
            }
        } else {
            for (o, &v) in out.iter_mut().zip(x) {
                o.write(v * scale + shift);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn forward_group_avx512(x: &[f32], out: &mut [MaybeUninit<f32>], affine: (&[f32], &[f32]), plane: usize, norm: Norm) {
    forward_group(x, out, affine, plane, norm)
}

/// One (image, group) of the backward pass: from `x` and the output's gradient `dy`, the input's
/// gradient `dx` and each channel's sums of `d x̂` and `d` (`d`, the gradient reaching `x̂`, in the
/// scratch `d`).
#[inline(always)]
fn backward_group(
    (x, dy): (&[f32], &[f32]),
    (gamma, beta): (&[f32], &[f32]),
    d: &mut [f32],
    dx: &mut [MaybeUninit<f32>],
    sums: &mut [[f32; 2]],
    plane: usize,
    norm: Norm,
) {
    let (mean, rstd) = moments(x, norm.epsilon);
    let xhat = |v: f32| (v - mean) * rstd;
    for (ch, s) in sums.iter_mut().enumerate() {
        let (g, b) = (gamma[ch], beta[ch]);
        let range = ch * plane..(ch + 1) * plane;
        let (d, x) = (&mut d[range.clone()], &x[range.clone()]);
        for ((d, &v), &dy) in d.iter_mut().zip(x).zip(&dy[range]) {
            *d = if norm.silu {
                let a = g * xhat(v) + b;
                let sg = sigmoid(a);
                dy * sg * (1.0 + a * (1.0 - sg))
            } else {
                dy
            };
        }
        *s = [lane_sum(d, x, |d, v| d * xhat(v)) as f32, lane_sum(d, x, |d, _| d) as f32];
        d.iter_mut().for_each(|d| *d *= g);
    }
    let n = x.len() as f64;
    let m1 = (lane_sum(d, x, |d, _| d) / n) as f32;
    let m2 = (lane_sum(d, x, |d, v| d * xhat(v)) / n) as f32;
    for ((dx, &d), &v) in dx.iter_mut().zip(d.iter()).zip(x) {
        dx.write(rstd * (d - m1 - xhat(v) * m2));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn backward_group_avx512(
    inputs: (&[f32], &[f32]),
    affine: (&[f32], &[f32]),
    d: &mut [f32],
    dx: &mut [MaybeUninit<f32>],
    sums: &mut [[f32; 2]],
    plane: usize,
    norm: Norm,
) {
    backward_group(inputs, affine, d, dx, sums, plane, norm)
}

impl GroupNormOps for Flex {
    fn group_norm_fused(x: FlexTensor, gamma: FlexTensor, beta: FlexTensor, norm: Norm) -> FlexTensor {
        let shape = x.shape();
        let (_, _, plane, per_group) = sizes(&x, norm.groups);
        let (x, gamma, beta) = (x.to_contiguous(), gamma.to_contiguous(), beta.to_contiguous());
        let (xv, gv, bv) = (values(&x), values(&gamma), values(&beta));
        let group = per_group * plane;
        let fast = avx512();
        let forward = |out: &mut [MaybeUninit<f32>]| {
            out.par_chunks_mut(group).zip(xv.par_chunks(group)).enumerate().for_each(|(i, (out, x))| {
                let channels = (i % norm.groups) * per_group..(i % norm.groups + 1) * per_group;
                let affine = (&gv[channels.clone()], &bv[channels]);
                #[cfg(target_arch = "x86_64")]
                if fast {
                    // SAFETY: the CPU has the features the function is compiled for.
                    unsafe { forward_group_avx512(x, out, affine, plane, norm) };
                    return;
                }
                forward_group(x, out, affine, plane, norm);
            })
        };
        // SAFETY: `forward_group` writes every element of its (image, group).
        tensor(unsafe { written(xv.len(), forward) }, shape)
    }

    fn group_norm_fused_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        grad: FlexTensor,
        norm: Norm,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let shape = x.shape();
        let (batch, c, plane, per_group) = sizes(&x, norm.groups);
        let (x, gamma, beta, grad) =
            (x.to_contiguous(), gamma.to_contiguous(), beta.to_contiguous(), grad.to_contiguous());
        let (xv, gv, bv, dv) = (values(&x), values(&gamma), values(&beta), values(&grad));
        let group = per_group * plane;
        // Each (image, group) writes its channels' sums of `d x̂` and `d`; the images' sums are added
        // in order afterwards, so the result does not depend on the threads.
        let mut sums = vec![[0.0f32; 2]; batch * c];
        let fast = avx512();
        let backward = |dx: &mut [MaybeUninit<f32>]| {
            dx.par_chunks_mut(group).zip(sums.par_chunks_mut(per_group)).enumerate().for_each_init(
                || vec![0.0f32; group],
                |d, (i, (dx, sums))| {
                    let inputs = (&xv[i * group..][..group], &dv[i * group..][..group]);
                    let channels = (i % norm.groups) * per_group..(i % norm.groups + 1) * per_group;
                    let affine = (&gv[channels.clone()], &bv[channels]);
                    #[cfg(target_arch = "x86_64")]
                    if fast {
                        // SAFETY: the CPU has the features the function is compiled for.
                        unsafe { backward_group_avx512(inputs, affine, d, dx, sums, plane, norm) };
                        return;
                    }
                    backward_group(inputs, affine, d, dx, sums, plane, norm);
                },
            )
        };
        // SAFETY: `backward_group` writes every element of its (image, group).
        let dx = unsafe { written(xv.len(), backward) };
        let (mut dgamma, mut dbeta) = (vec![0.0f32; c], vec![0.0f32; c]);
        for image in sums.chunks(c) {
            for ((dg, db), [s_xhat, s_d]) in dgamma.iter_mut().zip(dbeta.iter_mut()).zip(image) {
                *dg += s_xhat;
                *db += s_d;
            }
        }
        (tensor(dx, shape), tensor(dgamma, [c]), tensor(dbeta, [c]))
    }
}

#[derive(Debug)]
struct GroupNormBackward;

impl<B: Backend + GroupNormOps> Backward<B, 3> for GroupNormBackward {
    /// The input, gamma, beta and the settings.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, Norm);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (x, gamma, beta, norm) = ops.state;
        let (dx, dgamma, dbeta) = B::group_norm_fused_backward(x, gamma, beta, grad, norm);
        for (node, g) in ops.parents.into_iter().zip([dx, dgamma, dbeta]) {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

impl<B: Backend + GroupNormOps, C: CheckpointStrategy> GroupNormOps for Autodiff<B, C> {
    fn group_norm_fused(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        norm: Norm,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), gamma.node(), beta.node()];
        let [x, gamma, beta] = [x, gamma, beta].map(|t| t.into_primitive());
        match GroupNormBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let state = (x.clone(), gamma.clone(), beta.clone(), norm);
                prep.finish(state, B::group_norm_fused(x, gamma, beta, norm))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::group_norm_fused(x, gamma, beta, norm)),
        }
    }

    fn group_norm_fused_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        norm: Norm,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // Not differentiated again (burn has no second-order gradients): computed on the values.
        let [x, gamma, beta, grad] = [x, gamma, beta, grad].map(|t| t.into_primitive());
        let (dx, dgamma, dbeta) = B::group_norm_fused_backward(x, gamma, beta, grad, norm);
        (FloatTensor::<Self>::new(dx), FloatTensor::<Self>::new(dgamma), FloatTensor::<Self>::new(dbeta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::central_differences;
    use burn::module::Param;
    use burn::nn::GroupNormConfig;
    use burn::tensor::{Device, TensorData};
    use genlab_core::SeededRng;

    /// A GroupNorm of 6 channels in 3 groups with seeded scale and shift.
    fn layer(device: &Device) -> GroupNorm {
        let mut layer = GroupNormConfig::new(3, 6).init(device);
        let mut rng = SeededRng::new(9);
        let g: Vec<f32> = rng.symmetric_uniform_vec(6, 0.5).into_iter().map(|v| v + 1.0).collect();
        layer.gamma = Some(Param::from_data(TensorData::new(g, [6]), device));
        layer.beta = Some(Param::from_data(TensorData::new(rng.symmetric_uniform_vec(6, 0.5), [6]), device));
        layer
    }

    fn vec32<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().expect("f32 values")
    }

    /// `sum(layer(x) * r)` and the gradients of x, gamma and beta, by genlab's op or burn's layers.
    fn run(layer: &GroupNorm, x: &[f32], r: &[f32], shape: [usize; 4], silu: bool, genlab: bool) -> [Vec<f32>; 4] {
        let device = Device::flex().autodiff();
        let xt = Tensor::<4>::from_data(TensorData::new(x.to_vec(), shape), &device).require_grad();
        let y = if genlab {
            group_norm(layer, xt.clone(), silu)
        } else if silu {
            burn::tensor::activation::silu(layer.forward(xt.clone()))
        } else {
            layer.forward(xt.clone())
        };
        let rt = Tensor::<4>::from_data(TensorData::new(r.to_vec(), shape), &device);
        let grads = (y.clone() * rt).sum().backward();
        let param =
            |p: &Option<Param<Tensor<1>>>| vec32(p.as_ref().expect("affine").val().grad(&grads).expect("a gradient"));
        [vec32(y), vec32(xt.grad(&grads).expect("an input gradient")), param(&layer.gamma), param(&layer.beta)]
    }

    /// The layer in float64: normalised per image and group, scaled, shifted, SiLU.
    fn forward64(x: &[f64], gamma: &[f64], beta: &[f64], [b, c, h, w]: [usize; 4], silu: bool) -> Vec<f64> {
        let (plane, per_group) = (h * w, c / 3);
        let mut y = vec![0.0; x.len()];
        for (i, (y, x)) in y.chunks_mut(per_group * plane).zip(x.chunks(per_group * plane)).enumerate().take(b * 3) {
            let n = x.len() as f64;
            let mean = x.iter().sum::<f64>() / n;
            let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            for (j, (y, x)) in y.iter_mut().zip(x).enumerate() {
                let ch = (i % 3) * per_group + j / plane;
                let a = gamma[ch] * (x - mean) / (var + 1e-5).sqrt() + beta[ch];
                *y = if silu { a / (1.0 + (-a).exp()) } else { a };
            }
        }
        y
    }

    /// Values equal float64 and burn's layers; every gradient coordinate equals central differences
    /// of the float64 loss and burn's gradient; the same bits on one thread as on two.
    #[test]
    fn group_norm_and_its_gradients_equal_float64_finite_differences_and_burns() {
        let device = Device::flex().autodiff();
        let shape = [2, 6, 3, 4];
        let layer = layer(&device);
        let mut rng = SeededRng::new(10);
        let x: Vec<f32> = rng.symmetric_uniform_vec(144, 2.0).into_iter().map(|v| v + 0.5).collect();
        let r = rng.symmetric_uniform_vec(144, 1.0);
        let to64 = |v: &[f32]| v.iter().map(|&v| v as f64).collect::<Vec<f64>>();
        let (g64, b64) =
            (to64(&vec32(layer.gamma.as_ref().unwrap().val())), to64(&vec32(layer.beta.as_ref().unwrap().val())));
        let (x64, r64) = (to64(&x), to64(&r));
        for silu in [false, true] {
            let ours = run(&layer, &x, &r, shape, silu, true);
            let burns = run(&layer, &x, &r, shape, silu, false);
            let want = forward64(&x64, &g64, &b64, shape, silu);
            for (i, (a, e)) in ours[0].iter().zip(&want).enumerate() {
                assert!((*a as f64 - e).abs() < 2e-6 * (1.0 + e.abs()), "silu {silu}: output {i}: {a} vs {e}");
            }
            for (what, (a, b)) in ["output", "x", "gamma", "beta"].iter().zip(ours.iter().zip(&burns)) {
                for (i, (a, b)) in a.iter().zip(b).enumerate() {
                    assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "silu {silu}: {what}[{i}]: {a} vs burn's {b}");
                }
            }
            let loss = |x: &[f64], g: &[f64], b: &[f64]| -> f64 {
                forward64(x, g, b, shape, silu).iter().zip(&r64).map(|(y, r)| y * r).sum()
            };
            let h = 1e-4;
            let check = |what: &str, got: &[f32], v: &[f64], f: &dyn Fn(&[f64]) -> f64| {
                for (i, (&gi, numeric)) in got.iter().zip(central_differences(v, h, f)).enumerate() {
                    assert!(
                        (gi as f64 - numeric).abs() < 2e-5 * (1.0 + numeric.abs()),
                        "silu {silu}: {what}[{i}]: {gi} vs {numeric}"
                    );
                }
            };
            check("x", &ours[1], &x64, &|x| loss(x, &g64, &b64));
            check("gamma", &ours[2], &g64, &|g| loss(&x64, g, &b64));
            check("beta", &ours[3], &b64, &|b| loss(&x64, &g64, b));
            let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().expect("a thread pool");
            let one = pool(1).install(|| run(&layer, &x, &r, shape, silu, true));
            let two = pool(2).install(|| run(&layer, &x, &r, shape, silu, true));
            assert_eq!(one, two, "silu {silu}: one thread and two differ");
        }
    }
}
