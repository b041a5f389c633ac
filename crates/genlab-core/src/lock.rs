//! One writer per run directory: an exclusive advisory lock (`flock`) on `RUN/.lock`, held for as
//! long as the command runs. The kernel drops the lock when its holder exits, however it exits,
//! so a crashed holder never blocks the next command (a stale lock cannot exist); the file keeps
//! the last holder's pid and command, which a refused writer is told.

use crate::error::CoreError;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// An exclusive lock on a directory, released when dropped.
#[derive(Debug)]
pub struct DirLock {
    file: File,
}

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{dir} is in use by another genlab command ({holder}); one command at a time may write a run directory")]
    Held { dir: PathBuf, holder: String },
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl DirLock {
    /// Takes the lock of `dir` or says who holds it. `command` describes this holder.
    pub fn acquire(dir: &Path, command: &str) -> std::result::Result<Self, LockError> {
        let path = dir.join(".lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(CoreError::io(&path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() { "holder unknown".to_string() } else { holder.to_string() };
                return Err(LockError::Held { dir: dir.to_path_buf(), holder });
            }
            Err(TryLockError::Error(e)) => return Err(CoreError::io(&path)(e).into()),
        }
        let note = format!("pid {}: {command}", std::process::id());
        let written =
            file.set_len(0).and_then(|_| file.seek(SeekFrom::Start(0))).and_then(|_| file.write_all(note.as_bytes()));
        written.map_err(CoreError::io(&path))?;
        Ok(DirLock { file })
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// This process's command line, for a lock's note.
pub fn this_command() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holder_and_admitted_after_release() {
        let d = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(d.path(), "genlab train --resume r").unwrap();
        let err = DirLock::acquire(d.path(), "genlab eval r").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&format!("pid {}: genlab train --resume r", std::process::id())), "{msg}");
        drop(first);
        DirLock::acquire(d.path(), "genlab eval r").unwrap();
    }
}
