//! The Gaussian-mixture family: a mixture of K diagonal Gaussians
//! (`genlab_models::gaussian_mixture`) on the 2-D toy densities, trained by gradient descent on
//! its exact NLL and judged like a flow on the same data: the test NLL in nats per point beside
//! the exact density's, with the density figure and the fitted components. The baseline a flow
//! should beat, and the family written to prove the seam (its folder and one registry line).

use crate::data::{Data, DataFacts};
use crate::report::likelihood_table;
use genlab_plot::density_figure;
use genlab_data::ToyPoints;
use crate::error::Result;
use crate::evaluation::{EvalContext, Evaluation, LossCurve};
use crate::experiment::{Experiment, KeyError};
use crate::family::{model_error, Batches, Family, FamilyCard, PeriodicContext, Section, TemperatureOption};
use crate::generate::{Capabilities, GenerateRequest, Generated, OutputKind};
use crate::metric::Metric;
use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_core::events::EventSink;
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;
use genlab_data::{DataKind, PointBatches};
use genlab_models::gaussian_mixture::{GaussianMixture, GaussianMixtureConfig};
use std::fmt::Write;
use std::path::PathBuf;

/// The samples' stream.
const SAMPLE_STREAM: u64 = 0x5a41;

pub struct MixtureFamily {
    config: GaussianMixtureConfig,
    temperature: f64,
    exp: Experiment,
}

/// Mean NLL (nats per point) of `m` on `points` `[x0, y0, ...]`.
fn nll(m: &GaussianMixture, points: &[f32], device: &Device) -> f64 {
    let n = points.len() / 2;
    let mut total = 0.0f64;
    for s in (0..n).step_by(4096) {
        let e = (s + 4096).min(n);
        let x = Tensor::<2>::from_data(TensorData::new(points[2 * s..2 * e].to_vec(), [e - s, 2]), device);
        total -= to_f32_vec(m.log_prob(x)).iter().map(|&v| v as f64).sum::<f64>();
    }
    total / n.max(1) as f64
}

impl Family for MixtureFamily {
    type Network = GaussianMixtureConfig;
    type Options = TemperatureOption;
    type Model = GaussianMixture;
    type Validation = Vec<f32>;

    const CARD: FamilyCard = FamilyCard {
        name: "gaussian_mixture",
        summary: "mixture of diagonal Gaussians on the plane, fitted by gradient descent on its exact NLL",
        data: &[DataKind::Points],
    };

    fn check(s: &Section<GaussianMixtureConfig, TemperatureOption>, _: &Experiment) -> Result<(), KeyError> {
        s.network.check().map_err(model_error)?;
        s.options.check()?;
        Ok(())
    }

    fn metrics(_: &Section<GaussianMixtureConfig, TemperatureOption>, _: DataKind) -> Vec<Metric> {
        vec![Metric::NllNats]
    }

    fn output(_: &Section<GaussianMixtureConfig, TemperatureOption>, _: DataKind) -> OutputKind {
        OutputKind::Points
    }

    fn trains_privately() -> bool {
        true
    }

    fn new(s: Section<GaussianMixtureConfig, TemperatureOption>, exp: &Experiment, _: &DataFacts) -> Self {
        MixtureFamily { config: s.network, temperature: s.options.temperature, exp: exp.clone() }
    }

    fn init(&self, seed: u64, device: &Device) -> Result<GaussianMixture> {
        Ok(self.config.init(seed, device)?)
    }

    fn batches(&self, data: &Data, exp: &Experiment) -> Result<Batches<GaussianMixture>> {
        let t = &exp.train;
        Ok(Box::new(PointBatches::new(data.points()?.train.clone(), t.batch_size, t.drop_last, t.seed)))
    }

    fn validation_set(&self, data: &Data, exp: &Experiment, _: &dyn EventSink) -> Result<Vec<f32>> {
        data.periodic_points(exp)
    }

    fn validate(&self, _: u64, m: &GaussianMixture, set: &Vec<f32>, cx: &PeriodicContext<'_>) -> Result<Vec<(&'static str, f64)>> {
        Ok(vec![("val_nll", nll(m, set, cx.device))])
    }

    fn evaluate(&self, m: &GaussianMixture, data: &Data, cx: &EvalContext<'_>) -> Result<Evaluation> {
        let p: &ToyPoints = data.points()?;
        let n = p.test.len() / 2;
        let nll = nll(m, &p.test, &cx.device);
        let reference = p.reference_nll();
        cx.events.message(&format!("test: NLL {nll:.4} nats per point; exact density {reference:.4}; excess {:.4}", nll - reference));
        let samples = m.sample(5000, self.temperature, &mut SeededRng::stream(self.exp.eval.seed, SAMPLE_STREAM));
        let fig = PathBuf::from("plots/density.png");
        let title = format!("{}: exact density, mixture density, test points, mixture samples", p.toy.name());
        density_figure(p, &cx.run_dir.join(&fig), &title, &samples, |chunk| {
            to_f32_vec(m.log_prob(Tensor::from_data(TensorData::new(chunk.to_vec(), [chunk.len() / 2, 2]), &cx.device)))
        })?;
        let (w, mu, sd) = m.parameters();
        let mut s = likelihood_table(p, "mixture", nll);
        let _ = writeln!(
            s,
            "Protocol: {} weights of step {}; the mixture's exact log-density at the first {n} points of {}'s fixed \
             test draw, beside the generating density's own log-density at the same points.\n",
            self.exp.weights_word(),
            cx.step,
            p.toy.name()
        );
        let _ = writeln!(s, "Components, heaviest first:\n\n| weight | mean | standard deviations |\n|---|---|---|");
        let mut order: Vec<usize> = (0..w.len()).collect();
        order.sort_by(|&a, &b| w[b].total_cmp(&w[a]));
        for k in order {
            let _ = writeln!(
                s,
                "| {:.4} | ({:.3}, {:.3}) | ({:.3}, {:.3}) |",
                w[k],
                mu[2 * k],
                mu[2 * k + 1],
                sd[2 * k],
                sd[2 * k + 1]
            );
        }
        s.push('\n');
        Ok(Evaluation {
            metrics: vec![(Metric::NllNats, nll)],
            log: vec![("reference_nll_nats", reference.into()), ("examples", n.into())],
            record: serde_json::json!({
                "likelihood": { "nll_nats": nll, "reference_nll_nats": reference, "examples": n },
                "components": { "weights": w, "means": mu, "std": sd },
            }),
            section: s,
            figures: vec![("The exact density, the mixture's density, test points and the mixture's samples".into(), fig)],
            summary: format!("NLL {nll:.4} nats per point (exact density {reference:.4}, excess {:.4})", nll - reference),
            drawn: None,
        })
    }

    fn describe(&self) -> String {
        format!("mixture of {} diagonal Gaussians", self.config.components)
    }

    fn loss_curve(&self) -> LossCurve {
        LossCurve::train_and_validation("Loss: negative log-likelihood (nats per point)".into(), "nats", "val_nll", 1.0)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { temperature: true, ..Capabilities::plain(OutputKind::Points) }
    }

    fn generate(&self, m: &GaussianMixture, r: &GenerateRequest, _: &Device, _: Option<&dyn EventSink>) -> Result<Generated> {
        let t = r.temperature.unwrap_or(self.temperature);
        Ok(Generated::Points(m.sample(r.count, t, &mut SeededRng::stream(r.seed, SAMPLE_STREAM))))
    }
}

#[cfg(test)]
mod tests;
