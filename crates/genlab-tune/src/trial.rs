//! A trial as the study database records it, in Optuna's terms: its number, state, parameters
//! (internal representation and distribution), value, intermediate values and system attributes.

use crate::space::Distribution;
use serde_json::Value as Json;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrialState {
    Running,
    Complete,
    Pruned,
    Fail,
    Waiting,
}

impl TrialState {
    /// Optuna's name (the `trialstate` enum of its schema).
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Running => "RUNNING",
            TrialState::Complete => "COMPLETE",
            TrialState::Pruned => "PRUNED",
            TrialState::Fail => "FAIL",
            TrialState::Waiting => "WAITING",
        }
    }

    pub fn parse(s: &str) -> Option<TrialState> {
        Some(match s {
            "RUNNING" => TrialState::Running,
            "COMPLETE" => TrialState::Complete,
            "PRUNED" => TrialState::Pruned,
            "FAIL" => TrialState::Fail,
            "WAITING" => TrialState::Waiting,
            _ => return None,
        })
    }

    pub fn is_finished(self) -> bool {
        matches!(self, TrialState::Complete | TrialState::Pruned | TrialState::Fail)
    }
}

/// Which way the objective improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Minimize,
    Maximize,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Minimize => "MINIMIZE",
            Direction::Maximize => "MAXIMIZE",
        }
    }

    /// Whether `a` is better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Minimize => a < b,
            Direction::Maximize => a > b,
        }
    }

    /// The value as a loss (smaller is better).
    pub fn loss(self, v: f64) -> f64 {
        match self {
            Direction::Minimize => v,
            Direction::Maximize => -v,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// The database's `trial_id`.
    pub id: i64,
    /// The study's count of trials before this one (Optuna's `trial.number`).
    pub number: i64,
    pub state: TrialState,
    /// Name -> (internal value, distribution), as in `trial_params`.
    pub params: BTreeMap<String, (f64, Distribution)>,
    pub value: Option<f64>,
    /// Step -> value (NaN where Optuna stores `NAN`).
    pub intermediate: BTreeMap<i64, f64>,
    pub system_attrs: BTreeMap<String, Json>,
    pub user_attrs: BTreeMap<String, Json>,
    pub started: Option<String>,
    pub completed: Option<String>,
}

impl Trial {
    /// The last reported step and its value.
    pub fn last_step(&self) -> Option<(i64, f64)> {
        self.intermediate.iter().next_back().map(|(s, v)| (*s, *v))
    }

    /// The internal values of `names`, when the trial has all of them.
    pub fn values_of(&self, names: &[&str]) -> Option<Vec<f64>> {
        names.iter().map(|n| self.params.get(*n).map(|p| p.0)).collect()
    }

    /// The number of the trial this one retries (`RetryFailedTrialCallback`'s `failed_trial`).
    pub fn retries(&self) -> Option<i64> {
        self.system_attrs.get("failed_trial").and_then(Json::as_i64)
    }

    /// Seconds from start to completion, from the recorded times.
    pub fn duration_s(&self) -> Option<f64> {
        Some(seconds_of(self.completed.as_deref()?)? - seconds_of(self.started.as_deref()?)?)
    }
}

/// Seconds since 1970 of `YYYY-MM-DD HH:MM:SS[.ffffff]` (as the databases print timestamps).
pub fn seconds_of(t: &str) -> Option<f64> {
    let (date, time) = t.trim().split_once([' ', 'T'])?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut parts = time.split(':');
    let (h, min) = (parts.next()?.parse::<i64>().ok()?, parts.next()?.parse::<i64>().ok()?);
    let s: f64 = parts.next()?.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + (h * 3600 + min * 60) as f64 + s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps() {
        assert_eq!(super::seconds_of("1970-01-02 00:00:01.5"), Some(86_401.5));
        assert_eq!(super::seconds_of("2026-12-04 14:26:55.068099").map(|s| s.floor()), Some(1_796_394_415.0));
    }
}
