//! Signed links, on the real binary and a real SMTP server: each address of a group's
//! `emails` gets its own link; opening it decides nothing (mail scanners follow links);
//! its form's POST answers once, as that address; a second answer is a 409.

use crate::approvals::{asked, marks, rule, wait_state};
use crate::notify_support::{header, message_body, quoted_printable, Receiver, SmtpServer};
use crate::support::{marker, wait_until, Salve};

fn salve_mailing(smtp: &SmtpServer, hook: &Receiver) -> Salve {
    Salve::builder()
        .config(&format!(
            "{}\n[notify.mail]\ntype = \"email\"\nsmtp = \"smtp://127.0.0.1:{}\"\n\
             from = \"salve@example.org\"\nto = [\"sre@example.org\"]\n\n\
             [notify.hook]\ntype = \"webhook\"\nurl = \"{}\"\nretries = 0\n\n\
             [approvals.sre]\nnotify = [\"mail\", \"hook\"]\nemails = [\"oncall@example.org\", \"lead@example.org\"]\n",
            marker("mark", "marks"),
            smtp.port,
            hook.url("/hook"),
        ))
        .rule("failover", &rule(".approval(\"sre\")"))
        .start()
}

/// The page a mailed link points at, from the mail sent to `to`.
fn link_for(smtp: &SmtpServer, to: &str) -> String {
    let mail = wait_until(&format!("the signed link mailed to {to}"), || {
        smtp.messages()
            .into_iter()
            .find(|m| header(m, "To") == Some(to))
    });
    let body = quoted_printable(message_body(&mail));
    let line = body
        .lines()
        .find_map(|l| l.strip_prefix("Approve: "))
        .unwrap_or_else(|| panic!("no Approve: line in {body}"));
    line.trim().trim_end_matches("?choice=approve").to_string()
}

fn post_answer(salve: &Salve, url: &str, choice: &str) -> (u16, String) {
    let reply = salve
        .client()
        .post(url)
        .form(&[("choice", choice), ("comment", "from my phone")])
        .send()
        .expect("post the form");
    let status = reply.status().as_u16();
    (status, reply.text().unwrap_or_default())
}

#[test]
fn a_signed_link_shows_on_get_and_decides_once_on_post() {
    let smtp = SmtpServer::start();
    let hook = Receiver::start(&[]);
    let salve = salve_mailing(&smtp, &hook);
    let id = asked(&salve);
    let oncall = link_for(&smtp, "oncall@example.org");
    let lead = link_for(&smtp, "lead@example.org");
    assert_ne!(oncall, lead, "one token an address");
    // The webhook's request document hands each address its own links.
    let document = wait_until("the request's webhook document", || {
        hook.requests()
            .into_iter()
            .map(|r| r.json())
            .find(|d| d["kind"] == "approval_requested")
    });
    assert_eq!(
        document["links"]["oncall@example.org"]["approve"],
        format!("{oncall}?choice=approve").as_str(),
        "{document:#}"
    );
    assert_eq!(
        document["links"]["lead@example.org"]["deny"],
        format!("{lead}?choice=deny").as_str()
    );
    assert!(oncall.contains("/approvals/link/"), "{oncall}");
    // The trail keeps no token, only its hash.
    let token = oncall.rsplit('/').next().unwrap_or_default().to_string();
    let trail = std::fs::read_to_string(salve.data_dir().join("audit.jsonl")).unwrap_or_default();
    assert!(
        !trail.is_empty() && !trail.contains(&token),
        "a token in the trail"
    );

    let shown = salve.client().get(&oncall).send().expect("open the link");
    assert_eq!(shown.status().as_u16(), 200);
    let html = shown.text().unwrap_or_default();
    assert!(
        html.contains("exec:mark") && html.contains("oncall@example.org"),
        "{html}"
    );
    assert!(html.contains("value=\"approve\""), "{html}");
    assert_eq!(
        crate::approvals::approval(&salve, &id)["state"],
        "pending",
        "a GET decides nothing"
    );

    let (status, page) = post_answer(&salve, &oncall, "approve");
    assert_eq!(status, 200, "{page}");
    let done = wait_state(&salve, &id, "executed");
    assert_eq!(done["decided_by"]["via"], "link");
    assert_eq!(done["decided_by"]["id"], "oncall@example.org");
    assert_eq!(done["comment"], "from my phone");
    wait_until("the approved action to run", || {
        (marks(&salve) == ["db-1"]).then_some(())
    });

    let (again, _) = post_answer(&salve, &oncall, "approve");
    assert_eq!(again, 409, "a link answers once");
    let (other, page) = post_answer(&salve, &lead, "deny");
    assert_eq!(other, 409, "the approval is decided: {page}");
    assert!(
        page.contains("oncall@example.org"),
        "says who decided: {page}"
    );
    let made_up = salve.url("/approvals/link/not-a-token-salve-sent");
    assert_eq!(
        salve
            .client()
            .get(&made_up)
            .send()
            .expect("get")
            .status()
            .as_u16(),
        404
    );
    assert_eq!(post_answer(&salve, &made_up, "approve").0, 404);
    assert_eq!(marks(&salve), ["db-1"]);
}
