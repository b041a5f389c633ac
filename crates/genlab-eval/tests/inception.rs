//! Parity of genlab's FID Inception with the TorchScript original: pool3 features of the first 64
//! MNIST test digits, fed the input fixtures/make_inception_fixture.py fed it (bilinear resize,
//! then (x - 128) / 128: the network is tested here, the named protocols in protocols.rs), against
//! fixtures/inception_mnist64.f32. Needs the weights (scripts/fetch-fid-inception.sh; the README's
//! test command fetches them).

use burn::tensor::{Device, TensorData};
use burn::Tensor;
use genlab_data::{DatasetName, DatasetSource, Split};
use genlab_eval::inception::FidInception;
use genlab_eval::preprocess::{inception_input, resize_bilinear, FidProtocol};
use genlab_eval::weights::{export_fid_inception, load_fid_inception, weights_dir, FID_INCEPTION_FILE};

#[test]
fn features_match_the_torchscript_model() {
    let w = load_fid_inception(&weights_dir().join(FID_INCEPTION_FILE)).unwrap_or_else(|e| panic!("{e}"));
    let dev = Device::flex();
    let net = FidInception::from_weights(&w, &dev);
    let mnist = DatasetSource::Named(DatasetName::Mnist).load_images(Split::Test, &[]).unwrap();
    let bytes =
        std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inception_mnist64.f32"))
            .unwrap();
    let want: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let mut max_diff = 0f32;
    for start in (0..64).step_by(16) {
        let b = mnist.batch(&(start..start + 16).collect::<Vec<_>>());
        let x = fixture_input(&b.data, 16);
        let f: Tensor<2> = net.forward(Tensor::from_data(TensorData::new(x, [16, 3, 299, 299]), &dev));
        let got = genlab_core::tensors::to_f32_vec(f);
        for (g, w) in got.iter().zip(&want[start * 2048..(start + 16) * 2048]) {
            max_diff = max_diff.max((g - w).abs());
        }
    }
    assert!(max_diff <= 1e-3, "max |diff| {max_diff} over 64 x 2048 features");
    eprintln!("max |diff| {max_diff}");
}

/// What make_inception_fixture.py feeds the network: gray digits replicated to RGB, PyTorch's
/// bilinear resize to 299x299, then (x - 128) / 128.
fn fixture_input(pixels: &[f32], n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * 3 * 299 * 299);
    for i in 0..n {
        let plane = resize_bilinear(&pixels[i * 784..(i + 1) * 784], 28, 28, 299, 299);
        for _ in 0..3 {
            out.extend(plane.iter().map(|v| (v - 128.0) / 128.0));
        }
    }
    out
}

/// The safetensors copy holds the same tensors under the same names, so the network it builds
/// computes the same features, bit for bit.
#[test]
fn safetensors_copy_loads_the_same_network() {
    let pt = weights_dir().join(FID_INCEPTION_FILE);
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("fid_inception.safetensors");
    export_fid_inception(&pt, &st, false).unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = (load_fid_inception(&pt).unwrap(), load_fid_inception(&st).unwrap());
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        let u = &b[name];
        assert!(t.shape == u.shape && t.data == u.data, "{name} differs");
    }
    let dev = Device::flex();
    let mnist = DatasetSource::Named(DatasetName::Mnist).load_images(Split::Test, &[]).unwrap();
    let x = inception_input(&mnist.batch(&[0, 1]).data, 2, 1, 28, 28, FidProtocol::PytorchFid);
    let features = |w| {
        let net = FidInception::from_weights(w, &dev);
        genlab_core::tensors::to_f32_vec(
            net.forward(Tensor::from_data(TensorData::new(x.clone(), [2, 3, 299, 299]), &dev)),
        )
    };
    assert_eq!(features(&a), features(&b));
}
