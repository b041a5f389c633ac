//! What the trainer reads: a [`BatchSource`] per kind of data (images, labelled images, 2-D
//! points, token windows of a text corpus), each a seeded, resumable stream of device tensors
//! whose state goes into every checkpoint, so a resumed run sees the batches the uninterrupted
//! run would have seen.

use crate::image_set::{ImageSet, LabelledBatch};
use crate::loader::{BatchLoader, LoaderState};
use crate::transform::Transform;
use burn::tensor::{Device, Int, TensorData};
use burn::Tensor;
use genlab_core::SeededRng;
use serde_json::{json, Value};
use std::sync::Arc;

/// Where batches come from. Its state goes into every checkpoint.
pub trait BatchSource {
    type Batch;
    fn next_batch(&mut self, device: &Device) -> Self::Batch;
    fn state(&self) -> Value;
    fn restore(&mut self, state: Value) -> Result<(), String>;

    /// Switches to Poisson sampling for differentially private training: every training example
    /// is in a batch independently with probability batch size / examples. Returns the number of
    /// examples, or None for a source that cannot sample so.
    fn sample_poisson(&mut self) -> Option<usize> {
        None
    }
}

impl<S: BatchSource + ?Sized> BatchSource for Box<S> {
    type Batch = S::Batch;
    fn next_batch(&mut self, device: &Device) -> Self::Batch {
        (**self).next_batch(device)
    }
    fn state(&self) -> Value {
        (**self).state()
    }
    fn restore(&mut self, state: Value) -> Result<(), String> {
        (**self).restore(state)
    }
    fn sample_poisson(&mut self) -> Option<usize> {
        (**self).sample_poisson()
    }
}

fn loader_state(state: &Value) -> Result<LoaderState, String> {
    serde_json::from_value(state["loader"].clone()).map_err(|e| format!("loader state: {e}"))
}

/// Training images: shuffled rows, the experiment's per-batch transforms, uploaded to the device.
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

    /// The set the batches are drawn from.
    pub fn set(&self) -> &ImageSet {
        &self.set
    }

    fn next_host(&mut self) -> LabelledBatch {
        let rows = self.loader.next_batch();
        let mut b = self.set.batch(&rows);
        Transform::apply_all(&self.transforms, &mut b, &mut self.rng);
        b
    }
}

fn images_tensor(b: LabelledBatch, device: &Device) -> Tensor<4> {
    let shape = [b.n, b.channels, b.height, b.width];
    Tensor::from_data(TensorData::new(b.data, shape), device)
}

impl BatchSource for ImageBatches {
    type Batch = Tensor<4>;

    fn next_batch(&mut self, device: &Device) -> Tensor<4> {
        let b = self.next_host();
        images_tensor(b, device)
    }

    fn state(&self) -> Value {
        json!({ "loader": self.loader.state(), "transform_rng": self.rng })
    }

    fn restore(&mut self, state: Value) -> Result<(), String> {
        let loader = loader_state(&state)?;
        self.rng =
            serde_json::from_value(state["transform_rng"].clone()).map_err(|e| format!("transform stream: {e}"))?;
        self.loader.restore(loader)
    }

    fn sample_poisson(&mut self) -> Option<usize> {
        Some(self.loader.sample_poisson())
    }
}

/// Training images with their class labels, in the same order and with the same resumable state
/// as [`ImageBatches`].
pub struct LabelledBatches(ImageBatches);

impl LabelledBatches {
    /// None when the set has no labels.
    pub fn new(batches: ImageBatches) -> Option<Self> {
        batches.set.labels.is_some().then_some(LabelledBatches(batches))
    }
}

impl BatchSource for LabelledBatches {
    type Batch = (Tensor<4>, Tensor<1, Int>);

    fn next_batch(&mut self, device: &Device) -> Self::Batch {
        let b = self.0.next_host();
        let labels: Vec<i64> =
            b.labels.as_ref().expect("checked in LabelledBatches::new").iter().map(|&l| i64::from(l)).collect();
        let n = b.n;
        (images_tensor(b, device), Tensor::from_data(TensorData::new(labels, [n]), device))
    }

    fn state(&self) -> Value {
        self.0.state()
    }

    fn restore(&mut self, state: Value) -> Result<(), String> {
        self.0.restore(state)
    }

    fn sample_poisson(&mut self) -> Option<usize> {
        Some(self.0.loader.sample_poisson())
    }
}

/// Shuffled batches of 2-D points `[x0, y0, x1, y1, ...]` as `[batch, 2, 1, 1]`.
pub struct PointBatches {
    points: Arc<Vec<f32>>,
    loader: BatchLoader,
}

impl PointBatches {
    pub fn new(points: Arc<Vec<f32>>, batch_size: usize, drop_last: bool, seed: u64) -> Self {
        let n = points.len() / 2;
        PointBatches { loader: BatchLoader::new((0..n).collect(), batch_size, true, drop_last, seed), points }
    }
}

/// Points `[x0, y0, ...]` as a `[n, 2, 1, 1]` tensor.
pub fn points_tensor(points: &[f32], device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(points.to_vec(), [points.len() / 2, 2, 1, 1]), device)
}

impl BatchSource for PointBatches {
    type Batch = Tensor<4>;

    fn next_batch(&mut self, device: &Device) -> Tensor<4> {
        let rows = self.loader.next_batch();
        let v: Vec<f32> = rows.iter().flat_map(|&r| [self.points[2 * r], self.points[2 * r + 1]]).collect();
        points_tensor(&v, device)
    }

    fn state(&self) -> Value {
        json!({ "loader": self.loader.state() })
    }

    fn restore(&mut self, state: Value) -> Result<(), String> {
        self.loader.restore(loader_state(&state)?)
    }

    fn sample_poisson(&mut self) -> Option<usize> {
        Some(self.loader.sample_poisson())
    }
}

/// Windows of a token stream for next-token prediction: each example is `context + 1`
/// consecutive tokens starting at a shuffled offset (nanoGPT's `get_batch`, without replacement
/// within an epoch), `[batch, context + 1]` as integers.
pub struct TokenBatches {
    tokens: Arc<Vec<u32>>,
    context: usize,
    loader: BatchLoader,
}

impl TokenBatches {
    /// None when the stream is shorter than one window.
    pub fn new(tokens: Arc<Vec<u32>>, context: usize, batch_size: usize, drop_last: bool, seed: u64) -> Option<Self> {
        let starts = tokens.len().checked_sub(context)?;
        (starts > 0).then(|| TokenBatches {
            loader: BatchLoader::new((0..starts).collect(), batch_size, true, drop_last, seed),
            tokens,
            context,
        })
    }

    /// Window starts in one epoch.
    pub fn windows(&self) -> usize {
        self.tokens.len() - self.context
    }
}

impl BatchSource for TokenBatches {
    type Batch = Tensor<2, Int>;

    fn next_batch(&mut self, device: &Device) -> Tensor<2, Int> {
        let starts = self.loader.next_batch();
        let len = self.context + 1;
        let v: Vec<i64> = starts.iter().flat_map(|&s| self.tokens[s..s + len].iter().map(|&t| i64::from(t))).collect();
        Tensor::from_data(TensorData::new(v, [starts.len(), len]), device)
    }

    fn state(&self) -> Value {
        json!({ "loader": self.loader.state() })
    }

    fn restore(&mut self, state: Value) -> Result<(), String> {
        self.loader.restore(loader_state(&state)?)
    }

    fn sample_poisson(&mut self) -> Option<usize> {
        Some(self.loader.sample_poisson())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each window is `context + 1` consecutive tokens of the stream, and a restored source
    /// continues with the batches the original draws next.
    #[test]
    fn token_windows_are_consecutive_and_resume() {
        let tokens: Arc<Vec<u32>> = Arc::new((0..50).collect());
        let dev = Device::flex();
        let mut a = TokenBatches::new(tokens.clone(), 4, 3, true, 7).unwrap();
        assert_eq!(a.windows(), 46);
        for _ in 0..20 {
            a.next_batch(&dev); // crosses an epoch boundary (15 batches an epoch)
        }
        let mut b = TokenBatches::new(tokens.clone(), 4, 3, true, 7).unwrap();
        b.restore(a.state()).unwrap();
        let (x, y) = (a.next_batch(&dev), b.next_batch(&dev));
        assert_eq!(x.to_data(), y.to_data());
        let v: Vec<i64> = x.to_data().convert::<i64>().try_to_vec().unwrap();
        for w in v.chunks(5) {
            assert!(w.windows(2).all(|p| p[1] == p[0] + 1), "consecutive tokens: {w:?}");
        }
        assert!(TokenBatches::new(Arc::new(vec![1, 2]), 4, 1, true, 0).is_none());
    }

    #[test]
    fn point_batches_resume() {
        let pts: Arc<Vec<f32>> = Arc::new((0..40).map(|i| i as f32).collect());
        let dev = Device::flex();
        let mut a = PointBatches::new(pts.clone(), 6, true, 1);
        for _ in 0..5 {
            a.next_batch(&dev);
        }
        let mut b = PointBatches::new(pts, 6, true, 1);
        b.restore(a.state()).unwrap();
        assert_eq!(a.next_batch(&dev).to_data(), b.next_batch(&dev).to_data());
    }
}
