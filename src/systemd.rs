//! systemd as salve reaches it over D-Bus, shared by the executor that acts on units
//! and the source that follows them: as much of systemd's interface as salve uses (the
//! manager's job methods, `JobRemoved` and the list of units; a unit's states; a
//! service's restart count and result), and the units that opted in.

use crate::model::InvalidSetting;
use globset::{Glob, GlobSet, GlobSetBuilder};
use zbus::zvariant::OwnedObjectPath;

/// One unit as `ListUnits` gives it: name, description, load state, active state, sub
/// state, followed unit, object path, job id, job type, job path.
pub type ListedUnit = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_blocking = false
)]
pub trait Manager {
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reload_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reload_or_restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn kill_unit(&self, name: &str, whom: &str, signal: i32) -> zbus::Result<()>;
    fn reset_failed_unit(&self, name: &str) -> zbus::Result<()>;
    /// The unit's object, loading it when it is not (a unit that does not exist comes
    /// back with `LoadState` `not-found`).
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    /// Without a subscriber, systemd sends no `JobRemoved` and no `PropertiesChanged`.
    fn subscribe(&self) -> zbus::Result<()>;
    fn list_units(&self) -> zbus::Result<Vec<ListedUnit>>;

    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1",
    gen_blocking = false
)]
pub trait Unit {
    /// The unit's name (`nginx.service`).
    #[zbus(property)]
    fn id(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn can_reload(&self) -> zbus::Result<bool>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1",
    gen_blocking = false
)]
pub trait Service {
    /// `success`, or why the service last failed (`exit-code`, `signal`, `timeout`, ...).
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;
    #[zbus(property, name = "NRestarts")]
    fn n_restarts(&self) -> zbus::Result<u32>;
    #[zbus(property)]
    fn exec_main_status(&self) -> zbus::Result<i32>;
    #[zbus(property)]
    fn exec_main_pid(&self) -> zbus::Result<u32>;
}

/// A connection to the bus at `address` (`unix:path=...`).
pub async fn connect(address: &str) -> zbus::Result<zbus::Connection> {
    zbus::connection::Builder::address(address)?.build().await
}

/// What D-Bus said, for people: the error's name and message, or the transport's error.
pub fn said(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, Some(message), _) => format!("{message} ({name})"),
        zbus::Error::MethodError(name, None, _) => name.to_string(),
        other => other.to_string(),
    }
}

/// systemd answers a second `Subscribe` from one connection with this error.
pub fn already_subscribed(e: zbus::Error) -> zbus::Result<()> {
    match &e {
        zbus::Error::MethodError(name, _, _) if name.as_str().ends_with("AlreadySubscribed") => {
            Ok(())
        }
        _ => Err(e),
    }
}

/// The units that opted in: `[systemd] units`, names or globs.
#[derive(Debug, Clone, Default)]
pub struct UnitOptIn {
    written: Vec<String>,
    globs: GlobSet,
}

impl UnitOptIn {
    pub fn new(written: &[String]) -> Result<UnitOptIn, InvalidSetting> {
        let mut globs = GlobSetBuilder::new();
        for (i, pattern) in written.iter().enumerate() {
            let glob = Glob::new(pattern).map_err(|e| {
                InvalidSetting::new("systemd.units", format!("[{i}] {pattern:?}: {e}"))
            })?;
            globs.add(glob);
        }
        let globs = globs
            .build()
            .map_err(|e| InvalidSetting::new("systemd.units", e.to_string()))?;
        Ok(UnitOptIn {
            written: written.to_vec(),
            globs,
        })
    }

    pub fn admits(&self, unit: &str) -> bool {
        self.globs.is_match(unit)
    }

    pub fn is_empty(&self) -> bool {
        self.written.is_empty()
    }

    /// As written in `salve.toml`, for messages.
    pub fn written(&self) -> &[String] {
        &self.written
    }
}
