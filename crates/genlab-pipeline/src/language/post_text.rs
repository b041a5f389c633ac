//! The evaluation of `[post] text` on a language model: `POST_SAMPLES` texts of `POST_TOKENS`
//! tokens at temperature 1, passed through the steps; reported: the fraction of their words that
//! are words of the training text before and after, and what each filter did.

use super::Generation;
use genlab_post::symspell::{words, SymSpell};
use genlab_post::TextPostConfig;
use std::fmt::Write;

pub const POST_SAMPLES: usize = 50;
pub const POST_TOKENS: usize = 200;

/// The fraction of `text`'s words that `vocabulary` holds.
pub fn in_vocabulary(vocabulary: &SymSpell, texts: &[String]) -> f64 {
    let (mut known, mut total) = (0usize, 0usize);
    for text in texts {
        for (_, w) in words(text) {
            total += 1;
            known += usize::from(vocabulary.contains(w));
        }
    }
    known as f64 / total.max(1) as f64
}

/// Draws the samples with `draw`, runs them through `config` and writes the report's section;
/// returns it with the record for eval.json.
pub(crate) fn evaluate(
    config: &TextPostConfig,
    training_text: &str,
    seed: u64,
    corrector: Option<&dyn crate::serving::Loaded>,
    mut draw: impl FnMut(&Generation) -> String,
) -> (String, serde_json::Value) {
    let texts: Vec<String> = (0..POST_SAMPLES)
        .map(|i| {
            draw(&Generation {
                max_tokens: POST_TOKENS,
                sampling: Default::default(),
                stop: vec![],
                end: None,
                seed: seed.wrapping_add(i as u64),
            })
        })
        .collect();
    let vocabulary = SymSpell::from_text(training_text, 2, 7);
    let before = in_vocabulary(&vocabulary, &texts);
    let (kept, counts) = crate::post::apply_text(config, texts, training_text, corrector);
    let after = in_vocabulary(&vocabulary, &kept);
    let mut md = String::from("## Text post-processing\n\n");
    let _ = writeln!(
        md,
        "{POST_SAMPLES} texts of {POST_TOKENS} tokens at temperature 1 through `[post] text` (corrector: {}, normalise: {}, spelling: {}, blocklist: {} words ({:?}), redaction: {}, verbatim limit: {}).\n",
        config.corrector.as_ref().map_or("off".to_string(), |d| format!("the seq2seq run {}, line by line", d.display())),
        config.normalize,
        config.spelling.map_or("off".to_string(), |s| format!("SymSpell within {} edits", s.max_distance)),
        config.blocklist.len(),
        config.block_action,
        config.redact,
        config.verbatim_chars.map_or("off".to_string(), |n| format!("{n} characters")),
    );
    let _ = writeln!(md, "| | before | after |\n|---|---|---|");
    let _ = writeln!(md, "| words that are words of the training text | {before:.4} | {after:.4} |");
    let _ = writeln!(md, "| texts | {POST_SAMPLES} | {} |\n", kept.len());
    let _ = writeln!(
        md,
        "What the filters did: {}.\n",
        crate::post::describe_counts(&counts).unwrap_or_else(|| "nothing".into())
    );
    let record = serde_json::json!({
        "samples": POST_SAMPLES, "tokens": POST_TOKENS, "in_vocabulary_before": before, "in_vocabulary_after": after,
        "kept": kept.len(), "counts": counts,
    });
    (md, record)
}
