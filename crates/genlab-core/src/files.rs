//! Reading a whole file without trusting the path: only a regular file (a device such as
//! `/dev/zero` would be read forever, a pipe would block) and only what fits in memory (half of
//! what is available, checked against the file's size before reading).

use crate::memory::{self, Bytes};
use std::io::{Error, ErrorKind};
use std::path::Path;

/// The most bytes one file may bring into memory: half of the memory [`budget`](memory::budget)
/// (the caller goes on to build from them).
pub fn read_limit() -> u64 {
    (memory::budget().0 / 2).min(u64::MAX as u128) as u64
}

/// The bytes of the regular file `path`, if they fit within [`read_limit`].
pub fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    read_regular(path, read_limit())
}

/// The size of `path` if it is a regular file; an error saying what it is otherwise.
pub fn regular_size(path: &Path) -> std::io::Result<u64> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "not a regular file (a directory, a device or a pipe); expected a file",
        ));
    }
    Ok(meta.len())
}

/// The bytes of the regular file `path`, if it holds at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let size = regular_size(path)?;
    if size > limit {
        return Err(Error::other(format!(
            "is {}, more than the {} this machine can hold now",
            Bytes(size as u128),
            Bytes(limit as u128)
        )));
    }
    std::fs::read(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_directories_and_oversized_files_are_refused_at_once() {
        for p in ["/dev/zero", "/tmp"] {
            let e = read_regular(Path::new(p), 1 << 20).unwrap_err().to_string();
            assert!(e.starts_with("not a regular file"), "{p}: {e}");
        }
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, [7u8; 100]).unwrap();
        assert_eq!(read_regular(&f, 100).unwrap().len(), 100);
        assert!(read_regular(&f, 99).unwrap_err().to_string().starts_with("is 100 B, more than the 99 B"));
    }
}
