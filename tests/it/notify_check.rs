//! `salve check` on notification channels and message templates: each mistake named
//! by the key or the template at fault.

use crate::support::Salve;

#[test]
fn check_rejects_bad_channels_with_the_key_at_fault() {
    let cases = [
        (
            "[notify.ops]\ntype = \"slack\"\nurl = \"http://127.0.0.1:1/x\"\nfrom = \"a@b.org\"\n",
            "notify.ops.from: does not apply to a channel of type \"slack\"",
        ),
        (
            "[notify.ops]\ntype = \"slack\"\nurl_env = \"SALVE_TEST_NEVER_SET\"\n",
            "notify.ops.url: environment variable SALVE_TEST_NEVER_SET is not set",
        ),
        (
            "[notify.ops]\ntype = \"slack\"\n",
            "notify.ops.url: needs url, url_env or url_file",
        ),
        (
            "[notify.hook]\ntype = \"webhook\"\nurl = \"ftp://127.0.0.1/x\"\n",
            "notify.hook.url: needs an http:// or https:// URL",
        ),
        (
            "[notify.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1/x\"\ntimeout = \"soon\"\n",
            "notify.hook.timeout:",
        ),
        (
            "[notify.mail]\ntype = \"email\"\nsmtp = \"http://127.0.0.1:25\"\nfrom = \"a@b.org\"\nto = [\"c@d.org\"]\n",
            "notify.mail.smtp: scheme \"http\": use smtp:// or smtps://",
        ),
        (
            "[notify.mail]\ntype = \"email\"\nsmtp = \"smtp://127.0.0.1:25\"\ntls = \"maybe\"\nfrom = \"a@b.org\"\nto = [\"c@d.org\"]\n",
            "notify.mail.tls: \"maybe\": use \"none\", \"starttls\" or \"tls\"",
        ),
        (
            "[notify.mail]\ntype = \"email\"\nsmtp = \"smtp://127.0.0.1:25\"\nfrom = \"a@b.org\"\n",
            "notify.mail.to: needs at least one recipient",
        ),
        (
            "[notify.mail]\ntype = \"email\"\nsmtp = \"smtp://127.0.0.1:25\"\nfrom = \"not an address\"\nto = [\"c@d.org\"]\n",
            "notify.mail.from: \"not an address\"",
        ),
        (
            "[notify.mail]\ntype = \"email\"\nsmtp = \"smtp://127.0.0.1:25\"\nfrom = \"a@b.org\"\nto = [\"c@d.org\"]\nusername = \"salve\"\n",
            "notify.mail.username: username and password_file/password_env go together",
        ),
        ("[notify.x]\ntype = \"pager\"\n", "unknown variant `pager`"),
        (
            "[notify.ops]\ntype = \"slack\"\nurl = \"http://127.0.0.1:1/x\"\nsigning_secret_file = \"/nonexistent/slack-signing\"\n",
            "notify.ops.signing_secret: cannot read /nonexistent/slack-signing",
        ),
        (
            "[notify.ops]\ntype = \"slack\"\nurl = \"http://127.0.0.1:1/x\"\nsigning_secret_file = \"/dev/null\"\n",
            "notify.ops.signing_secret: is empty",
        ),
        (
            "[notify.ops]\ntype = \"slack\"\nurl = \"http://127.0.0.1:1/x\"\nsigning_secret_file = \"/dev/null\"\nsigning_secret_env = \"HOME\"\n",
            "notify.ops.signing_secret: give one of signing_secret_file, signing_secret_env",
        ),
        (
            "[notify.hook]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/x\"\nsigning_secret_env = \"HOME\"\n",
            "notify.hook.signing_secret_env: does not apply to a channel of type \"webhook\"",
        ),
        (
            "[api]\nbasic_auth_password_env = \"HOME\"\n",
            "api.basic_auth_password_env: needs basic_auth_username (without it the API would be open)",
        ),
        (
            "[api]\nbasic_auth_username = \"salve\"\n",
            "api.basic_auth_username: needs basic_auth_password_file or basic_auth_password_env",
        ),
        (
            "[api]\nbearer_token_file = \"/dev/null\"\n",
            "api.bearer_token_file: the token is empty",
        ),
        (
            "[api]\nbearer_token_env = \"HOME\"\nbasic_auth_username = \"salve\"\nbasic_auth_password_env = \"HOME\"\n",
            "api.basic_auth_username: give bearer_token_file/_env or basic auth, not both",
        ),
        (
            "[api]\ntls_cert_file = \"/etc/ssl/certs/ca-certificates.crt\"\n",
            "api.tls_cert_file: needs api.tls_key_file",
        ),
        (
            "[api]\nclient_ca_file = \"/etc/ssl/certs/ca-certificates.crt\"\n",
            "api.client_ca_file: client certificates need TLS",
        ),
        (
            "[api]\ntls_cert_file = \"/nonexistent/server.pem\"\ntls_key_file = \"/nonexistent/server.key\"\n",
            "api.tls_cert_file: /nonexistent/server.pem:",
        ),
        (
            "[api]\ntls_cert_file = \"/dev/null\"\ntls_key_file = \"/dev/null\"\n",
            "api.tls_cert_file: /dev/null holds no PEM certificate",
        ),
        (
            "[[on_outcome]]\nwhen = [\"failed\"]\nnotify = \"nowhere\"\n",
            "on_outcome[0].notify: no channel [notify.nowhere] (defined: [])",
        ),
        (
            "[notify.ops]\ntype = \"slack\"\nurl = \"http://127.0.0.1:1/x\"\n[[on_outcome]]\nwhen = [\"failed\"]\nnotify = \"ops\"\nlimit = \"often\"\n",
            "on_outcome[0].limit:",
        ),
        (
            "[notify.ops]\ntype = \"slack\"\nurl = \"http://127.0.0.1:1/x\"\n[[on_outcome]]\nwhen = [\"sometimes\"]\nnotify = \"ops\"\n",
            "unknown variant `sometimes`",
        ),
    ];
    for (config, expected) in cases {
        crate::support::assert_check_refuses(config, expected);
    }
}

#[test]
fn check_points_at_a_broken_template() {
    let salve = Salve::builder()
        .rule(
            "tell",
            r#"const MATCH = `alertname="DiskFull"`;

fn plan(event) {
    [slack("ops", "Disk full on {{ labels.host }"), email("oncall", "{{ labels.host | shout }}")]
}
"#,
        )
        .write();
    let path = salve.config_path().display().to_string();
    let rules = salve.rules_dir().display().to_string();
    let out = salve.cli(&["check", "--config", &path, "--rules", &rules]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("tell.rhai:4:19: slack: template error: syntax error: unexpected `}`"),
        "{stderr}"
    );
    eprintln!("[notify] salve check on a broken template:\n{stderr}");

    let salve = Salve::builder()
        .config("[notify.ops]\ntype = \"slack\"\nurl = \"http://127.0.0.1:1/x\"\ntext = \"{% if status %}open\"\n")
        .write();
    let path = salve.config_path().display().to_string();
    let rules = salve.rules_dir().display().to_string();
    let out = salve.cli(&["check", "--config", &path, "--rules", &rules]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("notify.ops.text: template error: syntax error: unexpected end of input"),
        "{stderr}"
    );
}
