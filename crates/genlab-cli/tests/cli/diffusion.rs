//! Issue 13: the diffusion family end to end: a killed run resumes bit for bit, `genlab sample`
//! takes a sampler, steps, guidance, a class and a partial image with its mask, and each bad
//! request or key is one clear line.

use super::{fails_with, genlab, kill_after_checkpoint, resume_matches, stderr, write_config, SMALL_GAN};
use std::path::Path;

/// A class-conditional DDPM small enough to train in seconds: 50 diffusion steps, a two-level
/// UNet of 8 and 16 channels, each batch split across two replicas, no evaluation protocol beyond
/// the grid and the trajectory.
pub(super) const SMALL_DDPM: &str = r#"
[problem]
name = "ddpm"
task = "test"

[data]
dataset = "mnist"
transforms = ["scale_symmetric"]
validation = { from = "test" }

[model]
family = "diffusion"
conditional = true
unet = { base_channels = 8, channel_mults = [1, 2], blocks_per_level = 1, attention_resolutions = [14], dropout = 0.1, groups = 4 }
timesteps = 50
sampler = "ddim"
sampling_steps = 5
guidance = 2.0
table_samples = 0
guidance_samples = 0
inpaint_examples = 0

[train]
steps = 30
batch_size = 16
replicas = 2
optimizer = { kind = "adam", lr = 1e-3 }
ema = 0.99
log_every = 5
checkpoint_every = 10
eval_every = 10

[eval]
samples = 20
periodic_examples = 20
batch_size = 20
"#;

/// A 28x28 gray PNG: a bright square on black.
fn square_png(path: &Path, side: u32) {
    image::GrayImage::from_fn(side, side, |x, y| {
        image::Luma([if (8..20).contains(&x) && (4..24).contains(&y) { 255 } else { 0 }])
    })
    .save(path)
    .unwrap();
}

/// A mask of the given side: white (generate) in the bottom half, black (keep) above.
fn bottom_half_mask(path: &Path, side: u32) {
    image::GrayImage::from_fn(side, side, |_, y| image::Luma([if y >= side / 2 { 255 } else { 0 }]))
        .save(path)
        .unwrap();
}

#[test]
fn issue13_diffusion_resumes_bit_for_bit_samples_and_refuses_bad_requests() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(d.path(), SMALL_DDPM);
    let whole = d.path().join("whole");
    let o = genlab().args(["run", cfg.to_str().unwrap(), "--run-dir", whole.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["samples/samples.png", "samples/step-000020.png", "samples/trajectory.png", "report.md", "eval.json"] {
        assert!(whole.join(f).exists(), "{f} missing");
    }
    // Timesteps, noise, label dropout and each replica's dropout masks all come from the step's
    // seeded stream.
    let killed = d.path().join("killed");
    let at = kill_after_checkpoint(&cfg, &killed, 10, 30);
    resume_matches(&killed, &whole, at, &["model.safetensors", "ema.safetensors", "optim.safetensors"]);

    let run = whole.to_str().unwrap();
    let out = |name: &str| d.path().join(name).to_str().unwrap().to_string();
    let ok = |args: &[&str]| {
        let o = genlab().args(args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    };
    ok(&[
        "sample",
        run,
        "-n",
        "4",
        "--sampler",
        "ddim",
        "--steps",
        "5",
        "--guidance",
        "3",
        "--class",
        "4",
        "-o",
        &out("fours.png"),
    ]);
    ok(&["sample", run, "-n", "2", "--sampler", "dpm-solver++", "--steps", "4", "-o", &out("dpm.png")]);
    ok(&["sample", run, "-n", "1", "--sampler", "ddpm", "-o", &out("ddpm.png")]);
    let (image, mask) = (out("partial.png"), out("mask.png"));
    square_png(Path::new(&image), 28);
    bottom_half_mask(Path::new(&mask), 28);
    ok(&["sample", run, "-n", "3", "--partial", &image, "--mask", &mask, "--class", "7", "-o", &out("completed.png")]);

    // Bad requests: one line each, exit 1, nothing written.
    fails_with(&["sample", run, "--class", "10", "-o", "x.png"], &["class 10", "10 classes"]);
    fails_with(&["sample", run, "--steps", "0", "-o", "x.png"], &["steps 0", "expected 1 to 50"]);
    fails_with(
        &["sample", run, "--sampler", "euler", "-o", "x.png"],
        &["sampler \"euler\"", "ddpm, ddim or dpm-solver++"],
    );
    fails_with(&["sample", run, "--guidance=-1", "-o", "x.png"], &["guidance -1", "expected a finite number >= 0"]);
    let small_mask = out("mask20.png");
    bottom_half_mask(Path::new(&small_mask), 20);
    fails_with(
        &["sample", run, "--partial", &image, "--mask", &small_mask, "-o", "x.png"],
        &["--mask", "20x20", "28x28"],
    );
    let (big, big_mask) = (out("big.png"), out("bigmask.png"));
    square_png(Path::new(&big), 32);
    bottom_half_mask(Path::new(&big_mask), 32);
    fails_with(&["sample", run, "--partial", &big, "--mask", &big_mask, "-o", "x.png"], &["partial", "32x32", "28x28"]);
    fails_with(
        &["sample", run, "--partial", &out("missing.png"), "--mask", &mask, "-o", "x.png"],
        &["--partial", "missing.png"],
    );

    // An unconditional model takes no guidance and no class.
    let plain = d.path().join("plain");
    let text = SMALL_DDPM
        .replace("conditional = true", "conditional = false")
        .replace("guidance = 2.0", "")
        .replace("steps = 30", "steps = 2");
    let cfg = write_config(d.path(), &text);
    let o = genlab().args(["run", cfg.to_str().unwrap(), "--run-dir", plain.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let plain = plain.to_str().unwrap();
    fails_with(
        &["sample", plain, "--guidance", "3", "-o", "x.png"],
        &["guidance", "the diffusion family", "class-conditional"],
    );
    fails_with(&["sample", plain, "--class", "3", "-o", "x.png"], &["class", "conditional"]);
    ok(&["sample", plain, "-n", "2", "--partial", &image, "--mask", &mask, "-o", &out("plain-completed.png")]);
}

#[test]
fn issue13_bad_diffusion_configs() {
    let d = tempfile::tempdir().unwrap();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (SMALL_DDPM.replace("conditional = true", "conditional = false"), vec!["model.guidance", "conditional"]),
        (
            SMALL_DDPM.replace("sampling_steps = 5", "sampling_steps = 0"),
            vec!["model.sampling_steps", "1 to model.timesteps"],
        ),
        (SMALL_DDPM.replace("sampler = \"ddim\"", "sampler = \"euler\""), vec!["model.sampler", "euler"]),
        (SMALL_DDPM.replace("timesteps = 50", "timesteps = 1"), vec!["model.timesteps"]),
        (SMALL_DDPM.replace("groups = 4", "groups = 3"), vec!["model.groups"]),
        (
            SMALL_DDPM.replace("transforms = [\"scale_symmetric\"]", "transforms = [\"scale_unit\"]"),
            vec!["data.transforms", "scale_symmetric"],
        ),
        (SMALL_DDPM.replace("replicas = 2", "replicas = 0"), vec!["train.replicas", "expected 1 to train.batch_size"]),
        (
            SMALL_DDPM.replace("replicas = 2", "replicas = 17"),
            vec!["train.replicas", "expected 1 to train.batch_size (16)"],
        ),
        (
            SMALL_GAN.replace("batch_size = 16", "batch_size = 16\nreplicas = 2"),
            vec!["train.replicas", "the gan family trains on one thread"],
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let p = d.path().join(format!("bad{i}.toml"));
        std::fs::write(&p, text).unwrap();
        fails_with(&["run", p.to_str().unwrap()], want);
    }
}
