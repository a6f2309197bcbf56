//! The console's templates, compiled into the binary and loaded once, and the page
//! frame every one of them fills: who is looking, the CSRF token for its forms, the
//! hashed names of the script and the style sheet.

use super::assets;
use crate::api::Caller;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use minijinja::{context, Environment, Value};
use std::sync::OnceLock;

/// Who is looking at a page, and the token their forms send back.
#[derive(Debug, Clone)]
pub struct Ui {
    pub caller: Caller,
    pub csrf: String,
}

const TEMPLATES: [(&str, &str); 13] = [
    ("base.html", include_str!("templates/base.html")),
    ("message.html", include_str!("templates/message.html")),
    ("login.html", include_str!("templates/login.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("decisions.html", include_str!("templates/decisions.html")),
    ("rows.html", include_str!("templates/rows.html")),
    ("alert.html", include_str!("templates/alert.html")),
    ("approvals.html", include_str!("templates/approvals.html")),
    ("rules.html", include_str!("templates/rules.html")),
    ("state.html", include_str!("templates/state.html")),
    (
        "maintenance.html",
        include_str!("templates/maintenance.html"),
    ),
    ("replay.html", include_str!("templates/replay.html")),
    ("report.html", include_str!("templates/report.html")),
];

fn environment() -> &'static Result<Environment<'static>, minijinja::Error> {
    static ENVIRONMENT: OnceLock<Result<Environment<'static>, minijinja::Error>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| {
        let mut env = Environment::new();
        // Names ending in `.html` are escaped as HTML, which is what every label,
        // annotation and rule name on a page needs.
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        env.add_filter("when", when);
        env.add_filter("left", left);
        env.add_filter("pretty", pretty);
        env.add_filter("web", web_link);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        Ok(env)
    })
}

/// A time as people read it at a glance, in UTC: `2026-12-07 14:03:09`.
fn when(value: String) -> String {
    match value.parse::<DateTime<Utc>>() {
        Ok(at) => at.format("%Y-%m-%d %H:%M:%S").to_string(),
        Err(_) => value,
    }
}

/// How long from `now` until `value` (both RFC 3339): `4m10s`, or `now` once past.
fn left(value: String, now: String) -> String {
    match (value.parse::<DateTime<Utc>>(), now.parse::<DateTime<Utc>>()) {
        (Ok(at), Ok(now)) => match (at - now).to_std() {
            Ok(d) if d.as_secs() > 0 => {
                crate::model::format_duration(std::time::Duration::from_secs(d.as_secs()))
            }
            _ => "now".to_string(),
        },
        _ => String::new(),
    }
}

/// A value as indented JSON, for the raw payload.
fn pretty(value: Value) -> String {
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// An address from outside (an alert's `generatorURL`), only if it is a web address:
/// a `javascript:` or `data:` one is no link.
fn web_link(value: String) -> String {
    let lower = value.trim_start().to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        value
    } else {
        String::new()
    }
}

/// `template` in the console's frame. `nav` names the page's tab.
pub fn page(
    status: StatusCode,
    ui: Option<&Ui>,
    template: &str,
    nav: &str,
    data: Value,
) -> Response {
    let env = match environment() {
        Ok(env) => env,
        Err(e) => return broken(e),
    };
    let frame = context! {
        caller => ui.map(|u| context! { name => u.caller.name, role => u.caller.role.as_str(), via => u.caller.via }),
        csrf => ui.map(|u| u.csrf.clone()),
        script => assets::script_path(),
        style => assets::style_path(),
        nav,
        now => Utc::now().to_rfc3339(),
    };
    let rendered = env
        .get_template(template)
        .and_then(|t| t.render(context! { ..data, ..frame }));
    match rendered {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => broken(&e),
    }
}

/// Only `rows.html`'s block `name`, for a list that fills itself in place.
pub fn fragment(template: &str, block: &str, data: Value, ui: &Ui) -> Response {
    let env = match environment() {
        Ok(env) => env,
        Err(e) => return broken(e),
    };
    let frame = context! {
        csrf => ui.csrf.clone(),
        caller => context! { name => ui.caller.name, role => ui.caller.role.as_str() },
        now => Utc::now().to_rfc3339(),
    };
    let rendered = env.get_template(template).and_then(|t| {
        // The whole page is evaluated (for its imports and `set`s) and thrown away.
        t.render_captured_to(context! { ..data, ..frame }, std::io::sink())
            .and_then(|mut captured| captured.with_state_mut(|state| state.render_block(block)))
    });
    match rendered {
        Ok(html) => Html(html).into_response(),
        Err(e) => broken(&e),
    }
}

fn broken(e: &minijinja::Error) -> Response {
    tracing::error!(error = %e, "a console page could not be rendered");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("salve could not render this page: {e}"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_compiles() {
        if let Err(e) = super::environment() {
            panic!("{e:#}");
        }
    }

    #[test]
    fn only_web_addresses_become_links() {
        assert_eq!(
            super::web_link("https://prom/graph".into()),
            "https://prom/graph"
        );
        assert_eq!(super::web_link(" JavaScript:alert(1)".into()), "");
        assert_eq!(super::web_link("data:text/html,x".into()), "");
    }
}
