//! Pillow's resampling weights (`precompute_coeffs` in libImaging/Resample.c), the one home of
//! the kernels and windows that the FID protocols (clean-fid's bicubic) and the `[post]` resize
//! steps share: for each output sample, the first input sample it reads and the normalised
//! kernel weights, the kernel widened by the downscaling factor (Pillow's antialiasing).

/// A resampling kernel, as Pillow names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// The triangle (support 1).
    Bilinear,
    /// Keys' cubic with a = -0.5 (support 2).
    Bicubic,
    /// Lanczos with three lobes (support 3).
    Lanczos3,
}

impl Kernel {
    fn support(self) -> f64 {
        match self {
            Kernel::Bilinear => 1.0,
            Kernel::Bicubic => 2.0,
            Kernel::Lanczos3 => 3.0,
        }
    }

    /// The kernel's value at `x`.
    pub fn at(self, x: f64) -> f64 {
        match self {
            Kernel::Bilinear => (1.0 - x.abs()).max(0.0),
            Kernel::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Kernel::Lanczos3 => {
                let sinc =
                    |x: f64| if x == 0.0 { 1.0 } else { (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x) };
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

/// The weights of resampling `input` samples to `output`: `(first input sample, weights)` per
/// output sample, each set summing to 1 (unless all zero).
pub fn pillow_weights(input: usize, output: usize, kernel: Kernel) -> Vec<(usize, Vec<f64>)> {
    let scale = input as f64 / output as f64;
    let filter_scale = scale.max(1.0);
    let support = kernel.support() * filter_scale;
    // Pillow multiplies by the reciprocal (dividing differs in the last bit).
    let inv = 1.0 / filter_scale;
    (0..output)
        .map(|o| {
            let centre = (o as f64 + 0.5) * scale;
            // C's truncation towards zero, as Pillow computes the window.
            let first = ((centre - support + 0.5) as isize).max(0) as usize;
            let last = ((centre + support + 0.5) as isize).min(input as isize) as usize;
            let mut k: Vec<f64> = (first..last).map(|x| kernel.at((x as f64 - centre + 0.5) * inv)).collect();
            let total: f64 = k.iter().sum();
            if total != 0.0 {
                k.iter_mut().for_each(|v| *v /= total);
            }
            (first, k)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_stay_inside() {
        for kernel in [Kernel::Bilinear, Kernel::Bicubic, Kernel::Lanczos3] {
            for (i, o) in [(28, 56), (28, 21), (299, 28), (5, 5)] {
                for (first, k) in pillow_weights(i, o, kernel) {
                    assert!(first + k.len() <= i);
                    assert!((k.iter().sum::<f64>() - 1.0).abs() < 1e-12);
                }
            }
        }
        assert_eq!(Kernel::Bicubic.at(0.0), 1.0);
        assert!(Kernel::Lanczos3.at(1.0).abs() < 1e-15);
    }
}
