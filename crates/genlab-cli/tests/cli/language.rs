//! Issue 14: the language-model families end to end: a killed GPT run resumes bit for bit, `genlab
//! sample` streams text after a prompt with the sampling controls, and each bad text file, prompt
//! or control is one clear line.

use super::{fails_with, genlab, kill_after_checkpoint, resume_matches, stderr, write_config};
use std::path::Path;

/// A GPT small enough to train in seconds on `text`, with dropout so the resume test covers the
/// seeded dropout masks.
pub(super) fn small_gpt(text: &Path, block: usize) -> String {
    format!(
        r#"
[problem]
name = "gpt"
task = "test"

[data]
dataset = {{ text = "{}" }}
validation = {{ fraction = 0.1 }}

[model]
family = "gpt"
layers = 2
heads = 2
width = 16
block_size = {block}
dropout = 0.1
sample_temperatures = [0.8]
sample_tokens = 40
memorisation_tokens = 200

[train]
steps = 30
batch_size = 8
optimizer = {{ kind = "adamw", lr = 3e-3, betas = [0.9, 0.99], weight_decay = 0.1 }}
schedule = {{ kind = "cosine", warmup = 5, min_ratio = 0.1 }}
clip_grad_norm = 1.0
log_every = 5
checkpoint_every = 10
eval_every = 10

[eval]
periodic_examples = 20
"#,
        text.display()
    )
}

/// A few thousand characters of verse: the vendored corpus's first lines.
pub(super) fn corpus(dir: &Path) -> std::path::PathBuf {
    let text =
        genlab_data::TextCorpus::read(&genlab_data::source::data_dir().join("shakespeare/shakespeare.txt.gz")).unwrap();
    let p = dir.join("verse.txt");
    std::fs::write(&p, &text.text[..20_000]).unwrap();
    p
}

#[test]
fn issue14_gpt_resumes_bit_for_bit_and_samples_after_a_prompt() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(d.path(), &small_gpt(&corpus(d.path()), 16));
    let whole = d.path().join("whole");
    let o = genlab().args(["run", cfg.to_str().unwrap(), "--run-dir", whole.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let eval: serde_json::Value = serde_json::from_slice(&std::fs::read(whole.join("eval.json")).unwrap()).unwrap();
    let bpc = eval["validation"]["bits_per_char"].as_f64().unwrap();
    let nats = eval["validation"]["nats_per_token"].as_f64().unwrap();
    assert!((bpc - nats / std::f64::consts::LN_2).abs() < 1e-9, "a character model's bits per character: {eval}");
    assert!(eval["memorisation"]["windows"].as_u64().unwrap() > 0);
    let report = std::fs::read_to_string(whole.join("report.md")).unwrap();
    assert!(report.contains("### Samples") && report.contains("### Memorisation"), "{report}");
    assert!(whole.join("samples/text.txt").exists());

    let killed = d.path().join("killed");
    let at = kill_after_checkpoint(&cfg, &killed, 10, 30);
    resume_matches(&killed, &whole, at, &["model.safetensors", "optim.safetensors"]);

    // The text streams to stdout and lands in the file; the same seed gives the same text.
    let out = d.path().join("s.txt");
    let sample = |out: &Path| {
        let o = genlab()
            .args([
                "sample",
                whole.to_str().unwrap(),
                "--prompt",
                "ROMEO:",
                "--max-tokens",
                "30",
                "--temperature",
                "0.8",
            ])
            .args(["--top-p", "0.9", "--top-k", "20", "--repetition-penalty", "1.2", "-o", out.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        (String::from_utf8(o.stdout).unwrap(), std::fs::read_to_string(out).unwrap())
    };
    let (stdout, file) = sample(&out);
    assert!(file.starts_with("ROMEO:") && file.chars().count() == 6 + 30 + 1, "{file:?}");
    assert!(stdout.starts_with(file.trim_end()), "streamed {stdout:?}, file {file:?}");
    assert_eq!(sample(&d.path().join("t.txt")).1, file);

    let run = whole.to_str().unwrap();
    fails_with(&["sample", run, "--prompt", "ROMEO\u{263a}"], &["--prompt", "U+263A", "not in the model's vocabulary"]);
    fails_with(&["sample", run, "--prompt", &"a".repeat(17)], &["--prompt", "17 tokens", "at most 16"]);
    fails_with(&["sample", run, "--top-p", "0"], &["top_p 0", "(0, 1]"]);
    fails_with(&["sample", run, "--top-p", "1.5"], &["top_p 1.5", "(0, 1]"]);
    fails_with(&["sample", run, "--temperature=-0.5"], &["temperature -0.5", ">= 0"]);
    fails_with(&["sample", run, "--top-k", "0"], &["top_k 0"]);
    fails_with(&["sample", run, "--guidance", "2"], &["guidance", "gpt"]);
}

#[test]
fn issue14_bad_text_data_is_one_line() {
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("bad.txt");
    std::fs::write(&bad, b"abc\xff\xfedef").unwrap();
    let cfg = write_config(d.path(), &small_gpt(&bad, 4));
    fails_with(&["train", cfg.to_str().unwrap()], &["bad.txt", "not UTF-8", "offset 3"]);
    let empty = d.path().join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    let cfg = write_config(d.path(), &small_gpt(&empty, 4));
    fails_with(&["train", cfg.to_str().unwrap()], &["empty.txt", "0 character"]);
    let short = d.path().join("short.txt");
    std::fs::write(&short, "To be, or not to be: that is the question.").unwrap();
    let cfg = write_config(d.path(), &small_gpt(&short, 64));
    fails_with(&["train", cfg.to_str().unwrap()], &["model.block_size = 64", "larger than the training text"]);
    let cfg = write_config(d.path(), &small_gpt(&short, 0));
    fails_with(&["train", cfg.to_str().unwrap()], &["model.block_size = 0"]);
}

/// A corrector small enough to train in seconds.
pub(super) fn small_corrector(text: &Path) -> String {
    format!(
        r#"
[problem]
name = "corrector"
task = "test"

[data]
dataset = {{ text = "{}" }}
validation = {{ fraction = 0.1 }}

[model]
family = "seq2seq"
encoder_layers = 1
decoder_layers = 1
heads = 2
width = 16
max_len = 48
edit_rate = 0.1
min_line = 10
max_line = 40
eval_lines = 30

[train]
steps = 20
batch_size = 8
optimizer = {{ kind = "adamw", lr = 3e-3, weight_decay = 0.1 }}
log_every = 5
checkpoint_every = 10
eval_every = 10

[eval]
periodic_examples = 10
"#,
        text.display()
    )
}

#[test]
fn issue14_seq2seq_corrects_fills_resumes_and_refuses_bad_requests() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(d.path(), &small_corrector(&corpus(d.path())));
    let whole = d.path().join("whole");
    let o = genlab().args(["run", cfg.to_str().unwrap(), "--run-dir", whole.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let eval: serde_json::Value = serde_json::from_slice(&std::fs::read(whole.join("eval.json")).unwrap()).unwrap();
    let c = &eval["correction"];
    assert_eq!(c["lines"], 30);
    assert!(c["cer_before"].as_f64().unwrap() > 0.0 && c["cer_after"].as_f64().is_some(), "{eval}");
    assert!(eval["infilling"]["exact_match"].as_f64().is_some());

    let killed = d.path().join("killed");
    let at = kill_after_checkpoint(&cfg, &killed, 10, 20);
    resume_matches(&killed, &whole, at, &["model.safetensors", "optim.safetensors"]);

    let run = whole.to_str().unwrap();
    for args in
        [vec!["--correct", "Too bee or not too be"], vec!["--infill", "To be or <mask> the question", "--beam", "3"]]
    {
        let out = d.path().join(format!("{}.txt", &args[0][2..]));
        let o = genlab().args(["sample", run, "-o", out.to_str().unwrap()]).args(&args).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let text = std::fs::read_to_string(&out).unwrap();
        if args[0] == "--infill" {
            assert!(text.starts_with("To be or ") && text.trim_end().ends_with(" the question"), "{text:?}");
        }
    }
    fails_with(&["sample", run, "--infill", "To be, or not"], &["--infill", "0 <mask>", "exactly one"]);
    fails_with(&["sample", run, "--correct", "x", "--beam", "0"], &["beam 0", "at least 1"]);
    fails_with(&["sample", run, "--correct", "ab\u{2603}"], &["--correct", "U+2603"]);
    fails_with(&["sample", run, "--prompt", "ROMEO:"], &["prompt", "seq2seq", "takes no prompt"]);
    fails_with(&["sample", run], &["--correct TEXT or --infill TEXT"]);
}
