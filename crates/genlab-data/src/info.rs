//! `genlab data info`: what a dataset holds: counts, shapes, value range, class histogram.

use crate::error::Result;
use crate::image_set::ImageSet;
use crate::source::{DatasetSource, Split};
use crate::text::TextCorpus;
use std::fmt::Write;

/// A printable summary of every split of `source`.
pub fn describe(source: &DatasetSource) -> Result<String> {
    let mut out = String::new();
    if let DatasetSource::Smiles { smiles } = source {
        return crate::molecules::file_summary(smiles);
    }
    if source == &DatasetSource::Named(crate::source::DatasetName::Moses) {
        return Ok(crate::molecules::summary(&crate::molecules::load_moses()?));
    }
    if source.kind() == crate::source::DataKind::Text {
        text_summary(&mut out, source.load_text()?)?;
        return Ok(out);
    }
    let _ = writeln!(out, "dataset: {}", source.describe());
    if let Some(toy) = source.toy() {
        for (split, test) in [(Split::Train, false), (Split::Test, true)] {
            let pts = toy.split(test);
            let n = pts.len() / 2;
            let (lo, hi) = pts.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            let exact = -pts.chunks(2).map(|p| toy.log_density(p[0] as f64, p[1] as f64)).sum::<f64>() / n as f64;
            let _ = writeln!(
                out,
                "{split:?}: {n} 2-D points (generated in code, fixed), coordinates in [{lo:.2}, {hi:.2}], exact-density NLL {exact:.4} nats per point"
            );
        }
        return Ok(out);
    }
    for split in [Split::Train, Split::Test] {
        match source.load_images(split, &[]) {
            Ok(set) => image_summary(&mut out, split, &set),
            Err(e) if split == Split::Test => {
                let _ = writeln!(out, "test: none ({e})");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn image_summary(out: &mut String, split: Split, s: &ImageSet) {
    let (min, max) = s.pixels.iter().fold((u8::MAX, u8::MIN), |(lo, hi), &p| (lo.min(p), hi.max(p)));
    let mean = s.pixels.iter().map(|&p| p as f64).sum::<f64>() / s.pixels.len().max(1) as f64;
    let _ = writeln!(
        out,
        "{split:?}: {} images, shape [{}, {}, {}] (channels, height, width), pixel range {min}..={max}, mean {mean:.2}",
        s.n, s.channels, s.height, s.width
    );
    if let Some(labels) = &s.labels {
        let mut hist = vec![0usize; s.class_names.len()];
        for &l in labels {
            hist[l as usize] += 1;
        }
        let cells: Vec<String> = hist.iter().enumerate().map(|(i, c)| format!("{}:{c}", s.class_names[i])).collect();
        let _ = writeln!(out, "  classes ({}): {}", hist.len(), cells.join(" "));
    } else {
        let _ = writeln!(out, "  unlabelled");
    }
}

/// The corpus and the default split a language model trains on (the last tenth held out), with
/// the character tokenizer fitted on the training part.
fn text_summary(out: &mut String, c: TextCorpus) -> Result<()> {
    let _ = writeln!(out, "dataset: text {}", c.name);
    let _ = writeln!(
        out,
        "{} bytes, {} characters, {} lines, {} distinct characters",
        c.text.len(),
        c.text.chars().count(),
        c.text.lines().count(),
        c.vocab.len()
    );
    let s = c.split(0.1, crate::tokenizer::TokenizerSpec::Char)?;
    let chars = |t: &str| t.chars().count();
    let _ = writeln!(
        out,
        "split (data.validation = {{ fraction = 0.1 }}, contiguous): training {} characters, validation {} characters (the last tenth)",
        chars(&s.train_text),
        chars(&s.eval_text)
    );
    let _ = writeln!(
        out,
        "tokenizer: {}: vocabulary {}; training {} tokens, validation {} tokens, {} validation characters unseen in training (read as <unk>)",
        s.tokenizer.describe(),
        s.tokenizer.vocab_size(),
        s.train.len(),
        s.eval.len(),
        s.eval_unknown
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::DatasetName;

    #[test]
    fn mnist_summary_has_counts_and_histogram() {
        let s = describe(&DatasetSource::Named(DatasetName::Mnist)).unwrap();
        assert!(s.contains("Train: 60000 images, shape [1, 28, 28]"), "{s}");
        assert!(s.contains("Test: 10000 images"), "{s}");
        assert!(s.contains("0:5923 1:6742"), "{s}");
        assert!(s.contains("pixel range 0..=255"), "{s}");
    }

    #[test]
    fn shakespeare_summary_has_the_split_and_the_vocabulary() {
        let s = describe(&DatasetSource::Named(DatasetName::Shakespeare)).unwrap();
        assert!(s.contains("5057282 characters"), "{s}");
        assert!(s.contains("training 4551554 characters, validation 505728 characters"), "{s}");
        assert!(s.contains("vocabulary 85"), "{s}");
    }
}
