//! `genlab data export`: a split of an image dataset as a folder of PNG files (for `genlab fid`,
//! or any tool that reads image folders).

use crate::error::{DataError, Result};
use crate::image_set::ImageSet;
use genlab_core::grid::{save_images, ImageBatch};
use std::path::Path;

/// Writes the first `n` images of `set` (all when `n` is larger) to the new or empty directory
/// `dir`, as `000000.png`, `000001.png`, ...; returns how many were written.
pub fn export_png(set: &ImageSet, n: usize, dir: &Path) -> Result<usize> {
    if !genlab_core::atomic::is_absent_or_empty_dir(dir) {
        return Err(DataError::Invalid {
            path: dir.to_path_buf(),
            reason: "exists and is not an empty directory; export never writes over other files".into(),
        });
    }
    let n = n.min(set.n);
    for start in (0..n).step_by(1000) {
        let end = (start + 1000).min(n);
        let b = set.batch(&(start..end).collect::<Vec<_>>());
        let data = b.data.into_iter().map(|p| p / 255.0).collect();
        save_images(&ImageBatch::new(data, b.n, b.channels, b.height, b.width), start, dir)
            .map_err(|e| DataError::Invalid { path: dir.to_path_buf(), reason: e.to_string() })?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{DatasetName, DatasetSource, Split};

    #[test]
    fn exported_pngs_hold_the_exact_pixels() {
        let d = tempfile::tempdir().unwrap();
        let set = DatasetSource::Named(DatasetName::Mnist).load_images(Split::Test, &[]).unwrap();
        assert_eq!(export_png(&set, 3, &d.path().join("out")).unwrap(), 3);
        let img = image::open(d.path().join("out/000002.png")).unwrap().to_luma8();
        assert_eq!(img.as_raw(), &set.pixels[2 * 784..3 * 784].to_vec());
        let e = export_png(&set, 3, &d.path().join("out")).unwrap_err().to_string();
        assert!(e.contains("not an empty directory"), "{e}");
    }
}
