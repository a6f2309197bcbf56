//! `/approvals/link/{token}`: the signed links mailed to a group's `emails`. The token
//! is the credential (no API token: the person is on their phone, in a mail client).
//! A `GET` shows what would be approved and decides nothing, since mail scanners and
//! previews follow links; only the page's `POST` answers, once: the approval is then
//! no longer pending, and every later answer is a 409.

use crate::engine::{Answer, Engine};
use crate::model::{Actor, ApprovalView};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use std::sync::Arc;

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<meta name="referrer" content="no-referrer"><title>salve: {{ title }}</title>
<style>body{font-family:sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}
th{text-align:left;padding-right:1rem;vertical-align:top}button{font-size:1.1rem;margin:.5rem .5rem 0 0;padding:.5rem 1rem}</style>
</head><body>
<h1>{{ title }}</h1>
{% if message %}<p><strong>{{ message }}</strong></p>{% endif %}
{% if a %}<table>
<tr><th>Action</th><td>{{ a.action }} on {{ a.target }}</td></tr>
{% if a.params %}<tr><th>Parameters</th><td>{{ a.params | tojson }}</td></tr>{% endif %}
<tr><th>Alert</th><td>{{ a.alertname }} ({{ a.fingerprint }})</td></tr>
<tr><th>Rule</th><td>{{ a.rule }}</td></tr>
<tr><th>Policy</th><td>{{ a.verdict }}</td></tr>
<tr><th>State</th><td>{{ a.state }}{% if a.decided_by %} by {{ a.decided_by.name or a.decided_by.id }} ({{ a.decided_by.via }}) at {{ a.decided_at }}{% endif %}</td></tr>
<tr><th>Expires</th><td>{{ a.expires_at }}</td></tr>
<tr><th>You</th><td>{{ email }}</td></tr>
</table>
{% if a.state == "pending" %}<form method="post">
<p><label>Comment <input name="comment" size="40"></label></p>
{% if choice != "deny" %}<button name="choice" value="approve">Approve</button>{% endif %}
{% if choice != "approve" %}<button name="choice" value="deny">Deny</button>{% endif %}
</form>
<p>When you approve, salve decides the action again under its whole policy, now: a
maintenance window, a spent limit or dry-run still hold it back.</p>{% endif %}
{% endif %}
</body></html>"#;

/// The page, its text escaped as HTML by minijinja (the template's name ends in
/// `.html`).
fn page(
    status: StatusCode,
    title: &str,
    message: &str,
    approval: Option<&ApprovalView>,
    email: &str,
    choice: &str,
) -> Response {
    let mut env = minijinja::Environment::new();
    let rendered = env
        .add_template("link.html", PAGE)
        .and_then(|()| env.get_template("link.html"))
        .and_then(|t| {
            t.render(minijinja::context! {
                title, message, a => approval, email, choice,
            })
        });
    match rendered {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the page: {e}"),
        )
            .into_response(),
    }
}

fn unknown() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Unknown link",
        "This link is not one salve sent, or the approval it was for is long gone.",
        None,
        "",
        "",
    )
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ShowQuery {
    choice: Option<String>,
}

/// `GET /approvals/link/{token}`: what would be approved, with the buttons to answer.
pub(super) async fn show(
    State(engine): State<Arc<Engine>>,
    Path(token): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Response {
    let Some((approval, email)) = engine.approval_by_link(&token) else {
        return unknown();
    };
    let title = format!("Approve {} on {}?", approval.action, approval.target);
    let choice = query.choice.unwrap_or_default();
    page(StatusCode::OK, &title, "", Some(&approval), &email, &choice)
}

#[derive(Debug, Deserialize)]
pub(super) struct AnswerForm {
    choice: String,
    #[serde(default)]
    comment: String,
}

/// `POST /approvals/link/{token}`: the answer, as the address the link was sent to.
pub(super) async fn answer(
    State(engine): State<Arc<Engine>>,
    Path(token): Path<String>,
    Form(form): Form<AnswerForm>,
) -> Response {
    let Some((_, email)) = engine.approval_by_link(&token) else {
        return unknown();
    };
    let approve = match form.choice.as_str() {
        "approve" => true,
        "deny" => false,
        other => {
            return (
                StatusCode::BAD_REQUEST,
                format!("choice: {other:?} is neither approve nor deny"),
            )
                .into_response()
        }
    };
    let answer = Answer {
        approve,
        actor: Actor {
            via: "link".into(),
            id: email.clone(),
            name: email.clone(),
        },
        team: None,
        comment: form.comment,
    };
    let (status, title, message, approval) =
        match engine.answer_approval_by_link(&token, answer).await {
            Ok(view) => {
                let said = if approve { "Approved" } else { "Denied" };
                (
                    StatusCode::OK,
                    said.to_string(),
                    "Thank you: salve has your answer.".to_string(),
                    Some(view),
                )
            }
            Err(e) => {
                let status = super::error::approval_status(&e);
                let view = engine.approval_by_link(&token).map(|(v, _)| v);
                (status, "Not taken".to_string(), e.to_string(), view)
            }
        };
    page(status, &title, &message, approval.as_ref(), &email, "")
}
