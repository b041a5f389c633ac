//! Image post-processing steps: smoothing (Gaussian, median, bilateral), unsharp masking, resizing,
//! levels, autocontrast, contrast and binarisation, each with the semantics of the library people
//! compare against (SciPy's `ndimage`, Pillow, OpenCV; fixtures/make_image_fixtures.py).
//!
//! Images stay in floating point from step to step (8-bit range, as genlab's generated samples
//! hold them) and are rounded once, where they are written; only the median works on 8-bit values
//! (a median of rounded values is a rounded value).
//!
//! Built on `imageproc` and `image` where they have the operation with those semantics: the
//! separable filter (replicated borders) carries the Gaussian, the median filter and Otsu's level
//! come from `imageproc`. Two are written here, because the
//! crates' versions are grey levels away from the references: the bilateral filter (`imageproc`
//! 0.27 approximates `exp` and truncates its output; OpenCV uses a round window, mirrored borders
//! and the exact exponential) and resampling (`image` 0.25's cubic and Lanczos resizes are up to
//! 31 grey levels from Pillow's on Fashion-MNIST garments; Pillow filters rows, then columns,
//! clipping each pass).

use crate::error::{PostError, Result};
use genlab_core::resample::{pillow_weights, Kernel};
use image::{GrayImage, ImageBuffer, Luma};
use serde::{Deserialize, Deserializer, Serialize};

/// An image as genlab's samples hold it: `[channels, height, width]`, values in 0..=255.
#[derive(Debug, Clone, PartialEq)]
pub struct Picture {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<f32>,
}

impl Picture {
    pub fn new(channels: usize, height: usize, width: usize, pixels: Vec<f32>) -> Picture {
        assert_eq!(pixels.len(), channels * height * width, "picture length should match its shape");
        Picture { channels, height, width, pixels }
    }

    fn plane(&self, c: usize) -> &[f32] {
        let len = self.height * self.width;
        &self.pixels[c * len..(c + 1) * len]
    }

    /// Each channel through `f` (which may change the plane's size to `height x width`).
    fn map_planes(&self, height: usize, width: usize, mut f: impl FnMut(&[f32]) -> Vec<f32>) -> Picture {
        let mut pixels = Vec::with_capacity(self.channels * height * width);
        for c in 0..self.channels {
            pixels.extend(f(self.plane(c)));
        }
        Picture::new(self.channels, height, width, pixels)
    }

    /// The pixels rounded to 8 bits.
    pub fn to_u8(&self) -> Vec<u8> {
        self.pixels.iter().map(|&v| to_u8(v)).collect()
    }
}

fn to_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// One image step of `[post] image = [...]`, applied in the order listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ImageStep {
    /// Gaussian smoothing of standard deviation `sigma` pixels (SciPy's `gaussian_filter`: the
    /// kernel reaches 4 sigma; borders replicated).
    GaussianBlur { sigma: f32 },
    /// The median of the `(2 radius + 1)^2` window (borders replicated).
    Median { radius: u32 },
    /// Edge-preserving smoothing (Tomasi and Manduchi 1998, as OpenCV's `bilateralFilter`): weights
    /// `exp(-d^2 / 2 sigma_space^2) exp(-|dv|_1^2 / 2 sigma_color^2)` over a round window of
    /// `diameter` pixels, borders mirrored.
    Bilateral { diameter: u32, sigma_color: f32, sigma_space: f32 },
    /// `x + amount (x - gaussian(x, sigma))` where `|x - gaussian(x)| >= threshold` grey levels.
    Unsharp {
        sigma: f32,
        amount: f32,
        #[serde(default)]
        threshold: f32,
    },
    /// Resampling to `height x width` with a kernel scaled to the output when shrinking (Pillow's
    /// `resize`).
    Resize { height: u32, width: u32, filter: ResizeFilter },
    /// Stretch each channel so that the darkest and brightest pixels (after cutting `cutoff`
    /// percent of each end of the histogram) span 0..=255 (Pillow's `ImageOps.autocontrast`).
    Autocontrast {
        #[serde(default)]
        cutoff: f32,
    },
    /// `mean + factor (x - mean)` around the image's mean grey (Pillow's `ImageEnhance.Contrast`).
    Contrast { factor: f32 },
    /// Input levels: `black` and `white` map to 0 and 255, with a midtone `gamma` (>1 brightens).
    Levels {
        black: f32,
        white: f32,
        #[serde(default = "one")]
        gamma: f32,
    },
    /// 255 where a pixel is above the threshold, 0 elsewhere.
    Binarize { threshold: Threshold },
}

fn one() -> f32 {
    1.0
}

/// The resampling kernel of a resize.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeFilter {
    Nearest,
    Bilinear,
    /// Keys' cubic with a = -0.5 (Catmull-Rom), as Pillow's `BICUBIC`.
    Bicubic,
    /// Lanczos with three lobes, as Pillow's `LANCZOS`.
    Lanczos,
}

/// A binarisation level: a grey level, or Otsu's (the one that best separates two classes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    Otsu,
    Level(f32),
}

impl Serialize for Threshold {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Threshold::Otsu => serializer.serialize_str("otsu"),
            Threshold::Level(v) => serializer.serialize_f32(*v),
        }
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Threshold, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Level(f32),
            Name(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Level(v) => Ok(Threshold::Level(v)),
            Raw::Name(name) if name == "otsu" => Ok(Threshold::Otsu),
            Raw::Name(name) => Err(serde::de::Error::custom(format!(
                "threshold `{name}`: expected \"otsu\" or a grey level in 0..=255"
            ))),
        }
    }
}

impl ImageStep {
    /// The step's name as `[post]` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            ImageStep::GaussianBlur { .. } => "gaussian_blur",
            ImageStep::Median { .. } => "median",
            ImageStep::Bilateral { .. } => "bilateral",
            ImageStep::Unsharp { .. } => "unsharp",
            ImageStep::Resize { .. } => "resize",
            ImageStep::Autocontrast { .. } => "autocontrast",
            ImageStep::Contrast { .. } => "contrast",
            ImageStep::Levels { .. } => "levels",
            ImageStep::Binarize { .. } => "binarize",
        }
    }

    /// The step in words, for reports.
    pub fn describe(&self) -> String {
        match *self {
            ImageStep::GaussianBlur { sigma } => format!("Gaussian blur (sigma {sigma})"),
            ImageStep::Median { radius } => format!("median {0}x{0}", 2 * radius + 1),
            ImageStep::Bilateral { diameter, sigma_color, sigma_space } => {
                format!("bilateral (diameter {diameter}, sigma colour {sigma_color}, space {sigma_space})")
            }
            ImageStep::Unsharp { sigma, amount, threshold } => {
                format!("unsharp mask (sigma {sigma}, amount {amount}, threshold {threshold})")
            }
            ImageStep::Resize { height, width, filter } => format!("resize to {height}x{width} ({filter:?})"),
            ImageStep::Autocontrast { cutoff } => format!("autocontrast (cutoff {cutoff}%)"),
            ImageStep::Contrast { factor } => format!("contrast x{factor}"),
            ImageStep::Levels { black, white, gamma } => format!("levels {black}..{white}, gamma {gamma}"),
            ImageStep::Binarize { threshold: Threshold::Otsu } => "binarise at Otsu's level".into(),
            ImageStep::Binarize { threshold: Threshold::Level(v) } => format!("binarise above {v}"),
        }
    }

    /// Refuses values the step cannot use, naming the step and the field.
    pub fn validate(&self) -> Result<()> {
        let step = self.name();
        let bad = |field: &str, value: String, expected: &str| {
            Err(PostError::Step { step: step.into(), field: field.into(), value, expected: expected.into() })
        };
        let positive = |field: &str, v: f32, max: f32| {
            if v.is_finite() && v > 0.0 && v <= max {
                Ok(())
            } else {
                bad(field, v.to_string(), &format!("a number in (0, {max}]"))
            }
        };
        match *self {
            ImageStep::GaussianBlur { sigma } => positive("sigma", sigma, 64.0),
            ImageStep::Median { radius } if !(1..=32).contains(&radius) => {
                bad("radius", radius.to_string(), "1..=32 pixels")
            }
            ImageStep::Median { .. } => Ok(()),
            ImageStep::Bilateral { diameter, sigma_color, sigma_space } => {
                if !(1..=31).contains(&diameter) {
                    return bad("diameter", diameter.to_string(), "1..=31 pixels");
                }
                positive("sigma_color", sigma_color, 1e4)?;
                positive("sigma_space", sigma_space, 1e4)
            }
            ImageStep::Unsharp { sigma, amount, threshold } => {
                positive("sigma", sigma, 64.0)?;
                if !(amount.is_finite() && (0.0..=10.0).contains(&amount)) {
                    return bad("amount", amount.to_string(), "a number in [0, 10]");
                }
                if !(0.0..=255.0).contains(&threshold) {
                    return bad("threshold", threshold.to_string(), "grey levels in [0, 255]");
                }
                Ok(())
            }
            ImageStep::Resize { height, width, .. } => {
                for (field, v) in [("height", height), ("width", width)] {
                    if !(1..=4096).contains(&v) {
                        return bad(field, v.to_string(), "1..=4096 pixels");
                    }
                }
                Ok(())
            }
            ImageStep::Autocontrast { cutoff } if !(0.0..50.0).contains(&cutoff) => {
                bad("cutoff", cutoff.to_string(), "a percentage in [0, 50)")
            }
            ImageStep::Autocontrast { .. } => Ok(()),
            ImageStep::Contrast { factor } if !(factor.is_finite() && (0.0..=100.0).contains(&factor)) => {
                bad("factor", factor.to_string(), "a number in [0, 100]")
            }
            ImageStep::Contrast { .. } => Ok(()),
            ImageStep::Levels { black, white, gamma } => {
                if !(0.0..=255.0).contains(&black) || !(0.0..=255.0).contains(&white) || black >= white {
                    return bad("black/white", format!("{black}/{white}"), "0 <= black < white <= 255");
                }
                positive("gamma", gamma, 10.0)
            }
            ImageStep::Binarize { threshold: Threshold::Level(v) } if !(0.0..=255.0).contains(&v) => {
                bad("threshold", v.to_string(), "\"otsu\" or a grey level in 0..=255")
            }
            ImageStep::Binarize { .. } => Ok(()),
        }
    }

    /// The step applied to one image. Validate first: an invalid step's result is unspecified.
    pub fn apply(&self, image: &Picture) -> Picture {
        if image.pixels.is_empty() {
            return image.clone();
        }
        match *self {
            ImageStep::GaussianBlur { sigma } => gaussian_blur(image, sigma),
            ImageStep::Median { radius } => median(image, radius),
            ImageStep::Bilateral { diameter, sigma_color, sigma_space } => {
                bilateral(image, diameter, sigma_color, sigma_space)
            }
            ImageStep::Unsharp { sigma, amount, threshold } => unsharp(image, sigma, amount, threshold),
            ImageStep::Resize { height, width, filter } => resize(image, height as usize, width as usize, filter),
            ImageStep::Autocontrast { cutoff } => autocontrast(image, cutoff),
            ImageStep::Contrast { factor } => contrast(image, factor),
            ImageStep::Levels { black, white, gamma } => levels(image, black, white, gamma),
            ImageStep::Binarize { threshold } => binarize(image, threshold),
        }
    }
}

/// Every step in order.
pub fn apply_all(steps: &[ImageStep], image: &Picture) -> Picture {
    steps.iter().fold(image.clone(), |acc, step| step.apply(&acc))
}

fn float_plane(plane: &[f32], width: usize, height: usize) -> ImageBuffer<Luma<f32>, Vec<f32>> {
    ImageBuffer::from_raw(width as u32, height as u32, plane.to_vec())
        .expect("a plane should hold width x height values")
}

fn byte_plane(plane: &[f32], width: usize, height: usize) -> GrayImage {
    let bytes = plane.iter().map(|&v| to_u8(v)).collect();
    GrayImage::from_raw(width as u32, height as u32, bytes).expect("a plane should hold width x height values")
}

/// The normalised Gaussian reaching `round(4 sigma)` pixels each side (SciPy's `truncate = 4`).
fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let radius = (4.0 * sigma as f64 + 0.5) as i64;
    let weights: Vec<f64> = (-radius..=radius).map(|i| (-0.5 * (i as f64 / sigma as f64).powi(2)).exp()).collect();
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| (w / total) as f32).collect()
}

fn gaussian_blur(image: &Picture, sigma: f32) -> Picture {
    let kernel = gaussian_kernel(sigma);
    let (h, w) = (image.height, image.width);
    image.map_planes(h, w, |plane| {
        imageproc::filter::separable_filter_equal(&float_plane(plane, w, h), &kernel).into_raw()
    })
}

fn median(image: &Picture, radius: u32) -> Picture {
    let (h, w) = (image.height, image.width);
    image.map_planes(h, w, |plane| {
        let out = imageproc::filter::median_filter(&byte_plane(plane, w, h), radius, radius);
        out.into_raw().into_iter().map(f32::from).collect()
    })
}

/// OpenCV's `BORDER_REFLECT_101`: `dcb|abcd|cba`.
fn reflect101(i: isize, len: usize) -> usize {
    let len = len as isize;
    if len == 1 {
        return 0;
    }
    let period = 2 * (len - 1);
    let i = i.rem_euclid(period);
    (if i < len { i } else { period - i }) as usize
}

fn bilateral(image: &Picture, diameter: u32, sigma_color: f32, sigma_space: f32) -> Picture {
    let (c, h, w) = (image.channels, image.height, image.width);
    let radius = (diameter / 2) as isize;
    let space_coeff = -0.5 / (sigma_space as f64).powi(2);
    let color_coeff = -0.5 / (sigma_color as f64).powi(2);
    // The round window: offsets within `radius` of the centre, with their spatial weights.
    let mut window = Vec::new();
    for dy in -radius..=radius {
        for dx in -radius..=radius {
            let r2 = (dy * dy + dx * dx) as f64;
            if r2.sqrt() <= radius as f64 {
                window.push((dy, dx, (r2 * space_coeff).exp()));
            }
        }
    }
    let len = h * w;
    let mut out = vec![0.0f32; image.pixels.len()];
    let mut sums = vec![0.0f64; c];
    for y in 0..h {
        for x in 0..w {
            let centre = y * w + x;
            sums.iter_mut().for_each(|s| *s = 0.0);
            let mut weight_sum = 0.0f64;
            for &(dy, dx, space) in &window {
                let at = reflect101(y as isize + dy, h) * w + reflect101(x as isize + dx, w);
                // OpenCV's colour distance: the L1 distance over the channels.
                let distance: f64 =
                    (0..c).map(|ch| (image.pixels[ch * len + at] - image.pixels[ch * len + centre]).abs() as f64).sum();
                let weight = space * (distance * distance * color_coeff).exp();
                weight_sum += weight;
                for (ch, s) in sums.iter_mut().enumerate() {
                    *s += weight * image.pixels[ch * len + at] as f64;
                }
            }
            for ch in 0..c {
                out[ch * len + centre] = (sums[ch] / weight_sum) as f32;
            }
        }
    }
    Picture::new(c, h, w, out)
}

fn unsharp(image: &Picture, sigma: f32, amount: f32, threshold: f32) -> Picture {
    let blurred = gaussian_blur(image, sigma);
    let pixels = image
        .pixels
        .iter()
        .zip(&blurred.pixels)
        .map(|(&x, &b)| if (x - b).abs() >= threshold { (x + amount * (x - b)).clamp(0.0, 255.0) } else { x })
        .collect();
    Picture::new(image.channels, image.height, image.width, pixels)
}

fn resize(image: &Picture, height: usize, width: usize, filter: ResizeFilter) -> Picture {
    let (h, w) = (image.height, image.width);
    if filter == ResizeFilter::Nearest {
        let columns = nearest_samples(w, width);
        let rows = nearest_samples(h, height);
        return image.map_planes(height, width, |plane| {
            rows.iter().flat_map(|&y| columns.iter().map(move |&x| plane[y * w + x])).collect()
        });
    }
    let kernel = match filter {
        ResizeFilter::Bilinear => Kernel::Bilinear,
        ResizeFilter::Bicubic => Kernel::Bicubic,
        ResizeFilter::Lanczos | ResizeFilter::Nearest => Kernel::Lanczos3,
    };
    let columns = pillow_weights(w, width, kernel);
    let rows = pillow_weights(h, height, kernel);
    image.map_planes(height, width, |plane| {
        // Rows first, as Pillow does, each pass clipped to the 8-bit range.
        let mut across = vec![0.0f32; h * width];
        for y in 0..h {
            for (x, (first, weights)) in columns.iter().enumerate() {
                let v: f64 = weights.iter().enumerate().map(|(i, k)| k * f64::from(plane[y * w + first + i])).sum();
                across[y * width + x] = (v as f32).clamp(0.0, 255.0);
            }
        }
        let mut out = vec![0.0f32; height * width];
        for (y, (first, weights)) in rows.iter().enumerate() {
            for x in 0..width {
                let v: f64 =
                    weights.iter().enumerate().map(|(i, k)| k * f64::from(across[(first + i) * width + x])).sum();
                out[y * width + x] = (v as f32).clamp(0.0, 255.0);
            }
        }
        out
    })
}

/// The input sample under each output sample's centre, as Pillow finds it: stepping the centre by
/// the scale in double precision (so `4.5 * 28 / 21` lands on 5.999..., sample 5).
fn nearest_samples(input: usize, output: usize) -> Vec<usize> {
    let scale = input as f64 / output as f64;
    let mut centre = 0.5 * scale;
    (0..output)
        .map(|_| {
            let at = (centre as usize).min(input - 1);
            centre += scale;
            at
        })
        .collect()
}

fn histogram(plane: &[f32]) -> [u64; 256] {
    let mut counts = [0u64; 256];
    for &v in plane {
        counts[to_u8(v) as usize] += 1;
    }
    counts
}

/// Pillow's rule: cut `cutoff` percent of the pixels off each end of the histogram, then stretch
/// the darkest and brightest remaining levels to 0 and 255.
fn autocontrast(image: &Picture, cutoff: f32) -> Picture {
    let (h, w) = (image.height, image.width);
    image.map_planes(h, w, |plane| {
        let mut counts = histogram(plane);
        let cut = (plane.len() as f64 * cutoff as f64 / 100.0) as u64;
        for order in [false, true] {
            let mut left = cut;
            let levels: Vec<usize> = if order { (0..256).rev().collect() } else { (0..256).collect() };
            for level in levels {
                let take = left.min(counts[level]);
                counts[level] -= take;
                left -= take;
                if left == 0 {
                    break;
                }
            }
        }
        let lo = counts.iter().position(|&n| n > 0);
        let hi = counts.iter().rposition(|&n| n > 0);
        match (lo, hi) {
            (Some(lo), Some(hi)) if hi > lo => {
                let scale = 255.0 / (hi - lo) as f32;
                plane.iter().map(|&v| ((v - lo as f32) * scale).clamp(0.0, 255.0)).collect()
            }
            _ => plane.to_vec(),
        }
    })
}

/// Pillow's contrast: blend with a flat image at the rounded mean of the luma (ITU-R 601).
fn contrast(image: &Picture, factor: f32) -> Picture {
    let len = image.height * image.width;
    let luma: f64 = if image.channels >= 3 {
        (0..len)
            .map(|i| {
                let v = 0.299 * image.pixels[i] + 0.587 * image.pixels[len + i] + 0.114 * image.pixels[2 * len + i];
                v.round() as f64
            })
            .sum()
    } else {
        image.pixels[..len].iter().map(|&v| v.round() as f64).sum()
    };
    let mean = (luma / len as f64 + 0.5).floor() as f32;
    let pixels = image.pixels.iter().map(|&v| (mean + factor * (v - mean)).clamp(0.0, 255.0)).collect();
    Picture::new(image.channels, image.height, image.width, pixels)
}

fn levels(image: &Picture, black: f32, white: f32, gamma: f32) -> Picture {
    let pixels = image
        .pixels
        .iter()
        .map(|&v| ((v - black) / (white - black)).clamp(0.0, 1.0).powf(1.0 / gamma) * 255.0)
        .collect();
    Picture::new(image.channels, image.height, image.width, pixels)
}

fn binarize(image: &Picture, threshold: Threshold) -> Picture {
    let (h, w) = (image.height, image.width);
    image.map_planes(h, w, |plane| {
        let level = match threshold {
            Threshold::Otsu => f32::from(imageproc::contrast::otsu_level(&byte_plane(plane, w, h))),
            Threshold::Level(v) => v,
        };
        plane.iter().map(|&v| if to_u8(v) as f32 > level { 255.0 } else { 0.0 }).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn fixture() -> Value {
        serde_json::from_str(include_str!("../fixtures/image_ops.json")).expect("the fixture should be JSON")
    }

    fn picture(v: &Value, pixels: &str) -> Picture {
        let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let pixels = v[pixels].as_array().unwrap().iter().map(|p| p.as_f64().unwrap() as f32).collect();
        Picture::new(shape[0], shape[1], shape[2], pixels)
    }

    /// Every step against SciPy, Pillow or OpenCV on 8-bit images (fixtures/make_image_fixtures.py):
    /// within one grey level everywhere.
    #[test]
    fn steps_match_their_reference_libraries() {
        let fixture = fixture();
        let inputs: Vec<Picture> = fixture["inputs"].as_array().unwrap().iter().map(|v| picture(v, "pixels")).collect();
        let mut failures = Vec::new();
        for case in fixture["cases"].as_array().unwrap() {
            let step: ImageStep = serde_json::from_value(case["step"].clone()).unwrap();
            step.validate().unwrap();
            let input = &inputs[case["input"].as_u64().unwrap() as usize];
            let expected = picture(case, "output");
            let got = step.apply(input);
            assert_eq!((got.channels, got.height, got.width), (expected.channels, expected.height, expected.width));
            let worst =
                got.to_u8().iter().zip(&expected.pixels).map(|(&a, &b)| (a as f32 - b).abs()).fold(0.0f32, f32::max);
            if worst > 1.0 {
                failures.push(format!("{} on input {}: {worst} grey levels", case["reference"], case["input"]));
            }
        }
        assert!(
            failures.is_empty(),
            "{} cases off by more than one grey level:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn reflect101_mirrors_without_repeating_the_edge() {
        let got: Vec<usize> = (-3..7).map(|i| reflect101(i, 4)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
        assert_eq!(reflect101(-2, 1), 0);
    }

    #[test]
    fn out_of_range_values_name_the_step_and_field() {
        let err = ImageStep::GaussianBlur { sigma: -1.0 }.validate().unwrap_err().to_string();
        assert!(err.contains("gaussian_blur") && err.contains("sigma") && err.contains("-1"), "{err}");
        let err = ImageStep::Binarize { threshold: Threshold::Level(300.0) }.validate().unwrap_err().to_string();
        assert!(err.contains("binarize") && err.contains("300"), "{err}");
        let err = serde_json::from_str::<ImageStep>(r#"{"sharpen": {"sigma": 1}}"#).unwrap_err().to_string();
        assert!(err.contains("unknown variant `sharpen`") && err.contains("gaussian_blur"), "{err}");
        let err = serde_json::from_str::<ImageStep>(r#"{"binarize": {"threshold": "mean"}}"#).unwrap_err().to_string();
        assert!(err.contains("otsu"), "{err}");
    }

    #[test]
    fn an_empty_image_passes_every_step_unchanged() {
        let empty = Picture::new(1, 0, 0, Vec::new());
        assert_eq!(ImageStep::Median { radius: 2 }.apply(&empty), empty);
    }
}
