//! PostgreSQL's errors as a person needs them. `tokio_postgres::Error` shows itself as
//! `db error` and refinery's error as `` `error asserting migrations table`, `db
//! error` ``: the server's own message, its SQLSTATE and the statement it refused are
//! only in the `DbError` underneath, and are what says what to fix.

use std::error::Error;
use std::fmt::Write;
use tokio_postgres::error::{DbError, ErrorPosition};

/// Statements longer than this are cut in messages (a migration is a whole file).
const MAX_STATEMENT: usize = 400;

/// `e` and its causes on one line. A server error says its message, `SQLSTATE`, detail,
/// hint and context, and the statement at fault: the server's internal query if it
/// names one, else `statement` (what salve sent, where the caller knows it).
pub fn pg_error_text(e: &(dyn Error + 'static), statement: Option<&str>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let db = err.downcast_ref::<DbError>().or_else(|| {
            err.downcast_ref::<tokio_postgres::Error>()
                .and_then(tokio_postgres::Error::as_db_error)
        });
        if let Some(db) = db {
            // The client's own word for it says nothing the server's does not.
            if let Some(last) = parts.last_mut() {
                if let Some(kept) = last.strip_suffix(": db error") {
                    *last = kept.to_string();
                }
            }
            parts.push(db_error_text(db, statement));
            break;
        }
        if let Some(refinery::error::Kind::Connection(what, cause)) = err
            .downcast_ref::<refinery::Error>()
            .map(refinery::Error::kind)
        {
            // Its Display quotes the cause's Display (`db error`) in backticks.
            parts.push(what.clone());
            next = Some(cause.as_ref());
            continue;
        }
        let text = err.to_string();
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

fn db_error_text(db: &DbError, statement: Option<&str>) -> String {
    let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
    if let Some(detail) = db.detail() {
        let _ = write!(text, "; detail: {}", one_line(detail));
    }
    if let Some(hint) = db.hint() {
        let _ = write!(text, "; hint: {}", one_line(hint));
    }
    let (at_fault, position) = match db.position() {
        Some(ErrorPosition::Internal { position, query }) => {
            (Some(query.as_str()), Some(*position))
        }
        Some(ErrorPosition::Original(position)) => (statement, Some(*position)),
        None => (statement, None),
    };
    if let Some(at_fault) = at_fault {
        let _ = write!(text, "; statement: {}", cut(&one_line(at_fault)));
    }
    if let Some(position) = position {
        let _ = write!(text, " (at character {position})");
    }
    if let Some(context) = db.where_() {
        let _ = write!(text, "; context: {}", one_line(context));
    }
    text
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_STATEMENT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}
