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

/// Rows of `cols` images of `a` alternating with the same images of `b` (originals over their
/// reconstructions); whole rows only, so a row of `a` always sits over its row of `b`.
pub fn alternate_rows(a: &ImageBatch, b: &ImageBatch, cols: usize) -> ImageBatch {
    let len = a.channels * a.height * a.width;
    let rows = a.n.min(b.n) / cols.max(1);
    let mut data = Vec::with_capacity(2 * rows * cols * len);
    for row in 0..rows {
        let (s, e) = (row * cols * len, (row + 1) * cols * len);
        data.extend_from_slice(&a.data[s..e]);
        data.extend_from_slice(&b.data[s..e]);
    }
    ImageBatch::new(data, 2 * rows * cols, a.channels, a.height, a.width)
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

/// Writes each image as its own PNG, `{first + i:06}.png` in `dir` (gray or RGB as the batch is),
/// each atomically.
pub fn save_images(batch: &ImageBatch, first: usize, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(CoreError::io(dir))?;
    let plane = batch.height * batch.width;
    for i in 0..batch.n {
        let path = dir.join(format!("{:06}.png", first + i));
        let px = |c: usize, p: usize| batch.pixel(i, c, p / batch.width, p % batch.width);
        let (w, h) = (batch.width as u32, batch.height as u32);
        let tmp = temp_sibling(&path).with_extension("png");
        let saved = if batch.channels == 3 {
            let data = (0..plane).flat_map(|p| [px(0, p), px(1, p), px(2, p)]).collect();
            image::RgbImage::from_raw(w, h, data)
                .expect("length matches")
                .save_with_format(&tmp, image::ImageFormat::Png)
        } else {
            let data = (0..plane).map(|p| px(0, p)).collect();
            image::GrayImage::from_raw(w, h, data)
                .expect("length matches")
                .save_with_format(&tmp, image::ImageFormat::Png)
        };
        saved.map_err(|e| CoreError::Image { path: path.clone(), reason: e.to_string() })?;
        std::fs::rename(&tmp, &path).map_err(CoreError::io(&path))?;
    }
    Ok(())
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

    #[test]
    fn images_are_written_one_file_each() {
        let d = std::env::temp_dir().join(format!("genlab-images-{}", std::process::id()));
        let b = ImageBatch::new(vec![0.0, 1.0, 0.5, 0.25], 2, 1, 1, 2);
        save_images(&b, 10, &d).unwrap();
        let img = image::open(d.join("000011.png")).unwrap().to_luma8();
        assert_eq!(img.as_raw(), &vec![128, 64]);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
