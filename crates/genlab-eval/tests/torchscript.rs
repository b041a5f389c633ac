//! The TorchScript reader on an archive written by `torch.jit.save` (fixtures/tiny.pt, made by
//! fixtures/make_torchscript_fixture.py) and on the FID Inception weights.

use genlab_eval::torchscript::read_torchscript;
use std::path::Path;

#[test]
fn reads_every_tensor_of_a_torchscript_archive() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let got = read_torchscript(&dir.join("tiny.pt")).unwrap();
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tiny.json")).unwrap()).unwrap();
    let want = want.as_object().unwrap();
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (name, t) in &got {
        let w = &want[name];
        let shape: Vec<usize> = w["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let data: Vec<f32> = w["data"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!((&t.shape, &t.data), (&shape, &data), "{name}");
    }
}

#[test]
fn a_file_that_is_not_an_archive_is_named() {
    let d = std::env::temp_dir().join(format!("genlab-ts-{}", std::process::id()));
    std::fs::write(&d, b"not a zip").unwrap();
    let e = read_torchscript(&d).unwrap_err().to_string();
    assert!(e.contains(&d.display().to_string()) && e.contains("not a TorchScript zip archive"), "{e}");
    std::fs::remove_file(&d).unwrap();
}

/// Needs the real file: `.ci/run` fetches it with scripts/fetch-fid-inception.sh.
#[test]
fn fid_inception_weights_have_the_documented_size() {
    use genlab_eval::weights::{load_fid_inception, weights_dir, FID_INCEPTION_FILE};
    let path = weights_dir().join(FID_INCEPTION_FILE);
    let t = load_fid_inception(&path).unwrap_or_else(|e| panic!("{e}"));
    let first = &t["net.layers.conv.weight"];
    assert_eq!(first.shape, vec![32, 3, 3, 3]);
    // Another TorchScript file is refused with the counts named.
    let tiny = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny.pt");
    let e = load_fid_inception(&tiny).unwrap_err().to_string();
    assert!(e.contains("tiny.pt") && e.contains("376 tensors") && e.contains("found 5 tensors"), "{e}");
    let e = load_fid_inception(std::path::Path::new("/nonexistent/w.pt")).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/w.pt") && e.contains("fetch-fid-inception.sh"), "{e}");
}
