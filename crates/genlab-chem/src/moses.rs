//! The MOSES benchmark's metrics (Polykovskiy et al. 2020, "Molecular Sets (MOSES)",
//! <https://arxiv.org/abs/1811.12823>), as its `get_all_metrics` computes them: validity; unique@k
//! among the first k valid molecules; novelty (valid distinct molecules not in the training set);
//! internal diversity IntDiv_p = 1 - (mean over all pairs, self-pairs included, of Tanimoto^p)^(1/p);
//! SNN, the mean over generated molecules of the highest Tanimoto similarity to a test molecule; and
//! Frag and Scaf, the cosine similarities of the BRICS fragment counts and of the Bemis-Murcko
//! scaffold counts of generated and test molecules (scaffolds of at least two rings, as MOSES counts
//! them). Fingerprints: Morgan, radius 2, 1,024 bits. Not computed: FCD (the ChemNet network).

use crate::canonical::canonical_smiles;
use crate::fingerprint::morgan;
use crate::molecule::{parse, Molecule};
use std::collections::{HashMap, HashSet};

/// A 1,024-bit fingerprint as 16 words, for fast Tanimoto similarity.
pub type Bits = [u64; 16];

/// `mol`'s Morgan fingerprint (radius 2, 1,024 bits) as words.
pub fn bits(mol: &Molecule) -> Bits {
    let mut b = [0u64; 16];
    for bit in morgan(mol, 2, 1024) {
        b[bit as usize / 64] |= 1 << (bit % 64);
    }
    b
}

/// Tanimoto similarity of two fingerprints (1 for two empty ones).
pub fn tanimoto(a: &Bits, b: &Bits) -> f64 {
    let (mut both, mut either) = (0u32, 0u32);
    for (x, y) in a.iter().zip(b) {
        both += (x & y).count_ones();
        either += (x | y).count_ones();
    }
    if either == 0 {
        1.0
    } else {
        both as f64 / either as f64
    }
}

/// IntDiv_p of a set of fingerprints: 1 - (mean of T^p over all ordered pairs, self-pairs
/// included)^(1/p).
pub fn internal_diversity(fps: &[Bits], p: i32) -> f64 {
    let n = fps.len();
    if n == 0 {
        return f64::NAN;
    }
    let mut total = 0.0;
    for a in fps {
        for b in fps {
            total += tanimoto(a, b).powi(p);
        }
    }
    1.0 - (total / (n * n) as f64).powf(1.0 / p as f64)
}

/// SNN: the mean over `generated` of the highest Tanimoto similarity to any of `reference`.
pub fn snn(generated: &[Bits], reference: &[Bits]) -> f64 {
    if generated.is_empty() || reference.is_empty() {
        return f64::NAN;
    }
    let best = |g: &Bits| reference.iter().map(|r| tanimoto(g, r)).fold(0.0f64, f64::max);
    generated.iter().map(best).sum::<f64>() / generated.len() as f64
}

/// Cosine similarity of two count vectors over the union of their keys (NaN when either is empty).
pub fn cosine(a: &HashMap<String, usize>, b: &HashMap<String, usize>) -> f64 {
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    let dot: f64 = a.iter().map(|(k, &x)| x as f64 * b.get(k).copied().unwrap_or(0) as f64).sum();
    let norm = |m: &HashMap<String, usize>| m.values().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Scaffold counts as MOSES counts them: scaffolds of at least two rings, by canonical form.
pub fn scaffold_counts<'a>(mols: impl IntoIterator<Item = &'a Molecule>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for m in mols {
        if let Some(s) = crate::scaffold::murcko(m).filter(|s| s.ring_count() >= 2) {
            *counts.entry(canonical_smiles(&s)).or_default() += 1;
        }
    }
    counts
}

/// The counts of the BRICS fragments of `mols` (MOSES's `compute_fragments`).
pub fn fragment_counts<'a>(mols: impl IntoIterator<Item = &'a Molecule>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for m in mols {
        for f in crate::brics::fragments(m) {
            *counts.entry(f).or_default() += 1;
        }
    }
    counts
}

/// The metrics of one set of generated SMILES.
#[derive(Debug, Clone, PartialEq)]
pub struct MosesMetrics {
    pub valid: f64,
    /// (k, unique fraction of the first k valid molecules; fewer when fewer are valid).
    pub unique: Vec<(usize, f64)>,
    pub novelty: f64,
    pub int_div1: f64,
    pub int_div2: f64,
    pub snn: f64,
    /// The cosine similarity of the BRICS fragment counts to the test set's (Frag/Test).
    pub frag: f64,
    pub scaf: f64,
}

/// What the metrics compare against, prepared once: the training set's canonical forms, the test
/// set's fingerprints and scaffold counts.
pub struct Reference {
    pub train: HashSet<String>,
    pub test_bits: Vec<Bits>,
    pub test_scaffolds: HashMap<String, usize>,
    pub test_fragments: HashMap<String, usize>,
}

impl Reference {
    /// From SMILES (strings that do not parse are skipped).
    pub fn new(train: &[String], test: &[String]) -> Reference {
        let test_mols: Vec<Molecule> = test.iter().filter_map(|s| parse(s).ok()).collect();
        Reference {
            train: train.iter().filter_map(|s| parse(s).ok()).map(|m| canonical_smiles(&m)).collect(),
            test_bits: test_mols.iter().map(bits).collect(),
            test_scaffolds: scaffold_counts(&test_mols),
            test_fragments: fragment_counts(&test_mols),
        }
    }
}

/// MOSES's metrics of `generated` against `reference`, unique@k for each k of `ks`.
pub fn metrics(generated: &[String], reference: &Reference, ks: &[usize]) -> MosesMetrics {
    let mols: Vec<Molecule> = generated.iter().filter_map(|s| parse(s).ok()).collect();
    let forms: Vec<String> = mols.iter().map(canonical_smiles).collect();
    let unique = ks
        .iter()
        .map(|&k| {
            let first = &forms[..k.min(forms.len())];
            (k, first.iter().collect::<HashSet<_>>().len() as f64 / first.len().max(1) as f64)
        })
        .collect();
    let distinct: HashSet<&String> = forms.iter().collect();
    let novel = distinct.iter().filter(|f| !reference.train.contains(f.as_str())).count();
    let fps: Vec<Bits> = mols.iter().map(bits).collect();
    MosesMetrics {
        valid: mols.len() as f64 / generated.len().max(1) as f64,
        unique,
        novelty: novel as f64 / distinct.len().max(1) as f64,
        int_div1: internal_diversity(&fps, 1),
        int_div2: internal_diversity(&fps, 2),
        snn: snn(&fps, &reference.test_bits),
        frag: cosine(&fragment_counts(&mols), &reference.test_fragments),
        scaf: cosine(&scaffold_counts(&mols), &reference.test_scaffolds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(on: &[usize]) -> Bits {
        let mut b = [0u64; 16];
        for &i in on {
            b[i / 64] |= 1 << (i % 64);
        }
        b
    }

    /// Two fingerprints with Tanimoto 1/2: the matrix [[1, .5], [.5, 1]] has mean 3/4, so IntDiv1
    /// = 1/4 and IntDiv2 = 1 - sqrt(5/8).
    #[test]
    fn internal_diversity_by_hand() {
        let (a, b) = (fp(&[1, 2, 3]), fp(&[2, 3, 4]));
        assert_eq!(tanimoto(&a, &b), 0.5);
        assert!((internal_diversity(&[a, b], 1) - 0.25).abs() < 1e-12);
        assert!((internal_diversity(&[a, b], 2) - (1.0 - 0.625f64.sqrt())).abs() < 1e-12);
        assert_eq!(internal_diversity(&[a, a], 1), 0.0);
    }

    /// SNN: generated {a, c} against reference {a, b}: a's best is 1, c's best is T(c, b) = 1/3.
    #[test]
    fn snn_by_hand() {
        let (a, b, c) = (fp(&[1, 2, 3]), fp(&[2, 3, 4]), fp(&[3, 4, 5, 6]));
        assert!((tanimoto(&c, &b) - 2.0 / 5.0).abs() < 1e-12);
        assert!((snn(&[a, c], &[a, b]) - (1.0 + 0.4) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn cosine_by_hand() {
        let m = |v: &[(&str, usize)]| v.iter().map(|(k, c)| (k.to_string(), *c)).collect::<HashMap<_, _>>();
        // (2, 1, 0) . (1, 0, 3) = 2; norms sqrt(5), sqrt(10).
        let c = cosine(&m(&[("x", 2), ("y", 1)]), &m(&[("x", 1), ("z", 3)]));
        assert!((c - 2.0 / (5.0f64.sqrt() * 10.0f64.sqrt())).abs() < 1e-12);
        assert!(cosine(&m(&[]), &m(&[("x", 1)])).is_nan());
    }

    /// Validity, uniqueness and novelty on a hand-made set: 6 strings, 5 valid (the same ethanol
    /// twice, benzene, and two new molecules), training set {ethanol}.
    #[test]
    fn validity_uniqueness_novelty_by_hand() {
        let gen: Vec<String> =
            ["CCO", "OCC", "c1ccccc1", "C1CC", "CCN", "CC(=O)O"].iter().map(|s| s.to_string()).collect();
        let reference = Reference::new(&["OCC".to_string()], &["c1ccccc1".to_string()]);
        let m = metrics(&gen, &reference, &[2, 5]);
        assert!((m.valid - 5.0 / 6.0).abs() < 1e-12);
        assert_eq!(m.unique, vec![(2, 0.5), (5, 0.8)]);
        // Distinct valid: ethanol, benzene, ethylamine, acetic acid; all but ethanol are novel.
        assert!((m.novelty - 0.75).abs() < 1e-12);
        // SNN against benzene alone: benzene contributes 1/5, the acyclic molecules share few bits
        // with it.
        assert!(m.snn >= 0.2 && m.snn < 0.25, "{}", m.snn);
        // No generated or test molecule has a scaffold of two rings.
        assert!(m.scaf.is_nan());
    }

    #[test]
    fn ring_counts() {
        assert_eq!(parse("CCO").unwrap().ring_count(), 0);
        assert_eq!(parse("c1ccc2ccccc2c1").unwrap().ring_count(), 2);
        assert_eq!(parse("C1CC1.C1CC1").unwrap().ring_count(), 2);
    }
}
