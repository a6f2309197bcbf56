//! What a notification says: the alert rendered from the rule's templates, or salve's
//! default text, the same on every kind of channel.

use crate::notify_support::{
    header, hmac_hex, message_body, outcomes, stable, Receiver, Request, SmtpServer, SECRET,
};
use crate::support::{wait_until, Salve};
use serde_json::{json, Value};

/// What the fixture's alert (`firing-single.json`) reads as when no text is given.
const DEFAULT_TEXT: &str = "[FIRING] ContainerDown (critical): Container web-1 is down
container=web-1 instance=host-a:9323 job=cadvisor service=web
Source: http://prometheus.local:9090/graph?g0.expr=up%3D%3D0
Runbook: https://runbooks.example/container-down
salve (rule tell): exec exec:heal";

#[test]
fn messages_carry_the_alert_rendered_from_templates_or_by_default() {
    let smtp = SmtpServer::start();
    let slack = Receiver::start(&[]);
    let ticketing = Receiver::start(&[]);
    let salve = Salve::builder()
        .config(&format!(
            r#"
[exec.heal]
argv = ["true"]

[notify.oncall]
type = "email"
smtp = "smtp://127.0.0.1:{port}"
from = "salve@example.org"
to = ["oncall@example.org"]

[notify.ops]
type = "slack"
url = "{slack}"

[notify.ticketing]
type = "webhook"
url = "{ticketing}"
secret_env = "HOOK_SECRET"

[notify.plain]
type = "webhook"
url = "{ticketing}"
"#,
            port = smtp.port,
            slack = slack.url("/slack"),
            ticketing = ticketing.url("/hook"),
        ))
        .env("HOOK_SECRET", SECRET)
        .rule(
            "tell",
            r#"
const MATCH = `alertname="ContainerDown"`;

fn plan(event) {
    [
        exec("heal"),
        email("oncall", "{{ labels.alertname }} ({{ labels.severity }}): {{ annotations.summary }}",
              "{{ annotations.summary }} on {{ labels.instance }}, {{ status }} since {{ starts_at }}.\nRunbook: {{ annotations.runbook_url }}\nsalve: {{ action }} {{ target }} ({{ decision }})"),
        slack("ops"),
        webhook("ticketing"),
        // Put together at run time: data, sent as it is, never read as template code.
        webhook("plain", "{{ labels.job | " + event.labels.job + " }}"),
    ]
}
"#,
        )
        .start();
    let reply = salve.post_fixture("firing-single.json");
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let records = salve.wait_settled(1);
    let outcomes = outcomes(&records);
    for channel in ["oncall", "ops", "ticketing", "plain"] {
        let outcome = outcomes.get(&format!("notify:{channel}"));
        assert_eq!(
            outcome.map(|o| o["outcome"].clone()),
            Some(json!("ok")),
            "{channel}: {records:#?}\n{}",
            salve.logs()
        );
    }
    let plain: Vec<Request> = ticketing
        .requests()
        .into_iter()
        .filter(|r| r.json()["channel"] == "plain")
        .collect();
    assert_eq!(plain.len(), 1, "{plain:?}");
    assert_eq!(plain[0].json()["text"], "{{ labels.job | cadvisor }}");
    assert_eq!(
        plain[0].json()["intent"]["params"]["verbatim"],
        json!(["text"])
    );

    let messages = wait_until("the message in the maildir", || {
        Some(smtp.messages()).filter(|m| !m.is_empty())
    });
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(
        header(&messages[0], "Subject"),
        Some("ContainerDown (critical): Container web-1 is down"),
        "{}",
        messages[0]
    );
    assert_eq!(
        // Quoted-printable: a soft line break is `=` at the end of a line.
        message_body(&messages[0])
            .replace("\r\n", "\n")
            .replace("=\n", "")
            .trim(),
        "Container web-1 is down on host-a:9323, firing since 2026-11-22T22:39:08.658669699+00:00.\n\
         Runbook: https://runbooks.example/container-down\n\
         salve: exec exec:heal (execute)",
        "{}",
        messages[0]
    );

    let slacked = slack.requests();
    assert_eq!(slacked.len(), 1, "{slacked:?}");
    let field =
        |name: &str, value: &str| json!({ "type": "mrkdwn", "text": format!("*{name}*\n{value}") });
    assert_eq!(
        slacked[0].json(),
        json!({
            "text": DEFAULT_TEXT,
            "blocks": [
                { "type": "header", "text": { "type": "plain_text", "text": "🔥 FIRING: ContainerDown", "emoji": true } },
                { "type": "section", "text": { "type": "mrkdwn", "text": "Container web-1 is down" } },
                { "type": "section", "fields": [
                    field("Status", "firing"), field("Severity", "critical"),
                    field("container", "web-1"), field("instance", "host-a:9323"),
                    field("job", "cadvisor"), field("service", "web"),
                ] },
                { "type": "context", "elements": [{ "type": "mrkdwn", "text": "salve (rule tell): exec exec:heal" }] },
                { "type": "actions", "elements": [
                    { "type": "button", "text": { "type": "plain_text", "text": "Source" },
                      "url": "http://prometheus.local:9090/graph?g0.expr=up%3D%3D0" },
                    { "type": "button", "text": { "type": "plain_text", "text": "Runbook" },
                      "url": "https://runbooks.example/container-down" },
                ] },
            ],
        })
    );

    let hooks: Vec<Request> = ticketing
        .requests()
        .into_iter()
        .filter(|r| r.json()["channel"] == "ticketing")
        .collect();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(
        hooks[0].headers["x-salve-signature"],
        format!("sha256={}", hmac_hex(SECRET.as_bytes(), &hooks[0].body))
    );
    let document = stable(hooks[0].json());
    let fixture = crate::support::fixture("firing-single.json");
    let alert = &fixture["alerts"][0];
    let decision = |action: &str, target: &str, params: Value| {
        let mut d = json!({
            "fingerprint": "75359c27e5221bdd",
            "starts_at": "2026-11-22T22:39:08.658669699Z",
            "status": "firing", "rule": "tell",
            "action": action, "target": target, "decision": "execute",
        });
        if params != json!({}) {
            d["params"] = params;
        }
        d
    };
    assert_eq!(
        document,
        json!({
            "channel": "ticketing",
            "action": "notify",
            "via": "webhook",
            "text": DEFAULT_TEXT,
            "event": {
                "source": "alertmanager",
                "status": "firing",
                "labels": alert["labels"],
                "annotations": alert["annotations"],
                "starts_at": "2026-11-22T22:39:08.658669699Z",
                "fingerprint": "75359c27e5221bdd",
                "generator_url": alert["generatorURL"],
            },
            "intent": { "action": "notify", "target": "notify:ticketing", "params": { "via": "webhook" } },
            "decision": decision("notify", "notify:ticketing", json!({ "via": "webhook" })),
            "actions": [
                decision("exec", "exec:heal", json!({})),
                document["actions"][1].clone(),
                decision("notify", "notify:ops", json!({ "via": "slack" })),
                document["actions"][3].clone(),
            ],
        }),
        "{document:#}"
    );
    assert_eq!(document["actions"][1]["target"], "notify:oncall");
    assert_eq!(document["actions"][3]["target"], "notify:plain");
}
