//! Alertmanager label matchers: `{alertname="PodCrashLooping", severity=~"critical|warning"}`.
//!
//! The accepted syntax is the union of what Alertmanager's default ("fallback") mode
//! accepts in practice: the UTF-8 parser's quoting (Go `strconv.Unquote` escapes, quoted
//! label names) plus the classic parser's tolerance (unquoted values with spaces, stray
//! backslashes kept literally, trailing comma). Matching semantics are Alertmanager's:
//! regexes are fully anchored and a missing label is the empty string.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{message} at column {column}")]
pub struct MatcherError {
    pub message: String,
    /// 1-based character (not byte) column in the parsed input.
    pub column: usize,
}

/// One `name op value` condition.
///
/// The regex is compiled by [`Matcher::new`]; build a new matcher rather than editing
/// `op` or `value` in place, or the compiled regex goes stale.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    re: Option<Regex>,
}

impl Matcher {
    /// Errors (empty name, invalid regex) report column 1: there is no surrounding input.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Matcher, MatcherError> {
        Self::build(name, op, value, 1)
    }

    /// `value_column` is where the value starts in the parsed input, for the error.
    fn build(
        name: &str,
        op: MatchOp,
        value: &str,
        value_column: usize,
    ) -> Result<Matcher, MatcherError> {
        let error = |message: String| MatcherError {
            message,
            column: value_column,
        };
        if name.is_empty() {
            return Err(error("empty label name".to_string()));
        }
        let re = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(compile_anchored(value).map_err(|e| {
                error(format!(
                    "invalid regex {}: {}",
                    go_quote(value),
                    regex_error_summary(&e)
                ))
            })?),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            re,
        })
    }

    /// A missing label is passed as "".
    pub fn matches_value(&self, value: &str) -> bool {
        let regex_match = || self.re.as_ref().is_some_and(|re| re.is_match(value));
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => regex_match(),
            MatchOp::NotRegex => !regex_match(),
        }
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        // The regex is derived from `value`, so it carries no extra identity.
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_plain_label_name(&self.name) {
            f.write_str(&self.name)?;
        } else {
            f.write_str(&go_quote(&self.name))?;
        }
        write!(f, "{}{}", self.op, go_quote(&self.value))
    }
}

fn compile_anchored(value: &str) -> Result<Regex, regex::Error> {
    // Compiling the bare value first rejects inputs such as `a)|(b`, which would
    // otherwise close the anchoring group early and match unanchored.
    Regex::new(value).and_then(|_| Regex::new(&format!("^(?:{value})$")))
}

fn regex_error_summary(err: &regex::Error) -> String {
    match err {
        // The full text is a multi-line caret diagram; its last `error:` line is the cause.
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|line| line.trim().strip_prefix("error: "))
            .unwrap_or(text.as_str())
            .trim()
            .to_string(),
        regex::Error::CompiledTooBig(limit) => {
            format!("compiled regex exceeds the size limit of {limit} bytes")
        }
        other => other.to_string(),
    }
}

/// All matchers must match; an empty list matches every label set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matchers(Vec<Matcher>);

impl Matchers {
    pub fn parse(input: &str) -> Result<Matchers, MatcherError> {
        let mut parsed = Parser::new(input).parse()?;
        // Kept for the life of the rule set: 10,000 rules should not carry spare capacity.
        parsed.0.shrink_to_fit();
        Ok(parsed)
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.matches_lookup(|name| labels.get(name).map(String::as_str))
    }

    /// `matches` over labels kept in another form than a map (interned, say).
    pub fn matches_lookup<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0
            .iter()
            .all(|m| m.matches_value(label(m.name.as_str()).unwrap_or("")))
    }

    /// The value an equality matcher requires of `name`, if one does.
    pub fn required_value(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|m| m.op == MatchOp::Equal && m.name == name)
            .map(|m| m.value.as_str())
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Matcher> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether these matchers select every label set that lacks the labels they name:
    /// each one matches the empty string (`{}`, `alertname=~".*"`, `x!="y"`).
    /// Alertmanager refuses such silences; salve refuses such windows.
    pub fn match_everything(&self) -> bool {
        self.0.iter().all(|m| m.matches_value(""))
    }

    /// An equality matcher with a non-empty value that a label index can use: prefer
    /// `alertname`, else the first such matcher. None if there is none.
    pub fn index_key(&self) -> Option<(&str, &str)> {
        let mut usable = self
            .0
            .iter()
            .filter(|m| m.op == MatchOp::Equal && !m.value.is_empty());
        let first = usable.clone().next()?;
        let chosen = usable.find(|m| m.name == "alertname").unwrap_or(first);
        Some((chosen.name.as_str(), chosen.value.as_str()))
    }
}

impl From<Vec<Matcher>> for Matchers {
    fn from(matchers: Vec<Matcher>) -> Self {
        Matchers(matchers)
    }
}

impl FromIterator<Matcher> for Matchers {
    fn from_iter<I: IntoIterator<Item = Matcher>>(iter: I) -> Self {
        Matchers(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Matchers {
    type Item = &'a Matcher;
    type IntoIter = std::slice::Iter<'a, Matcher>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Matchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, m) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{m}")?;
        }
        f.write_str("}")
    }
}

impl FromStr for Matchers {
    type Err = MatcherError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Matchers::parse(s)
    }
}

impl Serialize for Matchers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Matchers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MatchersVisitor)
    }
}

struct MatchersVisitor;

impl<'de> Visitor<'de> for MatchersVisitor {
    type Value = Matchers;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            r#"a matcher string such as {alertname="PodCrashLooping", severity=~"critical|warning"}, or a list of such strings"#,
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Matchers, E> {
        Matchers::parse(v).map_err(E::custom)
    }

    // Alertmanager's own `matchers:` config key is a list of strings, so accept that
    // shape too; the result is the concatenation.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Matchers, A::Error> {
        let mut all = Vec::new();
        while let Some(item) = seq.next_element::<Cow<'de, str>>()? {
            all.extend(Matchers::parse(&item).map_err(de::Error::custom)?.0);
        }
        Ok(Matchers(all))
    }
}

impl schemars::JsonSchema for Matchers {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Matchers".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Alertmanager label matchers, e.g. {alertname=\"PodCrashLooping\", severity=~\"critical|warning\"}; a list of such strings is also accepted.",
            "anyOf": [
                { "type": "string" },
                { "type": "array", "items": { "type": "string" } }
            ]
        })
    }
}

const OPERATORS_HINT: &str = "expected '=', '!=', '=~' or '!~'";

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn new(input: &str) -> Self {
        Parser {
            chars: input.chars().collect(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn column(&self) -> usize {
        self.pos + 1
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn error(column: usize, message: impl Into<String>) -> MatcherError {
        MatcherError {
            message: message.into(),
            column,
        }
    }

    fn parse(mut self) -> Result<Matchers, MatcherError> {
        self.skip_ws();
        let open_brace = (self.peek() == Some('{')).then(|| {
            let column = self.column();
            self.pos += 1;
            column
        });
        let mut matchers = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None => {
                    if let Some(column) = open_brace {
                        return Err(Self::error(column, "unmatched '{': missing closing '}'"));
                    }
                    break;
                }
                Some('}') => {
                    if open_brace.is_none() {
                        return Err(Self::error(self.column(), "unmatched '}'"));
                    }
                    self.pos += 1;
                    self.skip_ws();
                    return match self.peek() {
                        None => Ok(Matchers(matchers)),
                        Some('}') => Err(Self::error(self.column(), "unmatched '}'")),
                        Some(c) => Err(Self::error(
                            self.column(),
                            format!("unexpected character {c:?} after closing '}}'"),
                        )),
                    };
                }
                Some(_) => {}
            }
            matchers.push(self.matcher()?);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                None | Some('}') => {}
                Some(c) => {
                    let expected = if open_brace.is_some() {
                        "expected ',' or '}'"
                    } else {
                        "expected ','"
                    };
                    return Err(Self::error(
                        self.column(),
                        format!("unexpected character {c:?} after matcher; {expected}"),
                    ));
                }
            }
        }
        Ok(Matchers(matchers))
    }

    fn matcher(&mut self) -> Result<Matcher, MatcherError> {
        let name = self.label_name()?;
        self.skip_ws();
        let op = self.operator(&name)?;
        self.skip_ws();
        let value_column = self.column();
        let value = match self.peek() {
            Some('"') => self.quoted()?,
            _ => self.unquoted()?,
        };
        Matcher::build(&name, op, &value, value_column)
    }

    fn label_name(&mut self) -> Result<String, MatcherError> {
        let column = self.column();
        match self.peek() {
            Some('"') => {
                let name = self.quoted()?;
                if name.is_empty() {
                    return Err(Self::error(column, "empty label name"));
                }
                Ok(name)
            }
            Some(c) if is_name_start(c) => {
                let start = self.pos;
                while self.peek().is_some_and(is_name_char) {
                    self.pos += 1;
                }
                let name: String = self.chars[start..self.pos].iter().collect();
                match self.peek() {
                    // Anything that cannot follow a name is reported here; what can (space,
                    // an operator, a delimiter) is left for the operator check.
                    Some(c) if !c.is_whitespace() && !"=!~<>,{}\"".contains(c) => Err(Self::error(
                        self.column(),
                        format!("invalid character {c:?} in label name {name:?}"),
                    )),
                    _ => Ok(name),
                }
            }
            Some('=' | '!' | '~') => Err(Self::error(column, "empty label name")),
            Some(c) => Err(Self::error(
                column,
                format!("unexpected character {c:?}; expected a label name"),
            )),
            None => Err(Self::error(column, "expected a label name")),
        }
    }

    fn operator(&mut self, name: &str) -> Result<MatchOp, MatcherError> {
        let column = self.column();
        // Comparison-style operators are consumed whole so `severity>=3` is reported as an
        // unknown operator rather than as a missing one.
        let op_chars: &[char] = if matches!(self.peek(), Some('<' | '>')) {
            &['<', '>', '=']
        } else {
            &['=', '!', '~']
        };
        let start = self.pos;
        while self.peek().is_some_and(|c| op_chars.contains(&c)) {
            self.pos += 1;
        }
        let token: String = self.chars[start..self.pos].iter().collect();
        match token.as_str() {
            "=" => Ok(MatchOp::Equal),
            "!=" => Ok(MatchOp::NotEqual),
            "=~" => Ok(MatchOp::Regex),
            "!~" => Ok(MatchOp::NotRegex),
            "" => Err(Self::error(
                column,
                match self.peek() {
                    None => format!("missing operator after label name {name:?}; {OPERATORS_HINT}"),
                    Some(c) => format!(
                        "missing operator after label name {name:?}, found {c:?}; {OPERATORS_HINT}"
                    ),
                },
            )),
            other => Err(Self::error(
                column,
                format!("unknown operator {other:?}; {OPERATORS_HINT}"),
            )),
        }
    }

    /// A double-quoted string with Go escapes. A backslash that does not start a valid Go
    /// escape is kept literally, as Alertmanager's classic parser does, so regexes such as
    /// "10\.0\.0\.11:8080" work without doubling every backslash.
    fn quoted(&mut self) -> Result<String, MatcherError> {
        let open_column = self.column();
        self.pos += 1;
        let mut bytes = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(Self::error(open_column, "unterminated quoted string"));
            };
            self.pos += 1;
            match c {
                '"' => break,
                '\\' => self.escape(&mut bytes),
                c => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        // `\x` and octal escapes are single bytes, as in Go, and may spell invalid UTF-8.
        String::from_utf8(bytes).map_err(|_| {
            Self::error(
                open_column,
                "quoted string is not valid UTF-8 after unescaping",
            )
        })
    }

    /// Called with the backslash already consumed.
    fn escape(&mut self, out: &mut Vec<u8>) {
        let simple = match self.peek() {
            Some('a') => Some(0x07),
            Some('b') => Some(0x08),
            Some('f') => Some(0x0c),
            Some('n') => Some(b'\n'),
            Some('r') => Some(b'\r'),
            Some('t') => Some(b'\t'),
            Some('v') => Some(0x0b),
            Some('\\') => Some(b'\\'),
            Some('"') => Some(b'"'),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            self.pos += 1;
            return;
        }
        let (skip, digits, radix) = match self.peek() {
            Some('x') => (1, 2, 16),
            Some('u') => (1, 4, 16),
            Some('U') => (1, 8, 16),
            Some('0'..='7') => (0, 3, 8),
            _ => {
                out.push(b'\\');
                return;
            }
        };
        let is_byte = !matches!(self.peek(), Some('u' | 'U'));
        let start = self.pos + skip;
        let code = self.chars.get(start..start + digits).and_then(|ds| {
            ds.iter()
                .try_fold(0u32, |acc, d| Some(acc * radix + d.to_digit(radix)?))
        });
        let decoded = match code {
            Some(code) if is_byte => u8::try_from(code).ok().map(|b| out.push(b)),
            Some(code) => char::from_u32(code)
                .map(|c| out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes())),
            None => None,
        };
        match decoded {
            Some(()) => self.pos = start + digits,
            None => out.push(b'\\'),
        }
    }

    /// A bare value runs to the next ',' or '}' and is trimmed. Like Alertmanager's classic
    /// parser, `\\`, `\"` and `\n` are unescaped and other backslashes are literal.
    fn unquoted(&mut self) -> Result<String, MatcherError> {
        let mut raw = String::new();
        while let Some(c) = self.peek() {
            match c {
                ',' | '}' => break,
                '"' | '{' => {
                    return Err(Self::error(
                        self.column(),
                        format!(
                            "unexpected character {c:?} in unquoted value; put the value in double quotes"
                        ),
                    ))
                }
                '\\' => {
                    raw.push(c);
                    self.pos += 1;
                    if let Some(next @ ('"' | '\\')) = self.peek() {
                        raw.push(next);
                        self.pos += 1;
                    }
                }
                c => {
                    raw.push(c);
                    self.pos += 1;
                }
            }
        }
        Ok(classic_unescape(raw.trim_end()))
    }
}

fn classic_unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            Some('n') => out.push('\n'),
            Some(&q @ ('"' | '\\')) => out.push(q),
            _ => {
                out.push('\\');
                continue;
            }
        }
        chars.next();
    }
    out
}

// Alertmanager's classic parser allows ':' in label names, so it is accepted here too.
fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit()
}

fn is_plain_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
}

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and ASCII space.
fn is_go_printable(c: char) -> bool {
    static PRINTABLE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[\p{L}\p{M}\p{N}\p{P}\p{S}]$").expect("constant pattern is valid")
    });
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    PRINTABLE.is_match(c.encode_utf8(&mut [0; 4]))
}

/// Go's `strconv.Quote`, so values print exactly as Alertmanager and amtool print them.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_go_printable(c) => out.push(c),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if c < ' ' || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if u32::from(c) < 0x10000 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push_str(&format!("\\U{:08x}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(input: &str) -> Matchers {
        Matchers::parse(input).unwrap_or_else(|e| panic!("{input:?} should parse: {e}"))
    }

    fn triples(ms: &Matchers) -> Vec<(&str, MatchOp, &str)> {
        ms.iter()
            .map(|m| (m.name.as_str(), m.op, m.value.as_str()))
            .collect()
    }

    fn err(input: &str) -> MatcherError {
        match Matchers::parse(input) {
            Ok(ms) => panic!("{input:?} should not parse, got {ms}"),
            Err(e) => e,
        }
    }

    fn e(message: &str, column: usize) -> MatcherError {
        MatcherError {
            message: message.to_string(),
            column,
        }
    }

    fn crashloop() -> Labels {
        labels(&[
            ("alertname", "PodCrashLooping"),
            ("namespace", "prod"),
            ("pod", "api-7d9f8b6c5-x2k4q"),
            ("container", "api"),
            ("severity", "critical"),
            ("instance", "10.0.0.11:8080"),
        ])
    }

    #[test]
    fn parses_braced_list() {
        let ms = parse(r#"{alertname="PodCrashLooping", namespace="prod"}"#);
        assert_eq!(
            triples(&ms),
            vec![
                ("alertname", MatchOp::Equal, "PodCrashLooping"),
                ("namespace", MatchOp::Equal, "prod"),
            ]
        );
        assert!(ms.matches(&crashloop()));
        let mut staging = crashloop();
        staging.insert("namespace".into(), "staging".into());
        assert!(!ms.matches(&staging));
    }

    #[test]
    fn parses_all_operators() {
        let ms = parse(
            r#"severity=~"critical|warning", namespace!="kube-system", deployment!~"canary-.*", alertname="KubeDeploymentReplicasMismatch""#,
        );
        assert_eq!(
            triples(&ms),
            vec![
                ("severity", MatchOp::Regex, "critical|warning"),
                ("namespace", MatchOp::NotEqual, "kube-system"),
                ("deployment", MatchOp::NotRegex, "canary-.*"),
                (
                    "alertname",
                    MatchOp::Equal,
                    "KubeDeploymentReplicasMismatch"
                ),
            ]
        );
        let alert = labels(&[
            ("alertname", "KubeDeploymentReplicasMismatch"),
            ("namespace", "prod"),
            ("deployment", "checkout"),
            ("severity", "warning"),
        ]);
        assert!(ms.matches(&alert));
        let mut canary = alert.clone();
        canary.insert("deployment".into(), "canary-checkout".into());
        assert!(!ms.matches(&canary));
    }

    #[test]
    fn unbraced_unquoted_whitespace_and_trailing_comma() {
        let expected = vec![
            ("alertname", MatchOp::Equal, "PodCrashLooping"),
            ("namespace", MatchOp::Equal, "prod"),
        ];
        for input in [
            "alertname=PodCrashLooping,namespace=prod",
            "alertname=PodCrashLooping, namespace=prod,",
            "  { alertname = PodCrashLooping ,namespace= \"prod\" , }  ",
            "{alertname=\"PodCrashLooping\",namespace=prod,}",
        ] {
            assert_eq!(triples(&parse(input)), expected, "input {input:?}");
        }
        // A bare value runs to the next delimiter and may contain spaces and operators.
        let ms = parse("summary = disk almost full , expr=a=b, instance=10.0.0.11:8080");
        assert_eq!(
            triples(&ms),
            vec![
                ("summary", MatchOp::Equal, "disk almost full"),
                ("expr", MatchOp::Equal, "a=b"),
                ("instance", MatchOp::Equal, "10.0.0.11:8080"),
            ]
        );
    }

    #[test]
    fn empty_inputs_match_everything() {
        for input in ["", "   ", "{}", "{ }", " { } "] {
            let ms = parse(input);
            assert!(ms.is_empty(), "input {input:?}");
            assert!(ms.matches(&crashloop()));
            assert!(ms.matches(&Labels::new()));
            assert_eq!(ms.to_string(), "{}");
            assert_eq!(ms.index_key(), None);
        }
    }

    #[test]
    fn quoted_values_and_escapes() {
        let ms = parse(
            r#"{summary="She said: \"Hi, ladies!\"", path="C:\\logs", msg="a\tb\nc", pod="naïve-ünïcode-✓"}"#,
        );
        assert_eq!(
            triples(&ms),
            vec![
                ("summary", MatchOp::Equal, "She said: \"Hi, ladies!\""),
                ("path", MatchOp::Equal, "C:\\logs"),
                ("msg", MatchOp::Equal, "a\tb\nc"),
                ("pod", MatchOp::Equal, "naïve-ünïcode-✓"),
            ]
        );
        // Go escapes that strconv.Quote may emit.
        let ms = parse(r#"x="\a\b\f\r\v\x41\101\u00e9\U0001F600\xc3\xa9""#);
        assert_eq!(
            ms.iter().next().map(|m| m.value.as_str()),
            Some("\u{7}\u{8}\u{c}\r\u{b}AAé😀é")
        );
        // Backslashes that start no Go escape stay literal, so regexes need no doubling.
        let ms = parse(r#"instance=~"10\.0\.0\.11:\d+", path="C:\x\q\u12""#);
        assert_eq!(
            triples(&ms),
            vec![
                ("instance", MatchOp::Regex, r"10\.0\.0\.11:\d+"),
                ("path", MatchOp::Equal, r"C:\x\q\u12"),
            ]
        );
        assert!(ms
            .iter()
            .next()
            .is_some_and(|m| m.matches_value("10.0.0.11:8080")));
        assert!(!ms
            .iter()
            .next()
            .is_some_and(|m| m.matches_value("10.0.0.111:8080")));
    }

    #[test]
    fn unquoted_values_use_classic_unescaping() {
        let ms = parse(r#"a=x\"y, b=C:\\tmp, c=line\nbreak, d=10\.0\.0\.11"#);
        assert_eq!(
            triples(&ms),
            vec![
                ("a", MatchOp::Equal, "x\"y"),
                ("b", MatchOp::Equal, "C:\\tmp"),
                ("c", MatchOp::Equal, "line\nbreak"),
                ("d", MatchOp::Equal, r"10\.0\.0\.11"),
            ]
        );
    }

    #[test]
    fn quoted_and_colon_label_names() {
        let ms = parse(r#"{"service name"="checkout api", cluster:region=eu}"#);
        assert_eq!(
            triples(&ms),
            vec![
                ("service name", MatchOp::Equal, "checkout api"),
                ("cluster:region", MatchOp::Equal, "eu"),
            ]
        );
        assert_eq!(
            ms.to_string(),
            r#"{"service name"="checkout api", cluster:region="eu"}"#
        );
    }

    #[test]
    fn regexes_are_fully_anchored() {
        let m = Matcher::new("severity", MatchOp::Regex, "crit").expect("valid regex");
        assert!(m.matches_value("crit"));
        assert!(!m.matches_value("critical"));
        assert!(!m.matches_value("subcrit"));

        let m = Matcher::new("severity", MatchOp::Regex, "critical|warning").expect("valid");
        assert!(m.matches_value("warning"));
        assert!(!m.matches_value("warning2"));
        assert!(!m.matches_value("xcritical"));

        let m = Matcher::new("pod", MatchOp::NotRegex, "api-.*").expect("valid");
        assert!(!m.matches_value("api-7d9f8b6c5-x2k4q"));
        assert!(m.matches_value("web-api-1"));

        // '.' does not cross a newline and '$' is the true end, as in Go.
        let m = Matcher::new("msg", MatchOp::Regex, "a.*").expect("valid");
        assert!(!m.matches_value("a\nb"));
        assert!(!m.matches_value("a\n"));
    }

    #[test]
    fn missing_label_is_empty_string() {
        let alert = labels(&[("alertname", "PodCrashLooping"), ("container", "")]);
        let check = |input: &str| parse(input).matches(&alert);

        assert!(check(r#"namespace="""#));
        assert!(!check(r#"namespace="prod""#));
        assert!(!check(r#"namespace!="""#));
        assert!(check(r#"namespace!="prod""#));
        assert!(check(r#"namespace=~".*""#));
        assert!(!check(r#"namespace=~".+""#));
        assert!(check(r#"namespace!~".+""#));
        assert!(!check(r#"namespace!~".*""#));
        // A label present with an empty value is indistinguishable from a missing one.
        assert!(check(r#"container="""#));
        assert!(!check(r#"container!="""#));
        assert!(check("container="));
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        let ms = parse("{ alertname = PodCrashLooping , severity =~ crit|warn , instance!=\"10.0.0.11:8080\", }");
        let shown = ms.to_string();
        assert_eq!(
            shown,
            r#"{alertname="PodCrashLooping", severity=~"crit|warn", instance!="10.0.0.11:8080"}"#
        );
        assert_eq!(parse(&shown), ms);

        let tricky = Matchers::from(vec![
            Matcher::new(
                "summary",
                MatchOp::Equal,
                "say \"hi\"\\\n\t\u{7}\u{7f}\u{a0}\u{200b}é😀",
            )
            .expect("valid"),
            Matcher::new("a b", MatchOp::NotRegex, "x{2}|}|,").expect("valid"),
        ]);
        let shown = tricky.to_string();
        assert_eq!(
            shown,
            r#"{summary="say \"hi\"\\\n\t\a\x7f\u00a0\u200bé😀", "a b"!~"x{2}|}|,"}"#
        );
        assert_eq!(parse(&shown), tricky);
    }

    #[test]
    fn display_round_trips_generated_values() {
        let palette: Vec<char> =
            "aZ_0 ,{}\"\\=!~\n\t\r\u{0}\u{1b}\u{7f}\u{85}\u{a0}\u{ad}é✓😀\u{200b}\u{fffd}'"
                .chars()
                .collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..500 {
            let len = usize::try_from(next() % 12).expect("small");
            let name: String = (0..len)
                .map(|_| palette[usize::try_from(next() % palette.len() as u64).expect("small")])
                .collect();
            let value: String = (0..len)
                .map(|_| palette[usize::try_from(next() % palette.len() as u64).expect("small")])
                .collect();
            let name = if name.is_empty() {
                "n".to_string()
            } else {
                name
            };
            let ms = Matchers::from(vec![
                Matcher::new(&name, MatchOp::Equal, &value).expect("equality never fails"),
                Matcher::new("alertname", MatchOp::NotEqual, &value).expect("valid"),
            ]);
            let shown = ms.to_string();
            assert_eq!(parse(&shown), ms, "display {shown:?}");
        }
    }

    #[test]
    fn serde_round_trip_as_json_string() {
        let ms = parse(r#"alertname="PodCrashLooping", severity=~"critical|warning""#);
        let json = serde_json::to_string(&ms).expect("serialize");
        assert_eq!(
            json,
            r#""{alertname=\"PodCrashLooping\", severity=~\"critical|warning\"}""#
        );
        let back: Matchers = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, ms);

        // Alertmanager's `matchers:` list shape.
        let list: Matchers = serde_json::from_str(
            r#"["alertname=PodCrashLooping", "severity=~\"critical|warning\""]"#,
        )
        .expect("list");
        assert_eq!(list, ms);

        let bad = serde_json::from_str::<Matchers>(r#""severity=~\"crit(\"""#)
            .expect_err("invalid regex")
            .to_string();
        assert!(
            bad.starts_with(r#"invalid regex "crit(": unclosed group at column 11"#),
            "{bad}"
        );
        assert!(serde_json::from_str::<Matchers>("42").is_err());
    }

    #[test]
    fn json_schema_describes_a_string_or_list() {
        let schema = serde_json::to_value(schemars::schema_for!(Matchers)).expect("schema");
        assert_eq!(schema["anyOf"][0]["type"], "string");
        assert_eq!(schema["anyOf"][1]["items"]["type"], "string");
    }

    #[test]
    fn index_key_choices() {
        let key = |input: &str| {
            let ms = parse(input);
            ms.index_key().map(|(n, v)| (n.to_string(), v.to_string()))
        };
        let pair = |n: &str, v: &str| Some((n.to_string(), v.to_string()));
        assert_eq!(
            key(r#"namespace="prod", alertname="PodCrashLooping""#),
            pair("alertname", "PodCrashLooping")
        );
        assert_eq!(
            key(r#"severity=~"critical", namespace="prod", pod="api-0""#),
            pair("namespace", "prod")
        );
        assert_eq!(
            key(r#"alertname=~"Pod.*", alertname="", deployment="checkout""#),
            pair("deployment", "checkout")
        );
        assert_eq!(key(r#"alertname!="Watchdog", namespace="""#), None);
        assert_eq!(key(""), None);
    }

    #[test]
    fn error_columns() {
        let cases = [
            (
                r#"alertname="PodCrashLooping"#,
                e("unterminated quoted string", 11),
            ),
            (
                r#"{alertname "PodCrashLooping"}"#,
                e(
                    r#"missing operator after label name "alertname", found '"'; expected '=', '!=', '=~' or '!~'"#,
                    12,
                ),
            ),
            (
                "namespace",
                e(
                    r#"missing operator after label name "namespace"; expected '=', '!=', '=~' or '!~'"#,
                    10,
                ),
            ),
            (
                r#"severity=="critical""#,
                e(
                    r#"unknown operator "=="; expected '=', '!=', '=~' or '!~'"#,
                    9,
                ),
            ),
            (
                "severity >= 3",
                e(
                    r#"unknown operator ">="; expected '=', '!=', '=~' or '!~'"#,
                    10,
                ),
            ),
            (r#"{namespace="prod", ="x"}"#, e("empty label name", 20)),
            (r#"{""="x"}"#, e("empty label name", 2)),
            (
                r#"{namespace="prod",, pod="x"}"#,
                e("unexpected character ','; expected a label name", 19),
            ),
            (
                r#"1pod="x""#,
                e("unexpected character '1'; expected a label name", 1),
            ),
            (
                r#"pod-name="x""#,
                e(r#"invalid character '-' in label name "pod""#, 4),
            ),
            (
                r#"namespace="prod" pod="x""#,
                e("unexpected character 'p' after matcher; expected ','", 18),
            ),
            (
                r#"{namespace="prod" pod="x"}"#,
                e(
                    "unexpected character 'p' after matcher; expected ',' or '}'",
                    19,
                ),
            ),
            (
                r#"{severity=~"crit(", namespace="prod"}"#,
                e(r#"invalid regex "crit(": unclosed group"#, 12),
            ),
            (
                r#"deployment=~"a)|(b""#,
                e(r#"invalid regex "a)|(b": unopened group"#, 13),
            ),
            (
                r#"{alertname="PodCrashLooping""#,
                e("unmatched '{': missing closing '}'", 1),
            ),
            (r#"alertname="PodCrashLooping"}"#, e("unmatched '}'", 28)),
            (r#"{pod="x"}}"#, e("unmatched '}'", 10)),
            (
                r#"{pod="x"} extra"#,
                e("unexpected character 'e' after closing '}'", 11),
            ),
            (
                r#"pod=api"x""#,
                e(
                    r#"unexpected character '"' in unquoted value; put the value in double quotes"#,
                    8,
                ),
            ),
            (
                "deployment=~a{2}",
                e(
                    "unexpected character '{' in unquoted value; put the value in double quotes",
                    14,
                ),
            ),
            (
                r#"pod="\xff""#,
                e("quoted string is not valid UTF-8 after unescaping", 5),
            ),
            // Columns count characters, not bytes.
            (
                r#"pod="é✓", ns"#,
                e(
                    r#"missing operator after label name "ns"; expected '=', '!=', '=~' or '!~'"#,
                    13,
                ),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(err(input), expected, "input {input:?}");
        }
        assert_eq!(
            err(r#"severity=~"crit(""#).to_string(),
            r#"invalid regex "crit(": unclosed group at column 11"#
        );
    }

    #[test]
    fn matcher_new_errors() {
        assert_eq!(
            Matcher::new("", MatchOp::Equal, "x").expect_err("empty name"),
            e("empty label name", 1)
        );
        assert_eq!(
            Matcher::new("severity", MatchOp::NotRegex, "[").expect_err("bad regex"),
            e(r#"invalid regex "[": unclosed character class"#, 1)
        );
        // Equality values are never compiled, so regex syntax is fine there.
        assert!(Matcher::new("severity", MatchOp::Equal, "[").is_ok());
    }

    #[test]
    fn from_str_and_iteration() {
        let ms: Matchers = r#"alertname="KubePodNotReady", namespace="prod""#
            .parse()
            .expect("parses");
        assert_eq!(ms.len(), 2);
        let names: Vec<&str> = (&ms).into_iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["alertname", "namespace"]);
        let rebuilt: Matchers = ms.iter().cloned().collect();
        assert_eq!(rebuilt, ms);
    }
}
