//! The search space: one distribution per experiment key path, as Optuna's `FloatDistribution`,
//! `IntDistribution` and `CategoricalDistribution` (same fields, same JSON in the study database,
//! same internal representation: the value for numbers, the choice's index for categories).

use crate::error::{Result, TuneError};
use serde_json::Value as Json;
use std::fmt::Write as _;

/// One parameter's distribution.
#[derive(Debug, Clone, PartialEq)]
pub enum Distribution {
    Float { low: f64, high: f64, log: bool, step: Option<f64> },
    Int { low: i64, high: i64, log: bool, step: i64 },
    Categorical { choices: Vec<Choice> },
}

/// A categorical choice: what Optuna stores (`null`, a bool, a number or a string), and the value
/// the experiment file gets. An array or table is stored as its TOML text, since Optuna's choices
/// are scalars.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub json: Json,
    pub toml: toml::Value,
}

impl Choice {
    pub fn from_toml(v: &toml::Value) -> Choice {
        let json = match v {
            toml::Value::String(s) => Json::String(s.clone()),
            toml::Value::Integer(i) => Json::from(*i),
            toml::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
            toml::Value::Boolean(b) => Json::Bool(*b),
            other => Json::String(toml_text(other)),
        };
        Choice { json, toml: v.clone() }
    }

    /// A choice read back from a study Optuna wrote (scalars only).
    fn from_json(j: &Json) -> Choice {
        let toml = match j {
            Json::Bool(b) => toml::Value::Boolean(*b),
            Json::Number(n) => {
                n.as_i64().map_or(toml::Value::Float(n.as_f64().unwrap_or(f64::NAN)), toml::Value::Integer)
            }
            Json::String(s) => toml::Value::String(s.clone()),
            other => toml::Value::String(other.to_string()),
        };
        Choice { json: j.clone(), toml }
    }
}

/// A TOML value as it is written on the right of `key = `.
pub fn toml_text(v: &toml::Value) -> String {
    match v {
        toml::Value::Float(f) => float_text(*f),
        other => other.to_string(),
    }
}

/// A float that reads back as a float in TOML and JSON (`1.0`, not `1`), shortest round trip.
pub fn float_text(f: f64) -> String {
    let s = format!("{f:?}");
    if s.contains(['.', 'e', 'E', 'n', 'i']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// The search space, in the order of its key paths.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchSpace {
    pub params: Vec<(String, Distribution)>,
}

impl SearchSpace {
    /// Reads `[tune.space]`: `"key.path" = { float = [low, high], log = true, step = 0.1 }`,
    /// `{ int = [low, high], step = 2 }` or `{ choices = [...] }`. Errors name `tune.space.KEY`.
    pub fn from_toml(table: &toml::Table) -> std::result::Result<SearchSpace, (String, String)> {
        let mut params = vec![];
        for (name, spec) in table {
            let key = format!("tune.space.{name}");
            let d = Distribution::from_toml(spec).map_err(|m| (key.clone(), m))?;
            params.push((name.clone(), d));
        }
        Ok(SearchSpace { params })
    }

    pub fn get(&self, name: &str) -> Option<&Distribution> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, d)| d)
    }

    /// `{"name": distribution JSON, ...}`, as genlab records the space in the study.
    pub fn to_json(&self) -> String {
        let parts: Vec<String> =
            self.params.iter().map(|(n, d)| format!("{}: {}", Json::String(n.clone()), d.to_json())).collect();
        format!("{{{}}}", parts.join(", "))
    }
}

fn number(v: &toml::Value) -> Option<f64> {
    v.as_float().or_else(|| v.as_integer().map(|i| i as f64))
}

impl Distribution {
    fn from_toml(spec: &toml::Value) -> std::result::Result<Distribution, String> {
        let t = spec.as_table().ok_or_else(|| {
            format!(" = {spec}: expected {{ float = [low, high] }}, {{ int = [low, high] }} or {{ choices = [...] }}")
        })?;
        let allowed: &[&str] = if t.contains_key("choices") { &["choices"] } else { &["float", "int", "log", "step"] };
        if let Some(k) = t.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!(".{k}: unknown field, expected one of {}", allowed.join(", ")));
        }
        let log = match t.get("log") {
            None => false,
            Some(v) => v.as_bool().ok_or_else(|| format!(".log = {v}: expected true or false"))?,
        };
        let pair = |k: &str| -> std::result::Result<Option<(toml::Value, toml::Value)>, String> {
            let Some(v) = t.get(k) else { return Ok(None) };
            match v.as_array().map(Vec::as_slice) {
                Some([a, b]) => Ok(Some((a.clone(), b.clone()))),
                _ => Err(format!(".{k} = {v}: expected [low, high]")),
            }
        };
        if let Some(choices) = t.get("choices") {
            let list = choices.as_array().ok_or_else(|| format!(".choices = {choices}: expected a list"))?;
            if list.is_empty() {
                return Err(".choices = []: expected at least one choice".into());
            }
            let choices: Vec<Choice> = list.iter().map(Choice::from_toml).collect();
            for (i, c) in choices.iter().enumerate() {
                if choices[..i].iter().any(|d| d.json == c.json) {
                    return Err(format!(".choices: {} is listed twice", c.json));
                }
            }
            return Ok(Distribution::Categorical { choices });
        }
        let d = match (pair("float")?, pair("int")?) {
            (Some((a, b)), None) => {
                let (low, high) = match (number(&a), number(&b)) {
                    (Some(l), Some(h)) if l.is_finite() && h.is_finite() => (l, h),
                    _ => return Err(format!(".float = [{a}, {b}]: expected two finite numbers")),
                };
                let step = match t.get("step") {
                    None => None,
                    Some(s) => Some(
                        number(s).filter(|s| *s > 0.0).ok_or_else(|| format!(".step = {s}: expected a number > 0"))?,
                    ),
                };
                // As Optuna: a range that is not a whole number of steps ends at the last step.
                let high = match step {
                    Some(q) if !log => low + ((high - low) / q + 1e-9).floor() * q,
                    _ => high,
                };
                Distribution::Float { low, high, log, step }
            }
            (None, Some((a, b))) => {
                let (low, high) = match (a.as_integer(), b.as_integer()) {
                    (Some(l), Some(h)) => (l, h),
                    _ => return Err(format!(".int = [{a}, {b}]: expected two integers")),
                };
                let step = match t.get("step") {
                    None => 1,
                    Some(s) => s
                        .as_integer()
                        .filter(|s| *s > 0)
                        .ok_or_else(|| format!(".step = {s}: expected an integer > 0"))?,
                };
                let high = if high >= low { low + (high - low) / step * step } else { high };
                Distribution::Int { low, high, log, step }
            }
            (Some(_), Some(_)) => return Err(": give one of float = [...] or int = [...], not both".into()),
            (None, None) => return Err(": expected float = [low, high], int = [low, high] or choices = [...]".into()),
        };
        d.check().map(|()| d)
    }

    /// Optuna's own checks: `low <= high`, a log scale needs `low > 0` and no step (int: step 1).
    pub fn check(&self) -> std::result::Result<(), String> {
        let (low, high, log, has_step) = match *self {
            Distribution::Float { low, high, log, step } => (low, high, log, step.is_some()),
            Distribution::Int { low, high, log, step } => (low as f64, high as f64, log, step != 1),
            Distribution::Categorical { .. } => return Ok(()),
        };
        if low > high {
            return Err(format!(": low = {low} > high = {high}: expected low <= high"));
        }
        if log && low <= 0.0 {
            return Err(format!(": log = true with low = {low}: a log scale needs low > 0"));
        }
        if log && has_step {
            return Err(": log = true with a step: a log scale takes no step".into());
        }
        Ok(())
    }

    /// Optuna's `distribution_json`.
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        match self {
            Distribution::Float { low, high, log, step } => {
                let step = step.map_or("null".into(), float_text);
                let _ = write!(
                    s,
                    r#"{{"name": "FloatDistribution", "attributes": {{"step": {step}, "low": {}, "high": {}, "log": {log}}}}}"#,
                    float_text(*low),
                    float_text(*high)
                );
            }
            Distribution::Int { low, high, log, step } => {
                let _ = write!(
                    s,
                    r#"{{"name": "IntDistribution", "attributes": {{"log": {log}, "step": {step}, "low": {low}, "high": {high}}}}}"#
                );
            }
            Distribution::Categorical { choices } => {
                let list: Vec<String> = choices.iter().map(|c| c.json.to_string()).collect();
                let _ = write!(
                    s,
                    r#"{{"name": "CategoricalDistribution", "attributes": {{"choices": [{}]}}}}"#,
                    list.join(", ")
                );
            }
        }
        s
    }

    /// Reads Optuna's `distribution_json` (also its older `UniformDistribution`, ... names).
    pub fn from_json(text: &str) -> Result<Distribution> {
        let bad = |why: &str| TuneError::Storage(format!("distribution_json {text}: {why}"));
        let j: Json = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
        let name = j["name"].as_str().ok_or_else(|| bad("no name"))?;
        let a = &j["attributes"];
        let f = |k: &str| a[k].as_f64().ok_or_else(|| bad(&format!("no {k}")));
        let i = |k: &str| a[k].as_i64().ok_or_else(|| bad(&format!("no {k}")));
        Ok(match name {
            "FloatDistribution" => Distribution::Float {
                low: f("low")?,
                high: f("high")?,
                log: a["log"].as_bool().unwrap_or(false),
                step: a["step"].as_f64(),
            },
            "UniformDistribution" => Distribution::Float { low: f("low")?, high: f("high")?, log: false, step: None },
            "LogUniformDistribution" => Distribution::Float { low: f("low")?, high: f("high")?, log: true, step: None },
            "DiscreteUniformDistribution" => {
                Distribution::Float { low: f("low")?, high: f("high")?, log: false, step: Some(f("q")?) }
            }
            "IntDistribution" => Distribution::Int {
                low: i("low")?,
                high: i("high")?,
                log: a["log"].as_bool().unwrap_or(false),
                step: a["step"].as_i64().unwrap_or(1),
            },
            "IntUniformDistribution" => Distribution::Int {
                low: i("low")?,
                high: i("high")?,
                log: false,
                step: a["step"].as_i64().unwrap_or(1),
            },
            "IntLogUniformDistribution" => Distribution::Int { low: i("low")?, high: i("high")?, log: true, step: 1 },
            "CategoricalDistribution" => {
                let list = a["choices"].as_array().ok_or_else(|| bad("no choices"))?;
                Distribution::Categorical { choices: list.iter().map(Choice::from_json).collect() }
            }
            other => return Err(bad(&format!("unknown distribution {other}"))),
        })
    }

    /// Whether a stored distribution and this one describe the same parameter: Optuna's rule (same
    /// kind; categories with the same choices), plus the same bounds, scale and step, since a study
    /// resumed with a different space would mix trials drawn from different ones.
    pub fn same_as(&self, other: &Distribution) -> bool {
        match (self, other) {
            (Distribution::Categorical { choices: a }, Distribution::Categorical { choices: b }) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.json == y.json)
            }
            _ => self == other,
        }
    }

    /// The value Optuna stores in `trial_params.param_value` for `external`.
    pub fn to_internal(&self, external: &Json) -> Option<f64> {
        match self {
            Distribution::Float { .. } | Distribution::Int { .. } => external.as_f64(),
            Distribution::Categorical { choices } => choices.iter().position(|c| &c.json == external).map(|i| i as f64),
        }
    }

    /// The value a trial's experiment gets for the internal value `x`.
    pub fn to_toml(&self, x: f64) -> toml::Value {
        match self {
            Distribution::Float { .. } => toml::Value::Float(x),
            Distribution::Int { .. } => toml::Value::Integer(x.round() as i64),
            Distribution::Categorical { choices } => choices[(x as usize).min(choices.len() - 1)].toml.clone(),
        }
    }

    /// The value as Optuna shows it (`trial.params`).
    pub fn to_external(&self, x: f64) -> Json {
        match self {
            Distribution::Float { .. } => serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number),
            Distribution::Int { .. } => Json::from(x.round() as i64),
            Distribution::Categorical { choices } => choices[(x as usize).min(choices.len() - 1)].json.clone(),
        }
    }

    /// Whether `x` (internal) lies in the distribution.
    pub fn contains(&self, x: f64) -> bool {
        match *self {
            Distribution::Float { low, high, .. } => x >= low && x <= high,
            Distribution::Int { low, high, step, .. } => {
                x.fract() == 0.0 && x >= low as f64 && x <= high as f64 && (x as i64 - low) % step == 0
            }
            Distribution::Categorical { ref choices } => x.fract() == 0.0 && x >= 0.0 && (x as usize) < choices.len(),
        }
    }

    /// How many values a discrete distribution has (`None` for a continuous one).
    pub fn grid_len(&self) -> Option<u128> {
        match *self {
            Distribution::Float { low, high, step: Some(step), .. } => {
                Some(((high - low) / step + 1e-9).floor() as u128 + 1)
            }
            Distribution::Float { step: None, .. } => None,
            Distribution::Int { low, high, step, .. } => {
                Some(((high as i128 - low as i128) / step as i128) as u128 + 1)
            }
            Distribution::Categorical { ref choices } => Some(choices.len() as u128),
        }
    }

    /// The grid of a discrete distribution (internal values), or `None` for a continuous one;
    /// check [`Distribution::grid_len`] first, this lists every value.
    pub fn grid(&self) -> Option<Vec<f64>> {
        let n = self.grid_len()? as usize;
        Some(match *self {
            Distribution::Float { low, step: Some(step), .. } => (0..n).map(|k| low + k as f64 * step).collect(),
            Distribution::Int { low, step, .. } => (0..n as i64).map(|k| (low + k * step) as f64).collect(),
            _ => (0..n).map(|i| i as f64).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<SearchSpace, (String, String)> {
        SearchSpace::from_toml(&text.parse::<toml::Table>().expect("test TOML"))
    }

    /// The JSON Optuna 5.0.0 itself wrote for these distributions (`suggest_float("a", 0, 2)`,
    /// `suggest_int("b", 1, 9, log=True)`, `suggest_categorical("c", ["u", "vv", None])`).
    #[test]
    fn distribution_json_is_optunas() {
        let a = r#"{"name": "FloatDistribution", "attributes": {"step": null, "low": 0.0, "high": 2.0, "log": false}}"#;
        let b = r#"{"name": "IntDistribution", "attributes": {"log": true, "step": 1, "low": 1, "high": 9}}"#;
        let c = r#"{"name": "CategoricalDistribution", "attributes": {"choices": ["u", "vv", null]}}"#;
        for text in [a, b, c] {
            assert_eq!(Distribution::from_json(text).expect("parses").to_json(), text);
        }
        let space =
            parse("a = { float = [0, 2] }\nb = { int = [1, 9], log = true }\nc = { choices = [\"u\", \"vv\"] }")
                .expect("space");
        assert_eq!(space.params[0].1.to_json(), a);
        assert_eq!(space.params[1].1.to_json(), b);
    }

    #[test]
    fn bad_spaces_are_named() {
        let cases = [
            ("x = { choices = [] }", "expected at least one choice"),
            ("x = { float = [2.0, 1.0] }", "low = 2 > high = 1"),
            ("x = { float = [0.0, 1.0], log = true }", "a log scale needs low > 0"),
            ("x = { int = [-1, 4], log = true }", "a log scale needs low > 0"),
            ("x = { float = [1, 2], lg = true }", "lg: unknown field"),
            ("x = 3", "expected { float"),
        ];
        for (text, want) in cases {
            let (key, msg) = parse(text).expect_err(text);
            assert_eq!(key, "tune.space.x");
            assert!(msg.contains(want), "{text}: {msg}");
        }
    }

    #[test]
    fn array_choices_travel_as_toml_text() {
        let space = parse("\"model.channels\" = { choices = [[16, 32], [32, 64]] }").expect("space");
        let d = &space.params[0].1;
        assert_eq!(d.to_external(1.0), Json::String("[32, 64]".into()));
        assert_eq!(d.to_toml(1.0), toml::Value::Array(vec![32.into(), 64.into()]));
        assert_eq!(d.to_internal(&Json::String("[16, 32]".into())), Some(0.0));
    }

    #[test]
    fn grids() {
        let d = Distribution::Float { low: 0.0, high: 1.0, log: false, step: Some(0.25) };
        assert_eq!(d.grid().expect("discrete"), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        let i = Distribution::Int { low: 8, high: 64, log: false, step: 8 };
        assert_eq!(i.grid().expect("discrete").len(), 8);
        assert_eq!(i.grid_len(), Some(8));
        assert!(i.contains(16.0) && !i.contains(12.0));
        // Ranges that are not whole steps end at the last step, as Optuna adjusts them.
        let s = parse("a = { int = [8, 60], step = 8 }\nb = { float = [0.0, 1.1], step = 0.25 }").expect("space");
        assert_eq!(s.params[0].1, Distribution::Int { low: 8, high: 56, log: false, step: 8 });
        assert_eq!(s.params[1].1, Distribution::Float { low: 0.0, high: 1.0, log: false, step: Some(0.25) });
    }
}
