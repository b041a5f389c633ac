//! Pruners: stop a trial early on the validation values it reports at `eval_every`. The median
//! rule (Optuna's `MedianPruner`) and asynchronous successive halving (Li et al. 2020, ASHA,
//! <https://arxiv.org/abs/1810.05934>, as Optuna's `SuccessiveHalvingPruner`: rungs at
//! `min_resource * reduction_factor^(rate + rung)` steps; a trial goes on from a rung only if its
//! value is in the top `1 / reduction_factor` of the values recorded at that rung so far).

use crate::trial::{Direction, Trial, TrialState};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// `[tune] pruner = { kind = "asha", ... }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PrunerConfig {
    #[default]
    None,
    Median {
        /// Complete trials before anything is pruned.
        #[serde(default = "five")]
        startup: usize,
        /// Steps before a trial can be pruned.
        #[serde(default)]
        warmup: u64,
    },
    Asha {
        /// Steps of the first rung; by default 1/100 of the longest complete trial (Optuna's "auto").
        #[serde(default)]
        min_resource: Option<u64>,
        #[serde(default = "four")]
        reduction_factor: u64,
        #[serde(default)]
        min_early_stopping_rate: u32,
    },
}

fn five() -> usize {
    5
}
fn four() -> u64 {
    4
}

/// The pruner's answer, with what it records in the trial (ASHA's `completed_rung_N`).
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub prune: bool,
    pub record: Vec<(String, Json)>,
}

impl PrunerConfig {
    pub fn check(&self) -> Result<(), String> {
        match *self {
            PrunerConfig::Asha { reduction_factor, min_resource, .. } => {
                if reduction_factor < 2 {
                    return Err(format!("tune.pruner.reduction_factor = {reduction_factor}: expected at least 2"));
                }
                if min_resource == Some(0) {
                    return Err("tune.pruner.min_resource = 0: expected at least 1 step".into());
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Whether `trial` (which has just reported) should stop; `others` are the study's other trials.
    pub fn judge(&self, trial: &Trial, others: &[Trial], direction: Direction) -> Verdict {
        let keep = Verdict { prune: false, record: vec![] };
        let Some((step, value)) = trial.last_step() else { return keep };
        match *self {
            PrunerConfig::None => keep,
            PrunerConfig::Median { startup, warmup } => {
                let complete: Vec<&Trial> =
                    others.iter().filter(|t| t.state == TrialState::Complete && t.id != trial.id).collect();
                if complete.len() < startup || (step as u64) < warmup {
                    return keep;
                }
                let values: Vec<f64> = trial.intermediate.values().copied().filter(|v| !v.is_nan()).collect();
                let Some(best) = values.iter().copied().reduce(|a, b| if direction.better(b, a) { b } else { a })
                else {
                    return Verdict { prune: true, record: vec![] };
                };
                let at_step: Vec<f64> = complete
                    .iter()
                    .filter_map(|t| t.intermediate.get(&step).copied())
                    .filter(|v| !v.is_nan())
                    .collect();
                if at_step.is_empty() {
                    return keep;
                }
                let median = percentile(&at_step, 50.0);
                Verdict { prune: direction.better(median, best), record: vec![] }
            }
            PrunerConfig::Asha { min_resource, reduction_factor, min_early_stopping_rate } => {
                let min_resource = match min_resource {
                    Some(r) => r,
                    None => {
                        let longest = others
                            .iter()
                            .filter(|t| t.state == TrialState::Complete)
                            .filter_map(|t| t.last_step())
                            .map(|(s, _)| s)
                            .max();
                        match longest {
                            Some(s) => ((s / 100) as u64).max(1),
                            None => return keep,
                        }
                    }
                };
                let mut rung = 0u32;
                while trial.system_attrs.contains_key(&rung_key(rung)) {
                    rung += 1;
                }
                let mut record = vec![];
                loop {
                    let promotion =
                        min_resource.saturating_mul(reduction_factor.saturating_pow(min_early_stopping_rate + rung));
                    if (step as u64) < promotion {
                        return Verdict { prune: false, record };
                    }
                    if value.is_nan() {
                        return Verdict { prune: true, record };
                    }
                    let key = rung_key(rung);
                    record.push((key.clone(), serde_json::Number::from_f64(value).map_or(Json::Null, Json::Number)));
                    let mut competing: Vec<f64> = others
                        .iter()
                        .filter(|t| t.id != trial.id)
                        .filter_map(|t| t.system_attrs.get(&key).and_then(Json::as_f64))
                        .collect();
                    competing.push(value);
                    if !promotable(value, &mut competing, reduction_factor, direction) {
                        return Verdict { prune: true, record };
                    }
                    rung += 1;
                }
            }
        }
    }
}

fn rung_key(rung: u32) -> String {
    format!("completed_rung_{rung}")
}

/// Optuna's rule: in the top `len / reduction_factor` (at least the single best) of the rung.
fn promotable(value: f64, competing: &mut [f64], reduction_factor: u64, direction: Direction) -> bool {
    let k = (competing.len() / reduction_factor as usize).max(1) - 1;
    competing.sort_by(f64::total_cmp);
    match direction {
        Direction::Maximize => value >= competing[competing.len() - 1 - k],
        Direction::Minimize => value <= competing[k],
    }
}

/// numpy's default (linear) percentile.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q / 100.0 * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn trial(id: i64, state: TrialState, steps: &[(i64, f64)], attrs: &[(&str, f64)]) -> Trial {
        Trial {
            id,
            number: id,
            state,
            params: BTreeMap::new(),
            value: None,
            intermediate: steps.iter().copied().collect(),
            system_attrs: attrs.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect(),
            user_attrs: BTreeMap::new(),
            started: None,
            completed: None,
        }
    }

    #[test]
    fn median_prunes_above_the_median_of_complete_trials() {
        let others: Vec<Trial> = [1.0, 2.0, 3.0, 4.0, 5.0]
            .iter()
            .enumerate()
            .map(|(i, &v)| trial(i as i64, TrialState::Complete, &[(100, v)], &[]))
            .collect();
        let p = PrunerConfig::Median { startup: 5, warmup: 0 };
        assert!(p.judge(&trial(9, TrialState::Running, &[(100, 3.5)], &[]), &others, Direction::Minimize).prune);
        assert!(!p.judge(&trial(9, TrialState::Running, &[(100, 3.0)], &[]), &others, Direction::Minimize).prune);
        assert!(!p.judge(&trial(9, TrialState::Running, &[(100, 3.5)], &[]), &others, Direction::Maximize).prune);
        // Four complete trials are fewer than the startup count: nothing is pruned yet.
        assert!(!p.judge(&trial(9, TrialState::Running, &[(100, 9.0)], &[]), &others[..4], Direction::Minimize).prune);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.5);
    }

    #[test]
    fn asha_keeps_the_top_quarter_of_each_rung() {
        let p = PrunerConfig::Asha { min_resource: Some(100), reduction_factor: 4, min_early_stopping_rate: 0 };
        // Seven trials already passed rung 0 with 1..=7; with the eighth, 8 // 4 = 2 go on.
        let others: Vec<Trial> =
            (1..=7).map(|v| trial(v, TrialState::Complete, &[], &[("completed_rung_0", v as f64)])).collect();
        let v = p.judge(&trial(20, TrialState::Running, &[(100, 2.0)], &[]), &others, Direction::Minimize);
        assert!(!v.prune);
        assert_eq!(v.record, vec![("completed_rung_0".to_string(), serde_json::json!(2.0))]);
        assert!(p.judge(&trial(20, TrialState::Running, &[(100, 2.5)], &[]), &others, Direction::Minimize).prune);
        // Before the rung's step nothing is judged; the first trial at a rung always goes on.
        assert!(!p.judge(&trial(20, TrialState::Running, &[(99, 100.0)], &[]), &others, Direction::Minimize).prune);
        assert!(!p.judge(&trial(20, TrialState::Running, &[(100, 100.0)], &[]), &[], Direction::Minimize).prune);
        // A trial that passed rung 0 is next judged at rung 1 (400 steps).
        let t = trial(20, TrialState::Running, &[(100, 2.0), (200, 1.0)], &[("completed_rung_0", 2.0)]);
        assert_eq!(p.judge(&t, &others, Direction::Minimize), Verdict { prune: false, record: vec![] });
    }
}
