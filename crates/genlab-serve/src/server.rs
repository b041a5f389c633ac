//! The server: its options and limits, the state every handler shares, the router (routes, the
//! guard that counts, bounds and authorises requests), the OpenAPI document, and `serve`, which
//! loads the models and answers until SIGTERM.

use crate::body::BodyLimit;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::metrics::Metrics;
use crate::worker::{Batching, ModelHandle};
use crate::{api, conn, openai, page, worker};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;
use utoipa::OpenApi;

/// What a request may ask.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The most samples (images, points, completions) one request draws.
    pub max_count: usize,
    /// The most denoising steps.
    pub max_steps: usize,
    /// The most tokens a completion generates.
    pub max_tokens: usize,
    /// The most characters of a prompt or a text to correct.
    pub max_chars: usize,
    /// The largest request body, in bytes.
    pub max_body: usize,
    /// The time a request may take, queue included.
    pub timeout: Duration,
    /// The most requests in progress at once; more answer 429.
    pub max_concurrent: usize,
    /// The most open connections; more wait to be accepted.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_count: 64,
            max_steps: 1000,
            max_tokens: 1024,
            max_chars: 20_000,
            max_body: 1 << 20,
            timeout: Duration::from_secs(60),
            max_concurrent: 256,
            max_connections: 1024,
        }
    }
}

impl Limits {
    pub fn check_count(&self, count: usize, field: &str) -> ApiResult<()> {
        if count == 0 || count > self.max_count {
            return Err(ApiError::invalid(
                field,
                format!("{field} {count}: expected 1 to {}, this server's --max-count", self.max_count),
            ));
        }
        Ok(())
    }

    pub fn check_steps(&self, steps: Option<usize>) -> ApiResult<()> {
        match steps {
            Some(s) if s == 0 || s > self.max_steps => Err(ApiError::invalid(
                "steps",
                format!("steps {s}: expected 1 to {}, this server's --max-steps", self.max_steps),
            )),
            _ => Ok(()),
        }
    }

    pub fn check_chars(&self, text: &str, field: &str) -> ApiResult<()> {
        let n = text.chars().count();
        if n > self.max_chars {
            return Err(ApiError::invalid(
                field,
                format!("{field}: {n} characters; expected at most {}, this server's limit", self.max_chars),
            ));
        }
        Ok(())
    }
}

/// `genlab serve`'s options.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    /// The bearer token `/v1` asks for, when set.
    pub api_key: Option<String>,
    /// Origins allowed to call the API from another site's page (CORS); none by default.
    pub cors_origins: Vec<String>,
    pub batching: Batching,
    pub limits: Limits,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_key: None,
            cors_origins: Vec::new(),
            batching: Batching { max_batch: 16, max_wait: Duration::from_millis(5), queue: 256 },
            limits: Limits::default(),
        }
    }
}

/// What every handler shares.
pub struct AppState {
    pub models: BTreeMap<String, ModelHandle>,
    /// `/openapi.json`, made once for these models.
    pub spec: serde_json::Value,
    pub limits: Limits,
    pub batching: Batching,
    pub metrics: Arc<Metrics>,
    pub api_key: Option<String>,
    pub draining: AtomicBool,
    pub started: u64,
    seeds: AtomicU64,
    in_flight: Arc<Semaphore>,
}

impl AppState {
    /// A fresh seed for a request that names none (SplitMix64 over a counter from the clock).
    pub fn next_seed(&self) -> u64 {
        let mut z = self.seeds.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        // Within JavaScript's exact integers, so the page can send it back.
        (z ^ (z >> 31)) & ((1 << 53) - 1)
    }
}

/// Loads each run (its worker thread, its queue), refusing two runs of one name.
pub fn load_models(
    runs: &[PathBuf],
    options: &ServeOptions,
    metrics: &Arc<Metrics>,
) -> Result<BTreeMap<String, ModelHandle>, String> {
    let mut models = BTreeMap::new();
    for run in runs {
        let handle = worker::start(run.clone(), options.batching, metrics.clone())?;
        let name = handle.card.name.clone();
        if models.contains_key(&name) {
            return Err(format!(
                "{}: a second run named \"{name}\"; models are named by their run directory",
                run.display()
            ));
        }
        models.insert(name, handle);
    }
    Ok(models)
}

/// The state of a server over `models`.
pub fn state(models: BTreeMap<String, ModelHandle>, options: &ServeOptions, metrics: Arc<Metrics>) -> Arc<AppState> {
    let clock = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Arc::new(AppState {
        spec: openapi(models.keys()),
        models,
        limits: options.limits,
        batching: options.batching,
        metrics,
        api_key: options.api_key.clone(),
        draining: AtomicBool::new(false),
        started: clock.as_secs(),
        seeds: AtomicU64::new(clock.as_nanos() as u64),
        in_flight: Arc::new(Semaphore::new(options.limits.max_concurrent)),
    })
}

#[derive(OpenApi)]
#[openapi(
    info(title = "genlab", description = "Generation from genlab's trained runs: images, points and text; OpenAI-compatible text endpoints."),
    paths(
        api::list_models, api::get_model, api::examples, api::directions, api::generate, api::interpolate, api::corrections,
        openai::completions, openai::chat_completions, healthz, readyz, metrics_text
    ),
    components(schemas(ErrorBody)),
    tags((name = "models"), (name = "generate"), (name = "text"), (name = "operations"))
)]
pub struct ApiDoc;

/// The spec as served: the generated one, with this server's model names as the `model` field's
/// choices.
pub fn openapi<'a>(models: impl Iterator<Item = &'a String>) -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    let names: Vec<serde_json::Value> = models.map(|k| serde_json::Value::String(k.clone())).collect();
    let mut value = serde_json::to_value(&doc).expect("the spec serialises");
    if let Some(schemas) = value.pointer_mut("/components/schemas").and_then(|v| v.as_object_mut()) {
        for name in ["GenerateBody", "InterpolateBody", "CorrectionBody", "CompletionBody", "ChatBody"] {
            if let Some(model) = schemas.get_mut(name).and_then(|s| s.pointer_mut("/properties/model")) {
                model["enum"] = serde_json::Value::Array(names.clone());
            }
        }
    }
    value
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process answers", body = api::Health)))]
async fn healthz(State(s): State<Arc<AppState>>) -> Json<api::Health> {
    Json(api::Health { status: "ok".into(), models: s.models.len() })
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Every model is loaded and the server takes requests", body = api::Health),
              (status = 503, description = "The server is draining before it exits", body = api::Health)))]
async fn readyz(State(s): State<Arc<AppState>>) -> Response {
    let draining = s.draining.load(Ordering::SeqCst);
    let status = if draining { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    let health = api::Health { status: if draining { "draining" } else { "ready" }.into(), models: s.models.len() };
    (status, Json(health)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics_text(State(s): State<Arc<AppState>>) -> Response {
    let depths: Vec<(&str, usize)> = s.models.values().map(|m| (m.card.name.as_str(), m.depth())).collect();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render(&depths)).into_response()
}

async fn openapi_json(State(s): State<Arc<AppState>>) -> Response {
    let mut r = Json(&s.spec).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// Counts every answer by route and status, with its latency; refuses requests beyond
/// `max_concurrent` with 429; asks `/v1` for the key when one is set.
async fn guard(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let response = match s.in_flight.clone().try_acquire_owned() {
        Err(_) => ApiError::busy(
            "too_many_requests",
            &format!("the server is answering {} requests; try again later", s.limits.max_concurrent),
            1,
        )
        .into_response(),
        Ok(_permit) => {
            if route.starts_with("/v1") && !authorized(&s, &req) {
                ApiError::unauthorized().into_response()
            } else {
                next.run(req).await
            }
        }
    };
    s.metrics.request(&route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

fn authorized(s: &AppState, req: &Request) -> bool {
    let Some(key) = &s.api_key else { return true };
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    given.and_then(|v| v.strip_prefix("Bearer ")).is_some_and(|g| constant_time_eq(g.trim().as_bytes(), key.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("{} {}: no such endpoint; see /openapi.json", req.method(), req.uri().path()))
}

/// The router of a server over `state`.
pub fn router(state: Arc<AppState>, cors_origins: &[String]) -> Router {
    let v1 = Router::new()
        .route("/v1/models", get(api::list_models))
        .route("/v1/models/{model}", get(api::get_model))
        .route("/v1/models/{model}/examples", get(api::examples))
        .route("/v1/models/{model}/directions", get(api::directions))
        .route("/v1/generate", post(api::generate))
        .route("/v1/interpolate", post(api::interpolate))
        .route("/v1/corrections", post(api::corrections))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/chat/completions", post(openai::chat_completions));
    let mut app = v1
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi_json))
        .merge(page::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .layer(axum::extract::DefaultBodyLimit::max(state.limits.max_body))
        .layer(axum::Extension(BodyLimit(state.limits.max_body)))
        .with_state(state);
    if !cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = cors_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
        app = app.layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]),
        );
    }
    app
}

/// Serves `runs` until SIGTERM or SIGINT, then stops taking connections, lets the requests in
/// progress finish and returns. `ready` hears the bound address once every model is loaded.
pub async fn serve(runs: Vec<PathBuf>, options: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<(), String> {
    let metrics = Arc::new(Metrics::default());
    let load_options = options.clone();
    let load_metrics = metrics.clone();
    let models = tokio::task::spawn_blocking(move || load_models(&runs, &load_options, &load_metrics))
        .await
        .map_err(|e| format!("loading the models stopped: {e}"))??;
    let state = state(models, &options, metrics);
    let app = router(state.clone(), &options.cors_origins);
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|e| format!("--addr {}: cannot listen there: {e}", options.addr))?;
    let addr = listener.local_addr().map_err(|e| format!("--addr {}: {e}", options.addr))?;
    ready(addr);
    let draining = state.clone();
    axum::serve(conn::Limited::new(listener, options.limits.max_connections), app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            draining.draining.store(true, Ordering::SeqCst);
        })
        .await
        .map_err(|e| format!("the server stopped: {e}"))
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}

/// [`serve`] on a tokio runtime of its own, for the command line.
pub fn serve_blocking(runs: Vec<PathBuf>, options: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("genlab-serve")
        .build()
        .map_err(|e| format!("cannot start the server's runtime: {e}"))?;
    runtime.block_on(serve(runs, options, ready))
}
