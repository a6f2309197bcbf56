//! Prometheus metrics. Each notable event is counted where it is logged.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

type LabelPairs = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    pub events_received: Family<LabelPairs, Counter>,
    pub requests_rejected: Family<LabelPairs, Counter>,
    pub rule_evaluations: Counter,
    pub rule_errors: Family<LabelPairs, Counter>,
    pub rule_eval_seconds: Histogram,
    pub decisions: Family<LabelPairs, Counter>,
    pub actions: Family<LabelPairs, Counter>,
    pub audit_fsync_seconds: Histogram,
    pub audit_requests_per_fsync: Histogram,
    pub reload_successful: Gauge,
    pub reload_timestamp: Gauge,
    pub config_restart_required: Gauge,
    pub rules_loaded: Gauge,
    pub state_entries: Family<LabelPairs, Gauge>,
    pub state_evicted: Family<LabelPairs, Counter>,
    pub audit_files_removed: Family<LabelPairs, Counter>,
    pub store_rows_removed: Counter,
    pub backlog_events: Gauge,
    pub leader: Gauge,
    pub follower_lag_records: Gauge,
    pub task_up: Family<LabelPairs, Gauge>,
    pub backlog_oldest_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub intake_rejected: Family<LabelPairs, Counter>,
    pub rules_quarantined: Family<LabelPairs, Counter>,
    pub probe_up: Family<LabelPairs, Gauge>,
    pub probe_duration_seconds: Family<LabelPairs, Histogram, fn() -> Histogram>,
    pub probe_failures: Family<LabelPairs, Counter>,
    pub connections_open: Gauge,
    pub connections_refused: Counter,
    pub connections_timed_out: Family<LabelPairs, Counter>,
    pub reconsidered: Family<LabelPairs, Counter>,
    pub reconsiderations_pending: Gauge,
    pub approvals_pending: Gauge,
    pub approval_decisions: Family<LabelPairs, Counter>,
    pub approval_wait_seconds: Histogram,
    pub approval_notices: Family<LabelPairs, Counter>,
    pub notifications_folded: Family<LabelPairs, Counter>,
    pub notification_summaries: Family<LabelPairs, Counter>,
    pub ready: Gauge,
    pub breakers_open: Gauge,
    pub approval_oldest_pending_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub audit_write_errors: Counter,
    build_info: Family<LabelPairs, Gauge>,
}

fn probe_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.5, 10))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn pairs(items: &[(&str, &str)]) -> LabelPairs {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Builds [`Metrics`] from a table of `field: "name", metric, "help";`: each metric
/// registered under its name and help, in the table's order, and kept in its field.
macro_rules! registered {
    ($($field:ident: $name:literal, $metric:expr, $help:literal;)*) => {{
        let mut registry = Registry::with_prefix("salve");
        $(
            let $field = $metric;
            registry.register($name, $help, $field.clone());
        )*
        Metrics { registry, $($field),* }
    }};
}

impl Metrics {
    pub fn new() -> Metrics {
        // Registered in this order, which is the order `/metrics` lists them in.
        let metrics = registered! {
            build_info: "build_info", Family::default(),
                "1, labelled with the version, git revision and rustc salve was built from";
            events_received: "events_received", Family::default(),
                "Events accepted, by source";
            requests_rejected: "requests_rejected", Family::default(),
                "HTTP requests refused, by path and status";
            rule_evaluations: "rule_evaluations", Counter::default(),
                "Calls of rules' plan()";
            rule_errors: "rule_errors", Family::default(),
                "plan() calls that failed or timed out, by rule";
            rule_eval_seconds: "rule_eval_seconds", Histogram::new(exponential_buckets(0.00001, 4.0, 10)),
                "Time of one plan() call";
            decisions: "decisions", Family::default(),
                "Policy decisions, by decision and reason";
            actions: "actions", Family::default(),
                "Executed actions, by action and outcome";
            audit_fsync_seconds: "audit_fsync_seconds", Histogram::new(exponential_buckets(0.0001, 3.0, 10)),
                "Time of one audit write and fdatasync";
            audit_requests_per_fsync: "audit_requests_per_fsync", Histogram::new(exponential_buckets(1.0, 2.0, 10)),
                "Appends that shared one fdatasync (group commit)";
            reconsidered: "reconsidered", Family::default(),
                "Alerts decided again when what held their actions back ended, by what held them";
            reconsiderations_pending: "reconsiderations_pending", Gauge::default(),
                "Alerts held back, to be decided again when their hold ends (or, held in dry-run, when their rule acts)";
            approvals_pending: "approvals_pending", Gauge::default(),
                "Approvals asked for and not yet answered";
            approval_decisions: "approval_decisions", Family::default(),
                "Approvals ended, by state: approved, denied, expired, cancelled, invalidated, and executed or suppressed once approved";
            approval_wait_seconds: "approval_wait_seconds", Histogram::new(exponential_buckets(1.0, 3.0, 10)),
                "Time from an approval's request to its answer (approved or denied)";
            approval_notices: "approval_notices", Family::default(),
                "Messages about approvals, by message (request; ended, for what became of one; slack_update, a Slack message changed through a click's response_url), channel and outcome (ok, failed)";
            leader: "leader", Gauge::default(),
                "1 on the replica that decides and acts (the holder of the [store] lease; always 1 without a store), 0 on the others";
            follower_lag_records: "follower_lag_records", Gauge::default(),
                "With [store]: records of the shared trail this replica has not read yet (the newest seq less the last it folded), every second";
            task_up: "task_up", Family::default(),
                "1 while a task salve cannot work without runs (decide; with [store] lease and follow), 0 once it has ended: salve then refuses events and exits";
            reload_successful: "config_last_reload_successful", Gauge::default(),
                "Whether the last load of config and rules succeeded";
            reload_timestamp: "config_last_reload_success_timestamp_seconds", Gauge::default(),
                "When config and rules were last loaded successfully";
            config_restart_required: "config_restart_required", Gauge::default(),
                "1 while a setting in the config file differs from what runs and only a restart applies it (listen, data_dir, store, ...), else 0";
            rules_loaded: "rules_loaded", Gauge::default(),
                "Rules currently loaded";
            state_entries: "state_entries", Family::default(),
                "Entries of each set the policy remembers";
            state_evicted: "state_evicted", Family::default(),
                "Entries a set's bound forced out, oldest first, by set";
            audit_files_removed: "audit_files_removed", Family::default(),
                "Rotated audit files removed, by reason: age (older than keep_for) or size (forced out by keep_files)";
            store_rows_removed: "store_rows_removed", Counter::default(),
                "With [store]: rows of the shared trail retention removed (older than [store] keep_for, and held by a checkpoint)";
            backlog_events: "backlog_events", Gauge::default(),
                "Events acknowledged and not yet decided";
            backlog_oldest_seconds: "backlog_oldest_seconds", Gauge::default(),
                "Age of the oldest event acknowledged and not yet decided";
            intake_rejected: "intake_rejected", Family::default(),
                "Events refused at the door, by reason: backlog, stopping, too_large, unrecorded";
            rules_quarantined: "rules_quarantined", Family::default(),
                "Times a rule was quarantined for being cut off again and again, by rule";
            probe_up: "probe_up", Family::default(),
                "Whether the probe's last check succeeded (1) or failed (0), by probe";
            probe_duration_seconds: "probe_duration_seconds", Family::new_with_constructor(probe_histogram as fn() -> Histogram),
                "Time of one check, by probe";
            probe_failures: "probe_failures", Family::default(),
                "Failed checks, by probe and class (timeout, refused, dns, tls, status, body, slow, reset, exec_failed)";
            connections_open: "connections_open", Gauge::default(),
                "HTTP connections open now (at most api.max_connections)";
            connections_refused: "connections_refused", Counter::default(),
                "HTTP connections closed as soon as accepted, api.max_connections being open";
            connections_timed_out: "connections_timed_out", Family::default(),
                "HTTP connections closed for a slow or idle client, by timeout: tls_handshake, header_read, idle";
            notifications_folded: "notifications_folded", Family::default(),
                "Messages held by their channel's rate and folded into a summary, by channel";
            notification_summaries: "notification_summaries", Family::default(),
                "Summaries of messages held by a channel's rate, by channel and outcome (ok, failed, unsent)";
            ready: "ready", Gauge::default(),
                "1 while /-/ready answers 200, else 0 (a task ended, the trail cannot be written, the backlog is full, or still starting)";
            breakers_open: "breakers_open", Gauge::default(),
                "Circuit breakers open now (an action on a target stopped after failing breaker_failures times in a row)";
            approval_oldest_pending_seconds: "approval_oldest_pending_seconds", Gauge::default(),
                "Age of the oldest approval still waiting for a person (0 when none waits)";
            audit_write_errors: "audit_write_errors", Counter::default(),
                "Appends to the audit trail that failed (events are refused with 503 until a write succeeds again)";
        };
        metrics
            .build_info
            .get_or_create(&pairs(&[
                ("version", crate::version::VERSION),
                ("revision", crate::version::REVISION),
                ("rustc", crate::version::RUSTC),
            ]))
            .set(1);
        metrics
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    pub fn event_received(&self, source: &str) {
        self.events_received
            .get_or_create(&pairs(&[("source", source)]))
            .inc();
    }

    pub fn request_rejected(&self, path: &str, status: u16) {
        self.requests_rejected
            .get_or_create(&pairs(&[("path", path), ("status", &status.to_string())]))
            .inc();
    }

    pub fn rule_evaluated(&self, took: Duration) {
        self.rule_evaluations.inc();
        self.rule_eval_seconds.observe(took.as_secs_f64());
    }

    pub fn rule_failed(&self, rule: &str) {
        self.rule_errors
            .get_or_create(&pairs(&[("rule", rule)]))
            .inc();
    }

    pub fn decided(&self, decision: &str, reason: &str) {
        self.decisions
            .get_or_create(&pairs(&[("decision", decision), ("reason", reason)]))
            .inc();
    }

    /// A message to `channel` held for a summary, the channel's `rate` being reached.
    pub fn notification_folded(&self, channel: &str) {
        self.notifications_folded
            .get_or_create(&pairs(&[("channel", channel)]))
            .inc();
    }

    /// A summary of held messages to `channel`: `ok`, `failed`, or `unsent` (salve
    /// stopped before it could go).
    pub fn notification_summary(&self, channel: &str, outcome: &str) {
        self.notification_summaries
            .get_or_create(&pairs(&[("channel", channel), ("outcome", outcome)]))
            .inc();
    }

    /// A message about an approval sent (`ok`) or given up on (`failed`).
    pub fn approval_notice(&self, message: &str, channel: &str, outcome: &str) {
        self.approval_notices
            .get_or_create(&pairs(&[
                ("message", message),
                ("channel", channel),
                ("outcome", outcome),
            ]))
            .inc();
    }

    pub fn reconsidered(&self, held: &str) {
        self.reconsidered
            .get_or_create(&pairs(&[("held", held)]))
            .inc();
    }

    /// An approval ended in `state`, `waited` seconds after it was asked for; the wait
    /// of a person's answer is observed.
    pub fn approval_decided(&self, state: &str, waited: f64, answered: bool) {
        self.approval_decisions
            .get_or_create(&pairs(&[("state", state)]))
            .inc();
        if answered {
            self.approval_wait_seconds.observe(waited);
        }
    }

    pub fn acted(&self, action: &str, outcome: &str) {
        self.actions
            .get_or_create(&pairs(&[("action", action), ("outcome", outcome)]))
            .inc();
    }

    pub fn audit_synced(&self, took: Duration, requests: usize) {
        self.audit_fsync_seconds.observe(took.as_secs_f64());
        self.audit_requests_per_fsync.observe(requests as f64);
    }

    /// The sizes of the remembered sets, and the evictions so far (cumulative).
    pub fn state(&self, sizes: &[(&str, usize)], evicted: &[(&str, u64)]) {
        for (set, n) in sizes {
            self.state_entries
                .get_or_create(&pairs(&[("set", set)]))
                .set(*n as i64);
        }
        for (set, total) in evicted {
            let counter = self.state_evicted.get_or_create(&pairs(&[("set", set)]));
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    pub fn probe_checked(&self, probe: &str, took: Duration, failure: Option<&str>) {
        let labels = pairs(&[("probe", probe)]);
        self.probe_up
            .get_or_create(&labels)
            .set(i64::from(failure.is_none()));
        self.probe_duration_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if let Some(class) = failure {
            self.probe_failures
                .get_or_create(&pairs(&[("probe", probe), ("class", class)]))
                .inc();
        }
    }

    /// A probe no longer in the config: its series go, as a target Prometheus no
    /// longer scrapes.
    pub fn probe_removed(&self, probe: &str, classes: &[&str]) {
        let labels = pairs(&[("probe", probe)]);
        self.probe_up.remove(&labels);
        self.probe_duration_seconds.remove(&labels);
        for class in classes {
            self.probe_failures
                .remove(&pairs(&[("probe", probe), ("class", class)]));
        }
    }

    /// A connection opened (`+1`) or closed (`-1`).
    pub fn connections(&self, change: i64) {
        self.connections_open.inc_by(change);
    }

    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    pub fn connection_timed_out(&self, timeout: &str) {
        self.connections_timed_out
            .get_or_create(&pairs(&[("timeout", timeout)]))
            .inc();
    }

    pub fn rule_quarantined(&self, rule: &str) {
        self.rules_quarantined
            .get_or_create(&pairs(&[("rule", rule)]))
            .inc();
    }

    pub fn backlog(&self, events: usize, oldest_seconds: f64) {
        self.backlog_events.set(events as i64);
        self.backlog_oldest_seconds.set(oldest_seconds);
    }

    pub fn intake_rejected(&self, reason: &str) {
        self.intake_rejected
            .get_or_create(&pairs(&[("reason", reason)]))
            .inc();
    }

    pub fn audit_file_removed(&self, reason: &str) {
        self.audit_files_removed
            .get_or_create(&pairs(&[("reason", reason)]))
            .inc();
    }

    pub fn store_rows_removed(&self, rows: u64) {
        self.store_rows_removed.inc_by(rows);
    }

    pub fn leader(&self, leads: bool) {
        self.leader.set(i64::from(leads));
    }

    pub fn follower_lag(&self, records: i64) {
        self.follower_lag_records.set(records.max(0));
    }

    pub fn task_up(&self, task: &str, up: bool) {
        self.task_up
            .get_or_create(&pairs(&[("task", task)]))
            .set(i64::from(up));
    }

    /// Whether the config file holds settings that differ from what runs and need a
    /// restart.
    pub fn restart_required(&self, required: bool) {
        self.config_restart_required.set(i64::from(required));
    }

    pub fn reloaded(&self, ok: bool, rules: usize) {
        self.reload_successful.set(i64::from(ok));
        if ok {
            self.rules_loaded.set(rules as i64);
            self.reload_timestamp.set(chrono::Utc::now().timestamp());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_is_a_gauge_of_one_naming_the_build() {
        let text = Metrics::new().render();
        assert!(text.contains("# TYPE salve_build_info gauge\n"), "{text}");
        assert!(text.contains("# HELP salve_build_info "), "{text}");
        let line = format!(
            "salve_build_info{{version=\"{}\",revision=\"{}\",rustc=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION"),
            crate::version::REVISION,
            crate::version::RUSTC
        );
        assert!(text.contains(&line), "{line} in:\n{text}");
    }
}
