//! genlab-serve: `genlab serve RUN [RUN...]`. Each run's model is loaded once onto a worker
//! thread of its own behind a bounded queue that batches concurrent requests; axum on tokio
//! answers the generation API (`/v1/generate`, `/v1/interpolate`, `/v1/corrections`), OpenAI's
//! text API (`/v1/completions`, `/v1/chat/completions`, streamed as server-sent events), the
//! OpenAPI 3.1 spec generated from the handler types (`/openapi.json`), `/healthz`, `/readyz`,
//! `/metrics` and the web page at `/`, embedded in the binary.

pub mod api;
pub mod body;
pub mod conn;
pub mod error;
pub mod images;
pub mod metrics;
pub mod openai;
pub mod page;
pub mod server;
pub mod worker;

pub use server::{load_models, openapi, router, serve, serve_blocking, state, ApiDoc, AppState, Limits, ServeOptions};
