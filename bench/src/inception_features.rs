//! Times FID Inception feature extraction in genlab: the first N MNIST test digits, legacy
//! preprocessing (replicate to RGB, bilinear to 299x299, (x - 128) / 128) included, batches of 50.
//! `inception-features [--device flex|libtorch] [--images N]` prints one RESULT line, as
//! `bench/inception_features.py` does for the TorchScript original in PyTorch.

use burn::tensor::Device;
use genlab_bench::{arg, fail};
use genlab_core::progress::Progress;
use genlab_core::DeviceSpec;
use genlab_data::{DatasetName, DatasetSource, Split};
use genlab_eval::extract::InceptionExtractor;
use genlab_eval::preprocess::FidProtocol;
use genlab_eval::weights::{weights_dir, FID_INCEPTION_FILE};
use std::time::Instant;

fn main() {
    genlab_core::memory::keep_freed_buffers(); // as the genlab command does
    let spec: DeviceSpec = arg("--device", "flex").parse().unwrap_or_else(|e| fail(&format!("{e}")));
    let n: usize = arg("--images", "500")
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or_else(|| fail("--images: expected a count of at least 1"));
    let device: Device = spec.device().unwrap_or_else(|e| fail(&e.to_string()));
    let net = InceptionExtractor::load(&weights_dir().join(FID_INCEPTION_FILE), &device)
        .unwrap_or_else(|e| fail(&e.to_string()));
    let mnist =
        DatasetSource::Named(DatasetName::Mnist).load_images(Split::Test, &[]).unwrap_or_else(|e| fail(&e.to_string()));
    let n = n.min(mnist.n);
    let pixels: Vec<f32> = mnist.pixels[..n * 784].iter().map(|&p| p as f32).collect();
    net.features(&pixels[..784 * 2], 2, 1, 28, 28, 2, FidProtocol::PytorchFid, Progress::hidden());
    let t0 = Instant::now();
    let (f, _) =
        net.features(&pixels, n, 1, 28, 28, 50, FidProtocol::PytorchFid, Progress::new("features", n as u64, 0));
    let secs = t0.elapsed().as_secs_f64();
    let mean = f.data.iter().sum::<f64>() / f.data.len() as f64;
    println!(
        "RESULT impl=genlab-{spec} images={n} seconds={secs:.2} images_per_s={:.2} feature_mean={mean:.6}",
        n as f64 / secs
    );
}
