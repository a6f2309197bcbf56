//! The one way a JSON body comes in: media type, size (413 past `api.max_body_bytes`,
//! at once when `Content-Length` says so), time (408 past `api.body_read_timeout`),
//! UTF-8, and parse errors with their line, column or field, for every endpoint alike.

use super::ApiError;
use crate::event::parse_json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How much body a request may have and how long it may take to arrive; the router
/// puts it on every request (`api::app`), read from the config at that moment.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    pub read_timeout: Duration,
}

/// A request body checked to be JSON text; parsing is the endpoint's (Alertmanager
/// payloads and native events have parsers of their own).
pub struct JsonBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<JsonBody, ApiError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime != "application/json"
            && !(mime.starts_with("application/") && mime.ends_with("+json"))
        {
            return Err(ApiError::NotJson(content_type));
        }
        let body = read_body(request, state).await?;
        if let Err(e) = std::str::from_utf8(&body) {
            return Err(ApiError::NotUtf8(e.valid_up_to()));
        }
        Ok(JsonBody(body))
    }
}

/// The body within [`BodyLimits`]: a client that announces more than it may send is
/// answered at once rather than waited for, and one that stops sending is answered 408
/// (hyper then closes the connection, as the rest of the body was never read).
pub(super) async fn read_body<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<Bytes, ApiError> {
    let limits = request.extensions().get::<BodyLimits>().copied();
    let Some(limits) = limits else {
        return Ok(Bytes::from_request(request, state).await?);
    };
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limits.max_bytes as u64) {
        return Err(ApiError::TooLarge);
    }
    // A body without a length, or longer than it said, is cut off at the limit (413).
    let request = request
        .map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limits.max_bytes)));
    match tokio::time::timeout(limits.read_timeout, Bytes::from_request(request, state)).await {
        Ok(body) => Ok(body?),
        Err(_) => Err(ApiError::BodyTimeout(limits.read_timeout)),
    }
}

impl JsonBody {
    /// Parses the body as `T`: a syntax error is a 400 with its line and column, a value
    /// of the wrong shape a 422 naming the field.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let value = parse_json(&self.0)?;
        serde_path_to_error::deserialize(&value).map_err(|e| ApiError::Shape {
            field: e.path().to_string(),
            message: e.into_inner().to_string(),
        })
    }
}
