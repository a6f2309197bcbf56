//! salve's own log, on standard error: text for people (colours only on a terminal,
//! and never when `NO_COLOR` is set) or one JSON object a line for a log pipeline.
//!
//! Alerts put their labels and annotations in front of salve, and some of what salve
//! logs comes from them. The formatter already neutralizes terminal escapes in values;
//! a line break in a value would still start what looks like a log line of its own,
//! so every line break inside an event is written as `\n`.

use std::io::{IsTerminal, Write};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people: time, level, module, message, fields.
    #[default]
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `fields`.
    Json,
}

/// Starts the log; `RUST_LOG` filters it (default `info`). With a `tracer` (traces on,
/// `telemetry`), spans go to OpenTelemetry too, and the log lines inside an alert's
/// spans carry its `trace_id`.
pub fn init(format: LogFormat, tracer: Option<opentelemetry_sdk::trace::Tracer>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let Some(tracer) = tracer else {
        // Traces off: the subscriber is the one salve always had, no layer more.
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(|| OneLine(std::io::stderr()));
        let _ = match format {
            LogFormat::Json => builder.json().try_init(),
            LogFormat::Text => builder.with_ansi(colours()).try_init(),
        };
        return;
    };
    with_traces(format, filter, tracer);
}

fn with_traces(
    format: LogFormat,
    mut filter: tracing_subscriber::EnvFilter,
    tracer: opentelemetry_sdk::trace::Tracer,
) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    // The alert's spans whatever level the log is at: a quiet log keeps its traces.
    if let Ok(spans) = format!("{}=info", crate::telemetry::TARGET).parse() {
        filter = filter.add_directive(spans);
    }
    let traces = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false);
    let fmt = tracing_subscriber::fmt::layer().with_writer(|| OneLine(std::io::stderr()));
    let registry = tracing_subscriber::registry().with(filter).with(traces);
    let _ = match format {
        LogFormat::Json => registry.with(fmt.json()).try_init(),
        LogFormat::Text => registry.with(fmt.with_ansi(colours())).try_init(),
    };
}

fn colours() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Writes each formatted event as one line: a line break anywhere but at its end is
/// written as `\n` (`\r` as `\r`).
struct OneLine<W: Write>(W);

impl<W: Write> Write for OneLine<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let (body, end) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (buf, &b""[..]),
        };
        if !body.iter().any(|b| matches!(b, b'\n' | b'\r')) {
            return self.0.write_all(buf);
        }
        let mut line = Vec::with_capacity(buf.len() + 8);
        for &b in body {
            match b {
                b'\n' => line.extend_from_slice(b"\\n"),
                b'\r' => line.extend_from_slice(b"\\r"),
                b => line.push(b),
            }
        }
        line.extend_from_slice(end);
        self.0.write_all(&line)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::OneLine;
    use std::io::Write;

    #[test]
    fn a_line_break_inside_an_event_is_written_escaped_and_its_end_kept() {
        let mut out = OneLine(Vec::new());
        out.write_all(b"WARN notification text=down\ndecision x -> execute\r\n")
            .expect("write");
        out.write_all(b"INFO plain\n").expect("write");
        assert_eq!(
            String::from_utf8(out.0).expect("utf-8"),
            "WARN notification text=down\\ndecision x -> execute\\r\nINFO plain\n"
        );
    }
}
