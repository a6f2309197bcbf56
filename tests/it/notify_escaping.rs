//! Outside text never becomes markup: a label full of Slack and HTML markup, put into a
//! message by a template, by `+` and by interpolation in the rule, or by salve's default
//! message, arrives as text on every channel, while salve's own formatting still works.

use crate::notify_support::{outcomes, Receiver, SmtpServer};
use crate::support::{native, wait_until, Salve};
use serde_json::{json, Value};

/// A label that would mention the whole channel, add a link, read as HTML, and (in a
/// header) start a header of its own.
const MSG: &str =
    "<!channel> <http://evil.example|click> & <b>html</b> \"q\"\nBcc: evil@evil.example";

/// [`MSG`] as Slack must receive it to show it as it is.
const MSG_IN_SLACK: &str = "&lt;!channel&gt; &lt;http://evil.example|click&gt; &amp; \
     &lt;b&gt;html&lt;/b&gt; \"q\"\nBcc: evil@evil.example";

/// The same label through each way a rule builds text, and through the default message.
const RULE: &str = r#"
const MATCH = `alertname="Escape"`;

fn plan(event) {
    [
        VIA("tpl", SUBJECT"Tpl {{ labels.msg }}"),
        VIA("cat", SUBJECT"Cat " + event.labels.msg),
        VIA("int", SUBJECT`Int ${event.labels.msg}`),
        VIA("own"),
    ]
}
"#;

const CHANNELS: [&str; 4] = ["tpl", "cat", "int", "own"];

/// The rule for `via` (`slack`, `email`, `webhook`); an email's subject is its text.
fn rule(via: &str) -> String {
    let rule = RULE.replace("VIA", via);
    if via != "email" {
        return rule.replace("SUBJECT", "");
    }
    [
        "\"Tpl {{ labels.msg }}\"",
        "\"Cat \" + event.labels.msg",
        "`Int ${event.labels.msg}`",
    ]
    .iter()
    .fold(rule, |rule, text| {
        rule.replacen("SUBJECT", &format!("{text}, "), 1)
    })
}

/// Starts salve with `config` and [`rule`], sends the alert and checks every message
/// was delivered.
fn fire(via: &str, config: &str) -> Salve {
    let salve = Salve::builder()
        .config(config)
        .rule("tell", &rule(via))
        .start();
    let reply = salve.post_json(
        "/api/v1/events",
        &native(&[("alertname", "Escape"), ("msg", MSG)]),
    );
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let outcomes = outcomes(&salve.wait_settled(1));
    for channel in CHANNELS {
        assert_eq!(
            outcomes
                .get(&format!("notify:{channel}"))
                .map(|o| o["outcome"].clone()),
            Some(json!("ok")),
            "{channel}: {outcomes:#?}\n{}",
            salve.logs()
        );
    }
    salve
}

fn http_channels(kind: &str, receiver: &Receiver) -> String {
    CHANNELS
        .iter()
        .map(|c| {
            let url = receiver.url(&format!("/{c}"));
            format!("[notify.{c}]\ntype = \"{kind}\"\nurl = \"{url}\"\n")
        })
        .collect()
}

/// The one request that reached `path`, as JSON.
fn received(receiver: &Receiver, path: &str) -> (Value, Vec<u8>) {
    let requests: Vec<_> = receiver
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect();
    assert_eq!(requests.len(), 1, "{path}: {requests:?}");
    (requests[0].json(), requests[0].body.clone())
}

#[test]
fn slack_shows_markup_from_a_label_as_text() {
    let slack = Receiver::start(&[]);
    let _salve = fire("slack", &http_channels("slack", &slack));

    let field =
        |name: &str, value: &str| json!({ "type": "mrkdwn", "text": format!("*{name}*\n{value}") });
    let message = |text: &str, lead: &str| {
        json!({
            "text": text,
            "blocks": [
                { "type": "header", "text": { "type": "plain_text", "text": "🔥 FIRING: Escape", "emoji": true } },
                { "type": "section", "text": { "type": "mrkdwn", "text": lead } },
                { "type": "section", "fields": [field("Status", "firing"), field("msg", MSG_IN_SLACK)] },
                { "type": "context", "elements": [{ "type": "mrkdwn", "text": "salve (rule tell)" }] },
            ],
        })
    };
    for (channel, lead) in [("tpl", "Tpl"), ("cat", "Cat"), ("int", "Int")] {
        let text = format!("{lead} {MSG_IN_SLACK}");
        assert_eq!(
            received(&slack, &format!("/{channel}")).0,
            message(&text, &text),
            "{channel}"
        );
    }
    let default = format!("[FIRING] Escape\nmsg={MSG_IN_SLACK}");
    assert_eq!(
        received(&slack, "/own").0,
        message(&default, "Escape"),
        "own"
    );
}

/// The message's header lines, unfolded, and its body.
fn parts(message: &str) -> (Vec<(String, String)>, String) {
    let message = message.replace("\r\n", "\n");
    let (head, body) = message.split_once("\n\n").unwrap_or((&message, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        match (line.starts_with([' ', '\t']), headers.last_mut()) {
            (true, Some((_, value))) => value.push_str(line),
            _ => {
                let (name, value) = line.split_once(':').unwrap_or((line, ""));
                headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
            }
        }
    }
    (headers, body.to_string())
}

#[test]
fn email_is_plain_text_and_a_label_cannot_add_a_header() {
    let smtp = SmtpServer::start();
    let config: String = CHANNELS
        .iter()
        .map(|c| {
            format!(
                "[notify.{c}]\ntype = \"email\"\nsmtp = \"smtp://127.0.0.1:{}\"\n\
                 from = \"salve@example.org\"\nto = [\"{c}@example.org\"]\n",
                smtp.port
            )
        })
        .collect();
    let _salve = fire("email", &config);

    let messages = wait_until("the four messages in the maildir", || {
        Some(smtp.messages()).filter(|m| m.len() == 4)
    });
    let one_line = MSG.replace('\n', " ");
    let mut seen = Vec::new();
    for message in &messages {
        let (headers, body) = parts(message);
        let header = |name: &str| -> Vec<&str> {
            headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        let to = header("to");
        let channel = to
            .first()
            .and_then(|t| t.strip_suffix("@example.org"))
            .unwrap_or_else(|| panic!("a To header: {message}"));
        seen.push(channel.to_string());
        // Only the configured recipient, and no header the label made up.
        assert_eq!(header("x-rcptto"), [to[0]], "{message}");
        assert_eq!(header("bcc"), Vec::<&str>::new(), "{message}");
        assert_eq!(header("content-type"), ["text/plain; charset=utf-8"]);
        assert_eq!(header("content-transfer-encoding"), ["7bit"], "{message}");
        assert!(!message.contains("text/html"), "{message}");
        let (subject, text) = match channel {
            "tpl" => (format!("Tpl {one_line}"), format!("Tpl {MSG}")),
            "cat" => (format!("Cat {one_line}"), format!("Cat {MSG}")),
            "int" => (format!("Int {one_line}"), format!("Int {MSG}")),
            _ => (
                format!("[FIRING] Escape msg={one_line}"),
                format!("[FIRING] Escape\nmsg={MSG}"),
            ),
        };
        assert_eq!(header("subject"), [subject.as_str()], "{message}");
        assert_eq!(body.trim_end(), text, "{message}");
    }
    seen.sort();
    assert_eq!(seen, ["cat", "int", "own", "tpl"]);
}

#[test]
fn webhook_carries_markup_from_a_label_as_json_data() {
    let hooks = Receiver::start(&[]);
    let _salve = fire("webhook", &http_channels("webhook", &hooks));

    for (channel, text) in [
        ("tpl", format!("Tpl {MSG}")),
        ("cat", format!("Cat {MSG}")),
        ("int", format!("Int {MSG}")),
        ("own", format!("[FIRING] Escape\nmsg={MSG}")),
    ] {
        let (document, body) = received(&hooks, &format!("/{channel}"));
        // The quote and the newline are escaped in the JSON: the label adds no key and
        // breaks no line of the document.
        assert!(!body.contains(&b'\n'), "{channel}: {document}");
        let mut keys: Vec<&str> = document
            .as_object()
            .map(|d| d.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort();
        assert_eq!(
            keys,
            [
                "action", "actions", "channel", "decision", "event", "intent", "sent_at", "text",
                "via"
            ],
            "{channel}: {document}"
        );
        assert_eq!(document["text"], text, "{channel}");
        assert_eq!(document["event"]["labels"]["msg"], MSG, "{channel}");
    }
}
