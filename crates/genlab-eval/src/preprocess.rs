//! How images reach a feature network, named so a result can say which protocol made it.
//! `legacy`: bilinear resize without antialiasing (`F.interpolate(..., mode="bilinear",
//! align_corners=False)`, as pytorch-fid does). `clean` (clean-fid's antialiased bicubic) is not
//! built yet.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeProtocol {
    Legacy,
}

/// Bilinear resize of one `[h, w]` plane as PyTorch's `upsample_bilinear2d` with
/// `align_corners=False`: source coordinate `(dst + 0.5) * in / out - 0.5`, clamped at 0.
pub fn resize_bilinear(src: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let coords = |out: usize, inp: usize| -> Vec<(usize, usize, f32)> {
        let scale = inp as f32 / out as f32;
        (0..out)
            .map(|d| {
                let s = ((d as f32 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (s as usize).min(inp - 1);
                let i1 = if i0 < inp - 1 { i0 + 1 } else { i0 };
                (i0, i1, s - i0 as f32)
            })
            .collect()
    };
    let (ys, xs) = (coords(oh, h), coords(ow, w));
    let mut out = Vec::with_capacity(oh * ow);
    for &(y0, y1, ly) in &ys {
        for &(x0, x1, lx) in &xs {
            let top = (1.0 - lx) * src[y0 * w + x0] + lx * src[y0 * w + x1];
            let bottom = (1.0 - lx) * src[y1 * w + x0] + lx * src[y1 * w + x1];
            out.push((1.0 - ly) * top + ly * bottom);
        }
    }
    out
}

/// 8-bit-range images `[n, c, h, w]` (c = 1 or 3) to the Inception's input `[n, 3, 299, 299]`:
/// gray replicated to RGB, resized by `protocol`, then `(x - 128) / 128`.
pub fn inception_input(pixels: &[f32], n: usize, c: usize, h: usize, w: usize, protocol: ResizeProtocol) -> Vec<f32> {
    const S: usize = 299;
    let ResizeProtocol::Legacy = protocol;
    let mut out = Vec::with_capacity(n * 3 * S * S);
    for i in 0..n {
        for k in 0..3 {
            let ch = if c == 3 { k } else { 0 };
            let plane = &pixels[((i * c) + ch) * h * w..((i * c) + ch + 1) * h * w];
            out.extend(resize_bilinear(plane, h, w, S, S).into_iter().map(|v| (v - 128.0) / 128.0));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from `F.interpolate(torch.tensor([[[[0., 10.], [20., 30.]]]]), size=(3, 3), mode="bilinear", align_corners=False)`.
    #[test]
    fn matches_pytorch_bilinear() {
        let got = resize_bilinear(&[0.0, 10.0, 20.0, 30.0], 2, 2, 3, 3);
        let want = [0.0, 5.0, 10.0, 10.0, 15.0, 20.0, 20.0, 25.0, 30.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?}");
        }
    }
}
