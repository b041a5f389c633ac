//! What genlab's own flex operations ([`crate::conv`], [`crate::fused_lstm`], [`crate::gelu`],
//! [`crate::activation`], [`crate::group_norm`], [`crate::resample`], [`crate::fused_attention`]) share:
//! where they run, reading a flex tensor's values, whether the CPU has the AVX-512 their fast paths are
//! compiled for, an `exp` they vectorise, outputs written without zero-filling or on both threads, and
//! matrix products on strided views.

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Device, Shape, TensorData};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Whether genlab's flex operations run on `device` for tensors of `dtype`: flex (with or without
/// autodiff) and f32; elsewhere callers take burn's composed path.
pub fn on_flex_f32(device: &Device, dtype: DType) -> bool {
    use burn::backend::DispatchDevice;
    #[allow(unreachable_patterns)] // other backends' variants exist with their features
    let flex = match device.as_dispatch() {
        DispatchDevice::Flex(_) => true,
        DispatchDevice::Autodiff(a) => matches!(a.clone().inner(), DispatchDevice::Flex(_)),
        _ => false,
    };
    flex && dtype == DType::F32
}

/// A contiguous f32 tensor's elements.
pub(crate) fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("genlab's flex operations read contiguous f32 tensors")
}

/// A flex tensor of `shape` holding `values`.
pub(crate) fn tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Whether the CPU has AVX-512F and FMA, the features the operations' fast loops are compiled for.
pub(crate) fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `exp(x)` for f32 by range reduction and Cephes' degree-5 polynomial (within 2 ulp of `f32::exp` over
/// the range where neither overflows nor underflows to zero), written so the compiler vectorises it.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    // Cephes' expf polynomial (minimax on [-ln 2 / 2, ln 2 / 2]).
    let q = 1.987_569_1e-4;
    let q = q * r + 1.398_199_9e-3;
    let q = q * r + 8.333_452e-3;
    let q = q * r + 4.166_579_6e-2;
    let q = q * r + 1.666_666_5e-1;
    let q = q * r + 0.5;
    let p = q * r * r + r + 1.0;
    // 2^n built from n + 127 (in 1..=254) read out of the mantissa of 1.5 2^23 + n + 127: a float's
    // bits rather than `n as i32`, whose saturating conversion the compiler leaves scalar.
    let biased = (n + (12_582_912.0 + 127.0)).to_bits().wrapping_sub(0x4B40_0000);
    p * f32::from_bits(biased << 23)
}

/// `1 / (1 + exp(-x))` through [`exp`] (which saturates at `exp(88)`, where the sigmoid is 0 to
/// float32 precision).
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `sum f(a[i], b[i])` in 16 running sums (a float sum in one runs at the adder's latency; in 16
/// it vectorises), added in a fixed order.
#[inline(always)]
pub(crate) fn lane_sum<T: Copy + Into<f64>>(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> T) -> f64 {
    let mut lanes = [0.0f64; 16];
    let split = a.len().min(b.len()) / 16 * 16;
    for (ca, cb) in a[..split].chunks_exact(16).zip(b[..split].chunks_exact(16)) {
        for l in 0..16 {
            lanes[l] += f(ca[l], cb[l]).into();
        }
    }
    let tail: f64 = a[split..].iter().zip(&b[split..]).map(|(&x, &y)| f(x, y).into()).sum();
    lanes.iter().sum::<f64>() + tail
}

/// `n` floats, every one written by `fill`, which is handed them uninitialised: zeroing them first,
/// as `vec![0.0; n]` does, cost 4-9% of the UNet's convolution and normalisation layers.
///
/// # Safety
/// `fill` must write every element of the slice it is given. (Test builds fill the slice with NaN
/// first, so an element left unwritten shows in the tests' comparisons.)
pub(crate) unsafe fn written(n: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut v = Vec::with_capacity(n);
    let spare = &mut v.spare_capacity_mut()[..n];
    #[cfg(test)]
    spare.fill(MaybeUninit::new(f32::NAN));
    fill(spare);
    // SAFETY: the capacity is n, and the caller's `fill` wrote every one of the n elements.
    unsafe { v.set_len(n) };
    v
}

/// Elements one thread takes at a time in genlab's element-wise operations (flex runs its own on one
/// thread below 4M elements).
pub(crate) const ELEMENTS_PER_TASK: usize = 16 * 1024;

/// `n` floats made [`ELEMENTS_PER_TASK`] at a time on the threads: `fill(start, chunk)` writes the
/// chunk beginning at element `start`, handed to it zeroed (by its own thread, just before).
pub(crate) fn par_filled(n: usize, fill: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let one = |(i, chunk): (usize, &mut [MaybeUninit<f32>])| {
        for v in chunk.iter_mut() {
            v.write(0.0);
        }
        // SAFETY: every element of the chunk was written just above.
        let chunk = unsafe { &mut *(chunk as *mut [MaybeUninit<f32>] as *mut [f32]) };
        fill(i * ELEMENTS_PER_TASK, chunk)
    };
    let chunks = |out: &mut [MaybeUninit<f32>]| match n <= ELEMENTS_PER_TASK {
        // One chunk (a decoding step's activations): on the calling thread.
        true => one((0, out)),
        false => out.par_chunks_mut(ELEMENTS_PER_TASK).enumerate().for_each(one),
    };
    // SAFETY: every chunk is written (zeroed) before `fill` sees it.
    unsafe { written(n, chunks) }
}

/// The `rows` x `cols` row-major matrix `m`, transposed.
pub(crate) fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; rows * cols];
    for (r, row) in m.chunks(cols).enumerate().take(rows) {
        for (c, &v) in row.iter().enumerate() {
            t[c * rows + r] = v;
        }
    }
    t
}

/// A row-major matrix view: element (r, c) at `data[offset + r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> View<'a> {
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        View { data, offset: 0, rs: cols, cs: 1 }
    }

    /// The greatest index read for an `m` x `n` matrix, checked against the data.
    fn check(&self, m: usize, n: usize) {
        if m > 0 && n > 0 {
            let last = self.offset + (m - 1) * self.rs + (n - 1) * self.cs;
            assert!(last < self.data.len(), "matrix view out of bounds: {last} >= {}", self.data.len());
        }
    }
}

/// `dst (m x n, row-major) = (dst if accumulate) + lhs (m x k) rhs (k x n)`, by the gemm crate (the
/// kernels flex's own matrix products use), on the calling thread.
pub(crate) fn matmul(dst: &mut [f32], accumulate: bool, lhs: View, rhs: View, m: usize, n: usize, k: usize) {
    matmul_on((dst, n, 1), accumulate, lhs, rhs, [m, n, k], gemm::Parallelism::None)
}

/// [`matmul`] of `[m, n, k]` into `dst` with element (i, j) at `i dst_rs + j dst_cs` (row- or
/// column-major, rows or columns possibly apart), on the threads `parallelism` names.
pub(crate) fn matmul_on(
    (dst, dst_rs, dst_cs): (&mut [f32], usize, usize),
    accumulate: bool,
    lhs: View,
    rhs: View,
    [m, n, k]: [usize; 3],
    parallelism: gemm::Parallelism,
) {
    lhs.check(m, k);
    rhs.check(k, n);
    if m > 0 && n > 0 {
        let disjoint = dst_rs >= n * dst_cs || dst_cs >= m * dst_rs;
        assert!(disjoint && (m - 1) * dst_rs + (n - 1) * dst_cs < dst.len(), "matmul destination out of bounds");
    }
    // SAFETY: every index the product reads or writes was checked above to lie in its slice, no two
    // destination elements share an index, the destination is borrowed mutably and does not alias
    // the operands.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr().add(lhs.offset),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr().add(rhs.offset),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    /// The polynomial exp within 2 ulp of the library's.
    #[test]
    fn exp_matches_the_library() {
        for i in -86_000..=87_000 {
            let x = i as f32 * 1e-3;
            let (got, want) = (super::exp(x), x.exp());
            assert!((got - want).abs() <= 2.0 * f32::EPSILON * want, "exp({x}): {got} vs {want}");
        }
    }
}
