//! Samplers: where the next trial's parameters come from. Random (uniform in each parameter's
//! own scale, as Optuna's `RandomSampler`), grid (every point of the product of the discrete
//! distributions, each taken once across all workers), and TPE ([`crate::tpe`]). Each trial's
//! draws come from a generator seeded by the study seed and the trial number, so a study with
//! one worker replays exactly.

use crate::error::{Result, TuneError};
use crate::space::{Distribution, SearchSpace};
use crate::tpe::{self, TpeSettings};
use crate::trial::{Direction, Trial};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// `[tune] sampler = { kind = "tpe", ... }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SamplerConfig {
    Random,
    Grid,
    Tpe {
        /// Model the parameters jointly (Optuna's default for one objective) or one by one.
        #[serde(default = "yes")]
        multivariate: bool,
        /// Random trials before the model is used.
        #[serde(default = "ten")]
        startup: usize,
        /// Candidates scored per proposal.
        #[serde(default = "twenty_four")]
        candidates: usize,
        /// Count running trials as bad observations, so parallel workers spread out.
        #[serde(default = "yes")]
        constant_liar: bool,
    },
}

fn yes() -> bool {
    true
}
fn ten() -> usize {
    10
}
fn twenty_four() -> usize {
    24
}

impl Default for SamplerConfig {
    fn default() -> Self {
        let d = TpeSettings::default();
        SamplerConfig::Tpe {
            multivariate: d.multivariate,
            startup: d.startup,
            candidates: d.candidates,
            constant_liar: d.constant_liar,
        }
    }
}

/// What a sampler proposes: the internal values (in the space's order) and the system attributes
/// Optuna's own sampler of that kind records (the grid point).
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub values: Vec<f64>,
    pub system_attrs: Vec<(String, Json)>,
}

/// The generator of trial `number`'s draws.
pub fn trial_rng(seed: u64, number: i64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(number as u64 + 1);
    rng
}

/// A uniform draw in the distribution's own scale (log for log, rounded to the step).
pub fn random_value<R: Rng>(d: &Distribution, rng: &mut R) -> f64 {
    let (low, high, log, step) = match *d {
        Distribution::Categorical { ref choices } => return rng.gen_range(0..choices.len()) as f64,
        Distribution::Float { low, high, log, step } => (low, high, log, step.unwrap_or(0.0)),
        Distribution::Int { low, high, log, step } => (low as f64, high as f64, log, step as f64),
    };
    if low == high {
        return low;
    }
    let (lo, hi) = (low - step / 2.0, high + step / 2.0);
    let x = if log { rng.gen_range(lo.ln()..hi.ln()).exp() } else { rng.gen_range(lo..hi) };
    if step > 0.0 {
        (low + ((x - low) / step).round() * step).clamp(low, high)
    } else {
        x.clamp(low, high)
    }
}

/// The grid of a space whose distributions are all discrete: the values of each parameter, and
/// the number of points. Continuous parameters are refused, naming the key.
pub fn grid_of(space: &SearchSpace) -> Result<(Vec<Vec<f64>>, usize)> {
    let mut size: u128 = 1;
    for (name, d) in &space.params {
        let n = d.grid_len().ok_or_else(|| {
            TuneError::Config(format!(
                "tune.space.{name}: the grid sampler needs discrete values: give it a step, or choices"
            ))
        })?;
        size = size.saturating_mul(n);
    }
    if size > 1_000_000 {
        return Err(TuneError::Config(format!("tune.sampler: the grid has {size} points; at most 1,000,000")));
    }
    let axes = space.params.iter().map(|(_, d)| d.grid().expect("counted as discrete above")).collect();
    Ok((axes, size as usize))
}

/// Grid point `id`, the last parameter varying fastest (`itertools.product` order).
fn grid_point(axes: &[Vec<f64>], mut id: usize) -> Vec<f64> {
    let mut out = vec![0.0; axes.len()];
    for (i, axis) in axes.iter().enumerate().rev() {
        out[i] = axis[id % axis.len()];
        id /= axis.len();
    }
    out
}

/// The grid as Optuna's `GridSampler` records it in each trial (`search_space`).
fn grid_json(space: &SearchSpace, axes: &[Vec<f64>]) -> Json {
    let mut m = serde_json::Map::new();
    for ((name, d), axis) in space.params.iter().zip(axes) {
        m.insert(name.clone(), Json::Array(axis.iter().map(|&x| d.to_external(x)).collect()));
    }
    Json::Object(m)
}

/// The next trial's parameters, or `None` when the grid is exhausted.
pub fn propose(
    cfg: &SamplerConfig,
    space: &SearchSpace,
    trials: &[Trial],
    direction: Direction,
    seed: u64,
    number: i64,
) -> Result<Option<Proposal>> {
    let mut rng = trial_rng(seed, number);
    let random = |rng: &mut ChaCha8Rng| space.params.iter().map(|(_, d)| random_value(d, rng)).collect::<Vec<f64>>();
    match *cfg {
        SamplerConfig::Random => Ok(Some(Proposal { values: random(&mut rng), system_attrs: vec![] })),
        SamplerConfig::Grid => {
            let (axes, size) = grid_of(space)?;
            let grid = grid_json(space, &axes);
            // A point is taken once any trial holds it, failed ones included (as Optuna's
            // GridSampler counts them): a dead worker's point runs again through its re-queued
            // copy, which carries the same grid id, and a point that fails is not retried forever.
            let mut taken = vec![false; size];
            for t in trials {
                if t.system_attrs.get("search_space") != Some(&grid) {
                    continue;
                }
                if let Some(id) = t.system_attrs.get("grid_id").and_then(Json::as_u64).filter(|&i| (i as usize) < size)
                {
                    taken[id as usize] = true;
                }
            }
            let free: Vec<usize> = (0..size).filter(|&i| !taken[i]).collect();
            let Some(&id) = free.choose(&mut rng) else { return Ok(None) };
            Ok(Some(Proposal {
                values: grid_point(&axes, id),
                system_attrs: vec![("search_space".into(), grid), ("grid_id".into(), Json::from(id))],
            }))
        }
        SamplerConfig::Tpe { multivariate, startup, candidates, constant_liar } => {
            let settings = TpeSettings { multivariate, startup, candidates, constant_liar, ..TpeSettings::default() };
            // A parameter with one possible value is that value (Optuna's `single()`).
            let free: Vec<usize> = (0..space.params.len()).filter(|&i| !is_single(&space.params[i].1)).collect();
            let names: Vec<&str> = free.iter().map(|&i| space.params[i].0.as_str()).collect();
            let dists: Vec<&Distribution> = free.iter().map(|&i| &space.params[i].1).collect();
            let mut values = random(&mut rng);
            if let Some(v) = tpe::propose(&settings, &names, &dists, trials, direction, &mut rng) {
                for (k, &i) in free.iter().enumerate() {
                    values[i] = v[k];
                }
            }
            Ok(Some(Proposal { values, system_attrs: vec![] }))
        }
    }
}

fn is_single(d: &Distribution) -> bool {
    match *d {
        Distribution::Float { low, high, .. } => low == high,
        Distribution::Int { low, high, .. } => low == high,
        Distribution::Categorical { ref choices } => choices.len() == 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trial::TrialState;

    fn space(text: &str) -> SearchSpace {
        SearchSpace::from_toml(&text.parse::<toml::Table>().expect("toml")).expect("space")
    }

    #[test]
    fn random_draws_stay_in_their_distributions_and_replay() {
        let s = space("a = { float = [1e-4, 1e-1], log = true }\nb = { int = [8, 64], step = 8 }\nc = { choices = [1, 2, 3] }\nd = { float = [0, 1], step = 0.25 }");
        let mut seen_low_decade = 0;
        for n in 0..2000 {
            let p = propose(&SamplerConfig::Random, &s, &[], Direction::Minimize, 7, n).expect("ok").expect("some");
            for ((_, d), &x) in s.params.iter().zip(&p.values) {
                assert!(
                    d.contains(x) || matches!(d, Distribution::Float { step: None, .. }) && (1e-4..=1e-1).contains(&x),
                    "{d:?} {x}"
                );
            }
            seen_low_decade += usize::from(p.values[0] < 1e-3);
            let again = propose(&SamplerConfig::Random, &s, &[], Direction::Minimize, 7, n).expect("ok").expect("some");
            assert_eq!(p, again);
        }
        // Log-uniform over three decades: a third of the draws in the lowest.
        assert!((550..780).contains(&seen_low_decade), "{seen_low_decade}");
    }

    /// TPE, univariate and multivariate, finds Branin's minimum closer than random search in 60
    /// trials, over 8 seeds (the benchmark's in miniature; BENCHMARKS.md has the full table).
    #[test]
    fn tpe_beats_random_search_on_branin() {
        use crate::benchmarks::Benchmark;
        let space = Benchmark::Branin.space();
        let run = |cfg: &SamplerConfig, seed: u64| -> f64 {
            let mut trials: Vec<Trial> = vec![];
            for n in 0..60 {
                let p = propose(cfg, &space, &trials, Direction::Minimize, seed, n).expect("ok").expect("some");
                let value = Benchmark::Branin.value(&p.values);
                trials.push(Trial {
                    id: n,
                    number: n,
                    state: TrialState::Complete,
                    params: space
                        .params
                        .iter()
                        .zip(&p.values)
                        .map(|((k, d), &x)| (k.clone(), (x, d.clone())))
                        .collect(),
                    value: Some(value),
                    intermediate: Default::default(),
                    system_attrs: Default::default(),
                    user_attrs: Default::default(),
                    started: None,
                    completed: None,
                });
            }
            trials.iter().filter_map(|t| t.value).fold(f64::INFINITY, f64::min) - Benchmark::Branin.minimum()
        };
        let mean = |cfg: SamplerConfig| (0..8).map(|s| run(&cfg, s)).sum::<f64>() / 8.0;
        let random = mean(SamplerConfig::Random);
        for multivariate in [true, false] {
            let tpe = mean(SamplerConfig::Tpe { multivariate, startup: 10, candidates: 24, constant_liar: true });
            assert!(tpe < 0.5 * random, "multivariate {multivariate}: TPE gap {tpe} vs random {random}");
        }
    }

    #[test]
    fn grid_points_are_each_taken_once() {
        let s = space("a = { int = [1, 3] }\nb = { choices = [\"x\", \"y\"] }");
        let mut trials: Vec<Trial> = vec![];
        let mut points = std::collections::BTreeSet::new();
        for n in 0..6 {
            let p = propose(&SamplerConfig::Grid, &s, &trials, Direction::Minimize, 0, n)
                .expect("ok")
                .expect("a free point");
            assert!(points.insert(format!("{:?}", p.values)), "{:?} twice", p.values);
            trials.push(Trial {
                id: n,
                number: n,
                state: TrialState::Running,
                params: Default::default(),
                value: None,
                intermediate: Default::default(),
                system_attrs: p.system_attrs.into_iter().collect(),
                user_attrs: Default::default(),
                started: None,
                completed: None,
            });
        }
        assert_eq!(propose(&SamplerConfig::Grid, &s, &trials, Direction::Minimize, 0, 6).expect("ok"), None);
        // A failed trial keeps its point: the grid ends rather than retrying a failing point.
        trials[2].state = TrialState::Fail;
        assert_eq!(propose(&SamplerConfig::Grid, &s, &trials, Direction::Minimize, 0, 6).expect("ok"), None);
        let e = grid_of(&space("x = { float = [0, 1] }")).expect_err("continuous").to_string();
        assert!(e.contains("tune.space.x"), "{e}");
    }
}
