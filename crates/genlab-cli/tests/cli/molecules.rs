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

/// `genlab molecules score FILE`: MOSES's metrics of a file of SMILES, invalid lines counted with
/// the reason of the first; an empty file and a missing one are one clear line each.
#[test]
fn issue20_molecules_score_reports_the_moses_metrics() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("gen.smi");
    // Two test molecules, one of them twice, a string with an unknown element, a ring never closed.
    std::fs::write(&f, "Cc1ccc(C(=O)NCc2ccco2)cc1\nCc1ccc(C(=O)NCc2ccco2)cc1\nCC[Xx]C\nC1CC\nCCO\n").unwrap();
    let o = genlab().args(["molecules", "score", f.to_str().unwrap(), "--k", "3,10"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for want in [
        "5 generated strings against MOSES",
        "| valid | 0.6000 |",
        "| unique@3 | 0.6667 |",
        "| unique@10 | 0.6667 |",
        "2 invalid; the first: SMILES \"CC[Xx]C\": unknown element \"Xx\"",
        "ring bond 1 is opened but never closed",
    ] {
        assert!(out.contains(want), "`genlab molecules score` should print {want:?}:\n{out}");
    }
    let empty = d.path().join("empty.smi");
    std::fs::write(&empty, "SMILES\n\n").unwrap();
    fails_with(&["molecules", "score", empty.to_str().unwrap()], &["empty.smi", "no SMILES"]);
    fails_with(&["molecules", "score", "/nonexistent/gen.smi"], &["/nonexistent/gen.smi"]);
}

/// `genlab data info FILE.smi`: a SMILES file read under the dataset policy (unparsable rows skipped
/// and counted, with line and reason); a file with no valid molecule is one error line.
#[test]
fn issue20_data_info_of_a_smiles_file_counts_what_it_skips() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("mine.smi");
    std::fs::write(&f, "CCO\nCC[Xx]C\nc1ccccc1\n").unwrap();
    let o = genlab().args(["data", "info", f.to_str().unwrap()]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("train: 2 molecules") && out.contains("1 unparsable rows skipped"), "{out}");
    assert!(out.contains("line 2: SMILES \"CC[Xx]C\": unknown element \"Xx\""), "{out}");
    std::fs::write(&f, "C1CC\n").unwrap();
    fails_with(&["data", "info", f.to_str().unwrap()], &["mine.smi", "no valid molecule", "line 1", "never closed"]);
}
