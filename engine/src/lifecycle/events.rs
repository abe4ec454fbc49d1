//! Events (spec §7): `MDMessageCmd` and `MDNotifyCmd`, their rate limits
//! in the job log, and the retry back-off (§3.5).

use super::jobfile::{Job, JobResult, LogKind};
use crate::base::log::{Level, Note, Notes};
use crate::base::time::{self, Micros};

/// Delay before the next try after `errors` consecutive failures (§3.5):
/// `retry_delay * 2^(errors-1)` capped at a day, a day right away for input
/// related problems, then ±50% jitter from `rand` (0..=255).
pub(crate) fn backoff(errors: i32, retry_delay: Micros, input_related: bool, rand: u8) -> Micros {
    let day = time::from_secs(time::SECS_PER_DAY);
    let mut d = if input_related {
        day
    } else {
        let shift = (errors.max(1) - 1).min(62) as u32;
        retry_delay
            .checked_mul(1i64 << shift)
            .unwrap_or(day)
            .min(day)
    };
    let secs = time::secs(d);
    d += time::from_secs(secs * (i64::from(rand) - 128) / 256);
    d
}

/// A random byte for jitter.
pub(crate) fn rand_byte() -> u8 {
    let mut b = [0u8; 1];
    let _ = openssl::rand::rand_bytes(&mut b);
    b[0]
}

/// The events of an MD (§7): their names are what `MDMessageCmd` gets
/// and what the job log records as `message-<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Renewing,
    Renewed,
    Installed,
    Expiring,
    Errored,
    OcspRenewed,
    OcspErrored,
    /// `challenge-setup:<type>:<domain>`
    ChallengeSetup {
        ctype: crate::base::challenge::ChallengeType,
        domain: String,
    },
}

impl Event {
    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Event::Renewing => "renewing".into(),
            Event::Renewed => "renewed".into(),
            Event::Installed => "installed".into(),
            Event::Expiring => "expiring".into(),
            Event::Errored => "errored".into(),
            Event::OcspRenewed => "ocsp-renewed".into(),
            Event::OcspErrored => "ocsp-errored".into(),
            Event::ChallengeSetup { ctype, domain } => {
                format!("challenge-setup:{ctype}:{domain}").into()
            }
        }
    }

    /// The least time between two notifications (§7.1); 0: none.
    pub(crate) fn rate_limit(&self) -> Micros {
        let hour = time::from_secs(3600);
        match self {
            Event::Renewing | Event::Errored | Event::OcspErrored => hour,
            Event::ChallengeSetup { .. } => 0,
            _ => 24 * hour,
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

pub use crate::base::command::CommandError;

/// Runs the commands of events: MDNotifyCmd / MDMessageCmd.
pub trait Notify {
    /// Runs `MDMessageCmd <event> <md>`; Ok(()) when none is configured.
    fn message(&mut self, event: &str, md: &str) -> Result<(), CommandError>;
    /// Runs `MDNotifyCmd <md>` (for `renewed`).
    fn notify(&mut self, md: &str) -> Result<(), CommandError>;
    /// Whether an MDMessageCmd is configured (only then are events logged
    /// in the job and rate limited, as the C module does).
    fn has_message_cmd(&self) -> bool {
        true
    }
}

/// Runs MDMessageCmd / MDNotifyCmd as the spec says (§7.1, §7.2): split
/// like `apr_tokenize_to_argv`, executed without a shell, stdin closed,
/// stderr lines reported as notes.
#[derive(Debug, Default)]
pub struct CommandNotify {
    pub message_cmd: Option<String>,
    pub notify_cmd: Option<String>,
    pub notes: Vec<Note>,
}

impl CommandNotify {
    fn run(
        &mut self,
        line: &str,
        extra: &[&str],
        what: &str,
        code: &str,
    ) -> Result<(), CommandError> {
        let mut argv = crate::base::util::tokenize_argv(line);
        argv.extend(extra.iter().map(|s| s.to_string()));
        let Some((prog, args)) = argv.split_first() else {
            return Ok(());
        };
        let out = std::process::Command::new(prog)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::inherit())
            .stderr(std::process::Stdio::piped())
            .output();
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                return Err(CommandError::NotStarted(format!(
                    "{what} {line} failed with exit code -1 ({e})."
                )))
            }
        };
        for l in String::from_utf8_lossy(&out.stderr).lines() {
            self.notes
                .push(Note::new(Level::Info, format!("cmd({prog}) stderr: {l}")));
        }
        match out.status.code() {
            Some(0) => Ok(()),
            c => {
                let c = c.unwrap_or(-1);
                self.notes.push(Note::new(
                    Level::Error,
                    format!("{code}: {what} {line} failed with exit code {c}."),
                ));
                Err(CommandError::Exited {
                    code: c,
                    text: format!("{what} {line} failed with exit code {c}."),
                })
            }
        }
    }
}

impl Notify for CommandNotify {
    fn message(&mut self, event: &str, md: &str) -> Result<(), CommandError> {
        match self.message_cmd.clone() {
            Some(cmd) => self.run(&cmd, &[event, md], "MDMessageCmd", "AH10109"),
            None => Ok(()),
        }
    }
    fn notify(&mut self, md: &str) -> Result<(), CommandError> {
        match self.notify_cmd.clone() {
            Some(cmd) => self.run(&cmd, &[md], "MDNotifyCmd", "AH10108"),
            None => Ok(()),
        }
    }
    fn has_message_cmd(&self) -> bool {
        self.message_cmd.is_some()
    }
}

/// Fires an event through the job (rate limits and job log, §7.1).
/// Returns Err with the failure text.
pub(crate) fn fire(
    job: &mut Job,
    notify: &mut dyn Notify,
    event: &Event,
    now: Micros,
    notes: &mut dyn Notes,
) -> Result<(), CommandError> {
    let kind = LogKind::Message(event.name().into_owned());
    let limit = event.rate_limit();
    if limit > 0 && notify.has_message_cmd() {
        if let Some(e) = job.last_log(&kind) {
            if now - e.when < limit {
                notes.push(Note::new(
                    Level::Debug,
                    format!(
                        "AH10267: {}: rate limiting notification about '{event}'",
                        job.name
                    ),
                ));
                return Ok(());
            }
        }
    }
    if *event == Event::Renewed {
        if let Err(e) = notify.notify(&job.name) {
            let problem = "urn:org:apache:httpd:log:AH10108:";
            job.add_log(
                now,
                LogKind::NotifyError,
                Some(problem.into()),
                Some(e.to_string()),
            );
            job.last = Some(command_failure(problem, &e.to_string()));
            return Err(e);
        }
        notes.push(Note::new(
            Level::Notice,
            format!(
                "AH10059: The Managed Domain {} has been setup and changes will be activated on next (graceful) server restart.",
                job.name
            ),
        ));
    }
    if !notify.has_message_cmd() {
        return Ok(());
    }
    match notify.message(&event.name(), &job.name) {
        Ok(()) => {
            job.add_log(now, kind, None, None);
            Ok(())
        }
        Err(e) => {
            job.add_log(
                now,
                LogKind::MessageError,
                Some(event.name().into_owned()),
                Some(e.to_string()),
            );
            job.last = Some(command_failure(
                "urn:org:apache:httpd:log:AH10109:",
                &e.to_string(),
            ));
            Err(e)
        }
    }
}

/// The job's `last` result after a failed MDNotifyCmd/MDMessageCmd, as
/// the C module records it (the log id as problem type).
fn command_failure(problem: &str, detail: &str) -> JobResult {
    JobResult {
        status: crate::acme::Kind::General.apr(),
        problem: Some(problem.into()),
        detail: Some(detail.into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_schedule() {
        let d30 = time::from_secs(30);
        assert_eq!(backoff(1, d30, false, 128), d30);
        assert_eq!(backoff(2, d30, false, 128), time::from_secs(60));
        assert_eq!(backoff(3, d30, false, 128), time::from_secs(120));
        assert_eq!(backoff(40, d30, false, 128), time::from_secs(86400));
        assert_eq!(backoff(1, d30, true, 128), time::from_secs(86400));
        assert_eq!(backoff(1, d30, false, 0), time::from_secs(15));
        assert_eq!(
            backoff(1, d30, false, 255),
            time::from_secs(30 + 30 * 127 / 256)
        );
        assert_eq!(
            backoff(200, time::from_secs(i64::MAX / 2_000_000), false, 128),
            time::from_secs(86400)
        );
    }

    struct Rec(Vec<String>, bool);
    impl Notify for Rec {
        fn message(&mut self, event: &str, md: &str) -> Result<(), CommandError> {
            self.0.push(format!("{event} {md}"));
            if self.1 {
                Err(CommandError::Exited {
                    code: 1,
                    text: "MDMessageCmd /x failed with exit code 1.".into(),
                })
            } else {
                Ok(())
            }
        }
        fn notify(&mut self, md: &str) -> Result<(), CommandError> {
            self.0.push(format!("notify {md}"));
            Ok(())
        }
    }

    #[test]
    fn events_are_rate_limited() {
        let mut job = Job::new("a.org");
        let mut rec = Rec(vec![], false);
        let mut notes = vec![];
        let t0 = time::from_secs(1_000_000);
        fire(&mut job, &mut rec, &Event::Renewing, t0, &mut notes).unwrap();
        fire(
            &mut job,
            &mut rec,
            &Event::Renewing,
            t0 + time::from_secs(60),
            &mut notes,
        )
        .unwrap();
        fire(
            &mut job,
            &mut rec,
            &Event::Renewing,
            t0 + time::from_secs(3700),
            &mut notes,
        )
        .unwrap();
        fire(&mut job, &mut rec, &Event::Renewed, t0, &mut notes).unwrap();
        fire(
            &mut job,
            &mut rec,
            &Event::ChallengeSetup {
                ctype: crate::base::challenge::ChallengeType::Http01,
                domain: "a.org".into(),
            },
            t0,
            &mut notes,
        )
        .unwrap();
        fire(
            &mut job,
            &mut rec,
            &Event::ChallengeSetup {
                ctype: crate::base::challenge::ChallengeType::Http01,
                domain: "a.org".into(),
            },
            t0,
            &mut notes,
        )
        .unwrap();
        assert_eq!(
            rec.0,
            [
                "renewing a.org",
                "renewing a.org",
                "notify a.org",
                "renewed a.org",
                "challenge-setup:http-01:a.org a.org",
                "challenge-setup:http-01:a.org a.org"
            ]
        );
        assert!(notes.iter().any(|n| n.msg.contains("AH10267")));
        let mut failing = Rec(vec![], true);
        assert!(fire(&mut job, &mut failing, &Event::Expiring, t0, &mut notes).is_err());
        assert_eq!(job.log[0].kind, LogKind::MessageError);
        assert_eq!(job.log[0].status.as_deref(), Some("expiring"));
    }

    #[test]
    fn commands_run_without_shell() {
        let dir = crate::testutil::TempDir::new("cmd");
        let out = dir.join("out");
        let script = dir.join("s.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$@\" >> {}\necho oops >&2\n[ \"$1\" != fail ]\n",
                out.display()
            ),
        )
        .unwrap();
        std::process::Command::new("chmod")
            .arg("755")
            .arg(&script)
            .status()
            .unwrap();
        let mut n = CommandNotify {
            message_cmd: Some(format!("{} 'with space'", script.display())),
            notify_cmd: Some(script.display().to_string()),
            notes: vec![],
        };
        n.message("renewed", "a.org").unwrap();
        n.notify("a.org").unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "with space renewed a.org\na.org\n"
        );
        assert!(n.notes.iter().any(|x| x.msg.ends_with("stderr: oops")));
        n.message_cmd = Some(format!("{} fail", script.display()));
        let e = n.message("errored", "a.org").unwrap_err();
        assert!(
            matches!(&e, CommandError::Exited { code: 1, text } if text.ends_with("failed with exit code 1.")),
            "{e}"
        );
        n.message_cmd = Some("/nonexistent/cmd".into());
        assert!(matches!(
            n.message("errored", "a.org"),
            Err(CommandError::NotStarted(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
