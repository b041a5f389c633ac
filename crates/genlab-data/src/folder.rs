//! Image folders: `root/CLASS/*.png|jpg|jpeg`, one sub-folder per class (torchvision's
//! `ImageFolder` layout), or images directly in `root` for an unlabelled set.

use crate::error::{DataError, Result};
use crate::image_set::ImageSet;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How decoded images are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Color {
    #[default]
    Gray,
    Rgb,
}

/// Reads every PNG/JPEG under `root`. Without `resize`, all images must share one size.
pub fn read_image_folder(root: &Path, color: Color, resize: Option<[usize; 2]>) -> Result<ImageSet> {
    let mut classes: Vec<(String, PathBuf)> = Vec::new();
    let mut loose: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(root).map_err(DataError::io(root))? {
        let p = entry.map_err(DataError::io(root))?.path();
        if p.is_dir() {
            classes.push((p.file_name().expect("a dir entry has a name").to_string_lossy().into_owned(), p));
        } else if is_image(&p) {
            loose.push(p);
        }
    }
    classes.sort();
    let mut files: Vec<(PathBuf, Option<u32>)> = Vec::new();
    if classes.is_empty() {
        loose.sort();
        files.extend(loose.into_iter().map(|p| (p, None)));
    } else {
        for (k, (_, dir)) in classes.iter().enumerate() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(DataError::io(dir))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_image(p))
                .collect();
            inner.sort();
            files.extend(inner.into_iter().map(|p| (p, Some(k as u32))));
        }
    }
    if files.is_empty() {
        return Err(DataError::Invalid {
            path: root.to_path_buf(),
            reason: "no .png, .jpg or .jpeg images found (expected ROOT/CLASS/IMAGE or ROOT/IMAGE)".into(),
        });
    }
    let channels = match color {
        Color::Gray => 1,
        Color::Rgb => 3,
    };
    if let Some(size) = resize {
        crate::transform::Transform::check_resize_memory(files.len(), channels, size)?;
    }
    let mut pixels = Vec::new();
    let mut size: Option<(u32, u32, PathBuf)> = None;
    for (path, _) in &files {
        let img = image::open(path).map_err(|e| DataError::Image { path: path.clone(), reason: e.to_string() })?;
        let img = match resize {
            Some([h, w]) => img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle),
            None => img,
        };
        let (w, h) = (img.width(), img.height());
        match &size {
            None => size = Some((w, h, path.clone())),
            Some((fw, fh, first)) if (*fw, *fh) != (w, h) => {
                return Err(DataError::MixedSizes {
                    path: path.clone(),
                    first: first.clone(),
                    found_w: w,
                    found_h: h,
                    want_w: *fw,
                    want_h: *fh,
                })
            }
            Some(_) => {}
        }
        match color {
            Color::Gray => pixels.extend_from_slice(img.to_luma8().as_raw()),
            Color::Rgb => {
                let rgb = img.to_rgb8();
                let plane = (w * h) as usize;
                let start = pixels.len();
                pixels.resize(start + 3 * plane, 0);
                for (i, px) in rgb.pixels().enumerate() {
                    for k in 0..3 {
                        pixels[start + k * plane + i] = px.0[k];
                    }
                }
            }
        }
    }
    let (w, h, _) = size.expect("at least one image was read");
    let labelled = files[0].1.is_some();
    Ok(ImageSet {
        name: root.display().to_string(),
        pixels,
        n: files.len(),
        channels,
        height: h as usize,
        width: w as usize,
        labels: labelled
            .then(|| files.iter().map(|(_, l)| l.expect("every file of a class folder has a label")).collect()),
        class_names: classes.into_iter().map(|(n, _)| n).collect(),
    })
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(p: &Path, w: u32, h: u32, v: u8) {
        image::GrayImage::from_pixel(w, h, image::Luma([v])).save(p).unwrap();
    }

    #[test]
    fn reads_classes_in_sorted_order_and_rgb_planes() {
        let d = tempfile::tempdir().unwrap();
        for (c, v) in [("cat", 10u8), ("ant", 200u8)] {
            std::fs::create_dir(d.path().join(c)).unwrap();
            write_png(&d.path().join(c).join("a.png"), 3, 2, v);
        }
        image::RgbImage::from_pixel(3, 2, image::Rgb([1, 2, 3])).save(d.path().join("cat/b.jpg")).unwrap();
        let s = read_image_folder(d.path(), Color::Rgb, None).unwrap();
        assert_eq!(s.class_names, vec!["ant", "cat"]);
        assert_eq!(s.labels, Some(vec![0, 1, 1]));
        assert_eq!((s.n, s.channels, s.height, s.width), (3, 3, 2, 3));
        assert_eq!(s.pixels[0], 200);
        let g = read_image_folder(d.path(), Color::Gray, Some([4, 4])).unwrap();
        assert_eq!((g.channels, g.height, g.width), (1, 4, 4));
    }

    #[test]
    fn mixed_sizes_name_both_files() {
        let d = tempfile::tempdir().unwrap();
        write_png(&d.path().join("a.png"), 3, 3, 0);
        write_png(&d.path().join("b.png"), 4, 3, 0);
        let e = read_image_folder(d.path(), Color::Gray, None).unwrap_err().to_string();
        assert!(e.contains("b.png") && e.contains("a.png") && e.contains("4x3") && e.contains("resize"), "{e}");
        assert!(read_image_folder(d.path(), Color::Gray, Some([3, 3])).is_ok());
    }
}
