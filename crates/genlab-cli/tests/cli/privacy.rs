//! Issue 19: differentially private training. A private run (DP-SGD, `train.privacy`) killed
//! mid-way resumes bit for bit, the accountant's history included; its report states the
//! guarantee with epsilon over the steps; a fixed noise multiplier with a budget stops before the
//! step that would exceed it; bad input is one clear line each.

use super::{fails_with, genlab, kill_after_checkpoint, resume_matches, stderr, write_config, SMALL, SMALL_GAN};

/// SMALL (a conv VAE) trained privately on 600 images; no global clipping (privacy clips each
/// example), two threads for the per-example passes.
fn small_private(privacy: &str) -> String {
    SMALL
        .replace("clip_grad_norm = 50.0\n", &format!("privacy = {privacy}\nreplicas = 2\n"))
        .replace("[data]", "[data]\nvalidation = { fraction = 0.99 }")
        .replace("batch_size = 32", "batch_size = 24")
}

const EPS5: &str = "{ target_epsilon = 5.0, delta = 1e-5, max_grad_norm = 1.0 }";

fn trainer_privacy(run: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("checkpoints/latest/trainer.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["privacy"].clone()
}

fn epsilons(run: &std::path::Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some((v["step"].as_u64()?, v["epsilon"].as_f64()?))
        })
        .collect()
}

#[test]
fn issue19_private_run_resumes_bit_for_bit_with_its_accountant() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(d.path(), &small_private(EPS5).replace("steps = 60", "steps = 40"));
    let whole = d.path().join("whole");
    let o = genlab().args(["train", cfg.to_str().unwrap(), "--run-dir", whole.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stderr(&o);
    assert!(out.contains("DP-SGD: noise multiplier") && out.contains("sampling rate 0.04"), "{out}");
    let killed = d.path().join("killed");
    let at = kill_after_checkpoint(&cfg, &killed, 10, 40);
    resume_matches(&killed, &whole, at, &["model.safetensors", "ema.safetensors", "optim.safetensors"]);
    // The accountant continues: the same phases, the same epsilon at every logged step.
    let history = trainer_privacy(&whole);
    assert_eq!(history, trainer_privacy(&killed));
    assert_eq!(history["history"][0]["steps"], 40, "{history}");
    let (a, b) = (epsilons(&whole), epsilons(&killed));
    assert_eq!(a.len(), 8);
    assert_eq!(a, b);
    assert!(a.windows(2).all(|w| w[1].1 > w[0].1), "epsilon grows with the steps: {a:?}");
    let last = a.last().unwrap().1;
    assert!(last <= 5.0 && last > 4.99 - 0.01, "the calibrated noise spends the target: {last}");
}

#[test]
fn issue19_private_run_reports_its_guarantee_and_stops_at_its_budget() {
    let d = tempfile::tempdir().unwrap();
    // A fixed noise multiplier with a budget the 60 steps would exceed: training stops before
    // the step that would spend more, keeps that step's checkpoint, and evaluates it.
    let cfg = write_config(
        d.path(),
        &small_private("{ noise_multiplier = 0.8, target_epsilon = 4.0, delta = 1e-5, max_grad_norm = 1.0 }")
            .replace("checkpoint_every = 5", "checkpoint_every = 50"),
    );
    let run = d.path().join("run");
    let o = genlab().args(["run", cfg.to_str().unwrap(), "--run-dir", run.to_str().unwrap()]).output().unwrap();
    let out = stderr(&o);
    assert!(o.status.success(), "{out}");
    let line = out.lines().find(|l| l.contains("privacy budget reached")).unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("> train.privacy.target_epsilon 4") && line.contains("training stopped after step"),
        "{line}"
    );
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    let p = &info["privacy"];
    let (eps, steps) = (p["epsilon"].as_f64().unwrap(), p["steps"].as_u64().unwrap());
    assert!(eps <= 4.0 && steps < 60 && steps > 5, "{p}");
    let stopped = super::latest_step(&run).unwrap();
    assert_eq!(stopped, steps, "the checkpoint of the last allowed step is kept");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    for want in ["## Privacy", "-differentially private", "| noise multiplier | 0.8000 |", "plots/epsilon.png"] {
        assert!(report.contains(want), "report should contain {want:?}:\n{report}");
    }
    assert!(run.join("plots/epsilon.png").exists());
}

#[test]
fn issue19_bad_privacy_inputs() {
    let d = tempfile::tempdir().unwrap();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            small_private("{ target_epsilon = 0.01, delta = 1e-5, max_grad_norm = 1.0 }"),
            vec!["train.privacy.target_epsilon = 0.01", "unreachable", "raise the target"],
        ),
        (
            small_private("{ target_epsilon = 3.0, delta = 0.0, max_grad_norm = 1.0 }"),
            vec!["train.privacy.delta = 0", "between 0 and 1"],
        ),
        (
            small_private("{ target_epsilon = 3.0, delta = 1.5, max_grad_norm = 1.0 }"),
            vec!["train.privacy.delta = 1.5"],
        ),
        (
            small_private("{ target_epsilon = 3.0, delta = 1e-5, max_grad_norm = 0.0 }"),
            vec!["train.privacy.max_grad_norm = 0", "positive"],
        ),
        (
            small_private("{ target_epsilon = 3.0, delta = 1e-5, max_grad_norm = -1.0 }"),
            vec!["train.privacy.max_grad_norm = -1"],
        ),
        (
            small_private("{ delta = 1e-5, max_grad_norm = 1.0 }"),
            vec!["train.privacy", "target_epsilon, noise_multiplier, or both"],
        ),
        (
            small_private("{ noise_multiplier = 0.5, target_epsilon = 0.05, delta = 1e-5, max_grad_norm = 1.0 }"),
            vec!["train.privacy", "allows no step", "step 1 would spend epsilon"],
        ),
        (
            small_private(EPS5).replace("replicas = 2\n", "replicas = 2\nclip_grad_norm = 1.0\n"),
            vec!["train.clip_grad_norm", "train.privacy.max_grad_norm"],
        ),
        // The DCGAN's generator normalises with batch statistics.
        (
            SMALL_GAN.replace("ema = 0.99", "privacy = { target_epsilon = 3.0, delta = 1e-5, max_grad_norm = 1.0 }"),
            vec!["train.privacy", "`generator.project_norm` is a batch norm", "GroupNorm"],
        ),
    ];
    for (text, want) in cases {
        let cfg = write_config(d.path(), &text);
        fails_with(&["run", cfg.to_str().unwrap()], &want);
    }
    // A family DP-SGD cannot train is refused with those that can.
    let vq = "[problem]\nname = \"vq\"\n[data]\ndataset = \"mnist\"\ntransforms = [\"scale_unit\"]\n[model]\nfamily = \"vqvae\"\n[train]\nsteps = 5\nbatch_size = 8\nprivacy = { target_epsilon = 3.0, delta = 1e-5, max_grad_norm = 1.0 }\n";
    let cfg = write_config(d.path(), vq);
    fails_with(
        &["run", cfg.to_str().unwrap()],
        &["the vqvae family cannot be trained privately", "vae, flow, diffusion, classifier"],
    );
    // `genlab families` says which can.
    let o = genlab().args(["families", "vae"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("trains privately: train.privacy"));
    let o = genlab().args(["families", "gan"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&o.stdout).contains("trains privately"));
}
