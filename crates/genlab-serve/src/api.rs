//! The generation API under `/v1`: the model list, `generate` and `interpolate` for image and
//! point models, a model's test images, and corrections for a sequence-to-sequence model.

use crate::body::Body;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::images::{grid_png, partial_input, png, pngs};
use crate::worker::{Answer, Failure, Job, ModelHandle};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use genlab_pipeline::generate::{Capabilities, GenerateRequest, Generated, OutputKind};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;
use utoipa::ToSchema;

/// The models this server holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelList {
    /// Always `list`.
    pub object: String,
    pub data: Vec<ModelInfo>,
}

/// One model: OpenAI's model object with what it can do.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    /// The run directory's name.
    pub id: String,
    /// Always `model`.
    pub object: String,
    /// Unix time the server loaded it.
    pub created: u64,
    /// Always `genlab`.
    pub owned_by: String,
    pub family: String,
    /// `images`, `points` or `text`.
    pub output: String,
    /// `[channels, height, width]` of an image model's samples.
    pub shape: Vec<usize>,
    /// The class names a `class` may pick (by index), for a conditional model.
    pub classes: Vec<String>,
    /// The size of a latent vector, for a model with a latent prior.
    pub latent_dim: Option<usize>,
    /// The training step of the weights.
    pub step: u64,
    /// Whether the weights are the exponential moving average.
    pub ema: bool,
    /// The request options the model honours.
    pub options: Vec<String>,
    /// The endpoint that generates with it.
    pub endpoint: String,
}

/// `POST /v1/generate`: samples of an image or point model.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateBody {
    /// A model's id from `/v1/models`.
    pub model: String,
    /// Samples to draw.
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 4096)]
    pub count: usize,
    /// The seed; the answer gives the one used when none is asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The class to draw (a conditional model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<usize>,
    /// Sampling temperature (a flow's or mixture's prior scale).
    #[schema(minimum = 0.0, maximum = 100.0)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// A diffusion model's sampler: `ddpm`, `ddim` or `dpm-solver++`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampler: Option<String>,
    /// A diffusion model's denoising steps.
    #[schema(minimum = 1, maximum = 100000)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// Classifier-free guidance scale (a class-conditional diffusion model).
    #[schema(minimum = 0.0, maximum = 100.0)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guidance: Option<f64>,
    /// A partial image to complete (a diffusion model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialBody>,
    /// Latent vectors to decode, one per sample (a VAE, a GAN); `count` is their number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latents: Option<Vec<Vec<f32>>>,
    /// `json` (base64 PNG images) or `png` (one PNG: the image, or a grid of them).
    #[serde(default)]
    pub format: Format,
}

fn one() -> usize {
    1
}

/// How images come back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Png,
}

/// A partial image and its mask, each a base64 PNG of the model's size. In the mask, as in
/// diffusers' in-painting pipelines, white pixels are generated and black ones kept.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartialBody {
    pub image: String,
    pub mask: String,
}

/// Generated samples, with the request that draws them again.
#[derive(Debug, Serialize, ToSchema)]
pub struct GenerateResponse {
    pub model: String,
    /// The seed used.
    pub seed: u64,
    pub count: usize,
    /// What the samples are, in words.
    pub description: String,
    /// `[channels, height, width]` of the images.
    pub shape: Option<Vec<usize>>,
    /// The images, base64 PNG files.
    pub images: Option<Vec<String>>,
    /// The points, `[x, y]` each.
    pub points: Option<Vec<Vec<f32>>>,
    /// The latent vectors decoded (interpolation).
    pub latents: Option<Vec<Vec<f32>>>,
    /// The request that reproduces these samples.
    pub request: GenerateBody,
}

/// `POST /v1/interpolate`: images along the great circle between two latents.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InterpolateBody {
    pub model: String,
    pub from: Endpoint,
    pub to: Endpoint,
    /// Images along the way, the two ends included.
    #[serde(default = "eight")]
    #[schema(minimum = 2, maximum = 64)]
    pub steps: usize,
    /// The class (a conditional GAN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<usize>,
    #[serde(default)]
    pub format: Format,
}

fn eight() -> usize {
    8
}

/// One end of an interpolation: a seed (the latent that seed draws) or a latent vector.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latent: Option<Vec<f32>>,
}

/// `GET /v1/models/{model}/examples`: the query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExamplesQuery {
    /// Images to return (at most 64).
    #[param(minimum = 1, maximum = 64)]
    pub count: Option<usize>,
}

/// Test images of a model's data.
#[derive(Debug, Serialize, ToSchema)]
pub struct Examples {
    pub model: String,
    pub shape: Vec<usize>,
    /// Base64 PNG files.
    pub images: Vec<String>,
}

/// Principal directions of a model's latent codes.
#[derive(Debug, Serialize, ToSchema)]
pub struct Directions {
    pub model: String,
    /// Unit vectors, largest variance first.
    pub directions: Vec<Vec<f32>>,
    /// The codes' standard deviation along each.
    pub std: Vec<f32>,
}

/// `POST /v1/corrections`: a sequence-to-sequence model corrects a text or fills its `<mask>`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectionBody {
    pub model: String,
    /// The text.
    pub input: String,
    /// `correct` (default) or `infill` (the text holds one `<mask>`).
    #[serde(default)]
    pub task: Task,
    /// Beam width (1: greedy).
    #[schema(minimum = 1, maximum = 64)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beam: Option<usize>,
    /// Sample at this temperature instead of searching (0: greedy).
    #[schema(minimum = 0.0, maximum = 100.0)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    #[default]
    Correct,
    Infill,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CorrectionResponse {
    pub model: String,
    pub input: String,
    pub output: String,
    pub task: Task,
    pub seed: u64,
}

/// `/healthz` and `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `draining`.
    pub status: String,
    pub models: usize,
}

/// The options a model honours, by request field name.
pub fn options(c: &Capabilities) -> Vec<String> {
    let all = [
        (c.classes.is_some(), "class"),
        (c.temperature, "temperature"),
        (c.sampler, "sampler"),
        (c.steps, "steps"),
        (c.guidance, "guidance"),
        (c.partial, "partial"),
        (c.latent.is_some(), "latents"),
        (c.directions, "directions"),
        (c.prompt, "prompt"),
        (c.max_tokens, "max_tokens"),
        (c.stop, "stop"),
        (c.top_k, "top_k"),
        (c.top_p, "top_p"),
        (c.repetition_penalty, "repetition_penalty"),
        (c.correct, "correct"),
        (c.infill, "infill"),
        (c.beam, "beam"),
    ];
    all.iter().filter(|o| o.0).map(|o| o.1.to_string()).collect()
}

/// The endpoint that serves a model.
fn endpoint(c: &Capabilities) -> &'static str {
    match c.output() {
        OutputKind::Text if c.correct => "/v1/corrections",
        OutputKind::Text => "/v1/completions",
        _ => "/v1/generate",
    }
}

#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, description = "The models and what each can do", body = ModelList),
              (status = 401, description = "A key is required", body = ErrorBody)))]
pub async fn list_models(State(s): State<Arc<AppState>>) -> Json<ModelList> {
    let data = s.models.values().map(|m| model_info(m, s.started)).collect();
    Json(ModelList { object: "list".into(), data })
}

#[utoipa::path(get, path = "/v1/models/{model}", tag = "models",
    params(("model" = String, Path, description = "A model's id")),
    responses((status = 200, description = "The model", body = ModelInfo),
              (status = 401, description = "A key is required", body = ErrorBody),
              (status = 404, description = "No such model", body = ErrorBody)))]
pub async fn get_model(State(s): State<Arc<AppState>>, Path(model): Path<String>) -> ApiResult<Json<ModelInfo>> {
    Ok(Json(model_info(s.model(&model)?, s.started)))
}

fn model_info(m: &ModelHandle, created: u64) -> ModelInfo {
    let c = &m.card.capabilities;
    ModelInfo {
        id: m.card.name.clone(),
        object: "model".into(),
        created,
        owned_by: "genlab".into(),
        family: m.card.family.into(),
        output: format!("{:?}", c.output()).to_lowercase(),
        shape: if c.output() == OutputKind::Images { m.card.shape.to_vec() } else { Vec::new() },
        classes: if c.classes.is_some() { m.card.class_names.clone() } else { Vec::new() },
        latent_dim: c.latent,
        step: m.card.step,
        ema: m.card.ema,
        options: options(c),
        endpoint: endpoint(c).into(),
    }
}

#[utoipa::path(get, path = "/v1/models/{model}/examples", tag = "models",
    params(("model" = String, Path, description = "An image model's id"), ExamplesQuery),
    responses((status = 200, description = "The first images of the model's evaluation split", body = Examples),
              (status = 400, description = "Not an image model, or a bad count", body = ErrorBody),
              (status = 401, description = "A key is required", body = ErrorBody),
              (status = 404, description = "No such model", body = ErrorBody),
              (status = 408, description = "Not answered in time", body = ErrorBody),
              (status = 429, description = "The model's queue is full", body = ErrorBody)))]
pub async fn examples(
    State(s): State<Arc<AppState>>,
    Path(model): Path<String>,
    query: Result<Query<ExamplesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Examples>> {
    let count = query_count(query)?;
    let m = s.model(&model)?;
    if m.card.capabilities.output() != OutputKind::Images {
        return Err(ApiError::invalid(
            "model",
            format!("model \"{model}\": generates {}, not images", m.card.capabilities.output().describe()),
        ));
    }
    let (reply, rx) = oneshot::channel();
    s.submit(m, Job::Examples { count, reply })?;
    let images = s.wait(rx).await?.map_err(failure)?;
    Ok(Json(Examples { model, shape: images.shape.to_vec(), images: pngs(&images) }))
}

#[utoipa::path(get, path = "/v1/models/{model}/directions", tag = "models",
    params(("model" = String, Path, description = "A model with an encoder (a VAE)"), ExamplesQuery),
    responses((status = 200, description = "The leading principal directions of the latent codes of the model's evaluation images (its first 1,000)", body = Directions),
              (status = 400, description = "The model has no encoder, or a bad count", body = ErrorBody),
              (status = 401, description = "A key is required", body = ErrorBody),
              (status = 404, description = "No such model", body = ErrorBody),
              (status = 408, description = "Not answered in time", body = ErrorBody),
              (status = 429, description = "The model's queue is full", body = ErrorBody)))]
pub async fn directions(
    State(s): State<Arc<AppState>>,
    Path(model): Path<String>,
    query: Result<Query<ExamplesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Directions>> {
    let count = query_count(query)?;
    let m = s.model(&model)?;
    let no_encoder = || {
        ApiError::invalid(
            "model",
            format!("model \"{model}\": the {} family has no encoder to find latent directions with", m.card.family),
        )
    };
    if !m.card.capabilities.directions {
        return Err(no_encoder());
    }
    let (reply, rx) = oneshot::channel();
    s.submit(m, Job::Directions { count, reply })?;
    let found = s.wait(rx).await?.map_err(failure)?.ok_or_else(no_encoder)?;
    let (directions, std) = found.into_iter().map(|d| (d.unit, d.std)).unzip();
    Ok(Json(Directions { model, directions, std }))
}

/// The `count` of an examples or directions query: 8 when absent, 1 to 64.
fn query_count(query: Result<Query<ExamplesQuery>, axum::extract::rejection::QueryRejection>) -> ApiResult<usize> {
    let Query(q) = query.map_err(|e| ApiError::invalid("count", format!("count: {}", e.body_text())))?;
    let count = q.count.unwrap_or(8);
    if !(1..=64).contains(&count) {
        return Err(ApiError::invalid("count", format!("count {count}: expected 1 to 64")));
    }
    Ok(count)
}

/// A failed job as its answer.
pub fn failure(f: Failure) -> ApiError {
    match f {
        Failure::Refused(m) => ApiError::refused(&m),
        Failure::Failed(m) => ApiError::internal(m),
    }
}

#[utoipa::path(post, path = "/v1/generate", tag = "generate", request_body = GenerateBody,
    responses((status = 200, description = "The samples: JSON, or one PNG with `format: png`",
               content((GenerateResponse = "application/json"), (String = "image/png")),
               headers(("x-genlab-seed" = String, description = "The seed used"))),
              (status = 400, description = "A field the model cannot honour, or out of range", body = ErrorBody),
              (status = 401, description = "A key is required", body = ErrorBody),
              (status = 404, description = "No such model", body = ErrorBody),
              (status = 408, description = "Not answered within the server's timeout", body = ErrorBody),
              (status = 413, description = "The body is over the limit", body = ErrorBody),
              (status = 429, description = "The model's queue is full; see Retry-After", body = ErrorBody,
               headers(("retry-after" = String, description = "Seconds to wait")))))]
pub async fn generate(State(s): State<Arc<AppState>>, Body(body): Body<GenerateBody>) -> ApiResult<Response> {
    let m = s.model(&body.model)?;
    let can = &m.card.capabilities;
    if !matches!(can.output(), OutputKind::Images | OutputKind::Points) {
        return Err(ApiError::invalid(
            "model",
            format!("model \"{}\": generates {}; use {}", body.model, can.output().describe(), endpoint(can)),
        ));
    }
    let mut body = body;
    if let Some(z) = &body.latents {
        if z.len() != body.count && body.count != 1 {
            return Err(ApiError::invalid(
                "latents",
                format!("latents: {} vectors for count {}; expected as many", z.len(), body.count),
            ));
        }
        body.count = z.len();
    }
    s.limits.check_count(body.count, "count")?;
    s.limits.check_steps(body.steps)?;
    if body.partial.is_some() && !can.partial {
        return Err(ApiError::invalid(
            "partial",
            format!("partial: the {} family cannot complete a partial input", m.card.family),
        ));
    }
    let seed = body.seed.unwrap_or_else(|| s.next_seed());
    body.seed = Some(seed);
    let request = GenerateRequest {
        class: body.class,
        temperature: body.temperature,
        sampler: body.sampler.clone(),
        steps: body.steps,
        guidance: body.guidance,
        partial: body.partial.as_ref().map(partial_input).transpose()?,
        latents: body.latents.as_ref().map(|z| z.concat()),
        ..GenerateRequest::new(body.count, seed)
    };
    check(m, &request)?;
    let generated = s.generate(m, request).await?;
    respond(&body, generated, None)
}

/// Refuses, as the pipeline would, what the model cannot honour.
fn check(m: &ModelHandle, r: &GenerateRequest) -> ApiResult<()> {
    r.check(m.card.family, &m.card.capabilities).map_err(ApiError::from_pipeline)
}

#[utoipa::path(post, path = "/v1/interpolate", tag = "generate", request_body = InterpolateBody,
    responses((status = 200, description = "The images along the way: JSON, or one PNG strip with `format: png`",
               content((GenerateResponse = "application/json"), (String = "image/png"))),
              (status = 400, description = "The model has no latents, or a bad end", body = ErrorBody),
              (status = 401, description = "A key is required", body = ErrorBody),
              (status = 404, description = "No such model", body = ErrorBody),
              (status = 408, description = "Not answered within the server's timeout", body = ErrorBody),
              (status = 413, description = "The body is over the limit", body = ErrorBody),
              (status = 429, description = "The model's queue is full; see Retry-After", body = ErrorBody)))]
pub async fn interpolate(State(s): State<Arc<AppState>>, Body(body): Body<InterpolateBody>) -> ApiResult<Response> {
    let m = s.model(&body.model)?;
    let Some(dim) = m.card.capabilities.latent else {
        return Err(ApiError::invalid(
            "model",
            format!("model \"{}\": the {} family has no latent vectors to interpolate", body.model, m.card.family),
        ));
    };
    if !(2..=64).contains(&body.steps) {
        return Err(ApiError::invalid("steps", format!("steps {}: expected 2 to 64", body.steps)));
    }
    s.limits.check_count(body.steps, "steps")?;
    let a = s.endpoint_latent(m, &body.from, "from", dim).await?;
    let b = s.endpoint_latent(m, &body.to, "to", dim).await?;
    let path: Vec<Vec<f32>> = (0..body.steps).map(|i| slerp(&a, &b, i as f64 / (body.steps - 1) as f64)).collect();
    let request = GenerateRequest {
        class: body.class,
        latents: Some(path.concat()),
        ..GenerateRequest::new(body.steps, body.from.seed.unwrap_or(0))
    };
    check(m, &request)?;
    let generated = s.generate(m, request).await?;
    let echo = GenerateBody {
        model: body.model.clone(),
        count: body.steps,
        seed: None,
        class: body.class,
        temperature: None,
        sampler: None,
        steps: None,
        guidance: None,
        partial: None,
        latents: Some(path.clone()),
        format: body.format,
    };
    respond(&echo, generated, Some(path))
}

/// Spherical interpolation (Shoemake's slerp; White 2016 for generative models' Gaussian
/// latents), linear where the two are (anti)parallel.
pub fn slerp(a: &[f32], b: &[f32], t: f64) -> Vec<f32> {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let cos = (dot / (na * nb)).clamp(-1.0, 1.0);
    let omega = cos.acos();
    let (wa, wb) = if omega.sin().abs() < 1e-6 {
        (1.0 - t, t)
    } else {
        (((1.0 - t) * omega).sin() / omega.sin(), (t * omega).sin() / omega.sin())
    };
    a.iter().zip(b).map(|(x, y)| (wa * *x as f64 + wb * *y as f64) as f32).collect()
}

#[utoipa::path(post, path = "/v1/corrections", tag = "text", request_body = CorrectionBody,
    responses((status = 200, description = "The corrected (or filled) text", body = CorrectionResponse),
              (status = 400, description = "Not a sequence-to-sequence model, or a bad field", body = ErrorBody),
              (status = 401, description = "A key is required", body = ErrorBody),
              (status = 404, description = "No such model", body = ErrorBody),
              (status = 408, description = "Not answered within the server's timeout", body = ErrorBody),
              (status = 413, description = "The body is over the limit", body = ErrorBody),
              (status = 429, description = "The model's queue is full; see Retry-After", body = ErrorBody)))]
pub async fn corrections(
    State(s): State<Arc<AppState>>,
    Body(body): Body<CorrectionBody>,
) -> ApiResult<Json<CorrectionResponse>> {
    let m = s.model(&body.model)?;
    if !m.card.capabilities.correct {
        return Err(ApiError::invalid(
            "model",
            format!(
                "model \"{}\": the {} family does not correct text (a seq2seq corrector does)",
                body.model, m.card.family
            ),
        ));
    }
    s.limits.check_chars(&body.input, "input")?;
    let seed = body.seed.unwrap_or_else(|| s.next_seed());
    let (correct, infill) = match body.task {
        Task::Correct => (Some(body.input.clone()), None),
        Task::Infill => (None, Some(body.input.clone())),
    };
    let request = GenerateRequest {
        correct,
        infill,
        beam: body.beam,
        temperature: body.temperature,
        ..GenerateRequest::new(1, seed)
    };
    // The model names the text by its request field (`correct`, `infill`): here it is `input`.
    let as_input = |mut e: ApiError| {
        if let Some(p) = e.param.as_deref().filter(|p| matches!(*p, "correct" | "infill")) {
            e.message = e.message.replacen(p, "input", 1);
            e.param = Some("input".into());
        }
        e
    };
    check(m, &request).map_err(as_input)?;
    let output = match s.generate(m, request).await.map_err(as_input)? {
        Generated::Text(t) => t.into_iter().next().unwrap_or_default(),
        _ => return Err(ApiError::internal("the model answered with no text")),
    };
    Ok(Json(CorrectionResponse { model: body.model, input: body.input, output, task: body.task, seed }))
}

fn respond(body: &GenerateBody, generated: Generated, latents: Option<Vec<Vec<f32>>>) -> ApiResult<Response> {
    let seed = body.seed.unwrap_or(0);
    // An interpolation is one strip; other samples a square grid.
    let strip = latents.is_some();
    let mut response = GenerateResponse {
        model: body.model.clone(),
        seed,
        count: body.count,
        description: String::new(),
        shape: None,
        images: None,
        points: None,
        latents,
        request: body.clone(),
    };
    match generated {
        Generated::Images(im) => {
            if body.format == Format::Png {
                let cols = if strip { im.n } else { (im.n as f64).sqrt().ceil() as usize };
                let bytes = if im.n == 1 { png(&im.pixels, im.shape) } else { grid_png(&im, cols) };
                let mut r = ([(header::CONTENT_TYPE, "image/png")], bytes).into_response();
                r.headers_mut().insert("x-genlab-seed", HeaderValue::from(seed));
                return Ok(r);
            }
            response.description = im.description.clone();
            response.shape = Some(im.shape.to_vec());
            response.images = Some(pngs(&im));
        }
        Generated::Points(p) => {
            if body.format == Format::Png {
                return Err(ApiError::invalid("format", "format \"png\": the model draws points; ask for json"));
            }
            response.description = "points drawn from the model".into();
            response.points = Some(p.chunks(2).map(|c| c.to_vec()).collect());
        }
        Generated::Text(_) => return Err(ApiError::internal("the model answered with text")),
    }
    let mut r = Json(response).into_response();
    r.headers_mut().insert("x-genlab-seed", HeaderValue::from(seed));
    Ok(r)
}

impl AppState {
    /// The model named `name`, or 404.
    pub fn model(&self, name: &str) -> ApiResult<&ModelHandle> {
        self.models
            .get(name)
            .ok_or_else(|| ApiError::unknown_model(name, &self.models.keys().cloned().collect::<Vec<_>>()))
    }

    /// Queues `job` on `m`, or 429 when its queue is full.
    pub fn submit(&self, m: &ModelHandle, job: Job) -> ApiResult<()> {
        if m.submit(job) {
            return Ok(());
        }
        let name = &m.card.name;
        let message =
            format!("model \"{name}\": its queue of {} requests is full; try again later", self.batching.queue);
        Err(ApiError::busy("queue_full", &message, 1))
    }

    /// The answer on `rx` within the server's timeout, or 408.
    pub async fn wait<T>(&self, rx: oneshot::Receiver<T>) -> ApiResult<T> {
        match tokio::time::timeout(self.limits.timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) | Err(_) => Err(ApiError::timeout(self.limits.timeout.as_secs_f64())),
        }
    }

    /// What `request` generates on `m`, through its queue.
    pub async fn generate(&self, m: &ModelHandle, request: GenerateRequest) -> ApiResult<Generated> {
        let (reply, rx) = oneshot::channel::<Answer>();
        let deadline = Instant::now() + self.limits.timeout;
        self.submit(m, Job::Generate { request, deadline, reply })?;
        self.wait(rx).await?.map_err(failure)
    }

    async fn endpoint_latent(&self, m: &ModelHandle, e: &Endpoint, field: &str, dim: usize) -> ApiResult<Vec<f32>> {
        match (e.seed, &e.latent) {
            (Some(_), Some(_)) | (None, None) => Err(ApiError::invalid(
                field,
                format!("{field}: expected either a seed or a latent, not both or neither"),
            )),
            (None, Some(z)) if z.len() != dim || z.iter().any(|v| !v.is_finite()) => Err(ApiError::invalid(
                &format!("{field}.latent"),
                format!("{field}.latent: {} values; expected {dim} finite numbers", z.len()),
            )),
            (None, Some(z)) => Ok(z.clone()),
            (Some(seed), None) => {
                let (reply, rx) = oneshot::channel();
                self.submit(m, Job::Latents { seed, count: 1, reply })?;
                self.wait(rx).await?.ok_or_else(|| ApiError::internal("the model drew no latent"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slerp_keeps_the_ends_and_the_norm_between_orthogonal_unit_vectors() {
        let (a, b) = (vec![1.0f32, 0.0, 0.0], vec![0.0f32, 1.0, 0.0]);
        assert_eq!(slerp(&a, &b, 0.0), a);
        assert_eq!(slerp(&a, &b, 1.0).iter().map(|v| v.round()).collect::<Vec<_>>(), b);
        let mid = slerp(&a, &b, 0.5);
        let h = std::f64::consts::FRAC_1_SQRT_2 as f32;
        assert!((mid[0] - h).abs() < 1e-6 && (mid[1] - h).abs() < 1e-6 && mid[2] == 0.0, "{mid:?}");
        // Parallel vectors fall back to a straight line.
        assert_eq!(slerp(&a, &a, 0.3), a);
    }
}
