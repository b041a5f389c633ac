//! `/metrics` in Prometheus' text exposition format: requests by route and status, request
//! latency and batch size histograms, and each model's queue depth (read from the queues when
//! the text is made).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds of the latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Upper bounds of the batch size histogram.
const BATCH_BUCKETS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; bounds.len()];
        }
        for (c, b) in self.counts.iter_mut().zip(bounds) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        for (c, b) in self.counts.iter().zip(bounds) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default)]
struct State {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    batches: BTreeMap<String, Histogram>,
    /// What each model's `[post]` filters have done, by kind.
    post: BTreeMap<String, Vec<(&'static str, u64)>>,
}

/// The server's counters.
#[derive(Default)]
pub struct Metrics(Mutex<State>);

impl Metrics {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request to `route` answered `status` after `seconds`.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        let mut s = self.state();
        *s.requests.entry((route.to_string(), status)).or_default() += 1;
        s.latency.entry(route.to_string()).or_default().observe(&LATENCY_BUCKETS, seconds);
    }

    /// `model` answered `size` requests together.
    pub fn batch(&self, model: &str, size: usize) {
        self.state().batches.entry(model.to_string()).or_default().observe(&BATCH_BUCKETS, size as f64);
    }

    /// What `model`'s `[post]` filters have done since it was loaded (totals).
    pub fn post(&self, model: &str, totals: &[(&'static str, u64)]) {
        self.state().post.insert(model.to_string(), totals.to_vec());
    }

    /// The exposition text, with each model's queue depth as `depths` gives it.
    pub fn render(&self, depths: &[(&str, usize)]) -> String {
        let s = self.state();
        let mut out = String::new();
        out.push_str("# HELP genlab_requests_total HTTP requests answered, by route and status code.\n");
        out.push_str("# TYPE genlab_requests_total counter\n");
        for ((route, status), n) in &s.requests {
            let _ = writeln!(out, "genlab_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
        out.push_str("# HELP genlab_request_duration_seconds Time from a request's arrival to its answer's head.\n");
        out.push_str("# TYPE genlab_request_duration_seconds histogram\n");
        for (route, h) in &s.latency {
            h.write(&mut out, "genlab_request_duration_seconds", &format!("route=\"{route}\""), &LATENCY_BUCKETS);
        }
        out.push_str("# HELP genlab_batch_size Generation requests a model answered together.\n");
        out.push_str("# TYPE genlab_batch_size histogram\n");
        for (model, h) in &s.batches {
            h.write(&mut out, "genlab_batch_size", &format!("model=\"{model}\""), &BATCH_BUCKETS);
        }
        out.push_str("# HELP genlab_post_filtered_total What a model's [post] filters did to its samples, by kind.\n");
        out.push_str("# TYPE genlab_post_filtered_total counter\n");
        for (model, totals) in &s.post {
            for (kind, n) in totals {
                let _ = writeln!(out, "genlab_post_filtered_total{{model=\"{model}\",kind=\"{kind}\"}} {n}");
            }
        }
        out.push_str("# HELP genlab_queue_depth Requests waiting for a model's worker.\n");
        out.push_str("# TYPE genlab_queue_depth gauge\n");
        for (model, d) in depths {
            let _ = writeln!(out, "genlab_queue_depth{{model=\"{model}\"}} {d}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let m = Metrics::default();
        m.batch("vae", 1);
        m.batch("vae", 3);
        m.batch("vae", 16);
        m.request("/v1/generate", 200, 0.02);
        m.request("/v1/generate", 429, 0.001);
        let text = m.render(&[("vae", 2)]);
        for line in [
            r#"genlab_batch_size_bucket{model="vae",le="1"} 1"#,
            r#"genlab_batch_size_bucket{model="vae",le="4"} 2"#,
            r#"genlab_batch_size_bucket{model="vae",le="16"} 3"#,
            r#"genlab_batch_size_bucket{model="vae",le="+Inf"} 3"#,
            r#"genlab_batch_size_sum{model="vae"} 20"#,
            r#"genlab_batch_size_count{model="vae"} 3"#,
            r#"genlab_requests_total{route="/v1/generate",status="429"} 1"#,
            r#"genlab_request_duration_seconds_bucket{route="/v1/generate",le="0.005"} 1"#,
            r#"genlab_request_duration_seconds_bucket{route="/v1/generate",le="0.025"} 2"#,
            r#"genlab_queue_depth{model="vae"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }
}
