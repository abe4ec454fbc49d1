//! Commands the module runs for the admin (event commands, the dns-01
//! setup/teardown command): executed without a shell, stdin closed.

use std::process::{Command, Stdio};

/// Why an event's command did not succeed; the text is the C module's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// It could not be started (not found, not executable).
    NotStarted(String),
    /// It ran and exited with another code than 0 (or by a signal: -1).
    Exited { code: i32, text: String },
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::NotStarted(t) | CommandError::Exited { text: t, .. } => f.write_str(t),
        }
    }
}

/// Runs `argv` (program and arguments) and returns its exit code (-1 when
/// ended by a signal); output is discarded.
pub(crate) fn exit_code(argv: &[String]) -> Result<i32, CommandError> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(CommandError::NotStarted("empty command".into()));
    };
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| CommandError::NotStarted(format!("cannot execute {prog}: {e}")))?;
    Ok(out.status.code().unwrap_or(-1))
}
