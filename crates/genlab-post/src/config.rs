//! `[post]`: what every generated sample passes through, in order: the image steps, then the
//! invisible watermark.
//!
//! ```toml
//! [post]
//! image = [{ resize = { height = 128, width = 128, filter = "lanczos" } }, { unsharp = { sigma = 1.0, amount = 0.5 } }]
//! watermark = { key = "6a3f00c1" }
//! ```

use crate::content::{BlockAction, Blocklist, FilterCounts, PiiRedactor};
use crate::error::Result;
use crate::image_ops::{apply_all, ImageStep, Picture};
use crate::normalize::normalize;
use crate::symspell::SymSpell;
use crate::watermark::{self, WatermarkKey, DEFAULT_SCALE};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostConfig {
    /// Image steps, applied in the order listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image: Vec<ImageStep>,
    /// The invisible watermark embedded in every generated image, after the steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<WatermarkConfig>,
    /// The green-list watermark in every text a language model samples (Kirchenbauer et al. 2023).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_watermark: Option<TextWatermarkConfig>,
    /// What every generated text passes through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextPostConfig>,
    /// Generated images closer to a training image than the evaluation's memorisation threshold
    /// are withheld and drawn again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memorisation: Option<MemorisationConfig>,
}

/// `[post] memorisation`: the evaluation's memorisation search at generation time, in the
/// feature space of `eval.features`: the threshold is the `quantile` of `examples` held-out
/// images' distances to their nearest of `examples` training images (the evaluation's rule).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemorisationConfig {
    #[serde(default = "default_quantile")]
    pub quantile: f64,
    #[serde(default = "default_examples")]
    pub examples: usize,
    /// Draws of a withheld sample before it is left out.
    #[serde(default = "default_attempts")]
    pub attempts: usize,
}

fn default_quantile() -> f64 {
    0.01
}

fn default_examples() -> usize {
    2000
}

fn default_attempts() -> usize {
    5
}

/// `[post] text`: in this order, whitespace and punctuation normalisation, spelling correction
/// against the training text's words, the blocklist, redaction of personal data; then a text
/// repeating `verbatim_chars` or more characters of the training text is withheld.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextPostConfig {
    /// A finished seq2seq corrector run (issue 14's encoder-decoder) that corrects each line first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrector: Option<std::path::PathBuf>,
    #[serde(default)]
    pub normalize: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spelling: Option<SpellingConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocklist: Vec<String>,
    #[serde(default)]
    pub block_action: BlockAction,
    /// Replace e-mail addresses, URLs and phone numbers by `[email]`, `[url]`, `[phone]`.
    #[serde(default)]
    pub redact: bool,
    /// Withhold a text that repeats this many characters of the training text (the language
    /// models' memorisation check uses 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbatim_chars: Option<usize>,
}

/// The SymSpell corrector's reach.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpellingConfig {
    #[serde(default = "default_distance")]
    pub max_distance: usize,
    #[serde(default = "default_prefix")]
    pub prefix_length: usize,
}

fn default_distance() -> usize {
    2
}

fn default_prefix() -> usize {
    7
}

/// `[post] text` ready to run: the corrector's index built from the training text.
#[derive(Debug, Clone)]
pub struct TextPost {
    config: TextPostConfig,
    speller: Option<SymSpell>,
    blocklist: Blocklist,
    redactor: PiiRedactor,
}

impl TextPost {
    pub fn new(config: &TextPostConfig, training_text: &str) -> TextPost {
        let speller = config.spelling.map(|s| SymSpell::from_text(training_text, s.max_distance, s.prefix_length));
        TextPost {
            config: config.clone(),
            speller,
            blocklist: Blocklist::new(&config.blocklist, config.block_action),
            redactor: PiiRedactor::new(),
        }
    }

    /// The text after every step but the verbatim check, or None when the blocklist withholds it.
    pub fn apply(&self, text: &str, counts: &mut FilterCounts) -> Option<String> {
        let mut text = if self.config.normalize { normalize(text) } else { text.to_string() };
        if let Some(speller) = &self.speller {
            let before = text.clone();
            text = text.lines().map(|l| speller.correct_line(l)).collect::<Vec<_>>().join("\n");
            if before.ends_with('\n') {
                text.push('\n');
            }
            counts.corrected_words += crate::symspell::words(&before)
                .zip(crate::symspell::words(&text))
                .filter(|((_, a), (_, b))| a != b)
                .count() as u64;
        }
        let mut text = self.blocklist.apply(&text, counts)?;
        if self.config.redact {
            text = self.redactor.redact(&text, counts);
        }
        Some(text)
    }

    pub fn verbatim_chars(&self) -> Option<usize> {
        self.config.verbatim_chars
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextWatermarkConfig {
    pub key: u64,
    /// The green fraction of the vocabulary in each context.
    #[serde(default = "default_gamma")]
    pub gamma: f64,
    /// Added to the green tokens' logits.
    #[serde(default = "default_delta")]
    pub delta: f32,
}

fn default_gamma() -> f64 {
    0.25
}

fn default_delta() -> f32 {
    2.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkConfig {
    /// 32 bits as 8 hexadecimal digits.
    pub key: String,
    /// The quantisation step (36, the `invisible-watermark` package's; larger survives more and
    /// shows more).
    #[serde(default = "default_scale")]
    pub scale: f32,
}

fn default_scale() -> f32 {
    DEFAULT_SCALE
}

impl PostConfig {
    pub fn is_empty(&self) -> bool {
        self.image.is_empty()
            && self.watermark.is_none()
            && self.text_watermark.is_none()
            && self.text.is_none()
            && self.memorisation.is_none()
    }

    /// Every step's values, the key and the scale, refused with the field that is wrong:
    /// `(key path, message)`, as the experiment's own checks report.
    pub fn validate(&self) -> std::result::Result<(), (String, String)> {
        for (i, step) in self.image.iter().enumerate() {
            step.validate().map_err(|e| (format!("post.image[{i}]"), format!(": {e}")))?;
        }
        if let Some(w) = &self.watermark {
            WatermarkKey::from_hex(&w.key).map_err(|e| ("post.watermark.key".to_string(), format!(": {e}")))?;
            if !(w.scale.is_finite() && (4.0..=128.0).contains(&w.scale)) {
                return Err(("post.watermark.scale".into(), format!(" = {}: expected a step in [4, 128]", w.scale)));
            }
        }
        if let Some(t) = &self.text {
            if let Some(s) = t.spelling {
                if !(1..=3).contains(&s.max_distance) {
                    return Err((
                        "post.text.spelling.max_distance".into(),
                        format!(" = {}: expected 1 to 3", s.max_distance),
                    ));
                }
                if !(s.max_distance + 1..=16).contains(&s.prefix_length) {
                    return Err((
                        "post.text.spelling.prefix_length".into(),
                        format!(" = {}: expected max_distance + 1 to 16", s.prefix_length),
                    ));
                }
            }
            if let Some(n) = t.verbatim_chars.filter(|n| !(8..=10_000).contains(n)) {
                return Err(("post.text.verbatim_chars".into(), format!(" = {n}: expected 8 to 10000 characters")));
            }
        }
        if let Some(m) = &self.memorisation {
            if !(m.quantile > 0.0 && m.quantile <= 0.5) {
                return Err((
                    "post.memorisation.quantile".into(),
                    format!(" = {}: expected a fraction in (0, 0.5]", m.quantile),
                ));
            }
            if !(10..=60_000).contains(&m.examples) {
                return Err((
                    "post.memorisation.examples".into(),
                    format!(" = {}: expected 10 to 60000 images", m.examples),
                ));
            }
            if !(1..=20).contains(&m.attempts) {
                return Err(("post.memorisation.attempts".into(), format!(" = {}: expected 1 to 20", m.attempts)));
            }
        }
        if let Some(t) = &self.text_watermark {
            if !(t.gamma > 0.0 && t.gamma < 1.0) {
                return Err((
                    "post.text_watermark.gamma".into(),
                    format!(" = {}: expected a fraction in (0, 1)", t.gamma),
                ));
            }
            if !(t.delta.is_finite() && (0.0..=20.0).contains(&t.delta)) {
                return Err((
                    "post.text_watermark.delta".into(),
                    format!(" = {}: expected a logit bias in [0, 20]", t.delta),
                ));
            }
        }
        Ok(())
    }
}

/// `[post]` ready to run on images of one shape.
#[derive(Debug, Clone)]
pub struct ImagePost {
    steps: Vec<ImageStep>,
    watermark: Option<(WatermarkKey, f32)>,
    input: [usize; 3],
    output: [usize; 3],
}

impl ImagePost {
    /// `[post]` for images of `shape` (`[channels, height, width]`); refuses a watermark the
    /// images (after the steps) are too small to carry. Validate the config first.
    pub fn new(config: &PostConfig, shape: [usize; 3]) -> Result<ImagePost> {
        let output = config.image.iter().fold(shape, |[c, h, w], step| match *step {
            ImageStep::Resize { height, width, .. } => [c, height as usize, width as usize],
            _ => [c, h, w],
        });
        let watermark = match &config.watermark {
            None => None,
            Some(w) => {
                watermark::check_size(output[1], output[2])?;
                Some((WatermarkKey::from_hex(&w.key)?, w.scale))
            }
        };
        Ok(ImagePost { steps: config.image.clone(), watermark, input: shape, output })
    }

    /// The shape of what comes out.
    pub fn output_shape(&self) -> [usize; 3] {
        self.output
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.watermark.is_none()
    }

    /// `n` images `[n, c, h, w]` (8-bit range) through the steps and the watermark.
    pub fn apply(&self, pixels: &[f32], n: usize) -> Result<Vec<f32>> {
        let [c, h, w] = self.input;
        let len = c * h * w;
        let mut out = Vec::with_capacity(n * self.output.iter().product::<usize>());
        for i in 0..n {
            let picture = Picture::new(c, h, w, pixels[i * len..(i + 1) * len].to_vec());
            let mut done = apply_all(&self.steps, &picture);
            if let Some((key, scale)) = &self.watermark {
                done = watermark::embed(&done, key, *scale)?;
            }
            out.extend(done.pixels);
        }
        Ok(out)
    }
}

impl std::fmt::Display for ImagePost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self.steps.iter().map(|s| s.describe()).collect();
        if let Some((key, scale)) = &self.watermark {
            parts.push(format!("watermark (dwtDct, key {}, step {scale})", key.to_hex()));
        }
        if parts.is_empty() {
            write!(f, "none")
        } else {
            write!(f, "{}", parts.join(", then "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_shape_follows_the_resizes_and_the_watermark_checks_it() {
        let config = PostConfig {
            image: vec![
                ImageStep::Median { radius: 1 },
                ImageStep::Resize { height: 112, width: 96, filter: crate::image_ops::ResizeFilter::Lanczos },
            ],
            watermark: Some(WatermarkConfig { key: "0badf00d".into(), scale: 36.0 }),
            text_watermark: None,
            text: None,
            memorisation: None,
        };
        config.validate().unwrap();
        let post = ImagePost::new(&config, [1, 28, 28]).unwrap();
        assert_eq!(post.output_shape(), [1, 112, 96]);
        let out = post.apply(&vec![128.0; 2 * 28 * 28], 2).unwrap();
        assert_eq!(out.len(), 2 * 112 * 96);
        let small = PostConfig { image: vec![], ..config.clone() };
        assert!(ImagePost::new(&small, [1, 28, 28]).unwrap_err().to_string().contains("28x28"));
        let wrong = PostConfig { watermark: Some(WatermarkConfig { key: "abc".into(), scale: 36.0 }), ..config };
        let (key, message) = wrong.validate().unwrap_err();
        assert_eq!(key, "post.watermark.key");
        assert!(message.contains("3 hexadecimal digits, expected 8"), "{message}");
    }

    /// `[post]` as a resolved experiment writes it reads back the same.
    #[test]
    fn round_trips_through_toml() {
        let text = r#"
image = [{ resize = { height = 128, width = 128, filter = "lanczos" } }, { binarize = { threshold = "otsu" } },
         { binarize = { threshold = 100 } }, { levels = { black = 10, white = 240 } }]
watermark = { key = "6a3f00c1" }
"#;
        let config: PostConfig = toml::from_str(text).unwrap();
        assert_eq!(config.watermark.as_ref().unwrap().scale, 36.0);
        let again: PostConfig = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(again, config);
        let err = toml::from_str::<PostConfig>("image = [{ sharpen = { sigma = 1 } }]").unwrap_err().to_string();
        assert!(err.contains("unknown variant `sharpen`"), "{err}");
    }
}
