//! Issue 12: no input aborts, hangs or destroys work. Checkpoints prove themselves, a refused
//! command writes nothing, one command writes a run at a time, outputs never clobber, and what
//! cannot fit in memory is refused before it is allocated.

use super::{fails_with, genlab, stderr, write_config, SMALL};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// SMALL trained for `steps` steps into `d/run` (checkpoints every 5 steps, 3 kept).
fn trained(d: &Path, steps: u64) -> PathBuf {
    let cfg = write_config(d, SMALL);
    let run = d.join("run");
    let o = genlab()
        .args(["train", cfg.to_str().unwrap(), "--run-dir", run.to_str().unwrap()])
        .args(["--set", &format!("train.steps={steps}")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    run
}

/// Scales the first float of the first tensor of a safetensors file by 4: same size, new bytes.
fn scale_first_weight(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    let header = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
    let v = &mut b[8 + header..12 + header];
    let x = f32::from_le_bytes(v[..4].try_into().unwrap()) * 4.0;
    v.copy_from_slice(&x.to_le_bytes());
    std::fs::write(path, b).unwrap();
}

#[test]
fn issue12_a_damaged_checkpoint_is_named_and_the_newest_intact_one_is_used() {
    let d = tempfile::tempdir().unwrap();
    let run = trained(d.path(), 15);
    let r = run.to_str().unwrap();
    scale_first_weight(&run.join("checkpoints/step-000015/model.safetensors"));
    let warning = "checkpoints/step-000015: damaged checkpoint: model.safetensors does not match the SHA-256";
    let used = "using step-000010, the newest intact checkpoint";
    let out = d.path().join("s.png");
    let o = genlab().args(["sample", r, "-n", "4", "-o", out.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success() && stderr(&o).contains(warning) && stderr(&o).contains(used), "{}", stderr(&o));
    let o = genlab().args(["eval", r]).output().unwrap();
    assert!(o.status.success() && stderr(&o).contains(warning), "{}", stderr(&o));
    assert_eq!(super::eval_json(&run)["step"], 10, "evaluated the intact weights");
    // Resuming continues from step 10 and writes a good step 15 over the damaged one.
    let o = genlab().args(["train", "--resume", r, "--set", "train.steps=20"]).output().unwrap();
    assert!(o.status.success() && stderr(&o).contains(used), "{}", stderr(&o));
    let o = genlab().args(["eval", r]).output().unwrap();
    assert!(o.status.success() && !stderr(&o).contains("damaged"), "{}", stderr(&o));
    assert_eq!(super::eval_json(&run)["step"], 20);
}

#[test]
fn issue12_a_refused_resume_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let run = trained(d.path(), 10);
    let r = run.to_str().unwrap();
    let files = ["experiment.toml", "run.json", "metrics.jsonl"];
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(run.join(f)).unwrap()).collect();
    for (set, want) in [
        ("model.latent_dim=16", "has shape"),
        ("train.steps=5", "train.steps = 5, but the run has already trained 10 steps"),
    ] {
        let o = genlab().args(["train", "--resume", r, "--set", set]).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{set}: {}", stderr(&o));
        assert!(stderr(&o).contains(want) && !stderr(&o).contains("panicked"), "{set}: {}", stderr(&o));
        for (f, b) in files.iter().zip(&before) {
            assert!(std::fs::read(run.join(f)).unwrap() == *b, "{set}: {f} was rewritten");
        }
    }
}

#[test]
fn issue12_a_second_writer_is_refused_until_the_first_exits() {
    let d = tempfile::tempdir().unwrap();
    let run = trained(d.path(), 5);
    let r = run.to_str().unwrap();
    let mut first = genlab()
        .args(["train", "--resume", r, "--set", "train.steps=100000", "--set", "train.checkpoint_every=100000"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let holder = format!("pid {}", first.id());
    let t0 = Instant::now();
    while !std::fs::read_to_string(run.join(".lock")).unwrap_or_default().starts_with(&holder) {
        assert!(t0.elapsed() < Duration::from_secs(60), "the first resume never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    for args in [vec!["eval", r], vec!["train", "--resume", r, "--set", "train.optimizer.lr=1e-4"]] {
        let o = genlab().args(&args).output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("is in use by another genlab command") && err.contains(&holder), "{err}");
    }
    // SIGKILL: no handler runs, the lock file stays, and the kernel's lock goes with the process.
    first.kill().unwrap();
    first.wait().unwrap();
    let o = genlab().args(["eval", r]).output().unwrap();
    assert!(o.status.success(), "a crashed holder must not block: {}", stderr(&o));
}

#[test]
fn issue12_run_names_and_run_directories_never_escape_or_clobber() {
    let d = tempfile::tempdir().unwrap();
    for name in ["../../x", "/tmp/abs", "", ".", "a/b"] {
        let cfg = write_config(d.path(), &SMALL.replace("name = \"small\"", &format!("name = {name:?}")));
        fails_with(&["train", cfg.to_str().unwrap()], &["problem.name", "expected a plain name"]);
    }
    let cfg = write_config(d.path(), SMALL);
    let taken = d.path().join("taken");
    std::fs::create_dir(&taken).unwrap();
    let line = fails_with(&["train", cfg.to_str().unwrap(), "--run-dir", taken.to_str().unwrap()], &["exists"]);
    assert!(line.contains("--run-dir") && line.contains("--resume"), "{line}");
    assert!(!d.path().join("taken-2").exists(), "never a silent -2");
}

fn sha256(p: &Path) -> String {
    let o = Command::new("sha256sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap().to_string()
}

#[test]
fn issue12_sample_outputs_never_clobber_or_mislabel() {
    let d = tempfile::tempdir().unwrap();
    let run = trained(d.path(), 5);
    let r = run.to_str().unwrap();
    let model = run.join("checkpoints/latest/model.safetensors");
    let sum = sha256(&model);
    let sample = |out: &Path, extra: &[&str]| {
        genlab().args(["sample", r, "-n", "4", "-o", out.to_str().unwrap()]).args(extra).output().unwrap()
    };
    for (out, want) in [
        (model.clone(), "a run's checkpoints"),
        (run.join("checkpoints/new.png"), "a run's checkpoints"),
        (d.path().join("x.csv"), "written as a PNG grid (.png)"),
        (d.path().to_path_buf(), "is a directory"),
    ] {
        let o = sample(&out, &[]);
        assert!(o.status.code() == Some(1) && stderr(&o).contains(want), "{out:?}: {}", stderr(&o));
    }
    assert_eq!(sha256(&model), sum, "the checkpoint is untouched");
    let png = d.path().join("s.png");
    assert!(sample(&png, &[]).status.success());
    let o = sample(&png, &[]);
    assert!(
        o.status.code() == Some(1) && stderr(&o).contains("exists; give a new file name, or --force"),
        "{}",
        stderr(&o)
    );
    assert!(sample(&png, &["--force"]).status.success());
    // The Inception export onto its own source file.
    let src = d.path().join("weights.pt");
    std::fs::write(&src, b"not read").unwrap();
    let s = src.to_str().unwrap();
    fails_with(&["weights", "export-inception", s, "--weights", s], &["is the source weights file itself"]);
    assert_eq!(std::fs::read(&src).unwrap(), b"not read");
}

/// Runs genlab to completion and returns (exit code, stderr, seconds, peak RSS in bytes), the RSS
/// of this child alone (wait4), not of the test process.
// The child is reaped by wait4, which std's `Child` does not know of.
#[allow(clippy::zombie_processes)]
fn measured(cmd: &mut Command) -> (Option<i32>, String, f64, u64) {
    let t0 = Instant::now();
    let child = cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut err = child.stderr.unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).unwrap();
        s
    });
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: wait4 on our own child, writing into buffers we own.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, usage.as_mut_ptr()) };
    assert_eq!(waited, pid);
    let seconds = t0.elapsed().as_secs_f64();
    // SAFETY: wait4 succeeded, so it filled `usage`.
    let rss = unsafe { usage.assume_init() }.ru_maxrss as u64 * 1024;
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, reader.join().unwrap(), seconds, rss)
}

#[test]
fn issue12_what_cannot_fit_in_memory_is_refused_at_once() {
    let d = tempfile::tempdir().unwrap();
    let run = trained(d.path(), 5);
    let r = run.to_str().unwrap();
    let cfg = write_config(d.path(), SMALL);
    let c = cfg.to_str().unwrap();
    let resized = d.path().join("resized.toml");
    std::fs::write(&resized, SMALL.replace("transforms = [", "transforms = [{ resize = [20000, 20000] }, ")).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["train", c, "--set", "model.latent_dim=100000000"],
            "model.latent_dim = 100000000: the model's parameters",
        ),
        (vec!["train", resized.to_str().unwrap()], "resize to 20000x20000 of 60000 images needs about"),
        (
            vec!["train", c, "--set", "model.iwae_k=100000000"],
            "model.iwae_k = 100000000 (with eval.batch_size = 50) needs about",
        ),
        (vec!["train", c, "--set", "eval.metric_samples=100000000"], "eval.metric_samples = 100000000 needs about"),
        (
            vec!["train", c, "--set", "eval.samples=100000000"],
            "eval.samples = 100000000: the sample grid holds at most 10000",
        ),
        (
            vec!["sample", r, "-n", "100000000", "-o", "x.png"],
            "a grid holds at most 10000 images; write more with --format folder",
        ),
        (vec!["sample", r, "-n", "100000000", "--format", "folder", "-o", "x"], "-n 100000000 (images) needs about"),
        (vec!["train", c, "--set", "eval.batch_size=1000000000"], "eval.batch_size = 1000000000 needs about"),
        (vec!["data", "info", "/dev/zero"], "/dev/zero: not a regular file"),
        (vec!["run", "/dev/zero"], "/dev/zero: cannot read the experiment file: not a regular file"),
        (vec!["fid", r, r, "--weights", "/dev/zero"], "/dev/zero"),
    ];
    for (args, want) in cases {
        let cwd = tempfile::tempdir().unwrap();
        let (code, err, seconds, rss) = measured(genlab().current_dir(cwd.path()).args(&args));
        eprintln!("{args:?}: refused in {seconds:.2} s, peak RSS {} MB", rss >> 20);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(err.contains(want) && !err.contains("panicked"), "{args:?}: {err}");
        if want.contains("needs about") {
            assert!(err.contains("is available"), "{args:?}: {err}");
        }
        assert!(seconds < 1.0, "{args:?} took {seconds:.2} s to refuse");
        assert!(rss < 500 << 20, "{args:?} reached {} MB", rss >> 20);
        assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0, "{args:?} wrote something");
    }
}

#[test]
fn issue12_fid_on_mixed_sizes_says_what_to_do_in_its_own_terms() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a");
    std::fs::create_dir(&a).unwrap();
    image::GrayImage::new(28, 28).save(a.join("0.png")).unwrap();
    image::GrayImage::new(32, 32).save(a.join("1.png")).unwrap();
    let a = a.to_str().unwrap();
    let line = fails_with(&["fid", a, a], &["is 32x32", "genlab fid reads each folder at one image size"]);
    assert!(!line.contains("transform"), "{line}");
}

/// With the MNIST LeNet missing, a run trains and installs it (configs/mnist-lenet.toml, in full)
/// before its sample metrics, so a first run on a fresh machine reports them.
#[test]
fn issue12_a_missing_lenet_is_trained_and_installed_before_the_sample_metrics() {
    let d = tempfile::tempdir().unwrap();
    let weights = d.path().join("fresh-weights");
    let cfg = write_config(d.path(), SMALL);
    let o = genlab()
        .current_dir(d.path())
        .env("GENLAB_WEIGHTS_DIR", &weights)
        .args(["run", cfg.to_str().unwrap(), "--set", "train.steps=10"])
        .args(["--set", "eval.metric_samples=20", "--set", "eval.examples=20"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("the MNIST LeNet feature network is not installed: training it now"), "{err}");
    assert!(weights.join("mnist_lenet.safetensors").is_file(), "{err}");
    assert!(d.path().join("runs/mnist-lenet/report.md").is_file(), "the LeNet's own run directory");
    let report = std::fs::read_to_string(d.path().join("runs/small/report.md")).unwrap();
    assert!(report.contains("FID") && !report.contains("Skipped:"), "{report}");
}

#[test]
fn issue12_a_file_named_as_idx_gets_the_idx_readers_error() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("train-images-idx3-ubyte");
    std::fs::write(&f, "this is text, not IDX\n").unwrap();
    fails_with(&["data", "info", f.to_str().unwrap()], &["train-images-idx3-ubyte: not an IDX file", "magic number"]);
}

/// A checkpoint write that fails (here: the file-size limit, which fails a write as a full disk
/// does) removes its partial directory, names the free space, and leaves the last checkpoint.
#[test]
fn issue12_a_failed_checkpoint_write_removes_its_partial_directory() {
    let d = tempfile::tempdir().unwrap();
    let run = trained(d.path(), 10);
    let bin = env!("CARGO_BIN_EXE_genlab");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    // Ignored SIGXFSZ survives exec, so an oversized write fails with EFBIG instead of a signal.
    let script =
        format!("trap '' XFSZ; ulimit -f 64; exec {bin} train --resume {} --set train.steps=20", run.display());
    let o = Command::new("bash").args(["-c", &script]).env("GENLAB_DATA_DIR", data).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("step-000015: writing the checkpoint failed")
            && err.contains("its partial files were removed and the previous checkpoint is intact")
            && err.contains("free on its disk"),
        "{err}"
    );
    let names: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with('.') || n == "step-000015"), "{names:?}");
    let o = genlab().args(["eval", run.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success() && !stderr(&o).contains("damaged"), "{}", stderr(&o));
}
