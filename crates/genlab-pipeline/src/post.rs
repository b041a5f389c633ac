//! Phase 7, `[post]`, applied to what a family generated: the image steps and the watermark on
//! every generated image (`genlab sample`); a family whose samples are not images passes through.

use crate::error::{PipelineError, Result};
use crate::experiment::Experiment;
use crate::generate::{Generated, OutputKind};
use genlab_post::ImagePost;

/// The experiment's image post-processing for samples of `shape`, or None when `[post]` has no
/// image step and no watermark (or the family does not generate images). Refuses, naming
/// `[post]`, a watermark the images are too small to carry.
pub(crate) fn image_post(exp: &Experiment, output: OutputKind, shape: [usize; 3]) -> Result<Option<ImagePost>> {
    if output != OutputKind::Images || (exp.post.image.is_empty() && exp.post.watermark.is_none()) {
        return Ok(None);
    }
    ImagePost::new(&exp.post, shape).map(Some).map_err(|e| PipelineError::Config(format!("[post] {e}")))
}

/// `generated` through `[post]`.
pub(crate) fn apply(exp: &Experiment, output: OutputKind, generated: Generated) -> Result<Generated> {
    let Generated::Images(mut images) = generated else { return Ok(generated) };
    let Some(post) = image_post(exp, output, images.shape)? else { return Ok(Generated::Images(images)) };
    images.pixels = post.apply(&images.pixels, images.n).map_err(|e| PipelineError::Config(format!("[post] {e}")))?;
    images.shape = post.output_shape();
    images.description = format!("{}; post-processed: {post}", images.description);
    Ok(Generated::Images(images))
}

/// What `genlab watermark detect` found in one image.
#[derive(Debug, Clone)]
pub struct ImageReading {
    pub path: std::path::PathBuf,
    pub reading: genlab_post::watermark::Reading,
}

/// The watermark key of `[post]` in a run's experiment, or of `--key`.
pub fn watermark_key(key: Option<&str>, run: Option<&std::path::Path>) -> Result<genlab_post::watermark::WatermarkKey> {
    use genlab_post::watermark::WatermarkKey;
    let hex = match (key, run) {
        (Some(k), _) => k.to_string(),
        (None, Some(run)) => {
            let exp = Experiment::load(&run.join("experiment.toml"), &[])?;
            match exp.post.watermark {
                Some(w) => w.key,
                None => {
                    return Err(PipelineError::Config(format!(
                        "--run {}: its experiment has no [post] watermark; give the key with --key",
                        run.display()
                    )))
                }
            }
        }
        (None, None) => return Err(PipelineError::Config("watermark detect: give --key HEX or --run RUN".into())),
    };
    WatermarkKey::from_hex(&hex).map_err(|e| PipelineError::Config(format!("--key: {e}")))
}

/// Reads the watermark of `path` (a PNG or JPEG file, or a directory of them) against `key`.
pub fn detect_watermarks(
    path: &std::path::Path,
    key: &genlab_post::watermark::WatermarkKey,
    scale: f32,
) -> Result<Vec<ImageReading>> {
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| PipelineError::Config(format!("{}: cannot list it: {e}", path.display())))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
            })
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(PipelineError::Config(format!("{}: holds no PNG or JPEG images", path.display())));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    files
        .into_iter()
        .map(|file| {
            let picture = read_picture(&file)?;
            let reading = genlab_post::watermark::read(&picture, Some(key), scale)
                .map_err(|e| PipelineError::Config(format!("{}: {e}", file.display())))?;
            Ok(ImageReading { path: file, reading })
        })
        .collect()
}

/// A PNG or JPEG file as a picture: grey images one channel, any other three.
pub fn read_picture(path: &std::path::Path) -> Result<genlab_post::Picture> {
    let bytes = genlab_core::files::read_bounded(path)
        .map_err(|e| PipelineError::Config(format!("{}: cannot read it: {e}", path.display())))?;
    let format = image::guess_format(&bytes)
        .ok()
        .filter(|f| matches!(f, image::ImageFormat::Png | image::ImageFormat::Jpeg))
        .ok_or_else(|| PipelineError::Config(format!("{}: not a PNG or JPEG image", path.display())))?;
    let decoded = image::load_from_memory_with_format(&bytes, format)
        .map_err(|e| PipelineError::Config(format!("{}: not a readable {format:?} image: {e}", path.display())))?;
    let (w, h) = (decoded.width() as usize, decoded.height() as usize);
    if decoded.color().has_color() {
        let rgb = decoded.to_rgb8();
        let px = rgb.as_raw();
        let pixels = (0..3).flat_map(|c| (0..w * h).map(move |i| f32::from(px[3 * i + c]))).collect();
        Ok(genlab_post::Picture::new(3, h, w, pixels))
    } else {
        Ok(genlab_post::Picture::new(1, h, w, decoded.to_luma8().as_raw().iter().map(|&v| f32::from(v)).collect()))
    }
}

/// The watermark step of `[post]` in a run's experiment (the package's 36 without one).
pub fn watermark_scale(run: &std::path::Path) -> Result<f32> {
    let exp = Experiment::load(&run.join("experiment.toml"), &[])?;
    Ok(exp.post.watermark.map_or(genlab_post::watermark::DEFAULT_SCALE, |w| w.scale))
}

/// The experiment's `[post] text_watermark` over `tokenizer`'s vocabulary.
pub fn green_list(
    exp: &Experiment,
    tokenizer: &genlab_data::Tokenizer,
) -> Option<genlab_models::lm::watermark::GreenList> {
    exp.post.text_watermark.map(|t| genlab_models::lm::watermark::GreenList {
        key: t.key,
        gamma: t.gamma,
        delta: t.delta,
        vocab: tokenizer.vocab_size(),
    })
}

/// What `genlab watermark detect --text` found.
#[derive(Debug, Clone, Copy)]
pub struct TextReading {
    pub detection: genlab_models::lm::watermark::Detection,
    pub green_list: genlab_models::lm::watermark::GreenList,
}

/// A z-score above this says "watermarked" (Kirchenbauer et al.'s threshold: a one-sided
/// false-positive rate of 3e-5 under the null).
pub const TEXT_Z_THRESHOLD: f64 = 4.0;

/// Scores the text of `file` for the green-list watermark of `run`'s `[post] text_watermark`,
/// tokenised by the run's tokenizer.
pub fn detect_text_watermark(file: &std::path::Path, run: &std::path::Path) -> Result<TextReading> {
    let exp = Experiment::load(&run.join("experiment.toml"), &[])?;
    let info = crate::run_dir::RunInfo::load(run)?;
    let tokenizer = info.tokenizer.as_ref().ok_or_else(|| {
        PipelineError::Config(format!(
            "--run {}: a {} run has no tokenizer; expected a language model's run",
            run.display(),
            exp.model.family
        ))
    })?;
    let green_list = green_list(&exp, tokenizer).ok_or_else(|| {
        PipelineError::Config(format!("--run {}: its experiment has no [post] text_watermark", run.display()))
    })?;
    let bytes = genlab_core::files::read_bounded(file)
        .map_err(|e| PipelineError::Config(format!("--text {}: cannot read it: {e}", file.display())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| PipelineError::Config(format!("--text {}: not UTF-8 text", file.display())))?;
    let (tokens, _) = tokenizer.encode_lossy(&text);
    Ok(TextReading { detection: green_list.detect(&tokens), green_list })
}

/// `texts` through `[post] text`: each step, then the verbatim check against `training_text`;
/// withheld texts are left out and counted.
pub(crate) fn apply_text(
    config: &genlab_post::TextPostConfig,
    texts: Vec<String>,
    training_text: &str,
) -> (Vec<String>, genlab_post::content::FilterCounts) {
    let post = genlab_post::TextPost::new(config, training_text);
    let index = post.verbatim_chars().map(|_| crate::language::TrainingIndex::new(training_text));
    let mut counts = genlab_post::content::FilterCounts::default();
    let mut kept = Vec::with_capacity(texts.len());
    for text in texts {
        let Some(text) = post.apply(&text, &mut counts) else { continue };
        if let (Some(index), Some(n)) = (&index, post.verbatim_chars()) {
            if crate::language::memorisation(index, &text, n).longest >= n {
                counts.copied += 1;
                continue;
            }
        }
        kept.push(text);
    }
    (kept, counts)
}

/// What the text filters did, in words; None when they changed nothing.
pub(crate) fn describe_counts(c: &genlab_post::content::FilterCounts) -> Option<String> {
    let parts: Vec<String> = [
        (c.corrected_words, "words corrected"),
        (c.blocked_words, "blocklisted words"),
        (c.withheld, "texts withheld by the blocklist"),
        (c.copied, "texts withheld for repeating the training text"),
        (c.emails, "e-mail addresses redacted"),
        (c.urls, "URLs redacted"),
        (c.phones, "phone numbers redacted"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use genlab_core::SeededRng;

    /// Texts with a planted span of the training text (40 to 80 characters, from random places)
    /// are all withheld at a 40-character limit; texts of the same words reshuffled are kept.
    #[test]
    fn planted_training_spans_are_all_withheld() {
        let training: String =
            genlab_data::TextCorpus::read(&genlab_data::source::data_dir().join("shakespeare/shakespeare.txt.gz"))
                .expect("the vendored corpus should read")
                .text
                .chars()
                .take(200_000)
                .collect();
        let chars: Vec<char> = training.chars().collect();
        let words: Vec<&str> = training.split_whitespace().collect();
        let mut rng = SeededRng::stream(3, 0);
        let mut planted = Vec::new();
        let mut fresh = Vec::new();
        for _ in 0..200 {
            let len = 40 + rng.below(41);
            let at = rng.below(chars.len() - len);
            let span: String = chars[at..at + len].iter().collect();
            planted.push(format!("Lorem vexed sprites {span} quoth the zephyr."));
            fresh.push((0..12).map(|_| words[rng.below(words.len())]).collect::<Vec<_>>().join(" "));
        }
        let config = genlab_post::TextPostConfig { verbatim_chars: Some(40), ..Default::default() };
        let (kept, counts) = apply_text(&config, planted, &training);
        assert!(kept.is_empty(), "{} planted texts kept: {:?}", kept.len(), kept.first());
        assert_eq!(counts.copied, 200);
        let (kept, counts) = apply_text(&config, fresh, &training);
        assert!(counts.copied <= 2, "{} of 200 shuffled texts withheld", counts.copied);
        assert_eq!(kept.len() as u64 + counts.copied, 200);
    }
}
