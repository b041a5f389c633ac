//! Checkpoints: `checkpoints/step-000500/{model,ema,optim}.safetensors`, `trainer.json` and
//! `manifest.json` (each file's length and SHA-256), written into a temporary directory, renamed
//! into place, and only then pointed at by `checkpoints/latest`. A crash at any instant leaves the
//! previous checkpoint whole; a failed write removes its partial directory. Every read checks the
//! manifest, the structure and that every weight is finite, and [`newest_intact_checkpoint`] falls
//! back to the newest checkpoint that passes, naming each one it passes over.

use crate::error::{Result, TrainError};
use genlab_core::atomic::{free_space, point_link, publish_dir, read_link, sha256_hex, write_atomic};
use genlab_core::memory::Bytes;
use genlab_core::tensors::NamedTensors;
use genlab_core::{CoreError, SeededRng};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Everything but tensors that a resumed run needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerState {
    pub step: u64,
    pub optimizer_updates: BTreeMap<String, u64>,
    pub ema_updates: Option<u64>,
    /// The batch source's position (loader epoch, position, shuffle and transform streams).
    pub source: serde_json::Value,
    /// The stream the family draws its noise from.
    pub rng: SeededRng,
    /// Training seconds before this checkpoint, summed over resumed segments.
    pub elapsed_s: f64,
    pub genlab_version: String,
    /// The privacy spent so far, in a private run (absent from earlier checkpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<crate::privacy::accountant::RdpAccountant>,
}

pub struct Checkpoint {
    pub model: NamedTensors,
    pub ema: Option<NamedTensors>,
    pub optim: NamedTensors,
    pub state: TrainerState,
}

/// What a checkpoint directory held when it was written: each file's length and SHA-256.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    step: u64,
    files: BTreeMap<String, FileSum>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSum {
    bytes: u64,
    sha256: String,
}

const MANIFEST: &str = "manifest.json";
const MODEL: &str = "model.safetensors";
const EMA: &str = "ema.safetensors";
const OPTIM: &str = "optim.safetensors";
const STATE: &str = "trainer.json";

pub fn checkpoints_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

fn step_name(step: u64) -> String {
    format!("step-{step:06}")
}

fn step_of(name: &str) -> Option<u64> {
    name.strip_prefix("step-")?.parse().ok()
}

/// Writes a checkpoint and moves `latest` to it; keeps the newest `keep` checkpoints. On failure
/// (a full disk) the partial directory is removed and the error names the free space left.
pub fn write_checkpoint(run_dir: &Path, c: &Checkpoint, keep: usize) -> Result<PathBuf> {
    let root = checkpoints_dir(run_dir);
    std::fs::create_dir_all(&root).map_err(CoreError::io(&root))?;
    remove_stale_temporaries(&root)?;
    let name = step_name(c.state.step);
    let dest = root.join(&name);
    let tmp = root.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = std::fs::create_dir_all(&tmp)
        .map_err(|e| CoreError::io(&tmp)(e).into())
        .and_then(|_| write_files(&tmp, c))
        .and_then(|_| Ok(publish_dir(&tmp, &dest)?));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        let free = match free_space(&root) {
            Some(b) => format!("; {} free on its disk", Bytes(b as u128)),
            None => String::new(),
        };
        return Err(TrainError::CheckpointWrite { path: dest, reason: e.to_string(), free });
    }
    point_link(&root.join("latest"), &name)?;
    prune(&root, keep, &name)?;
    Ok(dest)
}

/// Each file of `c` into `dir`, then the manifest of their lengths and SHA-256 sums.
fn write_files(dir: &Path, c: &Checkpoint) -> Result<()> {
    let mut files = BTreeMap::new();
    let mut put = |name: &str, bytes: Vec<u8>| -> Result<()> {
        files.insert(name.to_string(), FileSum { bytes: bytes.len() as u64, sha256: sha256_hex(&bytes) });
        Ok(write_atomic(&dir.join(name), &bytes)?)
    };
    put(MODEL, c.model.to_bytes())?;
    if let Some(ema) = &c.ema {
        put(EMA, ema.to_bytes())?;
    }
    put(OPTIM, c.optim.to_bytes())?;
    put(STATE, serde_json::to_vec_pretty(&c.state).expect("trainer state should serialise"))?;
    let manifest = Manifest { step: c.state.step, files };
    write_atomic(&dir.join(MANIFEST), &serde_json::to_vec_pretty(&manifest).expect("a manifest should serialise"))?;
    Ok(())
}

/// Half-written checkpoints (and replaced ones awaiting removal) left by a process that was killed:
/// their names start with a dot, and no complete checkpoint's does.
fn remove_stale_temporaries(root: &Path) -> Result<()> {
    for e in std::fs::read_dir(root).map_err(CoreError::io(root))?.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".step-") || name.starts_with(".latest") {
            let p = e.path();
            let removed = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
            removed.map_err(CoreError::io(&p))?;
        }
    }
    Ok(())
}

/// The checkpoint directories of `root` by step number, oldest first (names grow a digit at step
/// 1,000,000, so text order would be wrong).
fn steps(root: &Path) -> Result<Vec<(u64, String)>> {
    if !root.is_dir() {
        return Ok(vec![]);
    }
    let mut steps: Vec<(u64, String)> = std::fs::read_dir(root)
        .map_err(CoreError::io(root))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter_map(|n| Some((step_of(&n)?, n)))
        .collect();
    steps.sort();
    Ok(steps)
}

fn prune(root: &Path, keep: usize, latest: &str) -> Result<()> {
    let steps = steps(root)?;
    let excess = steps.len().saturating_sub(keep.max(1));
    for (_, old) in steps.into_iter().take(excess).filter(|(_, n)| n != latest) {
        let p = root.join(old);
        std::fs::remove_dir_all(&p).map_err(CoreError::io(&p))?;
    }
    Ok(())
}

/// Reads a checkpoint directory written by [`write_checkpoint`], proving it first: every file the
/// manifest lists has its recorded length and SHA-256, `trainer.json` names the manifest's step,
/// and every tensor is finite. Anything else is [`TrainError::Damaged`]. A checkpoint written
/// before genlab recorded checksums (no `manifest.json` beside its `trainer.json`) gets the
/// structure and finiteness checks only (see [`is_unproven`]).
pub fn read_checkpoint(dir: &Path) -> Result<Checkpoint> {
    let damaged = |reason: String| TrainError::Damaged { path: dir.to_path_buf(), reason };
    let manifest: Option<Manifest> = match std::fs::read(dir.join(MANIFEST)) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| damaged(format!("{MANIFEST}: {e}")))?),
        Err(_) if is_unproven(dir) => None,
        Err(e) => return Err(damaged(format!("{MANIFEST}: {e}"))),
    };
    let read = |name: &str| -> Result<Option<Vec<u8>>> {
        let Some(m) = &manifest else {
            let p = dir.join(name);
            return if p.is_file() {
                Ok(Some(std::fs::read(&p).map_err(|e| damaged(format!("{name}: {e}")))?))
            } else {
                Ok(None)
            };
        };
        let Some(sum) = m.files.get(name) else { return Ok(None) };
        let bytes = std::fs::read(dir.join(name)).map_err(|e| damaged(format!("{name}: {e}")))?;
        if bytes.len() as u64 != sum.bytes {
            return Err(damaged(format!("{name} has {} bytes, {} were written", bytes.len(), sum.bytes)));
        }
        if sha256_hex(&bytes) != sum.sha256 {
            return Err(damaged(format!("{name} does not match the SHA-256 recorded when it was written")));
        }
        Ok(Some(bytes))
    };
    let required = |name: &str| read(name)?.ok_or_else(|| damaged(format!("{name} is missing")));
    let tensors = |name: &str, bytes: Vec<u8>| -> Result<NamedTensors> {
        let t = NamedTensors::from_bytes(&bytes, &dir.join(name)).map_err(|e| damaged(e.to_string()))?;
        if let Some((tensor, _)) = t.0.iter().find(|(_, v)| v.data.iter().any(|x| !x.is_finite())) {
            return Err(damaged(format!("{name}: tensor `{tensor}` holds a non-finite value")));
        }
        Ok(t)
    };
    let state: TrainerState =
        serde_json::from_slice(&required(STATE)?).map_err(|e| damaged(format!("{STATE}: {e}")))?;
    if let Some(m) = manifest.as_ref().filter(|m| m.step != state.step) {
        return Err(damaged(format!("{STATE} is at step {}, the manifest at step {}", state.step, m.step)));
    }
    Ok(Checkpoint {
        model: tensors(MODEL, required(MODEL)?)?,
        ema: read(EMA)?.map(|b| tensors(EMA, b)).transpose()?,
        optim: tensors(OPTIM, required(OPTIM)?)?,
        state,
    })
}

/// Whether `dir` was written before genlab recorded checksums: a `trainer.json` without a
/// `manifest.json` (every checkpoint since writes the manifest last, inside its temporary
/// directory, so a published one always has it).
pub fn is_unproven(dir: &Path) -> bool {
    dir.join(STATE).is_file() && !dir.join(MANIFEST).exists()
}

/// A proven checkpoint to continue from, and the newer ones that failed the proof.
pub struct IntactCheckpoint {
    pub dir: PathBuf,
    pub checkpoint: Checkpoint,
    /// Each newer checkpoint that failed, with why.
    pub passed_over: Vec<(PathBuf, TrainError)>,
}

impl IntactCheckpoint {
    /// One line per checkpoint passed over, naming the one used instead, and a note when the one
    /// used predates checksums.
    pub fn fallback_lines(&self) -> Vec<String> {
        let used = name_of(&self.dir);
        let mut lines: Vec<String> = self
            .passed_over
            .iter()
            .map(|(_, e)| format!("warning: {e}; using {used}, the newest intact checkpoint"))
            .collect();
        if is_unproven(&self.dir) {
            lines.push(format!(
                "note: {} was written before genlab recorded checksums (no manifest.json): checked for structure and finite weights only",
                self.dir.display()
            ));
        }
        lines
    }

    /// The file a tensor set of this checkpoint came from, for errors.
    pub fn file(&self, ema: bool) -> PathBuf {
        self.dir.join(if ema { EMA } else { MODEL })
    }

    /// Moves each checkpoint passed over out of the way (`checkpoints/damaged-step-000060`, kept
    /// for inspection; never pruned, never resumed from) and points `latest` at the one used: for
    /// a resume, once it is certain to go ahead. Returns a line per checkpoint moved.
    pub fn set_aside_passed_over(&self) -> Result<Vec<String>> {
        let Some(root) = self.dir.parent() else { return Ok(vec![]) };
        let mut lines = vec![];
        for (dir, _) in &self.passed_over {
            if !dir.is_dir() {
                continue;
            }
            let mut aside = root.join(format!("damaged-{}", name_of(dir)));
            let mut i = 2;
            while aside.exists() {
                aside = root.join(format!("damaged-{}-{i}", name_of(dir)));
                i += 1;
            }
            std::fs::rename(dir, &aside).map_err(CoreError::io(dir))?;
            lines.push(format!("moved the damaged checkpoint {} aside as {}", dir.display(), aside.display()));
        }
        point_link(&root.join("latest"), &name_of(&self.dir))?;
        Ok(lines)
    }
}

fn name_of(dir: &Path) -> String {
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The checkpoint a run continues from: the one `checkpoints/latest` names if it is intact, else
/// the newest older one that is. None when the run has no checkpoint; an error listing every
/// failure when none is intact.
pub fn newest_intact_checkpoint(run_dir: &Path) -> Result<Option<IntactCheckpoint>> {
    let root = checkpoints_dir(run_dir);
    let link = root.join("latest");
    let latest = if std::fs::symlink_metadata(&link).is_ok() { Some(read_link(&link)?) } else { None };
    let below = latest.as_deref().and_then(step_of).map_or(u64::MAX, |s| s);
    let mut candidates: Vec<String> = latest.iter().cloned().collect();
    let older = steps(&root)?.into_iter().rev().filter(|(s, n)| *s < below && Some(n) != latest.as_ref());
    candidates.extend(older.map(|(_, n)| n));
    if candidates.is_empty() {
        return Ok(None);
    }
    let mut passed_over = vec![];
    for name in candidates {
        let dir = root.join(&name);
        match read_checkpoint(&dir) {
            Ok(checkpoint) => return Ok(Some(IntactCheckpoint { dir, checkpoint, passed_over })),
            Err(e) => passed_over.push((dir, e)),
        }
    }
    let reasons: Vec<String> = passed_over.iter().map(|(_, e)| e.to_string()).collect();
    Err(TrainError::NoIntactCheckpoint { run_dir: run_dir.to_path_buf(), reasons: reasons.join("; ") })
}

/// Refuses to continue a run at `step` with fewer total steps than it has already taken.
pub fn check_continues(step: u64, steps: u64) -> Result<()> {
    if steps < step {
        return Err(TrainError::Config(format!(
            "train.steps = {steps}, but the run has already trained {step} steps; give train.steps >= {step}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use genlab_core::tensors::HostTensor;

    fn ckpt(step: u64) -> Checkpoint {
        let mut model = NamedTensors::default();
        model.insert("w", HostTensor { shape: vec![2], data: vec![step as f32, 1.0] });
        Checkpoint {
            model,
            ema: None,
            optim: NamedTensors::default(),
            state: TrainerState {
                step,
                optimizer_updates: BTreeMap::new(),
                ema_updates: None,
                source: serde_json::Value::Null,
                rng: SeededRng::new(1),
                elapsed_s: 0.0,
                genlab_version: "test".into(),
                privacy: None,
            },
        }
    }

    #[test]
    fn latest_moves_and_old_ones_are_pruned() {
        let d = tempfile::tempdir().unwrap();
        assert!(newest_intact_checkpoint(d.path()).unwrap().is_none());
        for s in [100, 200, 300] {
            write_checkpoint(d.path(), &ckpt(s), 2).unwrap();
        }
        let latest = newest_intact_checkpoint(d.path()).unwrap().unwrap();
        assert!(latest.dir.ends_with("step-000300") && latest.passed_over.is_empty());
        let c = latest.checkpoint;
        assert_eq!(c.model.get("w").unwrap().data, vec![300.0, 1.0]);
        let names: Vec<_> =
            std::fs::read_dir(checkpoints_dir(d.path())).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 3, "two checkpoints and `latest`: {names:?}");
    }

    /// Rewrites `file` of checkpoint `step` with `f` applied to its bytes.
    fn damage(run: &Path, step: u64, file: &str, f: impl FnOnce(&mut Vec<u8>)) {
        let p = checkpoints_dir(run).join(step_name(step)).join(file);
        let mut bytes = std::fs::read(&p).unwrap();
        f(&mut bytes);
        std::fs::write(&p, bytes).unwrap();
    }

    /// The first f32 of a safetensors file's data (after the 8-byte length and the header).
    fn first_value(bytes: &mut [u8]) -> &mut [u8] {
        let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        &mut bytes[8 + header..8 + header + 4]
    }

    /// Issue 12: same-size damage (a weight scaled by 4, a weight flipped to NaN) and truncation
    /// were loaded silently, and an intact older checkpoint was never used.
    #[test]
    fn damaged_checkpoints_are_named_and_the_newest_intact_one_is_used() {
        let scale = |b: &mut Vec<u8>| {
            let v = first_value(b);
            let x = f32::from_le_bytes(v[..4].try_into().unwrap()) * 4.0;
            v.copy_from_slice(&x.to_le_bytes());
        };
        let nan = |b: &mut Vec<u8>| first_value(b).copy_from_slice(&f32::NAN.to_le_bytes());
        let truncate = |b: &mut Vec<u8>| b.truncate(b.len() - 3);
        type Case<'a> = (&'a str, &'a dyn Fn(&mut Vec<u8>), &'a str);
        let cases: [Case; 3] = [
            ("scaled", &scale, "does not match the SHA-256"),
            ("NaN", &nan, "does not match the SHA-256"),
            ("truncated", &truncate, "bytes"),
        ];
        for (what, f, reason) in cases {
            let d = tempfile::tempdir().unwrap();
            for s in [100, 200, 300] {
                write_checkpoint(d.path(), &ckpt(s), 3).unwrap();
            }
            damage(d.path(), 300, "model.safetensors", f);
            let point = newest_intact_checkpoint(d.path()).unwrap().unwrap();
            assert!(point.dir.ends_with("step-000200"), "{what}: {:?}", point.dir);
            assert_eq!(point.checkpoint.state.step, 200);
            let lines = point.fallback_lines();
            assert_eq!(lines.len(), 1, "{what}");
            assert!(lines[0].contains("step-000300") && lines[0].contains(reason), "{what}: {}", lines[0]);
            assert!(lines[0].ends_with("using step-000200, the newest intact checkpoint"), "{}", lines[0]);
        }
    }

    /// A non-finite weight is corruption even when its checksum matches (it was written so).
    #[test]
    fn non_finite_weights_fail_the_proof() {
        let d = tempfile::tempdir().unwrap();
        write_checkpoint(d.path(), &ckpt(100), 3).unwrap();
        let mut bad = ckpt(200);
        bad.model.insert("w", HostTensor { shape: vec![2], data: vec![f32::NAN, 1.0] });
        write_checkpoint(d.path(), &bad, 3).unwrap();
        let err = read_checkpoint(&checkpoints_dir(d.path()).join("step-000200")).err().unwrap();
        assert!(err.to_string().contains("tensor `w` holds a non-finite value"), "{err}");
        assert!(newest_intact_checkpoint(d.path()).unwrap().unwrap().dir.ends_with("step-000100"));
    }

    #[test]
    fn no_intact_checkpoint_lists_every_failure() {
        let d = tempfile::tempdir().unwrap();
        for s in [100, 200] {
            write_checkpoint(d.path(), &ckpt(s), 3).unwrap();
            damage(d.path(), s, "optim.safetensors", |b| b.truncate(10));
        }
        let err = newest_intact_checkpoint(d.path()).err().unwrap().to_string();
        assert!(
            err.contains("step-000200") && err.contains("step-000100") && err.contains("no intact checkpoint"),
            "{err}"
        );
    }

    #[test]
    fn fewer_steps_than_taken_are_refused() {
        assert!(check_continues(60, 60).is_ok());
        let err = check_continues(60, 30).unwrap_err().to_string();
        assert!(err.contains("train.steps = 30") && err.contains("already trained 60 steps"), "{err}");
    }

    /// A checkpoint from before checksums loads with its structure and weights checked, and says so.
    #[test]
    fn a_checkpoint_without_a_manifest_is_checked_without_sums() {
        let d = tempfile::tempdir().unwrap();
        write_checkpoint(d.path(), &ckpt(100), 3).unwrap();
        std::fs::remove_file(checkpoints_dir(d.path()).join("step-000100/manifest.json")).unwrap();
        let point = newest_intact_checkpoint(d.path()).unwrap().unwrap();
        assert_eq!(point.checkpoint.model.get("w").unwrap().data, vec![100.0, 1.0]);
        assert!(point.fallback_lines()[0].contains("written before genlab recorded checksums"));
        damage(d.path(), 100, "model.safetensors", |b| first_value(b).copy_from_slice(&f32::NAN.to_le_bytes()));
        let err = newest_intact_checkpoint(d.path()).err().unwrap().to_string();
        assert!(err.contains("holds a non-finite value"), "{err}");
    }

    /// A resume that fell back moves the damaged checkpoints aside and points `latest` back.
    #[test]
    fn passed_over_checkpoints_are_set_aside() {
        let d = tempfile::tempdir().unwrap();
        for s in [100, 200] {
            write_checkpoint(d.path(), &ckpt(s), 3).unwrap();
        }
        damage(d.path(), 200, "trainer.json", |b| b.push(b' '));
        let point = newest_intact_checkpoint(d.path()).unwrap().unwrap();
        let lines = point.set_aside_passed_over().unwrap();
        assert!(lines[0].ends_with("damaged-step-000200"), "{lines:?}");
        let again = newest_intact_checkpoint(d.path()).unwrap().unwrap();
        assert!(again.dir.ends_with("step-000100") && again.passed_over.is_empty());
        assert!(checkpoints_dir(d.path()).join("damaged-step-000200/model.safetensors").is_file());
    }
}
