//! Renewal jobs (`job.json`, spec §5.5), retry back-off (§3.5), events
//! (§7) and the processing of one MD's job (§3.3).

use crate::acme::order::{self, ChallengeEnv, Events, RunEnv};
use crate::acme::{status, Acme, AcmeError, Kind};
use crate::config::{Global, Md, RenewMode};
use crate::http::Client;
use crate::log::{Level, Note};
use crate::store::{Group, Store};
use crate::time::{self, Micros};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub const MAX_LOG_ENTRIES: usize = 128;

/// `job.json` fields as the C module writes them: times in RFC 822 (absent
/// when 0), values of the wrong type read as their default, so that a
/// file from another writer never fails the whole job.
mod wire {
    use crate::time::{self, Micros};
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value;

    pub use crate::util::lenient;

    /// A list: the items that do not read are left out, the others kept.
    pub fn lenient_items<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: serde::de::DeserializeOwned,
    {
        let v = Value::deserialize(d)?;
        Ok(match v {
            Value::Array(a) => a
                .into_iter()
                .filter_map(|x| T::deserialize(x).ok())
                .collect(),
            _ => Vec::new(),
        })
    }

    pub fn is_zero(t: &Micros) -> bool {
        *t == 0
    }

    /// A time as RFC 822 text; unreadable or missing: 0.
    pub mod rfc822 {
        use super::*;

        pub fn serialize<S: Serializer>(t: &Micros, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&time::rfc822(*t))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Micros, D::Error> {
            let v = Value::deserialize(d)?;
            Ok(v.as_str().and_then(time::parse_rfc822).unwrap_or(0))
        }
    }
}

/// The result of the last run (`last` in job.json).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct JobResult {
    #[serde(default, deserialize_with = "wire::lenient")]
    pub status: i32,
    #[serde(
        default,
        deserialize_with = "wire::lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub problem: Option<String>,
    #[serde(
        default,
        deserialize_with = "wire::lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub detail: Option<String>,
    #[serde(
        default,
        deserialize_with = "wire::lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub activity: Option<String>,
    #[serde(default, with = "wire::rfc822", skip_serializing_if = "wire::is_zero")]
    pub valid_from: Micros,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subproblems: Option<Value>,
}

impl JobResult {
    /// As serialized, with `status-description` after `status` when it is
    /// an error (derived from the status: not read back).
    fn to_json(&self) -> Value {
        let Ok(Value::Object(o)) = serde_json::to_value(self) else {
            return Value::Null;
        };
        let mut out = serde_json::Map::new();
        for (k, v) in o {
            let is_status = k == "status";
            out.insert(k, v);
            if is_status && self.status > 0 {
                out.insert(
                    "status-description".into(),
                    json!(status::describe(self.status)),
                );
            }
        }
        Value::Object(out)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    #[serde(with = "wire::rfc822", default)]
    pub when: Micros,
    #[serde(rename = "type", default, deserialize_with = "wire::lenient")]
    pub kind: String,
    #[serde(
        default,
        deserialize_with = "wire::lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub status: Option<String>,
    #[serde(
        default,
        deserialize_with = "wire::lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub detail: Option<String>,
}

/// `log` in job.json: `{"entries": [...]}`, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct JobLog {
    #[serde(default, deserialize_with = "wire::lenient_items")]
    entries: Vec<LogEntry>,
}

/// The staging jobs as the request path reads them (status pages): a
/// job.json is parsed again only when it changed (another inode, size or
/// modification time; the store replaces files by rename), so that a
/// status page with many MDs costs one `stat` per MD.
#[derive(Default)]
pub struct JobCache(std::sync::Mutex<HashMap<String, Cached>>);

/// A job.json's stamp, and what it held.
type Cached = (crate::util::FileStamp, Option<Arc<Job>>);

impl JobCache {
    /// The staging job of `md` (None: none, or unreadable).
    pub fn get(&self, store: &Store, md: &str) -> Option<Arc<Job>> {
        let stamp = crate::util::FileStamp::of(&store.path(Group::Staging, md, "job.json"));
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(stamp) = stamp else {
            cache.remove(md);
            return None;
        };
        if let Some((s, job)) = cache.get(md) {
            if *s == stamp {
                return job.clone();
            }
        }
        let job = match store.load_json(Group::Staging, md, "job.json") {
            Ok(Some(j)) => Some(Arc::new(Job::from_json(&j))),
            _ => None,
        };
        cache.insert(md.to_string(), (stamp, job.clone()));
        job
    }
}

/// `job.json` of an MD (or of OCSP: name `other`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Job {
    #[serde(default, deserialize_with = "wire::lenient")]
    pub name: String,
    #[serde(default, deserialize_with = "wire::lenient")]
    pub finished: bool,
    #[serde(default, deserialize_with = "wire::lenient")]
    pub notified: bool,
    #[serde(default, deserialize_with = "wire::lenient")]
    pub notified_renewed: bool,
    #[serde(default, with = "wire::rfc822", skip_serializing_if = "wire::is_zero")]
    pub next_run: Micros,
    #[serde(default, with = "wire::rfc822", skip_serializing_if = "wire::is_zero")]
    pub last_run: Micros,
    #[serde(default, with = "wire::rfc822", skip_serializing_if = "wire::is_zero")]
    pub valid_from: Micros,
    #[serde(default, deserialize_with = "wire::lenient")]
    pub errors: i32,
    #[serde(default, deserialize_with = "wire::lenient", skip_serializing)]
    pub last: Option<JobResult>,
    /// ARI ids of certificates named in an order's `replaces` (our
    /// addition, `ari-replaced`; only written when there are some).
    #[serde(
        default,
        deserialize_with = "wire::lenient",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ari_replaced: Vec<String>,
    /// Newest first.
    #[serde(
        default,
        deserialize_with = "wire::lenient",
        skip_serializing,
        rename = "log"
    )]
    log_wire: JobLog,
    #[serde(skip)]
    pub log: Vec<LogEntry>,
}

impl Job {
    pub fn new(name: &str) -> Job {
        Job {
            name: name.to_string(),
            ..Default::default()
        }
    }

    pub fn to_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        if let Some(o) = v.as_object_mut() {
            // `last` (with its derived text) after `errors`, `log` at the
            // end, as the C module orders them
            let tail = o.remove("ari-replaced");
            if let Some(l) = &self.last {
                o.insert("last".into(), l.to_json());
            }
            if let Some(t) = tail {
                o.insert("ari-replaced".into(), t);
            }
            o.insert("log".into(), json!({ "entries": self.log }));
        }
        v
    }

    pub fn from_json(j: &Value) -> Job {
        let mut job = Job::deserialize(j).unwrap_or_default();
        job.log = std::mem::take(&mut job.log_wire.entries);
        job
    }

    /// Reads `staging/<name>/job.json`; a broken file is reported, and a
    /// fresh job takes its place.
    pub fn load(store: &Store, group: Group, name: &str) -> Result<Job, String> {
        match store.load_json(group, name, "job.json") {
            Ok(Some(j)) => Ok(Job::from_json(&j)),
            Ok(None) => Ok(Job::new(name)),
            Err(e) => Err(e.msg),
        }
    }

    /// [`Job::load`] for the job's one writer: a broken file is set aside
    /// (reported in `notes`) and a fresh job takes its place.
    pub fn load_healing(
        store: &Store,
        group: Group,
        name: &str,
        notes: &mut Vec<Note>,
    ) -> Result<Job, String> {
        match store.load_json_healing(group, name, "job.json", notes) {
            Ok(Some(j)) => Ok(Job::from_json(&j)),
            Ok(None) => Ok(Job::new(name)),
            Err(e) => Err(e.msg),
        }
    }

    pub fn save(&self, store: &Store, group: Group) -> Result<(), String> {
        store
            .save_json(group, &self.name, "job.json", &self.to_json())
            .map_err(|e| e.msg)
    }

    pub fn add_log(
        &mut self,
        now: Micros,
        kind: &str,
        status: Option<String>,
        detail: Option<String>,
    ) {
        self.log.insert(
            0,
            LogEntry {
                when: now,
                kind: kind.to_string(),
                status,
                detail,
            },
        );
        self.log.truncate(MAX_LOG_ENTRIES);
    }

    /// The newest log entry of a kind.
    pub fn last_log(&self, kind: &str) -> Option<&LogEntry> {
        self.log.iter().find(|e| e.kind == kind)
    }
}

/// Delay before the next try after `errors` consecutive failures (§3.5):
/// `retry_delay * 2^(errors-1)` capped at a day, a day right away for input
/// related problems, then ±50% jitter from `rand` (0..=255).
pub fn backoff(errors: i32, retry_delay: Micros, input_related: bool, rand: u8) -> Micros {
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
pub fn rand_byte() -> u8 {
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
        ctype: String,
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
    pub fn rate_limit(&self) -> Micros {
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

/// Runs the commands of events: MDNotifyCmd / MDMessageCmd.
pub trait Notify {
    /// Runs `MDMessageCmd <event> <md>`; Ok(()) when none is configured.
    fn message(&mut self, event: &str, md: &str) -> Result<(), String>;
    /// Runs `MDNotifyCmd <md>` (for `renewed`).
    fn notify(&mut self, md: &str) -> Result<(), String>;
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
    fn run(&mut self, line: &str, extra: &[&str], what: &str, code: &str) -> Result<(), String> {
        let mut argv = crate::util::tokenize_argv(line);
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
            Err(e) => return Err(format!("{what} {line} failed with exit code -1 ({e}).")),
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
                Err(format!("{what} {line} failed with exit code {c}."))
            }
        }
    }
}

impl Notify for CommandNotify {
    fn message(&mut self, event: &str, md: &str) -> Result<(), String> {
        match self.message_cmd.clone() {
            Some(cmd) => self.run(&cmd, &[event, md], "MDMessageCmd", "AH10109"),
            None => Ok(()),
        }
    }
    fn notify(&mut self, md: &str) -> Result<(), String> {
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
pub fn fire(
    job: &mut Job,
    notify: &mut dyn Notify,
    event: &Event,
    now: Micros,
    notes: &mut Vec<Note>,
) -> Result<(), String> {
    let kind = format!("message-{event}");
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
            job.add_log(now, "notify-error", Some(problem.into()), Some(e.clone()));
            job.last = Some(command_failure(problem, &e));
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
            job.add_log(now, &kind, None, None);
            Ok(())
        }
        Err(e) => {
            job.add_log(
                now,
                "message-error",
                Some(event.name().into_owned()),
                Some(e.clone()),
            );
            job.last = Some(command_failure("urn:org:apache:httpd:log:AH10109:", &e));
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

/// Who says a current certificate of an MD is revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevokedBy {
    Ocsp,
    Crl,
}

/// Everything processing one MD needs; built by the watchdog from what
/// post_config froze.
pub struct JobCtx<'a> {
    pub store: &'a Store,
    pub md: &'a Md,
    pub global: &'a Global,
    pub renew_at: Micros,
    pub warn_at: Option<Micros>,
    /// Whether the MD has complete, valid certificates now.
    pub complete: bool,
    pub challenges: Result<Vec<String>, String>,
    pub user_agent: String,
    /// httpd's `User` (named in hints about permissions).
    pub run_user: String,
    /// The MD staples and its OCSP responder says a certificate is
    /// revoked, or its issuer's CRL lists one.
    pub revoked: Option<RevokedBy>,
    /// The MD's current certificates (leaves), for ARI.
    pub certs: Vec<(String, openssl::x509::X509)>,
    /// The store's leases when several httpd share it (`MDClusterNode`).
    pub leases: Option<crate::lease::Leases>,
    /// An operator's pending request for a new certificate (`a2md renew`).
    pub requested: Option<crate::request::Request>,
}

struct ProgressToJob<'a> {
    job: &'a mut Job,
    notify: &'a mut dyn Notify,
    notes: &'a mut Vec<Note>,
    last: Option<String>,
}

impl Events for ProgressToJob<'_> {
    fn challenge_setup(&mut self, ctype: &str, domain: &str) -> Result<(), String> {
        let ev = Event::ChallengeSetup {
            ctype: ctype.to_string(),
            domain: domain.to_string(),
        };
        fire(self.job, self.notify, &ev, time::now(), self.notes)
    }
    fn progress(&mut self, activity: &str) {
        if self.last.as_deref() != Some(activity) {
            self.job
                .add_log(time::now(), "progress", None, Some(activity.to_string()));
            self.last = Some(activity.to_string());
        }
    }
}

/// The CA to use for this run (§3.5 failover): the URL of the previous
/// staging run, moved on by one once `errors` reached `MDRetryFailover`.
fn pick_ca(ctx: &JobCtx<'_>, errors: i32) -> (String, bool) {
    let urls: Vec<String> = if ctx.md.ca_urls.is_empty() {
        vec![crate::config::LETSENCRYPT_URL.to_string()]
    } else {
        ctx.md.ca_urls.clone()
    };
    let prev = ctx
        .store
        .load_json(Group::Staging, &ctx.md.name, "md.json")
        .ok()
        .flatten()
        .and_then(|j| {
            j.pointer("/ca/url")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .and_then(|u| urls.iter().position(|x| *x == u));
    match prev {
        Some(i) if urls.len() >= 2 && errors >= ctx.global.retry_failover => {
            (urls[(i + 1) % urls.len()].clone(), true)
        }
        Some(i) => (urls[i].clone(), false),
        None => (urls[0].clone(), false),
    }
}

/// What processing a job decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not due, or nothing to do.
    Idle,
    /// Vetoed by the `renewing` event.
    Vetoed,
    Renewed,
    Failed,
    /// Stopped because the process is shutting down: no error is counted
    /// and the staged order resumes on the next run.
    Cancelled,
}

/// Processes the job of one MD (§3.3). Returns what happened; the job's
/// `next_run` says when it wants to run again (0 = at the regular check).
pub fn process(
    ctx: &JobCtx<'_>,
    notify: &mut dyn Notify,
    now: Micros,
    notes: &mut Vec<Note>,
) -> Result<(Outcome, Job), String> {
    process_leased(ctx, notify, now, notes, None)
}

/// [`process`], with the MD's cluster lease when this run holds it already.
fn process_leased(
    ctx: &JobCtx<'_>,
    notify: &mut dyn Notify,
    now: Micros,
    notes: &mut Vec<Note>,
    held: Option<crate::lease::Lease>,
) -> Result<(Outcome, Job), String> {
    let md = ctx.md;
    let mut job = Job::load_healing(ctx.store, Group::Staging, &md.name, notes)?;
    // job.json is written only when the job changed (as the C module): a
    // healthy or static MD has none, and shows no renewal activity.
    let loaded = job.clone();
    let save = |job: &Job| -> Result<(), String> {
        if *job != loaded {
            job.save(ctx.store, Group::Staging)?;
        }
        Ok(())
    };
    job.name = md.name.clone();
    if job.finished && !crate::reg::staged_files_present(ctx.store, md) {
        // A finished job whose staged set is gone (installed, purged, or
        // left by a crash) would block renewal forever: start over, as the
        // C module's driver does since 2.6.10.
        notes.push(Note::new(
            Level::Debug,
            format!(
                "md({}): the finished renewal job has no staged certificates (any more), starting over",
                md.name
            ),
        ));
        let log = std::mem::take(&mut job.log);
        job = Job::new(&md.name);
        job.log = log;
    }
    if let Some(r) = &ctx.requested {
        // a set staged before the request does not answer it
        if job.finished && job.last_run < r.since_micros() {
            notes.push(Note::new(
                Level::Info,
                format!(
                    "md({}): a new certificate was requested at {}; the set staged before is dropped",
                    md.name,
                    time::rfc822(r.since_micros())
                ),
            ));
            crate::reg::purge_staging(ctx.store, md);
            let log = std::mem::take(&mut job.log);
            job = Job::new(&md.name);
            job.log = log;
        }
    }
    if job.next_run > now {
        return Ok((Outcome::Idle, job));
    }
    job.next_run = 0;
    if job.finished && job.notified_renewed {
        return Ok((Outcome::Idle, job));
    }
    let mut outcome = Outcome::Idle;
    let manual = md.renew_mode == RenewMode::Manual;
    let mut renew = ctx.revoked.is_some() || ctx.requested.is_some() || ctx.renew_at <= now;
    if !manual && !job.finished && !renew {
        renew = ari_says_renew(ctx, &mut job, now, notes);
    }
    let mut lease = held;
    // the renewal, and the `renewed` event of a set staged earlier, are one
    // node's work in a cluster
    let leased_work = (!manual && !job.finished && renew)
        || (job.finished && !job.notified_renewed && job.valid_from <= now);
    if leased_work && lease.is_none() {
        if let Some(leases) = &ctx.leases {
            // one node of a cluster renews an MD at a time
            match leases.try_take(&lease_name(&md.name), now) {
                Ok(crate::lease::Take::Taken(l)) => {
                    // the job may have moved on while another node held the
                    // lease: look again, holding it now
                    let fresh = Job::load_healing(ctx.store, Group::Staging, &md.name, notes)?;
                    if fresh != loaded {
                        return process_leased(ctx, notify, now, notes, Some(l));
                    }
                    lease = Some(l);
                }
                Ok(crate::lease::Take::Busy(h)) => {
                    notes.push(Note::new(
                        Level::Info,
                        format!(
                            "{}: renewal is in the hands of cluster node {} (pid {}) since {}; \
                             looking again when its lease runs out ({})",
                            md.name,
                            h.node,
                            h.pid,
                            time::rfc822(h.since_micros()),
                            time::rfc822(h.expires_micros())
                        ),
                    ));
                    // job.json belongs to the holder: written by it alone
                    let mut j = loaded.clone();
                    j.next_run = (h.expires_micros() + crate::lease::SKEW + time::USEC_PER_SEC)
                        .max(now + time::USEC_PER_SEC);
                    return Ok((Outcome::Idle, j));
                }
                Err(e) => {
                    return Err(format!(
                        "cannot take the cluster lease of {} in {}: {e}",
                        md.name,
                        ctx.store.root().join(crate::lease::DIR).display()
                    ));
                }
            }
        }
    }
    if !manual && !job.finished && renew {
        if let Some(r) = &ctx.requested {
            notes.push(Note::new(
                Level::Notice,
                format!(
                    "md({}): renewing now as requested at {}{}",
                    md.name,
                    time::rfc822(r.since_micros()),
                    r.reason
                        .as_ref()
                        .map(|x| format!(" ({x})"))
                        .unwrap_or_default()
                ),
            ));
        }
        notes.push(Note::new(
            Level::Debug,
            if ctx.revoked == Some(RevokedBy::Ocsp) {
                format!(
                    "AH10500: md({}): need to renew, OCSP reports revoked certificate(s)",
                    md.name
                )
            } else if ctx.revoked == Some(RevokedBy::Crl) {
                format!(
                    "md({}): need to renew, the issuer's CRL lists certificate(s) as revoked",
                    md.name
                )
            } else {
                format!("AH10512: md({}): need to renew now", md.name)
            },
        ));
        if let Err(e) = fire(&mut job, notify, &Event::Renewing, now, notes) {
            notes.push(Note::new(Level::Info, format!("AH10060: {}: event-handler for 'renewing' returned {e}, preventing renewal to proceed.", md.name)));
            save(&job)?;
            return Ok((Outcome::Vetoed, job));
        }
        outcome = match &lease {
            Some(l) => crate::shutdown::with_abandon(l.lost_flag(), || {
                run(ctx, &mut job, notify, now, notes)
            }),
            None => run(ctx, &mut job, notify, now, notes),
        };
        if outcome == Outcome::Cancelled {
            return Ok((outcome, job));
        }
        if let (Outcome::Renewed, Some(r)) = (&outcome, &ctx.requested) {
            crate::request::clear(ctx.store, &md.name, r);
        }
    } else if job.finished && !job.notified_renewed && job.valid_from <= now {
        // staged earlier, activation time has come: tell the admin now
        notify_renewed(&mut job, notify, now, ctx, notes);
    }
    if !job.finished {
        if let Some(w) = ctx.warn_at {
            if ctx.complete && w <= now {
                if let Err(e) = fire(&mut job, notify, &Event::Expiring, now, notes) {
                    job.errors += 1;
                    job.next_run =
                        now + backoff(job.errors, ctx.global.retry_delay, false, rand_byte());
                    notes.push(Note::new(Level::Error, e));
                }
            }
        }
    }
    save(&job)?;
    Ok((outcome, job))
}

/// The cluster lease of an MD's renewal.
pub fn lease_name(md: &str) -> String {
    format!("md@{md}")
}

/// An HTTP client for the MD's CA: CA file and proxy, per MD or global.
fn ca_client(ctx: &JobCtx<'_>) -> Client {
    let md = ctx.md;
    let mut http = Client::new(ctx.user_agent.clone());
    http.ca_file = md.ca_certs.clone().or_else(|| ctx.global.ca_certs.clone());
    http.proxy = md
        .proxy_url
        .clone()
        .or_else(|| ctx.global.proxy_url.clone());
    http.proxy_ca_file = md
        .proxy_ca_certs
        .clone()
        .or_else(|| ctx.global.proxy_ca_certs.clone());
    http
}

/// ACME Renewal Information (§4.9): whether the CA advises renewing now.
/// A time within the next 24 hours becomes the job's next run.
fn ari_says_renew(ctx: &JobCtx<'_>, job: &mut Job, now: Micros, notes: &mut Vec<Note>) -> bool {
    let md = ctx.md;
    let until = time::print_duration(ctx.renew_at - now, true);
    let not_yet = |notes: &mut Vec<Note>, why: &str| {
        notes.push(Note::new(
            Level::Debug,
            format!(
                "AH10514: md({}): {why}up for configured renewal in {until}",
                md.name
            ),
        ));
        false
    };
    if !md.ari || !md.cert_files.is_empty() || ctx.certs.is_empty() {
        return not_yet(notes, "");
    }
    notes.push(Note::new(
        Level::Debug,
        format!("AH10513: md({}): ARI is enabled", md.name),
    ));
    let Some((at, explanation)) = ari_time(ctx, notes) else {
        return not_yet(notes, "no ARI available, ");
    };
    let see = explanation
        .as_ref()
        .map(|u| format!(", for explanation see {u}"))
        .unwrap_or_default();
    if at > ctx.renew_at {
        not_yet(notes, "")
    } else if at > now {
        notes.push(Note::new(
            Level::Notice,
            format!(
                "AH10515: md({}): CA advises renew via ARI at {}{see}",
                md.name,
                time::rfc822(at)
            ),
        ));
        // the job comes back at the ARI time when the regular check would
        // come later (within a day, as the C module, or MDCheckInterval)
        if at - now < time::from_secs(time::SECS_PER_DAY).max(ctx.global.check_interval) {
            job.next_run = at;
        }
        false
    } else {
        notes.push(Note::new(
            Level::Notice,
            format!(
                "AH10517: md({}): CA advises renew via ARI now{see}",
                md.name
            ),
        ));
        if let Some(u) = explanation {
            job.add_log(
                now,
                "ari-renewal",
                None,
                Some(format!(
                    "Renewal triggered by CA via ARI, explanation at {u}"
                )),
            );
        }
        true
    }
}

/// The MD's ARI time: for each certificate `start + (end − start)·(c − 128)/256`
/// with a random byte `c`; the earliest over the certificates, with its
/// explanation URL. None without ARI at the first CA or without answers.
fn ari_time(ctx: &JobCtx<'_>, notes: &mut Vec<Note>) -> Option<(Micros, Option<String>)> {
    let md = ctx.md;
    let ca = md.ca_urls.first()?;
    let http = ca_client(ctx);
    let dir = http
        .get(ca)
        .ok()
        .filter(|r| r.status == 200)
        .and_then(|r| crate::acme::json_body(&r))?;
    let base = dir
        .get("renewalInfo")?
        .as_str()?
        .trim_end_matches('/')
        .to_string();
    let mut best: Option<(Micros, Option<String>)> = None;
    for (_, cert) in &ctx.certs {
        let Some(id) = crate::crypto::ari_cert_id(cert) else {
            continue; // no AKI key id
        };
        let url = format!("{base}/{id}");
        let j = match http.get(&url) {
            Ok(r) if r.status == 200 => crate::acme::json_body(&r),
            Ok(r) => {
                notes.push(Note::new(
                    Level::Warn,
                    format!(
                        "md({}): ARI request {url} answered HTTP {}",
                        md.name, r.status
                    ),
                ));
                None
            }
            Err(e) => {
                notes.push(Note::new(
                    Level::Warn,
                    format!("md({}): ARI request {url} failed: {e}", md.name),
                ));
                None
            }
        };
        let Some(j) = j else { continue };
        let w = j.get("suggestedWindow");
        let t = |k: &str| {
            w.and_then(|w| w.get(k))
                .and_then(serde_json::Value::as_str)
                .and_then(time::parse_rfc3339)
        };
        let window = match (t("start"), t("end")) {
            (Some(start), Some(end)) if end >= start => Ok((start, end)),
            (Some(_), Some(_)) => Err("an inverted window"),
            _ => Err("no valid suggestedWindow"),
        };
        let (start, end) = match window {
            Ok(w) => w,
            Err(why) => {
                notes.push(Note::new(
                    Level::Warn,
                    format!("md({}): ARI answer of {url} has {why}, ignored", md.name),
                ));
                continue;
            }
        };
        let c = i64::from(rand_byte());
        let at = start + (end - start) / 256 * (c - 128);
        let expl = j
            .get("explanationURL")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string);
        if best.as_ref().is_none_or(|(b, _)| at < *b) {
            best = Some((at, expl));
        }
    }
    best
}

fn notify_renewed(
    job: &mut Job,
    notify: &mut dyn Notify,
    now: Micros,
    ctx: &JobCtx<'_>,
    notes: &mut Vec<Note>,
) {
    match fire(job, notify, &Event::Renewed, now, notes) {
        Ok(()) => {
            job.notified = true;
            job.notified_renewed = true;
        }
        Err(e) => {
            job.errors += 1;
            job.next_run = now + backoff(job.errors, ctx.global.retry_delay, false, rand_byte());
            notes.push(Note::new(Level::Error, e));
        }
    }
}

fn run(
    ctx: &JobCtx<'_>,
    job: &mut Job,
    notify: &mut dyn Notify,
    now: Micros,
    notes: &mut Vec<Note>,
) -> Outcome {
    let md = ctx.md;
    job.last_run = now;
    job.add_log(now, "starting", None, None);
    let result: Result<i64, AcmeError> = (|| {
        if crate::tailscale::is_tailscale(md) {
            let mut progress = ProgressToJob {
                job,
                notify,
                notes,
                last: None,
            };
            progress.progress(&format!(
                "Fetching the certificate of {} from tailscaled",
                md.name
            ));
            return crate::tailscale::fetch(ctx.store, md, &ctx.user_agent, &ctx.run_user);
        }
        let types = ctx
            .challenges
            .clone()
            .map_err(|e| AcmeError::new(Kind::General, e))?;
        let (ca_url, failover) = pick_ca(ctx, job.errors);
        if failover {
            notes.push(Note::new(
                Level::Info,
                format!("{}: failing over to CA {ca_url}", md.name),
            ));
            crate::reg::purge_staging(ctx.store, md);
        }
        // Record the CA of this run first: the next run fails over from it
        // even when this one cannot reach it at all.
        let mut staged_md = md.clone();
        staged_md.found.ca_url = Some(ca_url.clone());
        ctx.store
            .save_json(Group::Staging, &md.name, "md.json", &staged_md.to_json())
            .map_err(|e| AcmeError::new(Kind::General, e.msg))?;
        let replaced = job.ari_replaced.clone();
        let mut progress = ProgressToJob {
            job,
            notify,
            notes,
            last: None,
        };
        progress.progress(&format!(
            "Contacting ACME server for {} at {ca_url}",
            md.name
        ));
        let mut acme = Acme::connect(ca_client(ctx), &ca_url)?;
        let mut env = RunEnv {
            store: ctx.store,
            events: &mut progress,
            challenges: ChallengeEnv {
                types,
                dns01_cmd: ctx.global.dns01_cmd.clone(),
                dns01_version: ctx.global.dns01_version,
                tls_alpn_domains: Some(md.found.acme_tls_1_domains.clone()),
                preflight: ctx
                    .global
                    .challenge_preflight
                    .then(|| crate::preflight::Env {
                        local_80: ctx.global.local_80,
                        local_443: ctx.global.local_443,
                        listeners: ctx.global.listeners.clone(),
                    }),
            },
            notes: Vec::new(),
            replaced,
            current: ctx.certs.clone(),
            leases: ctx.leases.clone(),
        };
        let r = order::stage(&mut acme, md, &mut env);
        let more = std::mem::take(&mut env.notes);
        let replaced = std::mem::take(&mut env.replaced);
        drop(env);
        progress.notes.extend(more);
        progress.job.ari_replaced = replaced;
        r.map(|staged| staged.valid_from)
    })();
    match result {
        Ok(valid_from) => {
            // judged against the time the run ends, not the one it started
            // at: a certificate issued during the run is valid by now
            let now = now.max(time::now());
            // a complete staged set opens its group, as in the C module
            if let Err(e) = ctx.store.open_group(Group::Staging) {
                notes.push(Note::new(Level::Warn, e.msg));
            }
            // ready when the newest certificate is valid; a live MD waits
            // MDActivationDelay more (§4.11)
            let mut ready = if valid_from > 0 { valid_from } else { now };
            if ctx.complete && ctx.global.activation_delay != 0 {
                ready += ctx.global.activation_delay;
            }
            job.finished = true;
            job.valid_from = ready;
            job.errors = 0;
            let detail = if ready > now {
                format!(
                    "The certificate for the managed domain has been renewed successfully and can be used from {} on.",
                    time::rfc822(ready)
                )
            } else {
                format!(
                    "The certificate for the managed domain has been renewed successfully and can be used (valid since {}). A graceful server restart now is recommended.",
                    time::rfc822(ready)
                )
            };
            // as the C module: the success text goes to the job log, `last`
            // keeps only status and valid-from
            job.last = Some(JobResult {
                status: 0,
                valid_from: ready,
                ..Default::default()
            });
            job.add_log(now, "finished", None, Some(detail));
            if ready > now {
                job.next_run = ready;
            } else {
                let _ = job.save(ctx.store, Group::Staging);
                notify_renewed(job, notify, now, ctx, notes);
            }
            Outcome::Renewed
        }
        Err(e) if crate::shutdown::abandoned() => {
            notes.push(Note::new(
                Level::Warn,
                format!(
                    "md({}): renewal stopped: this node's cluster lease ran out and another node took the renewal over ({})",
                    md.name, e.detail
                ),
            ));
            Outcome::Cancelled
        }
        Err(e) if crate::shutdown::requested() => {
            notes.push(Note::new(
                Level::Debug,
                format!(
                    "md({}): renewal stopped, the server is shutting down ({}); it resumes at the next start",
                    md.name, e.detail
                ),
            ));
            Outcome::Cancelled
        }
        Err(e) => {
            job.errors += 1;
            job.next_run = now
                + backoff(
                    job.errors,
                    ctx.global.retry_delay,
                    e.retry() == crate::acme::Retry::NextDay,
                    rand_byte(),
                );
            if ctx.md.must_staple && job.errors == 1 {
                notes.push(Note::new(
                    Level::Warn,
                    format!(
                        "md[{}]: the renewal with MDMustStaple on failed ({e}). A CA that runs no OCSP responder (Let's Encrypt since 2025) rejects must-staple orders, and clients reject must-staple certificates without a stapled response: consider MDMustStaple off",
                        ctx.md.name
                    ),
                ));
            }
            // what the run was doing when it failed (as the C module keeps it)
            let activity = job
                .last_log("progress")
                .filter(|l| l.when >= now)
                .and_then(|l| l.detail.clone());
            job.last = Some(JobResult {
                status: e.status(),
                problem: e.problem.clone(),
                detail: Some(e.detail.clone()),
                activity,
                valid_from: 0,
                subproblems: e.subproblems.as_deref().cloned(),
            });
            job.add_log(
                now,
                "renewal-error",
                e.problem.clone(),
                Some(e.detail.clone()),
            );
            notes.push(Note::new(
                Level::Error,
                format!("AH10056: processing {}: {}", md.name, e.detail),
            ));
            notes.push(Note::new(
                Level::Info,
                format!(
                    "AH10057: {}: encountered error for the {}. time, next run in {}",
                    md.name,
                    job.errors,
                    time::print_duration(job.next_run - now, false)
                ),
            ));
            let _ = fire(job, notify, &Event::Errored, now, notes);
            Outcome::Failed
        }
    }
}

/// Next watchdog run (§3.1): `interval` ± 50% jitter, or earlier if a job
/// asked for it.
pub fn next_interval(
    check_interval: Micros,
    job_next_runs: &[Micros],
    now: Micros,
    rand: u8,
) -> Micros {
    let base = check_interval + check_interval * (i64::from(rand) - 128) / 256;
    let earliest = job_next_runs
        .iter()
        .copied()
        .filter(|t| *t > 0)
        .map(|t| t - now)
        .min();
    match earliest {
        Some(d) if d < base => d.max(time::USEC_PER_SEC / 10),
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_cache_reads_a_job_again_only_when_it_changed() {
        let d = std::env::temp_dir().join(format!("md-jobcache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let store = Store::open(&d, None, &mut Vec::new()).unwrap();
        let cache = JobCache::default();
        assert!(cache.get(&store, "a.org").is_none());
        let mut job = Job {
            name: "a.org".into(),
            errors: 1,
            ..Job::default()
        };
        job.save(&store, Group::Staging).unwrap();
        let first = cache.get(&store, "a.org").unwrap();
        assert_eq!(first.errors, 1);
        let again = cache.get(&store, "a.org").unwrap();
        assert!(Arc::ptr_eq(&first, &again), "unchanged: not parsed again");
        job.errors = 2;
        job.save(&store, Group::Staging).unwrap();
        assert_eq!(cache.get(&store, "a.org").unwrap().errors, 2);
        store.remove(Group::Staging, "a.org", "job.json");
        assert!(cache.get(&store, "a.org").is_none());
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_renewal_another_node_holds_waits_for_its_lease() {
        use crate::lease::{Leases, Take, SKEW};
        let d = std::env::temp_dir().join(format!("md-joblease-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let store = Store::open(&d, None, &mut Vec::new()).unwrap();
        let global = Global {
            cluster_node: Some("me".into()),
            cluster_lease: time::from_secs(60),
            ..Global::default()
        };
        let other = Global {
            cluster_node: Some("other".into()),
            ..global.clone()
        };
        let leases = Leases::of(&store, &global).unwrap();
        leases.prepare(None).unwrap();
        let now = time::now();
        let Take::Taken(held) = Leases::of(&store, &other)
            .unwrap()
            .try_take(&lease_name("a.org"), now)
            .unwrap()
        else {
            panic!("free lease not taken")
        };
        let md = Md::from_def(
            &crate::config::MdDef::new(vec!["a.org".into()]),
            &crate::config::Settings::default(),
            None,
        );
        let ctx = JobCtx {
            store: &store,
            md: &md,
            global: &global,
            renew_at: now - 1,
            warn_at: None,
            complete: false,
            challenges: Ok(vec!["http-01".into()]),
            user_agent: "test".into(),
            run_user: "nobody".into(),
            revoked: None,
            certs: Vec::new(),
            leases: Some(leases),
            requested: None,
        };
        let mut notify = CommandNotify {
            message_cmd: None,
            notify_cmd: None,
            notes: Vec::new(),
        };
        let mut notes = Vec::new();
        let (outcome, job) = process(&ctx, &mut notify, now, &mut notes).unwrap();
        assert!(outcome == Outcome::Idle);
        // back when the holder's lease has run out, and not a moment later
        assert_eq!(
            job.next_run,
            held.holder().expires_micros() + SKEW + time::USEC_PER_SEC
        );
        // the job belongs to the holder: nothing written, no event
        assert!(!store.path(Group::Staging, "a.org", "job.json").exists());
        assert!(notes
            .iter()
            .any(|n| n.msg.contains("in the hands of cluster node other")));
        drop(held);
        let _ = std::fs::remove_dir_all(d);
    }

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

    #[test]
    fn job_json_roundtrip() {
        let mut j = Job::new("a.org");
        j.errors = 2;
        j.next_run = time::from_secs(1_795_950_085);
        j.last = Some(JobResult {
            status: 111,
            detail: Some("x".into()),
            ..Default::default()
        });
        j.add_log(
            time::from_secs(1_795_950_072),
            "renewal-error",
            None,
            Some("x".into()),
        );
        j.add_log(
            time::from_secs(1_795_950_073),
            "message-renewing",
            None,
            None,
        );
        let v = j.to_json();
        assert_eq!(v["next-run"], "Sun, 29 Nov 2026 11:01:25 GMT");
        assert_eq!(v["last"]["status-description"], "Connection refused");
        assert_eq!(v["log"]["entries"][0]["type"], "message-renewing");
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "name",
                "finished",
                "notified",
                "notified-renewed",
                "next-run",
                "errors",
                "last",
                "log"
            ]
        );
        assert_eq!(Job::from_json(&v), j);
        let last: Vec<&String> = v["last"].as_object().unwrap().keys().collect();
        assert_eq!(last, ["status", "status-description", "detail"]);
        // another writer's file: a wrong type is read as the default, the
        // rest of the job is kept
        let odd = Job::from_json(&json!({
            "name": "a.org", "errors": "three", "finished": true,
            "next-run": 5, "last": {"status": "x", "detail": "kept"},
            "log": {"entries": [{"when": "bad", "type": "progress"}, 7]}
        }));
        assert_eq!((odd.errors, odd.finished, odd.next_run), (0, true, 0));
        assert_eq!(odd.last.unwrap().detail.as_deref(), Some("kept"));
        // the entry that is not one is left out
        assert_eq!(odd.log.len(), 1);
        assert_eq!((odd.log[0].when, odd.log[0].kind.as_str()), (0, "progress"));
        for _ in 0..200 {
            j.add_log(0, "progress", None, None);
        }
        assert_eq!(j.log.len(), MAX_LOG_ENTRIES);
    }

    struct Rec(Vec<String>, bool);
    impl Notify for Rec {
        fn message(&mut self, event: &str, md: &str) -> Result<(), String> {
            self.0.push(format!("{event} {md}"));
            if self.1 {
                Err("MDMessageCmd /x failed with exit code 1.".into())
            } else {
                Ok(())
            }
        }
        fn notify(&mut self, md: &str) -> Result<(), String> {
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
                ctype: "http-01".into(),
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
                ctype: "http-01".into(),
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
        assert_eq!(job.log[0].kind, "message-error");
        assert_eq!(job.log[0].status.as_deref(), Some("expiring"));
    }

    #[test]
    fn commands_run_without_shell() {
        let dir = std::env::temp_dir().join(format!("md-cmd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
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
        assert!(e.ends_with("failed with exit code 1."), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn intervals() {
        let h12 = time::from_secs(12 * 3600);
        assert_eq!(next_interval(h12, &[], 0, 128), h12);
        assert_eq!(next_interval(h12, &[], 0, 0), h12 / 2);
        assert_eq!(
            next_interval(h12, &[0, time::from_secs(30)], 0, 128),
            time::from_secs(30)
        );
    }
}
