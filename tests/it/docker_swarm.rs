//! Swarm services through the executor's library API, on the machine's real Docker
//! engine made a Swarm manager for the test: scaled, restarted and rolled back.

use crate::docker_support::{docker, docker_ok, test_image, Scope, DOCKER_PATIENCE};
use crate::support::wait_until_within;
use salve::execute::{connect_docker, DockerExecutor, Executor};
use salve::model::{Action, Intent, Target};
use salve::model::{Outcome, OutcomeStatus};
use std::time::{Duration, Instant};

/// Serializes the Swarm test across test processes on this machine (another `cargo
/// test` may run at the same time): a lock file holding the owner's pid; a lock whose
/// owner is gone is taken over.
struct SwarmLock {
    path: std::path::PathBuf,
}

impl SwarmLock {
    fn take() -> SwarmLock {
        let path = std::env::temp_dir().join("salve-it-swarm.lock");
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    use std::io::Write;
                    let _ = write!(file, "{}", std::process::id());
                    return SwarmLock { path };
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path).unwrap_or_default();
                    let alive = owner
                        .trim()
                        .parse::<u32>()
                        .is_ok_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
                    if !alive && !owner.is_empty() {
                        let _ = std::fs::remove_file(&path);
                        continue;
                    }
                }
                Err(e) => panic!("{}: {e}", path.display()),
            }
            assert!(
                Instant::now() < deadline,
                "another test process holds {} too long",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for SwarmLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// This node as a Swarm manager for the test; leaves the swarm at the end if the test
/// made it, after removing the test's services and waiting for their containers.
struct Swarm {
    initialized: bool,
    services: Vec<String>,
    _lock: SwarmLock,
}

impl Swarm {
    fn join() -> Swarm {
        let lock = SwarmLock::take();
        let state = docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        let mut swarm = Swarm {
            initialized: false,
            services: Vec::new(),
            _lock: lock,
        };
        if state == "inactive" {
            let out = docker(&[
                "swarm",
                "init",
                "--advertise-addr",
                "127.0.0.1",
                "--listen-addr",
                "127.0.0.1:2377",
            ]);
            assert!(
                out.status.success(),
                "this Docker engine refused `docker swarm init`: {}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
            swarm.initialized = true;
        } else {
            assert_eq!(state, "active", "Swarm is {state}");
            let manager = docker_ok(&["info", "--format", "{{.Swarm.ControlAvailable}}"]);
            assert_eq!(manager, "true", "this node is in a swarm but not a manager");
        }
        swarm
    }

    /// `docker service create` on the host network (Swarm refuses `none`; nothing is
    /// sent anywhere), one replica, a 1 s stop grace period.
    fn create_service(&mut self, name: &str, run_id: &str) {
        self.services.push(name.to_string());
        let label = format!("salve.test={run_id}");
        docker_ok(&[
            "service",
            "create",
            "-d",
            "--name",
            name,
            "--label",
            &label,
            "--no-resolve-image",
            "--network",
            "host",
            "--stop-grace-period",
            "1s",
            "--replicas",
            "1",
            test_image(),
            "sleep",
            "3600",
        ]);
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for name in &self.services {
            let _ = docker(&["service", "rm", name]);
        }
        let deadline = Instant::now() + DOCKER_PATIENCE;
        for name in &self.services {
            let filter = format!("label=com.docker.swarm.service.name={name}");
            while Instant::now() < deadline {
                let out = docker(&["ps", "-aq", "--filter", &filter]);
                if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            // Whatever the engine has not cleaned up by now goes the hard way.
            let out = docker(&["ps", "-aq", "--filter", &filter]);
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = docker(&["rm", "-f", id]);
            }
        }
        if self.initialized {
            let _ = docker(&["swarm", "leave", "--force"]);
        }
    }
}

fn replicas(service: &str) -> String {
    docker_ok(&[
        "service",
        "inspect",
        service,
        "--format",
        "{{.Spec.Mode.Replicated.Replicas}}",
    ])
}

fn running_tasks(service: &str) -> usize {
    let out = docker_ok(&[
        "service",
        "ps",
        service,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.CurrentState}}",
    ]);
    out.lines().filter(|l| l.starts_with("Running")).count()
}

fn env_of(service: &str) -> String {
    docker_ok(&[
        "service",
        "inspect",
        service,
        "--format",
        "{{json .Spec.TaskTemplate.ContainerSpec.Env}}",
    ])
}

#[test]
fn a_swarm_service_is_scaled_restarted_and_rolled_back_through_the_executor() {
    let scope = Scope::new();
    let mut swarm = Swarm::join();
    let name = scope.name("svc");
    swarm.create_service(&name, &scope.run_id);
    wait_until_within(DOCKER_PATIENCE, "the service's first task running", || {
        (running_tasks(&name) == 1).then_some(())
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let settings = salve::execute::DockerSettings {
        host: None,
        cert_path: None,
        events: None,
        label: salve::execute::OptIn::Label {
            key: "salve.test".into(),
            value: Some(scope.run_id.clone()),
        },
        verify_timeout: Duration::from_secs(30),
    };
    let executor = runtime.block_on(async {
        let docker = connect_docker(&settings)
            .await
            .unwrap_or_else(|e| panic!("connect to Docker: {e}"));
        DockerExecutor::new(docker, &settings)
    });
    let target = Target::SwarmService { name: name.clone() };
    let act = |intent: Intent| -> Outcome {
        let started = Instant::now();
        let outcome = runtime.block_on(executor.execute(&intent, &Default::default()));
        eprintln!(
            "[docker] swarm {} {:?}: {:?} in {} ms",
            intent.action,
            intent.params,
            outcome.outcome,
            started.elapsed().as_millis()
        );
        assert_eq!(outcome.outcome, OutcomeStatus::Ok, "{outcome:#?}");
        outcome
    };

    let outcome = act(Intent::new(Action::Scale, target.clone()).with("replicas", 2));
    assert_eq!(outcome.detail["replicas_before"], 1);
    assert_eq!(outcome.detail["replicas"], 2);
    assert_eq!(replicas(&name), "2");
    wait_until_within(DOCKER_PATIENCE, "two tasks running", || {
        (running_tasks(&name) == 2).then_some(())
    });

    let outcome = act(Intent::new(Action::Scale, target.clone()).with("replicas", "+1"));
    assert_eq!(outcome.detail["replicas"], 3);
    assert_eq!(replicas(&name), "3");
    wait_until_within(DOCKER_PATIENCE, "three tasks running", || {
        (running_tasks(&name) == 3).then_some(())
    });

    let force = "{{.Spec.TaskTemplate.ForceUpdate}}";
    let before = docker_ok(&["service", "inspect", &name, "--format", force]);
    act(Intent::new(Action::Restart, target.clone()));
    let after = docker_ok(&["service", "inspect", &name, "--format", force]);
    assert_ne!(before, after, "a restart is a forced update");

    docker_ok(&[
        "service",
        "update",
        "-d",
        "--no-resolve-image",
        "--env-add",
        "SALVE_IT=1",
        &name,
    ]);
    assert_eq!(env_of(&name), r#"["SALVE_IT=1"]"#);
    act(Intent::new(Action::Rollback, target.clone()));
    assert_eq!(
        env_of(&name),
        "null",
        "the rollback restored the spec before the update"
    );
    assert_eq!(replicas(&name), "3");

    let missing = runtime.block_on(
        executor.execute(
            &Intent::new(
                Action::Scale,
                Target::SwarmService {
                    name: scope.name("no-such-svc"),
                },
            )
            .with("replicas", 1),
            &Default::default(),
        ),
    );
    assert_eq!(missing.outcome, OutcomeStatus::Failed);
    assert_eq!(
        missing.error.as_deref(),
        Some(format!("swarm service {} not found", scope.name("no-such-svc")).as_str())
    );
    drop(swarm);
    assert_eq!(
        docker_ok(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=com.docker.swarm.service.name={name}")
        ]),
        ""
    );
}
