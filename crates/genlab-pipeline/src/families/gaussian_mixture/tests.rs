//! The family end to end through the seam: an experiment file, the shared phases, resume.

use crate::run::{resume, start, Finished, Mode, RunOptions};
use genlab_core::events::Collected;
use std::path::Path;
use std::sync::Arc;

const EIGHT: &str = r#"
[problem]
name = "eight"
goal = { metric = "nll_nats", below = 3.0 }
[data]
dataset = "eight-gaussians"
[model]
family = "gaussian_mixture"
components = 8
init_spread = 2.0
[train]
steps = 600
batch_size = 256
optimizer = { kind = "adam", lr = 5e-2 }
log_every = 50
checkpoint_every = 100
eval_every = 300
"#;

fn options(dir: &Path, name: &str) -> RunOptions {
    RunOptions { run_dir: Some(dir.join(name)), events: Arc::new(Collected::default()), ..Default::default() }
}

fn eval_json(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("eval.json")).unwrap()).unwrap()
}

/// Eight Gaussians fitted by a mixture of eight: the test NLL comes within 0.1 nats of the exact
/// density's (the mixture family can represent the density exactly), the report shows the
/// components, and a run stopped at step 300 and resumed ends with the same weights.
#[test]
fn a_mixture_fits_eight_gaussians_and_resumes_bit_for_bit() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("eight.toml");
    std::fs::write(&file, EIGHT).unwrap();
    let Finished::Done { run_dir, summary, goal } = start(&file, &options(d.path(), "whole"), Mode::Run).unwrap() else {
        panic!("the run should finish")
    };
    let e = eval_json(&run_dir);
    let (nll, reference) = (e["likelihood"]["nll_nats"].as_f64().unwrap(), e["likelihood"]["reference_nll_nats"].as_f64().unwrap());
    assert!(nll - reference < 0.1 && nll - reference > -0.05, "NLL {nll} vs exact {reference}: {summary:?}");
    assert!(goal.unwrap().starts_with("MET"));
    let weights: Vec<f64> = e["components"]["weights"].as_array().unwrap().iter().map(|w| w.as_f64().unwrap()).collect();
    assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-5);
    let report = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(report.contains("Components, heaviest first") && report.contains("plots/density.png"), "{report}");

    let half = options(d.path(), "half");
    let half = RunOptions { overrides: vec!["train.steps=300".into()], ..half };
    let Finished::Done { run_dir: part, .. } = start(&file, &half, Mode::Train).unwrap() else { panic!("trained") };
    let more = RunOptions { overrides: vec!["train.steps=600".into()], ..options(d.path(), "unused") };
    resume(&part, &more).unwrap();
    for f in ["model.safetensors", "optim.safetensors"] {
        let a = std::fs::read(run_dir.join("checkpoints/latest").join(f)).unwrap();
        let b = std::fs::read(part.join("checkpoints/latest").join(f)).unwrap();
        assert!(a == b, "{f} differs after resuming from step 300");
    }
}

/// What the family cannot do is refused at parse, naming the key.
#[test]
fn images_and_flow_keys_are_refused() {
    let parse = |t: &str| crate::Experiment::parse(t, Path::new("g.toml"), &[]).map(|_| ()).unwrap_err().to_string();
    let e = parse(&EIGHT.replace("\"eight-gaussians\"", "\"mnist\""));
    assert!(e.contains("data.dataset = \"mnist\": images; the gaussian_mixture family models 2-D points"), "{e}");
    let e = parse(&EIGHT.replace("components = 8", "components = 8\nscales = 2"));
    assert!(e.contains("model.scales: unknown field `scales`"), "{e}");
    let e = parse(&EIGHT.replace("components = 8", "components = 0"));
    assert!(e.starts_with("g.toml:9: model.components = 0: expected between 1 and 4096"), "{e}");
    let e = parse(&EIGHT.replace("[train]", "[eval]\nmetric_samples = 100\n[train]"));
    assert!(e.contains("eval.metric_samples = 100"), "{e}");
}
