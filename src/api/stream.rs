//! `GET /api/v1/stream`: the audit trail as server-sent events, each record as
//! `GET /api/v1/audit` gives it, with its cursor as the event's id; a client that
//! reconnects with `Last-Event-ID` gets every record after that one, then the new ones.

use super::handlers::{audit_kind, cursor_text, parse_cursor};
use super::ApiError;
use crate::audit::{AuditFilter, AuditRecord, TrailPosition};
use crate::engine::{Engine, Follower};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

/// A comment this often keeps proxies and salve's own idle timeout from closing a
/// quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long a quiet stream waits before it reads the trail anyway: records another
/// replica wrote (`[store]`) wake nobody here, and a stopping salve ends its streams.
const LOOK_AGAIN: Duration = Duration::from_secs(1);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamQuery {
    rule: Option<String>,
    target: Option<String>,
    kind: Option<String>,
    fingerprint: Option<String>,
}

/// One client's stream: where it stands in the trail, and what it read but has not
/// sent yet (at most a page).
struct Tail {
    engine: Arc<Engine>,
    follower: Follower,
    appended: tokio::sync::broadcast::Receiver<()>,
    filter: AuditFilter,
    unsent: VecDeque<(TrailPosition, AuditRecord)>,
}

pub(super) async fn stream(
    State(engine): State<Arc<Engine>>,
    headers: HeaderMap,
    stream_query: Result<Query<StreamQuery>, QueryRejection>,
) -> Result<
    (
        [(&'static str, &'static str); 1],
        Sse<impl Stream<Item = Result<Event, Infallible>>>,
    ),
    ApiError,
> {
    let stream_query = stream_query.map(|Query(q)| q)?;
    let filter = AuditFilter {
        since: None,
        rule: stream_query.rule,
        target: stream_query.target,
        kind: stream_query.kind.as_deref().map(audit_kind).transpose()?,
        fingerprint: stream_query.fingerprint,
        also: None,
    };
    let after = match headers.get("last-event-id") {
        None => None,
        Some(value) => {
            let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
            Some(parse_cursor(&text).ok_or_else(|| ApiError::Shape {
                field: "Last-Event-ID".into(),
                message: format!("{text:?} is not the id of an event this stream sent"),
            })?)
        }
    };
    // Told of appends from before the trail's end is taken: none falls between.
    let appended = engine.appended();
    let follower = engine.follow_trail(after).await?;
    let tail = Tail {
        engine,
        follower,
        appended,
        filter,
        unsent: VecDeque::new(),
    };
    let events = futures_util::stream::unfold(tail, next_event);
    // nginx holds a proxied answer until its buffer fills unless told not to.
    Ok((
        [("x-accel-buffering", "no")],
        Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)),
    ))
}

/// The next record as an event, once there is one; `None` ends the stream (salve stops,
/// or the trail cannot be read: the client reconnects with the last id it got).
async fn next_event(mut tail: Tail) -> Option<(Result<Event, Infallible>, Tail)> {
    loop {
        if let Some((position, record)) = tail.unsent.pop_front() {
            let Ok(json) = serde_json::to_string(&record) else {
                continue;
            };
            let event = Event::default().id(cursor_text(position)).data(json);
            return Some((Ok(event), tail));
        }
        if tail.engine.is_stopping() {
            return None;
        }
        match tail.engine.read_on(&mut tail.follower).await {
            Ok(records) if !records.is_empty() => {
                let filter = &tail.filter;
                tail.unsent
                    .extend(records.into_iter().filter(|(_, r)| filter.matches(r)));
                continue;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "a stream of the trail ends: the trail cannot be read");
                return None;
            }
        }
        if let Ok(Err(RecvError::Closed)) =
            tokio::time::timeout(LOOK_AGAIN, tail.appended.recv()).await
        {
            return None;
        }
        // Wake-ups that came meanwhile, or were lost to lag, say the same: read on.
        while matches!(
            tail.appended.try_recv(),
            Ok(()) | Err(TryRecvError::Lagged(_))
        ) {}
    }
}
