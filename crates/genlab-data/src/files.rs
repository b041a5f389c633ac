//! Reading a data file whole without trusting it: only regular files (a device such as `/dev/zero`
//! or a pipe would be read forever), never more than the memory available (checked against the
//! file's size before reading, and against the decompressed size while a gzip stream inflates).

use crate::error::{DataError, Result};
use flate2::read::GzDecoder;
use genlab_core::memory::{self, Bytes};
use std::io::Read;
use std::path::Path;

/// The most bytes one file may bring into memory: half of what is available (the caller goes on
/// to build from them), or 1 PiB where that cannot be read.
fn limit() -> u64 {
    memory::available().map_or(1 << 50, |b| (b.0 / 2).min(u64::MAX as u128) as u64)
}

/// Refuses what is not a regular file.
fn regular(path: &Path) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(DataError::io(path))?;
    if !meta.is_file() {
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            reason: "not a regular file (a directory, a device or a pipe); expected a data file".into(),
        });
    }
    Ok(meta.len())
}

/// The first `n` bytes (fewer when the file is shorter) of a regular file, to tell its format.
pub fn head(path: &Path, n: usize) -> Result<Vec<u8>> {
    regular(path)?;
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
    read_within(path, limit())
}

fn read_within(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let too_large = |what: &str, size: u64| DataError::Invalid {
        path: path.to_path_buf(),
        reason: format!(
            "{what} {}, more than the {} this machine can hold now",
            Bytes(size as u128),
            Bytes(limit as u128)
        ),
    };
    let size = regular(path)?;
    if size > limit {
        return Err(too_large("is", size));
    }
    let raw = std::fs::read(path).map_err(DataError::io(path))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    GzDecoder::new(&raw[..]).take(limit + 1).read_to_end(&mut out).map_err(|e| DataError::Invalid {
        path: path.to_path_buf(),
        reason: format!("gzip stream is corrupt or truncated ({e})"),
    })?;
    if out.len() as u64 > limit {
        return Err(too_large("decompresses to more than", limit));
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
