//! Parameter importances by a simpler method than fANOVA, stated in the report: for each
//! parameter alone, the share of the objective's variance between groups of trials (its choices,
//! or the quartiles of a number, in its own scale) — the correlation ratio eta^2 — normalised to
//! sum to one over the parameters.

use crate::space::{Distribution, SearchSpace};
use crate::trial::{Trial, TrialState};

/// (parameter, importance) in decreasing order; empty with fewer than four complete trials.
pub fn importances(space: &SearchSpace, trials: &[Trial]) -> Vec<(String, f64)> {
    let done: Vec<&Trial> =
        trials.iter().filter(|t| t.state == TrialState::Complete && t.value.is_some_and(f64::is_finite)).collect();
    if done.len() < 4 {
        return vec![];
    }
    let mut out: Vec<(String, f64)> = space
        .params
        .iter()
        .filter_map(|(name, d)| {
            let pairs: Vec<(f64, f64)> = done.iter().filter_map(|t| Some((t.params.get(name)?.0, t.value?))).collect();
            (pairs.len() >= 4).then(|| (name.clone(), eta_squared(&pairs, d)))
        })
        .collect();
    let total: f64 = out.iter().map(|(_, v)| v).sum();
    if total > 0.0 {
        out.iter_mut().for_each(|(_, v)| *v /= total);
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

/// Between-group variance over total variance of `(parameter, objective)` pairs.
fn eta_squared(pairs: &[(f64, f64)], d: &Distribution) -> f64 {
    let group = |x: f64| -> usize {
        match d {
            Distribution::Categorical { .. } => x as usize,
            _ => {
                let key = |v: f64| {
                    if matches!(d, Distribution::Float { log: true, .. } | Distribution::Int { log: true, .. }) {
                        v.ln()
                    } else {
                        v
                    }
                };
                let mut xs: Vec<f64> = pairs.iter().map(|p| key(p.0)).collect();
                xs.sort_by(f64::total_cmp);
                let q = |f: f64| xs[((xs.len() - 1) as f64 * f).round() as usize];
                let k = key(x);
                [q(0.25), q(0.5), q(0.75)].iter().filter(|&&c| k > c).count()
            }
        }
    };
    let mean = pairs.iter().map(|p| p.1).sum::<f64>() / pairs.len() as f64;
    let total: f64 = pairs.iter().map(|p| (p.1 - mean).powi(2)).sum();
    if total == 0.0 {
        return 0.0;
    }
    let mut groups: std::collections::BTreeMap<usize, (f64, usize)> = Default::default();
    for &(x, y) in pairs {
        let g = groups.entry(group(x)).or_default();
        g.0 += y;
        g.1 += 1;
    }
    let between: f64 = groups.values().map(|&(s, n)| n as f64 * (s / n as f64 - mean).powi(2)).sum();
    between / total
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_parameter_the_objective_follows_comes_first() {
        let space = SearchSpace {
            params: vec![
                ("a".into(), Distribution::Float { low: 0.0, high: 1.0, log: false, step: None }),
                ("b".into(), Distribution::Float { low: 0.0, high: 1.0, log: false, step: None }),
            ],
        };
        let trials: Vec<Trial> = (0..40)
            .map(|i| {
                let a = (i as f64 * 0.37).fract();
                let b = (i as f64 * 0.61).fract();
                Trial {
                    id: i,
                    number: i,
                    state: TrialState::Complete,
                    params: [
                        ("a".to_string(), (a, space.params[0].1.clone())),
                        ("b".to_string(), (b, space.params[1].1.clone())),
                    ]
                    .into(),
                    value: Some(10.0 * a + 0.1 * b),
                    intermediate: BTreeMap::new(),
                    system_attrs: BTreeMap::new(),
                    user_attrs: BTreeMap::new(),
                    started: None,
                    completed: None,
                }
            })
            .collect();
        let imp = importances(&space, &trials);
        assert_eq!(imp[0].0, "a");
        assert!(imp[0].1 > 0.9, "{imp:?}");
        assert!((imp.iter().map(|p| p.1).sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
