//! An image dataset held in memory as bytes `[n, channels, height, width]`, with optional labels.

use crate::error::{DataError, Result};
use crate::idx::read_idx;
use std::path::Path;

/// Images (and labels, when the source has them) of one split.
#[derive(Debug, Clone)]
pub struct ImageSet {
    pub name: String,
    pub pixels: Vec<u8>,
    pub n: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub labels: Option<Vec<u32>>,
    pub class_names: Vec<String>,
}

/// A batch on the host: pixel values as f32 (0..=255 until a scale transform), `[n, c, h, w]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledBatch {
    pub data: Vec<f32>,
    pub labels: Option<Vec<u32>>,
    pub n: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageSet {
    /// Reads an IDX image file (`[n, h, w]` gray or `[n, h, w, 3]` RGB) and an optional label file.
    pub fn from_idx(name: &str, images: &Path, labels: Option<&Path>) -> Result<Self> {
        let arr = read_idx(images)?;
        let dims = arr.dims.clone();
        let (n, h, w, c) = match dims[..] {
            [n, h, w] => (n, h, w, 1),
            [n, h, w, c @ (1 | 3)] => (n, h, w, c),
            _ => {
                return Err(DataError::Idx {
                    path: images.to_path_buf(),
                    reason: format!(
                        "image dimensions {dims:?}, expected [n, height, width] or [n, height, width, 1|3]"
                    ),
                })
            }
        };
        let hwc = arr.into_u8(images)?;
        // IDX stores channels last; genlab keeps channels first, as the networks consume them.
        let pixels = if c == 1 { hwc } else { hwc_to_chw(&hwc, n, h, w, c) };
        let labels = match labels {
            None => None,
            Some(lp) => {
                let la = read_idx(lp)?;
                if la.dims.len() != 1 || la.dims[0] != n {
                    return Err(DataError::Idx {
                        path: lp.to_path_buf(),
                        reason: format!("label dimensions {:?}, expected [{n}] to match {}", la.dims, images.display()),
                    });
                }
                Some(la.into_u8(lp)?.into_iter().map(u32::from).collect::<Vec<_>>())
            }
        };
        let classes = labels.as_ref().map_or(0, |l| l.iter().max().map_or(0, |&m| m as usize + 1));
        Ok(ImageSet {
            name: name.to_string(),
            pixels,
            n,
            channels: c,
            height: h,
            width: w,
            labels,
            class_names: (0..classes).map(|i| i.to_string()).collect(),
        })
    }

    /// Pixels in one image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// The images at `indices`, as f32 pixel values.
    pub fn batch(&self, indices: &[usize]) -> LabelledBatch {
        let len = self.image_len();
        let mut data = Vec::with_capacity(indices.len() * len);
        for &i in indices {
            data.extend(self.pixels[i * len..(i + 1) * len].iter().map(|&p| p as f32));
        }
        LabelledBatch {
            data,
            labels: self.labels.as_ref().map(|l| indices.iter().map(|&i| l[i]).collect()),
            n: indices.len(),
            channels: self.channels,
            height: self.height,
            width: self.width,
        }
    }

    /// A copy with every image resized to `height x width` (bilinear, as torchvision's default).
    pub fn resized(&self, height: usize, width: usize) -> ImageSet {
        if (height, width) == (self.height, self.width) {
            return self.clone();
        }
        let len = self.image_len();
        let mut pixels = Vec::with_capacity(self.n * self.channels * height * width);
        for i in 0..self.n {
            pixels.extend(resize_chw(
                &self.pixels[i * len..(i + 1) * len],
                self.channels,
                self.height,
                self.width,
                height,
                width,
            ));
        }
        ImageSet { pixels, height, width, ..self.clone() }
    }
}

fn hwc_to_chw(hwc: &[u8], n: usize, h: usize, w: usize, c: usize) -> Vec<u8> {
    let mut out = vec![0u8; hwc.len()];
    for i in 0..n {
        for y in 0..h {
            for x in 0..w {
                for k in 0..c {
                    out[((i * c + k) * h + y) * w + x] = hwc[((i * h + y) * w + x) * c + k];
                }
            }
        }
    }
    out
}

/// Bilinear resize of one `[c, h, w]` byte image (image crate's triangle filter, per channel).
pub(crate) fn resize_chw(px: &[u8], c: usize, h: usize, w: usize, nh: usize, nw: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(c * nh * nw);
    for k in 0..c {
        let plane = image::GrayImage::from_raw(w as u32, h as u32, px[k * h * w..(k + 1) * h * w].to_vec())
            .expect("plane length should be h * w");
        let r = image::imageops::resize(&plane, nw as u32, nh as u32, image::imageops::FilterType::Triangle);
        out.extend_from_slice(r.as_raw());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::encode_idx_u8;

    #[test]
    fn reads_rgb_idx_channels_first_with_labels() {
        let dir = tempfile::tempdir().unwrap();
        // 2 images, 1x2 pixels, 3 channels, stored channels last.
        let hwc: Vec<u8> = (0..12).collect();
        std::fs::write(dir.path().join("i"), encode_idx_u8(&[2, 1, 2, 3], &hwc)).unwrap();
        std::fs::write(dir.path().join("l"), encode_idx_u8(&[2], &[4, 1])).unwrap();
        let s = ImageSet::from_idx("t", &dir.path().join("i"), Some(&dir.path().join("l"))).unwrap();
        assert_eq!((s.n, s.channels, s.height, s.width), (2, 3, 1, 2));
        // image 0, channel 1 = bytes 1 and 4 of its pixels
        assert_eq!(&s.pixels[2..4], &[1, 4]);
        let b = s.batch(&[1]);
        assert_eq!(b.labels, Some(vec![1]));
        assert_eq!(b.data[0], 6.0);
        assert_eq!(s.class_names.len(), 5);
        std::fs::write(dir.path().join("l"), encode_idx_u8(&[3], &[4, 1, 0])).unwrap();
        let e = ImageSet::from_idx("t", &dir.path().join("i"), Some(&dir.path().join("l"))).unwrap_err();
        assert!(e.to_string().contains("expected [2]"), "{e}");
    }

    #[test]
    fn resize_keeps_a_constant_image_constant() {
        let s = ImageSet {
            name: "c".into(),
            pixels: vec![77; 2 * 4 * 4],
            n: 2,
            channels: 1,
            height: 4,
            width: 4,
            labels: None,
            class_names: vec![],
        };
        let r = s.resized(7, 3);
        assert_eq!((r.height, r.width, r.pixels.len()), (7, 3, 42));
        assert!(r.pixels.iter().all(|&p| p == 77));
    }
}
