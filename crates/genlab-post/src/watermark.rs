//! An invisible image watermark in the wavelet domain: the `dwtDct` method of the
//! `invisible-watermark` package (the one Stable Diffusion's reference scripts embed), so that
//! each can read the other's marks.
//!
//! The image's one-level Haar transform is taken (of the U channel of OpenCV's YUV for colour
//! images, as the package does; of the grey channel itself for grey images), its approximation band
//! is cut into 4 x 4 blocks, and block `i` carries bit `i mod n` of the key: the block's largest
//! coefficient other than its first is moved to a quarter (bit 0) or three quarters (bit 1) of the
//! way through its step of `scale` (quantisation index modulation; sign kept). A reader finds the
//! same coefficient, reads which half of its step it sits in, and takes each bit's majority over
//! its blocks. The key is 32 bits (8 hexadecimal digits); an image is marked when at least
//! `MATCH_BITS` of them are read back.

use crate::error::{PostError, Result};
use crate::image_ops::Picture;

/// Bits in a key.
pub const KEY_BITS: usize = 32;
/// Bits that must match for an image to count as marked: under chance (each bit a fair coin)
/// `P(at least 28 of 32) = 9.7e-6`.
pub const MATCH_BITS: usize = 28;
/// The package's step for the U channel.
pub const DEFAULT_SCALE: f32 = 36.0;
const BLOCK: usize = 4;
/// Blocks an image must hold: four per key bit (the package asks for 256 x 256 images, 1,024
/// blocks).
pub const MIN_BLOCKS: usize = 4 * KEY_BITS;

/// A 32-bit watermark key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatermarkKey(pub [bool; KEY_BITS]);

impl WatermarkKey {
    /// A key from 8 hexadecimal digits (the package's `bytes` payload, most significant bit first).
    pub fn from_hex(hex: &str) -> Result<WatermarkKey> {
        let bad = |why: &str| PostError::Key { key: hex.to_string(), why: why.to_string() };
        if hex.len() != KEY_BITS / 4 {
            return Err(bad(&format!("{} hexadecimal digits, expected {}", hex.chars().count(), KEY_BITS / 4)));
        }
        let value = u32::from_str_radix(hex, 16).map_err(|_| bad("not hexadecimal (0-9, a-f)"))?;
        let mut bits = [false; KEY_BITS];
        for (i, bit) in bits.iter_mut().enumerate() {
            *bit = value >> (KEY_BITS - 1 - i) & 1 == 1;
        }
        Ok(WatermarkKey(bits))
    }

    pub fn to_hex(&self) -> String {
        let value = self.0.iter().fold(0u32, |v, &b| v << 1 | u32::from(b));
        format!("{value:08x}")
    }
}

/// What a reader found in an image.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The majority bit of each key position.
    pub bits: [bool; KEY_BITS],
    /// Bits equal to the key's, when a key was given.
    pub matching: Option<usize>,
}

impl Reading {
    pub fn bit_accuracy(&self) -> Option<f64> {
        self.matching.map(|m| m as f64 / KEY_BITS as f64)
    }

    pub fn marked(&self) -> Option<bool> {
        self.matching.map(|m| m >= MATCH_BITS)
    }
}

/// Refuses an image too small to carry a key.
pub fn check_size(height: usize, width: usize) -> Result<()> {
    let blocks = (height / 2 / BLOCK) * (width / 2 / BLOCK);
    if blocks < MIN_BLOCKS {
        return Err(PostError::WatermarkSize { height, width, blocks, needed: MIN_BLOCKS });
    }
    Ok(())
}

/// OpenCV's `COLOR_RGB2YUV` in floating point, for one pixel.
fn rgb_to_yuv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    (y, 0.492 * (b - y) + 128.0, 0.877 * (r - y) + 128.0)
}

/// The exact inverse of [`rgb_to_yuv`] (so the channels the mark leaves alone come back as they were).
fn yuv_to_rgb(y: f32, u: f32, v: f32) -> (f32, f32, f32) {
    let r = y + (v - 128.0) / 0.877;
    let b = y + (u - 128.0) / 0.492;
    let g = (y - 0.299 * r - 0.114 * b) / 0.587;
    (r, g, b)
}

/// The plane that carries the mark: U for colour images, the grey channel for grey ones.
fn carrier(image: &Picture) -> Vec<f32> {
    let len = image.height * image.width;
    if image.channels >= 3 {
        (0..len).map(|i| rgb_to_yuv(image.pixels[i], image.pixels[len + i], image.pixels[2 * len + i]).1).collect()
    } else {
        image.pixels[..len].to_vec()
    }
}

/// The approximation band of the one-level Haar transform of the `rows x cols` top-left region
/// (both even): `(a + b + c + d) / 2` of each 2 x 2 square, as PyWavelets' `dwt2(.., 'haar')`.
fn haar_approximation(plane: &[f32], width: usize, rows: usize, cols: usize) -> Vec<f32> {
    let mut band = Vec::with_capacity(rows / 2 * cols / 2);
    for y in (0..rows).step_by(2) {
        for x in (0..cols).step_by(2) {
            let at = |dy: usize, dx: usize| plane[(y + dy) * width + x + dx];
            band.push((at(0, 0) + at(0, 1) + at(1, 0) + at(1, 1)) / 2.0);
        }
    }
    band
}

/// The block's largest coefficient after its first (the first of equals, as `numpy.argmax`).
fn strongest(band: &[f32], band_width: usize, by: usize, bx: usize) -> usize {
    let mut best = (1, f32::NEG_INFINITY);
    for k in 1..BLOCK * BLOCK {
        let v = band[(by * BLOCK + k / BLOCK) * band_width + bx * BLOCK + k % BLOCK].abs();
        if v > best.1 {
            best = (k, v);
        }
    }
    (by * BLOCK + best.0 / BLOCK) * band_width + bx * BLOCK + best.0 % BLOCK
}

/// The largest magnitude in the block other than its first coefficient and `at`.
fn runner_up(band: &[f32], band_width: usize, by: usize, bx: usize, at: usize) -> f32 {
    (1..BLOCK * BLOCK)
        .map(|k| (by * BLOCK + k / BLOCK) * band_width + bx * BLOCK + k % BLOCK)
        .filter(|&i| i != at)
        .map(|i| band[i].abs())
        .fold(0.0, f32::max)
}

/// Where the strongest coefficient of magnitude `value` goes to carry `bit`: the package puts it a
/// quarter (0) or three quarters (1) through its own step, which can leave it below the block's
/// runner-up, so that a reader looks at another coefficient (the package reads its own zeros
/// wrong in about a third of the blocks for that reason). Here it takes the nearest such level, in
/// its step or the next, that stays above the runner-up by a grey level: the same code to any
/// reader of the package's rule, read more reliably.
fn mark_level(value: f32, runner_up: f32, bit: bool, scale: f32) -> f32 {
    let offset = 0.25 + 0.5 * f32::from(u8::from(bit));
    let step = (value / scale).floor();
    let candidates = [(step + offset) * scale, (step + 1.0 + offset) * scale];
    candidates
        .into_iter()
        .filter(|&level| level > runner_up + 1.0)
        .min_by(|a, b| (a - value).abs().total_cmp(&(b - value).abs()))
        .unwrap_or(candidates[1].max(((runner_up / scale).floor() + 1.0 + offset) * scale))
}

/// The image with the key embedded at step `scale` (36 is the package's).
pub fn embed(image: &Picture, key: &WatermarkKey, scale: f32) -> Result<Picture> {
    check_size(image.height, image.width)?;
    let (h, w) = (image.height, image.width);
    let (rows, cols) = (h / (2 * BLOCK) * 2 * BLOCK, w / (2 * BLOCK) * 2 * BLOCK);
    let plane = carrier(image);
    let band = haar_approximation(&plane, w, rows, cols);
    let band_width = cols / 2;
    let mut marked = band.clone();
    let mut block = 0;
    for by in 0..rows / 2 / BLOCK {
        for bx in 0..band_width / BLOCK {
            let at = strongest(&band, band_width, by, bx);
            let bit = key.0[block % KEY_BITS];
            let value = band[at];
            let level = mark_level(value.abs(), runner_up(&band, band_width, by, bx, at), bit, scale);
            marked[at] = if value >= 0.0 { level } else { -level };
            block += 1;
        }
    }
    // Only the approximation band changed: each pixel of a 2 x 2 square moves by half its change.
    let mut plane = plane;
    for y in 0..rows {
        for x in 0..cols {
            let i = (y / 2) * band_width + x / 2;
            plane[y * w + x] += (marked[i] - band[i]) / 2.0;
        }
    }
    let len = h * w;
    let mut pixels = image.pixels.clone();
    if image.channels >= 3 {
        for i in 0..len {
            let (y, _, v) = rgb_to_yuv(pixels[i], pixels[len + i], pixels[2 * len + i]);
            let (r, g, b) = yuv_to_rgb(y, plane[i], v);
            pixels[i] = r;
            pixels[len + i] = g;
            pixels[2 * len + i] = b;
        }
    } else {
        pixels[..len].copy_from_slice(&plane);
    }
    pixels.iter_mut().for_each(|p| *p = p.clamp(0.0, 255.0));
    Ok(Picture::new(image.channels, h, w, pixels))
}

/// Reads the 32 bits an image carries (compared with `key` when given).
pub fn read(image: &Picture, key: Option<&WatermarkKey>, scale: f32) -> Result<Reading> {
    check_size(image.height, image.width)?;
    let (h, w) = (image.height, image.width);
    let (rows, cols) = (h / (2 * BLOCK) * 2 * BLOCK, w / (2 * BLOCK) * 2 * BLOCK);
    let band = haar_approximation(&carrier(image), w, rows, cols);
    let band_width = cols / 2;
    let mut ones = [0usize; KEY_BITS];
    let mut votes = [0usize; KEY_BITS];
    let mut block = 0;
    for by in 0..rows / 2 / BLOCK {
        for bx in 0..band_width / BLOCK {
            let value = band[strongest(&band, band_width, by, bx)].abs();
            if value % scale > 0.5 * scale {
                ones[block % KEY_BITS] += 1;
            }
            votes[block % KEY_BITS] += 1;
            block += 1;
        }
    }
    let mut bits = [false; KEY_BITS];
    for i in 0..KEY_BITS {
        // The package's rule: the mean vote times 255 above 127.
        bits[i] = ones[i] as f64 / votes[i] as f64 * 255.0 > 127.0;
    }
    let matching = key.map(|k| k.0.iter().zip(&bits).filter(|(a, b)| a == b).count());
    Ok(Reading { bits, matching })
}

/// Peak signal-to-noise ratio in dB of `b` against `a`, both rounded to 8 bits.
pub fn psnr(a: &Picture, b: &Picture) -> f64 {
    let mse: f64 = a.to_u8().iter().zip(b.to_u8()).map(|(&x, y)| (x as f64 - y as f64).powi(2)).sum::<f64>()
        / a.pixels.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::path::PathBuf;

    fn fixture_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/watermark")
    }

    fn readings() -> Value {
        let text = std::fs::read_to_string(fixture_dir().join("readings.json")).expect("the fixture should exist");
        serde_json::from_str(&text).expect("the fixture should be JSON")
    }

    fn load(name: &str) -> Picture {
        let rgb = image::open(fixture_dir().join(name)).expect("the fixture image should open").to_rgb8();
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        let mut pixels = vec![0.0f32; 3 * h * w];
        for (x, y, p) in rgb.enumerate_pixels() {
            for c in 0..3 {
                pixels[c * h * w + y as usize * w + x as usize] = f32::from(p[c]);
            }
        }
        Picture::new(3, h, w, pixels)
    }

    fn save(picture: &Picture, name: &str) {
        let (h, w) = (picture.height, picture.width);
        let bytes = picture.to_u8();
        let rgb = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let at = |c: usize| bytes[c * h * w + y as usize * w + x as usize];
            image::Rgb([at(0), at(1), at(2)])
        });
        rgb.save(fixture_dir().join(name)).expect("the fixture image should be written");
    }

    fn rounded(p: &Picture) -> Picture {
        Picture::new(p.channels, p.height, p.width, p.to_u8().into_iter().map(f32::from).collect())
    }

    fn key() -> WatermarkKey {
        WatermarkKey::from_hex(readings()["key"].as_str().unwrap()).unwrap()
    }

    #[test]
    fn keys_are_eight_hex_digits() {
        let key = WatermarkKey::from_hex("6a3f00c1").unwrap();
        assert_eq!(key.to_hex(), "6a3f00c1");
        assert!(key.0[1] && !key.0[0]);
        let err = WatermarkKey::from_hex("6a3f").unwrap_err().to_string();
        assert!(err.contains("6a3f") && err.contains("4 hexadecimal digits, expected 8"), "{err}");
        assert!(WatermarkKey::from_hex("6a3f00zz").unwrap_err().to_string().contains("not hexadecimal"));
    }

    #[test]
    fn small_images_are_refused_with_the_size_they_need() {
        let err = check_size(28, 28).unwrap_err().to_string();
        assert!(err.contains("28x28") && err.contains("9 blocks") && err.contains("128"), "{err}");
        assert!(check_size(96, 96).is_ok());
    }

    /// Writes genlab's mark of the fixture's original, for the package to read
    /// (fixtures/make_watermark_fixture.py).
    #[test]
    #[ignore = "writes the fixture; run once by fixtures/make_watermark_fixture.py's instructions"]
    fn write_genlab_marked_fixture() {
        let marked = embed(&load("original.png"), &key(), DEFAULT_SCALE).unwrap();
        save(&marked, "genlab_marked.png");
    }

    /// The package's mark read by genlab, and genlab's mark as the package read it: every bit, both
    /// ways; the unmarked original is not read as marked by either.
    #[test]
    fn interoperates_with_invisible_watermark() {
        let readings = readings();
        let key = key();
        // genlab reads the package's mark as the package itself does, bit for bit (the package's
        // own zeros are weak: it reads 28 of its 32 bits back).
        let theirs = read(&load("package_marked.png"), Some(&key), DEFAULT_SCALE).unwrap();
        let bits = |field: &str| -> Vec<bool> {
            readings[field].as_array().unwrap().iter().map(|b| b.as_bool().unwrap()).collect()
        };
        assert_eq!(theirs.bits.to_vec(), bits("package_reads_package"));
        assert_eq!(theirs.marked(), Some(true), "{:?} bits", theirs.matching);

        let original = load("original.png");
        let ours = rounded(&embed(&original, &key, DEFAULT_SCALE).unwrap());
        assert_eq!(ours.to_u8(), load("genlab_marked.png").to_u8(), "genlab's mark changed since the package read it");
        assert_eq!(bits("package_reads_genlab"), key.0.to_vec(), "genlab's mark as the package reads it");
        let package_on_original = bits("package_reads_original").iter().zip(key.0).filter(|(a, b)| **a == *b).count();
        assert!(package_on_original < MATCH_BITS, "the package reads {package_on_original} key bits in the original");
        assert!(psnr(&original, &ours) >= 38.0, "PSNR {}", psnr(&original, &ours));
        let no_mark = read(&original, Some(&key), DEFAULT_SCALE).unwrap();
        assert_eq!(no_mark.marked(), Some(false), "the unmarked original: {:?} bits", no_mark.matching);
    }

    #[test]
    fn grey_images_carry_the_mark_in_their_grey_channel() {
        let colour = load("original.png");
        let len = colour.height * colour.width;
        let grey = Picture::new(1, colour.height, colour.width, colour.pixels[len..2 * len].to_vec());
        let key = WatermarkKey::from_hex("0badf00d").unwrap();
        let marked = rounded(&embed(&grey, &key, DEFAULT_SCALE).unwrap());
        assert_eq!(read(&marked, Some(&key), DEFAULT_SCALE).unwrap().matching, Some(KEY_BITS));
        assert!(psnr(&grey, &marked) >= 38.0, "PSNR {}", psnr(&grey, &marked));
        let other = WatermarkKey::from_hex("f00dbad0").unwrap();
        assert_eq!(read(&marked, Some(&other), DEFAULT_SCALE).unwrap().marked(), Some(false));
    }
}
