//! Molecules as SMILES strings: the MOSES benchmark's splits (Polykovskiy et al. 2020,
//! <https://arxiv.org/abs/1811.12823>), vendored in `data/moses/` (the whole test split and a
//! seeded 250,000-molecule subset of the training split; `data/moses/make_subset.py`), and what
//! `genlab data info moses` says of them.

use crate::error::{DataError, Result};
use crate::source::data_dir;
use crate::text::TextSplits;
use crate::tokenizer::TokenizerSpec;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;

/// The SMILES of a dataset's splits, one molecule each, in file order.
#[derive(Debug, Clone)]
pub struct MoleculeSet {
    pub name: String,
    pub train: Vec<String>,
    pub test: Vec<String>,
    /// Rows of the file the dataset was read from that are not molecules: (line, why), skipped.
    pub skipped: Vec<(usize, String)>,
}

impl MoleculeSet {
    /// The molecules of a SMILES file (genlab's policy: unparsable rows skipped and counted), the
    /// last `fraction` of them held out as the test split (at least one each).
    pub fn from_file(path: &Path, fraction: f64) -> Result<MoleculeSet> {
        let rows = read_molecule_dataset(path)?;
        let n = rows.valid.len();
        if n < 2 {
            return Err(DataError::Invalid {
                path: path.to_path_buf(),
                reason: format!("{n} valid molecule; a training split and a held-out split need at least 2"),
            });
        }
        let held = ((n as f64 * fraction).round() as usize).clamp(1, n - 1);
        let mut train = rows.valid;
        let test = train.split_off(n - held);
        Ok(MoleculeSet { name: path.display().to_string(), train, test, skipped: rows.skipped })
    }

    /// The set as texts of one molecule per line (each line ended), SMILES as read or SELFIES when
    /// `spec` writes them, with the tokenizer fitted on the training text.
    pub fn into_text(self, spec: TokenizerSpec) -> Result<TextSplits> {
        let write = |rows: &[String]| -> Result<String> {
            let mut text = String::new();
            for s in rows {
                if spec == TokenizerSpec::Selfies {
                    let sf = genlab_chem::selfies::encode(s)
                        .map_err(|e| DataError::Config(format!("{}: {s} as SELFIES: {e}", self.name)))?;
                    text.push_str(&sf);
                } else {
                    text.push_str(s);
                }
                text.push('\n');
            }
            Ok(text)
        };
        let (train_text, eval_text) = (write(&self.train)?, write(&self.test)?);
        let name = self.name.clone();
        TextSplits::fit(&name, train_text, eval_text, spec, Some(Arc::new(self)))
    }
}

/// The SMILES of one generated line: the line itself, or for a SELFIES model the SMILES of the
/// molecule its symbols decode to (an empty string, invalid as MOSES counts it, when they decode
/// to none).
pub fn generated_smiles(line: &str, selfies: bool) -> String {
    if !selfies {
        return line.to_string();
    }
    match genlab_chem::selfies::decode(line) {
        Ok(m) => genlab_chem::canonical_smiles(&m),
        Err(_) => String::new(),
    }
}

/// Reads a `SMILES` CSV (one column, gzip or plain): its rows after the header.
pub fn read_smiles_csv(path: &Path) -> Result<Vec<String>> {
    let text = crate::files::read_text(path)?;
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if h.trim() == "SMILES" => {}
        other => {
            return Err(DataError::Invalid {
                path: path.to_path_buf(),
                reason: format!("expected the header line `SMILES`, found {:?}", other.unwrap_or("")),
            })
        }
    }
    let rows: Vec<String> = lines.map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
    if rows.is_empty() {
        return Err(DataError::Invalid { path: path.to_path_buf(), reason: "no molecules after the header".into() });
    }
    Ok(rows)
}

/// The vendored MOSES splits.
pub fn load_moses() -> Result<MoleculeSet> {
    let dir = data_dir().join("moses");
    Ok(MoleculeSet {
        name: "moses".into(),
        train: read_smiles_csv(&dir.join("train.csv.gz"))?,
        test: read_smiles_csv(&dir.join("test.csv.gz"))?,
        skipped: vec![],
    })
}

/// Counts, distinct molecules, lengths in characters and in atom-level tokens, the token
/// vocabulary and its most frequent tokens, per split; strings the tokeniser refuses are counted
/// and the first is shown.
pub fn summary(set: &MoleculeSet) -> String {
    split_summary(&set.name, &[("train", &set.train), ("test", &set.test)])
}

fn split_summary(name: &str, splits: &[(&str, &[String])]) -> String {
    let mut out = String::new();
    let _ =
        writeln!(out, "dataset: {name} (SMILES strings, atom-level tokens as the molecular transformer reads them)");
    let mut vocab: BTreeMap<String, usize> = BTreeMap::new();
    for &(split, rows) in splits {
        let distinct = rows.iter().collect::<HashSet<_>>().len();
        let (mut chars, mut tokens, mut max_chars, mut max_tokens) = (0usize, 0usize, 0usize, 0usize);
        let mut refused = Vec::new();
        for s in rows {
            chars += s.len();
            max_chars = max_chars.max(s.len());
            match genlab_chem::tokenize(s) {
                Ok(t) => {
                    tokens += t.len();
                    max_tokens = max_tokens.max(t.len());
                    for tok in t {
                        *vocab.entry(tok.to_string()).or_default() += 1;
                    }
                }
                Err(e) => refused.push(e),
            }
        }
        let n = rows.len().max(1) as f64;
        let _ = writeln!(
            out,
            "{split}: {} molecules ({distinct} distinct), {:.1} characters on average (longest {max_chars}), {:.1} tokens (longest {max_tokens})",
            rows.len(),
            chars as f64 / n,
            tokens as f64 / n,
        );
        if let Some(first) = refused.first() {
            let _ = writeln!(out, "  {} strings the tokeniser refuses, the first: {first}", refused.len());
        }
    }
    let mut by_count: Vec<(&String, &usize)> = vocab.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = by_count.iter().take(12).map(|(t, c)| format!("{t}:{c}")).collect();
    let _ = writeln!(out, "tokens: {} distinct; most frequent {}", vocab.len(), top.join(" "));
    out
}

/// A molecule dataset read under genlab's policy: rows that do not parse are skipped and counted
/// (with their line numbers and reasons), never silently kept or silently dropped; a file with no
/// row that parses is refused.
#[derive(Debug, Clone)]
pub struct MoleculeRows {
    pub valid: Vec<String>,
    /// (1-based line number, why the row is not a molecule).
    pub skipped: Vec<(usize, String)>,
}

/// Reads a SMILES dataset file (one per line, a `SMILES` header optional, gzip or plain).
pub fn read_molecule_dataset(path: &Path) -> Result<MoleculeRows> {
    let text = crate::files::read_text(path)?;
    let mut rows = MoleculeRows { valid: vec![], skipped: vec![] };
    for (i, line) in text.lines().enumerate() {
        let s = line.trim();
        if s.is_empty() || (i == 0 && s == "SMILES") {
            continue;
        }
        match genlab_chem::parse(s) {
            Ok(_) => rows.valid.push(s.to_string()),
            Err(e) => rows.skipped.push((i + 1, e.to_string())),
        }
    }
    if rows.valid.is_empty() {
        let reason = match rows.skipped.first() {
            None => "no SMILES (expected one molecule per line)".to_string(),
            Some((line, why)) => format!(
                "no valid molecule: all {} rows are unparsable; the first, line {line}: {why}",
                rows.skipped.len()
            ),
        };
        return Err(DataError::Invalid { path: path.to_path_buf(), reason });
    }
    Ok(rows)
}

/// `genlab data info FILE` of a SMILES file: the valid molecules as `summary` gives them, and the
/// rows skipped.
pub fn file_summary(path: &Path) -> Result<String> {
    let rows = read_molecule_dataset(path)?;
    let set = MoleculeSet { name: path.display().to_string(), train: rows.valid, test: vec![], skipped: vec![] };
    let mut out = summary(&set)
        .replace("test: 0 molecules (0 distinct), 0.0 characters on average (longest 0), 0.0 tokens (longest 0)\n", "");
    if !rows.skipped.is_empty() {
        let first: Vec<String> = rows.skipped.iter().take(3).map(|(l, why)| format!("line {l}: {why}")).collect();
        out.push_str(&format!(
            "{} unparsable rows skipped (genlab's policy: skipped and counted); the first: {}\n",
            rows.skipped.len(),
            first.join("; ")
        ));
    }
    Ok(out)
}

/// Generated molecules, one SMILES per line (a first line `SMILES` is a header); every line is a
/// sample, an empty one an invalid sample, as MOSES counts them.
pub fn read_generated(path: &Path) -> Result<Vec<String>> {
    let text = crate::files::read_text(path)?;
    let mut lines: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    if lines.first().is_some_and(|l| l == "SMILES") {
        lines.remove(0);
    }
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    if lines.iter().all(|l| l.is_empty()) {
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            reason: "no SMILES (expected one molecule per line)".into(),
        });
    }
    Ok(lines)
}

/// MOSES's metrics of `generated` against the vendored splits (novelty against the training
/// subset, SNN and Scaf against the test split), as a table, with the first invalid strings and
/// why they are invalid.
pub fn score_report(generated: &[String], ks: &[usize]) -> Result<String> {
    let set = load_moses()?;
    let reference = genlab_chem::moses::Reference::new(&set.train, &set.test);
    let m = genlab_chem::moses::metrics(generated, &reference, ks);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} generated strings against MOSES (vendored: {} training, {} test molecules)",
        generated.len(),
        set.train.len(),
        set.test.len()
    );
    let _ = writeln!(out, "| metric | value |\n|---|---|");
    let _ = writeln!(out, "| valid | {:.4} |", m.valid);
    for (k, u) in &m.unique {
        let _ = writeln!(out, "| unique@{k} | {u:.4} |");
    }
    let _ = writeln!(out, "| novelty (against the training subset) | {:.4} |", m.novelty);
    let _ = writeln!(out, "| IntDiv1 / IntDiv2 | {:.4} / {:.4} |", m.int_div1, m.int_div2);
    let _ = writeln!(out, "| SNN/Test | {:.4} |", m.snn);
    let _ = writeln!(out, "| Frag/Test | {:.4} |", m.frag);
    let _ = writeln!(out, "| Scaf/Test | {:.4} |", m.scaf);
    let invalid: Vec<String> = generated
        .iter()
        .filter_map(|s| match genlab_chem::parse(s) {
            Ok(_) => None,
            Err(e) => Some(if s.is_empty() { "an empty line".to_string() } else { e.to_string() }),
        })
        .collect();
    if !invalid.is_empty() {
        let _ = writeln!(
            out,
            "{} invalid; the first: {}",
            invalid.len(),
            invalid.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every vendored SMILES, training subset and test split, tokenises, its tokens join back to it
    /// (issue 20's round trip), and it parses as a valid molecule; the counts are the subset
    /// script's.
    #[test]
    fn every_vendored_smiles_tokenises_and_round_trips() {
        let set = load_moses().unwrap();
        assert_eq!((set.train.len(), set.test.len()), (250_000, 176_074));
        for s in set.train.iter().chain(&set.test) {
            let tokens = genlab_chem::tokenize(s).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(tokens.concat(), *s);
            // MOSES kept only molecules RDKit reads: genlab's parser reads every one of them too.
            genlab_chem::parse(s).unwrap_or_else(|e| panic!("{e}"));
        }
        let info = summary(&set);
        assert!(info.contains("train: 250000 molecules (250000 distinct)"), "{info}");
        assert!(!info.contains("refuses"), "{info}");
    }

    /// MOSES's molecules are distinct (RDKit's canonical SMILES): genlab's canonical forms of all
    /// 426,074 vendored ones are distinct too, and no training molecule is a test molecule.
    #[test]
    fn canonical_forms_of_the_vendored_molecules_are_distinct() {
        let set = load_moses().unwrap();
        let mut forms = std::collections::HashSet::new();
        for s in set.train.iter().chain(&set.test) {
            let form = genlab_chem::canonical_smiles(&genlab_chem::parse(s).unwrap());
            assert!(forms.insert(form.clone()), "{s}: canonical form {form} already seen");
        }
    }

    /// SELFIES round trip (issue 20, acceptance 3): every one of the 176,074 test molecules,
    /// encoded and decoded, is the same molecule (the same canonical form).
    #[test]
    fn selfies_round_trips_the_test_split() {
        let set = load_moses().unwrap();
        for s in &set.test {
            let mol = genlab_chem::parse(s).unwrap();
            let sf = genlab_chem::selfies::encode(s).unwrap();
            let back = genlab_chem::selfies::decode(&sf).unwrap_or_else(|e| panic!("{s} -> {sf}: {e}"));
            assert_eq!(genlab_chem::canonical_smiles(&back), genlab_chem::canonical_smiles(&mol), "{s} -> {sf}");
        }
    }

    /// The dataset policy (issue 20, acceptance 5): unparsable rows, an unknown element among them,
    /// are skipped and counted with their line numbers; a file with no valid row, or none at all,
    /// is refused in one message naming it.
    #[test]
    fn unparsable_rows_are_skipped_and_counted_and_empty_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mols.smi");
        std::fs::write(&p, "SMILES\nCCO\nCC[Xx]C\nc1ccccc1\nC1CC\n\nCCN\n").unwrap();
        let rows = read_molecule_dataset(&p).unwrap();
        assert_eq!(rows.valid, ["CCO", "c1ccccc1", "CCN"]);
        assert_eq!(rows.skipped.len(), 2);
        assert_eq!(rows.skipped[0].0, 3);
        assert!(rows.skipped[0].1.contains("unknown element \"Xx\""), "{:?}", rows.skipped);
        assert_eq!(rows.skipped[1].0, 5);
        let info = file_summary(&p).unwrap();
        assert!(info.contains("train: 3 molecules") && info.contains("2 unparsable rows skipped"), "{info}");
        assert!(info.contains("line 3: SMILES \"CC[Xx]C\": unknown element"), "{info}");
        std::fs::write(&p, "SMILES\nCC[Xx]\nC1CC\n").unwrap();
        let e = read_molecule_dataset(&p).unwrap_err().to_string();
        assert!(e.contains("mols.smi") && e.contains("all 2 rows are unparsable; the first, line 2"), "{e}");
        std::fs::write(&p, "SMILES\n").unwrap();
        let e = read_molecule_dataset(&p).unwrap_err().to_string();
        assert!(e.contains("no SMILES"), "{e}");
    }

    #[test]
    fn a_file_without_the_header_or_molecules_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.csv");
        std::fs::write(&p, "smiles,x\nCCO,1\n").unwrap();
        let e = read_smiles_csv(&p).unwrap_err().to_string();
        assert!(e.contains("expected the header line `SMILES`") && e.contains("m.csv"), "{e}");
        std::fs::write(&p, "SMILES\n\n").unwrap();
        let e = read_smiles_csv(&p).unwrap_err().to_string();
        assert!(e.contains("no molecules after the header"), "{e}");
    }

    /// A SMILES file as a dataset: rows the parser refuses are skipped and kept with their line
    /// numbers, the last fraction is held out, and the texts hold one molecule per line, as SMILES
    /// or as SELFIES that decode back to the same molecules.
    #[test]
    fn a_smiles_file_becomes_split_texts() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.smi");
        std::fs::write(&p, "CCO\nc1ccccc1\nCC[Xx]\nCCN\nOC(=O)c1ccccc1\n").unwrap();
        let set = MoleculeSet::from_file(&p, 0.25).unwrap();
        assert_eq!((set.train.len(), set.test.clone(), set.skipped.len()), (3, vec!["OC(=O)c1ccccc1".to_string()], 1));
        let t = set.clone().into_text(TokenizerSpec::Smiles).unwrap();
        assert_eq!(t.train_text.as_str(), "CCO\nc1ccccc1\nCCN\n");
        assert_eq!(t.tokenizer.decode(&t.train), *t.train_text);
        assert_eq!(t.eval_unknown, 3); // "(", "=" and ")" are not in the training molecules
        assert_eq!(t.molecules.as_ref().unwrap().test, set.test);
        let s = set.clone().into_text(TokenizerSpec::Selfies).unwrap();
        for (line, smiles) in s.train_text.lines().zip(&set.train) {
            let back = generated_smiles(line, true);
            let (a, b) = (genlab_chem::parse(&back).unwrap(), genlab_chem::parse(smiles).unwrap());
            assert_eq!(genlab_chem::canonical_smiles(&a), genlab_chem::canonical_smiles(&b), "{line}");
        }
        assert_eq!(generated_smiles("", true), "");
        assert_eq!(generated_smiles("C1CC", false), "C1CC");
        std::fs::write(&p, "CCO\n").unwrap();
        let e = MoleculeSet::from_file(&p, 0.1).unwrap_err().to_string();
        assert!(e.contains("m.smi") && e.contains("at least 2"), "{e}");
    }
}
