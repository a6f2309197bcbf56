//! Message templates: minijinja over the event and what salve did about it
//! (`{{ labels.container }}`, `{{ annotations.summary }}`, `{{ target }}`).

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde::Serialize;
use std::sync::OnceLock;

/// Enough for any message; a template that loops past it is cut off, not left to spin.
const FUEL: u64 = 200_000;
/// A rendered message longer than this is cut: no receiver wants a novel.
const MAX_RENDERED: usize = 64 * 1024;

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // A label an alert lacks renders empty, and so does anything past it
        // (`labels.a.b`): a message with a gap beats no message.
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(32);
        env.set_keep_trailing_newline(true);
        env
    })
}

/// One line for an error: what is wrong and, for multi-line templates, on which line.
fn describe(e: &minijinja::Error, source: &str) -> String {
    let mut text = e.kind().to_string();
    if let Some(detail) = e.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    if let Some(line) = e.line().filter(|_| source.contains('\n')) {
        text.push_str(&format!(" (template line {line})"));
    }
    text
}

/// A template that does not parse or render, said with the line at fault.
#[derive(Debug, thiserror::Error)]
#[error("template error: {description}")]
pub struct TemplateError {
    description: String,
    #[source]
    source: minijinja::Error,
}

impl TemplateError {
    fn of(source: minijinja::Error, template: &str) -> TemplateError {
        TemplateError {
            description: describe(&source, template),
            source,
        }
    }
}

/// Two errors are the same when they say the same (minijinja's error has no equality).
impl PartialEq for TemplateError {
    fn eq(&self, other: &TemplateError) -> bool {
        self.description == other.description
    }
}

/// Whether `source` is a template salve can render: its syntax, and the filters,
/// tests and functions it names (minijinja looks those up only when rendering, so a
/// trial render against an empty context finds those on the path it takes).
pub fn check(source: &str) -> Result<(), TemplateError> {
    let env = environment();
    let template = env
        .template_from_str(source)
        .map_err(|e| TemplateError::of(e, source))?;
    match template.render(minijinja::context! {}) {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnknownFilter
                    | ErrorKind::UnknownTest
                    | ErrorKind::UnknownFunction
                    | ErrorKind::UnknownMethod
                    | ErrorKind::UnknownBlock
            ) =>
        {
            Err(TemplateError::of(e, source))
        }
        _ => Ok(()),
    }
}

/// Whether `text` has template syntax at all; text without it is sent as it is.
pub fn has_template_syntax(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// Renders `source` over `context`. Text without `{{`/`{%` is returned as it is, so a
/// plain message never fails.
pub fn render(source: &str, context: &impl Serialize) -> Result<String, TemplateError> {
    if !has_template_syntax(source) {
        return Ok(source.to_string());
    }
    let mut text = environment()
        .render_str(source, context)
        .map_err(|e| TemplateError::of(e, source))?;
    if text.len() > MAX_RENDERED {
        let mut cut = MAX_RENDERED;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_event_fields_and_leaves_missing_ones_empty() {
        let context = json!({
            "labels": { "container": "web-1" },
            "annotations": { "summary": "Container web-1 is down" },
            "status": "firing",
        });
        assert_eq!(
            render(
                "{{ status | upper }} {{ labels.container }}: {{ annotations.summary }}{{ labels.nope }}",
                &context
            ),
            Ok("FIRING web-1: Container web-1 is down".to_string())
        );
        assert_eq!(
            render("no template {here}", &context),
            Ok("no template {here}".to_string())
        );
    }

    #[test]
    fn check_finds_syntax_errors_and_unknown_filters() {
        assert_eq!(
            check("{{ labels.container }} {% if status %}x{% endif %}"),
            Ok(())
        );
        let err = check("{{ labels.container ")
            .expect_err("unclosed")
            .to_string();
        assert!(err.starts_with("template error: syntax error"), "{err}");
        let err = check("{{ labels.container | shout }}")
            .expect_err("unknown filter")
            .to_string();
        assert!(err.contains("unknown filter"), "{err}");
        let err = check("line one\n{% if %}").expect_err("bad if").to_string();
        assert!(err.ends_with("(template line 2)"), "{err}");
    }

    #[test]
    fn a_runaway_template_runs_out_of_fuel() {
        let err = render(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            &json!({}),
        )
        .expect_err("cut off")
        .to_string();
        assert!(err.contains("fuel"), "{err}");
    }
}
