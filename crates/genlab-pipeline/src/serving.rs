//! A finished run loaded once to answer many generation requests (`genlab serve`). The model stays
//! in memory; each request is checked as `genlab sample` checks it, against the family's
//! capabilities; concurrent requests are answered together by [`generate_batch`], which merges
//! requests that differ only in seed, count and latents into one forward pass where the family
//! decodes latent vectors.

use crate::data::Data;
use crate::error::{PipelineError, Result};
use crate::family::{Family, Section};
use crate::generate::{Capabilities, GenerateRequest, Generated, Images, OutputKind};
use crate::reopen::RunTarget;
use crate::run::family_of;
use genlab_core::events::{EventSink, Events};
use genlab_core::DeviceSpec;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// What a loaded model is and can do, for the server's model list and its checks.
#[derive(Debug, Clone)]
pub struct ModelCard {
    /// The run directory's name.
    pub name: String,
    pub family: &'static str,
    pub capabilities: Capabilities,
    /// `[channels, height, width]` of an image model's samples.
    pub shape: [usize; 3],
    /// The names of the run's classes (a conditional model's class picker).
    pub class_names: Vec<String>,
    /// The training step of the loaded weights.
    pub step: u64,
    /// Whether the weights are the EMA copy.
    pub ema: bool,
    /// A text model's tokenizer (to count tokens).
    pub tokenizer: Option<Arc<genlab_data::Tokenizer>>,
}

/// A run's model held in memory. It is not shared between threads: the server gives each model
/// one worker thread that owns it.
pub trait Loaded {
    fn card(&self) -> &ModelCard;

    /// Generates what `request` asks, after checking it; text streams to `stream` as it is made.
    fn generate(&self, request: &GenerateRequest, stream: Option<&dyn EventSink>) -> Result<Generated>;

    /// The latent vectors a request with `seed` decodes (`count x latent` values), for a model
    /// with a latent prior.
    fn latents(&self, seed: u64, count: usize) -> Option<Vec<f32>>;

    /// The first `count` images of the run's evaluation split as 8-bit values (the in-painting
    /// canvas's test images), read from the data once.
    fn examples(&self, count: usize) -> Result<Images>;

    /// Up to `k` principal directions of the model's latent codes of its evaluation images (a
    /// VAE), each a unit vector with its standard deviation; None without an encoder.
    fn directions(&self, k: usize) -> Result<Option<Vec<Direction>>>;

    /// What `[post]`'s filters have done since the model was loaded.
    fn post_counts(&self) -> genlab_post::content::FilterCounts;
}

/// Opens `run_dir`'s latest intact checkpoint (the EMA weights when kept) and loads its model;
/// `events` hears which checkpoint was passed over, if any.
pub fn load(run_dir: &Path, device: Option<DeviceSpec>, events: Events) -> Result<Box<dyn Loaded>> {
    let target = RunTarget::open(run_dir, device, &[], events)?;
    family_of(&target.exp)?.load(target)
}

/// A loaded run of family `F`.
pub(crate) struct LoadedRun<F: Family> {
    family: F,
    model: F::Model,
    target: RunTarget,
    card: ModelCard,
    data: OnceLock<std::result::Result<Data, String>>,
    /// `[post] memorisation`'s filter, made on the first image request.
    filter: OnceLock<crate::post::MemorisationFilter>,
    /// `[post] text`'s corrector run, loaded on the first text request.
    corrector: OnceLock<Box<dyn Loaded>>,
    /// `[post] text`'s spelling and verbatim indexes, built on the first text request.
    text_filters: OnceLock<crate::post::TextFilters>,
    post_counts: std::cell::Cell<genlab_post::content::FilterCounts>,
}

pub(crate) fn load_family<F: Family>(
    target: RunTarget,
    section: Section<F::Network, F::Options>,
) -> Result<Box<dyn Loaded>> {
    let family = F::new(section, &target.exp, &target.info.facts());
    let model = target.load(crate::run::init_within_memory(&family, &target.exp, &target.device)?)?;
    let name = target
        .run_dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| target.run_dir.display().to_string());
    let card = ModelCard {
        name,
        family: F::CARD.name,
        capabilities: family.capabilities(),
        shape: target.info.data_shape,
        class_names: target.info.class_names.clone(),
        step: target.checkpoint.state.step,
        ema: target.checkpoint.ema.is_some(),
        tokenizer: target.info.tokenizer.clone().map(Arc::new),
    };
    Ok(Box::new(LoadedRun {
        family,
        model,
        target,
        card,
        data: OnceLock::new(),
        filter: OnceLock::new(),
        corrector: OnceLock::new(),
        text_filters: OnceLock::new(),
        post_counts: Default::default(),
    }))
}

impl<F: Family> Loaded for LoadedRun<F> {
    fn card(&self) -> &ModelCard {
        &self.card
    }

    fn generate(&self, request: &GenerateRequest, stream: Option<&dyn EventSink>) -> Result<Generated> {
        request.check(F::CARD.name, &self.card.capabilities)?;
        crate::reopen::check_sample_memory(request.count, self.card.capabilities.output(), self.card.shape)?;
        let generated = self.family.generate(&self.model, request, &self.target.device, stream)?;
        let data = || self.data();
        let stage = crate::post::Stage {
            exp: &self.target.exp,
            output: self.card.capabilities.output(),
            shape: self.card.shape,
            device: &self.target.device,
            events: &*self.target.events,
            data: &data,
            filter: &self.filter,
            corrector: &self.corrector,
            text_filters: &self.text_filters,
        };
        let mut counts = self.post_counts.get();
        let done = stage.finish(request, generated, &mut counts, &mut |again| {
            self.family.generate(&self.model, again, &self.target.device, None)
        });
        self.post_counts.set(counts);
        done
    }

    fn post_counts(&self) -> genlab_post::content::FilterCounts {
        self.post_counts.get()
    }

    fn latents(&self, seed: u64, count: usize) -> Option<Vec<f32>> {
        self.card.capabilities.latent.and(self.family.latents(seed, count))
    }

    fn directions(&self, k: usize) -> Result<Option<Vec<Direction>>> {
        // Checked before the data is read: a model without an encoder has nothing to read it for.
        if !self.card.capabilities.directions {
            return Ok(None);
        }
        self.family.latent_directions(&self.model, self.data()?, k, &self.target.device)
    }

    fn examples(&self, count: usize) -> Result<Images> {
        if self.card.capabilities.output() != OutputKind::Images {
            return Err(PipelineError::Config(format!(
                "examples: the {} family generates {}, not images",
                F::CARD.name,
                self.card.capabilities.output().describe()
            )));
        }
        // The loader already gives the images the run's shape (its resize transform applied).
        let splits = self.data()?.images()?;
        let set = &splits.eval;
        let [c, h, w] = self.card.shape;
        if [set.channels, set.height, set.width] != self.card.shape {
            return Err(PipelineError::Run(format!(
                "examples: the data's images are {}x{}x{}, the run's {c}x{h}x{w}; was the data changed?",
                set.channels, set.height, set.width
            )));
        }
        let n = count.min(splits.eval_rows.len());
        let len = c * h * w;
        let pixels = splits.eval_rows[..n]
            .iter()
            .flat_map(|&r| set.pixels[r * len..(r + 1) * len].iter().map(|&v| v as f32))
            .collect();
        Ok(Images { pixels, n, shape: [c, h, w], description: "evaluation images".into(), seed: 0 })
    }
}

impl<F: Family> LoadedRun<F> {
    /// The run's data, read on first use.
    fn data(&self) -> Result<&Data> {
        let data = self.data.get_or_init(|| Data::load(&self.target.exp).map_err(|e| e.to_string()));
        data.as_ref().map_err(|e| PipelineError::Run(e.clone()))
    }
}

/// A principal direction of latent codes: a unit vector and the codes' standard deviation along it.
#[derive(Debug, Clone, PartialEq)]
pub struct Direction {
    pub unit: Vec<f32>,
    pub std: f32,
}

/// The `k` leading principal directions of `rows` (`n x d` values, row by row), largest variance
/// first: each a unit vector with its standard deviation. Power iteration with deflation on the
/// covariance, in float64.
pub fn principal_directions(rows: &[f32], d: usize, k: usize) -> Vec<Direction> {
    let n = rows.len() / d.max(1);
    if n < 2 || d == 0 {
        return Vec::new();
    }
    let mean: Vec<f64> = (0..d).map(|j| (0..n).map(|i| rows[i * d + j] as f64).sum::<f64>() / n as f64).collect();
    let mut cov = vec![0.0f64; d * d];
    for i in 0..n {
        let x: Vec<f64> = (0..d).map(|j| rows[i * d + j] as f64 - mean[j]).collect();
        for a in 0..d {
            for b in 0..d {
                cov[a * d + b] += x[a] * x[b] / (n - 1) as f64;
            }
        }
    }
    let mut out = Vec::new();
    for start in 0..k.min(d) {
        // A start vector that is not orthogonal to the leading direction, almost surely.
        let mut v: Vec<f64> = (0..d).map(|j| 1.0 + ((j + start) % 7) as f64 * 0.1).collect();
        let mut value = 0.0;
        for _ in 0..500 {
            let w: Vec<f64> = (0..d).map(|a| (0..d).map(|b| cov[a * d + b] * v[b]).sum()).collect();
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm < 1e-12 {
                break;
            }
            value = norm;
            v = w.iter().map(|x| x / norm).collect();
        }
        for a in 0..d {
            for b in 0..d {
                cov[a * d + b] -= value * v[a] * v[b];
            }
        }
        out.push(Direction { unit: v.iter().map(|&x| x as f32).collect(), std: value.sqrt() as f32 });
    }
    out
}

/// Whether two requests differ only in what [`generate_batch`] merges: seed, count and latents.
fn mergeable(a: &GenerateRequest, b: &GenerateRequest) -> bool {
    let strip = |r: &GenerateRequest| GenerateRequest { count: 0, seed: 0, latents: None, seeds: None, ..r.clone() };
    strip(a) == strip(b)
}

/// Answers `requests` together. Requests that differ only in seed, count and latents are merged
/// into one forward pass and split again: where the model decodes latents (a VAE, a GAN), as one
/// request of their latents (each seed's own); where it draws each image from its own noise
/// stream (diffusion), as one request of seed parts. Either way every answer is the one its
/// request gets alone. A conditional model's requests merge only when they name their class.
/// Others (text) run one after another. A request's failure is its own.
pub fn generate_batch(model: &dyn Loaded, requests: &[GenerateRequest]) -> Vec<Result<Generated>> {
    let card = model.card();
    let mut answers: Vec<Option<Result<Generated>>> = requests.iter().map(|_| None).collect();
    let can = &card.capabilities;
    // Each request checked once: a request the model would refuse is answered (refused) alone.
    let merges: Vec<bool> = requests
        .iter()
        .map(|r| {
            (can.latent.is_some() || can.seed_parts)
                && r.seeds.is_none()
                && (r.class.is_some() || can.classes.is_none())
                && r.check(card.family, can).is_ok()
        })
        .collect();
    let mut done = vec![false; requests.len()];
    for i in 0..requests.len() {
        if done[i] {
            continue;
        }
        done[i] = true;
        let mut group = vec![i];
        if merges[i] {
            for j in i + 1..requests.len() {
                if !done[j] && merges[j] && mergeable(&requests[i], &requests[j]) {
                    done[j] = true;
                    group.push(j);
                }
            }
        }
        if group.len() == 1 {
            answers[i] = Some(model.generate(&requests[i], None));
            continue;
        }
        let count = group.iter().map(|&g| requests[g].count).sum();
        let merged = if can.latent.is_some() {
            // Each request's latents, given or drawn from its seed, decoded in one batch.
            let drawn: Option<Vec<Vec<f32>>> = group
                .iter()
                .map(|&g| requests[g].latents.clone().or_else(|| model.latents(requests[g].seed, requests[g].count)))
                .collect();
            drawn.map(|z| GenerateRequest { count, seed: 0, latents: Some(z.concat()), ..requests[i].clone() })
        } else {
            // One batch of images, each drawn from its own request's seed.
            let seeds = group.iter().map(|&g| (requests[g].seed, requests[g].count)).collect();
            Some(GenerateRequest { count, seed: 0, seeds: Some(seeds), ..requests[i].clone() })
        };
        let Some(merged) = merged else {
            for &g in &group {
                answers[g] = Some(model.generate(&requests[g], None));
            }
            continue;
        };
        match model.generate(&merged, None) {
            Ok(Generated::Images(all)) => {
                let len: usize = all.shape.iter().product();
                let mut at = 0;
                for &g in &group {
                    let r = &requests[g];
                    let pixels = all.pixels[at * len..(at + r.count) * len].to_vec();
                    at += r.count;
                    let description = all.description.clone();
                    answers[g] = Some(Ok(Generated::Images(Images {
                        pixels,
                        n: r.count,
                        shape: all.shape,
                        description,
                        seed: r.seed,
                    })));
                }
            }
            other => {
                // Not images (no family merges anything else), or a failure: each alone.
                drop(other);
                for &g in &group {
                    answers[g] = Some(model.generate(&requests[g], None));
                }
            }
        }
    }
    answers.into_iter().map(|a| a.expect("every request is answered")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_directions_of_a_known_covariance() {
        // Points on a stretched, rotated ellipse: standard deviations 3 along (1, 1)/sqrt 2 and 1
        // along (1, -1)/sqrt 2, from a fixed grid of angles.
        let h = std::f64::consts::FRAC_1_SQRT_2;
        let rows: Vec<f32> = (0..360)
            .flat_map(|i| {
                let t = (i as f64).to_radians();
                let (a, b) = (3.0 * 2f64.sqrt() * t.cos(), 2f64.sqrt() * t.sin());
                [(h * a + h * b) as f32, (h * a - h * b) as f32]
            })
            .collect();
        let dirs = principal_directions(&rows, 2, 2);
        let (first, s0) = (&dirs[0].unit, dirs[0].std);
        let (second, s1) = (&dirs[1].unit, dirs[1].std);
        // sqrt(n / (n - 1)) from the unbiased covariance.
        let bias = (360.0f64 / 359.0).sqrt() as f32;
        assert!((s0 - 3.0 * bias).abs() < 1e-3 && (s1 - bias).abs() < 1e-3, "{s0} {s1}");
        assert!((first[0].abs() - h as f32).abs() < 1e-4 && (first[0] - first[1]).abs() < 1e-4, "{first:?}");
        assert!((second[0] + second[1]).abs() < 1e-4, "{second:?}");
        let dot: f32 = first.iter().zip(second).map(|(a, b)| a * b).sum();
        assert!(dot.abs() < 1e-4);
    }
}
