//! An image dataset split for a run: the training rows, the rows evaluation reads (the test split,
//! the training split itself, or a fixed fraction held out of it), the training batches drawn
//! from them, and evaluation sets transformed once with a fixed seed.

use crate::batches::{ImageBatches, LabelledBatches};
use crate::error::{DataError, Result};
use crate::image_set::ImageSet;
use crate::source::{DatasetSource, Split};
use crate::transform::Transform;
use burn::tensor::{Device, Int, TensorData};
use burn::Tensor;
use genlab_core::SeededRng;
use std::sync::Arc;

/// Which examples evaluation reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Holdout {
    /// A split of the dataset (the training split itself when `Split::Train`).
    Split(Split),
    /// A fraction in (0, 1) held out of the training split, the same rows for every run.
    Fraction(f64),
}

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

impl Splits {
    /// Loads `dataset` (with any resize of `transforms`) and splits it as `holdout` says.
    pub fn load(dataset: &DatasetSource, transforms: &[Transform], holdout: Holdout) -> Result<Splits> {
        let train = Arc::new(dataset.load_images(Split::Train, transforms)?);
        let splits = match holdout {
            Holdout::Fraction(_) if train.n < 2 => {
                return Err(DataError::Config(format!(
                    "data.validation.fraction: {} has {} example(s); holding some out needs at least 2",
                    dataset.describe(),
                    train.n
                )))
            }
            Holdout::Fraction(f) => {
                let mut rows: Vec<usize> = (0..train.n).collect();
                SeededRng::new(HOLDOUT_SEED).shuffle(&mut rows);
                let held = ((train.n as f64 * f).round() as usize).clamp(1, train.n - 1);
                let eval_rows = rows.split_off(train.n - held);
                rows.sort_unstable();
                Splits { eval: train.clone(), train, train_rows: rows, eval_rows }
            }
            Holdout::Split(split) => {
                let eval = if split == Split::Train {
                    train.clone()
                } else {
                    Arc::new(dataset.load_images(split, transforms)?)
                };
                let eval_rows = (0..eval.n).collect();
                Splits { train_rows: (0..train.n).collect(), train, eval, eval_rows }
            }
        };
        let shape = |s: &ImageSet| [s.channels, s.height, s.width];
        if shape(&splits.eval) != shape(&splits.train) {
            return Err(DataError::Config(format!(
                "{}: the evaluation split's images are {:?} (channels, height, width) but the training split's are {:?}; add a resize transform",
                dataset.describe(),
                shape(&splits.eval),
                shape(&splits.train)
            )));
        }
        Ok(splits)
    }

    /// Shuffled training batches with `transforms`.
    pub fn batches(&self, transforms: &[Transform], batch_size: usize, drop_last: bool, seed: u64) -> ImageBatches {
        ImageBatches::new(self.train.clone(), self.train_rows.clone(), transforms, batch_size, drop_last, seed)
    }

    /// The same batches with their labels; fails when the dataset has none.
    pub fn labelled_batches(
        &self,
        transforms: &[Transform],
        batch_size: usize,
        drop_last: bool,
        seed: u64,
    ) -> Result<LabelledBatches> {
        LabelledBatches::new(self.batches(transforms, batch_size, drop_last, seed)).ok_or_else(|| {
            DataError::Config(format!(
                "{}: has no labels; this family trains on labelled data (IDX with a label file, or one folder per class)",
                self.train.name
            ))
        })
    }

    /// Every label of the evaluation split must be one of the training split's classes.
    pub fn check_labels(&self, describe: &str) -> Result<()> {
        let classes = self.train.class_names.len();
        let Some(labels) = &self.eval.labels else {
            return Err(DataError::Config(format!(
                "{describe}: the evaluation split has no labels; this family is evaluated on labelled data"
            )));
        };
        match self.eval_rows.iter().map(|&r| labels[r]).find(|&l| l as usize >= classes) {
            Some(l) => Err(DataError::Config(format!(
                "{describe}: the evaluation split has label {l}, but the training split has {classes} classes (0..{classes})"
            ))),
            None => Ok(()),
        }
    }

    /// The first `n` evaluation rows (all when None), transformed once (see [`EvalImages`]).
    pub fn eval_images(&self, n: Option<usize>, transforms: &[Transform], seed: u64) -> EvalImages {
        let rows = &self.eval_rows[..n.unwrap_or(usize::MAX).min(self.eval_rows.len())];
        EvalImages::new(&self.eval, rows, transforms, seed)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batches::BatchSource;
    use crate::source::DatasetName;

    #[test]
    fn fraction_holds_out_the_same_rows_and_batches_resume() {
        let transforms = [Transform::ScaleUnit, Transform::Binarize];
        let s = Splits::load(&DatasetSource::Named(DatasetName::Mnist), &transforms, Holdout::Fraction(0.1)).unwrap();
        assert_eq!((s.train_rows.len(), s.eval_rows.len()), (54_000, 6_000));
        assert!(s.eval_rows.iter().all(|r| s.train_rows.binary_search(r).is_err()), "held-out rows are not trained on");
        let dev = Device::flex();
        let mut a = s.batches(&transforms, 32, true, 4);
        for _ in 0..3 {
            a.next_batch(&dev);
        }
        let mut b = s.batches(&transforms, 32, true, 4);
        b.restore(a.state()).unwrap();
        let (x, y) = (a.next_batch(&dev), b.next_batch(&dev));
        assert_eq!(x.to_data(), y.to_data());
        let v: Vec<f32> = genlab_core::tensors::to_f32_vec(x);
        assert!(v.iter().all(|&p| p == 0.0 || p == 1.0), "binarised");
        let e1 = s.eval_images(Some(10), &transforms, 0);
        let e2 = s.eval_images(Some(10), &transforms, 0);
        assert_eq!(e1.data, e2.data, "the evaluation binarisation is fixed by its seed");
    }
}
