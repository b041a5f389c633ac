//! Memory a job will need, estimated before anything is allocated, against what the machine has:
//! a configuration that cannot fit is refused in one line naming the key and both figures, instead
//! of aborting in the allocator ("memory allocation failed") or swapping for minutes.

use std::fmt;

/// Bytes, printed in binary units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub u128);

impl Bytes {
    /// `count` float32 values.
    pub fn f32s(count: u128) -> Self {
        Bytes(count.saturating_mul(4))
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        let mut v = self.0 as f64;
        let mut unit = 0;
        while v >= 1024.0 && unit < UNITS.len() - 1 {
            v /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{v:.1} {}", UNITS[unit])
        }
    }
}

/// The memory this process may still use: `MemAvailable` of `/proc/meminfo`, lowered to a cgroup
/// limit when one is set. None where neither can be read (then nothing is refused).
pub fn available() -> Option<Bytes> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u128 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let mut bytes = kib * 1024;
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok().and_then(|s| s.trim().parse::<u128>().ok());
    if let Some(limit) = cgroup {
        let used = std::fs::read_to_string("/sys/fs/cgroup/memory.current")
            .ok()
            .and_then(|s| s.trim().parse::<u128>().ok())
            .unwrap_or(0);
        bytes = bytes.min(limit.saturating_sub(used));
    }
    Some(Bytes(bytes))
}

/// Why an estimate was refused: `what` needs `needs`, the machine has `available`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    pub what: String,
    pub needs: Bytes,
    pub available: Bytes,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} needs about {} of memory; {} is available", self.what, self.needs, self.available)
    }
}

/// What a job may plan with: [`available`], or 1 PiB where that cannot be read (a figure only a
/// mistake reaches, so nothing reasonable is refused).
pub fn budget() -> Bytes {
    available().unwrap_or(Bytes(1 << 50))
}

/// Refuses `needs` bytes for `what` when they exceed the [`budget`].
pub fn check(what: impl FnOnce() -> String, needs: Bytes) -> Result<(), TooLarge> {
    let available = budget();
    if needs > available {
        return Err(TooLarge { what: what(), needs, available });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_binary_units() {
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes(3 << 30).to_string(), "3.0 GiB");
        assert_eq!(Bytes::f32s(1 << 40).to_string(), "4.0 TiB");
    }

    #[test]
    fn refuses_what_does_not_fit_and_accepts_what_does() {
        assert!(check(|| "tiny".into(), Bytes(1024)).is_ok());
        let err = check(|| "`model.latent_dim` = 100000000".into(), Bytes(1 << 60)).unwrap_err();
        assert!(err.to_string().starts_with("`model.latent_dim` = 100000000 needs about 1024.0 PiB"), "{err}");
    }
}

/// Keeps the buffers a training step frees for the next step's allocations instead of returning
/// them to the kernel: glibc's malloc serves a large allocation with a fresh `mmap` (and trims the
/// heap's top on free), so each step's tensors of a few MiB came back as new pages the kernel
/// zero-fills on first touch (page faults were 5% of a VAE run's samples, and the DCGAN step is
/// 20% faster without them). Raises glibc's mmap threshold to 256 MiB and its trim threshold to
/// 1 GiB (PyTorch's CPU allocator keeps freed blocks for the same reason). The resident size then
/// stays at its high-water mark. Returns whether the allocator took both settings (false off glibc).
pub fn keep_freed_buffers() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; called before threads allocate much.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod allocator_tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_thresholds() {
        assert!(super::keep_freed_buffers());
    }
}
