//! `metrics.jsonl`: one JSON object per logged step or evaluation, appended and flushed as it goes.

use crate::error::{Result, TrainError};
use serde_json::{Map, Value};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

pub struct MetricLog {
    path: PathBuf,
    file: File,
}

impl MetricLog {
    /// Opens the log for appending. When resuming from `resume_step`, entries written after that
    /// step (by the run that was interrupted) are dropped first, so the log reads as one run.
    pub fn open(path: &Path, resume_step: Option<u64>) -> Result<Self> {
        if let Some(step) = resume_step {
            let kept: Vec<String> = read_metrics(path)?
                .into_iter()
                .filter(|m| m.get("step").and_then(Value::as_u64).is_some_and(|s| s <= step))
                .map(|m| Value::Object(m).to_string())
                .collect();
            let mut text = kept.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            genlab_core::atomic::write_atomic(path, text.as_bytes())?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(genlab_core::CoreError::io(path))?;
        Ok(MetricLog { path: path.to_path_buf(), file })
    }

    pub fn log(&mut self, entry: Map<String, Value>) -> Result<()> {
        let line = Value::Object(entry).to_string();
        writeln!(self.file, "{line}")
            .and_then(|_| self.file.flush())
            .map_err(|e| genlab_core::CoreError::Io { path: self.path.clone(), source: e }.into())
    }
}

/// Every entry of a metrics file; a missing file reads as empty.
pub fn read_metrics(path: &Path) -> Result<Vec<Map<String, Value>>> {
    let Ok(f) = File::open(path) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(genlab_core::CoreError::io(path))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(m)) => out.push(m),
            // A line cut short by a crash mid-write is the only kind expected; skip it.
            _ if i > 0 => continue,
            _ => {
                return Err(TrainError::Checkpoint {
                    path: path.to_path_buf(),
                    reason: format!("line {} is not a JSON object", i + 1),
                })
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resume_drops_entries_after_the_checkpoint() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("metrics.jsonl");
        let mut log = MetricLog::open(&p, None).unwrap();
        for s in [10u64, 20, 30] {
            log.log(json!({"step": s, "loss": 1.0}).as_object().unwrap().clone()).unwrap();
        }
        drop(log);
        let mut log = MetricLog::open(&p, Some(20)).unwrap();
        log.log(json!({"step": 30, "loss": 2.0}).as_object().unwrap().clone()).unwrap();
        let m = read_metrics(&p).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[2]["loss"], json!(2.0));
    }
}
