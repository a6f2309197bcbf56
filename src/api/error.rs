//! Every error the API answers with: a status and `{"error": ..., "detail": ...}`.

use crate::event::PayloadError;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// Every error the API answers with: a status and `{"error": ..., "detail": ...}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: String,
    pub detail: Value,
    /// Sent as `Retry-After` (whole seconds, at least 1).
    pub retry_after: Option<std::time::Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            detail: Value::Null,
            retry_after: None,
        }
    }

    pub fn retry_after(mut self, after: std::time::Duration) -> ApiError {
        self.retry_after = Some(after);
        self
    }

    pub fn with_detail(mut self, detail: Value) -> ApiError {
        self.detail = detail;
        self
    }

    /// A value outside a closed list (`?kind=`, `assume`): a 400 naming the field and
    /// every value it accepts, so a typo is told rather than matching nothing.
    pub fn unaccepted(
        field: &str,
        message: impl Into<String>,
        accepted: impl IntoIterator<Item = &'static str>,
    ) -> ApiError {
        let accepted: Vec<&str> = accepted.into_iter().collect();
        ApiError::new(StatusCode::BAD_REQUEST, message)
            .with_detail(json!({ "field": field, "accepted": accepted }))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.error });
        if !self.detail.is_null() {
            body["detail"] = self.detail;
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(after) = self.retry_after {
            let seconds = after.as_secs().max(1);
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<PayloadError> for ApiError {
    fn from(err: PayloadError) -> ApiError {
        match &err {
            PayloadError::Syntax { line, column, .. } => {
                ApiError::new(StatusCode::BAD_REQUEST, err.to_string())
                    .with_detail(json!({ "line": line, "column": column }))
            }
            PayloadError::Shape { path, .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
                    .with_detail(json!({ "field": path }))
            }
            PayloadError::TooLarge { index, label, .. }
            | PayloadError::InvalidLabels { index, label, .. } => {
                let mut detail = json!({ "alert": index });
                if let Some(label) = label {
                    detail["label"] = json!(label);
                }
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, err.to_string()).with_detail(detail)
            }
        }
    }
}

pub(super) const BODY_TOO_LARGE: &str =
    "request body is larger than the configured limit (api.max_body_bytes)";

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> ApiError {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            BODY_TOO_LARGE.to_string()
        } else {
            rejection.body_text()
        };
        ApiError::new(status, message)
    }
}
