//! Every error the API answers with: a status and `{"error": ..., "detail": ...}`.
//!
//! Handlers return `Result<_, ApiError>` and use `?`: each error they meet converts
//! into the variant that says how it is answered (status, detail, `Retry-After`).

use super::Role;
use crate::engine::{ApprovalError, LoadError, PageError, WindowError};
use crate::event::PayloadError;
use crate::ingest::IntakeError;
use crate::model::format_duration;
use crate::model::rate::ParseError;
use crate::replay::ReplayError;
use crate::report::ReportError;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::time::Duration;

/// How long a sender waits before trying again when the trail could not take its
/// events or salve cannot decide them now.
const UNRECORDED_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Every error the API answers with: a status and `{"error": ..., "detail": ...}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A duration parameter (`since`) that does not parse: 400.
    #[error("{field}: {source}")]
    BadDuration {
        field: &'static str,
        #[source]
        source: ParseError,
    },
    /// `?before=` that is not a cursor this API gave: 400.
    #[error("before: {0:?} is not a cursor this API gave")]
    BadCursor(String),
    /// `DELETE /api/v1/maintenance` without `?id=`: 400.
    #[error("name the window: ?id=...")]
    NoWindowNamed,
    /// A value outside a closed list (`?kind=`, `assume`): a 400 naming the field and
    /// every value it accepts, so a typo is told rather than matching nothing.
    #[error("{message}")]
    Unaccepted {
        field: &'static str,
        message: String,
        accepted: Vec<&'static str>,
    },
    /// A query string axum could not read: 400 with its text.
    #[error("{}", .0.body_text())]
    Query(#[from] QueryRejection),
    /// A body axum could not read: its status and text.
    #[error("{}", rejection_text(.0))]
    Body(#[from] BytesRejection),
    /// A body past `api.max_body_bytes`: 413.
    #[error("{BODY_TOO_LARGE}")]
    TooLarge,
    /// A body that did not arrive within `api.body_read_timeout`: 408.
    #[error(
        "the request body did not arrive within {} (api.body_read_timeout)",
        format_duration(*.0)
    )]
    BodyTimeout(Duration),
    /// A body that is not JSON by its `Content-Type`: 415.
    #[error("expected Content-Type: application/json, got {0:?}")]
    NotJson(String),
    /// A body that is not UTF-8: 400 with the byte where it stops being so.
    #[error("body is not valid UTF-8 (at byte {0})")]
    NotUtf8(usize),
    /// An Alertmanager or native payload that does not parse or passes the bounds.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// A JSON body of the wrong shape for the endpoint: 422 naming the field.
    #[error("field `{field}`: {message}")]
    Shape { field: String, message: String },
    /// Events the engine did not take.
    #[error(transparent)]
    Intake(#[from] IntakeError),
    /// A maintenance window change the engine refused.
    #[error(transparent)]
    Window(#[from] WindowError),
    /// An answer to an approval that was not taken: 404, 403, 409 (already decided),
    /// 410 (expired), 503 (not recorded).
    #[error(transparent)]
    Approval(#[from] ApprovalError),
    /// A request to the Slack interactions endpoint not taken: 404 (no Slack channel
    /// has a signing secret), 401 (not signed, or too old), 400 (not Slack's payload).
    #[error(transparent)]
    Slack(#[from] super::SlackError),
    /// A reload that failed: 400, with the errors as detail.
    #[error("reload refused; the previous rules keep running")]
    ReloadRefused(#[source] LoadError),
    /// Missing or wrong credentials: 401.
    #[error("missing or wrong credentials")]
    Unauthorized,
    /// A caller whose role does not take the route: 403 naming the caller, their role
    /// and the roles that would.
    #[error("{name} has the role {role}; {method} {path} needs {}", one_of(needs))]
    Forbidden {
        name: String,
        role: Role,
        method: String,
        path: String,
        needs: Vec<Role>,
    },
    /// A path no endpoint serves: 404.
    #[error("no such endpoint")]
    NoSuchEndpoint,
    /// A method the path does not take: 405 with the methods it takes.
    #[error("{path} does not take {method}; it takes {}", .allow.join(", "))]
    MethodNotAllowed {
        path: String,
        method: String,
        allow: Vec<String>,
    },
    /// What salve failed at while answering: 500, with its causes on one line.
    #[error(transparent)]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

pub(super) const BODY_TOO_LARGE: &str =
    "request body is larger than the configured limit (api.max_body_bytes)";

/// "admin", "sender or admin", "viewer, approver or admin".
fn one_of(roles: &[Role]) -> String {
    match roles {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => {
            let rest: Vec<&str> = rest.iter().map(|r| r.as_str()).collect();
            format!("{} or {last}", rest.join(", "))
        }
    }
}

fn rejection_text(rejection: &BytesRejection) -> String {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        BODY_TOO_LARGE.to_string()
    } else {
        rejection.body_text()
    }
}

impl ApiError {
    /// A value outside a closed list, answered with every value `field` accepts.
    pub fn unaccepted(
        field: &'static str,
        message: impl Into<String>,
        accepted: impl IntoIterator<Item = &'static str>,
    ) -> ApiError {
        ApiError::Unaccepted {
            field,
            message: message.into(),
            accepted: accepted.into_iter().collect(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadDuration { .. }
            | ApiError::BadCursor(_)
            | ApiError::NoWindowNamed
            | ApiError::Unaccepted { .. }
            | ApiError::Query(_)
            | ApiError::NotUtf8(_)
            | ApiError::ReloadRefused(_) => StatusCode::BAD_REQUEST,
            ApiError::Body(rejection) => rejection.status(),
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotJson(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Payload(e) => payload_status(e),
            ApiError::Shape { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Intake(IntakeError::Rejected(e)) => payload_status(e),
            ApiError::Intake(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Window(e) => match e {
                WindowError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                WindowError::MutesEverything { .. } => StatusCode::BAD_REQUEST,
                WindowError::NotFound(_) => StatusCode::NOT_FOUND,
                WindowError::Unrecorded(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            ApiError::Approval(e) => approval_status(e),
            ApiError::Slack(e) => e.status(),
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NoSuchEndpoint => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn detail(&self) -> Value {
        match self {
            ApiError::Unaccepted {
                field, accepted, ..
            } => json!({ "field": field, "accepted": accepted }),
            ApiError::NotUtf8(byte) => json!({ "byte": byte }),
            ApiError::Payload(e) | ApiError::Intake(IntakeError::Rejected(e)) => payload_detail(e),
            ApiError::Shape { field, .. } => json!({ "field": field }),
            ApiError::Window(
                WindowError::Invalid { field, .. } | WindowError::MutesEverything { field, .. },
            ) => json!({ "field": field }),
            ApiError::ReloadRefused(errors) => json!({ "errors": errors.to_string() }),
            ApiError::MethodNotAllowed { allow, .. } => json!({ "allow": allow }),
            ApiError::Approval(ApprovalError::Decided {
                id, state, by, at, ..
            }) => json!({ "id": id, "state": state, "decided_by": by, "decided_at": at }),
            ApiError::Approval(ApprovalError::Expired { id, at }) => {
                json!({ "id": id, "state": "expired", "expired_at": at })
            }
            ApiError::Forbidden {
                name, role, needs, ..
            } => json!({ "caller": name, "role": role, "needs": needs }),
            _ => Value::Null,
        }
    }

    /// Sent as `Retry-After` (whole seconds, at least 1): events not taken now that
    /// the sender keeps and sends again.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            // Nothing of it was acknowledged: the sender keeps it and tries again. (The
            // engine logs an unrecorded write, at most once a second.)
            ApiError::Intake(IntakeError::Unrecorded(_) | IntakeError::Failed { .. }) => {
                Some(UNRECORDED_RETRY_AFTER)
            }
            ApiError::Intake(
                IntakeError::Overloaded { retry_after, .. } | IntakeError::Stopping { retry_after },
            ) => Some(*retry_after),
            _ => None,
        }
    }

    /// The text of `"error"`: what salve failed at reads with its causes.
    fn message(&self) -> String {
        match self {
            ApiError::Internal(e) => crate::model::error_chain(e.as_ref()),
            _ => self.to_string(),
        }
    }
}

/// How an answer not taken is answered, by the API and the signed links' page alike.
pub(super) fn approval_status(err: &ApprovalError) -> StatusCode {
    match err {
        ApprovalError::NotFound(_) => StatusCode::NOT_FOUND,
        ApprovalError::NotAllowed { .. } => StatusCode::FORBIDDEN,
        ApprovalError::Decided { .. } => StatusCode::CONFLICT,
        ApprovalError::Expired { .. } => StatusCode::GONE,
        ApprovalError::Unrecorded(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn payload_status(err: &PayloadError) -> StatusCode {
    match err {
        PayloadError::Syntax { .. } => StatusCode::BAD_REQUEST,
        PayloadError::Shape { .. }
        | PayloadError::TooLarge { .. }
        | PayloadError::InvalidLabels { .. } => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

fn payload_detail(err: &PayloadError) -> Value {
    match err {
        PayloadError::Syntax { line, column, .. } => json!({ "line": line, "column": column }),
        PayloadError::Shape { path, .. } => json!({ "field": path }),
        PayloadError::TooLarge { index, label, .. }
        | PayloadError::InvalidLabels { index, label, .. } => {
            let mut detail = json!({ "alert": index });
            if let Some(label) = label {
                detail["label"] = json!(label);
            }
            detail
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message() });
        let detail = self.detail();
        if !detail.is_null() {
            body["detail"] = detail;
        }
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(after) = self.retry_after() {
            let seconds = after.as_secs().max(1);
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<LoadError> for ApiError {
    fn from(err: LoadError) -> ApiError {
        ApiError::ReloadRefused(err)
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(err: tokio::task::JoinError) -> ApiError {
        ApiError::Internal(Box::new(err))
    }
}

impl From<PageError> for ApiError {
    fn from(err: PageError) -> ApiError {
        ApiError::Internal(Box::new(err))
    }
}

impl From<ReportError> for ApiError {
    fn from(err: ReportError) -> ApiError {
        ApiError::Internal(Box::new(err))
    }
}

impl From<ReplayError> for ApiError {
    fn from(err: ReplayError) -> ApiError {
        ApiError::Internal(Box::new(err))
    }
}
