//! Issue 16: `genlab tune`. The study is checked with Optuna itself (`optuna_client.py`, from the
//! virtualenv `scripts/test` makes, `GENLAB_PYTHON`), against genlab's own reading of the
//! database; workers are killed with SIGKILL mid-trial on SQLite and on a real PostgreSQL server
//! (Debian's, started here on a loopback port in a temporary directory); bad input is refused in
//! one line with the study left as it was.

use super::{fails_with, genlab, stderr, SMALL};
use genlab_tune::storage::Storage;
use genlab_tune::{Trial, TrialState};
use serde_json::Value as Json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn python() -> String {
    std::env::var("GENLAB_PYTHON")
        .unwrap_or_else(|_| panic!("GENLAB_PYTHON should name a Python with optuna (scripts/test makes one)"))
}

fn optuna(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/optuna_client.py");
    let o = Command::new(python()).arg(script).args(args).output().unwrap();
    assert!(o.status.success(), "optuna_client.py {args:?}: {}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

fn sqlite_url(p: &Path) -> String {
    format!("sqlite:///{}", p.display())
}

/// A tiny VAE study: each trial a 60-step run reporting `val_elbo` every 20 steps.
fn tiny_study(extra_tune: &str, steps: u64) -> String {
    let train = SMALL.replace("steps = 60", &format!("steps = {steps}\neval_every = 20"));
    format!(
        "{train}\n[tune]\nobjective = {{ metric = \"val_elbo\", direction = \"maximize\" }}\n{extra_tune}\n\n[tune.space]\n\"train.optimizer.lr\" = {{ float = [1e-3, 4e-3], log = true }}\n\"model.latent_dim\" = {{ int = [2, 8], step = 2 }}\n\"model.channels\" = {{ choices = [[8, 16], [4, 8]] }}\n"
    )
}

fn branin_study(extra: &str) -> String {
    format!("[tune]\nobjective = {{ function = \"branin\" }}\n{extra}\n")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn tune(args: &[&str], cwd: &Path) -> String {
    let o = genlab().current_dir(cwd).arg("tune").args(args).output().unwrap();
    assert!(o.status.success(), "genlab tune {args:?}: {}", stderr(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// The study's trials as genlab reads them.
fn trials(url: &str, study: &str) -> Vec<Trial> {
    let mut s = Storage::open(url).unwrap();
    let st = s.find_study(study).unwrap().expect("the study exists");
    s.trials(st.id).unwrap()
}

/// Optuna's view of the study equals genlab's, trial by trial; returns Optuna's dump.
fn same_as_optuna(url: &str, study: &str, direction: genlab_tune::Direction) -> Json {
    let dump: Json = serde_json::from_str(&optuna(&["dump", url, study])).unwrap();
    let ours = trials(url, study);
    let theirs = dump["trials"].as_array().unwrap();
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(theirs) {
        assert_eq!(Json::from(a.number), b["number"]);
        assert_eq!(a.state.as_str(), b["state"], "trial {}", a.number);
        for (name, (x, d)) in &a.params {
            assert_eq!(d.to_external(*x), b["params"][name], "trial {} {name}", a.number);
            let dj: Json = serde_json::from_str(&d.to_json()).unwrap();
            assert_eq!(dj, b["distributions"][name], "trial {} {name}", a.number);
        }
        assert_eq!(a.params.len(), b["params"].as_object().unwrap().len());
        assert_eq!(a.value.map(Json::from).unwrap_or(Json::Null), b["value"], "trial {}", a.number);
        let inter: serde_json::Map<String, Json> =
            a.intermediate.iter().map(|(k, v)| (k.to_string(), Json::from(*v))).collect();
        assert_eq!(Json::Object(inter), b["intermediate"], "trial {}", a.number);
    }
    let best = genlab_tune::study::best(&ours, direction);
    assert_eq!(best.map(|(n, _)| Json::from(n)).unwrap_or(Json::Null), dump["best"]["number"]);
    assert_eq!(best.map(|(_, v)| Json::from(v)).unwrap_or(Json::Null), dump["best"]["value"]);
    dump
}

#[test]
fn issue16_optuna_reads_a_training_study_with_pruning() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write(d.path(), "tiny.toml", &tiny_study("trials = 6\npruner = { kind = \"asha\", min_resource = 20, reduction_factor = 2 }\nsampler = { kind = \"tpe\", startup = 3 }\nstudy = \"tiny\"", 60));
    let out = tune(&[cfg.to_str().unwrap(), "--dir", "study"], d.path());
    let dir = d.path().join("study");
    assert!(out.contains("best trial "), "{out}");
    let url = sqlite_url(&dir.join("study.db"));
    let dump = same_as_optuna(&url, "tiny", genlab_tune::Direction::Maximize);
    assert_eq!(dump["direction"], "MAXIMIZE");
    let ours = trials(&url, "tiny");
    assert_eq!(ours.len(), 6);
    for t in &ours {
        assert!(matches!(t.state, TrialState::Complete | TrialState::Pruned), "trial {}: {:?}", t.number, t.state);
        // Each trial is a run directory whose experiment holds the trial's values.
        let exp = std::fs::read_to_string(dir.join(format!("trials/trial-{:04}/experiment.toml", t.number))).unwrap();
        let latent = t.params["model.latent_dim"].0 as i64;
        assert!(exp.contains(&format!("latent_dim = {latent}")), "trial {}: {exp}", t.number);
        assert!(!exp.contains("[tune"), "a trial's experiment runs on its own");
        assert!(!t.intermediate.is_empty(), "trial {} reported its validation", t.number);
    }
    let complete = ours.iter().filter(|t| t.state == TrialState::Complete).count();
    assert!(complete >= 1, "{ours:?}");
    // ASHA (rungs at 20 and 40 steps, the top half goes on) stopped some trials: each stopped at
    // once, at the validation that pruned it, and kept that step's checkpoint.
    let pruned: Vec<&Trial> = ours.iter().filter(|t| t.state == TrialState::Pruned).collect();
    assert!(!pruned.is_empty(), "{ours:?}");
    for t in pruned {
        let (step, _) = t.last_step().unwrap();
        assert!(step < 60, "trial {} ran to the end", t.number);
        assert!(t.system_attrs.contains_key("completed_rung_0"), "ASHA's record, as Optuna keeps it");
        let run = dir.join(format!("trials/trial-{:04}", t.number));
        assert_eq!(super::latest_step(&run), Some(step as u64), "trial {} checkpointed where it stopped", t.number);
    }
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    for want in [
        "# Study tiny",
        "## Optimisation history",
        "## Parameter importances",
        "plots/parallel.png",
        "optuna.load_study",
    ] {
        assert!(report.contains(want), "{want}: {report}");
    }
    for f in ["plots/history.png", "plots/intermediate.png", "plots/parallel.png", "best.toml"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    // The best trial's experiment runs as it is.
    let best = std::fs::read_to_string(dir.join("best.toml")).unwrap();
    assert!(best.contains("[model]") && !best.contains("[tune"), "{best}");
}

#[test]
fn issue16_optuna_and_genlab_workers_share_a_study() {
    let d = tempfile::tempdir().unwrap();
    let url = sqlite_url(&d.path().join("shared.db"));
    let cfg = write(d.path(), "b.toml", &branin_study("study = \"shared\"\ntrials = 8\nseed = 1"));
    tune(&[cfg.to_str().unwrap(), "--storage", &url], d.path());
    optuna(&["add", &url, "shared", "4"]);
    tune(&[cfg.to_str().unwrap(), "--storage", &url, "--trials", "16"], d.path());
    optuna(&["add", &url, "shared", "2"]);
    let dump = same_as_optuna(&url, "shared", genlab_tune::Direction::Minimize);
    let t = dump["trials"].as_array().unwrap();
    assert_eq!(t.len(), 18);
    let by_optuna: Vec<i64> =
        t.iter().filter(|t| t["user_attrs"]["worker"] == "optuna").map(|t| t["number"].as_i64().unwrap()).collect();
    assert_eq!(by_optuna, vec![8, 9, 10, 11, 16, 17]);
    assert!(t.iter().all(|t| t["state"] == "COMPLETE"));
}

#[test]
fn issue16_genlab_continues_an_optuna_study() {
    let d = tempfile::tempdir().unwrap();
    let url = sqlite_url(&d.path().join("optuna.db"));
    optuna(&["create", &url, "theirs", "5"]);
    // A trial Optuna queued (`enqueue_trial`) is the first genlab runs, with Optuna's values.
    optuna(&["enqueue", &url, "theirs"]);
    let cfg = write(d.path(), "b.toml", &branin_study("trials = 12"));
    tune(&[cfg.to_str().unwrap(), "--storage", &url, "--study", "theirs"], d.path());
    let dump = same_as_optuna(&url, "theirs", genlab_tune::Direction::Minimize);
    let t = dump["trials"].as_array().unwrap();
    assert_eq!(t.len(), 12);
    assert!(
        t[..5].iter().all(|t| t["user_attrs"]["worker"] == "optuna")
            && t[5..].iter().all(|t| t["user_attrs"].get("worker").is_none())
    );
    assert_eq!(t[5]["params"]["x0"], std::f64::consts::PI);
    assert!((t[5]["value"].as_f64().unwrap() - 0.397887357729738).abs() < 1e-5, "{}", t[5]);
    assert_eq!(dump["best"]["number"], 5);
}

#[test]
fn issue16_samplers_replay_with_their_seed() {
    let d = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: u64| -> Vec<Vec<f64>> {
        let cfg = write(
            d.path(),
            &format!("{name}.toml"),
            &branin_study(&format!("trials = 25\nseed = {seed}\nsampler = {{ kind = \"tpe\", startup = 5 }}")),
        );
        tune(&[cfg.to_str().unwrap(), "--dir", name], d.path());
        trials(&sqlite_url(&d.path().join(name).join("study.db")), name)
            .iter()
            .map(|t| t.params.values().map(|p| p.0).collect())
            .collect()
    };
    let (a, b, c) = (run("a", 5), run("b", 5), run("c", 6));
    assert_eq!(a, b, "the same seed proposes the same trials");
    assert_ne!(a, c);
}

/// A running trial's worker is SIGKILLed once the trial has a checkpoint; a second worker fails
/// it after the grace period, runs its parameters again, and completes the budget.
fn killed_worker_is_replaced(url: &str, d: &Path) {
    let cfg = write(
        d,
        "slow.toml",
        &tiny_study("study = \"slow\"\ntrials = 3\nworkers = 1\nheartbeat_seconds = 0.5\ngrace_seconds = 2.0\nsampler = { kind = \"random\" }", 600)
            .replace("checkpoint_every = 5", "checkpoint_every = 20"),
    );
    let dir = d.join("study");
    let args = ["tune", cfg.to_str().unwrap(), "--dir", dir.to_str().unwrap(), "--storage", url];
    let mut a = genlab().current_dir(d).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let first = dir.join("trials/trial-0000/checkpoints/latest");
    let t0 = Instant::now();
    while std::fs::read_link(&first).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(120), "trial 0 never checkpointed");
        std::thread::sleep(Duration::from_millis(20));
    }
    a.kill().unwrap(); // SIGKILL: no handler runs.
    a.wait().unwrap();
    let o = genlab().current_dir(d).args(args).output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("stopped beating"), "{err}");
    let all = trials(url, "slow");
    let numbers: BTreeSet<i64> = all.iter().map(|t| t.number).collect();
    assert_eq!(numbers.len(), all.len(), "trial numbers are unique");
    assert_eq!(all.len(), 4, "the budget of 3 plus the dead trial: {all:?}");
    let dead: Vec<&Trial> = all.iter().filter(|t| t.state == TrialState::Fail).collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].number, 0);
    let again: Vec<&Trial> = all.iter().filter(|t| t.retries() == Some(0)).collect();
    assert_eq!(again.len(), 1, "run again once");
    assert_eq!(again[0].params, dead[0].params, "with the same parameters");
    let finished = all.iter().filter(|t| matches!(t.state, TrialState::Complete | TrialState::Pruned)).count();
    assert_eq!(finished, 3, "the budget, each counted once");
    // The dead trial's run directory keeps its checkpoint.
    assert!(std::fs::read_link(&first).is_ok());
}

#[test]
fn issue16_a_killed_worker_s_trial_runs_again_sqlite() {
    let d = tempfile::tempdir().unwrap();
    killed_worker_is_replaced(&sqlite_url(&d.path().join("slow.db")), d.path());
}

#[test]
fn issue16_a_killed_worker_s_trial_runs_again_postgres() {
    let pg = Postgres::start();
    let d = tempfile::tempdir().unwrap();
    killed_worker_is_replaced(&pg.database("killed"), d.path());
}

#[test]
fn issue16_two_processes_share_a_postgres_grid_study() {
    let pg = Postgres::start();
    let url = pg.database("grid");
    let d = tempfile::tempdir().unwrap();
    let text = tiny_study("study = \"grid\"\nsampler = { kind = \"grid\" }\nworkers = 1", 40)
        .replace("{ float = [1e-3, 4e-3], log = true }", "{ choices = [2e-3] }");
    let (a, b) = (d.path().join("machine-a"), d.path().join("machine-b"));
    let mut children = vec![];
    for cwd in [&a, &b] {
        std::fs::create_dir_all(cwd).unwrap();
        let cfg = write(cwd, "grid.toml", &text);
        children.push(
            genlab()
                .current_dir(cwd)
                .args(["tune", cfg.to_str().unwrap(), "--storage", &url])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let all = trials(&url, "grid");
    assert_eq!(all.len(), 8, "4 latent sizes x 2 channel choices x 1 learning rate: {all:?}");
    let points: BTreeSet<String> =
        all.iter().map(|t| format!("{:?}", t.params.values().map(|p| p.0).collect::<Vec<_>>())).collect();
    assert_eq!(points.len(), 8, "no grid point twice");
    let ids: BTreeSet<i64> = all.iter().map(|t| t.system_attrs["grid_id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 8);
    assert!(all.iter().all(|t| t.state == TrialState::Complete));
    // Every trial ran on one of the two machines, in its own working directory.
    let ran = |m: &Path| -> BTreeSet<String> {
        std::fs::read_dir(m.join("runs/grid/trials"))
            .map(|r| r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    let (ra, rb) = (ran(&a), ran(&b));
    assert_eq!(ra.intersection(&rb).count(), 0);
    assert_eq!(ra.len() + rb.len(), 8);
    // Optuna reads the PostgreSQL study genlab made (its tables, enum types and all).
    same_as_optuna(&url, "grid", genlab_tune::Direction::Maximize);
}

#[test]
fn issue16_bad_tune_input_is_one_line_and_leaves_the_study_alone() {
    let d = tempfile::tempdir().unwrap();
    let base = tiny_study("trials = 2", 60);
    let bad = |name: &str, text: &str| write(d.path(), name, text);
    let cases: Vec<(PathBuf, Vec<&str>)> = vec![
        (
            bad("key.toml", &base.replace("\"model.latent_dim\"", "\"model.latnt_dim\"")),
            vec!["tune.space.\"model.latnt_dim\"", "latnt_dim"],
        ),
        (
            bad("empty.toml", &base.replace("choices = [[8, 16], [4, 8]]", "choices = []")),
            vec!["tune.space.model.channels", "at least one choice"],
        ),
        (
            bad("order.toml", &base.replace("float = [1e-3, 4e-3]", "float = [4e-3, 1e-3]")),
            vec!["tune.space.train.optimizer.lr", "low <= high"],
        ),
        (
            bad("log.toml", &base.replace("float = [1e-3, 4e-3]", "float = [0.0, 4e-3]")),
            vec!["tune.space.train.optimizer.lr", "log scale needs low > 0"],
        ),
        (
            bad("sampler.toml", &base.replace("trials = 2", "trials = 2\nsampler = { kind = \"annealing\" }")),
            vec!["tune.sampler", "annealing"],
        ),
        (
            bad("beat.toml", &base.replace("trials = 2", "trials = 2\nheartbeat_seconds = inf")),
            vec!["tune.heartbeat_seconds = inf", "at most 3600"],
        ),
        (
            bad("grid.toml", &base.replace("trials = 2", "trials = 2\nsampler = { kind = \"grid\" }")),
            vec!["tune.space.train.optimizer.lr", "the grid sampler needs discrete values"],
        ),
    ];
    for (cfg, want) in &cases {
        fails_with(&["tune", cfg.to_str().unwrap()], want);
    }
    let cfg = bad("ok.toml", &base);
    for (url, want) in [
        ("mysql://u@127.0.0.1/db", "unknown database `mysql`"),
        ("sqlite://study.db", "three slashes"),
        ("postgresql://genlab@127.0.0.1:1/none", "cannot connect"),
        ("postgresql://genlab@127.0.0.1:notaport/db", "not a PostgreSQL URL"),
    ] {
        fails_with(&["tune", cfg.to_str().unwrap(), "--storage", url], &["--storage", want]);
    }
    // A study made by Optuna to minimize Branin: resuming it to maximize, or with another space,
    // is refused, and the database is not touched.
    let url = sqlite_url(&d.path().join("made.db"));
    optuna(&["create", &url, "made", "3"]);
    let before = std::fs::read(d.path().join("made.db")).unwrap();
    fails_with(
        &["tune", cfg.to_str().unwrap(), "--storage", &url, "--study", "made"],
        &["made", "minimize", "maximize"],
    );
    let other = bad("h6.toml", &branin_study("trials = 5").replace("branin", "hartmann6"));
    fails_with(
        &["tune", other.to_str().unwrap(), "--storage", &url, "--study", "made"],
        &["made", "x0", "\"low\": 0.0"],
    );
    assert!(std::fs::read(d.path().join("made.db")).unwrap() == before, "a refused resume leaves the study as it was");
    // A genlab study remembers its space.
    let own = sqlite_url(&d.path().join("own.db"));
    let b = bad("b.toml", &branin_study("trials = 3\nstudy = \"own\""));
    tune(&[b.to_str().unwrap(), "--storage", &own], d.path());
    let before = std::fs::read(d.path().join("own.db")).unwrap();
    let r = bad("r.toml", &branin_study("trials = 3\nstudy = \"own\"").replace("branin", "rosenbrock"));
    fails_with(&["tune", r.to_str().unwrap(), "--storage", &own], &["own", "another search space", "x1 was"]);
    assert!(std::fs::read(d.path().join("own.db")).unwrap() == before);
}

/// A PostgreSQL server of its own: `initdb` in a temporary directory, listening on a free
/// loopback port, stopped when dropped. Debian's server will not run as root, so as root it runs
/// as the `postgres` user.
struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
}

impl Postgres {
    fn start() -> Postgres {
        let bin = std::env::var("GENLAB_PG_BIN").map(PathBuf::from).unwrap_or_else(|_| {
            let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                .expect("PostgreSQL should be installed (Debian's postgresql; scripts/test installs it)")
                .map(|e| e.unwrap().path().join("bin"))
                .filter(|p| p.join("initdb").is_file())
                .collect();
            found.sort();
            found.pop().expect("an initdb under /usr/lib/postgresql/*/bin")
        });
        let dir = tempfile::tempdir().unwrap();
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            let status =
                Command::new("chown").args(["-R", "postgres:postgres", dir.path().to_str().unwrap()]).status().unwrap();
            assert!(status.success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let data = dir.path().join("data");
        let sh = |cmd: String| {
            let mut c = if root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--", "sh", "-c", &cmd]);
                c
            } else {
                let mut c = Command::new("sh");
                c.args(["-c", &cmd]);
                c
            };
            let o = c.output().unwrap();
            assert!(o.status.success(), "{cmd}: {}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
        };
        sh(format!("{}/initdb -D {} -A trust -U genlab --no-sync >/dev/null", bin.display(), data.display()));
        sh(format!(
            "{}/pg_ctl -D {} -w -l {}/log -o \"-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off\" start >/dev/null",
            bin.display(),
            data.display(),
            dir.path().display(),
            dir.path().display()
        ));
        Postgres { dir, port, bin }
    }

    /// A new database's URL.
    fn database(&self, name: &str) -> String {
        let o = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "genlab", name])
            .output()
            .unwrap();
        assert!(o.status.success(), "createdb: {}", stderr(&o));
        format!("postgresql://genlab@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let cmd = format!("{}/pg_ctl -D {} -m immediate stop", self.bin.display(), data.display());
        let _ = if unsafe { libc::geteuid() } == 0 {
            Command::new("runuser").args(["-u", "postgres", "--", "sh", "-c", &cmd]).output()
        } else {
            Command::new("sh").args(["-c", &cmd]).output()
        };
    }
}
