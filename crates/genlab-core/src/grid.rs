//! Image grids: a batch of images in [0, 1] laid out in rows with a 2-pixel border, written as PNG.

use crate::atomic::temp_sibling;
use crate::error::{CoreError, Result};
use std::path::Path;

/// A batch of images on the host, `[n, channels, height, width]`, values in [0, 1].
#[derive(Debug, Clone)]
pub struct ImageBatch {
    pub data: Vec<f32>,
    pub n: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageBatch {
    pub fn new(data: Vec<f32>, n: usize, channels: usize, height: usize, width: usize) -> Self {
        assert_eq!(data.len(), n * channels * height * width, "image batch length should match its shape");
        ImageBatch { data, n, channels, height, width }
    }

    fn pixel(&self, i: usize, c: usize, y: usize, x: usize) -> u8 {
        let v = self.data[((i * self.channels + c) * self.height + y) * self.width + x];
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// Lays the images out `ncols` to a row and returns RGB pixels (`width * height * 3`).
pub fn grid_rgb(batch: &ImageBatch, ncols: usize) -> (u32, u32, Vec<u8>) {
    const PAD: usize = 2;
    let ncols = ncols.max(1).min(batch.n.max(1));
    let nrows = batch.n.div_ceil(ncols).max(1);
    let gw = ncols * (batch.width + PAD) + PAD;
    let gh = nrows * (batch.height + PAD) + PAD;
    let mut px = vec![255u8; gw * gh * 3];
    for i in 0..batch.n {
        let (r, c) = (i / ncols, i % ncols);
        let (oy, ox) = (PAD + r * (batch.height + PAD), PAD + c * (batch.width + PAD));
        for y in 0..batch.height {
            for x in 0..batch.width {
                let o = ((oy + y) * gw + ox + x) * 3;
                for k in 0..3 {
                    let ch = if batch.channels == 3 { k } else { 0 };
                    px[o + k] = batch.pixel(i, ch, y, x);
                }
            }
        }
    }
    (gw as u32, gh as u32, px)
}

/// Writes the grid as a PNG, atomically.
pub fn save_grid(batch: &ImageBatch, ncols: usize, path: &Path) -> Result<()> {
    let (w, h, px) = grid_rgb(batch, ncols);
    save_rgb_png(w, h, px, path)
}

/// Writes RGB pixels as a PNG, atomically (the image crate picks the format from the extension, so
/// the temporary name keeps `.png`).
pub fn save_rgb_png(w: u32, h: u32, px: Vec<u8>, path: &Path) -> Result<()> {
    let img = image::RgbImage::from_raw(w, h, px).expect("pixel buffer should match width * height * 3");
    let tmp = temp_sibling(path).with_extension("png");
    img.save_with_format(&tmp, image::ImageFormat::Png)
        .map_err(|e| CoreError::Image { path: path.to_path_buf(), reason: e.to_string() })?;
    std::fs::rename(&tmp, path).map_err(CoreError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_places_each_image_in_its_cell() {
        // Three 2x2 gray images with values 0, 0.5, 1 in 2 columns: a 2x2 grid of cells.
        let data: Vec<f32> = [0.0, 0.5, 1.0].iter().flat_map(|&v| [v; 4]).collect();
        let b = ImageBatch::new(data, 3, 1, 2, 2);
        let (w, h, px) = grid_rgb(&b, 2);
        assert_eq!((w, h), (10, 10));
        let at = |x: usize, y: usize| px[(y * 10 + x) * 3];
        assert_eq!(at(2, 2), 0);
        assert_eq!(at(6, 2), 128);
        assert_eq!(at(2, 6), 255);
        assert_eq!(at(0, 0), 255, "border is white");
    }
}
