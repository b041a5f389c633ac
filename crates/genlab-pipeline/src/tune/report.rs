//! The study's `report.md`: what was searched and how, the optimisation history, intermediate
//! values per trial, parameter importances, a parallel-coordinate figure, every trial, and the
//! best trial's experiment.

use super::{state_word, trial_dir, TuneSummary};
use crate::error::{PipelineError, Result};
use genlab_plot::{line_plot, parallel_coordinates, Axis, Series};
use genlab_tune::importance::importances;
use genlab_tune::space::Distribution;
use genlab_tune::study::StudySpec;
use genlab_tune::TrialState;
use std::fmt::Write as _;

pub(super) fn write(s: &TuneSummary, spec: &StudySpec, metric: &str, experiment_text: &str) -> Result<()> {
    let plots = s.study_dir.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| PipelineError::Run(format!("{}: {e}", plots.display())))?;
    let dir = spec.direction;
    let complete: Vec<_> =
        s.trials.iter().filter(|t| t.state == TrialState::Complete && t.value.is_some_and(f64::is_finite)).collect();

    // Optimisation history: each complete trial's value and the best so far.
    let mut best_so_far = vec![];
    let mut best: Option<f64> = None;
    for t in &complete {
        let v = t.value.expect("complete trials have values");
        if best.is_none_or(|b| dir.better(v, b)) {
            best = Some(v);
        }
        best_so_far.push((t.number as f64, best.expect("set above")));
    }
    let values: Vec<(f64, f64)> = complete.iter().map(|t| (t.number as f64, t.value.expect("value"))).collect();
    let history = plots.join("history.png");
    line_plot(
        &history,
        &format!("optimisation history ({} {metric})", dir.as_str().to_lowercase()),
        metric,
        &[Series { name: "trial value", points: values }, Series { name: "best so far", points: best_so_far }],
    )?;
    // x is the trial number here; the shared line plot labels it "step".

    // Intermediate values (what the pruner saw), one line per trial.
    // Complete trials are named in the legend; pruned ones are drawn unnamed, so 48 trials still
    // leave the plot readable.
    let names: Vec<String> = s
        .trials
        .iter()
        .map(|t| if t.state == TrialState::Complete { format!("trial {}", t.number) } else { String::new() })
        .collect();
    let curves: Vec<Series<'_>> = s
        .trials
        .iter()
        .zip(&names)
        .filter(|(t, _)| !t.intermediate.is_empty())
        .take(100)
        .map(|(t, name)| Series { name, points: t.intermediate.iter().map(|(k, v)| (*k as f64, *v)).collect() })
        .collect();
    let intermediate = plots.join("intermediate.png");
    line_plot(&intermediate, &format!("{metric} at each validation (pruned trials unnamed)"), metric, &curves)?;

    // Parallel coordinates over the parameters, then the objective.
    let mut axes: Vec<Axis<'_>> = spec
        .space
        .params
        .iter()
        .map(|(name, d)| {
            let (low, high) = match d {
                Distribution::Float { low, high, .. } => (format!("{low}"), format!("{high}")),
                Distribution::Int { low, high, .. } => (format!("{low}"), format!("{high}")),
                Distribution::Categorical { choices } => {
                    (choices[0].json.to_string(), choices[choices.len() - 1].json.to_string())
                }
            };
            Axis { name: name.rsplit('.').next().unwrap_or(name), low, high }
        })
        .collect();
    let (vlo, vhi) =
        complete.iter().filter_map(|t| t.value).fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    axes.push(Axis { name: metric, low: format!("{vlo:.4}"), high: format!("{vhi:.4}") });
    let mut ranked: Vec<_> = complete.clone();
    ranked.sort_by(|a, b| dir.loss(a.value.expect("value")).total_cmp(&dir.loss(b.value.expect("value"))));
    let lines: Vec<(Vec<f64>, f64)> = ranked
        .iter()
        .enumerate()
        .map(|(rank, t)| {
            let mut pts: Vec<f64> = spec
                .space
                .params
                .iter()
                .map(|(name, d)| t.params.get(name).map_or(0.5, |(x, _)| scaled(d, *x)))
                .collect();
            let v = t.value.expect("value");
            pts.push(if vhi > vlo { (v - vlo) / (vhi - vlo) } else { 0.5 });
            (pts, rank as f64 / (ranked.len().max(2) - 1) as f64)
        })
        .collect();
    let parallel = plots.join("parallel.png");
    parallel_coordinates(&parallel, "parameters of the complete trials (dark: best)", &axes, &lines)?;

    let mut r = String::new();
    let count = |st: TrialState| s.trials.iter().filter(|t| t.state == st).count();
    let _ = writeln!(r, "# Study {}\n", s.study);
    let _ = writeln!(
        r,
        "{} trials: {} complete, {} pruned, {} failed{}. Objective: {} `{metric}`. Sampler: {}. Pruner: {}. Storage: `{}`.\n",
        s.trials.len(),
        count(TrialState::Complete),
        count(TrialState::Pruned),
        count(TrialState::Fail),
        match count(TrialState::Running) + count(TrialState::Waiting) {
            0 => String::new(),
            n => format!(", {n} running or waiting"),
        },
        dir.as_str().to_lowercase(),
        super::sampler_name(spec),
        super::pruner_name(spec),
        s.storage
    );
    match s.best {
        Some((n, v)) => {
            let _ = writeln!(r, "**Best: trial {n}, {metric} = {v}.**");
            if let Some(t) = s.trials.iter().find(|t| t.number == n) {
                for (name, (x, d)) in &t.params {
                    let _ = writeln!(r, "- `{name}` = {}", d.to_external(*x));
                }
            }
            if let Some(p) = &s.best_experiment {
                let _ = writeln!(
                    r,
                    "\nIts experiment, ready to run: [`best.toml`](best.toml) (`genlab run {}`).",
                    p.display()
                );
            }
        }
        None => {
            let _ = writeln!(r, "No trial has completed yet.");
        }
    }
    let _ = writeln!(
        r,
        "\nThe study is an Optuna study (schema {}):\n\n```python\nimport optuna\nstudy = optuna.load_study(study_name=\"{}\", storage=\"{}\")\n```\n",
        genlab_tune::storage::SCHEMA_VERSION,
        s.study,
        s.storage
    );
    let _ = writeln!(r, "## Optimisation history\n\n![history](plots/history.png)\n");
    let _ = writeln!(r, "(x: trial number.)\n");
    let _ = writeln!(r, "## Intermediate values\n\n![intermediate](plots/intermediate.png)\n");
    let _ = writeln!(r, "## Parameter importances\n");
    let imp = importances(&spec.space, &s.trials);
    if imp.is_empty() {
        let _ = writeln!(r, "Fewer than four complete trials: no importances.\n");
    } else {
        let _ = writeln!(
            r,
            "The share of the objective's variance each parameter explains alone over the complete trials (the correlation ratio eta^2 between its quartiles, or its choices, in its own scale), normalised to sum to 1: a simpler method than fANOVA, blind to interactions.\n\n| parameter | importance |\n|---|---|"
        );
        for (name, v) in &imp {
            let _ = writeln!(r, "| `{name}` | {v:.3} |");
        }
        r.push('\n');
    }
    let _ = writeln!(r, "## Parallel coordinates\n\n![parallel](plots/parallel.png)\n");
    let _ = writeln!(r, "## Trials\n\n| trial | state | {metric} | last step | seconds | parameters | run |\n|---|---|---|---|---|---|---|");
    for t in &s.trials {
        let params: Vec<String> = t
            .params
            .iter()
            .map(|(k, (x, d))| format!("{}={}", k.rsplit('.').next().unwrap_or(k), d.to_external(*x)))
            .collect();
        let run = trial_dir(&s.study_dir, t.number);
        let link = if run.is_dir() {
            format!("[trials/trial-{:04}](trials/trial-{:04}/report.md)", t.number, t.number)
        } else {
            "elsewhere".into()
        };
        let again = t.retries().map_or(String::new(), |n| format!(" (trial {n} again)"));
        let _ = writeln!(
            r,
            "| {}{again} | {} | {} | {} | {} | {} | {link} |",
            t.number,
            state_word(t.state),
            t.value.map_or("-".into(), |v| format!("{v:.6}")),
            t.last_step().map_or("-".into(), |(s, _)| s.to_string()),
            t.duration_s().map_or("-".into(), |d| format!("{d:.1}")),
            params.join(", ")
        );
    }
    let _ = writeln!(r, "\n## The experiment file\n\n```toml\n{}\n```", experiment_text.trim_end());
    genlab_core::atomic::write_atomic(&s.study_dir.join("report.md"), r.as_bytes())?;
    Ok(())
}

/// A value's place on its axis, in [0, 1] (log axes in log scale).
fn scaled(d: &Distribution, x: f64) -> f64 {
    let (lo, hi, x) = match *d {
        Distribution::Float { low, high, log: true, .. } => (low.ln(), high.ln(), x.ln()),
        Distribution::Float { low, high, .. } => (low, high, x),
        Distribution::Int { low, high, log: true, .. } => ((low as f64).ln(), (high as f64).ln(), x.ln()),
        Distribution::Int { low, high, .. } => (low as f64, high as f64, x),
        Distribution::Categorical { ref choices } => (0.0, (choices.len() - 1) as f64, x),
    };
    if hi > lo {
        (x - lo) / (hi - lo)
    } else {
        0.5
    }
}
