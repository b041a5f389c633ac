use super::*;
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/accountant.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("the committed fixture")).expect("JSON")
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"))
}

#[test]
fn orders_are_opacus_defaults() {
    let want: Vec<f64> = fixture()["orders"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(default_orders(), want);
}

/// Epsilon and the order that gives it equal Opacus's `RDPAccountant` on 1,080 settings of
/// sampling rate, noise multiplier, steps and delta, to 1e-6 relative.
#[test]
fn epsilon_matches_opacus_on_the_grid() {
    let fx = fixture();
    let grid = fx["grid"].as_array().unwrap();
    assert!(grid.len() >= 1000);
    let mut worst: f64 = 0.0;
    for case in grid {
        let got = epsilon_after(
            f(case, "noise_multiplier"),
            f(case, "sample_rate"),
            case["steps"].as_u64().unwrap(),
            f(case, "delta"),
        );
        let want = f(case, "epsilon");
        let rel = (got - want).abs() / want.abs().max(1e-300);
        worst = worst.max(rel);
        assert!(rel <= 1e-6, "{case}: genlab {got}, Opacus {want}, relative difference {rel:.2e}");
        let orders = default_orders();
        let acc = RdpAccountant {
            history: vec![Phase {
                noise_multiplier: f(case, "noise_multiplier"),
                sample_rate: f(case, "sample_rate"),
                steps: case["steps"].as_u64().unwrap(),
            }],
        };
        let (_, order) = epsilon_from_rdp(&orders, &acc.rdp(&orders), f(case, "delta"));
        assert_eq!(order, f(case, "order"), "{case}");
    }
    eprintln!("largest relative difference from Opacus: {worst:.2e}");
}

#[test]
fn phases_add_up_as_in_opacus() {
    for case in fixture()["histories"].as_array().unwrap() {
        let history: Vec<Phase> = serde_json::from_value(case["history"].clone()).unwrap();
        let got = RdpAccountant { history }.epsilon(f(case, "delta"));
        let want = f(case, "epsilon");
        assert!((got - want).abs() <= 1e-6 * want, "{case}: {got} vs {want}");
    }
}

/// Steps recorded one by one merge into phases as Opacus's `step` does, and spend what the
/// phases spend.
#[test]
fn steps_merge_into_phases() {
    let mut acc = RdpAccountant::default();
    assert_eq!(acc.epsilon(1e-5), 0.0);
    for _ in 0..300 {
        acc.step(1.0, 0.01);
    }
    for _ in 0..20 {
        acc.step(2.0, 0.01);
    }
    assert_eq!(
        acc.history,
        vec![
            Phase { noise_multiplier: 1.0, sample_rate: 0.01, steps: 300 },
            Phase { noise_multiplier: 2.0, sample_rate: 0.01, steps: 20 },
        ]
    );
    assert_eq!(acc.steps(), 320);
    assert!(acc.epsilon(1e-5) > epsilon_after(1.0, 0.01, 300, 1e-5));
}

/// The noise multiplier for a target epsilon is Opacus's `get_noise_multiplier`'s (the same
/// search, so the same bisection point), and spends at most the target, within the tolerance.
#[test]
fn calibration_matches_get_noise_multiplier() {
    for case in fixture()["calibrations"].as_array().unwrap() {
        let (target, delta, q, steps, tol) = (
            f(case, "target_epsilon"),
            f(case, "delta"),
            f(case, "sample_rate"),
            case["steps"].as_u64().unwrap(),
            f(case, "tolerance"),
        );
        let got = noise_multiplier_for(target, delta, q, steps, tol).expect("reachable");
        let want = f(case, "noise_multiplier");
        assert!((got - want).abs() <= 1e-9 * want, "{case}: genlab {got}, Opacus {want}");
        let spent = epsilon_after(got, q, steps, delta);
        assert!(spent <= target && spent >= target - tol, "{case}: spends {spent}");
    }
    for case in fixture()["unreachable"].as_array().unwrap() {
        let got = noise_multiplier_for(
            f(case, "target_epsilon"),
            f(case, "delta"),
            f(case, "sample_rate"),
            case["steps"].as_u64().unwrap(),
            0.01,
        );
        assert_eq!(got, None, "{case}");
    }
}

/// log erfc against a float64 reference where it matters: erfc's values at the switch to the
/// asymptotic series (both sides agree) and a known value, erfc(1) = 0.157299207050285.
#[test]
fn log_erfc_is_continuous_and_right() {
    assert!((log_erfc(1.0) - 0.157_299_207_050_285_13f64.ln()).abs() < 1e-14);
    let below = libm::erfc(19.999_999).ln();
    let above = log_erfc(20.000_001);
    let slope = -(2.0 * 20.0 + 1.0 / 20.0 - 1.0 / 8000.0); // d/dx log erfc(x) ~ -(2x + 1/x - 1/x^3)
    assert!((above - below - slope * 2e-6).abs() < 1e-9, "{below} {above}");
}
