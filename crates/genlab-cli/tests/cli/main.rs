//! The `genlab` binary end to end, as a user runs it: resume after SIGKILL, bad input, sampling.
//! Regressions are named after the issue that asked for them (`issue2_...`).

mod diffusion;
mod hardening;
mod hybrid;
mod language;
mod molecules;
mod post;
mod privacy;
mod serve;
mod tune;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn genlab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_genlab"));
    c.env("GENLAB_DATA_DIR", Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"));
    c
}

/// A small conv VAE on MNIST that trains in seconds.
const SMALL: &str = r#"
[problem]
name = "small"
task = "test"
goal = { metric = "nll_nats", below = 400.0 }

[data]
dataset = "mnist"
transforms = ["scale_unit", "binarize"]

[model]
family = "vae"
architecture = "conv"
channels = [8, 16]
latent_dim = 4
iwae_k = 4

[train]
steps = 60
batch_size = 32
optimizer = { kind = "adam", lr = 2e-3 }
schedule = { kind = "cosine", warmup = 5 }
ema = 0.99
clip_grad_norm = 50.0
log_every = 5
checkpoint_every = 5

[eval]
examples = 100
samples = 16
"#;

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("exp.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs genlab expecting failure: exit code 1, exactly one `error:` line naming `want`, no panic,
/// and no run directory left behind (it runs in an empty directory, where `runs/` would appear).
fn fails_with(args: &[&str], want: &[&str]) -> String {
    let cwd = tempfile::tempdir().unwrap();
    let o = genlab().current_dir(cwd.path()).args(args).output().unwrap();
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0, "a failed command should leave nothing behind");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "should exit 1: {err}");
    assert!(!err.contains("panicked"), "must not panic: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "one error line: {err}");
    for w in want {
        assert!(lines[0].contains(w), "`{}` should mention {w:?}", lines[0]);
    }
    lines[0].to_string()
}

fn latest_step(run: &Path) -> Option<u64> {
    let target = std::fs::read_link(run.join("checkpoints/latest")).ok()?;
    target.to_string_lossy().strip_prefix("step-")?.parse().ok()
}

/// Starts `genlab train CFG --run-dir DIR`, SIGKILLs it (no handler runs) once a checkpoint of
/// step `after` or later exists, and returns that latest step, checked to be before `total`.
fn kill_after_checkpoint(cfg: &Path, dir: &Path, after: u64, total: u64) -> u64 {
    let mut child = genlab()
        .args(["train", cfg.to_str().unwrap(), "--run-dir", dir.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while latest_step(dir).is_none_or(|s| s < after) {
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let at = latest_step(dir).unwrap();
    assert!(at < total, "the run should have been killed mid-way, not after finishing (latest step {at})");
    at
}

/// `genlab train --resume KILLED`, then the latest checkpoint's `files` must equal `whole`'s.
fn resume_matches(killed: &Path, whole: &Path, at: u64, files: &[&str]) {
    let o = genlab().args(["train", "--resume", killed.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for f in files {
        let a = std::fs::read(whole.join("checkpoints/latest").join(f)).unwrap();
        let b = std::fs::read(killed.join("checkpoints/latest").join(f)).unwrap();
        assert!(a == b, "{f} differs after resuming from step {at}");
    }
}

#[test]
fn issue2_resume_after_sigkill_is_bit_for_bit() {
    let d = tempfile::tempdir().unwrap();
    // 600 training images: 18 batches an epoch, so the kill and the resume cross epoch boundaries.
    let cfg = write_config(
        d.path(),
        &SMALL.replace("steps = 60", "steps = 150").replace("[data]", "[data]\nvalidation = { fraction = 0.99 }"),
    );
    let whole = d.path().join("whole");
    let o = genlab().args(["train", cfg.to_str().unwrap(), "--run-dir", whole.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let killed = d.path().join("killed");
    let at = kill_after_checkpoint(&cfg, &killed, 40, 150);
    resume_matches(&killed, &whole, at, &["model.safetensors", "ema.safetensors", "optim.safetensors"]);
}

#[test]
fn issue2_run_writes_report_samples_and_plots() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(d.path(), SMALL);
    let run = d.path().join("run");
    let o = genlab()
        .args([
            "run",
            cfg.to_str().unwrap(),
            "--run-dir",
            run.to_str().unwrap(),
            "--set",
            "train.eval_every=30",
            "--set",
            "model.latent_dim=2",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("goal MET"), "{out}");
    let eval: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("eval.json")).unwrap()).unwrap();
    let nll = eval["likelihood"]["nll_nats"].as_f64().unwrap();
    assert!(nll > 50.0 && nll < 400.0 && eval["likelihood"]["examples"] == 100, "a trained model's NLL: {eval}");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    for want in [
        "# small",
        "**Goal.** MET",
        "NLL, minus the IWAE bound with k = 4",
        "![loss curve](plots/loss.png)",
        "| NLL in bits per dimension |",
        "samples/reconstructions.png",
        "| device | flex",
    ] {
        assert!(report.contains(want), "report should contain {want:?}:\n{report}");
    }
    for f in [
        "experiment.toml",
        "run.json",
        "eval.json",
        "metrics.jsonl",
        "plots/loss.png",
        "samples/samples.png",
        "samples/interpolation.png",
        "samples/step-000030.png",
        "plots/latent.png",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    // The resolved experiment reproduces the run's settings, override included.
    let resolved = std::fs::read_to_string(run.join("experiment.toml")).unwrap();
    assert!(resolved.contains("eval_every = 30"), "{resolved}");

    let grid = d.path().join("grid.png");
    let o = genlab()
        .args(["sample", run.to_str().unwrap(), "-n", "9", "--seed", "3", "-o", grid.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let img = image::open(&grid).unwrap();
    assert_eq!(
        (img.width(), img.height()),
        (3 * 30 + 2, 3 * 30 + 2),
        "a 3x3 grid of 28-pixel images with 2-pixel borders"
    );
    let folder = d.path().join("samples");
    let o = genlab()
        .args(["sample", run.to_str().unwrap(), "-n", "7", "--format", "folder", "-o", folder.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 7);
    assert_eq!(image::open(folder.join("000006.png")).unwrap().width(), 28);
    fails_with(
        &["sample", run.to_str().unwrap(), "-n", "3", "--format", "folder", "-o", folder.to_str().unwrap()],
        &["not an empty directory"],
    );
    // A request the family cannot honour is refused in one line naming the family (issue 11).
    fails_with(
        &["sample", run.to_str().unwrap(), "--temperature", "0.5", "-o", "t.png"],
        &["temperature", "the vae family"],
    );
    fails_with(&["sample", run.to_str().unwrap(), "--prompt", "To be", "-o", "t.png"], &["prompt", "the vae family"]);
    fails_with(&["sample", run.to_str().unwrap(), "--class", "1", "-o", "t.png"], &["class", "the vae family"]);
    let o = genlab().args(["eval", run.to_str().unwrap()]).output().unwrap();
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("100 evaluation examples"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn issue2_bad_experiment_files() {
    let d = tempfile::tempdir().unwrap();
    let path = |name: &str, text: &str| {
        let p = d.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let p = path("unknown.toml", &SMALL.replace("latent_dim = 4", "latent_dims = 4"));
    fails_with(&["run", &p], &["unknown.toml:15", "model.latent_dims", "unknown field"]);
    let p = path("type.toml", &SMALL.replace("steps = 60", "steps = \"sixty\""));
    fails_with(&["run", &p], &["type.toml:19", "train.steps", "expected u64"]);
    let p = path("batch.toml", &SMALL.replace("batch_size = 32", "batch_size = 0"));
    fails_with(&["run", &p], &["batch.toml:20", "train.batch_size = 0", "at least 1"]);
    let p = path("ok.toml", SMALL);
    fails_with(&["run", &p, "--set", "train.batch_size=0"], &["train.batch_size = 0"]);
    fails_with(&["run", &d.path().join("absent.toml").to_string_lossy()], &["absent.toml"]);
    let p = path("missing.toml", &SMALL.replace("dataset = \"mnist\"", "dataset = { idx = \"/nonexistent/digits\" }"));
    fails_with(&["run", &p], &["/nonexistent/digits", "no such file"]);
}

#[test]
fn issue2_bad_data_files() {
    use flate2::write::GzEncoder;
    use std::io::Write;
    let d = tempfile::tempdir().unwrap();
    // A truncated gzip IDX file, as a download cut short leaves it.
    let idx = d.path().join("trunc");
    std::fs::create_dir(&idx).unwrap();
    let good = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist/t10k-images-idx3-ubyte.gz"))
        .unwrap();
    std::fs::write(idx.join("train-images-idx3-ubyte.gz"), &good[..good.len() / 2]).unwrap();
    let cfg = write_config(
        d.path(),
        &SMALL.replace("dataset = \"mnist\"", &format!("dataset = {{ idx = \"{}\" }}", idx.display())),
    );
    fails_with(&["run", cfg.to_str().unwrap()], &["train-images-idx3-ubyte.gz", "truncated"]);
    // A raw IDX file whose header declares more images than it holds.
    let mut raw = vec![0u8, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 28, 0, 0, 0, 28];
    raw.extend(vec![0u8; 28 * 28 * 9]);
    std::fs::write(idx.join("train-images-idx3-ubyte.gz"), {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        gz.finish().unwrap()
    })
    .unwrap();
    fails_with(
        &["run", cfg.to_str().unwrap()],
        &["train-images-idx3-ubyte.gz", "declare 7840 data bytes", "truncated"],
    );
    // A corrupt magic number.
    raw[0] = 7;
    std::fs::write(idx.join("train-images-idx3-ubyte.gz"), &raw).unwrap();
    fails_with(&["data", "info", idx.to_str().unwrap()], &["magic number"]);
    // An image folder with two sizes.
    let imgs = d.path().join("imgs");
    std::fs::create_dir_all(imgs.join("a")).unwrap();
    image::GrayImage::new(28, 28).save(imgs.join("a/1.png")).unwrap();
    image::GrayImage::new(32, 28).save(imgs.join("a/2.png")).unwrap();
    let cfg = write_config(
        d.path(),
        &SMALL
            .replace("dataset = \"mnist\"", &format!("dataset = {{ images = \"{}\" }}", imgs.display()))
            .replace("[data]", "[data]\nvalidation = { fraction = 0.5 }"),
    );
    fails_with(&["run", cfg.to_str().unwrap()], &["2.png", "32x28", "1.png", "28x28", "resize"]);
}

#[test]
fn issue2_ctrl_c_writes_a_checkpoint_and_resumes() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(
        d.path(),
        &SMALL.replace("steps = 60", "steps = 100000").replace("checkpoint_every = 5", "checkpoint_every = 100000"),
    );
    let run = d.path().join("run");
    let child = genlab()
        .args(["train", cfg.to_str().unwrap(), "--run-dir", run.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !run.join("metrics.jsonl").is_file()
        || std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().count() < 2
    {
        assert!(t0.elapsed() < Duration::from_secs(120), "training did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("resume with: genlab train --resume"), "{out}");
    let step = latest_step(&run).expect("Ctrl-C should write a checkpoint");
    assert!((10..100000).contains(&step), "checkpoint of the step reached: {step}");
    // The interrupted run continues from there (a short continuation: fewer total steps).
    let resolved = std::fs::read_to_string(run.join("experiment.toml"))
        .unwrap()
        .replace("steps = 100000", &format!("steps = {}", step + 3));
    std::fs::write(run.join("experiment.toml"), resolved).unwrap();
    let o = genlab().args(["train", "--resume", run.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(latest_step(&run), Some(step + 3));
}

#[test]
fn issue2_nan_loss_stops_and_keeps_the_last_good_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(
        d.path(),
        &SMALL
            .replace("lr = 2e-3", "lr = 1e6")
            .replace("clip_grad_norm = 50.0", "")
            .replace("checkpoint_every = 5", "checkpoint_every = 1")
            .replace("warmup = 5", "warmup = 0"),
    );
    let run = d.path().join("run");
    let line = fails_with(
        &["train", cfg.to_str().unwrap(), "--run-dir", run.to_str().unwrap()],
        &["step 2: loss is", "step-000001", "is kept"],
    );
    assert!(line.contains("inf") || line.contains("NaN"), "{line}");
    let kept = std::fs::read_link(run.join("checkpoints/latest")).unwrap();
    assert_eq!(kept, Path::new("step-000001"));
    let o = genlab()
        .args(["sample", run.to_str().unwrap(), "-n", "4", "-o", d.path().join("s.png").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "the kept checkpoint loads: {}", stderr(&o));
}

#[test]
fn issue3_data_export_writes_a_png_folder() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("test");
    let o = genlab()
        .args(["data", "export", "mnist", "--split", "test", "-n", "5", "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), format!("5 images in {}", out.display()));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 5);
}

#[test]
fn issue2_data_info_on_an_image_folder() {
    let d = tempfile::tempdir().unwrap();
    for (class, n) in [("cats", 2), ("dogs", 3)] {
        std::fs::create_dir_all(d.path().join(class)).unwrap();
        for i in 0..n {
            image::RgbImage::from_pixel(5, 4, image::Rgb([10, 20, 30]))
                .save(d.path().join(class).join(format!("{i}.png")))
                .unwrap();
        }
    }
    let o = genlab().args(["data", "info", d.path().to_str().unwrap()]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("Train: 5 images, shape [1, 4, 5]") && out.contains("cats:2 dogs:3"), "{out}{}", stderr(&o));
}

/// Writes MNIST test digits `range` as PNG files into `dir`.
fn digits_folder(dir: &Path, range: std::ops::Range<usize>) {
    let mnist = genlab_data::DatasetSource::Named(genlab_data::DatasetName::Mnist)
        .load_images(genlab_data::Split::Test, &[])
        .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    for i in range {
        let px = mnist.pixels[i * 784..(i + 1) * 784].to_vec();
        image::GrayImage::from_raw(28, 28, px).unwrap().save(dir.join(format!("{i:05}.png"))).unwrap();
    }
}

/// Needs the FID Inception weights (`.ci/run` fetches them with scripts/fetch-fid-inception.sh).
#[test]
fn issue3_fid_between_two_folders_prints_value_and_protocol() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    digits_folder(&a, 0..12);
    digits_folder(&b, 12..24);
    let o = genlab().args(["fid", a.to_str().unwrap(), b.to_str().unwrap(), "--all"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    let fid: f64 = out.lines().next().unwrap().strip_prefix("FID ").unwrap().parse().unwrap();
    assert!(fid > 1.0 && fid < 1000.0, "{out}");
    for want in [
        "KID ",
        "precision ",
        "weights sha1 a16e4d89c0ecbc17a915dd76ea9e41211aa82562",
        "protocol pytorch-fid (x / 255, bilinear",
        "12 vs 12 images",
        "gray images replicated to RGB",
    ] {
        assert!(out.contains(want), "{want:?} in {out}");
    }
    let o =
        genlab().args(["fid", a.to_str().unwrap(), b.to_str().unwrap(), "--protocol", "clean-fid"]).output().unwrap();
    let clean = String::from_utf8_lossy(&o.stdout);
    assert!(
        clean.contains("protocol clean-fid (Pillow bicubic") && !clean.starts_with(&format!("FID {fid:.4}")),
        "a different protocol gives a different number: {clean}"
    );
    // The weights as a safetensors copy give the same number, and the protocol names the source.
    let st = d.path().join("fid_inception.safetensors");
    let o = genlab().args(["weights", "export-inception"]).arg(&st).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = genlab().args(["fid", a.to_str().unwrap(), b.to_str().unwrap(), "--weights"]).arg(&st).output().unwrap();
    let copy = String::from_utf8_lossy(&o.stdout);
    assert!(copy.starts_with(&format!("FID {fid:.4}\n")), "{copy}{}", stderr(&o));
    assert!(copy.contains("safetensors copy of TorchScript sha1 a16e4d89c0ecbc17a915dd76ea9e41211aa82562"), "{copy}");
    // A folder against itself: 0 up to rounding.
    let o = genlab().args(["fid", a.to_str().unwrap(), a.to_str().unwrap()]).output().unwrap();
    let same: f64 =
        String::from_utf8_lossy(&o.stdout).lines().next().unwrap().strip_prefix("FID ").unwrap().parse().unwrap();
    assert!(same.abs() < 1e-3, "FID(a, a) = {same}");
}

#[test]
fn issue3_fid_bad_inputs() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a");
    digits_folder(&a, 0..1);
    let missing = d.path().join("missing");
    fails_with(&["fid", a.to_str().unwrap(), missing.to_str().unwrap()], &["missing: not a directory of images"]);
    let empty_weights = d.path().join("w");
    let o = genlab()
        .env("GENLAB_WEIGHTS_DIR", &empty_weights)
        .args(["fid", a.to_str().unwrap(), a.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("fid_inception_default_1.pt: FID Inception weights not found"), "{}", stderr(&o));
    let o = genlab().args(["fid", a.to_str().unwrap(), a.to_str().unwrap()]).output().unwrap();
    assert!(stderr(&o).contains("FID needs at least 2 images, found 1"), "{}", stderr(&o));
}

fn repo_file(p: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p).to_str().unwrap().to_string()
}

/// Trains configs/mnist-lenet.toml for 60 steps (goal lowered so it installs) into `weights`;
/// returns its stdout.
pub(crate) fn install_small_lenet(weights: &Path, run: &Path) -> String {
    let o = genlab()
        .env("GENLAB_WEIGHTS_DIR", weights)
        .args(["run", &repo_file("configs/mnist-lenet.toml"), "--run-dir", run.to_str().unwrap()])
        .args(["--set", "train.steps=60", "--set", "train.eval_every=30", "--set", "train.checkpoint_every=30"])
        .args(["--set", "problem.goal.above=0.5"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn sha1sum(p: &Path) -> String {
    let o = Command::new("sha1sum").arg(p).output().unwrap();
    String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap().to_string()
}

/// `FID x`, `KID m +- s ...`, `precision p recall r density d coverage c ...` lines of `genlab fid`.
fn fid_numbers(out: &str) -> Vec<f64> {
    let mut v = Vec::new();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for pair in words.windows(2) {
            if ["FID", "KID", "precision", "recall", "density", "coverage"].contains(&pair[0]) {
                v.push(pair[1].parse().unwrap());
            }
        }
    }
    v
}

#[test]
fn issue3_lenet_installs_and_genlab_eval_reports_sample_metrics() {
    let d = tempfile::tempdir().unwrap();
    let weights = d.path().join("weights");
    let out = install_small_lenet(&weights, &d.path().join("lenet"));
    let file = weights.join("mnist_lenet.safetensors");
    let sha1 = sha1sum(&file);
    assert!(out.contains("installed as the MNIST LeNet feature network") && out.contains(&sha1), "{out}");
    assert!(out.contains("goal MET: accuracy"), "{out}");
    // `genlab eval` of the classifier run reports again but never replaces the installed file.
    std::fs::write(&file, b"placeholder").unwrap();
    let o = genlab()
        .env("GENLAB_WEIGHTS_DIR", &weights)
        .args(["eval", d.path().join("lenet").to_str().unwrap(), "--set", "eval.examples=500"])
        .output()
        .unwrap();
    assert!(o.status.success() && stderr(&o).contains("not installed again"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&file).unwrap(), b"placeholder");
    install_small_lenet(&weights, &d.path().join("lenet-2"));
    let sha1 = sha1sum(&file);

    // A VAE run with the sample metrics on 200 samples.
    let cfg = write_config(d.path(), SMALL);
    let run = d.path().join("vae");
    let o = genlab()
        .env("GENLAB_WEIGHTS_DIR", &weights)
        .args(["run", cfg.to_str().unwrap(), "--run-dir", run.to_str().unwrap()])
        .args(["--set", "eval.metric_samples=200", "--set", "eval.examples=300"])
        .args(["--set", "eval.memorisation_examples=3000"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let eval: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("eval.json")).unwrap()).unwrap();
    let s = &eval["samples"];
    let protocol = &s["protocol"];
    assert_eq!(protocol["features"]["weights_sha1"], sha1.as_str(), "{eval}");
    assert_eq!((protocol["samples"].as_u64(), protocol["reference_images"].as_u64()), (Some(200), Some(300)));
    assert_eq!(protocol["train_images"].as_u64(), Some(3000));
    let fid = s["fid"].as_f64().unwrap();
    let is = s["inception_score"]["mean"].as_f64().unwrap();
    assert!(fid > 0.0 && (1.0..=10.0).contains(&is), "{s}");
    let frac = s["memorisation"]["suspicious_fraction"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&frac) && s["memorisation"]["closest"].as_array().unwrap().len() == 16, "{s}");
    assert!(run.join("samples/memorisation.png").is_file());
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    for want in [
        "## Sample metrics: 200 samples against 300 images",
        "| FID |",
        "| KID |",
        "| Inception Score |",
        "| precision / recall |",
        "| density / coverage |",
        "memorisation: samples closer to a training image",
        "genlab MNIST LeNet",
        &sha1,
        "samples/memorisation.png",
        "NLL, minus the IWAE bound",
    ] {
        assert!(report.contains(want), "report should contain {want:?}:\n{report}");
    }
    let last = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap().lines().last().unwrap().to_string();
    let last: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(last["split"], "test");
    assert_eq!(last["fid"].as_f64(), Some(fid));
    assert_eq!(last["sample_protocol"]["features"]["weights_sha1"], sha1.as_str());

    // The same numbers through the folder route: the run's samples written as PNG files (same seed)
    // and the first 300 test images, compared by `genlab fid --features lenet`.
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    let o = genlab()
        .args(["sample", run.to_str().unwrap(), "-n", "200", "--seed", "0", "--format", "folder", "-o"])
        .arg(&a)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = genlab().args(["data", "export", "mnist", "--split", "test", "-n", "300", "-o"]).arg(&b).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = genlab()
        .env("GENLAB_WEIGHTS_DIR", &weights)
        .args(["fid", "--features", "lenet", "--all"])
        .args([&a, &b])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains(&sha1) && out.contains("Inception Score A"), "{out}{}", stderr(&o));
    let folder = fid_numbers(&out);
    let direct = [
        fid,
        s["kid"]["mean"].as_f64().unwrap(),
        s["prdc"]["precision"].as_f64().unwrap(),
        s["prdc"]["recall"].as_f64().unwrap(),
        s["prdc"]["density"].as_f64().unwrap(),
        s["prdc"]["coverage"].as_f64().unwrap(),
    ];
    assert_eq!(folder.len(), 6, "{out}");
    for (f, e) in folder.iter().zip(direct) {
        // Equal up to the printed digits (4 decimals, 6 for KID).
        assert!((f - e).abs() <= 5.1e-5 + 1e-9 * e.abs(), "folder route {folder:?} vs genlab eval {direct:?}");
    }

    // The Inception network on the same run: gray digits are replicated to RGB, and the report says so.
    let o = genlab()
        .args([
            "eval",
            run.to_str().unwrap(),
            "--set",
            "eval.features=\"inception\"",
            "--set",
            "eval.metric_samples=10",
        ])
        .args(["--set", "eval.examples=10", "--set", "eval.memorisation_examples=10"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    for want in [
        "FID Inception-v3",
        "a16e4d89c0ecbc17a915dd76ea9e41211aa82562",
        "protocol pytorch-fid (x / 255, bilinear",
        "gray images replicated to RGB",
    ] {
        assert!(report.contains(want), "report should contain {want:?}:\n{report}");
    }
}

#[test]
fn issue3_sample_metrics_bad_inputs() {
    let d = tempfile::tempdir().unwrap();
    let empty = d.path().join("no-weights");
    // Without the LeNet, `genlab run` finishes (training is not lost) and says what was skipped ...
    let cfg = write_config(d.path(), SMALL);
    let run = d.path().join("vae");
    let o = genlab()
        .env("GENLAB_WEIGHTS_DIR", &empty)
        .args(["run", cfg.to_str().unwrap(), "--run-dir", run.to_str().unwrap(), "--set", "train.steps=10"])
        .args(["--set", "eval.metric_samples=20", "--set", "eval.examples=20", "--set", "eval.make_features=false"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("warning: sample metrics skipped"), "{}", stderr(&o));
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("Skipped:") && report.contains("mnist_lenet.safetensors"), "{report}");
    // ... while `genlab eval`, asked for them, fails with one line naming the file and the fix.
    let run_s = run.to_str().unwrap();
    let o = genlab().env("GENLAB_WEIGHTS_DIR", &empty).args(["eval", run_s]).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("mnist_lenet.safetensors: MNIST LeNet weights not found")
            && err.contains("configs/mnist-lenet.toml"),
        "{err}"
    );
    // A safetensors file that is not the LeNet.
    let wrong = d.path().join("wrong");
    std::fs::create_dir_all(&wrong).unwrap();
    let latest = run.join("checkpoints/latest");
    std::fs::copy(latest.join("model.safetensors"), wrong.join("mnist_lenet.safetensors")).unwrap();
    let o = genlab().env("GENLAB_WEIGHTS_DIR", &wrong).args(["eval", run_s]).output().unwrap();
    assert!(stderr(&o).contains("not genlab's MNIST LeNet weights") && o.status.code() == Some(1), "{}", stderr(&o));
    // Fewer samples than the Inception Score's 10 splits.
    let line =
        fails_with(&["eval", run_s, "--set", "eval.metric_samples=5"], &["eval.metric_samples = 5", "at least 10"]);
    assert!(line.contains("experiment.toml"), "{line}");
    // The LeNet reads 28x28 gray digits only.
    let weights = d.path().join("weights");
    install_small_lenet(&weights, &d.path().join("lenet"));
    let rgb = d.path().join("rgb");
    std::fs::create_dir_all(&rgb).unwrap();
    for i in 0..3 {
        image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 8, y as u8 * 8, i * 60]))
            .save(rgb.join(format!("{i}.png")))
            .unwrap();
    }
    // Fewer images than the Inception Score's 10 splits: the other metrics, and a note.
    let few = d.path().join("few");
    digits_folder(&few, 0..4);
    let o = genlab()
        .env("GENLAB_WEIGHTS_DIR", &weights)
        .args(["fid", "--features", "lenet", "--all"])
        .args([&few, &few])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && out.contains("KID") && out.contains("Inception Score skipped"),
        "{out}{}",
        stderr(&o)
    );
    let o = genlab()
        .env("GENLAB_WEIGHTS_DIR", &weights)
        .args(["fid", "--features", "lenet"])
        .args([&rgb, &rgb])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(
        o.status.code() == Some(1) && err.contains("rgb: the MNIST LeNet reads 1x28x28 (gray) images, got 3x32x32"),
        "{err}"
    );
}

/// Writes a raw IDX file of unsigned bytes with dimensions `dims`.
fn write_idx(path: &Path, dims: &[u32], data: &[u8]) {
    let mut raw = vec![0u8, 0, 8, dims.len() as u8];
    for d in dims {
        raw.extend(d.to_be_bytes());
    }
    raw.extend(data);
    std::fs::write(path, raw).unwrap();
}

#[test]
fn issue3_data_the_feature_networks_cannot_read_fails_before_training() {
    let d = tempfile::tempdir().unwrap();
    // The LeNet reads 28x28: a VAE on 32x32 images asking for LeNet sample metrics stops at once.
    let cfg = write_config(
        d.path(),
        &SMALL
            .replace("[\"scale_unit\", \"binarize\"]", "[\"scale_unit\", \"binarize\", { resize = [32, 32] }]")
            .replace("samples = 16", "samples = 16\nmetric_samples = 100"),
    );
    fails_with(&["run", cfg.to_str().unwrap()], &["eval.features = \"mnist_lenet\"", "1x28x28", "1x32x32"]);
    // A classifier whose test split has a label the training split never had.
    let idx = d.path().join("idx");
    std::fs::create_dir_all(&idx).unwrap();
    let gz = std::fs::read(repo_file("data/mnist/t10k-images-idx3-ubyte.gz")).unwrap();
    let mut pixels = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut pixels).unwrap();
    let pixels = &pixels[16..16 + 40 * 784];
    write_idx(&idx.join("train-images-idx3-ubyte"), &[30, 28, 28], &pixels[..30 * 784]);
    write_idx(&idx.join("train-labels-idx1-ubyte"), &[30], &[0, 1].repeat(15));
    write_idx(&idx.join("t10k-images-idx3-ubyte"), &[10, 28, 28], &pixels[30 * 784..]);
    write_idx(&idx.join("t10k-labels-idx1-ubyte"), &[10], &[0, 1, 2, 0, 1, 0, 1, 0, 1, 0]);
    let cfg = write_config(
        d.path(),
        &std::fs::read_to_string(repo_file("configs/mnist-lenet.toml"))
            .unwrap()
            .replace("dataset = \"mnist\"", &format!("dataset = {{ idx = \"{}\" }}", idx.display()))
            .replace("feature_network = \"mnist_lenet\"", "")
            .replace("batch_size = 128", "batch_size = 8"),
    );
    fails_with(&["run", cfg.to_str().unwrap()], &["the evaluation split has label 2", "2 classes"]);
}

/// A Glow flow on the two moons that trains in seconds.
const MOONS: &str = r#"
[problem]
name = "moons"
goal = { metric = "nll_nats", below = 3.0 }

[data]
dataset = "two-moons"

[model]
family = "flow"
architecture = "glow"
dequantization = "none"
scales = 1
steps = 4
hidden = 32

[train]
steps = 200
batch_size = 128
optimizer = { kind = "adam", lr = 2e-3 }
log_every = 10
checkpoint_every = 20
eval_every = 100

[eval]
examples = 2000
"#;

fn eval_json(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("eval.json")).unwrap()).unwrap()
}

#[test]
fn issue4_moons_flow_resumes_bit_for_bit_evaluates_and_samples() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(d.path(), MOONS);
    let whole = d.path().join("whole");
    let o = genlab().args(["run", cfg.to_str().unwrap(), "--run-dir", whole.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let e = eval_json(&whole);
    let (nll, reference) =
        (e["likelihood"]["nll_nats"].as_f64().unwrap(), e["likelihood"]["reference_nll_nats"].as_f64().unwrap());
    // The exact density of the fixed test points, and a flow that learned something in 200 steps.
    assert!((reference - 1.0).abs() < 0.05, "exact-density NLL {reference}");
    assert!(nll > reference - 0.05 && nll < reference + 1.0, "flow NLL {nll} vs exact {reference}");
    let report = std::fs::read_to_string(whole.join("report.md")).unwrap();
    assert!(report.contains("NLL of the exact density") && report.contains("plots/density.png"), "{report}");
    assert!(std::fs::metadata(whole.join("plots/density.png")).unwrap().len() > 10_000);

    // Killed mid-way (after Glow's data-dependent initialisation), resumed: the same weights.
    let killed = d.path().join("killed");
    let at = kill_after_checkpoint(&cfg, &killed, 60, 200);
    resume_matches(&killed, &whole, at, &["model.safetensors", "optim.safetensors"]);

    // `genlab eval` reproduces the number; `genlab sample` writes points at a temperature.
    let o = genlab().args(["eval", whole.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(eval_json(&whole)["likelihood"]["nll_nats"].as_f64().unwrap(), nll);
    let csv = d.path().join("pts.csv");
    let o = genlab()
        .args(["sample", whole.to_str().unwrap(), "-n", "300", "--temperature", "0.5", "-o", csv.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&csv).unwrap();
    let pts: Vec<(f64, f64)> = text
        .lines()
        .skip(1)
        .map(|l| {
            let (a, b) = l.split_once(',').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    assert_eq!(pts.len(), 300);
    assert!(pts.iter().all(|p| p.0 > -2.0 && p.0 < 3.0 && p.1 > -1.5 && p.1 < 2.0), "samples near the moons");
    let png = d.path().join("pts.png");
    let o = genlab().args(["sample", whole.to_str().unwrap(), "-o", png.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success() && png.exists(), "{}", stderr(&o));
}

#[test]
fn issue4_realnvp_on_mnist_reports_bits_per_dim_and_samples() {
    let d = tempfile::tempdir().unwrap();
    let text = r#"
[problem]
name = "nvp"
goal = { metric = "bits_per_dim", below = 8.0 }

[data]
dataset = "mnist"
validation = { fraction = 0.002 }

[model]
family = "flow"
scales = 2
steps = 1
hidden = 4

[train]
steps = 60
batch_size = 16
optimizer = { kind = "adam", lr = 3e-3 }
log_every = 5
checkpoint_every = 30

[eval]
samples = 16
periodic_examples = 20
"#;
    let cfg = write_config(d.path(), text);
    let run = d.path().join("run");
    let o = genlab().args(["run", cfg.to_str().unwrap(), "--run-dir", run.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let bpd = eval_json(&run)["likelihood"]["bits_per_dim"].as_f64().unwrap();
    // The identity flow starts near 11 bits/dim on MNIST (the logit of the many black pixels is far
    // from the prior's mode); 60 steps must reach below the 8 bits of uniform noise, and cannot
    // reach what training for thousands of steps does.
    assert!(bpd > 1.5 && bpd < 8.0, "bits/dim {bpd}");
    for f in ["samples/samples.png", "samples/temperatures.png", "plots/loss.png"] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    assert!(std::fs::read_to_string(run.join("report.md")).unwrap().contains("bits per dimension"));
    let dir = d.path().join("folder");
    let o = genlab()
        .args(["sample", run.to_str().unwrap(), "-n", "5", "--format", "folder", "-o", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 5);
}

#[test]
fn issue4_bad_flow_configs() {
    let d = tempfile::tempdir().unwrap();
    let nvp = |extra_data: &str, model: &str| {
        format!(
            "[problem]\nname = \"x\"\n[data]\ndataset = \"mnist\"\n{extra_data}\n[model]\nfamily = \"flow\"\n{model}\n[train]\nsteps = 5\nbatch_size = 4\n"
        )
    };
    let cases: Vec<(String, Vec<&str>)> = vec![
        (nvp("transforms = [\"scale_unit\"]", ""), vec!["data.transforms", "dequantises"]),
        (nvp("", "dequantization = \"none\""), vec!["model.dequantization", "uniform"]),
        (nvp("", "scales = 4"), vec!["model.scales", "divisible by 8", "28x28"]),
        (nvp("", "logit_alpha = 0.5"), vec!["model.logit_alpha", "(0, 0.5)"]),
        (
            "[problem]\nname = \"x\"\n[data]\ndataset = \"two-moons\"\n[model]\nfamily = \"vae\"\n[train]\nsteps = 5\nbatch_size = 4\n".into(),
            vec!["data.dataset", "two-moons", "flow"],
        ),
        (
            "[problem]\nname = \"x\"\ngoal = { metric = \"bits_per_dim\", below = 1.0 }\n[data]\ndataset = \"checkerboard\"\n[model]\nfamily = \"flow\"\ndequantization = \"none\"\nscales = 1\n[train]\nsteps = 5\nbatch_size = 4\n".into(),
            vec!["problem.goal.metric", "nll_nats"],
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let p = d.path().join(format!("bad{i}.toml"));
        std::fs::write(&p, text).unwrap();
        fails_with(&["run", p.to_str().unwrap()], want);
    }
}

/// A small conditional, spectrally normalised GAN on MNIST that trains in seconds.
const SMALL_GAN: &str = r#"
[problem]
name = "gan"

[data]
dataset = "mnist"
transforms = ["scale_symmetric"]
validation = { fraction = 0.99 }

[model]
family = "gan"
latent_dim = 8
generator_channels = [16, 8]
discriminator_channels = [8, 16]
loss = "hinge"
spectral_norm = true
conditional = true
n_critic = 2
discriminator_optimizer = { kind = "adam", lr = 4e-4, betas = [0.5, 0.999] }

[train]
steps = 40
batch_size = 16
optimizer = { kind = "adam", lr = 2e-4, betas = [0.5, 0.999] }
ema = 0.99
log_every = 5
checkpoint_every = 5
eval_every = 20

[eval]
samples = 20
"#;

#[test]
fn issue5_gan_resumes_bit_for_bit_and_samples_a_requested_class() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(d.path(), SMALL_GAN);
    let whole = d.path().join("whole");
    let o = genlab().args(["run", cfg.to_str().unwrap(), "--run-dir", whole.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["samples/samples.png", "samples/step-000020.png", "report.md", "eval.json"] {
        assert!(whole.join(f).exists(), "{f} missing");
    }
    // Both optimisers' states, the generator's EMA, batch-norm statistics and spectral-norm
    // vectors continue bit for bit after a SIGKILL.
    let killed = d.path().join("killed");
    let at = kill_after_checkpoint(&cfg, &killed, 10, 40);
    resume_matches(&killed, &whole, at, &["model.safetensors", "ema.safetensors", "optim.safetensors"]);
    // The report shows both optimisers and both players' loss curves (issue 11).
    let report = std::fs::read_to_string(whole.join("report.md")).unwrap();
    for want in [
        "| optimiser (generator) | Adam, lr 2e-4",
        "| optimiser (discriminator) | Adam, lr 4e-4",
        "discriminator (8 points",
        "generator (8 points",
    ] {
        assert!(report.contains(want), "report should contain {want:?}:\n{report}");
    }
    let optim = std::fs::read(whole.join("checkpoints/latest/optim.safetensors")).unwrap();
    let text = String::from_utf8_lossy(&optim);
    assert!(text.contains("generator.") && text.contains("discriminator."), "two optimisers' states");

    let png = d.path().join("sevens.png");
    let o = genlab()
        .args(["sample", whole.to_str().unwrap(), "-n", "9", "--class", "7", "-o", png.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success() && png.exists(), "{}", stderr(&o));
    let err =
        fails_with(&["sample", whole.to_str().unwrap(), "--class", "12", "-o", "x.png"], &["class 12", "10 classes"]);
    assert!(!err.contains("panicked"));
    // A request the family cannot honour is refused in one line naming the family (issue 11).
    fails_with(
        &["sample", whole.to_str().unwrap(), "--temperature", "0.5", "-o", "x.png"],
        &["temperature", "the gan family"],
    );
    fails_with(&["sample", whole.to_str().unwrap(), "--steps", "50", "-o", "x.png"], &["steps", "the gan family"]);
}

#[test]
fn issue5_bad_gan_configs() {
    let d = tempfile::tempdir().unwrap();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            SMALL_GAN.replace("transforms = [\"scale_symmetric\"]", "transforms = [\"scale_unit\"]"),
            vec!["data.transforms", "scale_symmetric"],
        ),
        (SMALL_GAN.replace("n_critic = 2", "n_critic = 0"), vec!["model.n_critic"]),
        (
            SMALL_GAN.replace("generator_channels = [16, 8]", "generator_channels = [16, 8, 4]"),
            vec!["model.generator_channels", "divisible by 8"],
        ),
        (
            SMALL_GAN.replace("name = \"gan\"", "name = \"gan\"\ngoal = { metric = \"nll_nats\", below = 1.0 }"),
            vec!["problem.goal.metric", "fid"],
        ),
        (SMALL_GAN.replace("lr = 4e-4", "lr = -1.0"), vec!["model.discriminator_optimizer.lr"]),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let p = d.path().join(format!("bad{i}.toml"));
        std::fs::write(&p, text).unwrap();
        fails_with(&["run", p.to_str().unwrap()], want);
    }
}

#[test]
fn issue11_families_prints_the_registry() {
    let o = genlab().args(["families"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for want in [
        "vae: ",
        "flow: ",
        "gan: ",
        "diffusion: ",
        "classifier: ",
        "iwae_k = 100  (family option)",
        "temperature = 1.0  (family option)",
        "discriminator_optimizer (unset by default)",
        "latent_dim = 16",
        "on images: metrics accuracy; generates nothing (not generative)",
        "on 2-D points: metrics nll_nats; generates 2-D points",
    ] {
        assert!(out.contains(want), "`genlab families` should print {want:?}:\n{out}");
    }
    let o = genlab().args(["families", "flow"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("flow: ") && !out.contains("vae: "), "{out}");
    fails_with(
        &["families", "pixelcnn"],
        &["unknown family \"pixelcnn\"", "\"vae\", \"flow\", \"gan\", \"diffusion\""],
    );
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(d.path(), &SMALL.replace("family = \"vae\"", "family = \"pixelcnn\""));
    fails_with(
        &["run", cfg.to_str().unwrap()],
        &["model.family = \"pixelcnn\"", "\"vae\", \"flow\", \"gan\", \"diffusion\"", "genlab families"],
    );
}
