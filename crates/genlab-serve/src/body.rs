//! Request bodies: read within the body limit, parsed as JSON with the failing field named.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

/// The largest request body, in bytes (a request extension the router sets).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A JSON body of type `T`; a body over the limit answers 413, anything else that does not parse
/// answers 400 naming the field.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(limit)
            } else {
                ApiError::bad_body(format!("the request body could not be read: {}", e.body_text()))
            }
        })?;
        parse(&bytes).map(Body)
    }
}

/// `bytes` as a `T`, or a 400 naming the field at fault.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_body(format!("the body is not JSON: {message}"));
        }
        // serde names an unknown or missing field in backquotes; otherwise the path names it.
        let quoted = message.split('`').nth(1).map(str::to_string);
        // serde_path_to_error's path ends with an unknown field; a missing one is named in the
        // message, under the object that lacks it.
        let named = match (message.starts_with("missing field"), quoted) {
            (true, Some(field)) if path == "." => field,
            (true, Some(field)) => format!("{path}.{field}"),
            _ => path,
        };
        let message = message.split(" at line ").next().unwrap_or(&message).to_string();
        if named == "." || named.is_empty() {
            ApiError::bad_body(format!("the body: {message}"))
        } else {
            ApiError::invalid(&named, format!("{named}: {message}"))
        }
    })?;
    de.end().map_err(|e| ApiError::bad_body(format!("the body is not one JSON value: {e}")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        model: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: usize,
    }

    fn refusal(body: &str) -> (Option<String>, String) {
        let e = parse::<Outer>(body.as_bytes()).unwrap_err();
        (e.param, e.message)
    }

    #[test]
    fn each_refusal_names_the_field() {
        assert_eq!(refusal(r#"{"model": "a", "colour": 1}"#).0.as_deref(), Some("colour"));
        assert_eq!(refusal(r#"{"inner": {"count": 1}}"#).0.as_deref(), Some("model"));
        assert_eq!(refusal(r#"{"model": "a", "inner": {}}"#).0.as_deref(), Some("inner.count"));
        assert_eq!(refusal(r#"{"model": "a", "inner": {"count": -1}}"#).0.as_deref(), Some("inner.count"));
        assert_eq!(refusal(r#"{"model": "a", "inner": {"count": 1, "x": 2}}"#).0.as_deref(), Some("inner.x"));
        let (param, message) = refusal(r#"{"model": "a""#);
        assert_eq!(param, None);
        assert!(message.starts_with("the body is not JSON"), "{message}");
        let (param, message) = refusal(r#"{"model": "a"} {}"#);
        assert_eq!(param, None);
        assert!(message.contains("not one JSON value"), "{message}");
        assert!(parse::<Outer>(br#"{"model": "a", "inner": {"count": 3}}"#).is_ok());
    }
}
