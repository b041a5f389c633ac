//! What the installed MNIST LeNet says of generated digits: the class histogram, its entropy and
//! largest class, and for a conditional model how often the class asked for is the class
//! generated. The GAN's mode-collapse monitor and the diffusion family's evaluation read it.

use crate::experiment::Experiment;
use burn::tensor::Device;
use genlab_data::DatasetName;
use genlab_eval::lenet::{LenetExtractor, LENET_INPUT, MNIST_LENET_FILE};
use serde::{Deserialize, Serialize};

/// What the MNIST LeNet says of generated digits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassStats {
    pub samples: usize,
    /// Fraction of samples per predicted class.
    pub histogram: Vec<f64>,
    /// Entropy of the histogram, nats (ln 10 = 2.303 for uniform digits); a collapse lowers it.
    pub entropy: f64,
    /// The largest class's fraction.
    pub top_fraction: f64,
    /// Conditional GANs: the fraction of samples the classifier puts in the class they were asked for.
    pub conditional_accuracy: Option<f64>,
}

/// The class statistics of `n` generated images (8-bit `pixels`), asked for `labels` when
/// conditional.
pub fn class_stats(net: &LenetExtractor, pixels: &[f32], labels: Option<&[usize]>, n: usize) -> ClassStats {
    let predicted = net.classify(pixels, n);
    let k = net.card.classes;
    let mut counts = vec![0usize; k];
    predicted.iter().for_each(|&p| counts[p] += 1);
    let histogram: Vec<f64> = counts.iter().map(|&c| c as f64 / n as f64).collect();
    let entropy = -histogram.iter().filter(|&&p| p > 0.0).map(|p| p * p.ln()).sum::<f64>();
    let top_fraction = histogram.iter().copied().fold(0.0, f64::max);
    let conditional_accuracy =
        labels.map(|l| l.iter().zip(&predicted).filter(|(a, b)| a == b).count() as f64 / n as f64);
    ClassStats { samples: n, histogram, entropy, top_fraction, conditional_accuracy }
}

/// The MNIST LeNet when the data are MNIST digits and the network is installed.
pub fn network(exp: &Experiment, shape: [usize; 3], device: &Device) -> std::result::Result<LenetExtractor, String> {
    if exp.data.dataset != genlab_data::DatasetSource::Named(DatasetName::Mnist) || shape != LENET_INPUT {
        return Err(format!("the MNIST classifier does not know the classes of {}", exp.data.dataset.describe()));
    }
    LenetExtractor::load(&genlab_eval::weights::weights_dir().join(MNIST_LENET_FILE), device).map_err(|e| e.to_string())
}
