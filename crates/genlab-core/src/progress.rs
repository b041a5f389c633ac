//! Progress of a long job: an indicatif bar (rate, ETA, current loss) on a terminal; on a pipe or in
//! CI, a plain line about every 10% so logs still show where a run is.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

pub struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    start_pos: u64,
    started: Instant,
    label: String,
    next_line: u64,
}

impl Progress {
    /// A progress display that shows nothing (for jobs too short to be worth a bar).
    pub fn hidden() -> Self {
        Progress {
            bar: None,
            total: 0,
            start_pos: 0,
            started: Instant::now(),
            label: String::new(),
            next_line: u64::MAX,
        }
    }

    pub fn new(label: &str, total: u64, position: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix} {bar:30.cyan/blue} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}] {msg}",
                )
                .expect("the progress template should parse")
                .progress_chars("=> "),
            );
            b.set_prefix(label.to_string());
            b.set_position(position);
            b.reset_eta();
            b
        });
        Progress { bar, total, start_pos: position, started: Instant::now(), label: label.into(), next_line: position }
    }

    /// Moves to `pos`, showing `msg` (e.g. the current loss).
    pub fn update(&mut self, pos: u64, msg: &str) {
        match &self.bar {
            Some(b) => {
                b.set_position(pos);
                b.set_message(msg.to_string());
            }
            None if pos >= self.next_line || (pos == self.total && self.next_line != u64::MAX) => {
                let done = (pos - self.start_pos) as f64;
                let secs = self.started.elapsed().as_secs_f64().max(1e-9);
                let rate = done / secs;
                let eta = if rate > 0.0 { (self.total - pos) as f64 / rate } else { 0.0 };
                eprintln!("{} {pos}/{} [{:.0}s<{:.0}s, {rate:.2} it/s] {msg}", self.label, self.total, secs, eta);
                self.next_line = pos + (self.total / 10).max(1);
            }
            None => {}
        }
    }

    /// Changes the expected end to `total` at position `pos` (a job whose length is learned as it
    /// runs: a training run under a time budget).
    pub fn set_total(&mut self, pos: u64, total: u64) {
        self.total = total.max(pos);
        match &self.bar {
            Some(b) => b.set_length(self.total),
            None if self.next_line != u64::MAX => {
                self.next_line = self.next_line.min(pos + (self.total.saturating_sub(self.start_pos) / 10).max(1))
            }
            None => {}
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish();
        }
    }

    /// Whether this display shows anything (a hidden one does not).
    pub fn is_visible(&self) -> bool {
        self.bar.is_some() || self.next_line != u64::MAX
    }

    /// Prints a line without breaking the bar.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }
}
