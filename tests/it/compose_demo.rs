//! `examples/compose/`, as a new user runs it with Debian's `docker-compose`: the demo
//! service breaks, Prometheus alerts, Alertmanager tells salve, salve restarts the
//! service, and the alert resolves.

use crate::docker_support::{docker, inspect};
use crate::support::{free_port, repo_dir};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn demo_dir() -> PathBuf {
    repo_dir().join("examples/compose")
}

/// `docker-compose -p PROJECT ARGS` in the demo's folder, with `env`.
fn compose(project: &str, env: &[(&str, String)], args: &[&str]) -> Output {
    Command::new("docker-compose")
        .args(["-p", project])
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(demo_dir())
        .output()
        .unwrap_or_else(|e| panic!("docker-compose: {e} (apt-get install docker-compose)"))
}

/// Takes the demo down, volumes and all, however the test ends.
struct Demo {
    project: String,
    env: Vec<(&'static str, String)>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        compose(&self.project, &self.env, &["down", "-v", "-t", "1"]);
    }
}

fn audit(base: &str) -> Vec<Value> {
    reqwest::blocking::get(format!("{base}/api/v1/audit"))
        .ok()
        .and_then(|r| r.json().ok())
        .unwrap_or_default()
}

#[test]
fn the_compose_demo_heals_the_service_it_breaks_and_the_alert_resolves() {
    let root = repo_dir();
    // The salve image of the image tests, and the demo's own, all built here.
    crate::image::image();
    let images = Command::new(demo_dir().join("images.sh"))
        .env("BUILD_SALVE", "0")
        .current_dir(&root)
        .output()
        .expect("run images.sh");
    assert!(
        images.status.success(),
        "images.sh failed:\n{}",
        String::from_utf8_lossy(&images.stderr)
    );
    let project = format!("salveitdemo{}", std::process::id());
    let demo_name = format!("salve-it-demo-{}", std::process::id());
    let salve_port = free_port();
    let socket_group = std::fs::metadata("/var/run/docker.sock")
        .map(|m| std::os::unix::fs::MetadataExt::gid(&m).to_string())
        .expect("the Docker socket");
    let env = vec![
        ("SALVE_IMAGE", crate::image::TAG.to_string()),
        ("DEMO_NAME", demo_name.clone()),
        ("SALVE_PORT", salve_port.to_string()),
        ("PROMETHEUS_PORT", free_port().to_string()),
        ("ALERTMANAGER_PORT", free_port().to_string()),
        ("DOCKER_GID", socket_group),
    ];
    let demo = Demo {
        project: project.clone(),
        env: env.clone(),
    };
    let up = compose(&project, &env, &["up", "-d"]);
    assert!(
        up.status.success(),
        "docker-compose up failed:\n{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let base = format!("http://127.0.0.1:{salve_port}");
    let logs = |what: &str| -> String {
        let out = compose(
            &demo.project,
            &demo.env,
            &["logs", "--no-color", "--tail", "40"],
        );
        format!("{what}\n{}", String::from_utf8_lossy(&out.stdout))
    };
    let wait = |what: &str, done: &dyn Fn(&[Value]) -> bool| -> Vec<Value> {
        let started = Instant::now();
        loop {
            let records = audit(&base);
            if done(&records) {
                return records;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{}",
                logs(&format!("gave up waiting for {what}; audit: {records:#?}"))
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    // salve is up and Prometheus scrapes a healthy service: nothing is decided.
    let started_before = inspect(&demo_name, "{{.State.StartedAt}}");
    let ready = Instant::now();
    while reqwest::blocking::get(format!("{base}/-/ready"))
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(
            ready.elapsed() < Duration::from_secs(60),
            "{}",
            logs("salve never became ready")
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let broke = docker(&["exec", &demo_name, "touch", "/www/broken"]);
    assert!(
        broke.status.success(),
        "{}",
        String::from_utf8_lossy(&broke.stderr)
    );
    let records = wait("the restart", &|r| {
        r.iter()
            .any(|o| o["kind"] == "outcome" && o["action"] == "restart")
    });
    let outcome = records
        .iter()
        .find(|o| o["kind"] == "outcome" && o["action"] == "restart")
        .expect("an outcome");
    assert_eq!(outcome["outcome"], "ok", "{outcome:#}");
    assert_eq!(outcome["target"], format!("docker:container/{demo_name}"));
    assert_ne!(inspect(&demo_name, "{{.State.StartedAt}}"), started_before);
    wait("the alert to resolve", &|r| {
        r.iter().any(|e| {
            e["kind"] == "received"
                && e["event"]["labels"]["alertname"] == "DemoUnhealthy"
                && e["event"]["status"] == "resolved"
        })
    });
    let restarts = audit(&base)
        .iter()
        .filter(|r| r["kind"] == "decision" && r["decision"] == "execute")
        .count();
    assert_eq!(restarts, 1, "one restart healed it");
}
