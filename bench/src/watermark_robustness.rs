//! What the image watermark survives, on generated samples as `[post]` delivers them: each sample
//! of `--samples DIR` (a PNG folder, `genlab sample RUN --raw --format folder`) resized to
//! `--size` (Lanczos, the usual `[post]` step before a watermark on 28x28 images) and marked
//! with `--key`; then read clean, after JPEG at quality 75, after a 0.5x resize (read at that
//! size, and resized back), and after a 10% crop (the bottom-right 10% of each side cut, which
//! keeps the block grid; and 5% cut from every side, which shifts it). False positives: the first
//! `--unmarked N` Fashion-MNIST test images, resized the same way and read for the key.
//!
//! `watermark-robustness --samples DIR [--size 256] [--key 6a3f00c1] [--unmarked 1000]`

use genlab_bench::{arg, fail};
use genlab_data::{DatasetName, DatasetSource, Split};
use genlab_post::image_ops::{ImageStep, ResizeFilter};
use genlab_post::watermark::{embed, psnr, read, WatermarkKey, DEFAULT_SCALE, KEY_BITS};
use genlab_post::Picture;
use std::path::Path;

fn grey(path: &Path) -> Picture {
    let img = image::open(path).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display()))).to_luma8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    Picture::new(1, h, w, img.as_raw().iter().map(|&v| f32::from(v)).collect())
}

fn resize(p: &Picture, h: usize, w: usize) -> Picture {
    ImageStep::Resize { height: h as u32, width: w as u32, filter: ResizeFilter::Lanczos }.apply(p)
}

fn rounded(p: &Picture) -> Picture {
    Picture::new(p.channels, p.height, p.width, p.to_u8().into_iter().map(f32::from).collect())
}

fn jpeg(p: &Picture, quality: u8) -> Picture {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, quality)
        .encode(&p.to_u8(), p.width as u32, p.height as u32, image::ExtendedColorType::L8)
        .unwrap_or_else(|e| fail(&format!("JPEG: {e}")));
    let back = image::load_from_memory(&bytes).unwrap_or_else(|e| fail(&format!("JPEG: {e}"))).to_luma8();
    Picture::new(1, p.height, p.width, back.as_raw().iter().map(|&v| f32::from(v)).collect())
}

fn crop(p: &Picture, top: usize, left: usize, h: usize, w: usize) -> Picture {
    let pixels = (top..top + h).flat_map(|y| (left..left + w).map(move |x| p.pixels[y * p.width + x])).collect();
    Picture::new(1, h, w, pixels)
}

/// An attack's name and what it does to a marked image.
type Attack<'a> = (&'a str, &'a dyn Fn(&Picture) -> Picture);

fn main() {
    let samples = arg("--samples", "");
    if samples.is_empty() {
        fail("--samples DIR: a folder of generated PNG samples (genlab sample RUN --raw --format folder -o DIR)");
    }
    let size: usize = arg("--size", "256").parse().unwrap_or_else(|_| fail("--size: expected pixels"));
    let key = WatermarkKey::from_hex(&arg("--key", "6a3f00c1")).unwrap_or_else(|e| fail(&e.to_string()));
    let unmarked: usize = arg("--unmarked", "1000").parse().unwrap_or_else(|_| fail("--unmarked: expected a count"));
    let mut files: Vec<_> = std::fs::read_dir(&samples)
        .unwrap_or_else(|e| fail(&format!("{samples}: {e}")))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    files.sort();
    if files.is_empty() {
        fail(&format!("{samples}: no PNG files"));
    }

    let attacks: [Attack; 6] = [
        ("clean", &|p| p.clone()),
        ("JPEG quality 75", &|p| jpeg(p, 75)),
        ("0.5x resize, read at 0.5x", &|p| rounded(&resize(p, p.height / 2, p.width / 2))),
        ("0.5x resize, resized back", &|p| {
            rounded(&resize(&rounded(&resize(p, p.height / 2, p.width / 2)), p.height, p.width))
        }),
        ("10% crop, bottom-right", &|p| crop(p, 0, 0, p.height * 9 / 10, p.width * 9 / 10)),
        ("10% crop, 5% each side", &|p| crop(p, p.height / 20, p.width / 20, p.height * 9 / 10, p.width * 9 / 10)),
    ];
    let mut bits = [0usize; 6];
    let mut marked = [0usize; 6];
    let mut psnrs = Vec::new();
    for file in &files {
        let original = rounded(&resize(&grey(file), size, size));
        let with_mark = rounded(&embed(&original, &key, DEFAULT_SCALE).unwrap_or_else(|e| fail(&e.to_string())));
        psnrs.push(psnr(&original, &with_mark));
        for (i, (_, attack)) in attacks.iter().enumerate() {
            let reading = read(&attack(&with_mark), Some(&key), DEFAULT_SCALE).unwrap_or_else(|e| fail(&e.to_string()));
            bits[i] += reading.matching.unwrap_or(0);
            marked[i] += usize::from(reading.marked() == Some(true));
        }
    }
    let test = DatasetSource::Named(DatasetName::FashionMnist)
        .load_images(Split::Test, &[])
        .unwrap_or_else(|e| fail(&e.to_string()));
    let unmarked = unmarked.min(test.n);
    let mut false_positives = 0;
    for i in 0..unmarked {
        let p = Picture::new(1, 28, 28, test.pixels[i * 784..(i + 1) * 784].iter().map(|&v| v as f32).collect());
        let reading =
            read(&rounded(&resize(&p, size, size)), Some(&key), DEFAULT_SCALE).unwrap_or_else(|e| fail(&e.to_string()));
        false_positives += usize::from(reading.marked() == Some(true));
    }
    let n = files.len();
    psnrs.sort_by(f64::total_cmp);
    println!(
        "{n} samples of {samples}, resized to {size}x{size} and marked with key {} (step {DEFAULT_SCALE})",
        key.to_hex()
    );
    println!("PSNR of the mark: mean {:.2} dB, lowest {:.2} dB", psnrs.iter().sum::<f64>() / n as f64, psnrs[0]);
    println!("| attack | bit accuracy | read as marked (28+ of 32 bits) |\n|---|---|---|");
    for (i, (name, _)) in attacks.iter().enumerate() {
        println!("| {name} | {:.4} | {:.4} |", bits[i] as f64 / (n * KEY_BITS) as f64, marked[i] as f64 / n as f64);
    }
    println!(
        "false positives: {false_positives} of {unmarked} unmarked Fashion-MNIST test images ({:.4}) read as carrying the key",
        false_positives as f64 / unmarked as f64
    );
}
