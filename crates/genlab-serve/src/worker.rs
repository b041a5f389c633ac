//! One worker thread per model, owning it, behind a bounded queue. The worker takes the oldest
//! job; if it is a generation it gathers more generations already queued or arriving within
//! `max_wait`, up to `max_batch`, and answers them together (`genlab_pipeline::serving::
//! generate_batch`). A full queue refuses at once, and the handler answers 429. A panic inside
//! one generation fails that job alone.

use crate::metrics::Metrics;
use genlab_pipeline::generate::{GenerateRequest, Generated, Images};
use genlab_pipeline::serving::{generate_batch, Loaded, ModelCard};
use genlab_pipeline::EventSink;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How a worker batches.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// The most requests answered together (1: no batching).
    pub max_batch: usize,
    /// How long the first request of a batch waits for others.
    pub max_wait: Duration,
    /// The most requests waiting for one model.
    pub queue: usize,
}

/// Why a job was not done: a refusal of the request (400) or a failure inside it (500).
#[derive(Debug, Clone)]
pub enum Failure {
    Refused(String),
    Failed(String),
}

/// A request the server checked can still be refused by the model (a character outside its
/// vocabulary, a partial image of the wrong size): every error a loaded model returns is about
/// the request; only a panic is the server's failure.
impl From<genlab_pipeline::PipelineError> for Failure {
    fn from(e: genlab_pipeline::PipelineError) -> Self {
        Failure::Refused(e.to_string())
    }
}

pub type Answer = Result<Generated, Failure>;

/// What a worker is asked to do.
pub enum Job {
    Generate {
        request: GenerateRequest,
        deadline: Instant,
        reply: oneshot::Sender<Answer>,
    },
    /// Text generation whose pieces go to `chunks` as they are made.
    Stream {
        request: GenerateRequest,
        deadline: Instant,
        chunks: mpsc::UnboundedSender<String>,
        reply: oneshot::Sender<Answer>,
    },
    Latents {
        seed: u64,
        count: usize,
        reply: oneshot::Sender<Option<Vec<f32>>>,
    },
    Examples {
        count: usize,
        reply: oneshot::Sender<Result<Images, Failure>>,
    },
    /// Principal directions of the latent codes (a VAE).
    Directions {
        count: usize,
        reply: oneshot::Sender<Result<Option<Vec<genlab_pipeline::serving::Direction>>, Failure>>,
    },
}

/// A model's queue, as the handlers hold it.
pub struct ModelHandle {
    pub card: ModelCard,
    sender: SyncSender<Job>,
    depth: Arc<AtomicUsize>,
}

impl ModelHandle {
    /// Queues `job`; false when the queue is full (or the worker is gone).
    pub fn submit(&self, job: Job) -> bool {
        self.depth.fetch_add(1, Ordering::SeqCst);
        match self.sender.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.depth.fetch_sub(1, Ordering::SeqCst);
                false
            }
        }
    }

    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::SeqCst)
    }
}

/// Loads `run` on a new thread and starts its worker there; returns once the model is loaded.
pub fn start(run: PathBuf, batching: Batching, metrics: Arc<Metrics>) -> Result<ModelHandle, String> {
    let shown = run.display().to_string();
    let (sender, receiver) = sync_channel::<Job>(batching.queue);
    let (loaded_tx, loaded_rx) = std::sync::mpsc::channel();
    let depth = Arc::new(AtomicUsize::new(0));
    let worker_depth = depth.clone();
    std::thread::Builder::new()
        .name(format!("model {}", run.display()))
        .spawn(move || {
            // A damaged newest checkpoint is named on stderr, as `genlab sample` names it.
            let model = match genlab_pipeline::serving::load(&run, None, Arc::new(genlab_pipeline::Terminal)) {
                Ok(m) => m,
                Err(e) => {
                    let _ = loaded_tx.send(Err(format!("{}: {e}", run.display())));
                    return;
                }
            };
            let _ = loaded_tx.send(Ok(model.card().clone()));
            Worker { model, receiver, batching, depth: worker_depth, metrics, pending: None }.run();
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    let card = loaded_rx.recv().map_err(|_| format!("{shown}: the thread loading it stopped"))??;
    Ok(ModelHandle { card, sender, depth })
}

struct Worker {
    model: Box<dyn Loaded>,
    receiver: Receiver<Job>,
    batching: Batching,
    depth: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    /// A job taken while gathering a batch that is not a generation: it runs next.
    pending: Option<Job>,
}

/// Text pieces forwarded to a streaming request.
struct Chunks<'a>(&'a mpsc::UnboundedSender<String>);

impl EventSink for Chunks<'_> {
    fn message(&self, _: &str) {}
    fn progress(&self, _: &str, _: u64, _: u64) -> genlab_core::progress::Progress {
        genlab_core::progress::Progress::hidden()
    }
    fn text(&self, chunk: &str) {
        let _ = self.0.send(chunk.to_string());
    }
}

fn guarded<T>(what: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    catch_unwind(AssertUnwindSafe(what)).unwrap_or_else(|p| {
        let why = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into());
        Err(Failure::Failed(format!("the generation failed: {why}")))
    })
}

impl Worker {
    fn take(&mut self, wait: Option<Duration>) -> Option<Job> {
        if let Some(j) = self.pending.take() {
            return Some(j);
        }
        let job = match wait {
            None => self.receiver.recv().ok(),
            Some(d) => self.receiver.recv_timeout(d).ok(),
        };
        if job.is_some() {
            self.depth.fetch_sub(1, Ordering::SeqCst);
        }
        job
    }

    fn run(mut self) {
        while let Some(job) = self.take(None) {
            match job {
                Job::Generate { request, deadline, reply } => self.batch(request, deadline, reply),
                Job::Stream { request, deadline, chunks, reply } => {
                    if Instant::now() > deadline || reply.is_closed() {
                        continue;
                    }
                    self.metrics.batch(&self.model.card().name, 1);
                    let model = &self.model;
                    let answer = guarded(|| Ok(model.generate(&request, Some(&Chunks(&chunks)))?));
                    self.metrics.post(&model.card().name, &model.post_counts().fields());
                    let _ = reply.send(answer);
                }
                Job::Latents { seed, count, reply } => {
                    let model = &self.model;
                    let _ = reply.send(guarded(|| Ok(model.latents(seed, count))).unwrap_or(None));
                }
                Job::Directions { count, reply } => {
                    let model = &self.model;
                    let _ = reply.send(guarded(|| Ok(model.directions(count)?)));
                }
                Job::Examples { count, reply } => {
                    let model = &self.model;
                    let _ = reply.send(guarded(|| Ok(model.examples(count)?)));
                }
            }
        }
    }

    /// Gathers generations to answer with `first`, then answers them.
    fn batch(&mut self, first: GenerateRequest, deadline: Instant, reply: oneshot::Sender<Answer>) {
        let mut jobs = vec![(first, deadline, reply)];
        let until = Instant::now() + self.batching.max_wait;
        while jobs.len() < self.batching.max_batch {
            let left = until.saturating_duration_since(Instant::now());
            match self.take(Some(left)) {
                Some(Job::Generate { request, deadline, reply }) => jobs.push((request, deadline, reply)),
                Some(other) => {
                    self.pending = Some(other);
                    break;
                }
                None => break,
            }
        }
        // Requests whose client gave up or whose time ran out are not generated.
        let now = Instant::now();
        jobs.retain(|(_, deadline, reply)| *deadline > now && !reply.is_closed());
        if jobs.is_empty() {
            return;
        }
        self.metrics.batch(&self.model.card().name, jobs.len());
        let requests: Vec<GenerateRequest> = jobs.iter().map(|j| j.0.clone()).collect();
        let model = &self.model;
        let answers = guarded(|| Ok(generate_batch(model.as_ref(), &requests)));
        self.metrics.post(&model.card().name, &model.post_counts().fields());
        match answers {
            Ok(answers) => {
                for ((_, _, reply), answer) in jobs.into_iter().zip(answers) {
                    let _ = reply.send(answer.map_err(Failure::from));
                }
            }
            // One of them panicked: answer each alone, so only the failing one fails.
            Err(_) => {
                for (request, _, reply) in jobs {
                    let _ = reply.send(guarded(|| Ok(model.generate(&request, None)?)));
                }
            }
        }
    }
}
