//! `[systemd]`: which bus, which units salve may touch, how long to verify.

use crate::model::{HumanDuration, InvalidSetting};
use crate::systemd::UnitOptIn;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The bus systemd listens on when `[systemd] bus` names none.
pub const SYSTEM_BUS: &str = "unix:path=/run/dbus/system_bus_socket";

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SystemdConfig {
    /// The D-Bus address of systemd's bus: `unix:path=/run/dbus/system_bus_socket` (the
    /// system bus, the default) or another `unix:path=...` given to salve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
    /// The units salve may act on and follow, as names or globs (`nginx.service`,
    /// `app-*.service`). Nothing by default: an action on a unit not named here is
    /// `skipped` with the reason `not_opted_in`.
    pub units: Vec<String>,
    /// Follow the state changes of the units named in `units` and hand salve
    /// `UnitFailed` and `UnitRestarting` events. Default: on when `units` names any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<bool>,
    /// Bound on one call to systemd and on the job it queues (the unit's start or stop
    /// included). Default `90s`, systemd's own default start timeout.
    pub timeout: HumanDuration,
    /// How long, after its job is done, a unit may take to be `active` (and a service
    /// `running`) before the outcome says it did not come back. Default `30s`; a rule's
    /// `.timeout(seconds)` overrides it.
    pub verify_timeout: HumanDuration,
}

impl Default for SystemdConfig {
    fn default() -> SystemdConfig {
        SystemdConfig {
            bus: None,
            units: Vec::new(),
            events: None,
            timeout: HumanDuration::from_secs(90),
            verify_timeout: HumanDuration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SystemdSettings {
    pub bus: String,
    pub units: UnitOptIn,
    pub events: bool,
    pub timeout: Duration,
    pub verify_timeout: Duration,
}

impl Default for SystemdSettings {
    fn default() -> SystemdSettings {
        let defaults = SystemdConfig::default();
        SystemdSettings {
            bus: SYSTEM_BUS.to_string(),
            units: UnitOptIn::default(),
            events: false,
            timeout: defaults.timeout.get(),
            verify_timeout: defaults.verify_timeout.get(),
        }
    }
}

impl SystemdSettings {
    /// Validates `[systemd]`.
    pub fn from_config(c: &SystemdConfig) -> Result<SystemdSettings, InvalidSetting> {
        let bus = c.bus.clone().unwrap_or_else(|| SYSTEM_BUS.to_string());
        if !bus.contains(':') {
            return Err(InvalidSetting::new(
                "systemd.bus",
                format!("{bus:?} is not a D-Bus address (write it like \"unix:path=/run/dbus/system_bus_socket\")"),
            ));
        }
        for (key, d) in [
            ("systemd.timeout", c.timeout),
            ("systemd.verify_timeout", c.verify_timeout),
        ] {
            if d.get().is_zero() {
                return Err(InvalidSetting::new(key, "must be more than 0s"));
            }
        }
        let units = UnitOptIn::new(&c.units)?;
        Ok(SystemdSettings {
            bus,
            events: c.events.unwrap_or(!units.is_empty()),
            units,
            timeout: c.timeout.get(),
            verify_timeout: c.verify_timeout.get(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt_in(units: &[&str]) -> UnitOptIn {
        let written: Vec<String> = units.iter().map(|u| u.to_string()).collect();
        UnitOptIn::new(&written).expect("valid globs")
    }

    #[test]
    fn only_the_units_named_or_matched_are_admitted() {
        let units = opt_in(&["nginx.service", "app-*.service"]);
        assert!(units.admits("nginx.service"));
        assert!(units.admits("app-web.service"));
        assert!(!units.admits("app-web.socket"));
        assert!(!units.admits("sshd.service"));
        assert!(!opt_in(&[]).admits("nginx.service"));
    }

    #[test]
    fn a_bad_glob_or_bus_is_refused_at_its_key() {
        let config = SystemdConfig {
            units: vec!["app-[.service".into()],
            ..SystemdConfig::default()
        };
        let e = SystemdSettings::from_config(&config).expect_err("a bad glob");
        assert!(e.to_string().contains("systemd.units"), "{e}");
        let config = SystemdConfig {
            bus: Some("/run/dbus/system_bus_socket".into()),
            ..SystemdConfig::default()
        };
        let e = SystemdSettings::from_config(&config).expect_err("a path, not an address");
        assert!(e.to_string().contains("systemd.bus"), "{e}");
    }

    #[test]
    fn events_follow_the_units_unless_said() {
        let config = SystemdConfig {
            units: vec!["nginx.service".into()],
            ..SystemdConfig::default()
        };
        assert!(SystemdSettings::from_config(&config).expect("valid").events);
        assert!(!SystemdSettings::default().events);
    }
}
