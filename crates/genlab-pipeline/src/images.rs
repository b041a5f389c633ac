//! Image data for the trainer and for evaluation: the training batch source (loader, per-batch
//! transforms, both resumable) and evaluation sets transformed once with a fixed seed.

use crate::error::{PipelineError, Result};
use crate::experiment::{DataConfig, Validation};
use burn::tensor::{Device, Int, TensorData};
use burn::Tensor;
use genlab_core::grid::ImageBatch;
use genlab_core::progress::Progress;
use genlab_core::SeededRng;
use genlab_data::{BatchLoader, ImageSet, LabelledBatch, LoaderState, Split, Transform};
use genlab_train::BatchSource;
use serde_json::{json, Value};
use std::sync::Arc;

/// The rows of the training set used for training and for validation.
pub struct Splits {
    pub train: Arc<ImageSet>,
    pub train_rows: Vec<usize>,
    /// The set validation reads from (the test split, or the training set itself) and its rows.
    pub eval: Arc<ImageSet>,
    pub eval_rows: Vec<usize>,
}

/// Seed of the held-out fraction's shuffle: fixed, so every run of an experiment holds out the same
/// examples whatever its training seed.
const HOLDOUT_SEED: u64 = 0x601d;

pub fn load_splits(data: &DataConfig) -> Result<Splits> {
    let train = Arc::new(data.dataset.load_images(Split::Train, &data.transforms)?);
    let splits = match data.validation {
        Validation { fraction: Some(_), .. } if train.n < 2 => {
            return Err(PipelineError::Config(format!(
                "data.validation.fraction: {} has {} example(s); holding some out needs at least 2",
                data.dataset.describe(),
                train.n
            )))
        }
        Validation { fraction: Some(f), .. } => {
            let mut rows: Vec<usize> = (0..train.n).collect();
            SeededRng::new(HOLDOUT_SEED).shuffle(&mut rows);
            let held = ((train.n as f64 * f).round() as usize).clamp(1, train.n - 1);
            let eval_rows = rows.split_off(train.n - held);
            rows.sort_unstable();
            Splits { eval: train.clone(), train, train_rows: rows, eval_rows }
        }
        Validation { from, .. } => {
            let split = from.unwrap_or(Split::Test);
            let eval = if split == Split::Train {
                train.clone()
            } else {
                Arc::new(data.dataset.load_images(split, &data.transforms)?)
            };
            let eval_rows = (0..eval.n).collect();
            Splits { train_rows: (0..train.n).collect(), train, eval, eval_rows }
        }
    };
    let shape = |s: &ImageSet| [s.channels, s.height, s.width];
    if shape(&splits.eval) != shape(&splits.train) {
        return Err(PipelineError::Config(format!(
            "{}: the evaluation split's images are {:?} (channels, height, width) but the training split's are {:?}; add a resize transform",
            data.dataset.describe(),
            shape(&splits.eval),
            shape(&splits.train)
        )));
    }
    Ok(splits)
}

/// Training batches: shuffled rows, the experiment's per-batch transforms, uploaded to the device.
pub struct ImageBatches {
    set: Arc<ImageSet>,
    loader: BatchLoader,
    transforms: Vec<Transform>,
    rng: SeededRng,
}

impl ImageBatches {
    pub fn new(
        set: Arc<ImageSet>,
        rows: Vec<usize>,
        transforms: &[Transform],
        batch_size: usize,
        drop_last: bool,
        seed: u64,
    ) -> Self {
        ImageBatches {
            set,
            loader: BatchLoader::new(rows, batch_size, true, drop_last, seed),
            transforms: transforms.to_vec(),
            rng: SeededRng::stream(seed, 0x7a45),
        }
    }

    pub fn batches_per_epoch(&self) -> usize {
        self.loader.batches_per_epoch()
    }

    fn next_host(&mut self) -> LabelledBatch {
        let rows = self.loader.next_batch();
        let mut b = self.set.batch(&rows);
        Transform::apply_all(&self.transforms, &mut b, &mut self.rng);
        b
    }
}

impl BatchSource for ImageBatches {
    type Batch = Tensor<4>;

    fn next_batch(&mut self, device: &Device) -> Tensor<4> {
        let b = self.next_host();
        Tensor::from_data(TensorData::new(b.data, [b.n, b.channels, b.height, b.width]), device)
    }

    fn state(&self) -> Value {
        json!({ "loader": self.loader.state(), "transform_rng": self.rng })
    }

    fn restore(&mut self, state: Value) -> std::result::Result<(), String> {
        let loader: LoaderState =
            serde_json::from_value(state["loader"].clone()).map_err(|e| format!("loader state: {e}"))?;
        self.rng =
            serde_json::from_value(state["transform_rng"].clone()).map_err(|e| format!("transform stream: {e}"))?;
        self.loader.restore(loader)
    }
}

/// Training batches with their class labels (for a classifier), in the same order and with the
/// same resumable state as [`ImageBatches`].
pub struct LabelledBatches(pub ImageBatches);

impl LabelledBatches {
    /// Fails when the training set has no labels.
    pub fn new(batches: ImageBatches) -> Result<Self> {
        if batches.set.labels.is_none() {
            return Err(PipelineError::Config(format!(
                "{}: has no labels; a classifier trains on labelled data (IDX with a label file, or one folder per class)",
                batches.set.name
            )));
        }
        Ok(LabelledBatches(batches))
    }
}

impl BatchSource for LabelledBatches {
    type Batch = (Tensor<4>, Tensor<1, Int>);

    fn next_batch(&mut self, device: &Device) -> Self::Batch {
        let b = self.0.next_host();
        let labels: Vec<i64> = b.labels.expect("checked in LabelledBatches::new").into_iter().map(i64::from).collect();
        (
            Tensor::from_data(TensorData::new(b.data, [b.n, b.channels, b.height, b.width]), device),
            Tensor::from_data(TensorData::new(labels, [b.n]), device),
        )
    }

    fn state(&self) -> Value {
        self.0.state()
    }

    fn restore(&mut self, state: Value) -> std::result::Result<(), String> {
        self.0.restore(state)
    }
}

/// An evaluation set on the host, transformed once: augmentations are left out and random
/// transforms (binarisation) draw from a stream fixed by the evaluation seed, so every evaluation
/// of every run sees the same pixels.
pub struct EvalImages {
    pub data: Vec<f32>,
    pub labels: Option<Vec<u32>>,
    pub n: usize,
    pub shape: [usize; 3],
}

impl EvalImages {
    pub fn new(set: &ImageSet, rows: &[usize], transforms: &[Transform], seed: u64) -> Self {
        let deterministic: Vec<Transform> = transforms.iter().copied().filter(|t| *t != Transform::Hflip).collect();
        let mut b = set.batch(rows);
        Transform::apply_all(&deterministic, &mut b, &mut SeededRng::stream(seed, 0xe7a1));
        EvalImages { data: b.data, labels: b.labels, n: b.n, shape: [b.channels, b.height, b.width] }
    }

    /// The periodic validation subset of a run: the first `eval.periodic_examples` evaluation rows.
    pub fn periodic(splits: &Splits, exp: &crate::experiment::Experiment) -> Self {
        let rows = &splits.eval_rows[..exp.eval.periodic_examples.min(splits.eval_rows.len())];
        EvalImages::new(&splits.eval, rows, &exp.data.transforms, exp.eval.seed)
    }

    /// The final evaluation's set: the first `eval.examples` evaluation rows, all when unset.
    pub fn evaluation(splits: &Splits, exp: &crate::experiment::Experiment) -> Self {
        let rows = &splits.eval_rows[..exp.eval.examples.unwrap_or(usize::MAX).min(splits.eval_rows.len())];
        EvalImages::new(&splits.eval, rows, &exp.data.transforms, exp.eval.seed)
    }

    /// Labels `start..end` as a tensor; None when the set has no labels.
    pub fn labels_tensor(&self, start: usize, end: usize, device: &Device) -> Option<Tensor<1, Int>> {
        let l: Vec<i64> = self.labels.as_ref()?[start..end].iter().map(|&v| i64::from(v)).collect();
        Some(Tensor::from_data(TensorData::new(l, [end - start]), device))
    }

    /// Examples `start..end` as a tensor.
    pub fn tensor(&self, start: usize, end: usize, device: &Device) -> Tensor<4> {
        let len: usize = self.shape.iter().product();
        let [c, h, w] = self.shape;
        Tensor::from_data(TensorData::new(self.data[start * len..end * len].to_vec(), [end - start, c, h, w]), device)
    }
}

/// Generated images drawn per generator call when many are asked for.
pub(crate) const SAMPLE_CHUNK: usize = 500;

/// `n` generated images drawn `SAMPLE_CHUNK` at a time by `draw(start, count)`, each chunk handed
/// to `sink` with the index of its first image, with a "samples" progress bar when `progress`.
/// The chunks are the same whatever the sink, so a seeded draw gives the same images to a grid,
/// a folder and the sample metrics.
pub(crate) fn sample_in_chunks(
    n: usize,
    progress: bool,
    mut draw: impl FnMut(usize, usize) -> ImageBatch,
    mut sink: impl FnMut(ImageBatch, usize) -> Result<()>,
) -> Result<()> {
    let mut bar = if progress { Progress::new("samples", n as u64, 0) } else { Progress::hidden() };
    for start in (0..n).step_by(SAMPLE_CHUNK) {
        let k = SAMPLE_CHUNK.min(n - start);
        sink(draw(start, k), start)?;
        bar.update((start + k) as u64, "images");
    }
    bar.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use genlab_data::{DatasetName, DatasetSource};

    #[test]
    fn fraction_holds_out_the_same_rows_and_batches_resume() {
        let data = DataConfig {
            dataset: DatasetSource::Named(DatasetName::Mnist),
            transforms: vec![Transform::ScaleUnit, Transform::Binarize],
            validation: Validation { from: None, fraction: Some(0.1) },
        };
        let s = load_splits(&data).unwrap();
        assert_eq!((s.train_rows.len(), s.eval_rows.len()), (54_000, 6_000));
        assert!(s.eval_rows.iter().all(|r| s.train_rows.binary_search(r).is_err()), "held-out rows are not trained on");
        let dev = Device::flex();
        let mut a = ImageBatches::new(s.train.clone(), s.train_rows.clone(), &data.transforms, 32, true, 4);
        for _ in 0..3 {
            a.next_batch(&dev);
        }
        let mut b = ImageBatches::new(s.train.clone(), s.train_rows.clone(), &data.transforms, 32, true, 4);
        b.restore(a.state()).unwrap();
        let (x, y) = (a.next_batch(&dev), b.next_batch(&dev));
        assert_eq!(x.to_data(), y.to_data());
        let v: Vec<f32> = genlab_core::tensors::to_f32_vec(x);
        assert!(v.iter().all(|&p| p == 0.0 || p == 1.0), "binarised");
        let e1 = EvalImages::new(&s.eval, &s.eval_rows[..10], &data.transforms, 0);
        let e2 = EvalImages::new(&s.eval, &s.eval_rows[..10], &data.transforms, 0);
        assert_eq!(e1.data, e2.data, "the evaluation binarisation is fixed by its seed");
    }
}
