//! One connection to a study database, SQLite (compiled in, one file) or PostgreSQL (a server),
//! behind the few calls the study needs. The SQL is written once with `?` placeholders; the
//! dialects differ only in the time functions and in how a writer takes the study's lock.

use crate::error::{Result, TuneError};
use postgres::types::{ToSql, Type};
use std::path::PathBuf;
use std::time::Duration;

/// A value read from or bound into a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
}

impl Cell {
    pub fn int(&self) -> Option<i64> {
        match self {
            Cell::Int(i) => Some(*i),
            Cell::Float(f) => Some(*f as i64),
            _ => None,
        }
    }
    pub fn float(&self) -> Option<f64> {
        match self {
            Cell::Int(i) => Some(*i as f64),
            Cell::Float(f) => Some(*f),
            _ => None,
        }
    }
    pub fn text(&self) -> Option<&str> {
        match self {
            Cell::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// Where a study lives, parsed from `--storage`: SQLAlchemy's URL forms, so the string a user
/// gives Optuna works here too (`sqlite:///relative.db`, `sqlite:////absolute.db`,
/// `postgresql://user@host:port/db`, `postgresql+psycopg2://...`).
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Location {
    pub fn parse(url: &str) -> Result<Location> {
        let bad = |why: &str| TuneError::Config(format!("--storage {url}: {why}"));
        if let Some(rest) = url.strip_prefix("sqlite:///") {
            if rest.is_empty() {
                return Err(bad("no database file after sqlite:///"));
            }
            return Ok(Location::Sqlite(PathBuf::from(rest)));
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad("expected sqlite:///FILE or postgresql://USER@HOST:PORT/DATABASE"));
        };
        match scheme.split('+').next() {
            Some("postgresql" | "postgres") => {
                let url = format!("postgresql://{rest}");
                url.parse::<postgres::Config>().map_err(|e| bad(&format!("not a PostgreSQL URL ({e})")))?;
                Ok(Location::Postgres(url))
            }
            Some("sqlite") => Err(bad("expected sqlite:///FILE (three slashes, then the path)")),
            _ => Err(bad(&format!("unknown database `{scheme}`: expected sqlite or postgresql"))),
        }
    }
}

pub enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

fn sqlite_err(e: rusqlite::Error) -> TuneError {
    TuneError::Storage(format!("SQLite: {e}"))
}

fn pg_err(e: postgres::Error) -> TuneError {
    let detail = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string());
    TuneError::Storage(format!("PostgreSQL: {detail}"))
}

impl Db {
    /// Connects; a SQLite file is created when missing (its directory must exist).
    pub fn connect(loc: &Location) -> Result<Db> {
        match loc {
            Location::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.is_dir()) {
                    return Err(TuneError::Config(format!(
                        "--storage sqlite:///{}: directory {} does not exist",
                        path.display(),
                        dir.display()
                    )));
                }
                let c = rusqlite::Connection::open(path).map_err(|e| {
                    TuneError::Storage(format!("{}: cannot open the study database: {e}", path.display()))
                })?;
                // Workers on one machine take turns on the file; a writer waits rather than fails.
                c.busy_timeout(Duration::from_secs(120)).map_err(sqlite_err)?;
                // Optuna's SQLAlchemy does not enforce foreign keys on SQLite either.
                Ok(Db::Sqlite(c))
            }
            Location::Postgres(url) => {
                let mut cfg: postgres::Config =
                    url.parse().map_err(|e| TuneError::Config(format!("--storage {url}: {e}")))?;
                cfg.connect_timeout(Duration::from_secs(10));
                let client = cfg
                    .connect(postgres::NoTls)
                    .map_err(|e| TuneError::Storage(format!("--storage {url}: cannot connect: {e}")))?;
                Ok(Db::Postgres(Box::new(client)))
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// Runs several `;`-separated statements without parameters.
    pub fn batch(&mut self, sql: &str) -> Result<()> {
        match self {
            Db::Sqlite(c) => c.execute_batch(sql).map_err(sqlite_err),
            Db::Postgres(c) => c.batch_execute(sql).map_err(pg_err),
        }
    }

    /// Runs one statement; returns the rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Cell]) -> Result<u64> {
        match self {
            Db::Sqlite(c) => {
                let mut st = c.prepare_cached(sql).map_err(sqlite_err)?;
                st.execute(rusqlite::params_from_iter(params.iter())).map(|n| n as u64).map_err(sqlite_err)
            }
            Db::Postgres(c) => {
                let owned = pg_params(params);
                let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
                c.execute(&numbered(sql), &refs).map_err(pg_err)
            }
        }
    }

    /// Runs one query; returns its rows.
    pub fn query(&mut self, sql: &str, params: &[Cell]) -> Result<Vec<Vec<Cell>>> {
        match self {
            Db::Sqlite(c) => {
                let mut st = c.prepare_cached(sql).map_err(sqlite_err)?;
                let n = st.column_count();
                let rows = st
                    .query_map(rusqlite::params_from_iter(params.iter()), |row| {
                        (0..n)
                            .map(|i| {
                                Ok(match row.get_ref(i)? {
                                    rusqlite::types::ValueRef::Null => Cell::Null,
                                    rusqlite::types::ValueRef::Integer(i) => Cell::Int(i),
                                    rusqlite::types::ValueRef::Real(f) => Cell::Float(f),
                                    rusqlite::types::ValueRef::Text(t) => {
                                        Cell::Text(String::from_utf8_lossy(t).into_owned())
                                    }
                                    rusqlite::types::ValueRef::Blob(b) => {
                                        Cell::Text(String::from_utf8_lossy(b).into_owned())
                                    }
                                })
                            })
                            .collect::<rusqlite::Result<Vec<Cell>>>()
                    })
                    .map_err(sqlite_err)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(sqlite_err)
            }
            Db::Postgres(c) => {
                let owned = pg_params(params);
                let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
                let rows = c.query(&numbered(sql), &refs).map_err(pg_err)?;
                rows.iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| {
                                let ty = row.columns()[i].type_().clone();
                                let cell = if ty == Type::INT4 {
                                    row.try_get::<_, Option<i32>>(i)
                                        .map(|v| v.map_or(Cell::Null, |v| Cell::Int(v as i64)))
                                } else if ty == Type::INT8 {
                                    row.try_get::<_, Option<i64>>(i).map(|v| v.map_or(Cell::Null, Cell::Int))
                                } else if ty == Type::FLOAT8 {
                                    row.try_get::<_, Option<f64>>(i).map(|v| v.map_or(Cell::Null, Cell::Float))
                                } else {
                                    row.try_get::<_, Option<String>>(i).map(|v| v.map_or(Cell::Null, Cell::Text))
                                };
                                cell.map_err(pg_err)
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// Starts a transaction that holds the study database's write lock until [`Db::commit`]:
    /// SQLite's `BEGIN IMMEDIATE`, PostgreSQL's transaction-scoped advisory lock. Claiming a
    /// trial and counting the budget happen under it, so two workers never take one grid point
    /// or overrun the budget.
    pub fn begin_locked(&mut self) -> Result<()> {
        let begun = match self {
            Db::Sqlite(_) => self.batch("BEGIN IMMEDIATE"),
            Db::Postgres(_) => self.batch("BEGIN; SELECT pg_advisory_xact_lock(7146231)"),
        };
        // PostgreSQL may have begun before the lock failed: leave no transaction open.
        if begun.is_err() {
            self.rollback();
        }
        begun
    }

    /// Commits; a failed commit is rolled back, so the connection stays usable.
    pub fn commit(&mut self) -> Result<()> {
        let done = self.batch("COMMIT");
        if done.is_err() {
            self.rollback();
        }
        done
    }

    pub fn rollback(&mut self) {
        let _ = self.batch("ROLLBACK");
    }

    /// Now in UTC, as Optuna (5.0) records `datetime_start` and `datetime_complete` (naive UTC).
    pub fn now_utc(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "strftime('%Y-%m-%d %H:%M:%f000', 'now')",
            Db::Postgres(_) => "CAST(clock_timestamp() AT TIME ZONE 'UTC' AS TIMESTAMP)",
        }
    }

    /// The database's clock as Optuna records heartbeats (`func.now()`: UTC on SQLite, the
    /// session's time zone on PostgreSQL), read when the statement runs, not when its
    /// transaction began (a worker may have waited for the lock).
    pub fn now_db(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "strftime('%Y-%m-%d %H:%M:%f000', 'now')",
            Db::Postgres(_) => "CAST(clock_timestamp() AS TIMESTAMP)",
        }
    }

    /// Seconds since the timestamp in `column`, by the database's clock.
    pub fn age_seconds(&self, column: &str) -> String {
        match self {
            Db::Sqlite(_) => format!("((julianday('now') - julianday({column})) * 86400.0)"),
            Db::Postgres(_) => format!(
                "CAST(EXTRACT(EPOCH FROM (CAST(clock_timestamp() AS TIMESTAMP) - {column})) AS DOUBLE PRECISION)"
            ),
        }
    }
}

impl rusqlite::ToSql for Cell {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value};
        Ok(match self {
            Cell::Null => ToSqlOutput::Owned(Value::Null),
            Cell::Int(i) => ToSqlOutput::Owned(Value::Integer(*i)),
            Cell::Float(f) => ToSqlOutput::Owned(Value::Real(*f)),
            Cell::Text(s) => ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(s.as_bytes())),
        })
    }
}

/// PostgreSQL's parameters: Optuna's integer columns are `INTEGER` (int4), so integers bind as
/// `i32`; a NULL is written into the SQL instead of bound.
fn pg_params(params: &[Cell]) -> Vec<Box<dyn ToSql + Sync>> {
    params
        .iter()
        .map(|c| -> Box<dyn ToSql + Sync> {
            match c {
                Cell::Int(i) => Box::new(*i as i32),
                Cell::Float(f) => Box::new(*f),
                Cell::Text(s) => Box::new(s.clone()),
                Cell::Null => Box::new(Option::<String>::None),
            }
        })
        .collect()
}

/// `?` placeholders as PostgreSQL's `$1, $2, ...` (the SQL here has no `?` in literals).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            Location::parse("sqlite:///runs/s/study.db").expect("ok"),
            Location::Sqlite("runs/s/study.db".into())
        );
        assert_eq!(Location::parse("sqlite:////tmp/x.db").expect("ok"), Location::Sqlite("/tmp/x.db".into()));
        assert!(matches!(Location::parse("postgresql+psycopg2://u@127.0.0.1:5432/db"), Ok(Location::Postgres(_))));
        for bad in ["mysql://x", "sqlite://x.db", "study.db", "postgresql://u@host:notaport/db"] {
            let e = Location::parse(bad).expect_err(bad).to_string();
            assert!(e.starts_with(&format!("--storage {bad}: ")), "{e}");
        }
        assert_eq!(numbered("a = ? AND b = ?"), "a = $1 AND b = $2");
    }
}
