//! A setting of `salve.toml` that its stage refuses: the dotted key at fault
//! (`notify.ops.url`, `probe[2].timeout`) and why, so `salve check` and a refused
//! reload point at the line to change.

use std::fmt;

/// A refused setting. Each stage validates its own section and answers with this;
/// `config` adds the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidSetting {
    /// The dotted key, as written in the file (`api.tls_cert_file`).
    pub key: String,
    pub message: String,
}

impl InvalidSetting {
    pub fn new(key: impl Into<String>, message: impl fmt::Display) -> InvalidSetting {
        InvalidSetting {
            key: key.into(),
            message: message.to_string(),
        }
    }

    /// The same error with its key inside `section` (`notify.ops` + `url`); an empty
    /// key is the section itself.
    pub fn under(self, section: &str) -> InvalidSetting {
        let key = if self.key.is_empty() {
            section.to_string()
        } else {
            format!("{section}.{}", self.key)
        };
        InvalidSetting { key, ..self }
    }

    /// A secret that cannot be read (`model::read_secret`), whose text already begins
    /// with `key`.
    fn unreadable_secret(key: &str, error: &super::SecretError) -> InvalidSetting {
        let text = super::error_chain(error);
        let message = text
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(": "))
            .map(str::to_string)
            .unwrap_or(text);
        InvalidSetting::new(key, message)
    }
}

/// Reads a secret from a file or an environment variable (see `model::read_secret`),
/// an error naming `key`.
pub fn secret_setting(
    key: &str,
    file: Option<&std::path::Path>,
    env: Option<&str>,
) -> Result<Option<String>, InvalidSetting> {
    super::read_secret(key, file, env).map_err(|e| InvalidSetting::unreadable_secret(key, &e))
}
