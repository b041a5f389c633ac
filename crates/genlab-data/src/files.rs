//! Reading a data file whole without trusting it: only regular files, never more than the memory
//! available ([`genlab_core::files`]), and a gzip stream bounded as it inflates.

use crate::error::{DataError, Result};
use flate2::read::GzDecoder;
use genlab_core::files;
use genlab_core::memory::Bytes;
use std::io::Read;
use std::path::Path;

/// The first `n` bytes (fewer when the file is shorter) of a regular file, to tell its format.
pub fn head(path: &Path, n: usize) -> Result<Vec<u8>> {
    files::regular_size(path).map_err(DataError::io(path))?;
    let mut out = Vec::with_capacity(n);
    std::fs::File::open(path)
        .map_err(DataError::io(path))?
        .take(n as u64)
        .read_to_end(&mut out)
        .map_err(DataError::io(path))?;
    Ok(out)
}

/// The bytes of a regular file, gunzipped when it starts with the gzip magic bytes.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    read_within(path, files::read_limit())
}

/// A regular file's text (gunzipped as [`read_maybe_gzip`] does), refused when it is not UTF-8.
pub fn read_text(path: &Path) -> Result<String> {
    String::from_utf8(read_maybe_gzip(path)?).map_err(|e| DataError::Invalid {
        path: path.to_path_buf(),
        reason: format!("not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()),
    })
}

fn read_within(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let raw = files::read_regular(path, limit).map_err(DataError::io(path))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    GzDecoder::new(&raw[..]).take(limit + 1).read_to_end(&mut out).map_err(|e| DataError::Invalid {
        path: path.to_path_buf(),
        reason: format!("gzip stream is corrupt or truncated ({e})"),
    })?;
    if out.len() as u64 > limit {
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            reason: format!("decompresses to more than the {} this machine can hold now", Bytes(limit as u128)),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    #[test]
    fn devices_and_directories_are_refused_at_once() {
        for p in ["/dev/zero", "/tmp"] {
            let e = read_maybe_gzip(Path::new(p)).unwrap_err().to_string();
            assert!(e.starts_with(p) && e.contains("not a regular file"), "{e}");
            assert!(head(Path::new(p), 4).is_err());
        }
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let d = tempfile::tempdir().unwrap();
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; 1 << 20]).unwrap();
        let f = d.path().join("bomb.gz");
        std::fs::write(&f, gz.finish().unwrap()).unwrap();
        assert_eq!(read_within(&f, 2 << 20).unwrap().len(), 1 << 20);
        let e = read_within(&f, 1 << 16).unwrap_err().to_string();
        assert!(e.contains("decompresses to more than"), "{e}");
        let e = read_within(&f, 10).unwrap_err().to_string();
        assert!(e.contains("bomb.gz: is "), "{e}");
    }
}
