//! Where a library's progress and messages go. The pipeline and the trainer never print: they
//! report through an [`EventSink`]; the `genlab` command renders bars and lines on the terminal
//! ([`Terminal`]), and a server or a tuner can collect the lines instead ([`Collected`]).

use crate::progress::Progress;
use std::sync::{Arc, Mutex};

pub trait EventSink: Send + Sync {
    /// One line for the person running the job.
    fn message(&self, line: &str);
    /// A progress display for a job of `total` units, starting at `position`.
    fn progress(&self, label: &str, total: u64, position: u64) -> Progress;
    /// Generated text as it is settled (a language model streaming its output); dropped unless
    /// the sink shows it.
    fn text(&self, _chunk: &str) {}
}

/// A shared sink.
pub type Events = Arc<dyn EventSink>;

/// Lines on stderr; a bar with rate and ETA on a terminal, a line about every 10% elsewhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct Terminal;

impl EventSink for Terminal {
    fn message(&self, line: &str) {
        eprintln!("{line}");
    }
    fn progress(&self, label: &str, total: u64, position: u64) -> Progress {
        Progress::new(label, total, position)
    }
    /// On stdout, flushed at once, so the text appears as it is generated.
    fn text(&self, chunk: &str) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(chunk.as_bytes());
        let _ = out.flush();
    }
}

/// Keeps the lines (and no bars), for a caller that shows them its own way.
#[derive(Debug, Default)]
pub struct Collected {
    lines: Mutex<Vec<String>>,
}

impl Collected {
    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl EventSink for Collected {
    fn message(&self, line: &str) {
        if let Ok(mut l) = self.lines.lock() {
            l.push(line.to_string());
        }
    }
    fn progress(&self, _label: &str, _total: u64, _position: u64) -> Progress {
        Progress::hidden()
    }
}

/// The terminal sink, shared.
pub fn terminal() -> Events {
    Arc::new(Terminal)
}
