//! Writes that never leave a half-written file or directory behind: write to a temporary name in the
//! same directory, sync, then rename into place (rename is atomic on one filesystem).

use crate::error::{CoreError, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically: a reader sees the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_sibling(path);
    {
        let mut f = fs::File::create(&tmp).map_err(CoreError::io(&tmp))?;
        f.write_all(bytes).map_err(CoreError::io(&tmp))?;
        f.sync_all().map_err(CoreError::io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(CoreError::io(path))
}

/// A name beside `path` that no other writer uses, for the temporary copy.
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Renames the fully written directory `tmp` to `dest`, replacing an older `dest` if present.
/// The old directory is moved aside first and removed only after the new one is in place.
pub fn publish_dir(tmp: &Path, dest: &Path) -> Result<()> {
    sync_dir(tmp)?;
    if dest.exists() {
        let old = temp_sibling(dest).with_extension("old");
        fs::rename(dest, &old).map_err(CoreError::io(dest))?;
        fs::rename(tmp, dest).map_err(CoreError::io(dest))?;
        fs::remove_dir_all(&old).map_err(CoreError::io(&old))?;
    } else {
        fs::rename(tmp, dest).map_err(CoreError::io(dest))?;
    }
    if let Some(parent) = dest.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Points the symbolic link `link` at `target` atomically (a new link, renamed over the old one).
#[cfg(unix)]
pub fn point_link(link: &Path, target: &str) -> Result<()> {
    let tmp = temp_sibling(link);
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(CoreError::io(&tmp))?;
    fs::rename(&tmp, link).map_err(CoreError::io(link))
}

/// Where symbolic links are unavailable, `link` is a one-line file naming the target.
#[cfg(not(unix))]
pub fn point_link(link: &Path, target: &str) -> Result<()> {
    write_atomic(link, target.as_bytes())
}

/// Whether `dir` may receive new files without touching others: absent, or an empty directory.
pub fn is_absent_or_empty_dir(dir: &Path) -> bool {
    !dir.exists() || fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none())
}

/// Reads what `point_link` wrote: the target's name.
pub fn read_link(link: &Path) -> Result<String> {
    match fs::read_link(link) {
        Ok(t) => Ok(t.to_string_lossy().into_owned()),
        Err(_) => fs::read_to_string(link).map(|s| s.trim().to_string()).map_err(CoreError::io(link)),
    }
}

/// Free bytes on the filesystem that holds `path`, for messages about a failed write.
#[cfg(unix)]
pub fn free_space(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path and `s` is written by statvfs before it is read.
    let ok = unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) } == 0;
    ok.then(|| {
        // SAFETY: statvfs returned 0, so it filled `s`.
        let s = unsafe { s.assume_init() };
        // The field types differ between platforms (u32 on some), so widen them explicitly.
        #[allow(clippy::unnecessary_cast)]
        let free = s.f_bavail as u64 * s.f_frsize as u64;
        free
    })
}

#[cfg(not(unix))]
pub fn free_space(_: &Path) -> Option<u64> {
    None
}

/// SHA-256 of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn sync_dir(dir: &Path) -> Result<()> {
    // A directory fsync makes the rename durable; some filesystems refuse it, which is harmless.
    if let Ok(f) = fs::File::open(dir) {
        let _ = f.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_whole_file() {
        let dir = std::env::temp_dir().join(format!("genlab-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.txt");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        let leftovers: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
        point_link(&dir.join("latest"), "a.txt").unwrap();
        point_link(&dir.join("latest"), "b.txt").unwrap();
        assert_eq!(read_link(&dir.join("latest")).unwrap(), "b.txt");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn publish_dir_replaces_existing() {
        let root = std::env::temp_dir().join(format!("genlab-publish-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("tmp1")).unwrap();
        fs::write(root.join("tmp1/x"), b"1").unwrap();
        publish_dir(&root.join("tmp1"), &root.join("dest")).unwrap();
        fs::create_dir_all(root.join("tmp2")).unwrap();
        fs::write(root.join("tmp2/x"), b"2").unwrap();
        publish_dir(&root.join("tmp2"), &root.join("dest")).unwrap();
        assert_eq!(fs::read(root.join("dest/x")).unwrap(), b"2");
        assert_eq!(fs::read_dir(&root).unwrap().count(), 1);
        fs::remove_dir_all(&root).unwrap();
    }
}
