//! The pipeline as a library (issue 11): experiments run one after the other in one process,
//! their progress and messages collected by the caller's event sink rather than printed.

use genlab_pipeline::{start, Collected, Finished, Mode, RunOptions};
use std::path::Path;
use std::sync::Arc;

const MOONS: &str = r#"
[problem]
name = "moons"
goal = { metric = "nll_nats", below = 3.0 }
[data]
dataset = "two-moons"
[model]
family = "flow"
dequantization = "none"
scales = 1
steps = 2
hidden = 16
[train]
steps = 60
batch_size = 128
optimizer = { kind = "adam", lr = 3e-3 }
log_every = 20
checkpoint_every = 60
eval_every = 30
[eval]
examples = 1000
"#;

const VAE: &str = r#"
[problem]
name = "vae"
[data]
dataset = "mnist"
transforms = ["scale_unit", "binarize"]
validation = { fraction = 0.99 }
[model]
family = "vae"
architecture = "mlp"
hidden = [16]
latent_dim = 2
iwae_k = 2
[train]
steps = 20
batch_size = 16
log_every = 10
checkpoint_every = 20
[eval]
examples = 50
samples = 4
"#;

fn run(dir: &Path, name: &str, text: &str, events: &Arc<Collected>) -> (String, serde_json::Value) {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    let opts = RunOptions { run_dir: Some(dir.join(name)), events: events.clone(), ..Default::default() };
    match start(&file, &opts, Mode::Run).unwrap() {
        Finished::Done { run_dir, summary, .. } => {
            let eval = serde_json::from_slice(&std::fs::read(run_dir.join("eval.json")).unwrap()).unwrap();
            (summary.unwrap(), eval)
        }
        other => panic!("the run should finish: {other:?}"),
    }
}

#[test]
fn two_experiments_run_one_after_the_other_in_one_process() {
    let d = tempfile::tempdir().unwrap();
    let events = Arc::new(Collected::default());
    let (moons, first) = run(d.path(), "moons-a", MOONS, &events);
    let (vae, _) = run(d.path(), "vae", VAE, &events);
    let (_, again) = run(d.path(), "moons-b", MOONS, &events);
    assert!(moons.starts_with("NLL ") && vae.starts_with("NLL (IWAE, k=2)"), "{moons} / {vae}");
    // Nothing of the first runs leaks into the third: the same experiment gives the same number.
    assert_eq!(first["likelihood"]["nll_nats"], again["likelihood"]["nll_nats"]);
    let lines = events.lines();
    assert_eq!(lines.iter().filter(|l| l.starts_with("run directory: ")).count(), 3, "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("step 30: val_nll")), "periodic validation reaches the sink: {lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("test: ELBO")), "{lines:?}");
}

/// A caller's own stop flag stops training with a checkpoint, as Ctrl-C does in the CLI, and the
/// run resumes from it.
#[test]
fn a_stop_flag_checkpoints_and_the_run_resumes() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("moons.toml");
    std::fs::write(&file, MOONS).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let events = Arc::new(Collected::default());
    let opts = RunOptions { run_dir: Some(d.path().join("run")), events, stop: Some(stop), ..Default::default() };
    let Finished::Interrupted { run_dir, step } = start(&file, &opts, Mode::Run).unwrap() else {
        panic!("the stop flag should stop the run")
    };
    assert_eq!(step, 1);
    assert!(run_dir.join("checkpoints/step-000001/model.safetensors").is_file());
    let again = RunOptions { events: Arc::new(Collected::default()), ..Default::default() };
    let Finished::Done { summary, .. } = genlab_pipeline::resume(&run_dir, &again).unwrap() else {
        panic!("the resumed run should finish")
    };
    assert!(summary.unwrap().starts_with("NLL "));
}
