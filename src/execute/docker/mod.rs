//! Docker: containers, Compose services and Swarm services, through the engine's API.

mod settings;

pub use settings::{DockerConfig, DockerSettings, OptIn};

use super::resolve_replicas;
use super::{ActionContext, ExecuteError, Executor};
use crate::model::{error_chain, Outcome, SkipReason};
use crate::model::{Action, Backend, Intent, Target};
use async_trait::async_trait;
use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, HealthStatusEnum, Service, ServiceSpec,
};
use bollard::query_parameters::{
    InspectServiceOptions, KillContainerOptions, ListContainersOptions, RestartContainerOptions,
    StopContainerOptions, UpdateServiceOptions,
};
use bollard::Docker;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Connects to the engine and agrees on an API version both sides speak: engines
/// older than bollard's default are common.
pub async fn connect(settings: &DockerSettings) -> Result<Docker, ExecuteError> {
    let docker = match settings.host.as_deref() {
        None => Docker::connect_with_local_defaults(),
        Some(h) if h.starts_with("unix://") || h.starts_with('/') => {
            Docker::connect_with_unix(h, 120, bollard::API_DEFAULT_VERSION)
        }
        Some(h)
            if h.starts_with("tcp://") || h.starts_with("http://") || h.starts_with("https://") =>
        {
            match &settings.cert_path {
                Some(dir) => {
                    let address = h.replacen("tcp://", "https://", 1);
                    Docker::connect_with_ssl(
                        &address,
                        &dir.join("key.pem"),
                        &dir.join("cert.pem"),
                        &dir.join("ca.pem"),
                        120,
                        bollard::API_DEFAULT_VERSION,
                    )
                }
                None if h.starts_with("https://") => {
                    return Err(ExecuteError::DockerHttpsNeedsCerts {
                        host: h.to_string(),
                    })
                }
                None => Docker::connect_with_http(
                    &h.replacen("tcp://", "http://", 1),
                    120,
                    bollard::API_DEFAULT_VERSION,
                ),
            }
        }
        Some(h) => {
            return Err(ExecuteError::DockerHostScheme {
                host: h.to_string(),
            })
        }
    }
    .map_err(ExecuteError::DockerConnect)?;
    docker
        .negotiate_version()
        .await
        .map_err(ExecuteError::DockerUnreachable)
}

pub struct DockerExecutor {
    docker: Docker,
    verify_timeout: Duration,
    opt_in: OptIn,
    poll_every: Duration,
}

impl DockerExecutor {
    pub fn new(docker: Docker, settings: &DockerSettings) -> DockerExecutor {
        DockerExecutor {
            docker,
            verify_timeout: settings.verify_timeout,
            opt_in: settings.label.clone(),
            poll_every: Duration::from_millis(200),
        }
    }
}

fn skipped(why: impl Into<String>, detail: Value) -> Outcome {
    Outcome::skipped(why, None, detail)
}

/// Whatever a rule or an alert says, salve leaves alone what has not opted in.
fn not_opted_in(why: String, detail: Value) -> Outcome {
    Outcome::skipped(
        format!("{why} (docker.label): salve does not act on it"),
        Some(SkipReason::NotOptedIn),
        detail,
    )
}

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn param_i32(intent: &Intent, key: &str) -> Option<i32> {
    intent
        .params
        .get(key)
        .and_then(Value::as_i64)
        .and_then(|n| i32::try_from(n).ok())
}

fn state_name(c: &ContainerInspectResponse) -> String {
    c.state
        .as_ref()
        .and_then(|s| s.status)
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

fn health_of(c: &ContainerInspectResponse) -> Option<HealthStatusEnum> {
    c.state
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.status)
}

fn has_healthcheck(c: &ContainerInspectResponse) -> bool {
    matches!(
        health_of(c),
        Some(HealthStatusEnum::STARTING | HealthStatusEnum::HEALTHY | HealthStatusEnum::UNHEALTHY)
    )
}

#[async_trait]
impl Executor for DockerExecutor {
    fn backend(&self) -> Backend {
        Backend::Docker
    }

    async fn execute(&self, intent: &Intent, _context: &ActionContext) -> Outcome {
        match &intent.target {
            Target::DockerContainer { name } => self.on_container(name, intent).await,
            Target::ComposeService { project, service } => {
                self.on_compose(project, service, intent).await
            }
            Target::SwarmService { name } => self.on_swarm(name, intent).await,
            other => Outcome::failed(
                format!("the Docker executor cannot act on {other}"),
                Value::Null,
            ),
        }
    }
}

impl DockerExecutor {
    async fn inspect(&self, name: &str) -> Result<ContainerInspectResponse, Outcome> {
        self.docker
            .inspect_container(name, None)
            .await
            .map_err(|e| {
                if is_not_found(&e) {
                    Outcome::failed(
                        format!("container {name} not found (removed?)"),
                        json!({ "container": name }),
                    )
                } else {
                    Outcome::failed(
                        format!("cannot inspect container {name}: {}", error_chain(&e)),
                        json!({ "container": name }),
                    )
                }
            })
    }

    async fn on_container(&self, name: &str, intent: &Intent) -> Outcome {
        let before = match self.inspect(name).await {
            Ok(c) => c,
            Err(outcome) => return outcome,
        };
        let state = before.state.as_ref().and_then(|s| s.status);
        let detail = json!({ "container": name, "state_before": state_name(&before) });
        let labels = before.config.as_ref().and_then(|c| c.labels.as_ref());
        if !self.opt_in.admits(labels) {
            let why = format!("container {name} does not carry the label {}", self.opt_in);
            return not_opted_in(why, detail);
        }
        if let Some(skip) = leave_alone(name, intent.action, state, &detail) {
            return skip;
        }
        let started = Instant::now();
        if let Err(outcome) = self.call_on_container(name, intent, state, &detail).await {
            return outcome;
        }
        let mut detail = detail;
        detail["api_call_ms"] = json!(started.elapsed().as_millis() as u64);
        match intent.action {
            Action::Restart | Action::Start => self.verify_up(name, started, detail).await,
            _ => Outcome::ok(detail),
        }
    }

    /// The engine's call for the action; the outcome when it is not made or fails.
    async fn call_on_container(
        &self,
        name: &str,
        intent: &Intent,
        state: Option<ContainerStateStatusEnum>,
        detail: &Value,
    ) -> Result<(), Outcome> {
        let result = match intent.action {
            Action::Restart => {
                let options = RestartContainerOptions {
                    t: param_i32(intent, "timeout"),
                    signal: None,
                };
                self.docker.restart_container(name, Some(options)).await
            }
            Action::Start => {
                if state == Some(ContainerStateStatusEnum::RUNNING) {
                    let why = format!("container {name} is already running");
                    return Err(skipped(why, detail.clone()));
                }
                self.docker.start_container(name, None).await
            }
            Action::Stop => {
                let options = StopContainerOptions {
                    t: param_i32(intent, "timeout"),
                    signal: None,
                };
                self.docker.stop_container(name, Some(options)).await
            }
            Action::Kill => {
                let signal = intent
                    .params
                    .get("signal")
                    .and_then(Value::as_str)
                    .unwrap_or("SIGKILL")
                    .to_string();
                self.docker
                    .kill_container(name, Some(KillContainerOptions { signal }))
                    .await
            }
            other => {
                return Err(Outcome::failed(
                    format!("{other} is not an action on a container (restart, start, stop, kill)"),
                    detail.clone(),
                ))
            }
        };
        result.map_err(|e| {
            Outcome::failed(
                format!("{} {name}: {}", intent.action, error_chain(&e)),
                detail.clone(),
            )
        })
    }

    /// Waits (bounded) until the container runs again and, if it has a healthcheck, is
    /// healthy. Anything else is a failure, and counts as one for the breaker.
    async fn verify_up(&self, name: &str, started: Instant, mut detail: Value) -> Outcome {
        let deadline = started + self.verify_timeout;
        loop {
            let c = match self.inspect(name).await {
                Ok(c) => c,
                Err(outcome) => return outcome,
            };
            let running = c.state.as_ref().and_then(|s| s.running).unwrap_or(false);
            let verdict = match (running, health_of(&c)) {
                (true, Some(HealthStatusEnum::HEALTHY)) => Some(("healthy", true)),
                (true, Some(HealthStatusEnum::UNHEALTHY)) => Some(("unhealthy", false)),
                (true, _) if !has_healthcheck(&c) => Some(("running", true)),
                _ => None,
            };
            if let Some((state, ok)) = verdict {
                detail["verified_after_ms"] = json!(started.elapsed().as_millis() as u64);
                let mut outcome = if ok {
                    Outcome::ok(detail)
                } else {
                    Outcome::failed(
                        format!("container {name} is running but unhealthy after the restart"),
                        detail,
                    )
                };
                outcome.verified = Some(state.to_string());
                return outcome;
            }
            if Instant::now() >= deadline {
                detail["state_after"] = json!(state_name(&c));
                let mut outcome = Outcome::failed(
                    format!(
                        "container {name} was not {} within {}",
                        if has_healthcheck(&c) {
                            "healthy"
                        } else {
                            "running"
                        },
                        crate::model::rate::format_duration(self.verify_timeout)
                    ),
                    detail,
                );
                outcome.verified = Some("timeout".to_string());
                return outcome;
            }
            tokio::time::sleep(self.poll_every).await;
        }
    }

    async fn on_compose(&self, project: &str, service: &str, intent: &Intent) -> Outcome {
        let names = match self.compose_containers(project, service).await {
            Ok(names) => names,
            Err(outcome) => return outcome,
        };
        let all_at_once = intent
            .params
            .get("all_at_once")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let outcomes: Vec<Outcome> = if all_at_once {
            futures_util::future::join_all(names.iter().map(|n| self.on_container(n, intent))).await
        } else {
            let mut out = Vec::with_capacity(names.len());
            for n in &names {
                let o = self.on_container(n, intent).await;
                let failed = o.is_failure();
                out.push(o);
                // One at a time means: stop at the first container that does not come back.
                if failed {
                    break;
                }
            }
            out
        };
        self.compose_outcome(project, service, names, &outcomes)
    }

    /// The names of the service's containers, sorted; none is a failure.
    async fn compose_containers(
        &self,
        project: &str,
        service: &str,
    ) -> Result<Vec<String>, Outcome> {
        let filters: HashMap<String, Vec<String>> = HashMap::from([(
            "label".to_string(),
            vec![
                format!("com.docker.compose.project={project}"),
                format!("com.docker.compose.service={service}"),
            ],
        )]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| {
                Outcome::failed(
                    format!("cannot list containers: {}", error_chain(&e)),
                    Value::Null,
                )
            })?;
        let mut names: Vec<String> = containers
            .iter()
            .filter_map(|c| {
                c.names
                    .as_ref()?
                    .first()
                    .map(|n| n.trim_start_matches('/').to_string())
            })
            .collect();
        names.sort();
        if names.is_empty() {
            return Err(Outcome::failed(
                format!("no container belongs to Compose service {project}/{service}"),
                json!({ "project": project, "service": service }),
            ));
        }
        Ok(names)
    }

    /// The service's outcome from its containers': skipped when none opted in, failed
    /// with every failure, verified when all were verified alike.
    fn compose_outcome(
        &self,
        project: &str,
        service: &str,
        names: Vec<String>,
        outcomes: &[Outcome],
    ) -> Outcome {
        let failures: Vec<String> = outcomes
            .iter()
            .filter(|o| o.is_failure())
            .filter_map(|o| o.error.clone())
            .collect();
        let all_ran = outcomes.len() == names.len();
        let detail = json!({
            "project": project,
            "service": service,
            "containers": names,
            "results": outcomes.iter().map(|o| json!({ "outcome": o.outcome, "verified": o.verified, "error": o.error, "detail": o.detail })).collect::<Vec<_>>(),
        });
        let not_opted = outcomes
            .iter()
            .filter(|o| o.reason == Some(SkipReason::NotOptedIn))
            .count();
        let mut outcome = if not_opted > 0 && not_opted == outcomes.len() {
            let why = format!(
                "no container of Compose service {project}/{service} carries the label {}",
                self.opt_in
            );
            not_opted_in(why, detail)
        } else if failures.is_empty() {
            Outcome::ok(detail)
        } else {
            Outcome::failed(failures.join("; "), detail)
        };
        let verified: Vec<&str> = outcomes
            .iter()
            .filter_map(|o| o.verified.as_deref())
            .collect();
        if !verified.is_empty() && verified.iter().all(|v| *v == verified[0]) && all_ran {
            outcome.verified = Some(verified[0].to_string());
        }
        outcome
    }

    async fn on_swarm(&self, name: &str, intent: &Intent) -> Outcome {
        let service = match self.inspect_swarm(name).await {
            Ok(s) => s,
            Err(outcome) => return outcome,
        };
        let version = service.version.as_ref().and_then(|v| v.index).unwrap_or(0);
        let Some(mut spec) = service.spec else {
            return Outcome::failed(format!("swarm service {name} has no spec"), Value::Null);
        };
        if !self.opt_in.admits(spec.labels.as_ref()) {
            let why = format!(
                "swarm service {name} does not carry the label {}",
                self.opt_in
            );
            return not_opted_in(why, json!({ "service": name }));
        }
        let mut options = UpdateServiceOptions {
            version: i32::try_from(version).unwrap_or(i32::MAX),
            ..Default::default()
        };
        let mut detail = json!({ "service": name });
        if let Err(outcome) = swarm_change(name, intent, &mut spec, &mut options, &mut detail) {
            return outcome;
        }
        match self.docker.update_service(name, spec, options, None).await {
            Ok(response) => {
                if let Some(warnings) = response.warnings.filter(|w| !w.is_empty()) {
                    detail["warnings"] = json!(warnings);
                }
                Outcome::ok(detail)
            }
            Err(e) => Outcome::failed(
                format!(
                    "{} swarm service {name}: {}",
                    intent.action,
                    error_chain(&e)
                ),
                detail,
            ),
        }
    }

    async fn inspect_swarm(&self, name: &str) -> Result<Service, Outcome> {
        self.docker
            .inspect_service(name, None::<InspectServiceOptions>)
            .await
            .map_err(|e| {
                let error = if is_not_found(&e) {
                    format!("swarm service {name} not found")
                } else {
                    format!("cannot inspect swarm service {name}: {}", error_chain(&e))
                };
                Outcome::failed(error, json!({ "service": name }))
            })
    }
}

/// Do not fight the engine or a person: a container restarting under its own policy,
/// paused or being removed is reported, not acted on.
fn leave_alone(
    name: &str,
    action: Action,
    state: Option<ContainerStateStatusEnum>,
    detail: &Value,
) -> Option<Outcome> {
    if !matches!(
        action,
        Action::Restart | Action::Start | Action::Kill | Action::Stop
    ) {
        return None;
    }
    let why = match state {
        Some(ContainerStateStatusEnum::RESTARTING) if action != Action::Stop => {
            format!("container {name} is already restarting under its restart policy")
        }
        Some(ContainerStateStatusEnum::PAUSED) => {
            format!("container {name} is paused on purpose; unpause it first")
        }
        Some(ContainerStateStatusEnum::REMOVING | ContainerStateStatusEnum::DEAD) => {
            format!("container {name} is being removed")
        }
        _ => return None,
    };
    Some(skipped(why, detail.clone()))
}

/// The change the action makes to a swarm service's spec (or the update's options).
fn swarm_change(
    name: &str,
    intent: &Intent,
    spec: &mut ServiceSpec,
    options: &mut UpdateServiceOptions,
    detail: &mut Value,
) -> Result<(), Outcome> {
    match intent.action {
        Action::Scale => {
            let current = spec
                .mode
                .as_ref()
                .and_then(|m| m.replicated.as_ref())
                .and_then(|r| r.replicas);
            let Some(current) = current else {
                return Err(Outcome::failed(
                    format!("swarm service {name} is not replicated; cannot scale it"),
                    detail.clone(),
                ));
            };
            let wanted = resolve_replicas(intent, current)
                .map_err(|e| Outcome::failed(e.to_string(), detail.clone()))?;
            detail["replicas_before"] = json!(current);
            detail["replicas"] = json!(wanted);
            if let Some(r) = spec.mode.as_mut().and_then(|m| m.replicated.as_mut()) {
                r.replicas = Some(wanted);
            }
        }
        Action::Rollback => {
            // The engine itself refuses when there is no previous spec; its message is kept.
            options.rollback = Some("previous".to_string());
        }
        Action::Restart => {
            if let Some(task) = spec.task_template.as_mut() {
                task.force_update = Some(task.force_update.unwrap_or(0) + 1);
            }
        }
        other => {
            return Err(Outcome::failed(
                format!("{other} is not an action on a swarm service (scale, rollback, restart)"),
                detail.clone(),
            ))
        }
    }
    Ok(())
}
