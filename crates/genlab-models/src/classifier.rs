//! A LeNet-style image classifier (LeCun et al. 1998, <http://yann.lecun.com/exdb/publis/pdf/lecun-98.pdf>,
//! in the 20/50/500 form of Caffe's MNIST example): unpadded 5x5 convolutions each followed by ReLU
//! and 2x2 max pooling, one hidden fully connected layer, and the class logits.
//!
//! genlab trains it once on MNIST and uses it as the in-domain feature network of FID/KID/PRDC (the
//! hidden layer's activations) and of the Inception Score (its logits) for 28x28 digits, as
//! small-scale generative-model papers do.

use crate::error::ModelError;
use crate::vae::networks::ImageShape;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::Linear;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int};
use burn::Tensor;
use genlab_core::SeededRng;
use genlab_nn::conv;
use genlab_nn::distributions::categorical_log_prob;
use genlab_nn::init::{conv2d, linear};
use genlab_train::privacy::{rows, ExampleLoss};
use genlab_train::{StepContext, StepOutput, TrainStep};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Filters of each convolution (each followed by 2x2 max pooling).
    #[serde(default = "default_channels")]
    pub channels: Vec<usize>,
    /// Side of the square convolution kernels (no padding).
    #[serde(default = "default_kernel")]
    pub kernel: usize,
    /// Width of the hidden fully connected layer: the feature vector of FID and friends.
    #[serde(default = "default_hidden")]
    pub hidden: usize,
}

fn default_channels() -> Vec<usize> {
    vec![20, 50]
}
fn default_kernel() -> usize {
    5
}
fn default_hidden() -> usize {
    500
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig { channels: default_channels(), kernel: default_kernel(), hidden: default_hidden() }
    }
}

impl ClassifierConfig {
    /// Checks the fields that do not depend on the data; `init` repeats it.
    pub fn check(&self) -> Result<(), ModelError> {
        let bad =
            |field, value: String, expected: &str| Err(ModelError::Config { field, value, expected: expected.into() });
        if self.channels.is_empty() || self.channels.contains(&0) {
            return bad(
                "channels",
                format!("{:?}", self.channels),
                "expected at least one filter count, each at least 1",
            );
        }
        if self.kernel == 0 {
            return bad("kernel", "0".into(), "expected at least 1");
        }
        if self.hidden == 0 {
            return bad("hidden", "0".into(), "expected at least 1");
        }
        Ok(())
    }

    /// Height and width after every convolution and pooling, or None when the image is too small.
    fn feature_map(&self, shape: ImageShape) -> Option<[usize; 2]> {
        let mut hw = [shape[1], shape[2]];
        for _ in &self.channels {
            for s in &mut hw {
                *s = s.checked_sub(self.kernel - 1).filter(|&v| v >= 2)? / 2;
            }
        }
        Some(hw)
    }

    /// Builds the classifier for images of `shape` and `classes` labels, drawing the initial
    /// weights from `seed`.
    pub fn init(
        &self,
        shape: ImageShape,
        classes: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Classifier, ModelError> {
        self.check()?;
        if classes < 2 {
            return Err(ModelError::Config {
                field: "family",
                value: "\"classifier\"".into(),
                expected: format!("labelled data with at least 2 classes, the data has {classes}"),
            });
        }
        let [h, w] = self.feature_map(shape).ok_or_else(|| ModelError::Config {
            field: "channels",
            value: format!("{:?}", self.channels),
            expected: format!(
                "{} unpadded {k}x{k} convolutions with 2x2 pooling need larger images than {}x{}",
                self.channels.len(),
                shape[1],
                shape[2],
                k = self.kernel
            ),
        })?;
        let mut rng = SeededRng::stream(seed, 0xc1a5);
        let mut c_in = shape[0];
        let convs = self
            .channels
            .iter()
            .map(|&c| {
                let layer = conv2d(&mut rng, &Conv2dConfig::new([c_in, c], [self.kernel, self.kernel]), device);
                c_in = c;
                layer
            })
            .collect();
        let flat = c_in * h * w;
        Ok(Classifier {
            convs,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            fc: linear(&mut rng, flat, self.hidden, device),
            out: linear(&mut rng, self.hidden, classes, device),
        })
    }
}

#[derive(Module, Debug)]
pub struct Classifier {
    pub convs: Vec<Conv2d>,
    pub pool: MaxPool2d,
    pub fc: Linear,
    pub out: Linear,
}

impl Classifier {
    /// The hidden layer's activations and the logits.
    ///
    /// # Shapes
    /// `x: [batch, channels, height, width]` -> `([batch, hidden], [batch, classes])`
    pub fn features_and_logits(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let h = self.convs.iter().fold(x, |h, layer| self.pool.forward(relu(conv::conv2d(layer, h)))); // [batch, C, h, w]
        let features = relu(self.fc.forward(h.flatten(1, 3))); // [batch, hidden]
        let logits = self.out.forward(features.clone()); // [batch, classes]
        (features, logits)
    }

    pub fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.features_and_logits(x).1
    }

    /// Mean cross-entropy of `labels` (`[batch]`) under the logits of `x`, in nats.
    pub fn loss(&self, x: Tensor<4>, labels: Tensor<1, Int>) -> Tensor<1> {
        categorical_log_prob(self.logits(x), labels).mean().neg()
    }
}

/// A batch of images and their class labels.
pub type LabelledImages = (Tensor<4>, Tensor<1, Int>);

impl TrainStep for Classifier {
    type Batch = LabelledImages;

    fn train_step(self, (x, labels): LabelledImages, ctx: &mut StepContext<'_>) -> (Self, StepOutput) {
        let logits = self.logits(x);
        let loss = categorical_log_prob(logits.clone(), labels.clone()).mean().neg();
        let correct = logits.detach().argmax(1).reshape([labels.dims()[0]]).equal(labels).float().mean();
        // One host read for both numbers.
        let shown = genlab_core::tensors::to_f32_vec(Tensor::cat(vec![loss.clone().detach(), correct], 0));
        let model = ctx.optimizers.get(genlab_train::OptimizerKey::MODEL).backward_step(self, loss);
        (model, StepOutput { loss: shown[0] as f64, scalars: vec![("accuracy", shown[1] as f64)] })
    }

    fn examples((x, labels): LabelledImages) -> Option<Vec<LabelledImages>> {
        Some(rows(x).into_iter().zip(rows(labels)).collect())
    }

    fn example_loss(&self, (x, label): LabelledImages, _: &mut SeededRng, _: &Device) -> Option<ExampleLoss> {
        let logits = self.logits(x); // [1, classes]
        let loss = categorical_log_prob(logits.clone(), label.clone()).mean().neg();
        let correct = logits.detach().argmax(1).reshape([1]).equal(label).float();
        Some(ExampleLoss { loss, scalars: vec![("accuracy", correct)] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    use genlab_core::tensors::to_f32_vec;

    fn batch(n: usize, dev: &Device) -> LabelledImages {
        let mut rng = SeededRng::new(3);
        let x = Tensor::from_data(TensorData::new(rng.uniform_vec(n * 28 * 28), [n, 1, 28, 28]), dev);
        let y = Tensor::from_data(TensorData::new((0..n as i64).map(|i| i % 10).collect::<Vec<_>>(), [n]), dev);
        (x, y)
    }

    #[test]
    fn shapes_and_parameter_count_follow_caffe_lenet() {
        let dev = Device::flex();
        let c = ClassifierConfig::default().init([1, 28, 28], 10, 0, &dev).unwrap();
        // 20*25+20 + 50*20*25+50 + 800*500+500 + 500*10+10 (Caffe's LeNet: 431,080).
        assert_eq!(c.num_params(), 431_080);
        let (f, l) = c.features_and_logits(batch(3, &dev).0);
        assert_eq!((f.dims(), l.dims()), ([3, 500], [3, 10]));
        assert!(to_f32_vec(f).iter().all(|&v| v >= 0.0), "features come after a ReLU");
    }

    #[test]
    fn bad_shapes_name_the_field() {
        let dev = Device::flex();
        let small = ClassifierConfig::default().init([1, 12, 12], 10, 0, &dev).unwrap_err();
        assert!(small.to_string().contains("channels") && small.to_string().contains("12x12"), "{small}");
        let one_class = ClassifierConfig::default().init([1, 28, 28], 1, 0, &dev).unwrap_err();
        assert!(one_class.to_string().contains("at least 2 classes"), "{one_class}");
        let k0 = ClassifierConfig { kernel: 0, ..Default::default() }.check().unwrap_err();
        assert!(k0.to_string().contains("kernel"), "{k0}");
    }

    /// The loss equals a float64 recomputation of the cross-entropy from the same logits.
    #[test]
    fn loss_is_the_mean_cross_entropy() {
        let dev = Device::flex();
        let c = ClassifierConfig::default().init([1, 28, 28], 10, 1, &dev).unwrap();
        let (x, y) = batch(5, &dev);
        let got = to_f32_vec(c.loss(x.clone(), y))[0] as f64;
        let logits: Vec<f64> = to_f32_vec(c.logits(x)).into_iter().map(f64::from).collect();
        let want = (0..5)
            .map(|i| {
                let row = &logits[i * 10..(i + 1) * 10];
                let m = row.iter().cloned().fold(f64::MIN, f64::max);
                m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln() - row[i % 10]
            })
            .sum::<f64>()
            / 5.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn overfits_one_batch() {
        use genlab_train::{OptimizerConfig, Optimizers};
        let ad = Device::flex().autodiff();
        let cfg = ClassifierConfig { channels: vec![4], kernel: 3, hidden: 32 };
        let mut c = cfg.init([1, 28, 28], 10, 0, &ad).unwrap();
        let b = batch(20, &ad);
        let mut opt = Optimizers::single(OptimizerConfig { lr: 3e-3, ..Default::default() }, None);
        let mut rng = SeededRng::new(0);
        let mut out = vec![];
        for step in 1..=60 {
            let mut ctx = StepContext { optimizers: &mut opt, rng: &mut rng, step, device: &ad };
            let (m, o) = c.train_step(b.clone(), &mut ctx);
            c = m;
            out.push(o);
        }
        let (first, last) = (&out[0], &out[59]);
        assert!(
            last.loss < first.loss / 10.0,
            "loss should fall tenfold on one batch: {} -> {}",
            first.loss,
            last.loss
        );
        assert_eq!(last.scalars[0], ("accuracy", 1.0), "every label of the batch is learnt");
    }
}
