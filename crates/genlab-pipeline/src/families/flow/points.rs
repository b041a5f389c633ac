//! A flow on a 2-D toy density: the test NLL in nats per point beside the exact density's on the
//! same points, and a figure of the exact density, the flow's density, test points and samples.

use super::{FlowMetrics, SAMPLE_STREAM};
use crate::report::likelihood_table;
use genlab_plot::density_figure;
use genlab_data::ToyPoints;
use crate::error::Result;
use crate::evaluation::{EvalContext, Evaluation};
use crate::metric::Metric;
use burn::tensor::Device;
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;
use genlab_data::batches::points_tensor;
use genlab_models::flow::Flow;
use std::fmt::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Mean NLL (nats per point) of `flow` on `points`, `batch` at a time.
pub(super) fn nll(flow: &Flow, points: &[f32], batch: usize, device: &Device) -> f64 {
    let n = points.len() / 2;
    let mut total = 0.0f64;
    for s in (0..n).step_by(batch) {
        let e = (s + batch).min(n);
        total -= to_f32_vec(flow.log_prob(points_tensor(&points[2 * s..2 * e], device), None).sum())[0] as f64;
    }
    total / n.max(1) as f64
}

/// `n` samples at `temperature`, `[x0, y0, ...]`.
pub(super) fn sample(flow: &Flow, n: usize, seed: u64, temperature: f64, device: &Device) -> Vec<f32> {
    to_f32_vec(flow.sample(n, temperature, &mut SeededRng::stream(seed, SAMPLE_STREAM), device))
}

/// The evaluation protocol on 2-D points.
pub(super) fn evaluate(flow: &Flow, p: &ToyPoints, temperature: f64, cx: &EvalContext<'_>) -> Result<Evaluation> {
    let exp = cx.exp;
    let e = &exp.eval;
    let started = Instant::now();
    let (toy, test) = (p.toy, &p.test);
    let n = test.len() / 2;
    let nll = nll(flow, test, e.batch_size.max(1000), &cx.device);
    let reference = p.reference_nll();
    cx.events.message(&format!(
        "test: NLL {nll:.4} nats per point; exact density {reference:.4}; excess {:.4}",
        nll - reference
    ));
    let likelihood = FlowMetrics {
        nll_nats: nll,
        bits_per_dim: None,
        reference_nll_nats: Some(reference),
        examples: n,
        seconds: started.elapsed().as_secs_f64(),
    };

    let samples = sample(flow, 5000, e.seed, temperature, &cx.device);
    let fig = PathBuf::from("plots/density.png");
    let title = format!("{}: exact density, model density, test points, model samples (T = {temperature})", toy.name());
    density_figure(p, &cx.run_dir.join(&fig), &title, &samples, |chunk| {
        to_f32_vec(flow.log_prob(points_tensor(chunk, &cx.device), None))
    })?;
    let figures = vec![("The exact density, the flow's density, test points and the flow's samples".to_string(), fig)];

    let mut s = likelihood_table(p, "flow", nll);
    let _ = writeln!(
        s,
        "Protocol: {} weights of step {}; the flow's exact log-density (change of variables) at the first {n} points \
         of {}'s fixed test draw (independent of the {} training points), beside the generating density's own \
         log-density at the same points (its mean estimates the distribution's entropy, the lowest NLL any \
         model can expect).\n",
        exp.weights_word(),
        cx.step,
        toy.name(),
        cx.info.train_examples
    );
    Ok(Evaluation {
        metrics: vec![(Metric::NllNats, nll)],
        log: vec![("reference_nll_nats", reference.into()), ("examples", n.into())],
        section: s,
        summary: format!("NLL {nll:.4} nats per point (exact density {reference:.4}, excess {:.4})", nll - reference),
        record: serde_json::json!({ "likelihood": likelihood, "temperature": temperature }),
        figures,
        drawn: None,
    })
}
