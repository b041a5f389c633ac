//! The VAE family (Kingma & Welling 2014, <https://arxiv.org/abs/1312.6114>): trained on the
//! negative ELBO with a validation ELBO and a sample grid at each evaluation step; evaluated by
//! the test ELBO and the IWAE estimate of the negative log-likelihood (Burda et al. 2016), in
//! nats per example, with prior samples, reconstructions, latent interpolations and the 2-D latent
//! scatter as figures.

mod figures;

use crate::data::{Data, DataFacts};
use crate::error::Result;
use crate::evaluation::{EvalContext, Evaluation, LossCurve};
use crate::experiment::{Experiment, KeyError};
use crate::family::{model_error, Batches, Family, FamilyCard, FamilyOptions, PeriodicContext, Section};
use crate::generate::{Capabilities, GenerateRequest, Generated, Images, OutputKind};
use crate::generate::{draw_pixels, host_images};
use genlab_data::EvalImages;
use crate::metric::Metric;
use burn::tensor::Device;
use burn::tensor::TensorData;
use burn::Tensor;
use genlab_core::events::EventSink;
use genlab_core::memory::Bytes;
use genlab_core::progress::Progress;
use genlab_core::tensors::to_f32_vec;
use genlab_core::SeededRng;
use genlab_data::{DataKind, Transform};
use genlab_models::vae::{normal, Architecture, Likelihood, Vae, VaeConfig};
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// The evaluation noise's stream, apart from training's streams.
const IWAE_STREAM: u64 = 0x1a3e;
/// The prior samples' stream.
const SAMPLE_STREAM: u64 = 0x5a3e;
/// Evaluation images whose latent codes give the principal directions.
const DIRECTION_EXAMPLES: usize = 1000;

/// The VAE's own keys in `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaeOptions {
    /// Importance samples of the IWAE likelihood estimate.
    #[serde(default = "default_iwae_k")]
    pub iwae_k: usize,
}

fn default_iwae_k() -> usize {
    100
}

impl FamilyOptions for VaeOptions {
    const KEYS: &'static [&'static str] = &["iwae_k"];
}

pub struct VaeFamily {
    config: VaeConfig,
    iwae_k: usize,
    shape: [usize; 3],
    symmetric: bool,
    eval: crate::experiment::EvalConfig,
    /// The data's transforms, for the evaluation images the latent directions read.
    transforms: Vec<Transform>,
}

/// Test-set likelihood numbers, with the protocol that produced them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VaeMetrics {
    /// Mean ELBO (one reparameterised sample, analytic KL), nats per example.
    pub elbo_nats: f64,
    /// Mean negative IWAE bound with `iwae_k` samples: the NLL estimate, nats per example.
    pub nll_nats: f64,
    pub iwae_k: usize,
    pub examples: usize,
    pub seconds: f64,
}

/// Evaluates `vae` on every example of `set`, `batch` examples at a time; `k = 0` skips the IWAE
/// bound.
pub fn evaluate(
    vae: &Vae,
    set: &EvalImages,
    k: usize,
    batch: usize,
    seed: u64,
    device: &Device,
    mut progress: Progress,
) -> VaeMetrics {
    let started = std::time::Instant::now();
    let mut rng = SeededRng::stream(seed, IWAE_STREAM);
    let (mut elbo, mut iwae) = (0.0f64, 0.0f64);
    let chunks = set.n.div_ceil(batch);
    for c in 0..chunks {
        let (s, e) = (c * batch, ((c + 1) * batch).min(set.n));
        let x = set.tensor(s, e, device);
        let t = vae.elbo_terms(x.clone(), normal(&mut rng, [e - s, vae.latent_dim], device));
        elbo += to_f32_vec((t.log_likelihood - t.kl).sum()).iter().map(|&v| v as f64).sum::<f64>();
        if k > 0 {
            let bound = vae.iwae_bound(x, normal(&mut rng, [k, e - s, vae.latent_dim], device));
            iwae += to_f32_vec(bound.sum())[0] as f64;
        }
        let shown = if k > 0 { format!("nll {:.2}", -iwae / e as f64) } else { format!("elbo {:.2}", elbo / e as f64) };
        progress.update(c as u64 + 1, &shown);
    }
    progress.finish();
    let n = set.n.max(1) as f64;
    VaeMetrics {
        elbo_nats: elbo / n,
        nll_nats: -iwae / n,
        iwae_k: k,
        examples: set.n,
        seconds: started.elapsed().as_secs_f64(),
    }
}

impl Family for VaeFamily {
    type Network = VaeConfig;
    type Options = VaeOptions;
    type Model = Vae;
    type Validation = EvalImages;

    const CARD: FamilyCard = FamilyCard {
        name: "vae",
        summary: "variational autoencoder (conv or MLP encoder/decoder, Bernoulli or Gaussian likelihood, beta-VAE)",
        data: &[DataKind::Images],
    };

    fn check(s: &Section<VaeConfig, VaeOptions>, exp: &Experiment) -> Result<(), KeyError> {
        s.network.check().map_err(model_error)?;
        if s.options.iwae_k == 0 {
            return Err(("model.iwae_k".into(), " = 0: expected at least 1".into()));
        }
        if s.network.likelihood == Likelihood::Bernoulli && !exp.data.transforms.contains(&Transform::ScaleUnit) {
            return Err((
                "model.likelihood".into(),
                " = \"bernoulli\": needs pixels in [0, 1]; add \"scale_unit\" to data.transforms".into(),
            ));
        }
        Ok(())
    }

    /// The IWAE bound decodes `iwae_k` samples of each example of an evaluation batch at once
    /// (with the decoder's activations, about 16 floats per pixel): refused before training when
    /// that cannot fit.
    fn check_data(&self, _: &Data) -> Result<()> {
        let per_sample = self.latent() as u128 + 16 * self.shape.iter().product::<usize>() as u128;
        let needs = Bytes::f32s(self.iwae_k as u128 * self.eval.batch_size as u128 * per_sample);
        Ok(genlab_core::memory::check(
            || format!("model.iwae_k = {} (with eval.batch_size = {})", self.iwae_k, self.eval.batch_size),
            needs,
        )?)
    }

    fn metrics(_: &Section<VaeConfig, VaeOptions>, _: DataKind) -> Vec<Metric> {
        vec![Metric::NllNats, Metric::NegElboNats]
    }

    fn output(_: &Section<VaeConfig, VaeOptions>, _: DataKind) -> OutputKind {
        OutputKind::Images
    }

    fn trains_privately() -> bool {
        true
    }

    fn new(s: Section<VaeConfig, VaeOptions>, exp: &Experiment, facts: &DataFacts) -> Self {
        VaeFamily {
            config: s.network,
            iwae_k: s.options.iwae_k,
            shape: facts.shape,
            symmetric: exp.symmetric(),
            eval: exp.eval.clone(),
            transforms: exp.data.transforms.clone(),
        }
    }

    fn init(&self, seed: u64, device: &Device) -> Result<Vae> {
        Ok(self.config.init(self.shape, seed, device)?)
    }

    fn batches(&self, data: &Data, exp: &Experiment) -> Result<Batches<Vae>> {
        Ok(Box::new(data.image_batches(exp)?))
    }

    fn validation_set(&self, data: &Data, exp: &Experiment, _: &dyn EventSink) -> Result<EvalImages> {
        data.periodic_images(exp)
    }

    fn validate(
        &self,
        step: u64,
        m: &Vae,
        set: &EvalImages,
        cx: &PeriodicContext<'_>,
    ) -> Result<Vec<(&'static str, f64)>> {
        let e = &self.eval;
        let v = evaluate(m, set, 0, e.batch_size, e.seed, cx.device, Progress::hidden());
        figures::sample_grid(
            m,
            e.samples,
            e.seed,
            self.symmetric,
            cx.device,
            &cx.run_dir.join(format!("samples/step-{step:06}.png")),
        )?;
        Ok(vec![("val_elbo", v.elbo_nats)])
    }

    fn evaluate(&self, vae: &Vae, data: &Data, cx: &EvalContext<'_>) -> Result<Evaluation> {
        let e = &self.eval;
        let set = data.evaluation_images(cx.exp)?;
        let bar = cx.events.progress("evaluate", set.n.div_ceil(e.batch_size) as u64, 0);
        let l = evaluate(vae, &set, self.iwae_k, e.batch_size, e.seed, &cx.device, bar);
        cx.events.message(&format!(
            "test: ELBO {:.2} nats, NLL (IWAE k={}) {:.2} nats, {} examples, {:.0}s",
            l.elbo_nats, l.iwae_k, l.nll_nats, l.examples, l.seconds
        ));
        let figures = figures::figures(
            vae,
            &set,
            &cx.info.class_names,
            e.samples,
            e.seed,
            self.symmetric,
            &cx.device,
            cx.run_dir,
        )?;
        let summary = format!(
            "NLL (IWAE, k={}) {:.2} nats; ELBO {:.2} nats; {} evaluation examples",
            l.iwae_k, l.nll_nats, l.elbo_nats, l.examples
        );
        Ok(Evaluation {
            metrics: vec![(Metric::NllNats, l.nll_nats), (Metric::NegElboNats, -l.elbo_nats)],
            log: vec![("elbo_nats", l.elbo_nats.into()), ("iwae_k", l.iwae_k.into()), ("examples", l.examples.into())],
            section: self.markdown(cx, &l),
            record: serde_json::json!({ "likelihood": l }),
            figures,
            summary,
            drawn: None,
        })
    }

    fn describe(&self) -> String {
        let v = &self.config;
        format!(
            "VAE, {:?} {}, latent {}, {:?} likelihood, beta {}",
            v.architecture,
            match v.architecture {
                Architecture::Conv => format!("channels {:?}", v.channels),
                Architecture::Mlp => format!("hidden {:?}", v.hidden),
                Architecture::Spatial => format!(
                    "channels {:?}, {} residual blocks of {}, a latent grid of {} channels",
                    v.channels, v.residual_blocks, v.residual_channels, v.latent_dim
                ),
            },
            self.latent(),
            v.likelihood,
            v.beta
        )
    }

    fn loss_curve(&self) -> LossCurve {
        let title = if self.config.beta == 1.0 {
            "Loss: negative ELBO per example".to_string()
        } else {
            format!(
                "Loss: -log p(x|z) + {} KL per example (the validation curve is the negative ELBO)",
                self.config.beta
            )
        };
        LossCurve::train_and_validation(title, "nats", "val_elbo", -1.0)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { latent: Some(self.latent()), directions: true, ..Capabilities::plain(OutputKind::Images) }
    }

    fn latent_directions(&self, vae: &Vae, data: &Data, k: usize, device: &Device) -> Result<Option<Vec<crate::serving::Direction>>> {
        // The posterior means of the first 1,000 evaluation images, as the space the decoder sees.
        let set = data.images()?.eval_images(Some(DIRECTION_EXAMPLES), &self.transforms, self.eval.seed);
        let (mu, _) = vae.encoder.forward(set.tensor(0, set.n, device)); // [n, latent]
        let codes = to_f32_vec(mu);
        Ok(Some(crate::serving::principal_directions(&codes, self.latent(), k)))
    }

    fn latents(&self, seed: u64, count: usize) -> Option<Vec<f32>> {
        Some(SeededRng::stream(seed, SAMPLE_STREAM).normal_vec(count * self.latent()))
    }

    fn generate(
        &self,
        vae: &Vae,
        r: &GenerateRequest,
        device: &Device,
        progress: Option<&dyn EventSink>,
    ) -> Result<Generated> {
        let d = self.latent();
        let z = r.latents.clone().or_else(|| self.latents(r.seed, r.count)).unwrap_or_default();
        let pixels = draw_pixels(r.count, progress, |start, k| {
            let z = Tensor::from_data(TensorData::new(z[start * d..(start + k) * d].to_vec(), [k, d]), device);
            host_images(vae.decode_mean(z), self.symmetric)
        });
        Ok(Generated::Images(Images {
            pixels,
            n: r.count,
            shape: self.shape,
            description: "prior samples decoded to mean images, quantised to 8 bits".into(),
            seed: r.seed,
        }))
    }
}

impl VaeFamily {
    /// The latent vector's size (a spatial grid's channels times its cells).
    fn latent(&self) -> usize {
        match self.config.architecture {
            Architecture::Spatial => {
                let down = 1usize << self.config.channels.len();
                self.config.latent_dim * (self.shape[1] / down) * (self.shape[2] / down)
            }
            _ => self.config.latent_dim,
        }
    }

    fn markdown(&self, cx: &EvalContext<'_>, m: &VaeMetrics) -> String {
        let exp = cx.exp;
        let split = crate::report::split_name(exp);
        let mut s = String::new();
        let _ = writeln!(s, "## Likelihood, on {split}\n\n| metric | value |\n|---|---|");
        let _ =
            writeln!(s, "| NLL, minus the IWAE bound with k = {} (nats per example) | {:.2} |", m.iwae_k, m.nll_nats);
        let _ = writeln!(s, "| ELBO (nats per example) | {:.2} |", m.elbo_nats);
        let dims = cx.info.data_shape.iter().product::<usize>();
        let _ = writeln!(
            s,
            "| NLL in bits per dimension | {:.4} |",
            genlab_eval::likelihood::bits_per_dim(m.nll_nats, dims)
        );
        let _ = writeln!(s, "| evaluation examples | {} |\n", m.examples);
        let _ = writeln!(
            s,
            "Protocol: {} weights of step {}; the evaluation split ({split}) transformed once with evaluation seed {} \
             (so a binarised evaluation set is the same for every run); ELBO with one reparameterised sample and the analytic KL; \
             NLL as minus the importance-weighted bound of Burda et al. (2016) with k = {} posterior samples per example. \
             Both are in nats per example (divide by {dims} for nats per pixel).\n",
            exp.weights_word(),
            cx.step,
            self.eval.seed,
            m.iwae_k,
        );
        s
    }
}
