//! Checkpoints: `checkpoints/step-000500/{model,ema,optim}.safetensors` and `trainer.json`,
//! written into a temporary directory, renamed into place, and only then pointed at by
//! `checkpoints/latest`. A crash at any instant leaves the previous checkpoint whole.

use crate::error::{Result, TrainError};
use genlab_core::atomic::{point_link, publish_dir, read_link, write_atomic};
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
}

pub struct Checkpoint {
    pub model: NamedTensors,
    pub ema: Option<NamedTensors>,
    pub optim: NamedTensors,
    pub state: TrainerState,
}

pub fn checkpoints_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

fn step_name(step: u64) -> String {
    format!("step-{step:06}")
}

/// Writes a checkpoint and moves `latest` to it; keeps the newest `keep` checkpoints.
pub fn write_checkpoint(run_dir: &Path, c: &Checkpoint, keep: usize) -> Result<PathBuf> {
    let root = checkpoints_dir(run_dir);
    std::fs::create_dir_all(&root).map_err(CoreError::io(&root))?;
    remove_stale_temporaries(&root)?;
    let name = step_name(c.state.step);
    let dest = root.join(&name);
    let tmp = root.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(CoreError::io(&tmp))?;
    c.model.save(&tmp.join("model.safetensors"))?;
    if let Some(ema) = &c.ema {
        ema.save(&tmp.join("ema.safetensors"))?;
    }
    c.optim.save(&tmp.join("optim.safetensors"))?;
    let json = serde_json::to_vec_pretty(&c.state).expect("trainer state should serialise");
    write_atomic(&tmp.join("trainer.json"), &json)?;
    publish_dir(&tmp, &dest)?;
    point_link(&root.join("latest"), &name)?;
    prune(&root, keep, &name)?;
    Ok(dest)
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

fn prune(root: &Path, keep: usize, latest: &str) -> Result<()> {
    let mut steps: Vec<(u64, String)> = std::fs::read_dir(root)
        .map_err(CoreError::io(root))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter_map(|n| Some((n.strip_prefix("step-")?.parse().ok()?, n)))
        .collect();
    // By step number: names grow a digit at step 1,000,000, so text order would be wrong.
    steps.sort();
    let excess = steps.len().saturating_sub(keep.max(1));
    for (_, old) in steps.into_iter().take(excess).filter(|(_, n)| n != latest) {
        let p = root.join(old);
        std::fs::remove_dir_all(&p).map_err(CoreError::io(&p))?;
    }
    Ok(())
}

/// The directory `checkpoints/latest` points at, if the run has one.
pub fn latest_checkpoint(run_dir: &Path) -> Result<Option<PathBuf>> {
    let link = checkpoints_dir(run_dir).join("latest");
    if std::fs::symlink_metadata(&link).is_err() {
        return Ok(None);
    }
    let target = checkpoints_dir(run_dir).join(read_link(&link)?);
    if !target.join("trainer.json").is_file() {
        return Err(TrainError::Checkpoint {
            path: target,
            reason: "`latest` points at a checkpoint without trainer.json".into(),
        });
    }
    Ok(Some(target))
}

/// Reads a checkpoint directory written by [`write_checkpoint`].
pub fn read_checkpoint(dir: &Path) -> Result<Checkpoint> {
    let state_path = dir.join("trainer.json");
    let bytes = std::fs::read(&state_path).map_err(CoreError::io(&state_path))?;
    let state: TrainerState = serde_json::from_slice(&bytes)
        .map_err(|e| TrainError::Checkpoint { path: state_path.clone(), reason: e.to_string() })?;
    let ema_path = dir.join("ema.safetensors");
    Ok(Checkpoint {
        model: NamedTensors::load(&dir.join("model.safetensors"))?,
        ema: if ema_path.is_file() { Some(NamedTensors::load(&ema_path)?) } else { None },
        optim: NamedTensors::load(&dir.join("optim.safetensors"))?,
        state,
    })
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
            },
        }
    }

    #[test]
    fn latest_moves_and_old_ones_are_pruned() {
        let d = tempfile::tempdir().unwrap();
        assert!(latest_checkpoint(d.path()).unwrap().is_none());
        for s in [100, 200, 300] {
            write_checkpoint(d.path(), &ckpt(s), 2).unwrap();
        }
        let latest = latest_checkpoint(d.path()).unwrap().unwrap();
        assert!(latest.ends_with("step-000300"));
        let c = read_checkpoint(&latest).unwrap();
        assert_eq!(c.model.get("w").unwrap().data, vec![300.0, 1.0]);
        let names: Vec<_> =
            std::fs::read_dir(checkpoints_dir(d.path())).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 3, "two checkpoints and `latest`: {names:?}");
    }
}
