//! How images reach the FID Inception, named after the implementation each protocol reproduces,
//! so a number says which reference it is comparable with (each checked against fixtures made by
//! that package, `tests/fixtures/protocols/`):
//! - `pytorch-fid` (Seitzinger's pytorch-fid 0.3): pixels / 255, PyTorch's bilinear resize
//!   without antialiasing (`F.interpolate(..., align_corners=False)`), then `2x - 1`.
//! - `torch-fidelity` (Obukhov et al., 0.4): pixels as floats in [0, 255], TensorFlow 1.x's
//!   bilinear resize (source coordinate `dst * in / out`, no half-pixel offset), then
//!   `(x - 128) / 128`.
//! - `clean-fid` (Parmar et al. 2022, <https://arxiv.org/abs/2104.11222>, 0.1.35): Pillow's
//!   antialiased bicubic on float32 planes, clipped to [0, 255], then `(x - 128) / 128`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The preprocessing of a reference FID implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FidProtocol {
    /// pytorch-fid's (the earlier name `legacy` still reads as this).
    #[serde(rename = "pytorch-fid", alias = "legacy")]
    PytorchFid,
    /// torch-fidelity's.
    #[serde(rename = "torch-fidelity")]
    TorchFidelity,
    /// clean-fid's (the earlier name `clean` still reads as this).
    #[serde(rename = "clean-fid", alias = "clean")]
    CleanFid,
}

impl FidProtocol {
    /// The reference package's name.
    pub fn name(self) -> &'static str {
        match self {
            FidProtocol::PytorchFid => "pytorch-fid",
            FidProtocol::TorchFidelity => "torch-fidelity",
            FidProtocol::CleanFid => "clean-fid",
        }
    }

    /// What it does to an image, in a few words.
    pub fn steps(self) -> &'static str {
        match self {
            FidProtocol::PytorchFid => "x / 255, bilinear to 299x299 (align_corners=False, no antialiasing), 2x - 1",
            FidProtocol::TorchFidelity => {
                "bilinear to 299x299 as TensorFlow 1.x (no half-pixel offset), (x - 128) / 128"
            }
            FidProtocol::CleanFid => "Pillow bicubic to 299x299 (antialiased), clipped to [0, 255], (x - 128) / 128",
        }
    }
}

impl fmt::Display for FidProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.steps())
    }
}

/// Pillow's `Image.resize(..., BICUBIC)` of one float32 (`F` mode) plane: a horizontal pass, then a
/// vertical one, each summing in float64 and storing float32.
pub fn resize_bicubic_pil(src: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    use genlab_core::resample::{pillow_weights, Kernel};
    let (cx, cy) = (pillow_weights(w, ow, Kernel::Bicubic), pillow_weights(h, oh, Kernel::Bicubic));
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

/// torch-fidelity's `interpolate_bilinear_2d_like_tensorflow1x` of one `[h, w]` plane, in float32
/// as it computes: source coordinate `float32(dst) * float32(in / out)`, its integer part as the
/// low index, the next one (clamped to the last) as the high index; columns first, then rows.
pub fn resize_bilinear_tf1(src: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let coords = |out: usize, inp: usize| -> Vec<(usize, usize, f32)> {
        let scale = (inp as f64 / out as f64) as f32;
        (0..out)
            .map(|d| {
                let s = d as f32 * scale;
                let lo = (s as usize).min(inp - 1);
                (lo, (lo + 1).min(inp - 1), s - lo as f32)
            })
            .collect()
    };
    let (ys, xs) = (coords(oh, h), coords(ow, w));
    let mut out = Vec::with_capacity(oh * ow);
    for &(y0, y1, dy) in &ys {
        for &(x0, x1, dx) in &xs {
            let (a, b) = (src[y0 * w + x0], src[y0 * w + x1]);
            let (c, d) = (src[y1 * w + x0], src[y1 * w + x1]);
            let top = a + (b - a) * dx;
            let bottom = c + (d - c) * dx;
            out.push(top + (bottom - top) * dy);
        }
    }
    out
}

/// 8-bit-range images `[n, c, h, w]` (c = 1 or 3) to the Inception's input `[n, 3, 299, 299]` as
/// `protocol`'s reference does it; gray is replicated to RGB first (as each reference's
/// `convert('RGB')` does).
pub fn inception_input(pixels: &[f32], n: usize, c: usize, h: usize, w: usize, protocol: FidProtocol) -> Vec<f32> {
    const S: usize = 299;
    let mut out = Vec::with_capacity(n * 3 * S * S);
    for i in 0..n {
        for k in 0..3 {
            let ch = if c == 3 { k } else { 0 };
            let plane = &pixels[((i * c) + ch) * h * w..((i * c) + ch + 1) * h * w];
            match protocol {
                FidProtocol::PytorchFid => {
                    let unit: Vec<f32> = plane.iter().map(|&v| v / 255.0).collect();
                    out.extend(resize_bilinear(&unit, h, w, S, S).into_iter().map(|v| 2.0 * v - 1.0));
                }
                FidProtocol::TorchFidelity => {
                    out.extend(resize_bilinear_tf1(plane, h, w, S, S).into_iter().map(|v| (v - 128.0) / 128.0));
                }
                FidProtocol::CleanFid => out.extend(
                    resize_bicubic_pil(plane, h, w, S, S).into_iter().map(|v| (v.clamp(0.0, 255.0) - 128.0) / 128.0),
                ),
            }
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

    /// torch-fidelity's resize of the same 2x2 plane to 3x3: coordinates 0, 2/3, 4/3 (the last
    /// clamped), so the corner pixel is reached only by clamping, unlike PyTorch's.
    #[test]
    fn tf1_bilinear_has_no_half_pixel_offset() {
        let got = resize_bilinear_tf1(&[0.0, 10.0, 20.0, 30.0], 2, 2, 3, 3);
        let third = 10.0 * (2.0f32 / 3.0);
        let want = [0.0, third, 10.0, 2.0 * third, 3.0 * third, 10.0 + 2.0 * third, 20.0, 20.0 + third, 30.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-4, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn protocols_read_and_write_their_reference_names() {
        for (p, name) in [
            (FidProtocol::PytorchFid, "\"pytorch-fid\""),
            (FidProtocol::TorchFidelity, "\"torch-fidelity\""),
            (FidProtocol::CleanFid, "\"clean-fid\""),
        ] {
            assert_eq!(serde_json::to_string(&p).unwrap(), name);
            assert_eq!(serde_json::from_str::<FidProtocol>(name).unwrap(), p);
        }
        assert_eq!(serde_json::from_str::<FidProtocol>("\"legacy\"").unwrap(), FidProtocol::PytorchFid);
        assert_eq!(serde_json::from_str::<FidProtocol>("\"clean\"").unwrap(), FidProtocol::CleanFid);
    }
}
