//! 2-D convolution for the flex backend, forward and backward, as an operation of genlab's (burn's
//! backend extension). flex convolves by copying the input to channels-last, building im2col tiles of
//! 512 output positions and multiplying each tile on its own, and computes a convolution's input
//! gradient as a transposed convolution (a scatter-add over every kernel position); at the small
//! channel counts of genlab's models those loops cost as much as the products.
//!
//! Here each image is a few matrix products. A stride-1 convolution on a feature map large enough
//! ([`Plane`]) needs no im2col matrix: the input is copied once into zero-padded planes, on which a
//! kernel position is a constant shift of the flat index, so each kernel position is one product read
//! straight from the planes (`out^T += x_pad^T[shifted] W_ij^T`), and its gradients likewise. Other
//! convolutions build the im2col matrix `[c_in kh kw, oh ow]` in tiles of output rows that stay in L2,
//! from the input split once into its stride phases ([`Phases`]: each kernel position's values for a
//! row of outputs are then one contiguous run), multiplied by the weight `[c_out, c_in kh kw]` straight
//! into the NCHW output (as `out^T = col^T W^T`, so the gemm kernel's 64-row blocks run along the
//! positions), with the bias as the product's starting value. The input gradient is the weight's
//! transpose times the output gradient, folded back run by run (col2im, Caffe's scheme: Jia et al.
//! 2014, <https://arxiv.org/abs/1408.5093>); the weight gradient is the output gradient times the
//! im2col matrix's transpose, summed over images. Images run in parallel; the weight gradient's
//! partial sums are formed over a fixed split of the batch and added in order, so the results do not
//! depend on the number of threads (a resumed run stays bit-for-bit equal).
//!
//! It covers groups 1 and dilation 1 (every convolution genlab's models build); other layers, other
//! backends and other float types take burn's `conv2d`.

use crate::flex_ops::{avx512, lane_sum, matmul, matmul_on, on_flex_f32, tensor, transpose, values, written, View};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Backend, Dispatch, Flex, TensorMetadata};
use burn::module::Param;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::nn::PaddingConfig2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, FloatDType, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::ops::Range;

/// Where a convolution's kernel visits its input: the step between output positions and the
/// zeros added around the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Rows, then columns.
    pub stride: [usize; 2],
    /// Zero rows above and below, zero columns left and right.
    pub padding: [usize; 4],
}

/// The convolution's operations: the forward passes of the convolution and of the transposed
/// convolution (its input gradient's map; `output` the result's shape), each with a bias (zeros for a
/// layer without one: burn's extension macro does not pass optional tensors on), and from the
/// output's gradient the input's gradient (for an input of shape `input`), the weight's (for a weight
/// of shape `weight`) and the bias's.
#[backend_extension(Flex, Autodiff)]
pub trait ConvOps: Backend {
    fn conv2d_im2col(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self>;

    fn conv_transpose2d_im2col(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
        output: [usize; 4],
    ) -> FloatTensor<Self>;

    fn conv2d_im2col_x_backward(
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        geometry: Geometry,
        input: [usize; 4],
    ) -> FloatTensor<Self>;

    fn conv2d_im2col_weight_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        geometry: Geometry,
        weight: [usize; 4],
    ) -> FloatTensor<Self>;

    /// The sum of `grad` (`[batch, c, h, w]`) over all but its channels.
    fn conv2d_im2col_bias_backward(grad: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// burn's `Conv2d` layer applied to `x` (`[batch, c_in, h, w]` -> `[batch, c_out, oh, ow]`): on flex
/// (f32) genlab's convolution where the layer is one it covers (groups 1, dilation 1), elsewhere the
/// layer's own `forward`.
pub fn conv2d(layer: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    conv2d_weighted(layer, layer.weight.val(), x)
}

/// [`conv2d`] with `weight` in place of the layer's own (a spectrally normalised one, say).
pub fn conv2d_weighted(layer: &Conv2d, weight: Tensor<4>, x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let covered = layer.groups == 1 && layer.dilation == [1, 1] && on_flex_f32(&x.device(), x.dtype());
    let geometry = geometry(layer, h, w);
    match geometry {
        Some(geometry) if covered => {
            let bias = bias_or_zeros(layer.bias.as_ref(), weight.dims()[0], &x.device());
            Tensor::from_dispatch(<Dispatch as ConvOps>::conv2d_im2col(
                x.into_dispatch(),
                weight.into_dispatch(),
                bias.into_dispatch(),
                geometry,
            ))
        }
        _ => {
            // burn's own, with the padding its layer would compute (none where the kernel does not
            // fit: burn reports that).
            let [top, bottom, left, right] = geometry.map_or([0; 4], |g| g.padding);
            let padding = [(top, bottom), (left, right)];
            let options = ConvOptions::new_with_padding(layer.stride, padding, layer.dilation, layer.groups);
            burn::tensor::module::conv2d(x, weight, layer.bias.as_ref().map(|b| b.val()), options)
        }
    }
}

/// burn's `ConvTranspose2d` layer applied to `x` (`[batch, c_in, h, w]` -> `[batch, c_out, oh, ow]`,
/// `oh = (h - 1) stride - 2 padding + kh + padding_out`): on flex (f32) genlab's, as the input
/// gradient's map of the convolution it transposes, where the layer is one it covers (groups 1,
/// dilation 1), elsewhere the layer's own `forward`.
pub fn conv_transpose2d(layer: &ConvTranspose2d, x: Tensor<4>) -> Tensor<4> {
    let [batch, _, h, w] = x.dims();
    let ([kh, kw], [sh, sw], [ph, pw], [oph, opw]) =
        (layer.kernel_size, layer.stride, layer.padding, layer.padding_out);
    let size = |n: usize, s: usize, k: usize, p: usize, op: usize| ((n.max(1) - 1) * s + k + op).checked_sub(2 * p);
    let covered = layer.groups == 1
        && layer.dilation == [1, 1]
        && h > 0
        && w > 0
        && oph < sh
        && opw < sw
        && on_flex_f32(&x.device(), x.dtype());
    match (size(h, sh, kh, ph, oph), size(w, sw, kw, pw, opw)) {
        (Some(oh), Some(ow)) if covered && oh > 0 && ow > 0 => {
            // The convolution that maps [c_out, oh, ow] back to [c_in, h, w]: its bottom and right
            // padding make its output h x w (only the top and left padding move the kernel).
            let padding = [ph, ph.saturating_sub(oph), pw, pw.saturating_sub(opw)];
            let geometry = Geometry { stride: layer.stride, padding };
            let bias = bias_or_zeros(layer.bias.as_ref(), layer.channels[1], &x.device());
            Tensor::from_dispatch(<Dispatch as ConvOps>::conv_transpose2d_im2col(
                x.into_dispatch(),
                layer.weight.val().into_dispatch(),
                bias.into_dispatch(),
                geometry,
                [batch, layer.channels[1], oh, ow],
            ))
        }
        _ => layer.forward(x),
    }
}

/// The layer's bias, or zeros (not trained) for a layer without one.
fn bias_or_zeros(bias: Option<&Param<Tensor<1>>>, channels: usize, device: &Device) -> Tensor<1> {
    bias.map_or_else(|| Tensor::zeros([channels], device), |b| b.val())
}

/// The layer's geometry on an `h` x `w` input (burn's padding rules: `Same` keeps `ceil(size / stride)`
/// outputs with the odd zero after), or `None` where the kernel does not fit the padded input.
fn geometry(layer: &Conv2d, h: usize, w: usize) -> Option<Geometry> {
    let same = |kernel: usize, stride: usize, size: usize| {
        let total = (size.div_ceil(stride).saturating_sub(1) * stride + kernel).saturating_sub(size);
        (total / 2, total - total / 2)
    };
    let [kh, kw] = layer.kernel_size;
    let [sh, sw] = layer.stride;
    let padding = match layer.padding {
        PaddingConfig2d::Valid => [0; 4],
        PaddingConfig2d::Same => {
            let ((top, bottom), (left, right)) = (same(kh, sh, h), same(kw, sw, w));
            [top, bottom, left, right]
        }
        PaddingConfig2d::Explicit(top, left, bottom, right) => [top, bottom, left, right],
    };
    let fits = h + padding[0] + padding[1] >= kh && w + padding[2] + padding[3] >= kw && sh > 0 && sw > 0;
    fits.then_some(Geometry { stride: layer.stride, padding })
}

/// The sizes of one convolution.
#[derive(Clone, Copy, Debug)]
struct Dims {
    batch: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
}

impl Dims {
    fn new([batch, c_in, h, w]: [usize; 4], [c_out, c_w, kh, kw]: [usize; 4], g: &Geometry) -> Self {
        assert_eq!(c_in, c_w, "conv2d: the input has {c_in} channels, the weight {c_w}");
        let [top, bottom, left, right] = g.padding;
        let oh = (h + top + bottom - kh) / g.stride[0] + 1;
        let ow = (w + left + right - kw) / g.stride[1] + 1;
        Dims { batch, c_in, h, w, c_out, kh, kw, oh, ow }
    }

    /// Rows of the im2col matrix: one per input channel and kernel position.
    fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Output positions of one image: the im2col matrix's columns.
    fn p(&self) -> usize {
        self.oh * self.ow
    }

    fn image(&self) -> usize {
        self.c_in * self.h * self.w
    }

    /// A 1 x 1 kernel without stride or padding: the image itself is its im2col matrix.
    fn pointwise(&self, g: &Geometry) -> bool {
        self.kh == 1 && self.kw == 1 && g.stride == [1, 1] && g.padding == [0; 4]
    }
}

fn dims4<B: Backend>(t: &FloatTensor<B>) -> [usize; 4] {
    let shape = t.shape();
    assert_eq!(shape.num_dims(), 4, "conv2d: a 4-D tensor was expected, got {shape:?}");
    [shape[0], shape[1], shape[2], shape[3]]
}

/// The output rows `0..d.oh` in tiles whose im2col matrix (`[k, rows * ow]`) is about 384 KiB, so
/// it is still in the core's L2 cache when the product reads it.
fn tiles(d: &Dims) -> impl Iterator<Item = Range<usize>> {
    let rows = (TILE_FLOATS / (d.k() * d.ow).max(1)).clamp(1, d.oh.max(1));
    let oh = d.oh;
    (0..oh).step_by(rows).map(move |start| start..(start + rows).min(oh))
}

/// Floats in one im2col tile (384 KiB).
const TILE_FLOATS: usize = 96 * 1024;

/// The im2col buffer [`tiles`] needs.
fn tile_len(d: &Dims) -> usize {
    tiles(d).map(|t| t.len() * d.ow * d.k()).max().unwrap_or(0)
}

/// One image's input zero-padded and split by the stride into phase planes: plane `(a, b)` holds
/// the padded input's rows `a, a + sh, ...` and columns `b, b + sw, ...`, so that every kernel
/// position's values for a row of outputs are one contiguous run of a phase plane's row (im2col and
/// col2im then move runs instead of gathering every `sw`-th element and zero-filling the padding).
#[derive(Clone, Copy)]
struct Phases {
    sh: usize,
    sw: usize,
    wph: usize,
    /// Floats in one phase plane.
    plane: usize,
}

impl Phases {
    fn of(d: &Dims, g: &Geometry) -> Phases {
        let ([sh, sw], [top, bottom, left, right]) = (g.stride, g.padding);
        let (hph, wph) = ((d.h + top + bottom).div_ceil(sh), (d.w + left + right).div_ceil(sw));
        Phases { sh, sw, wph, plane: hph * wph }
    }

    /// Floats for one image's phase planes.
    fn len(&self, d: &Dims) -> usize {
        d.c_in * self.sh * self.sw * self.plane
    }

    /// Where channel `c`'s phase plane `(a, b)` starts.
    fn at(&self, c: usize, a: usize, b: usize) -> usize {
        ((c * self.sh + a) * self.sw + b) * self.plane
    }

    /// For input row `y` and the phase column `b`: the first input column in that phase and where it
    /// lands in the phase planes (channel 0).
    fn row_start(&self, g: &Geometry, y: usize, b: usize) -> (usize, usize) {
        let [top, _, left, _] = g.padding;
        let (yy, sw) = (y + top, self.sw);
        let first = (b + sw - left % sw) % sw;
        (first, self.at(0, yy % self.sh, b) + yy / self.sh * self.wph + (first + left) / sw)
    }

    /// Copies one image `x` (`[c_in, h, w]`) into the inside of its phase planes `xph`, whose padding
    /// was zeroed when it was allocated and is never written.
    fn split(&self, x: &[f32], d: &Dims, g: &Geometry, xph: &mut [f32]) {
        let per_channel = self.sh * self.sw * self.plane;
        for (c, plane) in x.chunks_exact(d.h * d.w).enumerate() {
            for (y, row) in plane.chunks_exact(d.w).enumerate() {
                let xph = &mut xph[c * per_channel..];
                if self.sw == 2 {
                    // Even and odd columns in one pass (the compiler vectorises the deinterleave).
                    let ((_, even), (_, odd)) =
                        (self.row_start(g, y, g.padding[2] % 2), self.row_start(g, y, (1 + g.padding[2]) % 2));
                    let pairs = d.w / 2;
                    let (e, o) = if even < odd {
                        let (a, b) = xph.split_at_mut(odd);
                        (&mut a[even..][..pairs + d.w % 2], &mut b[..pairs])
                    } else {
                        let (a, b) = xph.split_at_mut(even);
                        (&mut b[..pairs + d.w % 2], &mut a[odd..][..pairs])
                    };
                    for ((e, o), pair) in e.iter_mut().zip(o.iter_mut()).zip(row.chunks_exact(2)) {
                        *e = pair[0];
                        *o = pair[1];
                    }
                    if d.w % 2 == 1 {
                        e[pairs] = row[d.w - 1];
                    }
                    continue;
                }
                for b in 0..self.sw {
                    let (first, at) = self.row_start(g, y, b);
                    let src = row[first.min(d.w)..].iter().step_by(self.sw);
                    for (o, v) in xph[at..].iter_mut().zip(src) {
                        *o = *v;
                    }
                }
            }
        }
    }

    /// The inverse of [`Phases::split`]: the image `dx` (`[c_in, h, w]`) read from the inside of
    /// its phase planes `dxph`, every element written.
    fn gather(&self, dxph: &[f32], d: &Dims, g: &Geometry, dx: &mut [MaybeUninit<f32>]) {
        let per_channel = self.sh * self.sw * self.plane;
        for (c, plane) in dx.chunks_exact_mut(d.h * d.w).enumerate() {
            for (y, row) in plane.chunks_exact_mut(d.w).enumerate() {
                for b in 0..self.sw {
                    let (first, at) = self.row_start(g, y, b);
                    let src = &dxph[c * per_channel + at..];
                    for (o, v) in row[first.min(d.w)..].iter_mut().step_by(self.sw).zip(src) {
                        o.write(*v);
                    }
                }
            }
        }
    }

    /// Where kernel position `(i, j)`'s run for output row `oy` starts in channel `c`'s planes.
    fn run(&self, c: usize, i: usize, j: usize, oy: usize) -> usize {
        self.at(c, i % self.sh, j % self.sw) + (oy + i / self.sh) * self.wph + j / self.sw
    }

    /// Fills `col` (`[k, tile.len() ow]`) with the im2col matrix of one image's phase planes `xph`
    /// for the output rows `tile`: each row of it `tile.len()` runs of `ow` values.
    fn im2col(&self, xph: &mut [f32], d: &Dims, tile: Range<usize>, col: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if avx512() {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { self.moves_avx512::<false>(col, xph, d, tile) };
        }
        // SAFETY: without FAST the moves use no AVX-512.
        unsafe { self.moves::<false, false>(col, xph, d, tile) }
    }

    /// Adds the im2col matrix `col` (`[k, tile.len() ow]`, output rows `tile`) back onto the phase
    /// planes `dxph` it would have been taken from: im2col's adjoint.
    fn col2im(&self, col: &mut [f32], d: &Dims, tile: Range<usize>, dxph: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if avx512() {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { self.moves_avx512::<true>(col, dxph, d, tile) };
        }
        // SAFETY: without FAST the moves use no AVX-512.
        unsafe { self.moves::<false, true>(col, dxph, d, tile) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn moves_avx512<const ADD: bool>(&self, col: &mut [f32], planes: &mut [f32], d: &Dims, tile: Range<usize>) {
        // SAFETY: this function is compiled for, and only called where the CPU has, AVX-512.
        unsafe { self.moves::<true, ADD>(col, planes, d, tile) }
    }

    /// im2col (`col` from `planes`) or, where `ADD`, col2im (`col` added onto `planes`), run by run.
    ///
    /// # Safety
    /// With `FAST` the CPU must have AVX-512F.
    #[inline(always)]
    unsafe fn moves<const FAST: bool, const ADD: bool>(
        &self,
        col: &mut [f32],
        planes: &mut [f32],
        d: &Dims,
        tile: Range<usize>,
    ) {
        let n = tile.len() * d.ow;
        for c in 0..d.c_in {
            for i in 0..d.kh {
                for j in 0..d.kw {
                    let row = &mut col[((c * d.kh + i) * d.kw + j) * n..][..n];
                    let first = self.run(c, i, j, tile.start);
                    let last = first + (tile.len() - 1) * self.wph + d.ow;
                    let planes = &mut planes[first..last];
                    for (r, run) in row.chunks_exact_mut(d.ow).enumerate() {
                        let plane = &mut planes[r * self.wph..][..d.ow];
                        match ADD {
                            // SAFETY: the caller's contract (AVX-512 where FAST).
                            false => unsafe { move_run::<FAST, false>(run, plane) },
                            true => unsafe { move_run::<FAST, true>(plane, run) },
                        }
                    }
                }
            }
        }
    }
}

/// `dst = src` (or `dst += src` where `ADD`) for slices of one length: the short runs of im2col
/// and col2im, in masked 16-float AVX-512 loads and stores where `FAST`.
///
/// # Safety
/// With `FAST` the CPU must have AVX-512F.
#[inline(always)]
unsafe fn move_run<const FAST: bool, const ADD: bool>(dst: &mut [f32], src: &mut [f32]) {
    let src = &src[..dst.len()];
    #[cfg(target_arch = "x86_64")]
    if FAST {
        // SAFETY: the caller's contract (AVX-512 where FAST); the slices have the same length.
        unsafe { masked_run::<ADD>(dst, src) };
        return;
    }
    if ADD {
        dst.iter_mut().zip(src).for_each(|(a, b)| *a += *b);
    } else {
        dst.copy_from_slice(src);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn masked_run<const ADD: bool>(dst: &mut [f32], src: &[f32]) {
    use std::arch::x86_64::*;
    let n = dst.len().min(src.len());
    let mut i = 0;
    while i < n {
        let mask: __mmask16 = if n - i >= 16 { u16::MAX } else { (1u16 << (n - i)) - 1 };
        // SAFETY: the mask covers elements i..min(i + 16, n) of both slices, all in bounds; masked
        // lanes are not accessed.
        unsafe {
            let s = _mm512_maskz_loadu_ps(mask, src.as_ptr().add(i));
            let v = if ADD { _mm512_add_ps(_mm512_maskz_loadu_ps(mask, dst.as_ptr().add(i)), s) } else { s };
            _mm512_mask_storeu_ps(dst.as_mut_ptr().add(i), mask, v);
        }
        i += 16;
    }
}

/// A stride-1 convolution without an im2col matrix: the input is copied once into zero-padded planes
/// (`hp` x `wp`, each `stride` floats apart), on which an output position `(oy, ox)` is the flat index
/// `q = oy wp + ox` and its input under kernel position `(i, j)` the index `q + i wp + j`, the same
/// shift for every position. Each kernel position is then one product read straight from the padded
/// planes (`out^T[q, :] += x_pad^T[q + shift, :] W_ij^T`), the `wp - ow` positions past a row's end
/// computed and dropped. The flat positions from the first output to the last, rounded up to 16,
/// are the product's rows.
struct Plane {
    wp: usize,
    /// Floats from one channel's padded plane to the next's (`hp wp` rounded up to 16).
    stride: usize,
    /// The rows of each product: the flat positions from the first output to the last, rounded up
    /// to 16 (the gemm kernels read unpacked rows in 16s).
    rows: usize,
}

impl Plane {
    /// The scheme for a stride-1 convolution where the dropped positions are at most a fifth of the
    /// output's (im2col's copies cost less than that on small feature maps), else `None`.
    fn of(d: &Dims, g: &Geometry) -> Option<Plane> {
        if g.stride != [1, 1] || d.pointwise(g) {
            return None;
        }
        let [top, bottom, left, right] = g.padding;
        let (hp, wp) = (d.h + top + bottom, d.w + left + right);
        let rows = ((d.oh - 1) * wp + d.ow).next_multiple_of(16);
        (rows * 5 <= d.p() * 6).then_some(Plane { wp, stride: (hp * wp).next_multiple_of(16), rows })
    }

    /// Floats for `c` padded planes: the last product's rows read up to 15 floats past the last
    /// plane's end.
    fn len(&self, c: usize) -> usize {
        c * self.stride + 16
    }

    /// The flat offset of kernel position `(i, j)`.
    fn shift(&self, d: &Dims, kernel_position: usize) -> usize {
        kernel_position / d.kw * self.wp + kernel_position % d.kw
    }

    /// Copies one image `x` (`[c_in, h, w]`) into the inside of the padded planes `xpad`, whose
    /// border was zeroed when it was allocated and is never written.
    fn pad(&self, x: &[f32], d: &Dims, g: &Geometry, xpad: &mut [f32]) {
        let [top, _, left, _] = g.padding;
        for (c, plane) in x.chunks_exact(d.h * d.w).enumerate() {
            for (y, row) in plane.chunks_exact(d.w).enumerate() {
                xpad[c * self.stride + (y + top) * self.wp + left..][..d.w].copy_from_slice(row);
            }
        }
    }

    /// Copies the output gradient `grad` (`[c_out, oh, ow]`) onto the product rows of `gpad`
    /// (`[c_out, rows]`), whose dropped positions were zeroed when it was allocated and are never
    /// written.
    fn spread(&self, grad: &[f32], d: &Dims, gpad: &mut [f32]) {
        for (co, plane) in grad.chunks_exact(d.p()).enumerate() {
            for (oy, row) in plane.chunks_exact(d.ow).enumerate() {
                gpad[co * self.rows + oy * self.wp..][..d.ow].copy_from_slice(row);
            }
        }
    }

    /// One image's output `out` (`[c_out, oh, ow]`): every kernel position's product into `rows`
    /// (`[c_out, rows]`), then the kept positions plus the bias. `scratch` holds [`Plane::len`]
    /// `(c_in)` floats, then `c_out rows`.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        x: &[f32],
        (w, bias): (&[f32], &[f32]),
        d: &Dims,
        g: &Geometry,
        scratch: &mut [f32],
        out: &mut [MaybeUninit<f32>],
        parallelism: gemm::Parallelism,
    ) {
        let (xpad, rows) = scratch.split_at_mut(self.len(d.c_in));
        self.pad(x, d, g, xpad);
        let kk = d.kh * d.kw;
        for ij in 0..kk {
            let lhs = View { data: xpad, offset: self.shift(d, ij), rs: 1, cs: self.stride };
            let rhs = View { data: w, offset: ij, rs: kk, cs: d.k() };
            matmul_on((rows, 1, self.rows), ij > 0, lhs, rhs, [self.rows, d.c_out, d.c_in], parallelism);
        }
        for ((plane, kept), &b) in out.chunks_exact_mut(d.p()).zip(rows.chunks_exact(self.rows)).zip(bias) {
            for (oy, row) in plane.chunks_exact_mut(d.ow).enumerate() {
                for (o, &v) in row.iter_mut().zip(&kept[oy * self.wp..][..d.ow]) {
                    o.write(v + b);
                }
            }
        }
    }

    /// One image's input gradient `dx` (`[c_in, h, w]`): the output gradient spread onto the product
    /// rows, each kernel position's `grad^T W_ij` added onto the padded planes at its shift, the
    /// inside kept. `scratch` holds `c_out rows` floats, then [`Plane::len`]`(c_in)`.
    #[allow(clippy::too_many_arguments)]
    fn x_backward(
        &self,
        grad: &[f32],
        w: &[f32],
        d: &Dims,
        g: &Geometry,
        scratch: &mut [f32],
        dx: &mut [MaybeUninit<f32>],
        parallelism: gemm::Parallelism,
    ) {
        let (gpad, dxpad) = scratch.split_at_mut(d.c_out * self.rows);
        self.spread(grad, d, gpad);
        dxpad.fill(0.0);
        let kk = d.kh * d.kw;
        for ij in 0..kk {
            let lhs = View { data: gpad, offset: 0, rs: 1, cs: self.rows };
            let rhs = View { data: w, offset: ij, rs: d.k(), cs: kk };
            let dst = &mut dxpad[self.shift(d, ij)..];
            matmul_on((dst, 1, self.stride), true, lhs, rhs, [self.rows, d.c_in, d.c_out], parallelism);
        }
        let [top, _, left, _] = g.padding;
        for (c, plane) in dx.chunks_exact_mut(d.h * d.w).enumerate() {
            for (y, row) in plane.chunks_exact_mut(d.w).enumerate() {
                let inside = &dxpad[c * self.stride + (y + top) * self.wp + left..][..d.w];
                for (o, &v) in row.iter_mut().zip(inside) {
                    o.write(v);
                }
            }
        }
    }

    /// The weight gradient's sum over `images` of `x` and `grad`, as `[kh kw, c_in, c_out]`: for each
    /// kernel position `dW_ij = grad x_pad[shifted]^T`, the output gradient laid out `[rows, c_out]`
    /// and the result column-major, so the product reads both operands unpacked.
    fn weight_backward(&self, (xv, gv): (&[f32], &[f32]), d: &Dims, g: &Geometry, images: Range<usize>) -> Vec<f32> {
        let kk = d.kh * d.kw;
        let mut dw = vec![0.0f32; kk * d.c_in * d.c_out];
        let mut xpad = vec![0.0f32; self.len(d.c_in)];
        let mut gpad_t = vec![0.0f32; self.rows * d.c_out];
        for b in images {
            self.pad(&xv[b * d.image()..][..d.image()], d, g, &mut xpad);
            let grad = &gv[b * d.c_out * d.p()..][..d.c_out * d.p()];
            for (co, plane) in grad.chunks_exact(d.p()).enumerate() {
                for (oy, row) in plane.chunks_exact(d.ow).enumerate() {
                    for (ox, &v) in row.iter().enumerate() {
                        gpad_t[(oy * self.wp + ox) * d.c_out + co] = v;
                    }
                }
            }
            for (ij, dw) in dw.chunks_exact_mut(d.c_in * d.c_out).enumerate() {
                let lhs = View { data: &gpad_t, offset: 0, rs: 1, cs: d.c_out };
                let rhs = View { data: &xpad, offset: self.shift(d, ij), rs: 1, cs: self.stride };
                let shape = [d.c_out, d.c_in, self.rows];
                matmul_on((dw, 1, d.c_out), true, lhs, rhs, shape, gemm::Parallelism::None);
            }
        }
        dw
    }
}

/// Runs `image(b, out_b, scratch, parallelism)` for every image `b`, `out_b` its `chunk` of `out`:
/// images in parallel, each product on its thread; a single image gets every thread for its product.
fn for_each_image<T: Send>(
    out: &mut [T],
    chunk: usize,
    scratch: usize,
    image: impl Fn(usize, &mut [T], &mut [f32], gemm::Parallelism) + Sync,
) {
    if out.len() <= chunk {
        image(0, out, &mut vec![0.0; scratch], gemm::Parallelism::Rayon(0));
        return;
    }
    out.par_chunks_mut(chunk)
        .enumerate()
        .for_each_init(|| vec![0.0; scratch], |s, (b, o)| image(b, o, s, gemm::Parallelism::None));
}

/// Whether the im2col forward pass runs its products with the output channels along the gemm
/// kernel's 64-row blocks: where every tile's positions fill the blocks (and 6-column panels) worse
/// than the channels do.
fn flips(d: &Dims, g: &Geometry) -> bool {
    let fill = |m: usize, n: usize| (m * n) as f64 / (m.next_multiple_of(64) * n.next_multiple_of(6)) as f64;
    let better = |n: usize| fill(d.c_out, n) > 1.1 * fill(n, d.c_out);
    !d.pointwise(g) && tiles(d).all(|t| better(t.len() * d.ow))
}

/// The batch is split into this many parts for the weight gradient's partial sums, whatever the
/// number of threads, so the sum's order is fixed.
const WEIGHT_GRADIENT_PARTS: usize = 16;

/// The input gradient's values: for each image, the weight's transpose times the output gradient,
/// added onto the padded planes at each kernel position's shift ([`Plane`]) or folded back onto the
/// input by col2im.
fn x_backward_values(wv: &[f32], gv: &[f32], d: &Dims, g: &Geometry) -> Vec<f32> {
    if let Some(plane) = Plane::of(d, g) {
        let scratch = d.c_out * plane.rows + plane.len(d.c_in);
        // SAFETY: `Plane::x_backward` writes every element of its image's input gradient.
        return unsafe {
            written(d.batch * d.image(), |dx| {
                for_each_image(dx, d.image(), scratch, |b, dx, scratch, parallelism| {
                    let grad = &gv[b * d.c_out * d.p()..][..d.c_out * d.p()];
                    plane.x_backward(grad, wv, d, g, scratch, dx, parallelism);
                })
            })
        };
    }
    // The weight's transpose [k, c_out], laid out for the product.
    let (k, p) = (d.k(), d.p());
    let wt = transpose(wv, d.c_out, k);
    let wt = View::rows(&wt, d.c_out);
    if d.pointwise(g) {
        let mut dx = vec![0.0f32; d.batch * d.image()];
        for_each_image(&mut dx, d.image(), 0, |b, dx, _, parallelism| {
            let grad = &gv[b * d.c_out * p..][..d.c_out * p];
            matmul_on((dx, p, 1), false, wt, View::rows(grad, p), [k, p, d.c_out], parallelism);
        });
        return dx;
    }
    let phases = Phases::of(d, g);
    let col_len = tile_len(d);
    let scratch = col_len + phases.len(d);
    let images = |dx: &mut [MaybeUninit<f32>]| {
        for_each_image(dx, d.image(), scratch, |b, dx, scratch, parallelism| {
            let grad = &gv[b * d.c_out * p..][..d.c_out * p];
            let (col, dxph) = scratch.split_at_mut(col_len);
            dxph.fill(0.0);
            for tile in tiles(d) {
                let n = tile.len() * d.ow;
                let grad = View { data: grad, offset: tile.start * d.ow, rs: p, cs: 1 };
                matmul_on((col, n, 1), false, wt, grad, [k, n, d.c_out], parallelism);
                phases.col2im(col, d, tile, dxph);
            }
            phases.gather(dxph, d, g, dx);
        })
    };
    // SAFETY: `Phases::gather` writes every element of its image's input gradient.
    unsafe { written(d.batch * d.image(), images) }
}

/// Sums of `v` (`[batch, c, plane]`) over batch and plane, one per channel (each plane's sum in
/// float64 lanes).
fn channel_sums(v: &[f32], c: usize, plane: usize) -> Vec<f32> {
    let mut sums = vec![0.0f64; c];
    for image in v.chunks(c * plane) {
        for (s, row) in sums.iter_mut().zip(image.chunks(plane)) {
            *s += lane_sum(row, row, |x, _| x);
        }
    }
    sums.into_iter().map(|s| s as f32).collect()
}

impl ConvOps for Flex {
    fn conv2d_im2col(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, g: Geometry) -> FlexTensor {
        let d = Dims::new(dims4::<Flex>(&x), dims4::<Flex>(&weight), &g);
        let (x, weight, bias) = (x.to_contiguous(), weight.to_contiguous(), bias.to_contiguous());
        let (xv, w, bv) = (values(&x), values(&weight), values(&bias));
        assert_eq!(bv.len(), d.c_out, "conv2d: {} biases for {} output channels", bv.len(), d.c_out);
        let (k, p) = (d.k(), d.p());
        if let Some(plane) = Plane::of(&d, &g) {
            let scratch = plane.len(d.c_in) + d.c_out * plane.rows;
            // SAFETY: `Plane::forward` writes every element of its image's output.
            let out = unsafe {
                written(d.batch * d.c_out * p, |out| {
                    for_each_image(out, d.c_out * p, scratch, |b, out, scratch, parallelism| {
                        let image = &xv[b * d.image()..][..d.image()];
                        plane.forward(image, (w, bv), &d, &g, scratch, out, parallelism);
                    })
                })
            };
            return tensor(out, [d.batch, d.c_out, d.oh, d.ow]);
        }
        let mut out = vec![0.0f32; d.batch * d.c_out * p];
        let phases = Phases::of(&d, &g);
        // For a feature map whose tile rows fill the gemm kernel's 64-row blocks badly (7 x 7 = 49
        // positions use 77% of one), the product runs with the output channels along the blocks into
        // `[positions, c_out]` scratch, read back transposed; the weight's transpose [k, c_out] is
        // then its unpacked left operand.
        let flip = flips(&d, &g);
        let w_t = if flip { transpose(w, d.c_out, k) } else { Vec::new() };
        let col_len = tile_len(&d);
        let flipped = if flip { col_len / k * d.c_out } else { 0 };
        let scratch = if d.pointwise(&g) { 0 } else { col_len + phases.len(&d) + flipped };
        for_each_image(&mut out, d.c_out * p, scratch, |b, out, scratch, parallelism| {
            for (row, &v) in out.chunks_mut(p).zip(bv) {
                row.fill(v);
            }
            let image = &xv[b * d.image()..][..d.image()];
            // As out^T [positions, c_out] = col^T [positions, k] W^T [k, c_out], written column by
            // column into the [c_out, positions] output: the gemm kernels' 64-row blocks run along
            // the positions, not along the few output channels.
            let wt = View { data: w, offset: 0, rs: 1, cs: k };
            if d.pointwise(&g) {
                let lhs = View { data: image, offset: 0, rs: 1, cs: p };
                matmul_on((out, 1, p), true, lhs, wt, [p, d.c_out, k], parallelism);
                return;
            }
            let (col, scratch) = scratch.split_at_mut(col_len);
            let (xph, out_t) = scratch.split_at_mut(phases.len(&d));
            phases.split(image, &d, &g, xph);
            for tile in tiles(&d) {
                let n = tile.len() * d.ow;
                let start = tile.start * d.ow;
                phases.im2col(xph, &d, tile, col);
                if flip {
                    // out^T [n, c_out] with the channels along the product's rows: W [c_out, k] col [k, n]
                    let (lhs, rhs) = (View { data: &w_t, offset: 0, rs: 1, cs: d.c_out }, View::rows(col, n));
                    matmul_on((out_t, 1, d.c_out), false, lhs, rhs, [d.c_out, n, k], parallelism);
                    for (co, row) in out.chunks_exact_mut(p).enumerate() {
                        for (o, v) in row[start..start + n].iter_mut().zip(out_t[co..].iter().step_by(d.c_out)) {
                            *o += *v;
                        }
                    }
                    continue;
                }
                let lhs = View { data: col, offset: 0, rs: 1, cs: n };
                matmul_on((&mut out[start..], 1, p), true, lhs, wt, [n, d.c_out, k], parallelism);
            }
        });
        tensor(out, [d.batch, d.c_out, d.oh, d.ow])
    }

    fn conv_transpose2d_im2col(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        g: Geometry,
        output: [usize; 4],
    ) -> FlexTensor {
        // x is the output gradient of the convolution from `output`-shaped inputs with this weight.
        let d = Dims::new(output, dims4::<Flex>(&weight), &g);
        let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
        let mut out = x_backward_values(values(&weight), values(&x), &d, &g);
        let (bias, plane) = (bias.to_contiguous(), d.h * d.w);
        for image in out.chunks_mut(d.image()) {
            for (row, &v) in image.chunks_mut(plane).zip(values(&bias)) {
                row.iter_mut().for_each(|o| *o += v);
            }
        }
        tensor(out, output)
    }

    fn conv2d_im2col_x_backward(weight: FlexTensor, grad: FlexTensor, g: Geometry, input: [usize; 4]) -> FlexTensor {
        let d = Dims::new(input, dims4::<Flex>(&weight), &g);
        let (weight, grad) = (weight.to_contiguous(), grad.to_contiguous());
        tensor(x_backward_values(values(&weight), values(&grad), &d, &g), input)
    }

    fn conv2d_im2col_weight_backward(x: FlexTensor, grad: FlexTensor, g: Geometry, weight: [usize; 4]) -> FlexTensor {
        let d = Dims::new(dims4::<Flex>(&x), weight, &g);
        let (x, grad) = (x.to_contiguous(), grad.to_contiguous());
        let (xv, gv) = (values(&x), values(&grad));
        let (k, p) = (d.k(), d.p());
        let per_part = d.batch.div_ceil(WEIGHT_GRADIENT_PARTS).max(1);
        // Summed as dW^T [k, c_out] = col [k, n] grad^T [n, c_out]: the large im2col matrix is the
        // product's row-major left operand and the small output gradient the transposed one.
        let partial = |images: Range<usize>| {
            let mut dwt = vec![0.0f32; k * d.c_out];
            let phases = Phases::of(&d, &g);
            let mut col = vec![0.0f32; if d.pointwise(&g) { 0 } else { tile_len(&d) }];
            let mut xph = vec![0.0f32; if d.pointwise(&g) { 0 } else { phases.len(&d) }];
            for b in images {
                let image = &xv[b * d.image()..][..d.image()];
                let grad = &gv[b * d.c_out * p..][..d.c_out * p];
                if d.pointwise(&g) {
                    let grad_t = View { data: grad, offset: 0, rs: 1, cs: p };
                    matmul(&mut dwt, true, View::rows(image, p), grad_t, k, d.c_out, p);
                    continue;
                }
                phases.split(image, &d, &g, &mut xph);
                for tile in tiles(&d) {
                    let n = tile.len() * d.ow;
                    let grad_t = View { data: grad, offset: tile.start * d.ow, rs: 1, cs: p };
                    phases.im2col(&mut xph, &d, tile, &mut col);
                    matmul(&mut dwt, true, View::rows(&col, n), grad_t, k, d.c_out, n);
                }
            }
            dwt
        };
        let plane = Plane::of(&d, &g);
        let parts: Vec<Vec<f32>> = (0..d.batch.div_ceil(per_part))
            .into_par_iter()
            .map(|i| {
                let images = i * per_part..((i + 1) * per_part).min(d.batch);
                match &plane {
                    Some(plane) => plane.weight_backward((xv, gv), &d, &g, images),
                    None => partial(images),
                }
            })
            .collect();
        let mut sum = vec![0.0f32; k * d.c_out];
        for part in parts {
            sum.iter_mut().zip(part).for_each(|(a, b)| *a += b);
        }
        let dw = match plane {
            // [kh kw, c_in, c_out] -> [c_out, c_in, kh kw]
            Some(_) => {
                let kk = d.kh * d.kw;
                let mut dw = vec![0.0f32; k * d.c_out];
                for (ij, block) in sum.chunks_exact(d.c_in * d.c_out).enumerate() {
                    for (c, row) in block.chunks_exact(d.c_out).enumerate() {
                        for (co, &v) in row.iter().enumerate() {
                            dw[(co * d.c_in + c) * kk + ij] = v;
                        }
                    }
                }
                dw
            }
            None => transpose(&sum, k, d.c_out),
        };
        tensor(dw, weight)
    }

    fn conv2d_im2col_bias_backward(grad: FlexTensor) -> FlexTensor {
        let [_, c, h, w] = dims4::<Flex>(&grad);
        let grad = grad.to_contiguous();
        tensor(channel_sums(values(&grad), c, h * w), [c])
    }
}

/// The backward pass of a convolution or a transposed convolution.
#[derive(Debug)]
struct ConvBackward {
    transposed: bool,
}

impl<B: Backend + ConvOps> Backward<B, 3> for ConvBackward {
    /// The input, the weight and the geometry of the convolution (of the one transposed, for a
    /// transposed convolution).
    type State = (FloatTensor<B>, FloatTensor<B>, Geometry);

    /// A transposed convolution's input gradient is the convolution of the output's gradient, and
    /// its weight gradient the convolution's with input and output gradient exchanged.
    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let [node_x, node_w, node_b] = ops.parents;
        let (x, weight, g) = ops.state;
        let shape = dims4::<B>(&weight);
        if let Some(node) = node_b {
            grads.register::<B>(node.id, B::conv2d_im2col_bias_backward(grad.clone()));
        }
        if let Some(node) = node_x {
            let dx = if self.transposed {
                let zeros = B::float_zeros([shape[0]].into(), &grad.device(), FloatDType::F32);
                B::conv2d_im2col(grad.clone(), weight, zeros, g)
            } else {
                B::conv2d_im2col_x_backward(weight, grad.clone(), g, dims4::<B>(&x))
            };
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_w {
            let dw = if self.transposed {
                B::conv2d_im2col_weight_backward(grad, x, g, shape)
            } else {
                B::conv2d_im2col_weight_backward(x, grad, g, shape)
            };
            grads.register::<B>(node.id, dw);
        }
    }
}

/// Records `forward(x, weight, bias)` with its backward pass (`transposed` says which convolution).
fn tracked<B: Backend + ConvOps, C: CheckpointStrategy>(
    [x, weight, bias]: [FloatTensor<Autodiff<B, C>>; 3],
    g: Geometry,
    transposed: bool,
    forward: impl FnOnce(FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
    let nodes = [x.node(), weight.node(), bias.node()];
    let [x, weight, bias] = [x, weight, bias].map(|t| t.into_primitive());
    match (ConvBackward { transposed }).prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((x.clone(), weight.clone(), g), forward(x, weight, bias)),
        OpsKind::UnTracked(prep) => prep.finish(forward(x, weight, bias)),
    }
}

impl<B: Backend + ConvOps, C: CheckpointStrategy> ConvOps for Autodiff<B, C> {
    fn conv2d_im2col(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        g: Geometry,
    ) -> FloatTensor<Self> {
        tracked::<B, C>([x, weight, bias], g, false, |x, w, b| B::conv2d_im2col(x, w, b, g))
    }

    fn conv_transpose2d_im2col(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        g: Geometry,
        output: [usize; 4],
    ) -> FloatTensor<Self> {
        tracked::<B, C>([x, weight, bias], g, true, |x, w, b| B::conv_transpose2d_im2col(x, w, b, g, output))
    }

    // The gradients are not differentiated again (burn has no second-order gradients): computed on
    // the values.
    fn conv2d_im2col_x_backward(
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        g: Geometry,
        input: [usize; 4],
    ) -> FloatTensor<Self> {
        FloatTensor::<Self>::new(B::conv2d_im2col_x_backward(weight.into_primitive(), grad.into_primitive(), g, input))
    }

    fn conv2d_im2col_weight_backward(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        g: Geometry,
        weight: [usize; 4],
    ) -> FloatTensor<Self> {
        FloatTensor::<Self>::new(B::conv2d_im2col_weight_backward(x.into_primitive(), grad.into_primitive(), g, weight))
    }

    fn conv2d_im2col_bias_backward(grad: FloatTensor<Self>) -> FloatTensor<Self> {
        FloatTensor::<Self>::new(B::conv2d_im2col_bias_backward(grad.into_primitive()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::central_differences;
    use burn::nn::conv::{Conv2dConfig, ConvTranspose2dConfig};
    use burn::tensor::TensorData;
    use genlab_core::SeededRng;

    enum Layer {
        Conv(Conv2d),
        Transposed(ConvTranspose2d),
    }

    /// A layer (burn's, seeded weights) and the shape of its input.
    struct Case {
        name: &'static str,
        input: [usize; 4],
        layer: Layer,
    }

    fn rng(name: &str) -> SeededRng {
        SeededRng::new(name.bytes().map(u64::from).sum())
    }

    fn conv(
        name: &'static str,
        input: [usize; 4],
        c_out: usize,
        kernel: [usize; 2],
        stride: usize,
        padding: PaddingConfig2d,
        bias: bool,
    ) -> Case {
        let config = Conv2dConfig::new([input[1], c_out], kernel)
            .with_stride([stride, stride])
            .with_padding(padding)
            .with_bias(bias);
        let layer = crate::init::conv2d(&mut rng(name), &config, &Device::flex().autodiff());
        Case { name, input, layer: Layer::Conv(layer) }
    }

    fn transposed(
        name: &'static str,
        input: [usize; 4],
        c_out: usize,
        [kernel, stride, padding, padding_out]: [usize; 4],
        bias: bool,
    ) -> Case {
        let config = ConvTranspose2dConfig::new([input[1], c_out], [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding([padding, padding])
            .with_padding_out([padding_out, padding_out])
            .with_bias(bias);
        let layer = crate::init::conv_transpose2d(&mut rng(name), &config, &Device::flex().autodiff());
        Case { name, input, layer: Layer::Transposed(layer) }
    }

    /// The shapes genlab's models use (3x3 same, 3x3 and 4x4 stride 2, 1x1, no bias, the decoders'
    /// 4x4 stride-2 transposed convolutions), uneven padding, burn's `Same` with an odd total, a
    /// kernel that skips input columns (stride 3 > kernel 2), transposed convolutions with
    /// `padding_out` and with more padding than kernel overlap.
    fn cases() -> Vec<Case> {
        use PaddingConfig2d::*;
        vec![
            conv("3x3 same", [3, 2, 7, 6], 3, [3, 3], 1, Explicit(1, 1, 1, 1), true),
            conv("3x3 stride 2", [2, 3, 7, 8], 2, [3, 3], 2, Explicit(1, 1, 1, 1), true),
            conv("4x4 stride 2", [2, 2, 8, 6], 3, [4, 4], 2, Explicit(1, 1, 1, 1), true),
            conv("1x1", [3, 4, 5, 5], 3, [1, 1], 1, Valid, true),
            conv("3x3 no bias", [2, 2, 5, 6], 2, [3, 3], 1, Explicit(1, 1, 1, 1), false),
            conv("uneven padding", [2, 2, 6, 5], 2, [3, 2], 1, Explicit(2, 0, 0, 1), true),
            conv("same, stride 2", [2, 2, 7, 6], 2, [4, 3], 2, Same, true),
            conv("stride past the kernel", [2, 2, 9, 8], 2, [2, 2], 3, Valid, true),
            transposed("transposed 4x4 stride 2", [2, 3, 4, 3], 2, [4, 2, 1, 0], true),
            transposed("transposed 3x3 padding_out", [2, 2, 3, 4], 3, [3, 2, 1, 1], true),
            transposed("transposed 1x1", [3, 3, 4, 4], 2, [1, 1, 0, 0], false),
            transposed("transposed stride 3", [2, 2, 3, 3], 2, [2, 3, 0, 2], true),
            conv("flipped: 4x4 stride 2 to 64 channels", [1, 2, 10, 10], 64, [4, 4], 2, Explicit(1, 1, 1, 1), true),
            // Stride-1 layers on maps large enough for the padded planes (`Plane`).
            conv("planes: 3x3 same", [2, 3, 14, 16], 3, [3, 3], 1, Explicit(1, 1, 1, 1), true),
            conv("planes: 5x3 uneven padding", [2, 2, 16, 12], 2, [5, 3], 1, Explicit(2, 1, 0, 2), false),
            conv("planes: 3x3 valid", [1, 2, 12, 20], 3, [3, 3], 1, Valid, true),
            transposed("planes: transposed 3x3 stride 1", [2, 3, 14, 16], 2, [3, 1, 1, 0], true),
            transposed("transposed wide padding", [1, 2, 5, 5], 2, [3, 1, 2, 0], true),
        ]
    }

    impl Case {
        fn weight(&self) -> Tensor<4> {
            match &self.layer {
                Layer::Conv(l) => l.weight.val(),
                Layer::Transposed(l) => l.weight.val(),
            }
        }

        fn bias(&self) -> Option<Tensor<1>> {
            match &self.layer {
                Layer::Conv(l) => l.bias.as_ref().map(|b| b.val()),
                Layer::Transposed(l) => l.bias.as_ref().map(|b| b.val()),
            }
        }

        fn forward(&self, x: Tensor<4>, genlab: bool) -> Tensor<4> {
            match (&self.layer, genlab) {
                (Layer::Conv(l), true) => conv2d(l, x),
                (Layer::Conv(l), false) => l.forward(x),
                (Layer::Transposed(l), true) => conv_transpose2d(l, x),
                (Layer::Transposed(l), false) => l.forward(x),
            }
        }

        /// The layer's output in float64, by the definition: every input element times every
        /// kernel element, added where the kernel places it.
        fn forward64(&self, x: &[f64], w: &[f64], b: Option<&[f64]>) -> (Vec<f64>, [usize; 4]) {
            let [n, c_in, h, wd] = self.input;
            let [w0, w1, kh, kw] = self.weight().dims();
            let (stride, pad, extra, transposed) = match &self.layer {
                Layer::Conv(l) => {
                    let g = geometry(l, h, wd).expect("the kernel fits");
                    (g.stride, [g.padding[0], g.padding[2]], [0, 0], false)
                }
                Layer::Transposed(l) => (l.stride, l.padding, l.padding_out, true),
            };
            let c_out = if transposed { w1 } else { w0 };
            let (oh, ow) = if transposed {
                ((h - 1) * stride[0] + kh + extra[0] - 2 * pad[0], (wd - 1) * stride[1] + kw + extra[1] - 2 * pad[1])
            } else {
                let g = match &self.layer {
                    Layer::Conv(l) => geometry(l, h, wd).expect("the kernel fits"),
                    Layer::Transposed(_) => unreachable!(),
                };
                let d = Dims::new(self.input, [w0, w1, kh, kw], &g);
                (d.oh, d.ow)
            };
            let mut y = vec![0.0; n * c_out * oh * ow];
            for (i, v) in y.iter_mut().enumerate() {
                *v = b.map_or(0.0, |b| b[(i / (oh * ow)) % c_out]);
            }
            // Output row `a * stride + i - pad` meets input row `a` through kernel row `i` for
            // the transposed convolution; for the convolution, output row `a` reads input row
            // `a * stride + i - pad`.
            for b_ in 0..n {
                for ci in 0..c_in {
                    for o in 0..c_out {
                        for i in 0..kh {
                            for j in 0..kw {
                                let wi = if transposed {
                                    ((ci * w1 + o) * kh + i) * kw + j
                                } else {
                                    ((o * w1 + ci) * kh + i) * kw + j
                                };
                                let (rows, cols) = if transposed { (h, wd) } else { (oh, ow) };
                                for a in 0..rows {
                                    for e in 0..cols {
                                        let r = (a * stride[0] + i) as isize - pad[0] as isize;
                                        let s = (e * stride[1] + j) as isize - pad[1] as isize;
                                        let (lim_r, lim_s) = if transposed { (oh, ow) } else { (h, wd) };
                                        if r < 0 || s < 0 || r >= lim_r as isize || s >= lim_s as isize {
                                            continue;
                                        }
                                        let (r, s) = (r as usize, s as usize);
                                        if transposed {
                                            y[((b_ * c_out + o) * oh + r) * ow + s] +=
                                                x[((b_ * c_in + ci) * h + a) * wd + e] * w[wi];
                                        } else {
                                            y[((b_ * c_out + o) * oh + a) * ow + e] +=
                                                x[((b_ * c_in + ci) * h + r) * wd + s] * w[wi];
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (y, [n, c_out, oh, ow])
        }

        /// Output, input gradient, weight gradient and bias gradient of `sum(layer(x) * r)`.
        fn run(&self, x: &[f32], r: &[f32], genlab: bool) -> [Vec<f32>; 4] {
            let device = Device::flex().autodiff();
            let xt = Tensor::<4>::from_data(TensorData::new(x.to_vec(), self.input), &device).require_grad();
            let y = self.forward(xt.clone(), genlab);
            let rt = Tensor::<4>::from_data(TensorData::new(r.to_vec(), y.dims()), &device);
            let grads = (y.clone() * rt).sum().backward();
            let bias = self.bias().map(|b| vec32(b.grad(&grads).expect("a bias gradient")));
            [
                vec32(y),
                vec32(xt.grad(&grads).expect("an input gradient")),
                vec32(self.weight().grad(&grads).expect("a weight gradient")),
                bias.unwrap_or_default(),
            ]
        }

        /// A seeded input and output weights `r`.
        fn inputs(&self, seed: u64) -> (Vec<f32>, Vec<f32>) {
            let mut rng = SeededRng::new(seed);
            let x = rng.symmetric_uniform_vec(self.input.iter().product(), 1.0);
            let w = to64(&vec32(self.weight()));
            let (_, shape) = self.forward64(&to64(&x), &w, None);
            let r = rng.symmetric_uniform_vec(shape.iter().product(), 1.0);
            (x, r)
        }
    }

    fn vec32<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().expect("f32 values")
    }

    fn to64(v: &[f32]) -> Vec<f64> {
        v.iter().map(|&v| v as f64).collect()
    }

    /// The output equals a float64 computation by the definition, and every gradient coordinate
    /// equals central differences of the float64 loss `sum(layer(x) * r)`.
    #[test]
    fn convolutions_and_their_gradients_equal_float64_and_finite_differences() {
        for c in cases() {
            if let Layer::Conv(layer) = &c.layer {
                let g = geometry(layer, c.input[2], c.input[3]).expect("the kernel fits");
                let d = Dims::new(c.input, layer.weight.dims(), &g);
                let planes = Plane::of(&d, &g).is_some();
                assert_eq!(planes, c.name.starts_with("planes"), "{}: the scheme taken", c.name);
                assert_eq!(flips(&d, &g) && !planes, c.name.starts_with("flipped"), "{}: flipped", c.name);
            }
            let (x, r) = c.inputs(3);
            let [y, dx, dw, db] = c.run(&x, &r, true);
            let w = to64(&vec32(c.weight()));
            let b = c.bias().map(|b| to64(&vec32(b)));
            let (x64, r64) = (to64(&x), to64(&r));
            let (want, _) = c.forward64(&x64, &w, b.as_deref());
            assert_eq!(y.len(), want.len(), "{}: output size", c.name);
            for (i, (a, e)) in y.iter().zip(&want).enumerate() {
                assert!((*a as f64 - e).abs() < 1e-5, "{}: output {i}: {a} vs {e}", c.name);
            }
            let loss = |x: &[f64], w: &[f64], b: Option<&[f64]>| -> f64 {
                c.forward64(x, w, b).0.iter().zip(&r64).map(|(y, r)| y * r).sum()
            };
            let h = 1e-3;
            let check = |what: &str, got: &[f32], v: &[f64], f: &dyn Fn(&[f64]) -> f64| {
                assert_eq!(got.len(), v.len(), "{}: {what} has {} values, expected {}", c.name, got.len(), v.len());
                for (i, (&gi, numeric)) in got.iter().zip(central_differences(v, h, f)).enumerate() {
                    assert!(
                        (gi as f64 - numeric).abs() < 1e-4 * (1.0 + numeric.abs()),
                        "{}: {what}[{i}]: {gi} vs {numeric}",
                        c.name
                    );
                }
            };
            check("input gradient", &dx, &x64, &|x| loss(x, &w, b.as_deref()));
            check("weight gradient", &dw, &w, &|w| loss(&x64, w, b.as_deref()));
            if let Some(b) = &b {
                check("bias gradient", &db, b, &|b| loss(&x64, &w, Some(b)));
            }
        }
    }

    /// Layers too big for the finite differences: a stride-1 layer on padded planes of 42 x 42, and
    /// layers whose im2col matrix spans several tiles (of [`TILE_FLOATS`]): 6 output rows then 1;
    /// 17, 17 and 6; the transposed layer's one tile of 20 rows.
    fn large_cases() -> Vec<Case> {
        use PaddingConfig2d::*;
        vec![
            conv("planes: 3x3 on a large map", [2, 16, 40, 40], 8, [3, 3], 1, Explicit(1, 1, 1, 1), true),
            conv("tiled 3x3 on a small map", [2, 256, 7, 7], 4, [3, 3], 1, Explicit(1, 1, 1, 1), true),
            conv("tiled 3x3 stride 2", [2, 32, 80, 40], 4, [3, 3], 2, Explicit(1, 1, 1, 1), true),
            transposed("tiled transposed", [2, 16, 20, 20], 8, [4, 2, 1, 0], true),
        ]
    }

    /// genlab's convolutions give burn's values and gradients (to float32 rounding: 1e-5, and 1e-4
    /// for the large layers' sums of thousands of products taken in another order), and the same
    /// bits on one thread as on two.
    #[test]
    fn equal_burns_convolutions_on_any_number_of_threads() {
        let large = large_cases().into_iter().map(|c| (c, 1e-4));
        for (c, tol) in cases().into_iter().map(|c| (c, 1e-5)).chain(large) {
            let (x, r) = c.inputs(4);
            let ours = c.run(&x, &r, true);
            let burns = c.run(&x, &r, false);
            let parts = ["output", "input gradient", "weight gradient", "bias gradient"];
            for (what, (a, b)) in parts.iter().zip(ours.iter().zip(&burns)) {
                assert_eq!(a.len(), b.len(), "{}: {what}", c.name);
                for (i, (a, b)) in a.iter().zip(b).enumerate() {
                    assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{}: {what}[{i}]: {a} vs burn's {b}", c.name);
                }
            }
            let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().expect("a thread pool");
            let one = pool(1).install(|| c.run(&x, &r, true));
            let two = pool(2).install(|| c.run(&x, &r, true));
            assert_eq!(one, two, "{}: one thread and two differ", c.name);
            assert_eq!(one, ours, "{}: two runs differ", c.name);
        }
    }

    /// A convolution genlab does not cover (groups 2) is burn's.
    #[test]
    fn grouped_convolutions_are_burns() {
        let device = Device::flex();
        let layer = Conv2dConfig::new([4, 4], [3, 3]).with_groups(2).init(&device);
        let v = SeededRng::new(1).symmetric_uniform_vec(64, 1.0);
        let x = Tensor::<4>::from_data(TensorData::new(v, [1, 4, 4, 4]), &device);
        assert_eq!(vec32(conv2d(&layer, x.clone())), vec32(layer.forward(x)));
    }
}
