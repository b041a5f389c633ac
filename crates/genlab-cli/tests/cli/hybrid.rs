//! Issue 17: two-stage experiments. A VQ-VAE prior names its first stage as an experiment, which
//! `genlab run` runs first and reuses once finished; a killed second stage resumes bit for bit;
//! a first stage that is missing, of the wrong family, or with a code grid the prior cannot hold
//! is one clear line. The sentence VAE reports its held-out NLL beside a language model's, the KL
//! and active units, homotopies and anomaly scores.

use super::diffusion::SMALL_DDPM;
use super::language::corpus;
use super::{fails_with, genlab, kill_after_checkpoint, resume_matches, stderr, write_config, SMALL};
use std::path::Path;

/// A VQ-VAE small enough to train in seconds on 600 MNIST digits: a 7x7 grid of 16 codes.
const SMALL_VQ: &str = r#"
[problem]
name = "vq"
task = "test"

[data]
dataset = "mnist"
transforms = ["scale_unit"]
validation = { fraction = 0.99 }

[model]
family = "vqvae"
channels = [8, 16]
residual_blocks = 1
residual_channels = 8
codebook_size = 16
code_dim = 4

[train]
steps = 30
batch_size = 32
optimizer = { kind = "adam", lr = 2e-3 }
log_every = 5
checkpoint_every = 10
eval_every = 15

[eval]
examples = 100
samples = 16
periodic_examples = 50
"#;

/// A one-layer class-conditional GPT prior over SMALL_VQ's codes; `STAGE` is replaced by the
/// `[stage1]` section.
const SMALL_PRIOR: &str = r#"
[problem]
name = "prior"
task = "test"

STAGE

[data]
dataset = "mnist"
transforms = ["scale_unit"]
validation = { fraction = 0.99 }

[model]
family = "vqvae_prior"
layers = 1
heads = 2
width = 16
block_size = 49
conditional = true
temperature = 1.0

[train]
steps = 40
batch_size = 16
optimizer = { kind = "adamw", lr = 2e-3, weight_decay = 0.1 }
log_every = 5
checkpoint_every = 5
eval_every = 20

[eval]
examples = 100
samples = 20
periodic_examples = 50
batch_size = 50
"#;

fn prior(stage: &str) -> String {
    SMALL_PRIOR.replace("STAGE", stage)
}

fn run_in(cwd: &Path, args: &[&str]) -> String {
    let o = genlab().current_dir(cwd).args(args).output().unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "genlab {args:?} failed: {err}");
    err
}

#[test]
fn issue17_two_stages_run_reuse_link_resume_and_sample() {
    let d = tempfile::tempdir().unwrap();
    let cwd = d.path();
    std::fs::create_dir(cwd.join("configs")).unwrap();
    std::fs::write(cwd.join("configs/vq.toml"), SMALL_VQ).unwrap();
    std::fs::write(cwd.join("configs/prior.toml"), prior("[stage1]\nexperiment = \"vq.toml\"")).unwrap();

    // The first run trains the missing first stage, then the prior, and links the two reports.
    let err = run_in(cwd, &["run", "configs/prior.toml"]);
    assert!(err.contains("stage 1: running configs/vq.toml into runs/vq"), "{err}");
    let (vq, first) = (cwd.join("runs/vq"), cwd.join("runs/prior"));
    assert!(vq.join("report.md").is_file() && first.join("report.md").is_file());
    let report = std::fs::read_to_string(first.join("report.md")).unwrap();
    assert!(report.contains("(../vq/report.md)"), "the prior's report should link the first stage:\n{report}");
    let resolved = std::fs::read_to_string(first.join("experiment.toml")).unwrap();
    assert!(resolved.contains("run = \"runs/vq\""), "{resolved}");
    let vq_report = std::fs::read_to_string(vq.join("report.md")).unwrap();
    assert!(vq_report.contains("code perplexity") && vq_report.contains("dead codes"), "{vq_report}");

    // A second run reuses the finished first stage (its checkpoint untouched) and trains a new prior.
    let before = std::fs::read(vq.join("checkpoints/latest/model.safetensors")).unwrap();
    let err = run_in(cwd, &["run", "configs/prior.toml"]);
    assert!(err.contains("stage 1: reusing runs/vq (finished)"), "{err}");
    assert!(cwd.join("runs/prior-2/report.md").is_file());
    assert_eq!(std::fs::read(vq.join("checkpoints/latest/model.safetensors")).unwrap(), before);

    // The prior's run directory alone samples a requested class and evaluates again.
    run_in(cwd, &["sample", "runs/prior", "-n", "6", "--class", "3", "--temperature", "0.8", "-o", "s.png"]);
    assert!(image::open(cwd.join("s.png")).unwrap().width() > 28, "a grid of six samples");
    run_in(cwd, &["eval", "runs/prior"]);
    let o = genlab().current_dir(cwd).args(["sample", "runs/vq", "-o", "v.png"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("the vqvae family is not generative"), "{}", stderr(&o));

    // A killed second stage (its first stage named as a run directory) resumes bit for bit.
    let stage = format!("[stage1]\nrun = \"{}\"", vq.display());
    let cfg = write_config(cwd, &prior(&stage));
    let whole = cwd.join("whole");
    let o = genlab().args(["train", cfg.to_str().unwrap(), "--run-dir", whole.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let killed = cwd.join("killed");
    let at = kill_after_checkpoint(&cfg, &killed, 10, 40);
    resume_matches(&killed, &whole, at, &["model.safetensors", "optim.safetensors"]);
}

#[test]
fn issue17_bad_first_stages() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let train = |name: &str, text: &str| {
        let p = root.join(format!("{name}.toml"));
        std::fs::write(&p, text).unwrap();
        let dir = root.join(name);
        let o = genlab().args(["train", p.to_str().unwrap(), "--run-dir", dir.to_str().unwrap()]).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        dir
    };
    let vae = train("vae", &SMALL.replace("steps = 60", "steps = 5"));
    // One stride-2 layer: 14x14 grids, 196 tokens, more than the prior's block of 49.
    let wide =
        train("wide", &SMALL_VQ.replace("channels = [8, 16]", "channels = [8]").replace("steps = 30", "steps = 5"));
    let with = |stage: String| {
        let p = root.join(format!("p{}.toml", stage.len()));
        std::fs::write(&p, prior(&stage)).unwrap();
        p.to_str().unwrap().to_string()
    };

    let missing = with(format!("[stage1]\nrun = \"{}\"", root.join("nothing").display()));
    fails_with(&["run", &missing], &["stage1.run", "nothing", "no such run directory"]);
    let wrong = with(format!("[stage1]\nrun = \"{}\"", vae.display()));
    fails_with(&["run", &wrong], &["stage1.run", "a vae run", "the vqvae_prior family reads a vqvae run there"]);
    let grid = with(format!("[stage1]\nrun = \"{}\"", wide.display()));
    fails_with(&["run", &grid], &["model.block_size = 49", "14x14", "196 tokens"]);
    let vq = train("vq", &SMALL_VQ.replace("steps = 30", "steps = 5"));
    let other_data = root.join("other.toml");
    let stage = format!("[stage1]\nrun = \"{}\"", vq.display());
    std::fs::write(
        &other_data,
        prior(&stage).replace("transforms = [\"scale_unit\"]", "transforms = [\"scale_symmetric\"]"),
    )
    .unwrap();
    fails_with(
        &["run", other_data.to_str().unwrap()],
        &[
            "data: the first stage",
            "[\"scale_unit\"]",
            "[\"scale_symmetric\"]",
            "must see the images its first stage encoded",
        ],
    );
    let none = with(String::new());
    fails_with(&["run", &none], &["stage1: missing", "vqvae run"]);
    let empty = with("[stage1]".into());
    fails_with(&["run", &empty], &["stage1", "expected run ="]);
    let absent = with("[stage1]\nexperiment = \"no-such.toml\"".into());
    fails_with(&["run", &absent], &["stage1.experiment = \"no-such.toml\"", "cannot read"]);
    let not_second = root.join("vae-stage.toml");
    std::fs::write(&not_second, SMALL.replace("[data]", "[stage1]\nrun = \"x\"\n\n[data]")).unwrap();
    fails_with(&["run", not_second.to_str().unwrap()], &["stage1", "the vae family trains on its data alone"]);
}

/// A sentence VAE small enough to train in seconds on `text`'s lines; `EXTRA` is replaced by more
/// `[model]` keys.
fn small_sentence_vae(text: &Path) -> String {
    format!(
        r#"
[problem]
name = "svae"
task = "test"

[data]
dataset = {{ text = "{}" }}
validation = {{ fraction = 0.2 }}

[model]
family = "sentence_vae"
embedding = 8
hidden = 24
latent_dim = 4
kl_anneal_steps = 10
iwae_k = 3
EXTRA

[train]
steps = 20
batch_size = 8
optimizer = {{ kind = "adam", lr = 3e-3 }}
log_every = 5
checkpoint_every = 10
eval_every = 10

[eval]
examples = 30
periodic_examples = 20
"#,
        text.display()
    )
}

const SMALL_LSTM: &str = r#"
[problem]
name = "lstm"
task = "test"

[data]
dataset = { text = "TEXT" }
validation = { fraction = 0.2 }

[model]
family = "rnn_lm"
hidden = 16
layers = 1
block_size = 16
sample_tokens = 10
memorisation_tokens = 50

[train]
steps = 10
batch_size = 8
log_every = 5
checkpoint_every = 10
"#;

#[test]
fn issue17_sentence_vae_reports_beside_a_language_model() {
    let d = tempfile::tempdir().unwrap();
    let text = corpus(d.path());
    let lm_cfg = d.path().join("lstm.toml");
    std::fs::write(&lm_cfg, SMALL_LSTM.replace("TEXT", text.to_str().unwrap())).unwrap();
    let lm = d.path().join("lstm");
    let o = genlab().args(["train", lm_cfg.to_str().unwrap(), "--run-dir", lm.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let cfg = write_config(
        d.path(),
        &small_sentence_vae(&text).replace("EXTRA", &format!("compare_lm = \"{}\"", lm.display())),
    );
    let run = d.path().join("svae");
    let o = genlab().args(["run", cfg.to_str().unwrap(), "--run-dir", run.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    for want in [
        "## Homotopies",
        "## Least likely held-out lines",
        "active latent units",
        "the LSTM language model's NLL of the same lines",
        "## Lines from the prior",
    ] {
        assert!(report.contains(want), "the report should have {want:?}:\n{report}");
    }
    let eval: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("eval.json")).unwrap()).unwrap();
    let (nll, elbo, kl) = (
        eval["nll_nats_per_line"].as_f64().unwrap(),
        eval["elbo_nats_per_line"].as_f64().unwrap(),
        eval["kl_nats_per_line"].as_f64().unwrap(),
    );
    // The IWAE bound is at least the ELBO up to the noise of 30 lines; the KL is a KL.
    assert!(nll < -elbo + 1.0 && kl >= 0.0, "NLL {nll}, ELBO {elbo}, KL {kl}");
    assert!(eval["lm"]["nll_nats_per_line"].as_f64().unwrap() > 0.0);
    let homotopy = eval["homotopies"][0].as_array().unwrap();
    assert_eq!(homotopy.len(), 9, "two inputs and seven decoded points");
    let log = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(log.contains("val_active_units") && log.contains("kl_weight"));

    let out = d.path().join("lines.txt");
    let o = genlab()
        .args(["sample", run.to_str().unwrap(), "-n", "3", "--seed", "4", "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!std::fs::read_to_string(&out).unwrap().is_empty());

    // A comparison run that is not a language model is refused before any training.
    let bad = write_config(
        d.path(),
        &small_sentence_vae(&text).replace("EXTRA", &format!("compare_lm = \"{}\"", run.display())),
    );
    fails_with(&["run", bad.to_str().unwrap()], &["model.compare_lm", "a sentence_vae run", "reads a rnn_lm run"]);
    let lines = write_config(d.path(), &small_sentence_vae(&text).replace("EXTRA", "min_tokens = 70\nmax_tokens = 80"));
    fails_with(&["run", lines.to_str().unwrap()], &["train.batch_size = 8", "lines of 70..=80 tokens"]);
}

/// A KL autoencoder (a spatial VAE with a low KL weight) small enough to train in seconds: a
/// 2x7x7 latent grid.
const SMALL_KL: &str = r#"
[problem]
name = "kl"
task = "test"

[data]
dataset = "mnist"
transforms = ["scale_symmetric"]
validation = { fraction = 0.99 }

[model]
family = "vae"
architecture = "spatial"
channels = [8, 16]
residual_blocks = 1
residual_channels = 8
latent_dim = 2
likelihood = { gaussian = { sigma = 0.1 } }
beta = 0.01
iwae_k = 2

[train]
steps = 20
batch_size = 32
optimizer = { kind = "adam", lr = 2e-3 }
log_every = 5
checkpoint_every = 10

[eval]
examples = 50
samples = 9
"#;

const SMALL_LDM: &str = r#"
[problem]
name = "ldm"
task = "test"

STAGE

[data]
dataset = "mnist"
transforms = ["scale_symmetric"]
validation = { fraction = 0.99 }

[model]
family = "latent_diffusion"
unet = { base_channels = 8, channel_mults = [1, 2], blocks_per_level = 1, attention_resolutions = [], dropout = 0.1, groups = 4 }
timesteps = 50
prediction = "v"
conditional = true
sampler = "ddim"
sampling_steps = 5
EXTRA

[train]
steps = 30
batch_size = 16
optimizer = { kind = "adam", lr = 1e-3 }
ema = 0.99
log_every = 5
checkpoint_every = 5
eval_every = 15

[eval]
samples = 10
periodic_examples = 20
batch_size = 20
"#;

#[test]
fn issue17_latent_diffusion_beside_pixel_diffusion_resumes_and_refuses_a_flat_vae() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let train = |name: &str, text: &str, mode: &str| {
        let p = root.join(format!("{name}.toml"));
        std::fs::write(&p, text).unwrap();
        let dir = root.join(name);
        let o = genlab().args([mode, p.to_str().unwrap(), "--run-dir", dir.to_str().unwrap()]).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        dir
    };
    let kl = train("kl", SMALL_KL, "train");
    let pixel = train("pixel", &SMALL_DDPM.replace("steps = 30", "steps = 10"), "run");
    let ldm = |extra: &str| {
        SMALL_LDM.replace("STAGE", &format!("[stage1]\nrun = \"{}\"", kl.display())).replace("EXTRA", extra)
    };
    let cfg = write_config(root, &ldm(&format!("compare_pixel = \"{}\"", pixel.display())));
    let whole = root.join("whole");
    let o = genlab().args(["run", cfg.to_str().unwrap(), "--run-dir", whole.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let report = std::fs::read_to_string(whole.join("report.md")).unwrap();
    for want in ["## Latent against pixel diffusion", "seconds per sample", "../kl/report.md", "../pixel/report.md"] {
        assert!(report.contains(want), "the report should have {want:?}:\n{report}");
    }
    let eval: serde_json::Value = serde_json::from_slice(&std::fs::read(whole.join("eval.json")).unwrap()).unwrap();
    assert_eq!(eval["latent_grid"], serde_json::json!([2, 7, 7]));
    assert!(eval["latent_scale"].as_f64().unwrap() > 0.0 && eval["pixel"]["parameters"].as_u64().unwrap() > 0);
    // The pixel run timed in the same process, with the same sampler and steps.
    assert!(eval["pixel"]["seconds_per_sample"].as_f64().unwrap() > 0.0, "{}", eval["pixel"]);
    let png = root.join("s.png");
    let o = genlab()
        .args([
            "sample",
            whole.to_str().unwrap(),
            "-n",
            "4",
            "--class",
            "7",
            "--steps",
            "3",
            "-o",
            png.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    fails_with(
        &["sample", whole.to_str().unwrap(), "--guidance=-1", "-o", "x.png"],
        &["guidance -1", "expected a finite number >= 0"],
    );

    let killed = root.join("killed");
    let at = kill_after_checkpoint(&cfg, &killed, 10, 30);
    resume_matches(&killed, &whole, at, &["model.safetensors", "ema.safetensors", "optim.safetensors"]);

    let flat = train("flat", &SMALL_KL.replace("\"spatial\"", "\"conv\"").replace("steps = 20", "steps = 2"), "train");
    let bad = write_config(
        root,
        &SMALL_LDM.replace("STAGE", &format!("[stage1]\nrun = \"{}\"", flat.display())).replace("EXTRA", ""),
    );
    fails_with(&["run", bad.to_str().unwrap()], &["stage1.run", "latent diffusion needs a latent grid", "spatial"]);
    let not_diffusion = write_config(root, &ldm(&format!("compare_pixel = \"{}\"", kl.display())));
    fails_with(
        &["run", not_diffusion.to_str().unwrap()],
        &["model.compare_pixel", "a vae run; expected a diffusion run"],
    );
}
