//! What a molecule generator's evaluation shares, whichever family drew the molecules: the MOSES
//! metrics (Polykovskiy et al. 2020, <https://arxiv.org/abs/1811.12823>) of the generated lines
//! against the run's training and test molecules, the generated SMILES file, a table of samples
//! with their properties, and the molecular-weight distribution beside the test set's.

use crate::error::Result;
use crate::evaluation::EvalContext;
use crate::metric::Metric;
use genlab_chem::moses::{metrics, Reference};
use genlab_data::TextSplits;
use serde_json::{json, Value};
use std::fmt::Write;
use std::path::PathBuf;

/// Sequences generated side by side when a family samples molecules.
pub const SAMPLE_BATCH: usize = 500;
/// The longest generated line, in tokens (MOSES's CharRNN samples at most 100 characters).
pub const MAX_TOKENS: usize = 100;
/// The k of MOSES's unique@k.
const UNIQUE_AT: [usize; 2] = [1000, 10_000];
/// Sampled molecules listed in the report.
const LISTED: usize = 20;

/// The molecule part of an evaluation.
pub struct MoleculeEvaluation {
    pub metrics: Vec<(Metric, f64)>,
    pub section: String,
    pub record: Value,
    pub figures: Vec<(String, PathBuf)>,
    pub summary: String,
}

/// A SMILES for a markdown table cell.
fn cell(s: &str) -> String {
    if s.is_empty() {
        "(empty)".into()
    } else {
        format!("`{}`", s.replace('`', "'").replace('|', "\\|"))
    }
}

/// Scores `lines` (generated molecules as the tokenizer writes them, one each) against the run's
/// molecules: MOSES's metrics, `samples/molecules.smi`, a table of the first samples and
/// `plots/molecular_weight.png`.
pub fn evaluate(lines: &[String], text: &TextSplits, cx: &EvalContext<'_>) -> Result<MoleculeEvaluation> {
    let set = text.molecules.as_ref().ok_or_else(|| {
        crate::PipelineError::Run(format!("{}: not a molecule dataset, so no MOSES metrics", text.name))
    })?;
    let selfies = text.tokenizer.is_selfies();
    let smiles: Vec<String> = lines.iter().map(|l| genlab_data::molecules::generated_smiles(l, selfies)).collect();
    cx.events.message(&format!(
        "MOSES metrics of {} generated molecules against {} training and {} test molecules",
        smiles.len(),
        set.train.len(),
        set.test.len()
    ));
    let reference = Reference::new(&set.train, &set.test);
    let m = metrics(&smiles, &reference, &UNIQUE_AT);
    let unique_k = UNIQUE_AT.iter().rev().find(|&&k| k <= smiles.len()).copied().unwrap_or(UNIQUE_AT[0]);
    let unique = m.unique.iter().find(|(k, _)| *k == unique_k).map_or(f64::NAN, |u| u.1);

    let dir = cx.run_dir.join("samples");
    std::fs::create_dir_all(&dir).map_err(genlab_core::CoreError::io(dir.clone()))?;
    let mut file = String::from("SMILES\n");
    for s in &smiles {
        file.push_str(s);
        file.push('\n');
    }
    genlab_core::atomic::write_atomic(&dir.join("molecules.smi"), file.as_bytes())?;
    if selfies {
        genlab_core::atomic::write_atomic(&dir.join("molecules.selfies"), (lines.join("\n") + "\n").as_bytes())?;
    }

    let parsed: Vec<Option<genlab_chem::Molecule>> = smiles.iter().map(|s| genlab_chem::parse(s).ok()).collect();
    let mut md = String::new();
    let n = smiles.len();
    let _ = writeln!(md, "## Molecules: the MOSES metrics\n\n| metric | value |\n|---|---|");
    // With no valid molecule (or no scaffold) a similarity is 0/0: shown and recorded as undefined.
    let v = |x: f64| if x.is_finite() { format!("{x:.4}") } else { "undefined".into() };
    let _ = writeln!(md, "| valid | {} |", v(m.valid));
    for (k, u) in &m.unique {
        let _ = writeln!(
            md,
            "| unique@{} | {} |",
            if *k >= 1000 { format!("{}k", k / 1000) } else { k.to_string() },
            v(*u)
        );
    }
    let _ = writeln!(md, "| novelty | {} |", v(m.novelty));
    let _ = writeln!(md, "| IntDiv1 / IntDiv2 | {} / {} |", v(m.int_div1), v(m.int_div2));
    let _ = writeln!(md, "| SNN/Test | {} |", v(m.snn));
    let _ = writeln!(md, "| Frag/Test | {} |", v(m.frag));
    let _ = writeln!(md, "| Scaf/Test | {} |\n", v(m.scaf));
    let _ = writeln!(
        md,
        "Protocol: {n} molecules drawn at temperature 1 from {} weights of step {} ({}); valid as genlab's parser \
         judges (RDKit's rules, parity-tested), an empty line invalid; unique@k over the first k valid; novelty of the distinct \
         valid ones against the {} training molecules{}; IntDiv, SNN with Morgan fingerprints (radius 2, 1,024 bits); Frag (RDKit's \
         BRICS fragments, parity-tested) and SNN and Scaf against the {} test molecules. Not computed: FCD (ChemNet). \
         All samples: [samples/molecules.smi](samples/molecules.smi).\n",
        cx.exp.weights_word(),
        cx.step,
        text.tokenizer.describe(),
        set.train.len(),
        if set.name == "moses" { " (the vendored subset of MOSES's 1.58M)" } else { "" },
        set.test.len()
    );
    if !set.skipped.is_empty() {
        let (line, why) = &set.skipped[0];
        let _ = writeln!(
            md,
            "The dataset file had {} unparsable rows, skipped (the first, line {line}: {why}).\n",
            set.skipped.len()
        );
    }
    let _ = writeln!(
        md,
        "### The first {LISTED} samples\n\n| # | SMILES | valid | heavy atoms | rings | mol. weight | novel |\n|---|---|---|---|---|---|---|"
    );
    for (i, (s, mol)) in smiles.iter().zip(&parsed).take(LISTED).enumerate() {
        match mol {
            Some(mol) => {
                let novel = !reference.train.contains(&genlab_chem::canonical_smiles(mol));
                let wt = mol.molecular_weight().map_or("-".into(), |w| format!("{w:.1}"));
                let _ = writeln!(
                    md,
                    "| {} | {} | yes | {} | {} | {wt} | {} |",
                    i + 1,
                    cell(s),
                    mol.atoms.len(),
                    mol.ring_count(),
                    if novel { "yes" } else { "no" }
                );
            }
            None => {
                let shown: &str = if selfies { &lines[i] } else { s };
                // The parser's reason, without the string it repeats.
                let why = genlab_chem::parse(s).err().map_or("empty".to_string(), |e| {
                    let e = e.to_string();
                    e.split_once("\": ").map_or(e.clone(), |(_, why)| why.to_string())
                });
                let _ = writeln!(md, "| {} | {} | no: {} | | | | |", i + 1, cell(shown), why.replace('|', "\\|"));
            }
        }
    }
    md.push('\n');

    let figures = match weight_figure(&parsed, &set.test, cx) {
        Ok(f) => f,
        Err(e) => {
            cx.events.message(&format!("warning: {e}"));
            vec![]
        }
    };
    let record = json!({
        "samples": n, "valid": m.valid, "unique": m.unique.iter().map(|(k, u)| json!({ "k": k, "fraction": u })).collect::<Vec<_>>(),
        "novelty": m.novelty, "int_div1": m.int_div1, "int_div2": m.int_div2, "snn": m.snn, "frag": m.frag, "scaf": m.scaf,
        "train_molecules": set.train.len(), "test_molecules": set.test.len(),
        "first_samples": smiles.iter().take(LISTED).collect::<Vec<_>>(),
    });
    let metrics = [
        (Metric::Validity, m.valid),
        (Metric::Uniqueness, unique),
        (Metric::Novelty, m.novelty),
        (Metric::IntDiv, m.int_div1),
        (Metric::Snn, m.snn),
        (Metric::FragmentSimilarity, m.frag),
        (Metric::ScaffoldSimilarity, m.scaf),
    ];
    Ok(MoleculeEvaluation {
        metrics: metrics.into_iter().filter(|(_, x)| x.is_finite()).collect(),
        section: md,
        record,
        figures,
        summary: format!(
            "{n} molecules: valid {:.4}, unique@{unique_k} {unique:.4}, novelty {:.4}, IntDiv {:.4}, SNN {:.4}, Frag {:.4}, Scaf {:.4}",
            m.valid, m.novelty, m.int_div1, m.snn, m.frag, m.scaf
        ),
    })
}

/// The molecular-weight distribution of the valid samples beside that of (up to 10,000 of) the
/// test molecules: fractions per 20-Da bin.
fn weight_figure(
    parsed: &[Option<genlab_chem::Molecule>],
    test: &[String],
    cx: &EvalContext<'_>,
) -> std::result::Result<Vec<(String, PathBuf)>, String> {
    const BIN: f64 = 20.0;
    let histogram = |weights: &[f64]| -> Vec<(f64, f64)> {
        let mut counts = std::collections::BTreeMap::new();
        for w in weights {
            *counts.entry((w / BIN).floor() as i64).or_insert(0usize) += 1;
        }
        let n = weights.len().max(1) as f64;
        counts.into_iter().map(|(b, c)| ((b as f64 + 0.5) * BIN, c as f64 / n)).collect()
    };
    let generated: Vec<f64> = parsed.iter().flatten().filter_map(|m| m.molecular_weight()).collect();
    let reference: Vec<f64> =
        test.iter().take(10_000).filter_map(|s| genlab_chem::parse(s).ok()?.molecular_weight()).collect();
    if generated.is_empty() {
        return Ok(vec![]);
    }
    let dir = cx.run_dir.join("plots");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("molecular_weight.png");
    genlab_plot::line_plot_against(
        &path,
        "Molecular weight: generated and test molecules",
        "molecular weight (Da), 20-Da bins",
        "fraction of molecules",
        &[
            genlab_plot::Series { name: "generated (valid)", points: histogram(&generated) },
            genlab_plot::Series { name: "test", points: histogram(&reference) },
        ],
    )
    .map_err(|e| e.to_string())?;
    Ok(vec![(
        "Molecular weight of the generated and test molecules".into(),
        PathBuf::from("plots/molecular_weight.png"),
    )])
}
