//! The one error answer: a status code and OpenAI's error object, `{"error": {"message", "type",
//! "param", "code"}}`, where `param` names the request field at fault.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, in OpenAI's shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// One line: the field or value, and what was expected.
    pub message: String,
    /// `invalid_request_error`, `not_found_error`, `authentication_error`, `rate_limit_error`,
    /// `timeout_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault, when one is.
    pub param: Option<String>,
    /// A short machine-readable reason.
    pub code: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub param: Option<String>,
    pub message: String,
    pub code: &'static str,
    /// Seconds a client should wait before it tries again (429).
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(status: StatusCode, code: &'static str, param: Option<&str>, message: impl Into<String>) -> Self {
        ApiError { status, param: param.map(str::to_string), message: message.into(), code, retry_after: None }
    }

    /// 400: a field's value is not what the server can take.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_value", Some(param), message)
    }

    /// 400 with no one field to blame (the body is not JSON).
    pub fn bad_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", None, message)
    }

    pub fn unknown_model(name: &str, known: &[String]) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            Some("model"),
            format!("model \"{name}\": no such model; this server has {}", known.join(", ")),
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", None, message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None, "this path does not take that method")
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            None,
            "expected the header `Authorization: Bearer KEY` with this server's key",
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            None,
            format!("the request body is over {limit} bytes, this server's --max-body"),
        )
    }

    /// 429: `code` is `queue_full` (a model's queue) or `too_many_requests` (the server's bound
    /// on requests in progress).
    pub fn busy(code: &'static str, what: &str, retry_after: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, code, None, what.to_string());
        e.retry_after = Some(retry_after);
        e
    }

    pub fn timeout(seconds: f64) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            Some("timeout"),
            format!("the request was not answered within {seconds} s, this server's --timeout; ask for less"),
        )
    }

    /// 500: a failure inside the generation (this request's only).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "generation_failed", None, message)
    }

    /// A pipeline refusal ("temperature: the vae family has no sampling temperature"): its first
    /// word names the field.
    pub fn from_pipeline(e: genlab_pipeline::PipelineError) -> Self {
        Self::refused(&e.to_string())
    }

    /// A model's refusal, whose first word names the field (the command line's `--correct` is
    /// the API's `correct`).
    pub fn refused(message: &str) -> Self {
        let message = message.strip_prefix("--").unwrap_or(message).to_string();
        let param = message.split([':', ' ']).next().filter(|w| !w.is_empty()).map(str::to_string);
        ApiError { status: StatusCode::BAD_REQUEST, param, message, code: "invalid_value", retry_after: None }
    }

    fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::NOT_FOUND => "not_found_error",
            StatusCode::UNAUTHORIZED => "authentication_error",
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            StatusCode::REQUEST_TIMEOUT => "timeout_error",
            s if s.is_server_error() => "server_error",
            _ => "invalid_request_error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                kind: self.kind().into(),
                message: self.message,
                param: self.param,
                code: self.code.into(),
            },
        };
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}
