//! `POST /api/v1/slack/interactions`: clicks on the Approve and Deny buttons of an
//! approval request, as Slack sends them (a `block_actions` payload).
//!
//! Not behind the API's credentials, which Slack cannot send: a request is taken only
//! when it carries Slack's signature (`X-Slack-Signature`, HMAC-SHA256 over
//! `v0:TIMESTAMP:BODY`) under the signing secret of one of the Slack channels, and its
//! timestamp is within five minutes of now, so a captured request cannot be sent again
//! later. Sent again sooner, it finds its approval decided by the first (409).
//! <https://api.slack.com/authentication/verifying-requests-from-slack>
//!
//! Slack waits 3 s for the answer: the engine's answer is a trail write, and
//! everything sent back to Slack (the message changed in place) goes from a task of
//! its own.

use super::{body, ApiError, ApiState};
use crate::engine::{Answer, ApprovalError};
use crate::execute::{NotifyKind, APPROVE_ACTION, DENY_ACTION};
use crate::model::{Actor, Secret};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// How far a request's timestamp may be from now, either way.
const MAX_SKEW_SECONDS: i64 = 5 * 60;

const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
const SIGNATURE_HEADER: &str = "x-slack-signature";

/// Why a request that says it comes from Slack was not taken.
#[derive(Debug, thiserror::Error)]
pub enum SlackError {
    /// No Slack channel has a signing secret: 404.
    #[error("Slack interactions are off: no [notify.NAME] channel of type \"slack\" has signing_secret_file or signing_secret_env")]
    Off,
    /// A signature or timestamp header missing or unreadable: 401.
    #[error("not signed by Slack: {0}")]
    Unsigned(&'static str),
    /// A timestamp more than five minutes from now: 401. Seconds it is behind salve's
    /// clock (ahead, when negative).
    #[error("X-Slack-Request-Timestamp is {}, more than the 5 minutes a request may be", skew_text(*.0))]
    Stale(i64),
    /// A signature no channel's signing secret makes: 401.
    #[error("X-Slack-Signature does not match the body under any Slack channel's signing secret")]
    BadSignature,
    /// A signed body that is not what Slack sends: 400.
    #[error("{0}")]
    Malformed(String),
}

fn skew_text(behind: i64) -> String {
    if behind >= 0 {
        format!("{behind}s behind salve's clock")
    } else {
        format!("{}s ahead of salve's clock", behind.unsigned_abs())
    }
}

impl SlackError {
    pub(super) fn status(&self) -> StatusCode {
        match self {
            SlackError::Off => StatusCode::NOT_FOUND,
            SlackError::Unsigned(_) | SlackError::Stale(_) | SlackError::BadSignature => {
                StatusCode::UNAUTHORIZED
            }
            SlackError::Malformed(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// The form Slack posts: one field, `payload`, holding JSON.
#[derive(Deserialize)]
struct Form {
    payload: Option<String>,
}

/// The parts of Slack's interaction payload salve reads.
#[derive(Deserialize)]
struct Interaction {
    #[serde(rename = "type")]
    kind: String,
    user: Option<User>,
    team: Option<Team>,
    #[serde(default)]
    actions: Vec<Action>,
    response_url: Option<String>,
}

#[derive(Deserialize)]
struct User {
    id: String,
    username: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct Team {
    id: String,
}

#[derive(Deserialize)]
struct Action {
    action_id: String,
    value: Option<String>,
}

/// `POST /api/v1/slack/interactions`: 200 once the answer is recorded (or for a click
/// salve has nothing to do about: a link button); the API's statuses for an answer
/// not taken (403, 404, 409, 410).
pub(super) async fn interactions(
    State(state): State<ApiState>,
    request: Request,
) -> Result<Response, ApiError> {
    let secrets = signing_secrets(&state);
    if secrets.is_empty() {
        return Err(SlackError::Off.into());
    }
    let headers = request.headers().clone();
    let timestamp = header_text(&headers, TIMESTAMP_HEADER)
        .ok_or(SlackError::Unsigned("no X-Slack-Request-Timestamp"))?;
    let at: i64 = timestamp.trim().parse().map_err(|_| {
        SlackError::Unsigned("X-Slack-Request-Timestamp is not a number of seconds")
    })?;
    let skew = state.engine.now().timestamp().saturating_sub(at);
    if skew.saturating_abs() > MAX_SKEW_SECONDS {
        return Err(SlackError::Stale(skew).into());
    }
    let signature = header_text(&headers, SIGNATURE_HEADER)
        .ok_or(SlackError::Unsigned("no X-Slack-Signature"))?;
    let body = body::read_body(request, &state).await?;
    if !secrets
        .iter()
        .any(|secret| signed(secret.expose().as_bytes(), &timestamp, &body, &signature))
    {
        return Err(SlackError::BadSignature.into());
    }
    let interaction = parse(&headers, &body)?;
    let Some((approve, id)) = answer_of(&interaction)? else {
        // A link button, or an interaction salve did not ask for: acknowledged, as
        // Slack shows the person an error for any other answer.
        return Ok(StatusCode::OK.into_response());
    };
    let user = interaction
        .user
        .ok_or_else(|| SlackError::Malformed("payload: no user".into()))?;
    let name = user.username.or(user.name).unwrap_or_default();
    let answer = Answer {
        approve,
        actor: Actor {
            via: "slack".into(),
            id: user.id,
            name,
        },
        team: interaction.team.map(|t| t.id),
        comment: String::new(),
    };
    let response_url = interaction.response_url.unwrap_or_default();
    state.engine.remember_slack_response(&id, &response_url);
    match state.engine.answer_approval(&id, answer).await {
        Ok(_) => Ok(StatusCode::OK.into_response()),
        Err(e) => {
            match &e {
                ApprovalError::NotAllowed { .. } => {
                    state.engine.tell_slack_user(&response_url, &e.to_string())
                }
                ApprovalError::Decided { .. } | ApprovalError::Expired { .. } => {
                    state.engine.show_slack_state(&id, &response_url)
                }
                _ => {}
            }
            Err(e.into())
        }
    }
}

/// The signing secrets of every Slack channel that has one.
fn signing_secrets(state: &ApiState) -> Vec<Secret> {
    state
        .engine
        .runtime()
        .config
        .notify
        .values()
        .filter_map(|channel| match &channel.kind {
            NotifyKind::Slack { signing_secret, .. } => signing_secret.clone(),
            _ => None,
        })
        .collect()
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Whether `signature` (`v0=HEX`) is Slack's signature of `body` sent at `timestamp`
/// under `secret`, compared in constant time.
fn signed(secret: &[u8], timestamp: &str, body: &[u8], signature: &str) -> bool {
    let Some(given) = signature
        .trim()
        .strip_prefix("v0=")
        .and_then(|h| hex::decode(h).ok())
    else {
        return false;
    };
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// The signed body as Slack's interaction payload.
fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Interaction, SlackError> {
    let content_type = header_text(headers, header::CONTENT_TYPE.as_str()).unwrap_or_default();
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(SlackError::Malformed(format!(
            "expected Content-Type: application/x-www-form-urlencoded, got {content_type:?}"
        )));
    }
    let form: Form = serde_urlencoded::from_bytes(body)
        .map_err(|e| SlackError::Malformed(format!("not a form: {e}")))?;
    let payload = form
        .payload
        .ok_or_else(|| SlackError::Malformed("the form has no payload field".into()))?;
    serde_json::from_str(&payload)
        .map_err(|e| SlackError::Malformed(format!("payload is not Slack's interaction JSON: {e}")))
}

/// The answer a click gives, and the approval it is for; none for a click that is
/// not on Approve or Deny.
fn answer_of(interaction: &Interaction) -> Result<Option<(bool, String)>, SlackError> {
    if interaction.kind != "block_actions" {
        return Ok(None);
    }
    let action = interaction
        .actions
        .first()
        .ok_or_else(|| SlackError::Malformed("payload: no actions".into()))?;
    let approve = match action.action_id.as_str() {
        APPROVE_ACTION => true,
        DENY_ACTION => false,
        _ => return Ok(None),
    };
    match action.value.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() => Ok(Some((approve, id.to_string()))),
        _ => Err(SlackError::Malformed(format!(
            "payload: the {} action carries no approval id in its value",
            action.action_id
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slack's own example (api.slack.com/authentication/verifying-requests-from-slack).
    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: &str = "1531420618";
    const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slacks_example_request_verifies() {
        assert!(signed(SECRET, TIMESTAMP, BODY, SIGNATURE));
    }

    #[test]
    fn another_secret_body_timestamp_or_form_does_not() {
        assert!(!signed(b"another secret", TIMESTAMP, BODY, SIGNATURE));
        assert!(!signed(SECRET, "1531420619", BODY, SIGNATURE));
        assert!(!signed(SECRET, TIMESTAMP, b"token=x", SIGNATURE));
        assert!(!signed(
            SECRET,
            TIMESTAMP,
            BODY,
            &SIGNATURE.replace("v0=", "v1=")
        ));
        assert!(!signed(SECRET, TIMESTAMP, BODY, "v0=not-hex"));
        assert!(!signed(SECRET, TIMESTAMP, BODY, ""));
    }

    fn interaction(json: &str) -> Interaction {
        serde_json::from_str(json).expect("an interaction")
    }

    #[test]
    fn approve_and_deny_carry_the_id_and_links_are_only_acknowledged() {
        let click = |action: &str, value: &str| {
            interaction(&format!(
                r#"{{"type":"block_actions","user":{{"id":"U1"}},"actions":[{{"action_id":"{action}","value":"{value}"}}]}}"#
            ))
        };
        assert_eq!(
            answer_of(&click("approve", "a-1")).expect("taken"),
            Some((true, "a-1".into()))
        );
        assert_eq!(
            answer_of(&click("deny", "a-1")).expect("taken"),
            Some((false, "a-1".into()))
        );
        assert_eq!(answer_of(&click("source", "")).expect("taken"), None);
        assert!(answer_of(&click("approve", " ")).is_err());
        let other = interaction(r#"{"type":"view_submission"}"#);
        assert_eq!(answer_of(&other).expect("taken"), None);
        let empty = interaction(r#"{"type":"block_actions","actions":[]}"#);
        assert!(answer_of(&empty).is_err());
    }
}
