//! Parity with the reference implementations, on fixtures made once by `fixtures/make_fixtures.py`
//! (pytorch-fid 0.3.0 with SciPy's sqrtm, torch-fidelity 0.4.0, prdc 0.2).

use genlab_eval::fid::fid;
use genlab_eval::inception_score::inception_score;
use genlab_eval::kid::{kid, KidConfig};
use genlab_eval::prdc::prdc;
use genlab_eval::Features;
use serde_json::Value;

fn fixtures() -> Value {
    serde_json::from_str(include_str!("fixtures/metrics.json")).expect("fixture should parse")
}

fn features(v: &Value) -> Features {
    let rows = v.as_array().unwrap();
    let dim = rows[0].as_array().unwrap().len();
    let data: Vec<f64> = rows.iter().flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap())).collect();
    Features::new(data, rows.len(), dim)
}

fn close(got: f64, want: f64, rel: f64, what: &str) {
    assert!((got - want).abs() <= rel * want.abs().max(1e-12), "{what}: genlab {got} vs reference {want}");
}

#[test]
fn fid_matches_pytorch_fid() {
    let f = fixtures();
    close(fid(&features(&f["a"]), &features(&f["b"])).unwrap(), f["fid"].as_f64().unwrap(), 1e-6, "FID");
    // FID of a set with itself is 0 (up to rounding), and FID is symmetric.
    let a = features(&f["a"]);
    assert!(fid(&a, &a).unwrap().abs() < 1e-9);
    close(fid(&features(&f["b"]), &a).unwrap(), f["fid"].as_f64().unwrap(), 1e-6, "FID(b, a)");
}

#[test]
fn kid_matches_torch_fidelity_subset_for_subset() {
    let f = fixtures();
    let (a, b) = (features(&f["a"]), features(&f["b"]));
    let k = kid(&a, &b, &KidConfig { subsets: 10, subset_size: 50, ..Default::default() }).unwrap();
    let want = &f["kid_subsets10_size50"];
    close(k.mean, want["kernel_inception_distance_mean"].as_f64().unwrap(), 1e-9, "KID mean");
    close(k.std, want["kernel_inception_distance_std"].as_f64().unwrap(), 1e-9, "KID std");
    let k = kid(&a, &b, &KidConfig { subsets: 1, subset_size: 300, ..Default::default() }).unwrap();
    close(
        k.mean,
        f["kid_one_full_subset"]["kernel_inception_distance_mean"].as_f64().unwrap(),
        1e-9,
        "KID, one full subset",
    );
}

#[test]
fn inception_score_matches_torch_fidelity() {
    let f = fixtures();
    let logits = features(&f["logits"]);
    for (seed, key) in [(Some(2020), "isc_shuffled"), (None, "isc_ordered")] {
        let s = inception_score(&logits, 10, seed).unwrap();
        close(s.mean, f[key]["inception_score_mean"].as_f64().unwrap(), 1e-9, key);
        close(s.std, f[key]["inception_score_std"].as_f64().unwrap(), 1e-9, key);
    }
}

#[test]
fn precision_recall_density_coverage_match_prdc() {
    let f = fixtures();
    let p = prdc(&features(&f["a"]), &features(&f["b"]), 3).unwrap();
    let want = &f["prdc_k3"];
    close(p.precision, want["precision"].as_f64().unwrap(), 1e-12, "precision");
    close(p.recall, want["recall"].as_f64().unwrap(), 1e-12, "recall");
    close(p.density, want["density"].as_f64().unwrap(), 1e-12, "density");
    close(p.coverage, want["coverage"].as_f64().unwrap(), 1e-12, "coverage");
}

#[test]
fn too_few_samples_is_a_clear_error() {
    let one = Features::new(vec![1.0, 2.0], 1, 2);
    assert_eq!(fid(&one, &one).unwrap_err().to_string(), "FID: needs at least 2 samples, got 1");
    let f = fixtures();
    let e = kid(&features(&f["a"]), &features(&f["b"]), &KidConfig::default()).unwrap_err().to_string();
    assert_eq!(e, "KID: needs at least 1000 samples, got 300");
    let e = fid(&features(&f["a"]), &Features::new(vec![0.0; 6], 2, 3)).unwrap_err().to_string();
    assert!(e.contains("dimensions differ (16 vs 3)"), "{e}");
}

/// clean-fid's resize: Pillow's BICUBIC on float32 planes (fixtures/make_resize_fixture.py).
#[test]
fn clean_resize_matches_pillow() {
    use genlab_eval::preprocess::resize_bicubic_pil;
    let cases: Value = serde_json::from_str(include_str!("fixtures/resize.json")).unwrap();
    for c in cases.as_array().unwrap() {
        let n = |k: &str| c[k].as_u64().unwrap() as usize;
        let v = |k: &str| -> Vec<f32> { c[k].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect() };
        let got = resize_bicubic_pil(&v("src"), n("h"), n("w"), n("oh"), n("ow"));
        let want = v("out");
        let max = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0f32, f32::max);
        assert!(max <= 1e-4, "{}x{} -> {}x{}: max |diff| {max}", n("h"), n("w"), n("oh"), n("ow"));
    }
}
