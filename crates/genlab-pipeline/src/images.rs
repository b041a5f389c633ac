//! Image data for evaluation: the training and evaluation rows of a dataset, evaluation sets
//! transformed once with a fixed seed, and generated images drawn in chunks.

use crate::error::{PipelineError, Result};
use crate::experiment::{DataConfig, Validation};
use burn::tensor::{Device, Int, TensorData};
use burn::Tensor;
use genlab_core::events::EventSink;
use genlab_core::grid::ImageBatch;
use genlab_core::progress::Progress;
use genlab_core::SeededRng;
use genlab_data::{ImageBatches, ImageSet, LabelledBatches, Split, Transform};
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

impl Splits {
    /// Shuffled training batches with the experiment's transforms.
    pub fn batches(&self, exp: &crate::experiment::Experiment) -> ImageBatches {
        let t = &exp.train;
        ImageBatches::new(
            self.train.clone(),
            self.train_rows.clone(),
            &exp.data.transforms,
            t.batch_size,
            t.drop_last,
            t.seed,
        )
    }

    /// The same batches with their labels; fails when the dataset has none.
    pub fn labelled_batches(&self, exp: &crate::experiment::Experiment) -> Result<LabelledBatches> {
        LabelledBatches::new(self.batches(exp)).ok_or_else(|| {
            PipelineError::Config(format!(
                "{}: has no labels; this family trains on labelled data (IDX with a label file, or one folder per class)",
                self.train.name
            ))
        })
    }

    /// Every label of the evaluation split must be one of the training split's classes.
    pub fn check_labels(&self, describe: &str) -> Result<()> {
        let classes = self.train.class_names.len();
        let Some(labels) = &self.eval.labels else {
            return Err(PipelineError::Config(format!(
                "{describe}: the evaluation split has no labels; this family is evaluated on labelled data"
            )));
        };
        match self.eval_rows.iter().map(|&r| labels[r]).find(|&l| l as usize >= classes) {
            Some(l) => Err(PipelineError::Config(format!(
                "{describe}: the evaluation split has label {l}, but the training split has {classes} classes (0..{classes})"
            ))),
            None => Ok(()),
        }
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

/// `n` generated images drawn `SAMPLE_CHUNK` at a time by `draw(start, count)` (values in [0, 1]),
/// as 8-bit values (as their PNG files hold them), with a "samples" progress bar when asked. The
/// chunks are the same whatever `n`, so a seeded draw of `n` images begins with the images of any
/// smaller draw.
pub(crate) fn draw_pixels(
    n: usize,
    progress: Option<&dyn EventSink>,
    mut draw: impl FnMut(usize, usize) -> ImageBatch,
) -> Vec<f32> {
    let mut bar = progress.map_or_else(Progress::hidden, |e| e.progress("samples", n as u64, 0));
    let mut pixels = Vec::new();
    for start in (0..n).step_by(SAMPLE_CHUNK) {
        let k = SAMPLE_CHUNK.min(n - start);
        pixels.extend(draw(start, k).data.iter().map(|v| (v.clamp(0.0, 1.0) * 255.0).round()));
        bar.update((start + k) as u64, "images");
    }
    bar.finish();
    pixels
}

#[cfg(test)]
mod tests {
    use super::*;
    use genlab_data::{BatchSource, DatasetName, DatasetSource};

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
