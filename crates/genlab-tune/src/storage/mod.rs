//! The study database in Optuna's RDB schema (version 12, alembic head `v3.2.0.a`, as Optuna
//! 5.0.0 creates it), so `optuna.load_study(study_name=..., storage=URL)` reads a genlab study and
//! Optuna workers write to it. The tables are created from `sqlite.sql` / `postgresql.sql`, which
//! `make_schema.py` wrote from Optuna's own models.

pub mod db;

use crate::error::{Result, TuneError};
use crate::space::Distribution;
use crate::trial::{Direction, Trial, TrialState};
use db::{Cell, Db, Location};
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// Optuna's `SCHEMA_VERSION` for the tables below.
pub const SCHEMA_VERSION: i64 = 12;
/// Optuna's alembic head revision for that schema.
pub const ALEMBIC_REVISION: &str = "v3.2.0.a";
/// The Optuna release whose schema this is (recorded in `version_info.library_version`, which
/// Optuna only shows in messages).
pub const OPTUNA_VERSION: &str = "5.0.0";

const SQLITE_SCHEMA: &str = include_str!("sqlite.sql");
const POSTGRES_SCHEMA: &str = include_str!("postgresql.sql");

/// A study as stored: its id and direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StudyRecord {
    pub id: i64,
    pub direction: Direction,
}

pub struct Storage {
    db: Db,
    /// The URL it was opened with (for messages).
    pub url: String,
}

fn storage_err(url: &str) -> impl Fn(TuneError) -> TuneError + '_ {
    move |e| match e {
        TuneError::Storage(m) => TuneError::Storage(format!("--storage {url}: {m}")),
        other => other,
    }
}

impl Storage {
    /// Connects and makes sure the tables exist in the schema this genlab reads.
    pub fn open(url: &str) -> Result<Storage> {
        let loc = Location::parse(url)?;
        let db = Db::connect(&loc)?;
        let mut s = Storage { db, url: url.to_string() };
        s.ensure_schema().map_err(storage_err(url))?;
        Ok(s)
    }

    pub fn db(&mut self) -> &mut Db {
        &mut self.db
    }

    fn has_tables(&mut self) -> Result<bool> {
        let sql = if self.db.is_postgres() {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'alembic_version'"
        } else {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        };
        Ok(self.db.query(sql, &[])?[0][0].int() == Some(1))
    }

    fn ensure_schema(&mut self) -> Result<()> {
        if !self.has_tables()? {
            self.locked(Storage::create_schema)?;
        }
        let revision = self.db.query("SELECT version_num FROM alembic_version", &[])?;
        let version = self.db.query("SELECT schema_version, library_version FROM version_info", &[])?;
        let revision = revision.first().and_then(|r| r[0].text().map(str::to_string)).unwrap_or_default();
        let (schema, made_by) = version
            .first()
            .map(|r| (r[0].int().unwrap_or(-1), r[1].text().unwrap_or("?").to_string()))
            .unwrap_or((-1, "?".into()));
        if revision != ALEMBIC_REVISION || schema != SCHEMA_VERSION {
            return Err(TuneError::Storage(format!(
                "the study database has Optuna schema {schema} (alembic {revision}, set up by optuna {made_by}); genlab reads schema {SCHEMA_VERSION} (alembic {ALEMBIC_REVISION}, Optuna {OPTUNA_VERSION}): upgrade it with `optuna storage upgrade --storage URL`"
            )));
        }
        Ok(())
    }

    fn create_schema(&mut self) -> Result<()> {
        if self.has_tables()? {
            return Ok(()); // Another worker made them while this one waited for the lock.
        }
        let schema = if self.db.is_postgres() { POSTGRES_SCHEMA } else { SQLITE_SCHEMA };
        self.db.batch(schema)?;
        self.db.execute(
            "INSERT INTO version_info (version_info_id, schema_version, library_version) VALUES (1, ?, ?)",
            &[Cell::Int(SCHEMA_VERSION), Cell::Text(OPTUNA_VERSION.into())],
        )?;
        self.db
            .execute("INSERT INTO alembic_version (version_num) VALUES (?)", &[Cell::Text(ALEMBIC_REVISION.into())])?;
        Ok(())
    }

    /// The study named `name`, if it exists.
    pub fn find_study(&mut self, name: &str) -> Result<Option<StudyRecord>> {
        let rows = self.db.query(
            "SELECT s.study_id, CAST(d.direction AS TEXT) FROM studies s LEFT JOIN study_directions d ON d.study_id = s.study_id AND d.objective = 0 WHERE s.study_name = ?",
            &[Cell::Text(name.into())],
        )?;
        let Some(row) = rows.first() else { return Ok(None) };
        let id = row[0].int().expect("study_id should be an integer");
        let direction = match row[1].text() {
            Some("MAXIMIZE") => Direction::Maximize,
            Some("MINIMIZE") => Direction::Minimize,
            other => {
                return Err(TuneError::Study(format!(
                    "study {name}: direction {} is not one genlab can optimise (MINIMIZE or MAXIMIZE)",
                    other.unwrap_or("NOT_SET")
                )))
            }
        };
        let objectives = self.db.query("SELECT COUNT(*) FROM study_directions WHERE study_id = ?", &[Cell::Int(id)])?;
        if objectives[0][0].int().unwrap_or(0) > 1 {
            return Err(TuneError::Study(format!(
                "study {name} is multi-objective; genlab tune optimises one objective"
            )));
        }
        Ok(Some(StudyRecord { id, direction }))
    }

    /// Creates the study (under the lock, so two workers starting together make one).
    pub fn create_study(&mut self, name: &str, direction: Direction) -> Result<StudyRecord> {
        self.locked(|st| {
            if let Some(s) = st.find_study(name)? {
                return Ok(s);
            }
            let id = st
                .db
                .query("INSERT INTO studies (study_name) VALUES (?) RETURNING study_id", &[Cell::Text(name.into())])?
                [0][0]
                .int()
                .expect("study_id should be an integer");
            st.db.execute(
                &format!(
                    "INSERT INTO study_directions (direction, study_id, objective) VALUES ('{}', ?, 0)",
                    direction.as_str()
                ),
                &[Cell::Int(id)],
            )?;
            Ok(StudyRecord { id, direction })
        })
    }

    /// Runs `f` in a transaction that holds the study database's write lock
    /// ([`Db::begin_locked`]): committed when `f` succeeds, rolled back when it fails.
    pub fn locked<T>(&mut self, f: impl FnOnce(&mut Storage) -> Result<T>) -> Result<T> {
        self.db.begin_locked()?;
        match f(self) {
            Ok(v) => {
                self.db.commit()?;
                Ok(v)
            }
            Err(e) => {
                self.db.rollback();
                Err(e)
            }
        }
    }

    pub fn study_system_attr(&mut self, study: i64, key: &str) -> Result<Option<Json>> {
        let rows = self.db.query(
            "SELECT value_json FROM study_system_attributes WHERE study_id = ? AND \"key\" = ?",
            &[Cell::Int(study), Cell::Text(key.into())],
        )?;
        Ok(rows.first().and_then(|r| r[0].text().and_then(|t| serde_json::from_str(t).ok())))
    }

    pub fn set_study_system_attr(&mut self, study: i64, key: &str, value: &Json) -> Result<()> {
        self.set_attr("study_system_attributes", "study_id", study, key, value)
    }

    /// Sets `key` of the owner `id` in an attribute table (Optuna's `value_json`).
    fn set_attr(&mut self, table: &str, owner: &str, id: i64, key: &str, value: &Json) -> Result<()> {
        self.db.execute(
            &format!("INSERT INTO {table} ({owner}, \"key\", value_json) VALUES (?, ?, ?) ON CONFLICT ({owner}, \"key\") DO UPDATE SET value_json = excluded.value_json"),
            &[Cell::Int(id), Cell::Text(key.into()), Cell::Text(value.to_string())],
        )?;
        Ok(())
    }

    /// Every trial of the study, in number order.
    pub fn trials(&mut self, study: i64) -> Result<Vec<Trial>> {
        let s = [Cell::Int(study)];
        let rows = self.db.query(
            "SELECT trial_id, number, CAST(state AS TEXT), CAST(datetime_start AS TEXT), CAST(datetime_complete AS TEXT) FROM trials WHERE study_id = ? ORDER BY trial_id",
            &s,
        )?;
        let mut trials: Vec<Trial> = vec![];
        let mut index = BTreeMap::new();
        for r in rows {
            let id = r[0].int().expect("trial_id should be an integer");
            let state = r[2]
                .text()
                .and_then(TrialState::parse)
                .ok_or_else(|| TuneError::Storage(format!("trial {id}: unknown state {:?}", r[2])))?;
            index.insert(id, trials.len());
            trials.push(Trial {
                id,
                number: r[1].int().unwrap_or(trials.len() as i64),
                state,
                params: BTreeMap::new(),
                value: None,
                intermediate: BTreeMap::new(),
                system_attrs: BTreeMap::new(),
                user_attrs: BTreeMap::new(),
                started: r[3].text().map(str::to_string),
                completed: r[4].text().map(str::to_string),
            });
        }
        let at = |id: Option<i64>| id.and_then(|id| index.get(&id).copied());
        for r in self.db.query(
            "SELECT p.trial_id, p.param_name, p.param_value, p.distribution_json FROM trial_params p JOIN trials t ON t.trial_id = p.trial_id WHERE t.study_id = ?",
            &s,
        )? {
            if let (Some(i), Some(name), Some(v), Some(d)) = (at(r[0].int()), r[1].text(), r[2].float(), r[3].text()) {
                trials[i].params.insert(name.to_string(), (v, Distribution::from_json(d)?));
            }
        }
        for r in self.db.query(
            "SELECT v.trial_id, v.value, CAST(v.value_type AS TEXT) FROM trial_values v JOIN trials t ON t.trial_id = v.trial_id WHERE t.study_id = ? AND v.objective = 0",
            &s,
        )? {
            if let Some(i) = at(r[0].int()) {
                trials[i].value = Some(from_typed(r[1].float(), r[2].text()));
            }
        }
        for r in self.db.query(
            "SELECT v.trial_id, v.step, v.intermediate_value, CAST(v.intermediate_value_type AS TEXT) FROM trial_intermediate_values v JOIN trials t ON t.trial_id = v.trial_id WHERE t.study_id = ?",
            &s,
        )? {
            if let (Some(i), Some(step)) = (at(r[0].int()), r[1].int()) {
                trials[i].intermediate.insert(step, from_typed(r[2].float(), r[3].text()));
            }
        }
        for (table, user) in [("trial_system_attributes", false), ("trial_user_attributes", true)] {
            for r in self.db.query(
                &format!("SELECT a.trial_id, a.\"key\", a.value_json FROM {table} a JOIN trials t ON t.trial_id = a.trial_id WHERE t.study_id = ?"),
                &s,
            )? {
                if let (Some(i), Some(k), Some(v)) = (at(r[0].int()), r[1].text(), r[2].text()) {
                    let v = serde_json::from_str(v).unwrap_or(Json::Null);
                    let attrs = if user { &mut trials[i].user_attrs } else { &mut trials[i].system_attrs };
                    attrs.insert(k.to_string(), v);
                }
            }
        }
        trials.sort_by_key(|t| t.number);
        Ok(trials)
    }

    /// Adds a trial (call it under the lock): its number is the count of the study's trials
    /// before it, as Optuna numbers them.
    pub fn insert_trial(
        &mut self,
        study: i64,
        state: TrialState,
        params: &[(String, f64, Distribution)],
        system_attrs: &[(String, Json)],
    ) -> Result<(i64, i64)> {
        let start = if state == TrialState::Running { self.db.now_utc() } else { "NULL" };
        let id = self.db.query(
            &format!("INSERT INTO trials (number, study_id, state, datetime_start) VALUES (NULL, ?, '{}', {start}) RETURNING trial_id", state.as_str()),
            &[Cell::Int(study)],
        )?[0][0]
            .int()
            .expect("trial_id should be an integer");
        let number = self.db.query(
            "SELECT COUNT(*) FROM trials WHERE study_id = ? AND trial_id < ?",
            &[Cell::Int(study), Cell::Int(id)],
        )?[0][0]
            .int()
            .unwrap_or(0);
        self.db.execute("UPDATE trials SET number = ? WHERE trial_id = ?", &[Cell::Int(number), Cell::Int(id)])?;
        for (name, value, dist) in params {
            self.add_param(id, name, *value, dist)?;
        }
        for (k, v) in system_attrs {
            self.set_trial_system_attr(id, k, v)?;
        }
        if state == TrialState::Running {
            self.heartbeat(id)?;
        }
        Ok((id, number))
    }

    /// Records a parameter's internal value and distribution (`trial.suggest_*`).
    pub fn add_param(&mut self, trial: i64, name: &str, value: f64, dist: &Distribution) -> Result<()> {
        self.db.execute(
            "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) VALUES (?, ?, ?, ?)",
            &[Cell::Int(trial), Cell::Text(name.into()), Cell::Float(value), Cell::Text(dist.to_json())],
        )?;
        Ok(())
    }

    /// WAITING -> RUNNING; false when another worker took it first.
    pub fn start_waiting(&mut self, trial: i64) -> Result<bool> {
        let started = self.transition(trial, TrialState::Waiting, TrialState::Running, "datetime_start")?;
        if started {
            self.heartbeat(trial)?;
        }
        Ok(started)
    }

    /// Moves a trial from state `from` to `to`, stamping `time_column`; false (nothing written)
    /// when the trial was not in `from`, because another worker moved it first.
    fn transition(&mut self, trial: i64, from: TrialState, to: TrialState, time_column: &str) -> Result<bool> {
        let n = self.db.execute(
            &format!(
                "UPDATE trials SET state = '{}', {time_column} = {} WHERE trial_id = ? AND state = '{}'",
                to.as_str(),
                self.db.now_utc(),
                from.as_str()
            ),
            &[Cell::Int(trial)],
        )?;
        Ok(n == 1)
    }

    /// Records that the trial's worker is alive (Optuna's `trial_heartbeats`).
    pub fn heartbeat(&mut self, trial: i64) -> Result<()> {
        self.db.execute(
            &format!(
                "INSERT INTO trial_heartbeats (trial_id, heartbeat) VALUES (?, {now}) ON CONFLICT (trial_id) DO UPDATE SET heartbeat = excluded.heartbeat",
                now = self.db.now_db()
            ),
            &[Cell::Int(trial)],
        )?;
        Ok(())
    }

    /// `trial.report(value, step)`.
    pub fn report(&mut self, trial: i64, step: i64, value: f64) -> Result<()> {
        let (v, kind) = typed(value, true);
        self.db.execute(
            &format!(
                "INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, intermediate_value_type) VALUES (?, ?, {v}, '{kind}') ON CONFLICT (trial_id, step) DO UPDATE SET intermediate_value = excluded.intermediate_value, intermediate_value_type = excluded.intermediate_value_type"
            ),
            &[Cell::Int(trial), Cell::Int(step)],
        )?;
        Ok(())
    }

    pub fn set_trial_system_attr(&mut self, trial: i64, key: &str, value: &Json) -> Result<()> {
        self.set_attr("trial_system_attributes", "trial_id", trial, key, value)
    }

    pub fn set_trial_user_attr(&mut self, trial: i64, key: &str, value: &Json) -> Result<()> {
        self.set_attr("trial_user_attributes", "trial_id", trial, key, value)
    }

    /// Ends a running trial; false (and nothing written) when it is no longer running, because
    /// another worker failed it as stale.
    pub fn finish(&mut self, trial: i64, state: TrialState, value: Option<f64>) -> Result<bool> {
        self.locked(|st| {
            if !st.transition(trial, TrialState::Running, state, "datetime_complete")? {
                return Ok(false);
            }
            if let Some(v) = value {
                let (v, kind) = typed(v, false);
                st.db.execute(
                    &format!("INSERT INTO trial_values (trial_id, objective, value, value_type) VALUES (?, 0, {v}, '{kind}')"),
                    &[Cell::Int(trial)],
                )?;
            }
            Ok(true)
        })
    }

    /// Running trials of the study whose last heartbeat is older than `grace_s` seconds.
    pub fn stale_trials(&mut self, study: i64, grace_s: f64) -> Result<Vec<i64>> {
        let age = self.db.age_seconds("h.heartbeat");
        let rows = self.db.query(
            &format!(
                "SELECT t.trial_id, {age} FROM trials t JOIN trial_heartbeats h ON h.trial_id = t.trial_id WHERE t.study_id = ? AND t.state = 'RUNNING'"
            ),
            &[Cell::Int(study)],
        )?;
        Ok(rows.iter().filter(|r| r[1].float().is_some_and(|a| a > grace_s)).filter_map(|r| r[0].int()).collect())
    }

    /// RUNNING -> FAIL for a stale trial (under the lock); false when it had already moved on.
    pub fn fail_running(&mut self, trial: i64) -> Result<bool> {
        self.transition(trial, TrialState::Running, TrialState::Fail, "datetime_complete")
    }
}

/// Optuna stores infinities (and, for intermediate values, NaN) as NULL with a type tag.
fn typed(v: f64, nan_allowed: bool) -> (String, &'static str) {
    if v.is_nan() && nan_allowed {
        ("NULL".into(), "NAN")
    } else if v == f64::INFINITY {
        ("NULL".into(), "INF_POS")
    } else if v == f64::NEG_INFINITY {
        ("NULL".into(), "INF_NEG")
    } else {
        (crate::space::float_text(v), "FINITE")
    }
}

fn from_typed(v: Option<f64>, kind: Option<&str>) -> f64 {
    match kind {
        Some("INF_POS") => f64::INFINITY,
        Some("INF_NEG") => f64::NEG_INFINITY,
        Some("NAN") => f64::NAN,
        _ => v.unwrap_or(f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_storage() -> (tempfile::TempDir, Storage) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite:///{}", dir.path().join("study.db").display());
        let s = Storage::open(&url).expect("opens");
        (dir, s)
    }

    #[test]
    fn trials_round_trip_through_sqlite() {
        let (_dir, mut s) = temp_storage();
        let study = s.create_study("s", Direction::Maximize).expect("study");
        assert_eq!(s.find_study("s").expect("query"), Some(study));
        let d = Distribution::Int { low: 1, high: 9, log: true, step: 1 };
        let (a, n0) =
            s.insert_trial(study.id, TrialState::Running, &[("b".into(), 3.0, d.clone())], &[]).expect("insert");
        let (b, n1) = s
            .insert_trial(study.id, TrialState::Waiting, &[], &[("fixed_params".into(), serde_json::json!({"b": 4}))])
            .expect("insert");
        assert_eq!((n0, n1), (0, 1));
        s.report(a, 10, 0.5).expect("report");
        s.report(a, 20, f64::NAN).expect("report");
        assert!(s.finish(a, TrialState::Complete, Some(f64::INFINITY)).expect("finish"));
        assert!(!s.finish(a, TrialState::Fail, None).expect("finish twice"), "a finished trial stays finished");
        assert!(s.start_waiting(b).expect("start"));
        assert!(!s.start_waiting(b).expect("start twice"));
        let t = s.trials(study.id).expect("trials");
        assert_eq!(t[0].state, TrialState::Complete);
        assert_eq!(t[0].value, Some(f64::INFINITY));
        assert_eq!(t[0].params["b"], (3.0, d));
        assert_eq!(t[0].intermediate[&10], 0.5);
        assert!(t[0].intermediate[&20].is_nan());
        assert_eq!(t[1].state, TrialState::Running);
        assert_eq!(t[1].system_attrs["fixed_params"], serde_json::json!({"b": 4}));
        assert!(t[0].duration_s().is_some_and(|d| (0.0..60.0).contains(&d)));
    }

    #[test]
    fn a_foreign_schema_is_refused() {
        let (dir, mut s) = temp_storage();
        s.db().batch("UPDATE alembic_version SET version_num = 'v3.0.0.d'").expect("update");
        drop(s);
        let url = format!("sqlite:///{}", dir.path().join("study.db").display());
        let e = Storage::open(&url).err().expect("refused").to_string();
        assert!(e.contains("optuna storage upgrade"), "{e}");
    }
}
