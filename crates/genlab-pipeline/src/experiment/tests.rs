use super::*;
use std::path::Path;

const GOOD: &str = r#"
[problem]
name = "t"

[data]
dataset = "mnist"
transforms = ["scale_unit", "binarize"]

[model]
family = "vae"
latent_dim = 4

[train]
steps = 10
batch_size = 8
optimizer = { kind = "adam", lr = 1e-3 }
"#;

fn parse(text: &str, sets: &[&str]) -> Result<Experiment, String> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Experiment::parse(text, Path::new("exp.toml"), &sets).map_err(|e| e.to_string())
}

#[test]
fn defaults_fill_in_and_overrides_apply() {
    let e = parse(GOOD, &["model.latent_dim=7", "train.optimizer.lr=0.5", "train.device=\"flex\""]).unwrap();
    assert_eq!(e.model.family, "vae");
    assert_eq!(e.model.fields["latent_dim"].as_integer(), Some(7));
    assert_eq!(e.train.optimizer.lr, 0.5);
    assert_eq!(e.train.optimizer.eps, 1e-8);
    assert_eq!(e.model.fields["iwae_k"].as_integer(), Some(100), "the VAE's own key, defaulted");
    // The resolved file parses back to the same experiment.
    assert_eq!(parse(&e.to_toml(), &[]).unwrap(), e);
}

#[test]
fn shipped_configs_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            Experiment::load(&p, &[]).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 11, "{n} configs");
}

const CLASSIFIER: &str = r#"
[problem]
name = "c"
goal = { metric = "accuracy", above = 0.99 }

[data]
dataset = "mnist"
transforms = ["scale_unit"]

[model]
family = "classifier"

[train]
steps = 10
batch_size = 8

[deploy]
feature_network = "mnist_lenet"
"#;

#[test]
fn classifier_configs_and_their_checks() {
    let e = parse(CLASSIFIER, &[]).unwrap();
    assert_eq!(e.model.family, "classifier");
    assert_eq!(e.model.fields["kernel"].as_integer(), Some(5));
    assert_eq!(parse(&e.to_toml(), &[]).unwrap(), e);
    let e = parse(CLASSIFIER, &["model.kernel=0"]).unwrap_err();
    assert_eq!(e, "exp.toml:10: model.kernel = 0: expected at least 1");
    let e = parse(CLASSIFIER, &["model.dropout=0.5"]).unwrap_err();
    assert!(e.contains("model.dropout: unknown field `dropout`"), "{e}");
    let e = parse(CLASSIFIER, &["problem.goal.metric=\"nll_nats\""]).unwrap_err();
    assert!(e.contains("problem.goal.metric = \"nll_nats\": a classifier run on images reports \"accuracy\""), "{e}");
    let e = parse(CLASSIFIER, &["eval.metric_samples=100"]).unwrap_err();
    assert!(e.contains("eval.metric_samples = 100: the sample metrics compare generated images; a classifier run on images draws no samples"), "{e}");
    let e = parse(&CLASSIFIER.replace("[\"scale_unit\"]", "[\"scale_symmetric\"]"), &[]).unwrap_err();
    assert!(
        e.starts_with("exp.toml:18: deploy.feature_network = \"mnist_lenet\": the feature network reads pixels / 255"),
        "{e}"
    );
    let e = parse(CLASSIFIER, &["deploy.feature_network=\"inception\""]).unwrap_err();
    assert!(e.contains("deploy.feature_network = \"inception\""), "{e}");
    // The VAE side of the same checks.
    let e = parse(GOOD, &["deploy.feature_network=\"mnist_lenet\""]).unwrap_err();
    assert!(
        e.contains(
            "deploy.feature_network: a vae run cannot be installed as a feature network (only a classifier run can)"
        ),
        "{e}"
    );
    let e = parse(GOOD, &["problem.goal={ metric = \"fid\", below = 10.0 }"]).unwrap_err();
    assert!(e.contains("problem.goal.metric = \"fid\": needs eval.metric_samples"), "{e}");
    for n in [1, 9] {
        let e = parse(GOOD, &[&format!("eval.metric_samples={n}")]).unwrap_err();
        assert!(
            e.contains(&format!("eval.metric_samples = {n}: expected 0 (no sample metrics) or at least 10")),
            "{e}"
        );
    }
    let e = parse(GOOD, &["eval.metric_samples=100", "data.validation={ from = \"train\" }"]).unwrap_err();
    assert!(e.contains("data.validation: the sample metrics compare samples with held-out images"), "{e}");
    let e = parse(GOOD, &["eval.metric_samples=100", "eval.examples=5"]).unwrap_err();
    assert!(e.contains("eval.examples = 5: the sample metrics use these as reference images"), "{e}");
    let e = parse(&CLASSIFIER.replace("\"mnist\"", "\"fashion-mnist\""), &[]).unwrap_err();
    assert!(e.contains("data.dataset must be \"mnist\", not fashion-mnist"), "{e}");
    let e = parse(GOOD, &["eval.metric_samples=100"]).unwrap();
    assert!(e.check_data_shape([1, 28, 28]).is_ok());
    let err = e.check_data_shape([3, 32, 32]).unwrap_err().to_string();
    assert!(
        err.contains("eval.features = \"mnist_lenet\": the MNIST LeNet reads 1x28x28 gray images, the data is 3x32x32"),
        "{err}"
    );
    let e = parse(GOOD, &["eval.features=\"vgg\""]).unwrap_err();
    assert!(e.contains("eval.features: unknown variant `vgg`"), "{e}");
}

#[test]
fn errors_name_file_line_and_key() {
    let e = parse(&GOOD.replace("latent_dim = 4", "latnt_dim = 4"), &[]).unwrap_err();
    assert!(e.starts_with("exp.toml:11: model.latnt_dim: unknown field `latnt_dim`"), "{e}");
    let e = parse(&GOOD.replace("steps = 10", "steps = \"ten\""), &[]).unwrap_err();
    assert!(e.starts_with("exp.toml:14: train.steps: invalid type: string \"ten\", expected u64"), "{e}");
    let e = parse(&GOOD.replace("batch_size = 8", "batch_size = 0"), &[]).unwrap_err();
    assert_eq!(e, "exp.toml:15: train.batch_size = 0: expected at least 1");
    let e = parse(&GOOD.replace("[problem]", "[problem]\ncolour = 1"), &[]).unwrap_err();
    assert!(e.starts_with("exp.toml:3: problem.colour: unknown field `colour`"), "{e}");
    let e = parse(GOOD, &["train.optimizer.lr=-1"]).unwrap_err();
    assert!(e.starts_with("exp.toml:16: train.optimizer.lr = -1: expected a positive number"), "{e}");
    let e = parse(&GOOD.replace("[\"scale_unit\", \"binarize\"]", "[\"binarize\"]"), &[]).unwrap_err();
    assert!(e.contains("data.transforms[0]: binarize needs pixels in [0, 1]"), "{e}");
    let e = parse(&GOOD.replace("family = \"vae\"", "family = \"vea\""), &[]).unwrap_err();
    assert!(e.starts_with("exp.toml:10: model.family = \"vea\""), "{e}");
    let e = parse("[problem\nname=1", &[]).unwrap_err();
    assert!(e.starts_with("exp.toml:1: "), "{e}");
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    let e = parse(GOOD, &["model.latent_dim=0"]).unwrap_err();
    assert_eq!(e, "exp.toml:11: model.latent_dim = 0: expected at least 1");
    let e = parse(GOOD, &["eval.samples=0"]).unwrap_err();
    assert_eq!(e, "exp.toml: eval.samples = 0: expected at least 1");
    let e = parse(GOOD, &["train.checkpoint_every=0"]).unwrap_err();
    assert_eq!(e, "exp.toml:13: train.checkpoint_every = 0: expected at least 1");
    let e = parse(&GOOD.replace("[\"scale_unit\", \"binarize\"]", "[]"), &[]).unwrap_err();
    assert!(e.contains("model.likelihood = \"bernoulli\": needs pixels in [0, 1]"), "{e}");
    let e = parse(GOOD, &["problem.goal={ metric = \"nll_nats\" }"]).unwrap_err();
    assert!(e.contains("problem.goal: expected a bound"), "{e}");
}

#[test]
fn every_error_is_one_line() {
    let bad = [
        GOOD.replace("latent_dim = 4", "latnt_dim = 4"),
        GOOD.replace("steps = 10", "steps = -1"),
        GOOD.replace("dataset = \"mnist\"", "dataset = 3"),
        GOOD.replace("optimizer = { kind = \"adam\", lr = 1e-3 }", "optimizer = { kind = \"sgd\", lr = 1e-3 }"),
        GOOD.replace("[model]", "[modle]"),
        "[problem\nname=1".to_string(),
    ];
    for text in &bad {
        let e = parse(text, &[]).unwrap_err();
        assert_eq!(e.lines().count(), 1, "one line: {e}");
        assert!(e.starts_with("exp.toml"), "{e}");
    }
}

#[test]
fn locate_finds_keys_in_sections_and_inline_tables() {
    assert_eq!(locate(GOOD, "train.optimizer.lr"), Some(16));
    assert_eq!(locate(GOOD, "model.latent_dim"), Some(11));
    assert_eq!(locate(GOOD, "eval.iwae_k"), None);
    assert_eq!(locate(GOOD, "train.nope"), Some(13));
}

/// Keys that moved into the family's section (issue 11): written in their new place they are the
/// family's; written in the old place (an older file or run directory) they move there, or, when
/// the family never used them, are dropped at their old default and named otherwise.
#[test]
fn family_keys_live_in_the_family_section() {
    let e = parse(GOOD, &["model.iwae_k=7"]).unwrap();
    assert_eq!(e.model.fields["iwae_k"].as_integer(), Some(7));
    let e = parse(GOOD, &["eval.iwae_k=9"]).unwrap();
    assert_eq!(e.model.fields["iwae_k"].as_integer(), Some(9), "moved from [eval]");
    assert!(!e.to_toml().contains("[eval]\niwae_k"), "written back in its new place");
    let e = parse(GOOD, &["model.iwae_k=0"]).unwrap_err();
    assert_eq!(e, "exp.toml:9: model.iwae_k = 0: expected at least 1");
    // Written in both places with different values (an old habit on a new run directory): named.
    let e = parse(GOOD, &["model.iwae_k=7", "eval.iwae_k=5"]).unwrap_err();
    assert!(e.contains("eval.iwae_k = 5: the vae family's `model.iwae_k` (= 7) is this setting now"), "{e}");
    // A moved key's error points at the line where it is written.
    let e = parse(&GOOD.replace("[train]", "[eval]\niwae_k = 0\n\n[train]"), &[]).unwrap_err();
    assert_eq!(e, "exp.toml:14: model.iwae_k = 0: expected at least 1");
    // A resolved file of before the seam held every default, the flow's temperature included.
    assert!(parse(GOOD, &["eval.temperature=1.0"]).is_ok());
    let e = parse(GOOD, &["eval.temperature=0.7"]).unwrap_err();
    assert!(
        e.contains("eval.temperature = 0.7: not a setting of the vae family") && e.contains("model.temperature"),
        "{e}"
    );
    let e = parse(GOOD, &["model.temperature=0.7"]).unwrap_err();
    assert!(e.contains("model.temperature: unknown field `temperature`"), "{e}");
    let e = parse(GOOD, &["train.discriminator_optimizer={ kind = \"adam\", lr = 1e-3 }"]).unwrap_err();
    assert!(e.contains("train.discriminator_optimizer") && e.contains("not a setting of the vae family"), "{e}");
}

/// The registry is the one list of families: the parser's message and `genlab families` come from it.
#[test]
fn the_registry_lists_every_family_once() {
    let names: Vec<&str> = crate::registry::all().iter().map(|f| f.name()).collect();
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(names, unique);
    let e = parse(&GOOD.replace("family = \"vae\"", "family = \"vea\""), &[]).unwrap_err();
    for n in &names {
        assert!(e.contains(&format!("\"{n}\"")), "{e}");
    }
    let all = crate::registry::describe(None).unwrap();
    for n in &names {
        assert!(all.contains(&format!("{n}: ")), "{all}");
    }
}

/// Issue 12: a bounded property test of the experiment parser: whatever an override or a damaged
/// file holds, the answer is an experiment or one error line, never a panic.
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Keys overrides aim at: real ones (so values reach the typed checks), moved ones, invented ones.
    const KEYS: &[&str] = &[
        "problem.name",
        "problem.goal",
        "data.dataset",
        "data.transforms",
        "data.validation.fraction",
        "model.family",
        "model.latent_dim",
        "model.channels",
        "model.iwae_k",
        "eval.iwae_k",
        "train.steps",
        "train.batch_size",
        "train.optimizer.lr",
        "train.schedule",
        "train.discriminator_optimizer",
        "eval.samples",
        "eval.metric_samples",
        "eval.protocol",
        "eval.resize",
        "model",
        "train",
        "",
        ".",
        "a.b.c",
    ];
    const VALUES: &[&str] = &[
        "0",
        "-1",
        "1e308",
        "nan",
        "inf",
        "\"\"",
        "\"../x\"",
        "[]",
        "[1, -2]",
        "{}",
        "{ kind = \"adam\" }",
        "true",
        "99999999999999999999999",
        "\"vae\"",
        "\"gan\"",
        "\"flow\"",
        "[{ resize = [0, 0] }]",
        "1.5",
        "\"clean\"",
        "{ metric = \"fid\", below = nan }",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn any_override_gives_an_experiment_or_one_error_line(
            k in 0..KEYS.len(),
            v in 0..VALUES.len(),
            raw in "[ -~]{0,24}",
            use_raw in any::<bool>(),
        ) {
            let value = if use_raw { raw.clone() } else { VALUES[v].to_string() };
            for set in [format!("{}={value}", KEYS[k]), raw] {
                if let Err(e) = parse(GOOD, &[&set]) {
                    prop_assert!(!e.contains('\n') && !e.is_empty(), "{set:?}: {e:?}");
                }
            }
        }

        #[test]
        fn a_damaged_file_gives_an_experiment_or_one_error_line(
            edits in proptest::collection::vec((0usize..400, any::<u8>(), 0u8..3), 1..8),
        ) {
            let mut b = GOOD.as_bytes().to_vec();
            for (at, byte, op) in edits {
                let i = at % (b.len() + 1);
                match op {
                    0 if i < b.len() => { b.remove(i); }
                    1 if i < b.len() => b[i] = byte,
                    _ => b.insert(i, byte),
                }
            }
            let text = String::from_utf8_lossy(&b);
            if let Err(e) = parse(&text, &[]) {
                prop_assert!(!e.contains('\n') && !e.is_empty(), "{text:?}: {e:?}");
            }
        }
    }
}
