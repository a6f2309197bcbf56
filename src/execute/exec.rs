//! Named commands from config: argv without a shell, a timeout, a clean environment.

use super::{ActionContext, Executor};
use crate::model::{Backend, Intent, Target};
use crate::model::{HumanDuration, InvalidSetting, Outcome};
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// Program and arguments; no shell is involved. A rule's args are appended.
    pub argv: Vec<String>,
    /// Killed after this long. Default `30s`.
    #[serde(default = "ExecConfig::default_timeout")]
    pub timeout: HumanDuration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<PathBuf>,
    /// Names of salve's environment variables passed to the command; nothing else is.
    #[serde(default)]
    pub env: Vec<String>,
}

impl ExecConfig {
    fn default_timeout() -> HumanDuration {
        HumanDuration::from_secs(30)
    }
}

#[derive(Debug, Clone)]
pub struct ExecCommand {
    pub name: String,
    pub argv: Vec<String>,
    pub timeout: Duration,
    pub working_dir: Option<PathBuf>,
    pub env: Vec<String>,
}

impl ExecCommand {
    /// Validates `[exec.NAME]`.
    pub fn from_config(name: &str, cmd: &ExecConfig) -> Result<ExecCommand, InvalidSetting> {
        if cmd.argv.first().is_none_or(String::is_empty) {
            return Err(InvalidSetting::new(
                format!("exec.{name}.argv"),
                "needs at least the program to run",
            ));
        }
        Ok(ExecCommand {
            name: name.to_string(),
            argv: cmd.argv.clone(),
            timeout: cmd.timeout.get(),
            working_dir: cmd.working_dir.clone(),
            env: cmd.env.clone(),
        })
    }
}

/// How much of stdout/stderr the outcome keeps: the end is where the error usually is.
const TAIL_BYTES: usize = 2048;

pub struct ExecExecutor {
    commands: HashMap<String, ExecCommand>,
}

impl ExecExecutor {
    pub fn new(commands: HashMap<String, ExecCommand>) -> ExecExecutor {
        ExecExecutor { commands }
    }
}

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(TAIL_BYTES);
    String::from_utf8_lossy(&bytes[start..])
        .trim_end()
        .to_string()
}

#[async_trait]
impl Executor for ExecExecutor {
    fn backend(&self) -> Backend {
        Backend::Exec
    }

    async fn execute(&self, intent: &Intent, _context: &ActionContext) -> Outcome {
        let Target::Exec { name } = &intent.target else {
            return Outcome::failed(format!("exec cannot act on {}", intent.target), json!(null));
        };
        let Some(command) = self.commands.get(name) else {
            return Outcome::failed(
                format!("no exec command named {name:?} in the config"),
                json!(null),
            );
        };
        let extra = extra_args(intent);
        let Some(mut cmd) = crate::model::named_command(
            &command.argv,
            &extra,
            &command.env,
            command.working_dir.as_deref(),
        ) else {
            return Outcome::failed(
                format!("exec {}: the command is empty", command.name),
                serde_json::Value::Null,
            );
        };
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let argv: Vec<&str> = command
            .argv
            .iter()
            .chain(extra.iter())
            .map(String::as_str)
            .collect();
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                return Outcome::failed(
                    format!("cannot start {:?}: {e}", command.argv[0]),
                    json!({ "argv": argv }),
                )
            }
        };
        match tokio::time::timeout(command.timeout, collect(child)).await {
            Err(_) => Outcome::failed(
                format!(
                    "timed out after {}",
                    crate::model::rate::format_duration(command.timeout)
                ),
                json!({ "argv": argv }),
            ),
            Ok((Err(e), _, _)) => Outcome::failed(
                format!("cannot wait for command: {e}"),
                json!({ "argv": argv }),
            ),
            Ok((Ok(status), out, err)) => finished(status, &out, &err, &argv),
        }
    }
}

/// The rule's `args`, after the configured command's own.
fn extra_args(intent: &Intent) -> Vec<String> {
    intent
        .params
        .get("args")
        .and_then(|a| a.as_array())
        .map(|a| {
            a.iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads both pipes to their end, then waits for the command's exit.
async fn collect(
    mut child: tokio::process::Child,
) -> (std::io::Result<std::process::ExitStatus>, Vec<u8>, Vec<u8>) {
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let read_out = async {
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut out).await;
        }
    };
    let read_err = async {
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut err).await;
        }
    };
    tokio::join!(read_out, read_err);
    let status = child.wait().await;
    (status, out, err)
}

/// A command that ran to its end: ok on status 0, else failed with what it said.
fn finished(status: std::process::ExitStatus, out: &[u8], err: &[u8], argv: &[&str]) -> Outcome {
    let detail = json!({
        "argv": argv,
        "exit_code": status.code(),
        "stdout_tail": tail(out),
        "stderr_tail": tail(err),
    });
    if status.success() {
        return Outcome::ok(detail);
    }
    let why = match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "killed by a signal".to_string(),
    };
    Outcome::failed(why, detail)
}
