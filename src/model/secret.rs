//! Secrets from files and environment variables, and a type that never prints them.

use std::path::{Path, PathBuf};

/// A string that Debug never prints: a password, a token, a URL with a token in it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a secret could not be read; each names the setting it was for.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{key}: cannot read {}: {source}", path.display())]
    File {
        key: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: environment variable {var} is not set")]
    EnvUnset { key: String, var: String },
}

/// Reads a secret from a file (trailing newline dropped) or an environment variable.
pub fn read_secret(
    key: &str,
    file: Option<&Path>,
    env: Option<&str>,
) -> Result<Option<String>, SecretError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
            key: key.to_string(),
            path: path.to_path_buf(),
            source,
        })?;
        return Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()));
    }
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(v)),
            _ => Err(SecretError::EnvUnset {
                key: key.to_string(),
                var: var.to_string(),
            }),
        };
    }
    Ok(None)
}

/// Whether two secrets (or their hashes) are the same, in time that does not depend on
/// where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
