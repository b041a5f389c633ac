//! How images reach a feature network, named so a result can say which protocol made it.
//! `legacy`: bilinear resize without antialiasing (`F.interpolate(..., mode="bilinear",
//! align_corners=False)`, as pytorch-fid does). `clean`: Pillow's antialiased bicubic on float32
//! planes, clipped to [0, 255], as clean-fid does (Parmar et al. 2022,
//! <https://arxiv.org/abs/2104.11222>).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeProtocol {
    Legacy,
    Clean,
}

/// Pillow's bicubic kernel (a = -0.5).
fn bicubic(x: f64) -> f64 {
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

/// Pillow's resampling weights for one axis (`precompute_coeffs` in libImaging/Resample.c): the
/// kernel widens by the downscaling factor, which is the antialiasing.
fn pil_coefficients(inp: usize, out: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = inp as f64 / out as f64;
    let filter_scale = scale.max(1.0);
    let support = 2.0 * filter_scale;
    (0..out)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            let lo = ((center - support + 0.5) as isize).max(0) as usize;
            let hi = ((center + support + 0.5) as isize).min(inp as isize) as usize;
            let mut k: Vec<f64> = (lo..hi).map(|x| bicubic((x as f64 - center + 0.5) / filter_scale)).collect();
            let total: f64 = k.iter().sum();
            if total != 0.0 {
                k.iter_mut().for_each(|v| *v /= total);
            }
            (lo, k)
        })
        .collect()
}

/// Pillow's `Image.resize(..., BICUBIC)` of one float32 (`F` mode) plane: a horizontal pass, then a
/// vertical one, each summing in float64 and storing float32.
pub fn resize_bicubic_pil(src: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let (cx, cy) = (pil_coefficients(w, ow), pil_coefficients(h, oh));
    let mut mid = vec![0f32; h * ow];
    for y in 0..h {
        for (x, (lo, k)) in cx.iter().enumerate() {
            mid[y * ow + x] = k.iter().enumerate().map(|(i, kv)| src[y * w + lo + i] as f64 * kv).sum::<f64>() as f32;
        }
    }
    let mut out = vec![0f32; oh * ow];
    for (y, (lo, k)) in cy.iter().enumerate() {
        for x in 0..ow {
            out[y * ow + x] =
                k.iter().enumerate().map(|(i, kv)| mid[(lo + i) * ow + x] as f64 * kv).sum::<f64>() as f32;
        }
    }
    out
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
/// gray replicated to RGB, resized by `protocol` (`clean` clips to [0, 255] as clean-fid), then
/// `(x - 128) / 128`.
pub fn inception_input(pixels: &[f32], n: usize, c: usize, h: usize, w: usize, protocol: ResizeProtocol) -> Vec<f32> {
    const S: usize = 299;
    let mut out = Vec::with_capacity(n * 3 * S * S);
    for i in 0..n {
        for k in 0..3 {
            let ch = if c == 3 { k } else { 0 };
            let plane = &pixels[((i * c) + ch) * h * w..((i * c) + ch + 1) * h * w];
            let resized = match protocol {
                ResizeProtocol::Legacy => resize_bilinear(plane, h, w, S, S),
                ResizeProtocol::Clean => {
                    resize_bicubic_pil(plane, h, w, S, S).into_iter().map(|v| v.clamp(0.0, 255.0)).collect()
                }
            };
            out.extend(resized.into_iter().map(|v| (v - 128.0) / 128.0));
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
