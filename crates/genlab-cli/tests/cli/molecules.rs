//! Issue 20 (in progress): the vendored MOSES molecules. `genlab data info moses` summarises the
//! splits with the atom-level SMILES tokeniser; a family that does not model molecules refuses
//! them in one line.

use super::{fails_with, genlab, stderr, write_config, SMALL};

#[test]
fn issue20_data_info_moses_summarises_the_vendored_splits() {
    let o = genlab().args(["data", "info", "moses"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for want in [
        "dataset: moses",
        "train: 250000 molecules (250000 distinct)",
        "test: 176074 molecules (176074 distinct)",
        "tokens: 24 distinct; most frequent c:",
    ] {
        assert!(out.contains(want), "`genlab data info moses` should print {want:?}:\n{out}");
    }
    assert!(!out.contains("refuses"), "{out}");
}

#[test]
fn issue20_families_without_molecules_refuse_moses() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(
        d.path(),
        &SMALL
            .replace("dataset = \"mnist\"", "dataset = \"moses\"")
            .replace("transforms = [\"scale_unit\", \"binarize\"]", "transforms = []"),
    );
    fails_with(&["run", cfg.to_str().unwrap()], &["data.dataset = \"moses\"", "the vae family models images"]);
}
