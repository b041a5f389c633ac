//! The metrics a run reports, as typed keys: each has its `metrics.jsonl` / `eval.json` key, its
//! meaning in words (for the goal's verdict), and the direction in which it improves. A goal in
//! `[problem]` names one of them; each family declares which it reports.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Test negative log-likelihood in nats per example (the IWAE estimate for a VAE, exact for a
    /// flow or a mixture).
    NllNats,
    /// Test negative ELBO in nats per example.
    NegElboNats,
    /// Test negative log-likelihood in bits per dimension (a flow on dequantised images).
    BitsPerDim,
    /// Classification accuracy on the evaluation split, in [0, 1].
    Accuracy,
    /// FID of `eval.metric_samples` samples against the evaluation split.
    Fid,
    /// KID (unbiased MMD², cubic kernel) of the same samples.
    Kid,
    /// Precision and recall of the samples' manifold (k-NN balls, Kynkäänniemi et al. 2019).
    Precision,
    Recall,
    /// Density and coverage (Naeem et al. 2020).
    Density,
    Coverage,
    /// The fraction of a conditional generator's samples classified as the class asked for.
    ConditionalAccuracy,
    /// The entropy of the generated samples' class histogram, in nats (a collapse lowers it).
    ClassEntropy,
    /// A language model's validation loss in bits per character of the text (the same unit for
    /// character and BPE models).
    BitsPerChar,
    /// A language model's validation perplexity: exp of the loss in nats per token.
    Perplexity,
    /// A corrector's character error rate on held-out corrupted lines after correction.
    CharErrorRate,
    /// The fraction of held-out masked spans filled exactly.
    InfillExactMatch,
    /// An autoencoder's mean squared reconstruction error per pixel on the evaluation split (in
    /// the data's units after its transforms).
    ReconstructionMse,
    /// The perplexity of the codes a vector quantiser gives the evaluation split.
    CodebookPerplexity,
    /// The fraction of a codebook's codes that no evaluation vector is assigned to.
    DeadCodeFraction,
    /// MOSES's metrics of `eval.metric_samples` generated molecules: the fraction that are valid
    /// molecules,
    Validity,
    /// the fraction of the first 10,000 valid ones (all, when fewer) that are distinct,
    Uniqueness,
    /// the fraction of the distinct valid ones not in the training set,
    Novelty,
    /// internal diversity IntDiv1 (1 - the mean Tanimoto similarity of all pairs),
    IntDiv,
    /// the mean Tanimoto similarity of each to its nearest test molecule (SNN/Test),
    Snn,
    /// the cosine similarity of their BRICS fragment counts to the test set's (Frag/Test),
    FragmentSimilarity,
    /// and the cosine similarity of their Bemis-Murcko scaffold counts to the test set's (Scaf/Test).
    ScaffoldSimilarity,
}

/// The metrics every molecule generator reports when `eval.metric_samples` asks for them.
pub const MOLECULE_METRICS: [Metric; 7] = [
    Metric::Validity,
    Metric::Uniqueness,
    Metric::Novelty,
    Metric::IntDiv,
    Metric::Snn,
    Metric::FragmentSimilarity,
    Metric::ScaffoldSimilarity,
];

/// The metrics every image generator reports when `eval.metric_samples` asks for them.
pub const SAMPLE_METRICS: [Metric; 6] =
    [Metric::Fid, Metric::Kid, Metric::Precision, Metric::Recall, Metric::Density, Metric::Coverage];

impl Metric {
    /// The key in `metrics.jsonl` and in `[problem] goal`.
    pub fn key(self) -> &'static str {
        match self {
            Metric::NllNats => "nll_nats",
            Metric::NegElboNats => "neg_elbo_nats",
            Metric::BitsPerDim => "bits_per_dim",
            Metric::Accuracy => "accuracy",
            Metric::Fid => "fid",
            Metric::Kid => "kid",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::Density => "density",
            Metric::Coverage => "coverage",
            Metric::ConditionalAccuracy => "conditional_accuracy",
            Metric::ClassEntropy => "class_entropy",
            Metric::BitsPerChar => "bits_per_char",
            Metric::Perplexity => "perplexity",
            Metric::CharErrorRate => "char_error_rate",
            Metric::InfillExactMatch => "infill_exact_match",
            Metric::ReconstructionMse => "reconstruction_mse",
            Metric::CodebookPerplexity => "codebook_perplexity",
            Metric::DeadCodeFraction => "dead_code_fraction",
            Metric::Validity => "validity",
            Metric::Uniqueness => "unique",
            Metric::Novelty => "novelty",
            Metric::IntDiv => "int_div",
            Metric::Snn => "snn",
            Metric::FragmentSimilarity => "frag",
            Metric::ScaffoldSimilarity => "scaf",
        }
    }

    /// What the number is, for the goal's verdict.
    pub fn describe(self) -> &'static str {
        match self {
            Metric::NllNats => "NLL on the evaluation split (nats)",
            Metric::NegElboNats => "negative ELBO on the evaluation split (nats)",
            Metric::BitsPerDim => "NLL on the evaluation split (bits/dim)",
            Metric::Accuracy => "accuracy on the evaluation split",
            Metric::Fid => "FID against the evaluation split",
            Metric::Kid => "KID against the evaluation split",
            Metric::Precision => "precision of the samples",
            Metric::Recall => "recall of the evaluation split by the samples",
            Metric::Density => "density of the samples",
            Metric::Coverage => "coverage of the evaluation split by the samples",
            Metric::ConditionalAccuracy => "fraction of samples classified as the class asked for",
            Metric::ClassEntropy => "entropy of the samples' class histogram (nats)",
            Metric::BitsPerChar => "validation loss in bits per character",
            Metric::Perplexity => "validation perplexity (per token)",
            Metric::CharErrorRate => "character error rate of held-out corrupted lines after correction",
            Metric::InfillExactMatch => "fraction of held-out masked spans filled exactly",
            Metric::ReconstructionMse => "reconstruction error on the evaluation split (MSE per pixel)",
            Metric::CodebookPerplexity => "perplexity of the evaluation split's codes",
            Metric::DeadCodeFraction => "fraction of codes unused by the evaluation split",
            Metric::Validity => "fraction of generated molecules that are valid",
            Metric::Uniqueness => "fraction of valid generated molecules that are distinct (unique@10k)",
            Metric::Novelty => "fraction of distinct valid generated molecules not in the training set",
            Metric::IntDiv => "internal diversity of the generated molecules (IntDiv1)",
            Metric::Snn => "mean similarity of generated molecules to their nearest test molecule (SNN)",
            Metric::FragmentSimilarity => "cosine similarity of generated and test BRICS fragment counts (Frag)",
            Metric::ScaffoldSimilarity => "cosine similarity of generated and test scaffold counts (Scaf)",
        }
    }

    /// Whether the metric needs generated images (`eval.metric_samples`).
    pub fn needs_samples(self) -> bool {
        SAMPLE_METRICS.contains(&self) || MOLECULE_METRICS.contains(&self)
    }
}

/// Keys of `metrics`, quoted and joined for messages: `"fid", "kid" or "precision"`.
pub fn list(metrics: &[Metric]) -> String {
    quoted(metrics.iter().map(|m| m.key()))
}

/// Names quoted and joined for messages: `"a", "b" or "c"`.
pub fn quoted<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let q: Vec<String> = names.map(|n| format!("\"{n}\"")).collect();
    match q.len() {
        0 => "nothing".into(),
        1 => q[0].clone(),
        n => format!("{} or {}", q[..n - 1].join(", "), q[n - 1]),
    }
}
