//! Integration tests: the real `salve` binary, started as a child process on an
//! ephemeral loopback port with its own temp config, rules and data folders.
//! One binary, one module per area (ripgrep's `tests/tests.rs`).

#[path = "it/support.rs"]
mod support;

#[path = "it/api_identities.rs"]
mod api_identities;
#[path = "it/api_router.rs"]
mod api_router;
#[path = "it/api_support.rs"]
mod api_support;
#[path = "it/approvals.rs"]
mod approvals;
#[path = "it/approvals_links.rs"]
mod approvals_links;
#[path = "it/approvals_replicas.rs"]
mod approvals_replicas;
#[path = "it/approvals_slack.rs"]
mod approvals_slack;
#[path = "it/architecture.rs"]
mod architecture;
#[path = "it/architecture_sizes.rs"]
mod architecture_sizes;
#[path = "it/bench.rs"]
mod bench;
#[path = "it/browser_support.rs"]
mod browser_support;
#[path = "it/certs.rs"]
mod certs;
#[path = "it/cli.rs"]
mod cli;
#[path = "it/cli_check.rs"]
mod cli_check;
#[path = "it/cli_install.rs"]
mod cli_install;
#[path = "it/cli_messages.rs"]
mod cli_messages;
#[path = "it/compose_demo.rs"]
mod compose_demo;
#[path = "it/console.rs"]
mod console;
#[path = "it/console_browser.rs"]
mod console_browser;
#[path = "it/disk_support.rs"]
mod disk_support;
#[path = "it/docker_consent.rs"]
mod docker_consent;
#[path = "it/docker_crashes.rs"]
mod docker_crashes;
#[path = "it/docker_engine.rs"]
mod docker_engine;
#[path = "it/docker_events.rs"]
mod docker_events;
#[path = "it/docker_health.rs"]
mod docker_health;
#[path = "it/docker_support.rs"]
mod docker_support;
#[path = "it/docker_swarm.rs"]
mod docker_swarm;
#[path = "it/docs.rs"]
mod docs;
#[path = "it/durability.rs"]
mod durability;
#[path = "it/e2e.rs"]
mod e2e;
#[path = "it/exec.rs"]
mod exec;
#[path = "it/fuzz_smoke.rs"]
mod fuzz_smoke;
#[path = "it/held_back.rs"]
mod held_back;
#[path = "it/http_input.rs"]
mod http_input;
#[path = "it/image.rs"]
mod image;
#[path = "it/k8s_api_server.rs"]
mod k8s_api_server;
#[path = "it/k8s_evict.rs"]
mod k8s_evict;
#[path = "it/k8s_manifests.rs"]
mod k8s_manifests;
#[path = "it/k8s_restart.rs"]
mod k8s_restart;
#[path = "it/k8s_rollback.rs"]
mod k8s_rollback;
#[path = "it/k8s_scale.rs"]
mod k8s_scale;
#[path = "it/k8s_support.rs"]
mod k8s_support;
#[path = "it/loud_failures.rs"]
mod loud_failures;
#[path = "it/maintenance.rs"]
mod maintenance;
#[path = "it/monitoring.rs"]
mod monitoring;
#[path = "it/notify_check.rs"]
mod notify_check;
#[path = "it/notify_email.rs"]
mod notify_email;
#[path = "it/notify_escaping.rs"]
mod notify_escaping;
#[path = "it/notify_messages.rs"]
mod notify_messages;
#[path = "it/notify_outcomes.rs"]
mod notify_outcomes;
#[path = "it/notify_rate.rs"]
mod notify_rate;
#[path = "it/notify_support.rs"]
mod notify_support;
#[path = "it/notify_webhook.rs"]
mod notify_webhook;
#[path = "it/overload.rs"]
mod overload;
#[path = "it/policy.rs"]
mod policy;
#[path = "it/postgres.rs"]
mod postgres;
#[path = "it/postgres_checkpoints.rs"]
mod postgres_checkpoints;
#[path = "it/postgres_retention.rs"]
mod postgres_retention;
#[path = "it/postgres_support.rs"]
mod postgres_support;
#[path = "it/probe.rs"]
mod probe;
#[path = "it/reload.rs"]
mod reload;
#[path = "it/replay.rs"]
mod replay;
#[path = "it/rules.rs"]
mod rules;
#[path = "it/slow_clients.rs"]
mod slow_clients;
#[path = "it/state.rs"]
mod state;
#[path = "it/storm.rs"]
mod storm;
#[path = "it/stream.rs"]
mod stream;
#[path = "it/systemd_events.rs"]
mod systemd_events;
#[path = "it/systemd_host.rs"]
mod systemd_host;
#[path = "it/systemd_support.rs"]
mod systemd_support;
#[path = "it/systemd_unit.rs"]
mod systemd_unit;
#[path = "it/systemd_units.rs"]
mod systemd_units;
#[path = "it/traces.rs"]
mod traces;
#[path = "it/upgrade.rs"]
mod upgrade;
