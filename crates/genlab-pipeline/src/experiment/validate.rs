//! Checks of the shared sections that serde cannot express; each family checks its own section
//! (see [`crate::family::Family::check`]). Errors are `(key path, " = value: what was expected")`.

use super::{Experiment, Validation};
use crate::error::PipelineError;
use genlab_data::{DataKind, Split, Transform};
use genlab_eval::extract::FeatureNetwork;

pub(crate) type KeyError = (String, String);

impl Experiment {
    /// Range checks of `[problem]`, `[data]`, `[train]` and `[eval]`.
    pub(crate) fn validate(&self) -> Result<(), KeyError> {
        let t = &self.train;
        let err = |k: &str, m: String| Err((k.to_string(), m));
        self.post.validate()?;
        if let Err(why) = plain_name(&self.problem.name) {
            return err("problem.name", format!(" = {:?}: {why}", self.problem.name));
        }
        if t.batch_size == 0 {
            return err("train.batch_size", " = 0: expected at least 1".into());
        }
        if t.replicas == 0 || t.replicas > t.batch_size {
            return err(
                "train.replicas",
                format!(" = {}: expected 1 to train.batch_size ({})", t.replicas, t.batch_size),
            );
        }
        if t.steps == 0 {
            return err("train.steps", " = 0: expected at least 1".into());
        }
        if let Some(s) = t.max_seconds {
            if !(s > 0.0 && s.is_finite()) {
                return err("train.max_seconds", format!(" = {s}: expected a positive number of seconds"));
            }
        }
        if let Some(c) = t.clip_grad_norm {
            if !(c > 0.0) {
                return err("train.clip_grad_norm", format!(" = {c}: expected a positive number"));
            }
        }
        if let Some(p) = &t.privacy {
            p.validate("train.privacy").map_err(key_and_message)?;
            if t.clip_grad_norm.is_some() {
                return err(
                    "train.clip_grad_norm",
                    ": under train.privacy each example's gradient is clipped to train.privacy.max_grad_norm; remove train.clip_grad_norm".into(),
                );
            }
        }
        if let Some(e) = t.ema {
            if !(0.0..1.0).contains(&e) {
                return err("train.ema", format!(" = {e}: expected a decay in [0, 1)"));
            }
        }
        t.optimizer.validate("train.optimizer").map_err(key_and_message)?;
        if !(0.0..=1.0).contains(&t.schedule.min_ratio) {
            return err("train.schedule.min_ratio", format!(" = {}: expected a value in [0, 1]", t.schedule.min_ratio));
        }
        if let Some(st) = &self.stage1 {
            if st.run.is_none() && st.experiment.is_none() {
                return err(
                    "stage1",
                    ": expected run = \"runs/NAME\" (a finished run) or experiment = \"FILE.toml\" (run first)".into(),
                );
            }
        }
        Transform::validate(&self.data.transforms).map_err(|m| ("data.".to_string() + &m, String::new()))?;
        let v = self.data.validation;
        match (v.from, v.fraction) {
            (Some(_), None) => {}
            (None, Some(f)) if f > 0.0 && f < 1.0 => {}
            (None, Some(f)) => return err("data.validation.fraction", format!(" = {f}: expected a value in (0, 1)")),
            _ => return err("data.validation", ": expected { from = \"test\" } or { fraction = 0.1 }".into()),
        }
        for (key, v) in [
            ("train.log_every", t.log_every),
            ("train.checkpoint_every", t.checkpoint_every),
            ("train.eval_every", t.eval_every.unwrap_or(1)),
        ] {
            if v == 0 {
                return err(key, " = 0: expected at least 1".into());
            }
        }
        if t.keep_checkpoints == 0 {
            return err("train.keep_checkpoints", " = 0: expected at least 1".into());
        }
        let e = &self.eval;
        for (key, v) in [
            ("eval.batch_size", e.batch_size),
            ("eval.samples", e.samples),
            ("eval.periodic_examples", e.periodic_examples),
            ("eval.examples", e.examples.unwrap_or(1)),
            ("eval.memorisation_examples", e.memorisation_examples.unwrap_or(1)),
        ] {
            if v == 0 {
                return err(key, " = 0: expected at least 1".into());
            }
        }
        if e.samples > crate::generate::MAX_GRID {
            return err(
                "eval.samples",
                format!(" = {}: the sample grid holds at most {}", e.samples, crate::generate::MAX_GRID),
            );
        }
        if e.metric_samples == 1 || (2..10).contains(&e.metric_samples) {
            return err(
                "eval.metric_samples",
                format!(
                    " = {}: expected 0 (no sample metrics) or at least 10 (the Inception Score's 10 splits)",
                    e.metric_samples
                ),
            );
        }
        if e.metric_samples > 0 {
            if self.data.validation.from == Some(Split::Train) {
                return err(
                    "data.validation",
                    ": the sample metrics compare samples with held-out images; validating on the training split leaves none (use { from = \"test\" } or { fraction = 0.1 })".into(),
                );
            }
            if let Some(n) = e.examples.filter(|&n| n < 10) {
                return err(
                    "eval.examples",
                    format!(" = {n}: the sample metrics use these as reference images; expected at least 10"),
                );
            }
            if let Some(n) = e.memorisation_examples.filter(|&n| n < 2) {
                return err("eval.memorisation_examples", format!(" = {n}: expected at least 2"));
            }
        }
        if let Some(g) = self.problem.goal {
            if g.below.is_none() && g.above.is_none() {
                return err("problem.goal", ": expected a bound, `below = ...` or `above = ...`".into());
            }
            if g.metric.needs_samples() && e.metric_samples == 0 {
                return err(
                    "problem.goal.metric",
                    format!(" = \"{}\": needs eval.metric_samples (10000 is the usual count)", g.metric.key()),
                );
            }
        }
        if self.data.dataset.kind() == DataKind::Points {
            if self.data.validation != Validation::default() {
                return err(
                    "data.validation",
                    ": a toy dataset has its own fixed test split; leave validation out".into(),
                );
            }
            if !self.data.transforms.is_empty() {
                return err("data.transforms", ": a toy dataset takes no image transforms; expected []".into());
            }
        }
        Ok(())
    }

    /// Checks that need the data's `[channels, height, width]`: the MNIST LeNet reads 1x28x28.
    pub fn check_data_shape(&self, shape: [usize; 3]) -> Result<(), PipelineError> {
        let lenet = genlab_eval::lenet::LENET_INPUT;
        let key = if self.eval.metric_samples > 0 && self.eval.features == FeatureNetwork::MnistLenet {
            "eval.features"
        } else if self.deploy.feature_network == Some(FeatureNetwork::MnistLenet) {
            "deploy.feature_network"
        } else {
            return Ok(());
        };
        if shape == lenet {
            return Ok(());
        }
        Err(PipelineError::Config(format!(
            "{key} = \"mnist_lenet\": the MNIST LeNet reads 1x28x28 gray images, the data is {}x{}x{}{}",
            shape[0],
            shape[1],
            shape[2],
            if key == "eval.features" { " (use eval.features = \"inception\")" } else { "" }
        )))
    }
}

/// An optimiser's message `"train.optimizer.lr = -1: ..."` as (key, rest).
pub(crate) fn key_and_message(m: String) -> KeyError {
    let (k, rest) = m.split_once(' ').expect("optimizer messages start with the key");
    (k.to_string(), format!(" {rest}"))
}

/// A run's name becomes `runs/NAME`, so it must be one plain path component: not empty, no `/`
/// or `\`, no control character, not starting with `.` (no `.`, `..` or hidden directory), at
/// most 100 bytes. Spaces and any letters are fine (runs named so before still open).
fn plain_name(name: &str) -> Result<(), &'static str> {
    const WHY: &str =
        "expected a plain name (one path component: no '/', not starting with '.'), as it names runs/NAME";
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && !name.chars().any(|c| c == '/' || c == '\\' || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(WHY)
    }
}
