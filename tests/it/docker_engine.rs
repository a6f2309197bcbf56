//! The Docker engine as salve reaches it: behind mutual TLS (followed and acted on, a
//! stranger refused), and going away and coming back (readiness follows it). A socat
//! proxy in front of the engine's socket stands in for the engine, so the engine the other
//! tests use is never touched.

use crate::docker_support::{
    container_target, executed, inspect, outcome_of, shipped_rule, wait_following, wait_health,
    Scope, CRASHES_ONCE, DOCKER_PATIENCE, FILE_HEALTHCHECK, HEALTHY_AFTER_RESTART,
};
use crate::support::{of_kind, wait_until_within, Salve};
use serde_json::Value;
use std::time::Instant;

/// The trail's decisions a line each, for a failure message a person can read.
fn decision_lines(records: &[Value]) -> String {
    of_kind(records, "decision")
        .iter()
        .map(|d| {
            format!(
                "{} {} {} {} {} {} (episode {})\n",
                d["at"],
                d["rule"],
                d["action"],
                d["target"],
                d["decision"],
                d["reason"],
                d["starts_at"]
            )
        })
        .collect()
}

/// A socat proxy in front of the engine's socket: killing it is, for salve, the engine
/// going away (a `dockerd` restart) without touching the engine other tests use; with
/// TLS it is the engine on `tcp://HOST:2376` as `dockerd --tlsverify` serves it.
struct EngineProxy {
    /// The program and its arguments.
    command: Vec<String>,
    /// Where it listens: a socket file, or a loopback port.
    at: Listening,
    child: Option<std::process::Child>,
}

enum Listening {
    Socket(std::path::PathBuf),
    Port(u16),
}

impl EngineProxy {
    fn start(socket: &std::path::Path) -> EngineProxy {
        EngineProxy::listening(
            vec![
                "socat".into(),
                format!("UNIX-LISTEN:{},fork", socket.display()),
                "UNIX-CONNECT:/var/run/docker.sock".into(),
            ],
            Listening::Socket(socket.to_path_buf()),
        )
    }

    /// Mutual TLS with the certificates of [`crate::certs::make_certificates`]: only a
    /// client whose certificate the CA signed gets through. Python's `ssl` rather than
    /// socat, whose OpenSSL server refuses the session resumption that clients (salve's
    /// rustls, as Docker's own Go client) attempt under client authentication.
    fn tls(port: u16, certs: &std::path::Path) -> EngineProxy {
        let script = certs.join("tls_engine_proxy.py");
        std::fs::write(&script, TLS_ENGINE_PROXY).expect("write the proxy");
        EngineProxy::listening(
            vec![
                "/usr/bin/python3".into(),
                script.display().to_string(),
                port.to_string(),
                certs.display().to_string(),
                "/var/run/docker.sock".into(),
            ],
            Listening::Port(port),
        )
    }

    fn listening(command: Vec<String>, at: Listening) -> EngineProxy {
        let mut proxy = EngineProxy {
            command,
            at,
            child: None,
        };
        proxy.up();
        proxy
    }

    fn up(&mut self) {
        if let Listening::Socket(socket) = &self.at {
            let _ = std::fs::remove_file(socket);
        }
        use std::os::unix::process::CommandExt;
        // Its own process group: socat forks a child per connection, and the event
        // stream's connection must die with it.
        let child = std::process::Command::new(&self.command[0])
            .process_group(0)
            .args(&self.command[1..])
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; the Docker proxy tests need Debian's socat and python3",
                    self.command[0]
                )
            });
        self.child = Some(child);
        wait_until_within(DOCKER_PATIENCE, "the proxy to listen", || match &self.at {
            Listening::Socket(socket) => socket.exists().then_some(()),
            Listening::Port(port) => {
                let listening = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
                let local = format!("0100007F:{port:04X} 00000000:0000 0A");
                listening.contains(&local).then_some(())
            }
        });
    }

    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
        if let Listening::Socket(socket) = &self.at {
            let _ = std::fs::remove_file(socket);
        }
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.down();
    }
}

/// A TLS terminator in front of the engine's socket: `PORT CERTS_DIR SOCKET`.
const TLS_ENGINE_PROXY: &str = r#"
import asyncio, ssl, sys

port, certs, socket_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(f"{certs}/server.pem", f"{certs}/server.key")
context.load_verify_locations(f"{certs}/ca.pem")
context.verify_mode = ssl.CERT_REQUIRED


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except Exception:
        pass
    finally:
        writer.close()


async def handle(client_reader, client_writer):
    try:
        engine_reader, engine_writer = await asyncio.open_unix_connection(socket_path)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, engine_writer), pipe(engine_reader, client_writer))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=context)
    async with server:
        await server.serve_forever()


asyncio.run(main())
"#;

const RESTART_UNHEALTHY: &str = "const MATCH = `alertname=\"ContainerUnhealthy\"`;\nfn plan(event) { if event.status != \"firing\" { return []; } [restart(docker_container(event.labels.container))] }";

#[test]
fn an_engine_behind_mutual_tls_is_followed_and_acted_on_and_a_stranger_is_refused() {
    let scope = Scope::new();
    let certs = tempfile::tempdir().expect("tempdir");
    crate::certs::make_certificates(certs.path());
    let port = crate::support::free_port();
    let _proxy = EngineProxy::tls(port, certs.path());
    let over_tls = |cert_path: &std::path::Path| {
        format!(
            "{}host = \"tcp://127.0.0.1:{port}\"\ncert_path = \"{}\"\n",
            scope.config(),
            cert_path.display()
        )
    };
    let salve = Salve::builder()
        .config(&over_tls(certs.path()))
        .rule("restart", RESTART_UNHEALTHY)
        .start();
    wait_following(&salve, 1);
    let ready = salve.get("/-/ready");
    assert_eq!(ready.status, 200, "{:?}\n{}", ready.body, salve.logs());

    // Events and actions both go over TLS: the container's health events reach salve,
    // the restart and its verification reach the engine.
    let name = scope.run("remote", &FILE_HEALTHCHECK, &HEALTHY_AFTER_RESTART);
    let target = container_target(&name);
    let records = salve.wait_for_audit("the restart over TLS and its outcome", |records| {
        executed(records, "restart", &target)
            .first()
            .and_then(|d| outcome_of(records, d))
            .is_some()
    });
    let decision = executed(&records, "restart", &target)[0];
    let outcome = outcome_of(&records, decision).cloned().unwrap_or_default();
    assert_eq!(outcome["outcome"], "ok", "{outcome:#}");
    assert_eq!(outcome["verified"], "healthy", "{outcome:#}");

    // Certificates of another CA: the engine's proxy refuses the client (and the
    // client the proxy); salve says it cannot reach the engine and is not ready.
    let strangers = tempfile::tempdir().expect("tempdir");
    crate::certs::make_certificates(strangers.path());
    let mut stranger = Salve::builder()
        .config(&over_tls(strangers.path()))
        .rule("restart", RESTART_UNHEALTHY)
        .write();
    stranger.start_unready();
    let reply = stranger.get("/-/ready");
    assert_eq!(reply.status, 503, "{:?}", reply.body);
    // The log says why, down to the certificate.
    wait_until_within(
        DOCKER_PATIENCE,
        "the stranger to say why it cannot reach the engine",
        || {
            let logs = stranger.logs();
            (logs.contains("Docker engine unreachable")
                && logs.contains("invalid peer certificate"))
            .then_some(())
        },
    );
    assert!(!stranger.logs().contains("following Docker events"));
}

#[test]
fn readiness_follows_the_engine_going_away_and_coming_back() {
    let scope = Scope::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("docker.sock");
    let mut proxy = EngineProxy::start(&socket);
    let config = format!("{}host = \"unix://{}\"\n", scope.config(), socket.display());
    let salve = Salve::builder()
        .config(&config)
        .rule("restart", RESTART_UNHEALTHY)
        .rule("container-exited", &shipped_rule("container-exited"))
        .start();
    wait_following(&salve, 1);
    assert_eq!(salve.get("/-/ready").status, 200);

    proxy.down();
    let body = wait_until_within(DOCKER_PATIENCE, "readiness to drop", || {
        let reply = salve.get("/-/ready");
        (reply.status == 503).then_some(reply.body)
    });
    assert_eq!(
        body,
        Value::String("salve is not ready: the Docker event stream is down.\n".into())
    );

    // What goes bad while the engine is out of reach is found on reconnect: health by
    // the scan, a crash from the engine's own events of the gap.
    let name = scope.run("away", &FILE_HEALTHCHECK, &HEALTHY_AFTER_RESTART);
    let crashed = scope.run("crashed", &[], &CRASHES_ONCE);
    wait_health(&name, "unhealthy");
    wait_until_within(
        DOCKER_PATIENCE,
        "the crash while salve cannot see the engine",
        || (inspect(&crashed, "{{.State.Status}}") == "exited").then_some(()),
    );
    let went_down = Instant::now();
    proxy.up();
    wait_until_within(DOCKER_PATIENCE, "readiness to return", || {
        (salve.get("/-/ready").status == 200).then_some(())
    });
    eprintln!(
        "ready again {} ms after the engine came back",
        went_down.elapsed().as_millis()
    );
    let target = container_target(&name);
    let crashed_target = container_target(&crashed);
    salve.wait_for_audit(
        "the restart of the container that went bad meanwhile and the start of the crashed one",
        |records| {
            !executed(records, "restart", &target).is_empty()
                && !executed(records, "start", &crashed_target).is_empty()
        },
    );
    wait_until_within(
        DOCKER_PATIENCE,
        "the crashed container to run again",
        || (inspect(&crashed, "{{.State.Status}}") == "running").then_some(()),
    );
    wait_health(&name, "healthy");
    // The scan and the replayed events of the gap overlap: each problem is acted on once,
    // checked once an event sent after both has been decided.
    scope.sync_events(&salve, "sync");
    let records = salve.audit_json();
    let decisions = decision_lines(&records);
    assert_eq!(
        executed(&records, "restart", &target).len(),
        1,
        "{decisions}"
    );
    assert_eq!(
        executed(&records, "start", &crashed_target).len(),
        1,
        "{decisions}"
    );
}
