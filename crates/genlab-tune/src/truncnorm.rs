//! The truncated normal distribution in standardised bounds `[a, b]`, in log space where tails
//! need it: what the Parzen estimators of TPE sample from and score with. The same quantities as
//! Optuna's `samplers/_tpe/_truncnorm.py` (itself SciPy's `truncnorm`), checked against it.

use std::f64::consts::{PI, SQRT_2};

/// log(sqrt(2 pi)).
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// The standard normal CDF.
pub fn ndtr(x: f64) -> f64 {
    0.5 * libm::erfc(-x / SQRT_2)
}

/// log of the standard normal CDF, accurate in both tails.
pub fn log_ndtr(x: f64) -> f64 {
    if x > 6.0 {
        // 1 - tiny: log1p of the upper tail.
        (-ndtr(-x)).ln_1p()
    } else if x > -20.0 {
        ndtr(x).ln()
    } else {
        // The asymptotic series of Mills' ratio.
        let x2 = x * x;
        let series = 1.0 - 1.0 / x2 + 3.0 / (x2 * x2) - 15.0 / (x2 * x2 * x2);
        -0.5 * x2 - (-x).ln() - LN_SQRT_2PI + series.ln()
    }
}

/// log(exp(a) - exp(b)) for a >= b.
fn log_diff(a: f64, b: f64) -> f64 {
    if b == f64::NEG_INFINITY {
        return a;
    }
    a + (-(b - a).exp()).ln_1p()
}

fn log_add(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// log(Phi(b) - Phi(a)), the normal mass between `a <= b`.
pub fn log_gauss_mass(a: f64, b: f64) -> f64 {
    if b <= 0.0 {
        log_diff(log_ndtr(b), log_ndtr(a))
    } else if a > 0.0 {
        log_diff(log_ndtr(-a), log_ndtr(-b))
    } else {
        // The mass straddles 0: one minus both tails, each at most one half.
        (-ndtr(a) - ndtr(-b)).ln_1p()
    }
}

/// The inverse of the standard normal CDF at exp(`log_p`): Acklam's rational approximation, then
/// Newton steps on log Phi(x) = log_p, which stay accurate far into the lower tail.
pub fn ndtri_exp(log_p: f64) -> f64 {
    if log_p >= 0.0 {
        return f64::INFINITY;
    }
    if log_p == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    let p = log_p.exp();
    let mut x = if p > 1e-300 { acklam(p) } else { -(-2.0 * log_p - (-2.0 * log_p).ln() - (2.0 * PI).ln()).sqrt() };
    for _ in 0..4 {
        let f = log_ndtr(x) - log_p;
        // d/dx log Phi(x) = phi(x) / Phi(x).
        let slope = (-0.5 * x * x - LN_SQRT_2PI - log_ndtr(x)).exp();
        if !slope.is_finite() || slope == 0.0 {
            break;
        }
        let next = x - f / slope;
        if !next.is_finite() {
            break;
        }
        x = next;
    }
    x
}

/// Acklam's approximation of the normal quantile (relative error 1.15e-9).
fn acklam(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] =
        [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let low = 0.02425;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -acklam(1.0 - p)
    }
}

/// The quantile `q` in [0, 1) of the standard normal truncated to [a, b].
pub fn ppf(q: f64, a: f64, b: f64) -> f64 {
    let log_mass = log_gauss_mass(a, b);
    let x = if a < 0.0 {
        ndtri_exp(log_add(log_ndtr(a), q.ln() + log_mass))
    } else {
        -ndtri_exp(log_add(log_ndtr(-b), (-q).ln_1p() + log_mass))
    };
    x.clamp(a, b)
}

/// log density at `x` of N(loc, scale) truncated to [loc + a scale, loc + b scale].
pub fn logpdf(x: f64, a: f64, b: f64, loc: f64, scale: f64) -> f64 {
    let z = (x - loc) / scale;
    if z < a || z > b {
        return f64::NEG_INFINITY;
    }
    -0.5 * z * z - LN_SQRT_2PI - log_gauss_mass(a, b) - scale.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_and_quantile_invert() {
        for &x in &[-30.0, -12.0, -5.0, -1.0, 0.0, 0.5, 3.0, 7.5] {
            let back = ndtri_exp(log_ndtr(x));
            assert!((back - x).abs() < 1e-9 * x.abs().max(1.0), "{x} -> {back}");
        }
        assert!((ndtr(1.959963984540054) - 0.975).abs() < 1e-15);
    }

    #[test]
    fn mass_matches_closed_forms() {
        // Phi(1) - Phi(-1) = erf(1 / sqrt 2).
        assert!((log_gauss_mass(-1.0, 1.0).exp() - libm::erf(1.0 / SQRT_2)).abs() < 1e-15);
        // Far tail: Phi(-40) - Phi(-41) ~ phi(40)/40 to leading order; both in log space.
        let m = log_gauss_mass(-41.0, -40.0);
        assert!((m - log_ndtr(-40.0)).abs() < 1e-10, "{m}");
        // The density integrates to one (trapezoid on a fine grid).
        let (a, b, loc, scale) = (-0.3, 2.2, 0.7, 1.9);
        let n = 200_000;
        let (lo, hi) = (loc + a * scale, loc + b * scale);
        let h = (hi - lo) / n as f64;
        let total: f64 = (0..=n)
            .map(|i| {
                let w = if i == 0 || i == n { 0.5 } else { 1.0 };
                w * logpdf(lo + i as f64 * h, a, b, loc, scale).exp()
            })
            .sum::<f64>()
            * h;
        assert!((total - 1.0).abs() < 1e-8, "{total}");
    }

    #[test]
    fn quantiles_land_in_the_bounds_and_invert_the_cdf() {
        for &(a, b) in &[(-1.0, 1.0), (2.0, 9.0), (-9.0, -3.0), (-0.1, 40.0)] {
            for &q in &[0.0, 0.1, 0.5, 0.9, 0.999] {
                let x: f64 = ppf(q, a, b);
                assert!(x >= a && x <= b, "{a} {b} {q} -> {x}");
                let cdf = (log_gauss_mass(a, x) - log_gauss_mass(a, b)).exp();
                assert!((cdf - q).abs() < 1e-9, "{a} {b} {q}: cdf {cdf}");
            }
        }
    }
}
