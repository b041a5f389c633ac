//! Issue 14: the byte-level BPE tokenizer genlab trains is Hugging Face's: Python's `tokenizers`
//! (the package itself, from the virtualenv `scripts/test` makes; `GENLAB_PYTHON` names its
//! interpreter) loads the saved `tokenizer.json` and encodes a fixture paragraph to genlab's ids,
//! and the whole corpus round-trips exactly through encode and decode.

use genlab_data::{DatasetName, DatasetSource, TokenizerSpec};
use std::path::Path;

#[test]
fn python_tokenizers_reads_genlab_s_bpe_and_the_corpus_round_trips() {
    let corpus = DatasetSource::Named(DatasetName::Shakespeare).load_text().unwrap();
    let splits = corpus.clone().split(0.1, TokenizerSpec::Bpe { vocab_size: 1024 }).unwrap();
    let tok = &splits.tokenizer;
    assert_eq!(tok.vocab_size(), 1024);
    // Exact round trips of both parts, and the tokens are fewer than the characters.
    assert_eq!(tok.decode(&splits.train), *splits.train_text);
    assert_eq!(tok.decode(&splits.eval), *splits.eval_text);
    assert!(splits.train.len() * 2 < splits.train_text.len(), "{} tokens", splits.train.len());

    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("tokenizer.json");
    std::fs::write(&json, tok.hf_json().unwrap()).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bpe");
    let paragraph = std::fs::read_to_string(fixtures.join("paragraph.txt")).unwrap();
    let ours = tok.encode_strict(&paragraph, "paragraph").unwrap();
    assert_eq!(tok.decode(&ours), paragraph);
    let python = std::env::var("GENLAB_PYTHON").unwrap_or_else(|_| {
        panic!("GENLAB_PYTHON should name a Python with the `tokenizers` package (scripts/test makes one)")
    });
    let out = std::process::Command::new(&python)
        .arg(fixtures.join("encode.py"))
        .arg(&json)
        .arg(fixtures.join("paragraph.txt"))
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let theirs: Vec<u32> = String::from_utf8(out.stdout).unwrap().lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(theirs, ours, "Python tokenizers and genlab encode the paragraph differently");
}
