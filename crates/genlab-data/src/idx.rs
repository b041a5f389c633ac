//! The IDX format of MNIST and Fashion-MNIST (<http://yann.lecun.com/exdb/mnist/>), raw or gzipped,
//! read with full validation: the magic number (two zero bytes, a type code, the number of
//! dimensions), the type, each dimension, and the declared length against the bytes present.

use crate::error::{DataError, Result};
use std::path::Path;

/// The element type declared by an IDX header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxType {
    U8,
    I8,
    I16,
    I32,
    F32,
    F64,
}

impl IdxType {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0x08 => IdxType::U8,
            0x09 => IdxType::I8,
            0x0B => IdxType::I16,
            0x0C => IdxType::I32,
            0x0D => IdxType::F32,
            0x0E => IdxType::F64,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }
}

/// A decoded IDX array: its type, dimensions and raw big-endian payload.
#[derive(Debug, Clone)]
pub struct IdxArray {
    pub dtype: IdxType,
    pub dims: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl IdxArray {
    /// The payload as unsigned bytes; fails unless the file declares type u8.
    pub fn into_u8(self, path: &Path) -> Result<Vec<u8>> {
        if self.dtype != IdxType::U8 {
            return Err(DataError::Idx {
                path: path.to_path_buf(),
                reason: format!("element type is {:?}, expected unsigned byte (0x08)", self.dtype),
            });
        }
        Ok(self.bytes)
    }
}

/// Reads an IDX file, gunzipping it when it starts with the gzip magic bytes.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    parse_idx(&crate::files::read_maybe_gzip(path)?, path)
}

/// Parses IDX bytes (already decompressed). `path` names the source in errors.
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    let bad = |reason: String| DataError::Idx { path: path.to_path_buf(), reason };
    if bytes.len() < 4 {
        return Err(bad(format!("{} bytes, shorter than the 4-byte magic number", bytes.len())));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad(format!("magic number starts {:#04x} {:#04x}, expected 0x00 0x00", bytes[0], bytes[1])));
    }
    let dtype = IdxType::from_code(bytes[2])
        .ok_or_else(|| bad(format!("type code {:#04x} is not one of 0x08 0x09 0x0B 0x0C 0x0D 0x0E", bytes[2])))?;
    let ndim = bytes[3] as usize;
    if ndim == 0 {
        return Err(bad("header declares 0 dimensions".into()));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(bad(format!(
            "header declares {ndim} dimensions ({header} header bytes) but the file has {} bytes",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    if let Some(i) = dims.iter().position(|&d| d == 0) {
        return Err(bad(format!("dimension {i} is 0")));
    }
    let declared = dims
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(format!("dimensions {dims:?} overflow")))?;
    let actual = bytes.len() - header;
    if actual != declared {
        return Err(bad(format!(
            "dimensions {dims:?} of {:?} declare {declared} data bytes, the file has {actual} ({})",
            dtype,
            if actual < declared { "truncated" } else { "trailing bytes" }
        )));
    }
    Ok(IdxArray { dtype, dims, bytes: bytes[header..].to_vec() })
}

/// Encodes a u8 array as IDX (used by tests and by `genlab data` when exporting).
pub fn encode_idx_u8(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn p() -> &'static Path {
        Path::new("test.idx")
    }

    /// A file written byte by byte from the format's description, not by `encode_idx_u8`.
    #[test]
    fn reads_a_hand_made_file() {
        let bytes = [
            0, 0, 0x08, 3, // magic: u8, 3 dims
            0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, // 2 x 2 x 3
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 255,
        ];
        let a = parse_idx(&bytes, p()).unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.dtype, IdxType::U8);
        assert_eq!(a.bytes[11], 255);
        assert_eq!(encode_idx_u8(&[2, 2, 3], &a.bytes), bytes.to_vec());
    }

    #[test]
    fn reads_gzip_and_rejects_truncated_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let raw = encode_idx_u8(&[3], &[7, 8, 9]);
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&raw).unwrap();
        let gz = gz.finish().unwrap();
        let f = dir.path().join("a.idx.gz");
        std::fs::write(&f, &gz).unwrap();
        assert_eq!(read_idx(&f).unwrap().bytes, vec![7, 8, 9]);
        std::fs::write(&f, &gz[..gz.len() - 6]).unwrap();
        let e = read_idx(&f).unwrap_err().to_string();
        assert!(e.contains("a.idx.gz") && e.contains("gzip"), "{e}");
    }

    #[test]
    fn every_header_fault_is_named() {
        let cases: &[(&[u8], &str)] = &[
            (&[0, 0], "shorter than"),
            (&[1, 0, 8, 1, 0, 0, 0, 1, 5], "magic number"),
            (&[0, 0, 0x07, 1, 0, 0, 0, 1, 5], "type code 0x07"),
            (&[0, 0, 8, 0], "0 dimensions"),
            (&[0, 0, 8, 2, 0, 0, 0, 1], "header declares 2 dimensions"),
            (&[0, 0, 8, 1, 0, 0, 0, 0], "dimension 0 is 0"),
            (&[0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3], "truncated"),
            (&[0, 0, 8, 1, 0, 0, 0, 2, 1, 2, 3], "trailing bytes"),
            (&[0, 0, 0x0C, 1, 0, 0, 0, 2, 1, 2, 3, 4], "declare 8 data bytes"),
        ];
        for (bytes, want) in cases {
            let e = parse_idx(bytes, p()).unwrap_err().to_string();
            assert!(e.contains(want) && e.starts_with("test.idx"), "{e:?} should mention {want:?}");
        }
        let e = parse_idx(&[0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0], p()).unwrap().into_u8(p()).unwrap_err().to_string();
        assert!(e.contains("expected unsigned byte"), "{e}");
    }
}
