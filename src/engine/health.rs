//! What would otherwise fail silently: a task salve cannot work without that ended, and
//! a trail that cannot be written. Both make `/-/ready` say no, with why; a dead task
//! also stops the intake and the process (a supervisor restarts it, and the trail holds
//! everything acknowledged). Refusals are logged at most once a second, with a count.

use super::Engine;
use crate::audit::{AuditError, AuditRecord};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The tasks salve cannot work without, by the name `/-/ready` and
/// `salve_task_failed{task}` give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Decides what was recorded: rules, policy, the decisions' records.
    Decide,
    /// With `[store]`: keeps (or waits for) the lease that says who decides.
    Lease,
    /// With `[store]`: applies what the other replicas recorded.
    Follow,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Decide => "decide",
            Task::Lease => "lease",
            Task::Follow => "follow",
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Health {
    died: Mutex<Option<(Task, String)>>,
    trail: Mutex<TrailWrites>,
}

#[derive(Debug, Default)]
struct TrailWrites {
    /// The last write's error, while no write has succeeded since.
    failing: Option<String>,
    last_logged: Option<Instant>,
    refused_since_logged: u64,
}

const LOG_EVERY: Duration = Duration::from_secs(1);

impl Health {
    /// Records that `task` ended; the first death is the one reported.
    pub fn died(&self, task: Task, why: String) {
        let mut died = self.died.lock();
        if died.is_none() {
            tracing::error!(task = task.as_str(), why = %why,
                "a task salve cannot work without has ended: refusing events, not ready, exiting");
            *died = Some((task, why));
        }
    }

    pub fn dead(&self) -> Option<(Task, String)> {
        self.died.lock().clone()
    }

    fn trail_written(&self) {
        let mut trail = self.trail.lock();
        if let Some(error) = trail.failing.take() {
            tracing::info!(refused = trail.refused_since_logged, last_error = %error,
                "the audit trail is written again: ready");
            trail.refused_since_logged = 0;
            trail.last_logged = None;
        }
    }

    /// A write failed: logged now if nothing was logged in the last second, else
    /// counted into the next line.
    fn trail_failed(&self, error: &str) {
        let mut trail = self.trail.lock();
        trail.failing = Some(error.to_string());
        trail.refused_since_logged += 1;
        let now = Instant::now();
        if trail
            .last_logged
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY)
        {
            tracing::error!(error, failed_writes = trail.refused_since_logged,
                "cannot write the audit trail: events are refused (503) and nothing is decided until it can");
            trail.last_logged = Some(now);
            trail.refused_since_logged = 0;
        }
    }

    fn trail_failing(&self) -> Option<String> {
        self.trail.lock().failing.clone()
    }

    /// Why `/-/ready` says no on their account, if it does.
    pub fn not_ready_reason(&self) -> Option<String> {
        if let Some((task, why)) = self.dead() {
            return Some(format!("the {} task has ended: {why}", task.as_str()));
        }
        self.trail_failing()
            .map(|error| format!("the audit trail cannot be written: {error}"))
    }
}

impl Engine {
    /// Resolves once a task salve cannot work without has ended (see `health`).
    pub async fn task_died(&self) -> (Task, String) {
        let mut death = self.death.subscribe();
        loop {
            if let Some(dead) = self.health.dead() {
                return dead;
            }
            if death.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The task salve cannot work without that has ended, if one has.
    pub fn dead_task(&self) -> Option<(Task, String)> {
        self.health.dead()
    }

    /// Flushes and closes the trail, for an exit that does not go through `stop`.
    pub async fn close_trail(&self) {
        self.audit.close().await;
        self.give_up_lead().await;
    }

    /// Watches a task salve cannot work without: when it ends other than at a stop,
    /// salve refuses events, says why on `/-/ready` and in `salve_task_up`, and exits.
    pub(super) fn supervise(self: &Arc<Self>, task: Task, handle: tokio::task::JoinHandle<()>) {
        self.metrics.task_up(task.as_str(), true);
        let engine = Arc::downgrade(self);
        tokio::spawn(async move {
            let ended = handle.await;
            let Some(engine) = engine.upgrade() else {
                return;
            };
            engine.metrics.task_up(task.as_str(), false);
            engine.health.died(task, why_ended(ended));
            engine.death.send_replace(true);
        });
    }

    /// Appends records to the trail, and keeps readiness told whether it can.
    pub(super) async fn write_records(&self, records: &[AuditRecord]) -> Result<(), AuditError> {
        match self.audit.append(records).await {
            Ok(()) => {
                self.health.trail_written();
                self.announce_appended();
                Ok(())
            }
            Err(e) => {
                self.metrics.audit_write_errors.inc();
                self.health.trail_failed(&e.to_string());
                Err(e)
            }
        }
    }
}

impl Engine {
    /// While the trail cannot be written, no event may come to try it again (a balancer
    /// sends none to an instance that is not ready): a write of a trail batch's size
    /// beside it says when there is room again.
    pub(super) async fn retry_trail(&self) {
        if self.health.trail_failing().is_none() {
            return;
        }
        let Some(dir) = self.audit.files().map(|log| log.dir().to_path_buf()) else {
            return;
        };
        let probed = tokio::task::spawn_blocking(move || room_in(&dir)).await;
        if matches!(probed, Ok(Ok(()))) {
            self.health.trail_written();
        }
    }
}

/// Whether `dir` takes 64 KiB more, written and synced.
fn room_in(dir: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join(".write-probe");
    let result = std::fs::File::create(&path).and_then(|mut file| {
        file.write_all(&[0u8; 64 * 1024])?;
        file.sync_data()
    });
    let _ = std::fs::remove_file(&path);
    result
}

/// The text of a task's end: its panic's message, or that it returned.
pub(super) fn why_ended(result: Result<(), tokio::task::JoinError>) -> String {
    match result {
        Ok(()) => "it returned".to_string(),
        Err(e) if e.is_panic() => {
            let panic = e.into_panic();
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_string());
            format!("panicked: {message}")
        }
        Err(e) => format!("cancelled: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_task_is_the_reason_and_a_trail_that_writes_again_is_ready() {
        let health = Health::default();
        assert_eq!(health.not_ready_reason(), None);
        health.trail_failed("No space left on device (os error 28)");
        health.trail_failed("No space left on device (os error 28)");
        assert_eq!(
            health.not_ready_reason().as_deref(),
            Some("the audit trail cannot be written: No space left on device (os error 28)")
        );
        health.trail_written();
        assert_eq!(health.not_ready_reason(), None);
        health.died(Task::Decide, "panicked: boom".into());
        health.died(Task::Lease, "it returned".into());
        assert_eq!(
            health.not_ready_reason().as_deref(),
            Some("the decide task has ended: panicked: boom")
        );
    }
}
