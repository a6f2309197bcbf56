//! `/api/v1/approvals`: the approvals salve asked for, and the answers of the people
//! an approval group names (API identities with the `approver` or `admin` role).

use super::{ApiError, Caller, JsonBody};
use crate::engine::Engine;
use std::sync::Arc;

type Shared = axum::extract::State<Arc<Engine>>;
use crate::engine::Answer;
use crate::model::{Actor, ApprovalState, ApprovalView, Target};
use axum::extract::{FromRequest, Path, Query, Request};
use axum::http::header;
use axum::{Extension, Json};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApprovalQuery {
    state: Option<String>,
    rule: Option<String>,
    target: Option<String>,
}

/// `GET /api/v1/approvals?state=&rule=&target=`, newest first.
pub(super) async fn list(
    axum::extract::State(engine): Shared,
    Query(query): Query<ApprovalQuery>,
) -> Result<Json<Vec<ApprovalView>>, ApiError> {
    let state = match &query.state {
        Some(text) => Some(text.parse::<ApprovalState>().map_err(|e| {
            ApiError::unaccepted(
                "state",
                format!("state: {e}"),
                ApprovalState::ALL.map(ApprovalState::as_str),
            )
        })?),
        None => None,
    };
    let target = match &query.target {
        Some(text) => Some(text.parse::<Target>().map_err(|e| ApiError::Shape {
            field: "target".into(),
            message: e.to_string(),
        })?),
        None => None,
    };
    let approvals = engine
        .approvals()
        .into_iter()
        .filter(|a| state.is_none_or(|s| a.state == s))
        .filter(|a| query.rule.as_ref().is_none_or(|r| &a.rule == r))
        .filter(|a| target.as_ref().is_none_or(|t| &a.target == t))
        .collect();
    Ok(Json(approvals))
}

/// `GET /api/v1/approvals/{id}`.
pub(super) async fn show(
    axum::extract::State(engine): Shared,
    Path(id): Path<String>,
) -> Result<Json<ApprovalView>, ApiError> {
    engine
        .approval(&id)
        .map(Json)
        .ok_or_else(|| crate::engine::ApprovalError::NotFound(id).into())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBody {
    #[serde(default)]
    comment: String,
}

/// `POST /api/v1/approvals/{id}/approve`, with an optional `{"comment": "..."}`.
pub(super) async fn approve(
    state: axum::extract::State<super::ApiState>,
    path: Path<String>,
    caller: Extension<Caller>,
    request: Request,
) -> Result<Json<ApprovalView>, ApiError> {
    answer(state, path, caller, request, true).await
}

/// `POST /api/v1/approvals/{id}/deny`, with an optional `{"comment": "..."}`.
pub(super) async fn deny(
    state: axum::extract::State<super::ApiState>,
    path: Path<String>,
    caller: Extension<Caller>,
    request: Request,
) -> Result<Json<ApprovalView>, ApiError> {
    answer(state, path, caller, request, false).await
}

async fn answer(
    axum::extract::State(state): axum::extract::State<super::ApiState>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    request: Request,
    approve: bool,
) -> Result<Json<ApprovalView>, ApiError> {
    let body: AnswerBody = if request.headers().contains_key(header::CONTENT_TYPE) {
        JsonBody::from_request(request, &state).await?.parse()?
    } else {
        AnswerBody::default()
    };
    if !caller.role.may_approve() {
        return Err(crate::engine::ApprovalError::NotAllowed {
            id,
            who: format!("{} (role {})", caller.name, caller.role),
            group: "its group".into(),
        }
        .into());
    }
    let answer = Answer {
        approve,
        actor: Actor {
            via: "api".into(),
            id: caller.name.clone(),
            name: caller.name,
        },
        team: None,
        comment: body.comment,
    };
    let view = state.engine.answer_approval(&id, answer).await?;
    Ok(Json(view))
}
