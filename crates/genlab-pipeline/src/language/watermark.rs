//! The evaluation of `[post] text_watermark` on a language model: `WATERMARK_SAMPLES` texts of
//! `WATERMARK_TOKENS` tokens drawn with the watermark and the same seeds without it (temperature
//! 1), and as many windows of held-out text; each scored by the detector. Reported: the detection
//! rate at the threshold that lets 1% of the unmarked samples through (an empirical 1%
//! false-positive rate) and at z = 4; the false positives on held-out text; and what the mark
//! costs: the perplexity the model itself (without the mark) gives the marked and the unmarked
//! samples (Kirchenbauer et al. 2023 measure the cost the same way, with a larger oracle model).

use super::{Generation, Sampling};
use genlab_models::lm::watermark::GreenList;
use std::fmt::Write;

/// Samples of each kind.
pub const WATERMARK_SAMPLES: usize = 200;
/// Tokens per sample (the acceptance's 200-token samples).
pub const WATERMARK_TOKENS: usize = 200;

/// What the evaluation measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WatermarkEvaluation {
    pub samples: usize,
    pub tokens: usize,
    pub gamma: f64,
    pub delta: f32,
    /// z below which 99% of the unmarked samples fall.
    pub threshold_at_1pct: f64,
    pub detection_at_1pct: f64,
    pub detection_at_z4: f64,
    pub false_positives_at_z4_samples: f64,
    pub false_positives_at_z4_held_out: f64,
    pub false_positives_at_1pct_held_out: f64,
    pub perplexity_marked: f64,
    pub perplexity_unmarked: f64,
    pub mean_z_marked: f64,
    pub mean_z_unmarked: f64,
    pub mean_z_held_out: f64,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn above(v: &[f64], t: f64) -> f64 {
    v.iter().filter(|&&z| z > t).count() as f64 / v.len().max(1) as f64
}

/// Draws and scores the samples: `draw(generation)` gives a text's tokens (after the prompt),
/// `nats(tokens)` the model's mean negative log-likelihood per token of prompt + tokens.
pub(crate) fn evaluate(
    mark: GreenList,
    seed: u64,
    held_out: &[u32],
    mut draw: impl FnMut(&Generation) -> Vec<u32>,
    mut nats: impl FnMut(&[u32]) -> f64,
    mut progress: impl FnMut(usize),
) -> WatermarkEvaluation {
    let (mut z_marked, mut z_unmarked) = (Vec::new(), Vec::new());
    let (mut nll_marked, mut nll_unmarked) = (Vec::new(), Vec::new());
    for i in 0..WATERMARK_SAMPLES {
        for (watermark, zs, nll) in
            [(Some(mark), &mut z_marked, &mut nll_marked), (None, &mut z_unmarked, &mut nll_unmarked)]
        {
            let g = Generation {
                max_tokens: WATERMARK_TOKENS,
                sampling: Sampling { watermark, ..Default::default() },
                stop: vec![],
                end: None,
                seed: seed.wrapping_add(i as u64),
            };
            let tokens = draw(&g);
            zs.push(mark.detect(&tokens).z);
            nll.push(nats(&tokens));
        }
        progress(i + 1);
    }
    let windows = held_out.len() / WATERMARK_TOKENS;
    let step = (windows / WATERMARK_SAMPLES).max(1);
    let z_held: Vec<f64> = (0..windows)
        .step_by(step)
        .take(WATERMARK_SAMPLES)
        .map(|w| mark.detect(&held_out[w * WATERMARK_TOKENS..(w + 1) * WATERMARK_TOKENS]).z)
        .collect();
    let mut sorted = z_unmarked.clone();
    sorted.sort_by(f64::total_cmp);
    let at = ((0.99 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    let threshold = sorted[at];
    WatermarkEvaluation {
        samples: WATERMARK_SAMPLES,
        tokens: WATERMARK_TOKENS,
        gamma: mark.gamma,
        delta: mark.delta,
        threshold_at_1pct: threshold,
        detection_at_1pct: above(&z_marked, threshold),
        detection_at_z4: above(&z_marked, 4.0),
        false_positives_at_z4_samples: above(&z_unmarked, 4.0),
        false_positives_at_z4_held_out: above(&z_held, 4.0),
        false_positives_at_1pct_held_out: above(&z_held, threshold),
        perplexity_marked: mean(&nll_marked).exp(),
        perplexity_unmarked: mean(&nll_unmarked).exp(),
        mean_z_marked: mean(&z_marked),
        mean_z_unmarked: mean(&z_unmarked),
        mean_z_held_out: mean(&z_held),
    }
}

/// The report's section.
pub(crate) fn section(w: &WatermarkEvaluation) -> String {
    let mut md = String::from("## Text watermark\n\n");
    let _ = writeln!(
        md,
        "The green-list watermark of `[post] text_watermark` (Kirchenbauer et al. 2023; gamma {}, delta {}): {} samples of {} tokens drawn with it and, with the same seeds, without it (temperature 1), and {} windows of held-out text, each scored by `genlab watermark detect`'s z-score.\n",
        w.gamma, w.delta, w.samples, w.tokens, w.samples
    );
    let _ = writeln!(md, "| | value |\n|---|---|");
    let _ = writeln!(
        md,
        "| detection rate at a 1% false-positive rate (z > {:.2}, the unmarked samples' 99th percentile) | **{:.3}** |",
        w.threshold_at_1pct, w.detection_at_1pct
    );
    let _ = writeln!(md, "| held-out text above that threshold | {:.3} |", w.false_positives_at_1pct_held_out);
    let _ = writeln!(md, "| detection rate at z > 4 (the paper's threshold) | {:.3} |", w.detection_at_z4);
    let _ = writeln!(
        md,
        "| unmarked samples / held-out text above z = 4 | {:.3} / {:.3} |",
        w.false_positives_at_z4_samples, w.false_positives_at_z4_held_out
    );
    let _ = writeln!(
        md,
        "| mean z: marked / unmarked / held-out | {:.2} / {:.2} / {:.2} |",
        w.mean_z_marked, w.mean_z_unmarked, w.mean_z_held_out
    );
    let _ = writeln!(
        md,
        "| perplexity the model gives its samples: marked / unmarked (the mark's cost) | {:.3} / {:.3} (+{:.1}%) |\n",
        w.perplexity_marked,
        w.perplexity_unmarked,
        100.0 * (w.perplexity_marked / w.perplexity_unmarked - 1.0)
    );
    md
}
