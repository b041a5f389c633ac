//! Images in and out of the API: generated images as PNG files (one, or a grid) and base64, and
//! a request's partial image and mask from base64 PNG files.

use crate::api::PartialBody;
use crate::error::{ApiError, ApiResult};
use base64::Engine;
use genlab_pipeline::generate::{Images, PartialInput};

/// A base64 PNG pair as the pipeline's partial input.
pub fn partial_input(p: &PartialBody) -> ApiResult<PartialInput> {
    let decode = |field: &str, text: &str| -> ApiResult<Vec<u8>> {
        let text = text.split_once("base64,").map_or(text, |(_, b)| b);
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| ApiError::invalid(field, format!("{field}: not base64: {e}")))
    };
    let image = decode("partial.image", &p.image)?;
    let mask = decode("partial.mask", &p.mask)?;
    PartialInput::from_bytes(&image, &mask, "partial.image", "partial.mask").map_err(|e| {
        let m = e.to_string();
        let field = if m.starts_with("partial.mask") { "partial.mask" } else { "partial.image" };
        ApiError::invalid(field, m)
    })
}

/// Each image as a base64 PNG file.
pub fn pngs(im: &Images) -> Vec<String> {
    let len: usize = im.shape.iter().product();
    (0..im.n)
        .map(|i| base64::engine::general_purpose::STANDARD.encode(png(&im.pixels[i * len..(i + 1) * len], im.shape)))
        .collect()
}

/// One 8-bit image `[c, h, w]` (gray or RGB) as a PNG file.
pub fn png(pixels: &[f32], [c, h, w]: [usize; 3]) -> Vec<u8> {
    let bytes: Vec<u8> = (0..h * w)
        .flat_map(|i| (0..c).map(move |ch| (ch, i)))
        .map(|(ch, i)| pixels[ch * h * w + i].clamp(0.0, 255.0) as u8)
        .collect();
    let color = if c == 1 { image::ExtendedColorType::L8 } else { image::ExtendedColorType::Rgb8 };
    let mut out = Vec::new();
    image::ImageEncoder::write_image(image::codecs::png::PngEncoder::new(&mut out), &bytes, w as u32, h as u32, color)
        .expect("an image of known size encodes as PNG");
    out
}

/// The images side by side in rows of `cols`, 2 pixels apart, as one PNG.
pub fn grid_png(im: &Images, cols: usize) -> Vec<u8> {
    let batch = im.batch();
    let (w, h, rgb) = genlab_core::grid::grid_rgb(&batch, cols.max(1));
    let mut out = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut out),
        &rgb,
        w,
        h,
        image::ExtendedColorType::Rgb8,
    )
    .expect("a grid encodes as PNG");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_png_round_trips_gray_and_rgb() {
        let gray: Vec<f32> = (0..6).map(|v| v as f32 * 40.0).collect();
        let back = image::load_from_memory(&png(&gray, [1, 2, 3])).unwrap().to_luma8();
        assert_eq!((back.width(), back.height()), (3, 2));
        assert_eq!(back.as_raw().iter().map(|&v| v as f32).collect::<Vec<_>>(), gray);
        // Planar [c, h, w] in, interleaved RGB pixels out.
        let rgb: Vec<f32> = vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0];
        let back = image::load_from_memory(&png(&rgb, [3, 1, 2])).unwrap().to_rgb8();
        assert_eq!(back.as_raw(), &[10, 30, 50, 20, 40, 60]);
    }
}
