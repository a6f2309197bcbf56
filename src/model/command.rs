//! How salve starts a named command (`[exec.NAME]`), for an `exec` action and for a
//! probe alike: no shell, only the environment variables the config names, no standard
//! input, and killed if salve stops waiting for it.

use std::path::Path;
use std::process::Stdio;

/// `argv` then `extra`, ready to spawn; standard output and error are the caller's to
/// set. None when `argv` is empty.
pub fn named_command(
    argv: &[String],
    extra: &[String],
    env: &[String],
    working_dir: Option<&Path>,
) -> Option<tokio::process::Command> {
    let (program, args) = argv.split_first()?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .args(extra)
        .env_clear()
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for var in env {
        if let Ok(value) = std::env::var(var) {
            cmd.env(var, value);
        }
    }
    if let Some(dir) = working_dir {
        cmd.current_dir(dir);
    }
    Some(cmd)
}
