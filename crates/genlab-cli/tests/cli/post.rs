//! Issue 18: `[post]`. Generated images pass through the image steps and the invisible watermark
//! (`genlab sample`; `--raw` skips them), and `genlab watermark detect` finds the run's key in
//! every post-processed sample and in none of the raw ones. Bad input is one clear line each: an
//! unknown step, a value out of range, a key of the wrong length, a watermark the images are too
//! small for, a detector pointed at a file that is not an image.

use super::{fails_with, genlab, stderr, write_config, SMALL};

/// SMALL with `POST` appended as its `[post]` section.
fn with_post(post: &str) -> String {
    format!("{SMALL}\n[post]\n{post}\n")
}

#[test]
fn issue18_bad_post_sections_and_detector_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str]); 5] = [
        (
            "image = [{ sharpen = { sigma = 1.0 } }]",
            &["exp.toml:", "post.image", "unknown variant `sharpen`", "gaussian_blur"],
        ),
        (
            "image = [{ binarize = { threshold = 300 } }]",
            &["exp.toml:", "post.image[0]", "binarize", "threshold = 300", "0..=255"],
        ),
        ("image = [{ gaussian_blur = { sigma = 0.0 } }]", &["post.image[0]", "gaussian_blur", "sigma = 0"]),
        (
            "watermark = { key = \"6a3f\" }",
            &["exp.toml:", "post.watermark.key", "\"6a3f\"", "4 hexadecimal digits, expected 8"],
        ),
        // 28x28 digits hold 9 blocks; the watermark needs 128 (a resize first).
        ("watermark = { key = \"6a3f00c1\" }", &["[post] watermark", "28x28", "9 blocks", "needs 128", "resize"]),
    ];
    for (post, want) in cases {
        let cfg = write_config(dir.path(), &with_post(post));
        fails_with(&["run", cfg.to_str().unwrap()], want);
    }
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not an image").unwrap();
    let n = notes.to_str().unwrap();
    fails_with(&["watermark", "detect", n, "--key", "6a3f00c1"], &["notes.txt", "not a PNG or JPEG image"]);
    fails_with(&["watermark", "detect", n, "--key", "6a3f00c1ff"], &["--key", "10 hexadecimal digits, expected 8"]);
    let empty = tempfile::tempdir().unwrap();
    fails_with(
        &["watermark", "detect", empty.path().to_str().unwrap(), "--key", "6a3f00c1"],
        &["holds no PNG or JPEG"],
    );
}

#[test]
fn issue18_samples_carry_the_runs_watermark_and_raw_samples_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let post = r#"image = [{ resize = { height = 112, width = 112, filter = "lanczos" } }, { unsharp = { sigma = 1.0, amount = 0.5 } }]
watermark = { key = "0badf00d" }"#;
    let cfg = write_config(dir.path(), &with_post(post).replace("steps = 60", "steps = 10"));
    let run = dir.path().join("run");
    let o = genlab().args(["run", cfg.to_str().unwrap(), "--run-dir", run.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(run.join("experiment.toml")).unwrap().contains("0badf00d"));
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    for want in [
        "## Data and responsibility",
        "Creative Commons Attribution-Share Alike 3.0",
        "resize to 112x112",
        "key 0badf00d",
    ] {
        assert!(report.contains(want), "the report should have {want:?}:\n{report}");
    }

    let marked = dir.path().join("marked");
    let raw = dir.path().join("raw");
    for (out, extra) in [(&marked, None), (&raw, Some("--raw"))] {
        let mut args =
            vec!["sample", run.to_str().unwrap(), "-n", "6", "--format", "folder", "-o", out.to_str().unwrap()];
        args.extend(extra);
        let o = genlab().args(&args).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let first = image::open(marked.join("000000.png")).unwrap();
    assert_eq!((first.width(), first.height()), (112, 112));

    let detect = |path: &std::path::Path| {
        let o = genlab()
            .args(["watermark", "detect", path.to_str().unwrap(), "--run", run.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = detect(&marked);
    assert!(out.contains("6 of 6 images carry key 0badf00d"), "{out}");
    // The server's images pass through the same steps: 112x112.
    let server = super::serve::Server::start_with(std::slice::from_ref(&run), &[]);
    let answer = server.json("/v1/generate", serde_json::json!({"model": "run", "count": 1, "seed": 1}));
    assert_eq!(answer["shape"], serde_json::json!([1, 112, 112]), "{answer}");
    drop(server);
    // The raw 28x28 samples are too small to carry a key at all: the detector says so.
    let o =
        genlab().args(["watermark", "detect", raw.to_str().unwrap(), "--run", run.to_str().unwrap()]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("28x28"), "{}", stderr(&o));
    let o = genlab().args(["watermark", "detect", marked.to_str().unwrap(), "--key", "f00dbad0"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("0 of 6 images carry key f00dbad0"), "{out}");
}

/// The text watermark: a GPT run with `[post] text_watermark` reports detection and cost (and
/// `[post] text` its in-vocabulary words before and after), its samples are detected and its raw
/// samples are not; bad watermark settings are one line each.
#[test]
fn issue18_text_watermark_is_detected_in_samples_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let text = super::language::corpus(dir.path());
    let post = "text_watermark = { key = 7, delta = 4.0 }\n\
                text = { normalize = true, spelling = {}, blocklist = [\"thee\"], redact = true, verbatim_chars = 50 }";
    let gpt = format!("{}\n[post]\n{post}\n", super::language::small_gpt(&text, 32));
    let cfg = write_config(dir.path(), &gpt);
    let run = dir.path().join("run");
    let o = genlab().args(["run", cfg.to_str().unwrap(), "--run-dir", run.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("## Text watermark") && report.contains("detection rate at a 1% false-positive rate"),
        "{report}"
    );
    assert!(
        report.contains("## Text post-processing") && report.contains("words that are words of the training text"),
        "{report}"
    );
    let eval: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("eval.json")).unwrap()).unwrap();
    let w = &eval["watermark"];
    assert!(w["detection_at_1pct"].as_f64().unwrap() >= 0.95, "{w}");
    assert!(w["mean_z_unmarked"].as_f64().unwrap().abs() < 1.0, "{w}");

    let mut verdicts = Vec::new();
    for (name, raw) in [("marked.txt", false), ("raw.txt", true)] {
        let out = dir.path().join(name);
        let mut args =
            vec!["sample", run.to_str().unwrap(), "--max-tokens", "200", "--seed", "3", "-o", out.to_str().unwrap()];
        if raw {
            args.push("--raw");
        }
        let o = genlab().args(&args).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let o = genlab()
            .args(["watermark", "detect", "--text", out.to_str().unwrap(), "--run", run.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        verdicts.push(String::from_utf8_lossy(&o.stdout).into_owned());
    }
    assert!(verdicts[0].contains(": watermarked"), "{}", verdicts[0]);
    assert!(verdicts[1].contains("not watermarked"), "{}", verdicts[1]);

    // The server applies [post] too, and counts what the filters did in its metrics.
    let server = super::serve::Server::start_with(std::slice::from_ref(&run), &[]);
    let answer = server
        .json("/v1/completions", serde_json::json!({"model": "run", "prompt": "ROMEO", "max_tokens": 200, "seed": 1}));
    assert!(answer["choices"][0]["text"].as_str().is_some_and(|t| !t.is_empty()), "{answer}");
    let metrics = server.get("/metrics").text();
    let corrected = metrics
        .lines()
        .find(|l| l.starts_with("genlab_post_filtered_total{model=\"run\",kind=\"corrected_words\"}"))
        .unwrap_or_else(|| panic!("no post counts in the metrics:\n{metrics}"));
    assert!(corrected.rsplit(' ').next().unwrap().parse::<u64>().unwrap() > 0, "{corrected}");
    drop(server);

    // The encoder-decoder corrector as a [post] text step, line by line.
    let corrector_cfg = write_config(dir.path(), &super::language::small_corrector(&text));
    let corrector = dir.path().join("corrector");
    let o = genlab()
        .args(["run", corrector_cfg.to_str().unwrap(), "--run-dir", corrector.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let set = format!("post.text={{corrector=\"{}\"}}", corrector.display());
    let o = genlab().args(["eval", run.to_str().unwrap(), "--set", &set]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("corrector: the seq2seq run"), "{report}");
    let not_a_corrector = format!("post.text={{corrector=\"{}\"}}", run.display());
    let o = genlab().args(["eval", run.to_str().unwrap(), "--set", &not_a_corrector]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("post.text.corrector")
            && stderr(&o).contains("a gpt run; expected a seq2seq corrector run"),
        "{}",
        stderr(&o)
    );

    let bad =
        format!("{}\n[post]\ntext_watermark = {{ key = 7, gamma = 1.5 }}\n", super::language::small_gpt(&text, 32));
    let cfg = write_config(dir.path(), &bad);
    fails_with(
        &["run", cfg.to_str().unwrap()],
        &["exp.toml:", "post.text_watermark.gamma = 1.5", "a fraction in (0, 1)"],
    );
    // An image run has no tokenizer to score a text with.
    let image_cfg = write_config(dir.path(), &SMALL.replace("steps = 60", "steps = 5"));
    let image_run = dir.path().join("image");
    let o =
        genlab().args(["run", image_cfg.to_str().unwrap(), "--run-dir", image_run.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    fails_with(
        &["watermark", "detect", "--text", text.to_str().unwrap(), "--run", image_run.to_str().unwrap()],
        &["--run", "no tokenizer"],
    );
}

/// The memorisation filter: with a small LeNet as the feature network, the evaluation plants
/// training images among a VAE's samples and the filter withholds every one (and the sample
/// metrics after a median filter stand beside the raw ones); `genlab sample` with
/// the filter keeps its count (withheld draws are drawn again); a quantile out of range is one
/// line.
#[test]
fn issue18_memorisation_filter_catches_planted_training_images() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("weights");
    super::install_small_lenet(&weights, &dir.path().join("lenet"));
    let cfg = write_config(
        dir.path(),
        &with_post("memorisation = { examples = 600 }\nimage = [{ median = { radius = 1 } }]")
            .replace("steps = 60", "steps = 20"),
    );
    let run = dir.path().join("run");
    let o = genlab()
        .env("GENLAB_WEIGHTS_DIR", &weights)
        .args(["run", cfg.to_str().unwrap(), "--run-dir", run.to_str().unwrap()])
        .args([
            "--set",
            "eval.metric_samples=200",
            "--set",
            "eval.examples=300",
            "--set",
            "eval.memorisation_examples=600",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let eval: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("eval.json")).unwrap()).unwrap();
    let f = &eval["memorisation_filter"];
    assert_eq!(f["planted"].as_u64(), Some(100), "{f}");
    assert_eq!(f["planted_exact_caught"].as_u64(), Some(100), "{f}");
    assert_eq!(f["fresh_samples"].as_u64(), Some(500), "{f}");
    assert!(f["fresh_withheld_rate"].as_f64().unwrap() < 0.2, "{f}");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(report.contains("## Memorisation filter") && report.contains("**100 of 100**"), "{report}");
    // The same samples' metrics after the image steps, beside them.
    assert!(
        report.contains("## Sample metrics after [post]") && report.contains("| as generated | after [post] |"),
        "{report}"
    );
    let after = eval["samples_after_post"]["fid"].as_f64().unwrap();
    assert!(after.is_finite() && after != eval["samples"]["fid"].as_f64().unwrap(), "{eval}");

    let out = dir.path().join("s.png");
    let o = genlab()
        .env("GENLAB_WEIGHTS_DIR", &weights)
        .args(["sample", run.to_str().unwrap(), "-n", "16", "-o", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.is_file());

    let bad = write_config(dir.path(), &with_post("memorisation = { quantile = 0.9 }"));
    fails_with(&["run", bad.to_str().unwrap()], &["exp.toml:", "post.memorisation.quantile = 0.9", "(0, 0.5]"]);
}
