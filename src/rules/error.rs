//! Rule errors the way rustc prints them: file:line:col, the line, a caret.

use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    /// The source line the error points at, if known.
    pub source_line: Option<String>,
    /// The rule was stopped by a limit (time, operations, sizes) rather than failing
    /// by itself: what quarantine counts.
    pub cut_off: bool,
}

impl std::error::Error for RuleError {}

impl RuleError {
    pub fn io(path: &Path, err: &std::io::Error) -> RuleError {
        RuleError {
            file: path.display().to_string(),
            line: None,
            column: None,
            message: err.to_string(),
            source_line: None,
            cut_off: false,
        }
    }

    /// An error at a Rhai position (1-based line and column).
    pub fn at(path: &Path, source: &str, pos: rhai::Position, message: String) -> RuleError {
        let line = pos.line();
        let column = pos.position().or(line.map(|_| 1));
        let source_line = line
            .and_then(|l| source.lines().nth(l.saturating_sub(1)))
            .map(str::to_string);
        RuleError {
            file: path.display().to_string(),
            line,
            column,
            message: strip_position(&message),
            source_line,
            cut_off: false,
        }
    }

    /// An error at a byte offset of the source (or the top of the file when None).
    pub fn at_offset(
        path: &Path,
        source: &str,
        offset: Option<usize>,
        message: String,
    ) -> RuleError {
        let offset = offset.unwrap_or(0).min(source.len());
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() + 1;
        let source_line = source.lines().nth(line - 1).map(str::to_string);
        RuleError {
            file: path.display().to_string(),
            line: Some(line),
            column: Some(column),
            message,
            source_line,
            cut_off: false,
        }
    }

    /// Marks the error as a limit's cut-off (see `cut_off`).
    pub fn cut_off(mut self, cut_off: bool) -> RuleError {
        self.cut_off = cut_off;
        self
    }

    /// `file:line:col: message`, on one line, for logs, the audit and JSON answers.
    pub fn short(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}: {}", self.file, self.message),
            (Some(l), None) => format!("{}:{l}: {}", self.file, self.message),
            _ => format!("{}: {}", self.file, self.message),
        }
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.short())?;
        if let (Some(line), Some(text)) = (self.line, &self.source_line) {
            let gutter = " ".repeat(line.to_string().len());
            let col = self.column.unwrap_or(1);
            let pad: String = text
                .chars()
                .take(col.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n{gutter} |\n{line} | {text}\n{gutter} | {pad}^")?;
        }
        Ok(())
    }
}

/// Rhai appends " (line 3, position 5)" to its messages; the position is shown separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" (line ") {
        Some(i) if message.ends_with(')') => message[..i].to_string(),
        _ => message.to_string(),
    }
}

/// Byte offset of `const NAME` in the source, if declared.
pub(super) fn const_position(source: &str, name: &str) -> Option<usize> {
    find_word_after(source, "const", name)
}

pub(super) fn fn_position(source: &str, name: &str) -> Option<usize> {
    find_word_after(source, "fn", name)
}

fn find_word_after(source: &str, keyword: &str, name: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = source[from..].find(keyword) {
        let start = from + i;
        let rest = &source[start + keyword.len()..];
        let trimmed = rest.trim_start();
        if rest.len() != trimmed.len() && trimmed.starts_with(name) {
            let after = &trimmed[name.len()..];
            if !after.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
                return Some(start);
            }
        }
        from = start + keyword.len();
    }
    None
}
