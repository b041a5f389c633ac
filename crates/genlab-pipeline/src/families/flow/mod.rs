//! The flow family: RealNVP (Dinh et al. 2017, <https://arxiv.org/abs/1605.08803>) and Glow
//! (Kingma & Dhariwal 2018, <https://arxiv.org/abs/1807.03039>). On images: training on uniformly
//! dequantised 8-bit pixels, the exact test log-likelihood in bits per dimension, samples at a
//! temperature and across temperatures (`images.rs`). On 2-D toy points: the test NLL in nats
//! beside the exact density's, and the density figure (`points.rs`).

mod images;
mod points;

use crate::data::{Data, DataFacts};
use crate::error::Result;
use crate::evaluation::{EvalContext, Evaluation, LossCurve};
use crate::experiment::{Experiment, KeyError};
use crate::family::{model_error, Batches, Family, FamilyCard, PeriodicContext, Section, TemperatureOption};
use crate::generate::{Capabilities, GenerateRequest, Generated, OutputKind};
use genlab_data::EvalImages;
use crate::metric::Metric;
use burn::tensor::Device;
use genlab_core::events::EventSink;
use genlab_data::{DataKind, PointBatches, Transform};
use genlab_models::flow::{Dequantization, Flow, FlowArchitecture, FlowConfig};
use serde::{Deserialize, Serialize};

/// The samples' stream.
const SAMPLE_STREAM: u64 = 0x5a3f;
/// Examples of the data-dependent initialisation (Glow's ActNorm).
const INIT_EXAMPLES: usize = 512;

/// What `eval.json` holds for a flow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowMetrics {
    /// Mean negative log-likelihood, nats per example (images: of the dequantised pixels on
    /// [0, 256)^D).
    pub nll_nats: f64,
    /// The same in bits per dimension (images only).
    pub bits_per_dim: Option<f64>,
    /// Toy data: the exact density's mean NLL on the same points.
    pub reference_nll_nats: Option<f64>,
    pub examples: usize,
    pub seconds: f64,
}

pub struct FlowFamily {
    config: FlowConfig,
    temperature: f64,
    shape: [usize; 3],
    exp: Experiment,
}

/// What the periodic validation reads.
pub enum FlowValidation {
    Images(EvalImages),
    Points(Vec<f32>),
}

impl FlowFamily {
    fn describe_architecture(&self) -> &'static str {
        match self.config.architecture {
            FlowArchitecture::RealNvp => "RealNVP",
            FlowArchitecture::Glow => "Glow",
        }
    }

    fn on_points(&self) -> bool {
        self.config.dequantization == Dequantization::None
    }
}

impl Family for FlowFamily {
    type Network = FlowConfig;
    type Options = TemperatureOption;
    type Model = Flow;
    type Validation = FlowValidation;

    const CARD: FamilyCard = FamilyCard {
        name: "flow",
        summary: "normalizing flow with affine couplings (RealNVP, Glow): exact likelihood, temperature sampling",
        data: &[DataKind::Images, DataKind::Points],
    };

    fn check(s: &Section<FlowConfig, TemperatureOption>, exp: &Experiment) -> Result<(), KeyError> {
        s.network.check().map_err(model_error)?;
        s.options.check()?;
        match (s.network.dequantization, exp.data.dataset.kind()) {
            (Dequantization::None, DataKind::Images) => Err((
                "model.dequantization".into(),
                " = \"none\": is for continuous data (a 2-D toy dataset); 8-bit images need \"uniform\"".into(),
            )),
            (Dequantization::Uniform, DataKind::Points) => Err((
                "model.dequantization".into(),
                " = \"uniform\": dequantises 8-bit pixels; 2-D points are continuous, set \"none\"".into(),
            )),
            (Dequantization::Uniform, _) => {
                match exp
                    .data
                    .transforms
                    .iter()
                    .find(|t| matches!(t, Transform::ScaleUnit | Transform::ScaleSymmetric | Transform::Binarize))
                {
                    Some(t) => Err((
                        "data.transforms".into(),
                        format!(": {t:?}: a flow dequantises the 8-bit pixels itself, so only hflip and resize apply"),
                    )),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    fn metrics(_: &Section<FlowConfig, TemperatureOption>, kind: DataKind) -> Vec<Metric> {
        match kind {
            DataKind::Points => vec![Metric::NllNats],
            _ => vec![Metric::BitsPerDim, Metric::NllNats],
        }
    }

    fn output(_: &Section<FlowConfig, TemperatureOption>, kind: DataKind) -> OutputKind {
        if kind == DataKind::Points {
            OutputKind::Points
        } else {
            OutputKind::Images
        }
    }

    fn trains_privately() -> bool {
        true
    }

    fn new(s: Section<FlowConfig, TemperatureOption>, exp: &Experiment, facts: &DataFacts) -> Self {
        FlowFamily { config: s.network, temperature: s.options.temperature, shape: facts.shape, exp: exp.clone() }
    }

    fn init(&self, seed: u64, device: &Device) -> Result<Flow> {
        Ok(self.config.init(self.shape, seed, device)?)
    }

    /// Glow's ActNorm from the first training examples (a RealNVP flow is unchanged).
    fn initialize(&self, flow: Flow, data: &Data, device: &Device) -> Result<Flow> {
        if self.config.architecture != FlowArchitecture::Glow {
            return Ok(flow);
        }
        Ok(match data {
            Data::Points(p) => {
                let n = INIT_EXAMPLES.min(p.train.len() / 2);
                flow.initialize(genlab_data::batches::points_tensor(&p.train[..2 * n], device), None)
            }
            _ => images::initialize(flow, data.images()?, &self.exp, device),
        })
    }

    fn batches(&self, data: &Data, exp: &Experiment) -> Result<Batches<Flow>> {
        let t = &exp.train;
        Ok(match data {
            Data::Points(p) => Box::new(PointBatches::new(p.train.clone(), t.batch_size, t.drop_last, t.seed)),
            _ => Box::new(data.image_batches(exp)?),
        })
    }

    fn validation_set(&self, data: &Data, exp: &Experiment, _: &dyn EventSink) -> Result<FlowValidation> {
        Ok(match data {
            Data::Points(_) => FlowValidation::Points(data.periodic_points(exp)?),
            _ => FlowValidation::Images(data.periodic_images(exp)?),
        })
    }

    fn validate(
        &self,
        step: u64,
        m: &Flow,
        set: &FlowValidation,
        cx: &PeriodicContext<'_>,
    ) -> Result<Vec<(&'static str, f64)>> {
        let e = &self.exp.eval;
        match set {
            FlowValidation::Points(pts) => {
                Ok(vec![("val_nll", points::nll(m, pts, e.batch_size.max(1000), cx.device))])
            }
            FlowValidation::Images(set) => {
                let v = images::evaluate(m, set, e.batch_size, e.seed, cx.device, None);
                let path = cx.run_dir.join(format!("samples/step-{step:06}.png"));
                images::sample_grid(m, e.samples, e.seed, self.temperature, cx.device, &path)?;
                Ok(vec![("val_bpd", v.bits_per_dim.expect("images have bits/dim"))])
            }
        }
    }

    fn evaluate(&self, flow: &Flow, data: &Data, cx: &EvalContext<'_>) -> Result<Evaluation> {
        match data {
            Data::Points(p) => points::evaluate(flow, p, self.temperature, cx),
            _ => images::evaluate_and_figures(flow, data.images()?, self.temperature, cx),
        }
    }

    fn describe(&self) -> String {
        let f = &self.config;
        format!(
            "{} flow, {} scale(s), {} steps per stage, {} hidden filters",
            self.describe_architecture(),
            f.scales,
            f.steps,
            f.hidden
        )
    }

    fn loss_curve(&self) -> LossCurve {
        let (unit, key) = if self.on_points() { ("nats", "val_nll") } else { ("bits/dim", "val_bpd") };
        LossCurve::train_and_validation(format!("Loss: negative log-likelihood ({unit})"), unit, key, 1.0)
    }

    fn capabilities(&self) -> Capabilities {
        let output = if self.on_points() { OutputKind::Points } else { OutputKind::Images };
        Capabilities { temperature: true, ..Capabilities::plain(output) }
    }

    fn generate(
        &self,
        flow: &Flow,
        r: &GenerateRequest,
        device: &Device,
        progress: Option<&dyn EventSink>,
    ) -> Result<Generated> {
        let t = r.temperature.unwrap_or(self.temperature);
        if self.on_points() {
            return Ok(Generated::Points(points::sample(flow, r.count, r.seed, t, device)));
        }
        Ok(Generated::Images(images::sample(flow, r.count, r.seed, t, device, progress)))
    }
}
