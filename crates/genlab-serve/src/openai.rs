//! OpenAI's text endpoints, `POST /v1/completions` and `POST /v1/chat/completions`, with their
//! request and response shapes and `stream: true` as server-sent events, so OpenAI's clients
//! work unchanged. A chat is continued as one text: the messages' contents, a line each.

use crate::body::Body;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::worker::{Answer, Failure, Job, ModelHandle};
use crate::AppState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use genlab_pipeline::generate::{GenerateRequest, Generated, OutputKind};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot};
use utoipa::ToSchema;

/// A string, or a list of them (OpenAI's `prompt` and `stop`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// `stream_options`: OpenAI's `include_usage` adds a last chunk with the token counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// `POST /v1/completions`: OpenAI's completion request (the fields genlab's models honour).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletionBody {
    pub model: String,
    /// The text to continue (a list of one text is taken too).
    pub prompt: OneOrMany,
    /// Tokens to generate (16 when not given, as OpenAI's default).
    #[schema(minimum = 1, maximum = 1000000)]
    pub max_tokens: Option<usize>,
    /// Softmax temperature, 0 to 2 (1 when not given; 0 is greedy).
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f64>,
    /// Nucleus sampling's probability mass, in (0, 1].
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub top_p: Option<f64>,
    /// Completions to generate, each with its own seed (seed, seed + 1, ...).
    #[schema(minimum = 1, maximum = 16)]
    pub n: Option<usize>,
    /// Stop before any of these strings (at most 4).
    pub stop: Option<OneOrMany>,
    pub seed: Option<u64>,
    /// Stream the text as server-sent events.
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    /// Kept for OpenAI clients; not used.
    pub user: Option<String>,
}

/// A chat message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
    pub name: Option<String>,
}

/// `POST /v1/chat/completions`: OpenAI's chat request. The model continues the messages'
/// contents, a line each: genlab's language models are not instruction-tuned.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatBody {
    pub model: String,
    pub messages: Vec<Message>,
    #[schema(minimum = 1, maximum = 1000000)]
    pub max_tokens: Option<usize>,
    /// OpenAI's newer name for `max_tokens`.
    #[schema(minimum = 1, maximum = 1000000)]
    pub max_completion_tokens: Option<usize>,
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub temperature: Option<f64>,
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub top_p: Option<f64>,
    #[schema(minimum = 1, maximum = 16)]
    pub n: Option<usize>,
    pub stop: Option<OneOrMany>,
    pub seed: Option<u64>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub user: Option<String>,
}

/// Token counts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
}

/// A completion choice.
#[derive(Debug, Serialize, ToSchema)]
pub struct CompletionChoice {
    pub text: String,
    pub index: usize,
    /// Always null: genlab does not return log-probabilities.
    #[schema(value_type = Option<String>)]
    pub logprobs: Option<()>,
    /// `stop` or `length`; null in a stream's chunks before the last.
    pub finish_reason: Option<String>,
}

/// OpenAI's completion object (`text_completion`), whole or as one streamed chunk.
#[derive(Debug, Serialize, ToSchema)]
pub struct Completion {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    pub usage: Option<Usage>,
    /// The seed used.
    pub system_fingerprint: String,
}

/// An assistant message.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantMessage {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatChoice {
    pub index: usize,
    pub message: AssistantMessage,
    #[schema(value_type = Option<String>)]
    pub logprobs: Option<()>,
    pub finish_reason: String,
}

/// OpenAI's chat completion object.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatCompletion {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: Usage,
    pub system_fingerprint: String,
}

#[derive(Debug, Serialize)]
struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
}

#[derive(Debug, Serialize)]
struct ChunkChoice {
    index: usize,
    delta: Delta,
    logprobs: Option<()>,
    finish_reason: Option<String>,
}

#[derive(Debug, Serialize)]
struct ChatChunk {
    id: String,
    object: &'static str,
    created: u64,
    model: String,
    choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
    system_fingerprint: String,
}

/// What both text endpoints ask, in genlab's terms.
struct TextAsk {
    model: String,
    prompt: String,
    max_tokens: usize,
    temperature: Option<f64>,
    top_p: Option<f64>,
    n: usize,
    stop: Vec<String>,
    seed: u64,
    stream: bool,
    include_usage: bool,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl AppState {
    fn text_model(&self, name: &str) -> ApiResult<&ModelHandle> {
        let m = self.model(name)?;
        let c = &m.card.capabilities;
        if c.output() != OutputKind::Text || !c.prompt {
            let use_instead = if c.correct { "/v1/corrections" } else { "/v1/generate" };
            return Err(ApiError::invalid(
                "model",
                format!("model \"{name}\": the {} family does not continue a prompt; use {use_instead}", m.card.family),
            ));
        }
        Ok(m)
    }

    fn text_ask(&self, ask: &TextAsk, m: &ModelHandle) -> ApiResult<GenerateRequest> {
        if ask.max_tokens == 0 || ask.max_tokens > self.limits.max_tokens {
            return Err(ApiError::invalid(
                "max_tokens",
                format!(
                    "max_tokens {}: expected 1 to {}, this server's --max-tokens",
                    ask.max_tokens, self.limits.max_tokens
                ),
            ));
        }
        if let Some(t) = ask.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
            return Err(ApiError::invalid("temperature", format!("temperature {t}: expected 0 to 2")));
        }
        if !(1..=16).contains(&ask.n) {
            return Err(ApiError::invalid("n", format!("n {}: expected 1 to 16", ask.n)));
        }
        if ask.stream && ask.n > 1 {
            return Err(ApiError::invalid("n", format!("n {}: a stream carries one completion; expected 1", ask.n)));
        }
        if ask.stop.len() > 4 || ask.stop.iter().any(String::is_empty) {
            return Err(ApiError::invalid("stop", "stop: expected up to 4 non-empty strings"));
        }
        self.limits.check_chars(&ask.prompt, "prompt")?;
        let request = GenerateRequest {
            prompt: Some(ask.prompt.clone()),
            max_tokens: Some(ask.max_tokens),
            temperature: ask.temperature,
            top_p: ask.top_p,
            stop: ask.stop.clone(),
            ..GenerateRequest::new(ask.n, ask.seed)
        };
        request.check(m.card.family, &m.card.capabilities).map_err(ApiError::from_pipeline)?;
        Ok(request)
    }

    /// The completions of `ask`, each without its prompt, and why each ended.
    async fn complete(&self, ask: &TextAsk, m: &ModelHandle) -> ApiResult<Vec<(String, String, Usage)>> {
        let request = self.text_ask(ask, m)?;
        let texts = match self.generate(m, request).await? {
            Generated::Text(t) => t,
            _ => return Err(ApiError::internal("the model answered with no text")),
        };
        let tokenizer = m.card.tokenizer.as_deref();
        Ok(texts
            .into_iter()
            .map(|t| {
                let completion = strip_prompt(&t, &ask.prompt);
                let (reason, usage) = finished(tokenizer, ask, &completion);
                (completion, reason, usage)
            })
            .collect())
    }
}

fn strip_prompt(text: &str, prompt: &str) -> String {
    text.strip_prefix(prompt).unwrap_or(text).to_string()
}

/// A completion's finish reason and token counts: `length` when it used `max_tokens` (counted by
/// the model's tokenizer; a character model without one counts characters).
fn finished(tokenizer: Option<&genlab_data::Tokenizer>, ask: &TextAsk, completion: &str) -> (String, Usage) {
    let count = |t: &str| tokenizer.map_or(t.chars().count(), |k| k.encode_lossy(t).0.len());
    let completion_tokens = count(completion);
    let prompt_tokens = count(&ask.prompt);
    let reason = if completion_tokens >= ask.max_tokens { "length" } else { "stop" };
    (reason.into(), Usage { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens })
}

impl CompletionBody {
    fn ask(self, s: &AppState) -> TextAsk {
        let prompt = self.prompt.into_vec().join("");
        TextAsk {
            model: self.model,
            prompt,
            max_tokens: self.max_tokens.unwrap_or(16),
            temperature: self.temperature,
            top_p: self.top_p,
            n: self.n.unwrap_or(1),
            stop: self.stop.map(OneOrMany::into_vec).unwrap_or_default(),
            seed: self.seed.unwrap_or_else(|| s.next_seed()),
            stream: self.stream,
            include_usage: self.stream_options.is_some_and(|o| o.include_usage),
        }
    }
}

impl ChatBody {
    fn ask(self, s: &AppState) -> ApiResult<TextAsk> {
        if self.messages.is_empty() {
            return Err(ApiError::invalid("messages", "messages: expected at least one message"));
        }
        if let Some(m) =
            self.messages.iter().find(|m| !matches!(m.role.as_str(), "system" | "user" | "assistant" | "developer"))
        {
            return Err(ApiError::invalid(
                "messages",
                format!("messages: role \"{}\": expected system, developer, user or assistant", m.role),
            ));
        }
        let mut prompt: String = self.messages.iter().map(|m| format!("{}\n", m.content)).collect();
        if self.messages.last().is_some_and(|m| m.role == "assistant") {
            prompt.pop();
        }
        Ok(TextAsk {
            model: self.model,
            prompt,
            max_tokens: self.max_completion_tokens.or(self.max_tokens).unwrap_or(256),
            temperature: self.temperature,
            top_p: self.top_p,
            n: self.n.unwrap_or(1),
            stop: self.stop.map(OneOrMany::into_vec).unwrap_or_default(),
            seed: self.seed.unwrap_or_else(|| s.next_seed()),
            stream: self.stream,
            include_usage: self.stream_options.is_some_and(|o| o.include_usage),
        })
    }
}

#[utoipa::path(post, path = "/v1/completions", tag = "text", request_body = CompletionBody,
    responses((status = 200, description = "The completion; with `stream: true`, server-sent events of completion chunks ending with `[DONE]`",
               content((Completion = "application/json"), (String = "text/event-stream"))),
              (status = 400, description = "A field the model cannot honour, or out of range", body = ErrorBody),
              (status = 401, description = "A key is required", body = ErrorBody),
              (status = 404, description = "No such model", body = ErrorBody),
              (status = 408, description = "Not answered within the server's timeout", body = ErrorBody),
              (status = 413, description = "The body is over the limit", body = ErrorBody),
              (status = 429, description = "The model's queue is full; see Retry-After", body = ErrorBody)))]
pub async fn completions(State(s): State<Arc<AppState>>, Body(body): Body<CompletionBody>) -> ApiResult<Response> {
    let m = s.text_model(&body.model)?;
    let ask = body.ask(&s);
    let id = format!("cmpl-{:016x}", s.next_seed());
    if ask.stream {
        return stream(&s, m, ask, id, false);
    }
    let done = s.complete(&ask, m).await?;
    let usage = sum_usage(done.iter().map(|d| &d.2));
    let choices = done
        .into_iter()
        .enumerate()
        .map(|(index, (text, reason, _))| CompletionChoice { text, index, logprobs: None, finish_reason: Some(reason) })
        .collect();
    let c = Completion {
        id,
        object: "text_completion".into(),
        created: now(),
        model: ask.model,
        choices,
        usage: Some(usage),
        system_fingerprint: format!("seed-{}", ask.seed),
    };
    Ok(Json(c).into_response())
}

fn sum_usage<'a>(u: impl Iterator<Item = &'a Usage>) -> Usage {
    let mut total = Usage { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
    for x in u {
        total.prompt_tokens = x.prompt_tokens;
        total.completion_tokens += x.completion_tokens;
    }
    total.total_tokens = total.prompt_tokens + total.completion_tokens;
    total
}

#[utoipa::path(post, path = "/v1/chat/completions", tag = "text", request_body = ChatBody,
    responses((status = 200, description = "The chat completion; with `stream: true`, server-sent events of chunks ending with `[DONE]`",
               content((ChatCompletion = "application/json"), (String = "text/event-stream"))),
              (status = 400, description = "A field the model cannot honour, or out of range", body = ErrorBody),
              (status = 401, description = "A key is required", body = ErrorBody),
              (status = 404, description = "No such model", body = ErrorBody),
              (status = 408, description = "Not answered within the server's timeout", body = ErrorBody),
              (status = 413, description = "The body is over the limit", body = ErrorBody),
              (status = 429, description = "The model's queue is full; see Retry-After", body = ErrorBody)))]
pub async fn chat_completions(State(s): State<Arc<AppState>>, Body(body): Body<ChatBody>) -> ApiResult<Response> {
    let m = s.text_model(&body.model)?;
    let ask = body.ask(&s)?;
    let id = format!("chatcmpl-{:016x}", s.next_seed());
    if ask.stream {
        return stream(&s, m, ask, id, true);
    }
    let done = s.complete(&ask, m).await?;
    let usage = sum_usage(done.iter().map(|d| &d.2));
    let choices = done
        .into_iter()
        .enumerate()
        .map(|(index, (content, reason, _))| ChatChoice {
            index,
            message: AssistantMessage { role: "assistant".into(), content },
            logprobs: None,
            finish_reason: reason,
        })
        .collect();
    let c = ChatCompletion {
        id,
        object: "chat.completion".into(),
        created: now(),
        model: ask.model,
        choices,
        usage,
        system_fingerprint: format!("seed-{}", ask.seed),
    };
    Ok(Json(c).into_response())
}

/// Where a stream is.
enum Phase {
    /// Sending the text as it comes.
    Text,
    /// The generation ended: the last chunk (with the finish reason) is next.
    Finish(Result<(String, Usage), ApiError>),
    Done,
    Over,
}

struct Streaming {
    chunks: mpsc::UnboundedReceiver<String>,
    reply: Option<oneshot::Receiver<Answer>>,
    /// Whether the prompt's piece came.
    started: bool,
    /// The newest piece, sent when the next arrives.
    held: Option<String>,
    phase: Phase,
    id: String,
    model: String,
    created: u64,
    chat: bool,
    first: bool,
    ask: TextAsk,
    /// The model's tokenizer, to count tokens.
    tokenizer: Option<Arc<genlab_data::Tokenizer>>,
}

fn stream(s: &AppState, m: &ModelHandle, ask: TextAsk, id: String, chat: bool) -> ApiResult<Response> {
    let request = s.text_ask(&ask, m)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let (reply, reply_rx) = oneshot::channel();
    let deadline = Instant::now() + s.limits.timeout;
    s.submit(m, Job::Stream { request, deadline, chunks: tx, reply })?;
    let st = Streaming {
        chunks: rx,
        reply: Some(reply_rx),
        started: false,
        held: None,
        phase: Phase::Text,
        id,
        model: ask.model.clone(),
        created: now(),
        chat,
        first: true,
        tokenizer: m.card.tokenizer.clone(),
        ask,
    };
    let events = futures_util::stream::unfold(st, |mut st| async move {
        loop {
            match std::mem::replace(&mut st.phase, Phase::Over) {
                Phase::Text => match st.chunks.recv().await {
                    Some(piece) => {
                        st.phase = Phase::Text;
                        // The family streams the prompt, the completion's pieces, then a blank
                        // line that parts samples: the first piece is skipped and each piece
                        // held back until the next arrives, so the last one is never sent.
                        if !std::mem::replace(&mut st.started, true) {
                            continue;
                        }
                        match st.held.replace(piece) {
                            Some(p) if !p.is_empty() => {
                                let event = st.chunk(Some(p), None, None);
                                return Some((Ok::<Event, std::convert::Infallible>(event), st));
                            }
                            _ => continue,
                        }
                    }
                    None => {
                        let answer = match st.reply.take() {
                            Some(rx) => rx.await.unwrap_or_else(|_| {
                                Err(Failure::Refused(
                                    "timeout: the request was not started within the server's timeout".into(),
                                ))
                            }),
                            None => Err(Failure::Failed("no answer".into())),
                        };
                        st.phase = Phase::Finish(match answer {
                            Ok(Generated::Text(t)) => {
                                let completion = strip_prompt(t.first().map_or("", String::as_str), &st.ask.prompt);
                                Ok(finished(st.tokenizer.as_deref(), &st.ask, &completion))
                            }
                            Ok(_) => Err(ApiError::internal("the model answered with no text")),
                            Err(f) => Err(crate::api::failure(f)),
                        });
                    }
                },
                Phase::Finish(Ok((reason, usage))) => {
                    st.phase = Phase::Done;
                    let usage = st.ask.include_usage.then_some(usage);
                    let event = st.chunk(None, Some(reason), usage);
                    return Some((Ok(event), st));
                }
                Phase::Finish(Err(e)) => {
                    st.phase = Phase::Done;
                    let body = serde_json::json!({"error": {"message": e.message, "type": "server_error", "param": e.param, "code": e.code}});
                    return Some((Ok(Event::default().data(body.to_string())), st));
                }
                Phase::Done => {
                    st.phase = Phase::Over;
                    return Some((Ok(Event::default().data("[DONE]")), st));
                }
                Phase::Over => return None,
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

impl Streaming {
    /// One chunk event: a piece of text, or the last one with the finish reason.
    fn chunk(&mut self, text: Option<String>, reason: Option<String>, usage: Option<Usage>) -> Event {
        let fingerprint = format!("seed-{}", self.ask.seed);
        let json = if self.chat {
            let role = std::mem::take(&mut self.first).then(|| "assistant".to_string());
            let chunk = ChatChunk {
                id: self.id.clone(),
                object: "chat.completion.chunk",
                created: self.created,
                model: self.model.clone(),
                choices: vec![ChunkChoice {
                    index: 0,
                    delta: Delta { role, content: text },
                    logprobs: None,
                    finish_reason: reason,
                }],
                usage,
                system_fingerprint: fingerprint,
            };
            serde_json::to_string(&chunk)
        } else {
            let chunk = Completion {
                id: self.id.clone(),
                object: "text_completion".into(),
                created: self.created,
                model: self.model.clone(),
                choices: vec![CompletionChoice {
                    text: text.unwrap_or_default(),
                    index: 0,
                    logprobs: None,
                    finish_reason: reason,
                }],
                usage,
                system_fingerprint: fingerprint,
            };
            serde_json::to_string(&chunk)
        };
        Event::default().data(json.expect("a chunk serialises"))
    }
}
