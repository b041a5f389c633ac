//! Phase 2: the experiment's data, loaded once and resolved to its kind (images, 2-D points,
//! text), with the facts a run directory records of it.

use crate::error::{PipelineError, Result};
use crate::experiment::Experiment;
use burn::tensor::{Device, Int};
use burn::Tensor;
use genlab_data::{
    BatchSource, DataKind, EvalImages, Holdout, ImageBatches, LabelledBatches, Split, Splits, TextSplits, ToyPoints,
};

/// Loaded data, by kind.
pub enum Data {
    Images(Splits),
    Points(ToyPoints),
    Text(TextSplits),
}

/// Training batches of images, with their labels for a conditional model (a conditional GAN, a
/// class-conditional diffusion model): `(images, labels)`.
pub enum ImageBatchSource {
    Plain(ImageBatches),
    Labelled(LabelledBatches),
}

impl ImageBatchSource {
    pub fn new(data: &Data, exp: &Experiment, labelled: bool) -> Result<Self> {
        Ok(if labelled {
            ImageBatchSource::Labelled(data.labelled_batches(exp)?)
        } else {
            ImageBatchSource::Plain(data.image_batches(exp)?)
        })
    }
}

impl BatchSource for ImageBatchSource {
    type Batch = (Tensor<4>, Option<Tensor<1, Int>>);

    fn next_batch(&mut self, device: &Device) -> Self::Batch {
        match self {
            ImageBatchSource::Plain(b) => (b.next_batch(device), None),
            ImageBatchSource::Labelled(b) => {
                let (x, y) = b.next_batch(device);
                (x, Some(y))
            }
        }
    }

    fn state(&self) -> serde_json::Value {
        match self {
            ImageBatchSource::Plain(b) => b.state(),
            ImageBatchSource::Labelled(b) => b.state(),
        }
    }

    fn restore(&mut self, state: serde_json::Value) -> std::result::Result<(), String> {
        match self {
            ImageBatchSource::Plain(b) => b.restore(state),
            ImageBatchSource::Labelled(b) => b.restore(state),
        }
    }

    fn sample_poisson(&mut self) -> Option<usize> {
        match self {
            ImageBatchSource::Plain(b) => b.sample_poisson(),
            ImageBatchSource::Labelled(b) => b.sample_poisson(),
        }
    }
}

/// What a run directory records of its data.
#[derive(Debug, Clone)]
pub struct DataFacts {
    pub shape: [usize; 3],
    pub class_names: Vec<String>,
    pub train_examples: usize,
    pub eval_examples: usize,
    /// How a text run's tokens are read and written.
    pub tokenizer: Option<genlab_data::Tokenizer>,
}

impl Data {
    /// Loads the experiment's dataset; checks that need the data (batch size, image shape).
    pub fn load(exp: &Experiment) -> Result<Data> {
        let d = &exp.data;
        let data = match d.dataset.kind() {
            DataKind::Images => {
                let holdout = match d.validation.fraction {
                    Some(f) => Holdout::Fraction(f),
                    None => Holdout::Split(d.validation.from.unwrap_or(Split::Test)),
                };
                Data::Images(Splits::load(&d.dataset, &d.transforms, holdout)?)
            }
            DataKind::Points => {
                let toy = d.dataset.toy().expect("a points dataset is a toy density");
                Data::Points(ToyPoints::load(toy, exp.eval.examples))
            }
            DataKind::Text => {
                let corpus = d.dataset.load_text()?;
                let Some(f) = d.validation.fraction else {
                    return Err(PipelineError::Config(format!(
                        "data.validation: {} is one text with no test split; hold out its tail with {{ fraction = 0.1 }}",
                        d.dataset.describe()
                    )));
                };
                Data::Text(corpus.split(f, d.tokenizer)?)
            }
            DataKind::Molecules => Data::Text(d.dataset.load_molecules(d.validation.fraction)?.into_text(d.tokenizer)?),
        };
        let facts = data.facts();
        let t = &exp.train;
        if t.drop_last && t.batch_size > facts.train_examples {
            return Err(PipelineError::Config(format!(
                "train.batch_size = {}: larger than the {} training examples (set a smaller batch or train.drop_last = false)",
                t.batch_size, facts.train_examples
            )));
        }
        if data.kind() == DataKind::Images {
            exp.check_data_shape(facts.shape)?;
        }
        Ok(data)
    }

    pub fn kind(&self) -> DataKind {
        match self {
            Data::Images(_) => DataKind::Images,
            Data::Points(_) => DataKind::Points,
            Data::Text(t) if t.molecules.is_some() => DataKind::Molecules,
            Data::Text(_) => DataKind::Text,
        }
    }

    pub fn facts(&self) -> DataFacts {
        match self {
            Data::Images(s) => DataFacts {
                shape: [s.train.channels, s.train.height, s.train.width],
                class_names: s.train.class_names.clone(),
                train_examples: s.train_rows.len(),
                eval_examples: s.eval_rows.len(),
                tokenizer: None,
            },
            Data::Points(p) => DataFacts {
                shape: [2, 1, 1],
                class_names: vec![],
                train_examples: p.train.len() / 2,
                eval_examples: p.test.len() / 2,
                tokenizer: None,
            },
            Data::Text(t) => DataFacts {
                shape: [1, 1, t.tokenizer.vocab_size()],
                class_names: vec![],
                train_examples: t.train.len(),
                eval_examples: t.eval.len(),
                tokenizer: Some(t.tokenizer.clone()),
            },
        }
    }

    /// The images, for a family that reads images (the registry checked the kind at parse).
    pub fn images(&self) -> Result<&Splits> {
        match self {
            Data::Images(s) => Ok(s),
            _ => Err(self.wrong_kind("images")),
        }
    }

    /// The experiment's shuffled training batches.
    pub fn image_batches(&self, exp: &Experiment) -> Result<ImageBatches> {
        let t = &exp.train;
        Ok(self.images()?.batches(&exp.data.transforms, t.batch_size, t.drop_last, t.seed))
    }

    /// The same batches with their labels.
    pub fn labelled_batches(&self, exp: &Experiment) -> Result<LabelledBatches> {
        let t = &exp.train;
        Ok(self.images()?.labelled_batches(&exp.data.transforms, t.batch_size, t.drop_last, t.seed)?)
    }

    /// The periodic validation's images: the first `eval.periodic_examples` evaluation rows.
    pub fn periodic_images(&self, exp: &Experiment) -> Result<EvalImages> {
        Ok(self.images()?.eval_images(Some(exp.eval.periodic_examples), &exp.data.transforms, exp.eval.seed))
    }

    /// The final evaluation's images: the first `eval.examples` evaluation rows, all when unset.
    pub fn evaluation_images(&self, exp: &Experiment) -> Result<EvalImages> {
        Ok(self.images()?.eval_images(exp.eval.examples, &exp.data.transforms, exp.eval.seed))
    }

    /// The periodic validation's points: the first `eval.periodic_examples` test points.
    pub fn periodic_points(&self, exp: &Experiment) -> Result<Vec<f32>> {
        let test = &self.points()?.test;
        Ok(test[..2 * exp.eval.periodic_examples.min(test.len() / 2)].to_vec())
    }

    pub fn points(&self) -> Result<&ToyPoints> {
        match self {
            Data::Points(p) => Ok(p),
            _ => Err(self.wrong_kind("2-D points")),
        }
    }

    pub fn text(&self) -> Result<&TextSplits> {
        match self {
            Data::Text(t) => Ok(t),
            _ => Err(self.wrong_kind("text")),
        }
    }

    fn wrong_kind(&self, wanted: &str) -> PipelineError {
        PipelineError::Config(format!("data.dataset: holds {}, this family reads {wanted}", self.kind().describe()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::{Embedding, EmbeddingConfig};
    use burn::tensor::Int;
    use burn::Tensor;
    use genlab_data::TokenBatches;
    use genlab_nn::distributions::categorical_log_prob;
    use genlab_train::{
        OptimizerConfig, Optimizers, StepContext, StepOutput, TrainOutcome, TrainStep, Trainer, TrainerConfig,
    };

    /// A character bigram model (a table of next-character logits): the smallest model that
    /// reads token batches, to carry a text corpus through the trainer.
    #[derive(Module, Debug)]
    struct Bigram {
        table: Embedding,
    }

    impl TrainStep for Bigram {
        type Batch = Tensor<2, Int>;
        fn train_step(self, batch: Tensor<2, Int>, ctx: &mut StepContext<'_>) -> (Self, StepOutput) {
            let [b, len] = batch.dims();
            let x = batch.clone().narrow(1, 0, len - 1);
            let y = batch.narrow(1, 1, len - 1).reshape([b * (len - 1)]);
            let logits = self.table.forward(x); // [batch, len - 1, vocab]
            let v = logits.dims()[2];
            let loss = -categorical_log_prob(logits.reshape([b * (len - 1), v]), y).mean();
            let shown = genlab_core::tensors::to_f32_vec(loss.clone().detach())[0] as f64;
            let model = ctx.optimizers.get(genlab_train::OptimizerKey::MODEL).backward_step(self, loss);
            (model, StepOutput { loss: shown, scalars: vec![] })
        }
    }

    /// Shakespeare reaches the trainer as token windows through the same path images take: the
    /// kind is resolved at load, the held-out tail is the last tenth, and a bigram model trained
    /// on the batches falls from the uniform code length (ln 84 = 4.43 nats) towards the
    /// corpus's bigram entropy.
    #[test]
    fn a_text_corpus_flows_to_the_trainer() {
        let text = "[problem]\nname = \"t\"\n[data]\ndataset = \"mnist\"\n[model]\nfamily = \"flow\"\n[train]\nsteps = 60\nbatch_size = 16\n";
        let mut exp = Experiment::parse(text, std::path::Path::new("t.toml"), &[]).unwrap();
        // No family of this issue models text; the data phase does not depend on the family.
        exp.data.dataset = genlab_data::DatasetSource::Named(genlab_data::DatasetName::Shakespeare);
        exp.data.validation = crate::experiment::Validation { from: None, fraction: Some(0.1) };
        let data = Data::load(&exp).unwrap();
        let t = data.text().unwrap();
        assert_eq!(t.tokenizer.vocab_size(), 85);
        assert!((t.eval.len() as f64 / (t.train.len() + t.eval.len()) as f64 - 0.1).abs() < 1e-6);
        let device = genlab_core::DeviceSpec::default().autodiff_device().unwrap();
        let mut batches = TokenBatches::new(t.train.clone(), 32, 16, true, 0).unwrap();
        let model = Bigram { table: EmbeddingConfig::new(85, 85).init(&device) };
        let dir = tempfile::tempdir().unwrap();
        let trainer = Trainer::new(
            TrainerConfig {
                steps: 60,
                log_every: 10,
                checkpoint_every: 60,
                keep_checkpoints: 1,
                eval_every: None,
                ema: None,
                schedule: Default::default(),
                seed: 0,
                label: "text".into(),
                max_seconds: None,
            },
            dir.path(),
        )
        .with_stop_flag(Default::default());
        let opt = Optimizers::single(OptimizerConfig { lr: 0.1, ..Default::default() }, None);
        let TrainOutcome::Finished { .. } =
            trainer.fit(model, opt, &mut batches, None, &device, |_, _| Ok(vec![])).unwrap()
        else {
            panic!("not interrupted")
        };
        let log = genlab_train::metrics::read_metrics(&dir.path().join("metrics.jsonl")).unwrap();
        let losses: Vec<f64> = log.iter().filter_map(|m| m.get("loss")?.as_f64()).collect();
        assert!(losses[0] > 3.9 && *losses.last().unwrap() < 3.3, "bigram loss {losses:?}");
    }
}
