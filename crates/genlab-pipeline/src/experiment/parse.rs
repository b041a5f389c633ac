//! Reading an experiment file: TOML, then `--set key.path=value` overrides, then the shared
//! sections typed here and `[model]` typed by the family it names, then the checks. Every error is
//! one line naming `file:line`, the key path and what was expected.

use super::{DataConfig, DeployConfig, EvalConfig, Experiment, ModelSection, ProblemConfig, TrainConfig};
use crate::error::PipelineError;
use crate::registry;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::path::Path;

impl Experiment {
    /// Reads `path`, applies `overrides` (`key.path=value`), and checks every field.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Experiment, PipelineError> {
        // An experiment file is a page of TOML; 16 MiB bounds a wrong path (a device, a dataset).
        let bytes = genlab_core::files::read_regular(path, 16 << 20)
            .map_err(|e| PipelineError::Config(format!("{}: cannot read the experiment file: {e}", path.display())))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            PipelineError::Config(format!(
                "{}: the experiment file is not UTF-8 text (invalid byte at offset {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ))
        })?;
        Self::parse(&text, path, overrides)
    }

    /// Parses experiment text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<Experiment, PipelineError> {
        let at = |line: Option<usize>| match line {
            Some(l) => format!("{}:{l}", path.display()),
            None => path.display().to_string(),
        };
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e.span().map(|s| text[..s.start].lines().count().max(1));
            let msg: Vec<&str> = e.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            PipelineError::Config(format!("{}: TOML syntax: {}", at(line), msg.join("; ")))
        })?;
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        // `[model]` is typed by its family, so its errors name the family's keys (an internally
        // tagged enum would only say "data did not match").
        let mut model = match table.remove("model") {
            None => return Err(PipelineError::Config(format!("{}: missing section [model]", at(None)))),
            Some(toml::Value::Table(m)) => m,
            Some(other) => {
                return Err(PipelineError::Config(format!(
                    "{}: model: expected a table, found {}",
                    at(locate(text, "model")),
                    other.type_str()
                )))
            }
        };
        let tune: Option<genlab_tune::TuneConfig> = match table.remove("tune") {
            None => None,
            Some(t) => Some(typed(t, "tune.", |p| at(locate(text, p)))?),
        };
        let known = registry::names_quoted();
        let family = match model.remove("family") {
            None => {
                return Err(PipelineError::Config(format!(
                    "{}: model.family is missing: expected {known}",
                    at(locate(text, "model"))
                )))
            }
            Some(f) => f,
        };
        let entry = family.as_str().and_then(registry::find).ok_or_else(|| {
            PipelineError::Config(format!(
                "{}: model.family = {family}: expected {known} (`genlab families` lists them)",
                at(locate(text, "model.family"))
            ))
        })?;
        let moved = move_family_keys(&mut table, &mut model, entry.option_keys(), entry.name())
            .map_err(|(key, msg)| PipelineError::Config(format!("{}: {key}{msg}", at(locate(text, &key)))))?;
        // A moved key's errors point at the line where it is written, its old place.
        let written = |key: &str| {
            moved.iter().find(|(new, _)| key.starts_with(new.as_str())).map_or(key.to_string(), |m| m.1.clone())
        };
        let exp: SharedSections = typed(toml::Value::Table(table), "", |p| at(locate(text, p)))?;
        let fields = entry.parse_section(model, &|p: &str| at(locate(text, &written(p))))?;
        let e = Experiment {
            problem: exp.problem,
            data: exp.data,
            model: ModelSection { family: entry.name(), fields },
            train: exp.train,
            eval: exp.eval.unwrap_or_default(),
            deploy: exp.deploy.unwrap_or_default(),
            post: exp.post.unwrap_or_default(),
            stage1: exp.stage1,
            tune,
        };
        e.validate()
            .and_then(|()| entry.validate(&e))
            .map_err(|(key, msg)| PipelineError::Config(format!("{}: {key}{msg}", at(locate(text, &written(&key))))))?;
        Ok(e)
    }
}

/// The experiment without `[model]`, deserialised first.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SharedSections {
    problem: ProblemConfig,
    data: DataConfig,
    train: TrainConfig,
    eval: Option<EvalConfig>,
    deploy: Option<DeployConfig>,
    post: Option<genlab_post::PostConfig>,
    stage1: Option<super::StageConfig>,
}

/// Keys that were shared once and now belong to the family that uses them, with the value every
/// resolved `experiment.toml` of that time held when the family did not use them.
const MOVED: [(&str, &str, Option<f64>); 3] =
    [("eval", "iwae_k", Some(100.0)), ("eval", "temperature", Some(1.0)), ("train", "discriminator_optimizer", None)];

/// Moves a key of `MOVED` written in its old place (an older experiment file or run directory)
/// into the family's section when the family takes it; drops it when it holds the old default of
/// a family that never used it; otherwise names its new home.
/// Returns the (new, old) key paths of what it moved, so errors point at the line written.
fn move_family_keys(
    table: &mut toml::Table,
    model: &mut toml::Table,
    family_keys: &[&str],
    family: &str,
) -> Result<Vec<(String, String)>, (String, String)> {
    let mut moved = vec![];
    for (section, key, old_default) in MOVED {
        let Some(value) = table.get_mut(section).and_then(|s| s.as_table_mut()).and_then(|s| s.remove(key)) else {
            continue;
        };
        if family_keys.contains(&key) {
            if let Some(new) = model.get(key).filter(|new| **new != value) {
                let msg = format!(
                    " = {value}: the {family} family's `model.{key}` (= {new}) is this setting now; set it there"
                );
                return Err((format!("{section}.{key}"), msg));
            }
            model.insert(key.to_string(), value);
            moved.push((format!("model.{key}"), format!("{section}.{key}")));
        } else if old_default.is_none_or(|d| value.as_float().or(value.as_integer().map(|i| i as f64)) != Some(d)) {
            return Err((
                format!("{section}.{key}"),
                format!(" = {value}: not a setting of the {family} family (it moved into the section of the family that uses it, `model.{key}`)"),
            ));
        }
    }
    Ok(moved)
}

/// Deserialises `value` as `T`; the error names the key path (with `prefix`) and its location.
pub(crate) fn typed<T: DeserializeOwned>(
    value: toml::Value,
    prefix: &str,
    at: impl Fn(&str) -> String,
) -> Result<T, PipelineError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = format!("{prefix}{}", e.path());
        let key = key.trim_end_matches('.').trim_end_matches("?").to_string();
        let msg = e.inner().to_string();
        let msg = msg.lines().next().unwrap_or("").trim().to_string();
        if key.is_empty() || key == "." {
            PipelineError::Config(format!("{}: {msg}", at("")))
        } else {
            PipelineError::Config(format!("{}: {key}: {msg}", at(&key)))
        }
    })
}

/// Applies `key.path=value`; the value is read as TOML (`3`, `1e-3`, `"adam"`, `[1, 2]`), or as a
/// string when it does not parse.
pub fn apply_override(table: &mut toml::Table, spec: &str) -> Result<(), PipelineError> {
    let (key, raw) =
        spec.split_once('=').ok_or_else(|| PipelineError::Config(format!("--set {spec}: expected key.path=value")))?;
    let value: toml::Value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let parts: Vec<&str> = key.trim().split('.').collect();
    let mut cur = table;
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            cur.insert(p.to_string(), value);
            return Ok(());
        }
        let next = cur.entry(p.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = next.as_table_mut().ok_or_else(|| {
            PipelineError::Config(format!("--set {spec}: `{}` is not a table", parts[..=i].join(".")))
        })?;
    }
    Ok(())
}

/// The 1-based line where `key_path` (`train.optimizer.lr`) is written, or its nearest written
/// ancestor (`optimizer = { ... }` inside `[train]`).
pub fn locate(text: &str, key_path: &str) -> Option<usize> {
    let parts: Vec<&str> = key_path.split('.').filter(|p| !p.is_empty()).collect();
    let mut best: Option<(usize, usize)> = None; // (matched segments, line)
    let mut section: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if let Some(h) = l.strip_prefix('[').and_then(|h| h.split(']').next()) {
            section = h.trim_matches('[').split('.').map(|s| s.trim().to_string()).collect();
            let n = section.iter().zip(&parts).take_while(|(a, b)| a == *b).count();
            if n == section.len() && n > best.map_or(0, |b| b.0) {
                best = Some((n, i + 1));
            }
            continue;
        }
        let Some((k, _)) = l.split_once('=') else { continue };
        let k = k.trim().trim_matches('"');
        let full: Vec<&str> = section.iter().map(String::as_str).chain(k.split('.').map(str::trim)).collect();
        let n = full.iter().zip(&parts).take_while(|(a, b)| a == b).count();
        if n == full.len() && n > best.map_or(0, |b| b.0) {
            best = Some((n, i + 1));
        }
    }
    best.map(|b| b.1)
}
