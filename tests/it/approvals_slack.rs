//! Approvals through Slack, on the real binary, with a loopback listener standing in
//! for Slack (the incoming webhook, and a click's `response_url`) and for a webhook
//! receiver: the request carries Approve and Deny buttons holding only its id; a click
//! signed as Slack signs it decides, once, and anything else is refused (wrong secret,
//! stale timestamp, someone the group does not name, the same click sent again); the
//! channels hear what became of the request, and the message clicked is changed. An
//! email channel of the group, on a real SMTP server, gets the same as plain text.

use crate::approvals::{approval, asked, marks, rule, wait_state};
use crate::notify_support::{
    header, message_body, quoted_printable, slack_click as click_body, slack_signature, Receiver,
    SmtpServer,
};
use crate::support::{marker, wait_until, Reply, Salve};
use serde_json::{json, Value};

/// The signing secret of the Slack app the channel `ops` belongs to.
const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
/// The one Slack user group `sre` names.
const APPROVER: &str = "U0123ABCD";

/// `[notify.ops]` (Slack, buttons on when `signing` is) and `[notify.hook]` (a
/// webhook), both to `receiver`; `[exec.mark]`; the group `sre`, told on both.
fn config(receiver: &Receiver, signing: bool) -> String {
    let secret = if signing {
        "signing_secret_file = \"{dir}/slack-signing\"\n"
    } else {
        ""
    };
    format!(
        "{}\n[notify.ops]\ntype = \"slack\"\nurl = \"{}\"\nretries = 0\n{secret}\n\
         [notify.hook]\ntype = \"webhook\"\nurl = \"{}\"\nretries = 0\n\n\
         [approvals.sre]\nttl = \"10m\"\nnotify = [\"ops\", \"hook\"]\nslack_users = [\"{APPROVER}\"]\n",
        marker("mark", "marks"),
        receiver.url("/slack"),
        receiver.url("/hook"),
    )
}

fn start(receiver: &Receiver, approval: &str, signing: bool) -> Salve {
    let mut salve = Salve::builder()
        .config(&config(receiver, signing))
        .rule("failover", &rule(approval))
        .write();
    std::fs::write(
        salve.dir().join("slack-signing"),
        format!("{SIGNING_SECRET}\n"),
    )
    .expect("write the signing secret");
    salve.start();
    salve
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Posts `body` signed with `secret` at `at`, as Slack signs it.
fn post_signed(salve: &Salve, secret: &str, at: i64, body: &str) -> Reply {
    let signature = slack_signature(secret, at, body);
    salve.send(
        salve
            .client()
            .post(salve.url("/api/v1/slack/interactions"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", at.to_string())
            .header("x-slack-signature", signature)
            .body(body.to_string()),
    )
}

/// The JSON bodies `receiver` got on `path`.
fn received(receiver: &Receiver, path: &str) -> Vec<Value> {
    receiver
        .requests()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| r.json())
        .collect()
}

fn wait_received(
    receiver: &Receiver,
    path: &str,
    what: &str,
    found: impl Fn(&Value) -> bool,
) -> Value {
    wait_until(what, || received(receiver, path).into_iter().find(&found))
}

/// The buttons of a Slack message's `actions` blocks that answer (not the links).
fn answer_buttons(message: &Value) -> Vec<Value> {
    message["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["action_id"] == "approve" || e["action_id"] == "deny")
        .collect()
}

fn text_of(message: &Value) -> String {
    message.to_string()
}

#[test]
fn a_request_reaches_slack_with_buttons_holding_only_its_id_and_the_webhook_as_json() {
    let receiver = Receiver::start(&[]);
    let salve = start(&receiver, ".approval(\"sre\")", true);
    let id = asked(&salve);
    let request = wait_received(&receiver, "/slack", "the request on Slack", |m| {
        !answer_buttons(m).is_empty()
    });
    let button = |action_id: &str, text: &str, style: &str| {
        json!({
            "type": "button",
            "action_id": action_id,
            "text": { "type": "plain_text", "text": text },
            "style": style,
            "value": id,
        })
    };
    assert_eq!(
        answer_buttons(&request),
        [
            button("approve", "Approve", "primary"),
            button("deny", "Deny", "danger")
        ]
    );
    let text = text_of(&request);
    for fact in [
        "DbDown",
        "db-1",
        "failover",
        "failover.rhai:5",
        "exec:mark",
        "passed dedup",
        "approval\\\":\\\"sre",
    ] {
        assert!(text.contains(fact), "{fact} not in {request:#}");
    }
    assert_eq!(request["blocks"][0]["type"], "header", "{request:#}");
    let hook = wait_received(&receiver, "/hook", "the request on the webhook", |_| true);
    assert_eq!(hook["kind"], "approval_requested", "{hook:#}");
    assert_eq!(hook["channel"], "hook");
    assert_eq!(hook["approval"], approval(&salve, &id));
    assert_eq!(hook["event"]["labels"]["host"], "db-1");
}

#[test]
fn a_signed_click_decides_once_and_anything_else_is_refused() {
    let receiver = Receiver::start(&[]);
    let salve = start(&receiver, ".approval(\"sre\")", true);
    let id = asked(&salve);
    let response_url = receiver.url("/response");
    let body = click_body(APPROVER, "approve", &id, &response_url);

    let wrong = post_signed(&salve, "another app's secret", now(), &body);
    assert_eq!(wrong.status, 401, "{:?}", wrong.body);
    let stale = post_signed(&salve, SIGNING_SECRET, now() - 6 * 60, &body);
    assert_eq!(stale.status, 401, "{:?}", stale.body);
    let unsigned = salve.post_raw(
        "/api/v1/slack/interactions",
        "application/x-www-form-urlencoded",
        body.clone().into_bytes(),
    );
    assert_eq!(unsigned.status, 401, "{:?}", unsigned.body);
    let garbled = post_signed(&salve, SIGNING_SECRET, now(), "payload=%7Bnot+json");
    assert_eq!(garbled.status, 400, "{:?}", garbled.body);
    let stranger = click_body("U0STRANGER", "approve", &id, &response_url);
    let refused = post_signed(&salve, SIGNING_SECRET, now(), &stranger);
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert_eq!(approval(&salve, &id)["state"], "pending");
    assert!(marks(&salve).is_empty(), "nothing runs before the yes");

    let at = now();
    let yes = post_signed(&salve, SIGNING_SECRET, at, &body);
    assert_eq!(yes.status, 200, "{:?}", yes.body);
    let done = wait_state(&salve, &id, "executed");
    assert_eq!(
        done["decided_by"],
        json!({ "via": "slack", "id": APPROVER, "name": "ada" })
    );
    wait_until("the marker written", || {
        (marks(&salve).len() == 1).then_some(())
    });
    assert_eq!(marks(&salve), ["db-1"]);

    // The same signed request again, within the five minutes: decided by the first.
    let replayed = post_signed(&salve, SIGNING_SECRET, at, &body);
    assert_eq!(replayed.status, 409, "{:?}", replayed.body);
    assert_eq!(replayed.body["detail"]["decided_by"]["id"], APPROVER);
    assert_eq!(marks(&salve), ["db-1"]);
    assert_eq!(
        salve.metric("salve_approval_decisions_total{state=\"approved\"}"),
        Some(1.0)
    );
}

#[test]
fn a_click_changes_the_message_clicked_and_the_channels_hear_what_came_of_it() {
    let receiver = Receiver::start(&[]);
    let salve = start(&receiver, ".approval(\"sre\")", true);
    let id = asked(&salve);
    let response_url = receiver.url("/response");
    let body = click_body(APPROVER, "approve", &id, &response_url);
    let yes = post_signed(&salve, SIGNING_SECRET, now(), &body);
    assert_eq!(yes.status, 200, "{:?}", yes.body);
    wait_state(&salve, &id, "executed");

    let replaced = wait_received(
        &receiver,
        "/response",
        "the message clicked, executed",
        |m| text_of(m).contains("EXECUTED"),
    );
    assert_eq!(replaced["replace_original"], true, "{replaced:#}");
    assert!(
        answer_buttons(&replaced).is_empty(),
        "no buttons once decided: {replaced:#}"
    );
    assert!(
        text_of(&replaced).contains("Approved by ada &lt;U0123ABCD&gt; (slack)"),
        "{replaced:#}"
    );
    // Told when it was approved, then when it ran.
    for state in ["approved", "executed"] {
        let follow_up = wait_received(
            &receiver,
            "/slack",
            &format!("Slack told it was {state}"),
            |m| {
                m["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with(&format!("Approval {state}:")))
            },
        );
        assert!(text_of(&follow_up).contains(&id), "{follow_up:#}");
        assert!(answer_buttons(&follow_up).is_empty());
        let hook = wait_received(
            &receiver,
            "/hook",
            &format!("the webhook told it was {state}"),
            |m| m["approval"]["state"] == state,
        );
        assert_eq!(hook["kind"], "approval_decided", "{hook:#}");
        assert_eq!(hook["approval"]["decided_by"]["id"], APPROVER);
    }
    wait_until("both messages counted", || {
        (salve.metric(
            "salve_approval_notices_total{message=\"ended\",channel=\"ops\",outcome=\"ok\"}",
        ) == Some(2.0))
        .then_some(())
    });
}

#[test]
fn an_unanswered_request_is_followed_by_a_message_saying_it_expired() {
    let receiver = Receiver::start(&[]);
    let salve = start(&receiver, ".approval(\"sre\", \"2s\")", true);
    let id = asked(&salve);
    let expired = wait_received(&receiver, "/slack", "Slack told it expired", |m| {
        m["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("Approval expired:"))
    });
    let text = text_of(&expired);
    assert!(
        text.contains(&id) && text.contains("nobody answered in time"),
        "{expired:#}"
    );
    let hook = wait_received(&receiver, "/hook", "the webhook told it expired", |m| {
        m["approval"]["state"] == "expired"
    });
    assert_eq!(hook["approval"]["decided_by"]["via"], "salve", "{hook:#}");
    // A click on the expired request: refused, and the message says what became of it.
    let late = post_signed(
        &salve,
        SIGNING_SECRET,
        now(),
        &click_body(APPROVER, "approve", &id, &receiver.url("/late")),
    );
    assert_eq!(late.status, 410, "{:?}", late.body);
    let replaced = wait_received(&receiver, "/late", "the message clicked, expired", |_| true);
    assert_eq!(replaced["replace_original"], true);
    assert!(text_of(&replaced).contains("EXPIRED"), "{replaced:#}");
    assert!(marks(&salve).is_empty());
}

#[test]
fn without_a_signing_secret_there_are_no_buttons_and_clicks_are_not_taken() {
    let receiver = Receiver::start(&[]);
    let salve = start(&receiver, ".approval(\"sre\")", false);
    let id = asked(&salve);
    let request = wait_received(&receiver, "/slack", "the request on Slack", |_| true);
    assert!(answer_buttons(&request).is_empty(), "{request:#}");
    assert!(text_of(&request).contains(&id));
    let body = click_body(APPROVER, "approve", &id, &receiver.url("/response"));
    let click = post_signed(&salve, SIGNING_SECRET, now(), &body);
    assert_eq!(click.status, 404, "{:?}", click.body);
    assert!(
        click.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("signing_secret_file")),
        "{:?}",
        click.body
    );
    assert_eq!(approval(&salve, &id)["state"], "pending");
}

#[test]
fn an_email_channel_gets_the_request_and_its_end_as_plain_text() {
    let smtp = SmtpServer::start();
    let salve = Salve::builder()
        .config(&format!(
            "{}\n[notify.mail]\ntype = \"email\"\nsmtp = \"smtp://127.0.0.1:{}\"\n\
             from = \"salve@example.org\"\nto = [\"sre@example.org\"]\n\n\
             [approvals.sre]\nnotify = [\"mail\"]\nslack_users = [\"{APPROVER}\"]\n",
            marker("mark", "marks"),
            smtp.port
        ))
        .rule("failover", &rule(".approval(\"sre\", \"2s\")"))
        .start();
    let id = asked(&salve);
    let mails = wait_until("the request and its expiry by mail", || {
        Some(smtp.messages()).filter(|m| m.len() == 2)
    });
    let subjects: Vec<Option<&str>> = mails.iter().map(|m| header(m, "Subject")).collect();
    assert_eq!(
        subjects,
        [
            Some("salve: approval needed for exec on exec:mark (DbDown)"),
            Some("salve: approval expired for exec on exec:mark (DbDown)"),
        ],
        "{mails:#?}"
    );
    let request = quoted_printable(message_body(&mails[0]));
    for line in [
        "Rule: failover (",
        "Target: exec:mark",
        "Labels: alertname=DbDown host=db-1",
        &format!("Approval: {id} (group sre)"),
        &format!("Answer with POST /api/v1/approvals/{id}/approve (or /deny)."),
    ] {
        assert!(request.contains(line), "{line:?} not in {request}");
    }
    assert!(
        message_body(&mails[1]).contains("nobody answered in time"),
        "{}",
        mails[1]
    );
}
