//! Phase 7, `[post]`, applied to what a family generated: the image steps and the watermark on
//! every generated image (`genlab sample`); a family whose samples are not images passes through.

use crate::error::{PipelineError, Result};
use crate::experiment::Experiment;
use crate::generate::{GenerateRequest, Generated, OutputKind};
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

/// `[post] text` ready to run: the spelling index and the verbatim index over the training text,
/// built once (a server keeps them between requests).
pub(crate) struct TextFilters {
    post: genlab_post::TextPost,
    index: Option<crate::language::TrainingIndex>,
}

impl TextFilters {
    pub fn new(config: &genlab_post::TextPostConfig, training_text: &str) -> TextFilters {
        let post = genlab_post::TextPost::new(config, training_text);
        let index = post.verbatim_chars().map(|_| crate::language::TrainingIndex::new(training_text));
        TextFilters { post, index }
    }

    /// `texts` through every step, then the verbatim check; withheld texts are left out and counted.
    pub fn apply(
        &self,
        texts: Vec<String>,
        corrector: Option<&dyn crate::serving::Loaded>,
    ) -> (Vec<String>, genlab_post::content::FilterCounts) {
        let mut counts = genlab_post::content::FilterCounts::default();
        let mut kept = Vec::with_capacity(texts.len());
        for text in texts {
            let text = match corrector {
                Some(c) => correct_lines(c, &text, &mut counts),
                None => text,
            };
            let Some(text) = self.post.apply(&text, &mut counts) else { continue };
            if let (Some(index), Some(n)) = (&self.index, self.post.verbatim_chars()) {
                if crate::language::memorisation(index, &text, n).longest >= n {
                    counts.copied += 1;
                    continue;
                }
            }
            kept.push(text);
        }
        (kept, counts)
    }
}

/// `texts` through `[post] text`, its indexes built for this one call.
pub(crate) fn apply_text(
    config: &genlab_post::TextPostConfig,
    texts: Vec<String>,
    training_text: &str,
    corrector: Option<&dyn crate::serving::Loaded>,
) -> (Vec<String>, genlab_post::content::FilterCounts) {
    TextFilters::new(config, training_text).apply(texts, corrector)
}

/// `[post] text`'s corrector run, refused unless it is a finished run that corrects text.
pub(crate) fn load_corrector(
    dir: &std::path::Path,
    events: genlab_core::events::Events,
) -> Result<Box<dyn crate::serving::Loaded>> {
    let named = format!("post.text.corrector = \"{}\"", dir.display());
    let loaded = crate::serving::load(dir, None, events).map_err(|e| PipelineError::Config(format!("{named}: {e}")))?;
    if !loaded.card().capabilities.correct {
        return Err(PipelineError::Config(format!(
            "{named}: a {} run; expected a seq2seq corrector run",
            loaded.card().family
        )));
    }
    Ok(loaded)
}

/// Each line of `text` corrected by the seq2seq corrector `c` (greedy); a line it cannot take
/// (longer than its inputs, or empty) stays as it is.
fn correct_lines(
    c: &dyn crate::serving::Loaded,
    text: &str,
    counts: &mut genlab_post::content::FilterCounts,
) -> String {
    let mut out: Vec<String> = Vec::new();
    for line in text.split('\n') {
        let request = GenerateRequest { correct: Some(line.to_string()), ..GenerateRequest::new(1, 0) };
        let fixed = match (line.trim().is_empty(), c.generate(&request, None)) {
            (false, Ok(Generated::Text(mut t))) if !t.is_empty() => t.swap_remove(0),
            _ => line.to_string(),
        };
        counts.corrected_words += genlab_post::symspell::words(line)
            .zip(genlab_post::symspell::words(&fixed))
            .filter(|((_, a), (_, b))| a != b)
            .count() as u64;
        out.push(fixed);
    }
    out.join("\n")
}

/// What the text filters did, in words; None when they changed nothing.
pub(crate) fn describe_counts(c: &genlab_post::content::FilterCounts) -> Option<String> {
    let parts: Vec<String> = [
        (c.corrected_words, "words corrected"),
        (c.blocked_words, "blocklisted words"),
        (c.withheld, "texts withheld by the blocklist"),
        (c.copied, "texts withheld for repeating the training text"),
        (
            c.memorised_images,
            "image draws withheld for being closer to a training image than the memorisation threshold (drawn again)",
        ),
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

/// `[post] memorisation`, ready: the training images' features and the threshold.
pub struct MemorisationFilter {
    net: genlab_eval::extract::FeatureExtractor,
    train: genlab_eval::features::Features,
    pub threshold: f64,
    pub quantile: f64,
    pub examples: usize,
    shape: [usize; 3],
    batch: usize,
}

impl MemorisationFilter {
    /// The feature network of `eval.features`, the first `examples` training images' features,
    /// and the threshold from as many held-out images.
    pub fn build(
        exp: &Experiment,
        config: genlab_post::MemorisationConfig,
        splits: &genlab_data::Splits,
        shape: [usize; 3],
        device: &burn::tensor::Device,
        events: &dyn genlab_core::events::EventSink,
    ) -> Result<MemorisationFilter> {
        let net = crate::sample_metrics::load_features(exp, device)
            .map_err(|e| PipelineError::Config(format!("[post] memorisation: {e}")))?;
        let batch = exp.eval.batch_size.max(50);
        let run = |e: genlab_eval::EvalError| PipelineError::Run(format!("[post] memorisation: {e}"));
        let features = |set: &genlab_data::ImageSet, rows: &[usize], what: &str| {
            let px = set.batch(rows).data;
            net.extract(&px, rows.len(), shape, batch, events.progress(what, rows.len() as u64, 0)).map(|x| x.features)
        };
        let train_rows = &splits.train_rows[..config.examples.min(splits.train_rows.len())];
        let held_rows = &splits.eval_rows[..config.examples.min(splits.eval_rows.len())];
        if held_rows.len() < 2 {
            return Err(PipelineError::Config("[post] memorisation: needs at least 2 held-out images".into()));
        }
        let train = features(&splits.train, train_rows, "memorisation: training features").map_err(run)?;
        let held = features(&splits.eval, held_rows, "memorisation: held-out features").map_err(run)?;
        let real: Vec<f64> = genlab_eval::memorisation::nearest(&held, &train).into_iter().map(|(_, d)| d).collect();
        let threshold = genlab_eval::memorisation::threshold(&real, config.quantile);
        Ok(MemorisationFilter {
            net,
            train,
            threshold,
            quantile: config.quantile,
            examples: train_rows.len(),
            shape,
            batch,
        })
    }

    /// Which of `n` images (8-bit range, the filter's shape) are closer to a training image than
    /// the threshold.
    pub fn too_close(&self, pixels: &[f32], n: usize) -> Result<Vec<bool>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let f = self
            .net
            .extract(pixels, n, self.shape, self.batch, genlab_core::progress::Progress::hidden())
            .map_err(|e| PipelineError::Run(format!("[post] memorisation: {e}")))?
            .features;
        Ok(genlab_eval::memorisation::nearest(&f, &self.train).into_iter().map(|(_, d)| d < self.threshold).collect())
    }
}

/// Replaces each image of `images` the filter flags by a new draw (`draw(count, attempt)`), up to
/// `attempts` times; what is still flagged then is left out. Returns the images and how many
/// draws were withheld.
pub(crate) fn redraw_memorised(
    filter: &MemorisationFilter,
    mut images: crate::generate::Images,
    attempts: usize,
    mut draw: impl FnMut(usize, usize) -> Result<crate::generate::Images>,
) -> Result<(crate::generate::Images, usize)> {
    let len: usize = images.shape.iter().product();
    let mut withheld = 0;
    let mut flags = filter.too_close(&images.pixels, images.n)?;
    for attempt in 1..=attempts {
        let bad: Vec<usize> = flags.iter().enumerate().filter(|(_, &f)| f).map(|(i, _)| i).collect();
        if bad.is_empty() {
            break;
        }
        withheld += bad.len();
        let fresh = draw(bad.len(), attempt)?;
        let fresh_flags = filter.too_close(&fresh.pixels, fresh.n)?;
        for (k, &i) in bad.iter().enumerate() {
            images.pixels[i * len..(i + 1) * len].copy_from_slice(&fresh.pixels[k * len..(k + 1) * len]);
            flags[i] = fresh_flags[k];
        }
    }
    // Still too close after every attempt: left out.
    let keep: Vec<usize> = (0..images.n).filter(|&i| !flags[i]).collect();
    withheld += images.n - keep.len();
    if keep.len() < images.n {
        images.pixels = keep.iter().flat_map(|&i| images.pixels[i * len..(i + 1) * len].to_vec()).collect();
        images.n = keep.len();
    }
    Ok((images, withheld))
}

/// Generated images the memorisation filter is measured on, at least.
pub const FILTER_SAMPLES: usize = 500;
/// Training images planted among them, as they are and with noise.
const PLANTED: usize = 100;
/// The noise of the noisy copies, in grey levels (standard deviation).
const PLANTED_NOISE: f32 = 8.0;

/// The report's section on `[post] memorisation`: the fraction of fresh samples it would withhold,
/// and the planted training images (exact copies, and copies with noise) it catches.
pub(crate) fn memorisation_filter_report(
    cx: &crate::evaluation::EvalContext<'_>,
    config: genlab_post::MemorisationConfig,
    splits: &genlab_data::Splits,
    images: &crate::generate::Images,
) -> Result<(String, serde_json::Value)> {
    let filter = MemorisationFilter::build(cx.exp, config, splits, images.shape, &cx.device, &**cx.events)?;
    let fresh = filter.too_close(&images.pixels, images.n)?;
    let fresh_rate = fresh.iter().filter(|&&f| f).count() as f64 / images.n.max(1) as f64;
    // Planted: training images the filter indexes, spread over them.
    let planted = PLANTED.min(filter.examples);
    let rows: Vec<usize> = (0..planted).map(|i| splits.train_rows[i * filter.examples / planted]).collect();
    let exact = splits.train.batch(&rows).data;
    let mut rng = genlab_core::SeededRng::stream(cx.exp.eval.seed, 0x9147);
    let noise = rng.normal_vec(exact.len());
    let noisy: Vec<f32> = exact.iter().zip(noise).map(|(&v, z)| (v + PLANTED_NOISE * z).clamp(0.0, 255.0)).collect();
    let caught = |px: &[f32]| -> Result<usize> { Ok(filter.too_close(px, planted)?.iter().filter(|&&f| f).count()) };
    let (exact_caught, noisy_caught) = (caught(&exact)?, caught(&noisy)?);
    let md = format!(
        "## Memorisation filter\n\n`[post] memorisation` withholds a generated image closer to one of {} training images than {:.4} in the feature space of the sample metrics (the {} quantile of as many held-out images' nearest-training distances: the evaluation's rule) and draws it again.\n\n\
         | | withheld |\n|---|---|\n\
         | fresh samples ({} of this evaluation's draw) | {:.4} ({} of {}) |\n\
         | training images planted among them, as they are | **{exact_caught} of {planted}** |\n\
         | the same with Gaussian noise of {PLANTED_NOISE} grey levels | {noisy_caught} of {planted} |\n\n",
        filter.examples,
        filter.threshold,
        filter.quantile,
        images.n,
        fresh_rate,
        fresh.iter().filter(|&&f| f).count(),
        images.n,
    );
    let record = serde_json::json!({
        "threshold": filter.threshold, "quantile": filter.quantile, "examples": filter.examples,
        "fresh_samples": images.n, "fresh_withheld_rate": fresh_rate,
        "planted": planted, "planted_exact_caught": exact_caught, "planted_noisy_caught": noisy_caught,
    });
    Ok((md, record))
}

/// The sample metrics of the same images after `[post] image` (the watermark left out: it is
/// measured on its own), beside `before`, as the report's section; None when the steps change
/// the images' size (the metrics compare images of the data's size).
pub(crate) fn metrics_after_steps(
    cx: &crate::evaluation::EvalContext<'_>,
    splits: &genlab_data::Splits,
    images: &crate::generate::Images,
    before: &genlab_eval::suite::SampleMetrics,
) -> Result<(String, Option<genlab_eval::suite::SampleMetrics>)> {
    let steps_only = genlab_post::PostConfig { image: cx.exp.post.image.clone(), ..Default::default() };
    let post = ImagePost::new(&steps_only, images.shape).map_err(|e| PipelineError::Config(format!("[post] {e}")))?;
    if post.output_shape() != images.shape {
        let md = format!(
            "## Sample metrics after [post]\n\nNot measured: the steps ({post}) change the images from {:?} to {:?}, and the sample metrics compare images of the data's size.\n\n",
            images.shape,
            post.output_shape()
        );
        return Ok((md, None));
    }
    let net = match crate::sample_metrics::feature_network(cx)? {
        Ok(net) => net,
        Err(why) => return Ok((format!("## Sample metrics after [post]\n\nNot measured: {why}\n\n"), None)),
    };
    let pixels = post.apply(&images.pixels, images.n).map_err(|e| PipelineError::Config(format!("[post] {e}")))?;
    let e = &cx.exp.eval;
    let ref_rows = &splits.eval_rows[..e.examples.unwrap_or(usize::MAX).min(splits.eval_rows.len())];
    let train_rows = &splits.train_rows[..e.memorisation_examples.unwrap_or(usize::MAX).min(splits.train_rows.len())];
    let (reference, train) = (splits.eval.batch(ref_rows).data, splits.train.batch(train_rows).data);
    let description = format!("{}, then {post}", images.description);
    let generated = genlab_eval::suite::Generated {
        pixels: genlab_eval::suite::Pixels { values: &pixels, n: images.n },
        shape: images.shape,
        description: &description,
        seed: images.seed,
    };
    let after = genlab_eval::suite::score(
        &net,
        &generated,
        genlab_eval::suite::Pixels { values: &reference, n: ref_rows.len() },
        genlab_eval::suite::Pixels { values: &train, n: train_rows.len() },
        &crate::report::split_name(cx.exp),
        e.batch_size.max(50),
        &**cx.events,
    )
    .map_err(|e| PipelineError::Run(e.to_string()))?;
    let row = |name: &str, a: f64, b: f64| format!("| {name} | {a:.4} | {b:.4} |\n");
    let mut md = format!(
        "## Sample metrics after [post]\n\nThe same {} samples, before and after the image steps ({post}), against the same reference images in the same feature space.\n\n| | as generated | after [post] |\n|---|---|---|\n",
        images.n
    );
    md.push_str(&row("FID", before.fid, after.fid));
    md.push_str(&row("KID", before.kid.mean, after.kid.mean));
    md.push_str(&row("precision", before.prdc.precision, after.prdc.precision));
    md.push_str(&row("recall", before.prdc.recall, after.prdc.recall));
    md.push_str(&row("density", before.prdc.density, after.prdc.density));
    md.push_str(&row("coverage", before.prdc.coverage, after.prdc.coverage));
    if let (Some(a), Some(b)) = (&before.inception_score, &after.inception_score) {
        md.push_str(&row("Inception Score", a.mean, b.mean));
    }
    md.push('\n');
    Ok((md, Some(after)))
}

/// Where `[post]` runs: the experiment, what its family generates and at what size, and the run's
/// data and memorisation filter, each made on first use (a server keeps them between requests).
pub(crate) struct Stage<'a> {
    pub exp: &'a Experiment,
    pub output: OutputKind,
    pub shape: [usize; 3],
    pub device: &'a burn::tensor::Device,
    pub events: &'a dyn genlab_core::events::EventSink,
    /// The run's data, read on first use.
    pub data: &'a dyn Fn() -> Result<&'a crate::data::Data>,
    pub filter: &'a std::sync::OnceLock<MemorisationFilter>,
    /// `[post] text`'s corrector run, loaded on first use.
    pub corrector: &'a std::sync::OnceLock<Box<dyn crate::serving::Loaded>>,
    /// `[post] text`'s indexes over the training text, built on first use.
    pub text_filters: &'a std::sync::OnceLock<TextFilters>,
}

/// `cell`'s data, read from `exp`'s dataset on first use.
pub(crate) fn data_once<'a>(
    cell: &'a std::sync::OnceLock<crate::data::Data>,
    exp: &Experiment,
) -> Result<&'a crate::data::Data> {
    if let Some(d) = cell.get() {
        return Ok(d);
    }
    let loaded = crate::data::Data::load(exp)?;
    Ok(cell.get_or_init(|| loaded))
}

impl Stage<'_> {
    fn data(&self) -> Result<&crate::data::Data> {
        (self.data)()
    }

    fn corrector(&self, dir: &std::path::Path) -> Result<&dyn crate::serving::Loaded> {
        if let Some(c) = self.corrector.get() {
            return Ok(c.as_ref());
        }
        let loaded = load_corrector(dir, std::sync::Arc::new(crate::Terminal))?;
        Ok(self.corrector.get_or_init(|| loaded).as_ref())
    }

    fn filter(&self, config: genlab_post::MemorisationConfig) -> Result<&MemorisationFilter> {
        if let Some(f) = self.filter.get() {
            return Ok(f);
        }
        let built =
            MemorisationFilter::build(self.exp, config, self.data()?.images()?, self.shape, self.device, self.events)?;
        Ok(self.filter.get_or_init(|| built))
    }

    /// `generated` (drawn for `request`) through `[post]`, unless the request asks for the raw
    /// samples: images too close to a training image drawn again by `redraw` (another seed per
    /// attempt), the image steps and the watermark; texts through the text filters. What the
    /// filters did is added to `counts`.
    pub fn finish(
        &self,
        request: &GenerateRequest,
        generated: Generated,
        counts: &mut genlab_post::content::FilterCounts,
        redraw: &mut dyn FnMut(&GenerateRequest) -> Result<Generated>,
    ) -> Result<Generated> {
        if request.raw {
            return Ok(generated);
        }
        let generated = match (generated, self.exp.post.memorisation) {
            (Generated::Images(images), Some(config)) => {
                let filter = self.filter(config)?;
                let (images, withheld) = redraw_memorised(filter, images, config.attempts, |count, attempt| {
                    // Explicit latents and merged requests would draw the same images again.
                    let again = GenerateRequest {
                        count,
                        seed: request.seed ^ (0x6d65_6d6f << 16) ^ attempt as u64,
                        latents: None,
                        seeds: None,
                        ..request.clone()
                    };
                    match redraw(&again)? {
                        Generated::Images(im) => Ok(im),
                        _ => Err(PipelineError::Run("[post] memorisation: a redraw gave no images".into())),
                    }
                })?;
                counts.memorised_images += withheld as u64;
                Generated::Images(images)
            }
            (generated, _) => generated,
        };
        let generated = apply(self.exp, self.output, generated)?;
        match (generated, &self.exp.post.text) {
            (Generated::Text(texts), Some(config)) => {
                let corrector = match &config.corrector {
                    Some(dir) => Some(self.corrector(dir)?),
                    None => None,
                };
                let filters = match self.text_filters.get() {
                    Some(f) => f,
                    None => {
                        let built = TextFilters::new(config, &self.data()?.text()?.train_text);
                        self.text_filters.get_or_init(|| built)
                    }
                };
                let (texts, done) = filters.apply(texts, corrector);
                counts.add(&done);
                Ok(Generated::Text(texts))
            }
            (generated, _) => Ok(generated),
        }
    }
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
        let (kept, counts) = apply_text(&config, planted, &training, None);
        assert!(kept.is_empty(), "{} planted texts kept: {:?}", kept.len(), kept.first());
        assert_eq!(counts.copied, 200);
        let (kept, counts) = apply_text(&config, fresh, &training, None);
        assert!(counts.copied <= 2, "{} of 200 shuffled texts withheld", counts.copied);
        assert_eq!(kept.len() as u64 + counts.copied, 200);
    }
}
