//! `job.json` (spec §5.5): the job of an MD's renewal (or of its OCSP
//! responses), with the C module's field names, order and RFC 822 times,
//! and the cache the status pages read it through.

use crate::acme::status;
use crate::base::log::Notes;
use crate::base::time::Micros;
use crate::store::{Group, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub const MAX_LOG_ENTRIES: usize = 128;

/// `job.json` fields as the C module writes them: times in RFC 822 (absent
/// when 0), values of the wrong type read as their default, so that a
/// file from another writer never fails the whole job.
mod wire {
    use crate::base::time::{self, Micros};
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value;

    pub(crate) use crate::base::util::lenient;

    /// A list: the items that do not read are left out, the others kept.
    pub(crate) fn lenient_items<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
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

    pub(crate) fn is_zero(t: &Micros) -> bool {
        *t == 0
    }

    /// A time as RFC 822 text; unreadable or missing: 0.
    pub mod rfc822 {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(t: &Micros, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&time::rfc822(*t))
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Micros, D::Error> {
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

/// What a job log entry records (its `type` in job.json, as the C module
/// spells it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogKind {
    /// A renewal run began.
    Starting,
    /// What the run is doing now.
    Progress,
    /// A certificate set was staged.
    Finished,
    /// A run failed (`status` the problem type, `detail` why).
    RenewalError,
    /// The `renewed` notification of httpd failed (AH10108).
    NotifyError,
    /// `MDMessageCmd` failed (`status` the event).
    MessageError,
    /// `MDMessageCmd` was told of an event (its name).
    Message(String),
    /// The CA asked for a renewal through ARI.
    AriRenewal,
    /// An OCSP response was renewed.
    OcspRenewed,
    /// Renewing an OCSP response failed.
    OcspError,
    /// Another writer's type, kept as spelled.
    Other(String),
}

impl LogKind {
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        match self {
            LogKind::Starting => "starting".into(),
            LogKind::Progress => "progress".into(),
            LogKind::Finished => "finished".into(),
            LogKind::RenewalError => "renewal-error".into(),
            LogKind::NotifyError => "notify-error".into(),
            LogKind::MessageError => "message-error".into(),
            LogKind::Message(event) => format!("message-{event}").into(),
            LogKind::AriRenewal => "ari-renewal".into(),
            LogKind::OcspRenewed => "ocsp-renewed".into(),
            LogKind::OcspError => "ocsp-error".into(),
            LogKind::Other(s) => s.as_str().into(),
        }
    }
}

impl From<&str> for LogKind {
    fn from(s: &str) -> Self {
        match s {
            "starting" => LogKind::Starting,
            "progress" => LogKind::Progress,
            "finished" => LogKind::Finished,
            "renewal-error" => LogKind::RenewalError,
            "notify-error" => LogKind::NotifyError,
            "message-error" => LogKind::MessageError,
            "ari-renewal" => LogKind::AriRenewal,
            "ocsp-renewed" => LogKind::OcspRenewed,
            "ocsp-error" => LogKind::OcspError,
            other => match other.strip_prefix("message-") {
                Some(event) => LogKind::Message(event.to_string()),
                None => LogKind::Other(other.to_string()),
            },
        }
    }
}

impl Default for LogKind {
    fn default() -> Self {
        LogKind::Other(String::new())
    }
}

impl Serialize for LogKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(String::deserialize(d)?.as_str().into())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    #[serde(with = "wire::rfc822", default)]
    pub when: Micros,
    #[serde(rename = "type", default, deserialize_with = "wire::lenient")]
    pub kind: LogKind,
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
type Cached = (crate::store::Stamp, Option<Arc<Job>>);

impl JobCache {
    /// The staging job of `md` (None: none, or unreadable).
    pub fn get(&self, store: &Store, md: &str) -> Option<Arc<Job>> {
        let stamp = store.stat(Group::Staging, md, "job.json").map(|s| s.stamp);
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

    pub(crate) fn to_json(&self) -> Value {
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
    pub fn load(store: &Store, group: Group, name: &str) -> Result<Job, StoreError> {
        Ok(match store.load_json(group, name, "job.json")? {
            Some(j) => Job::from_json(&j),
            None => Job::new(name),
        })
    }

    /// [`Job::load`] for the job's one writer: a broken file is set aside
    /// (reported in `notes`) and a fresh job takes its place.
    pub fn load_healing(
        store: &Store,
        group: Group,
        name: &str,
        notes: &mut dyn Notes,
    ) -> Result<Job, StoreError> {
        Ok(
            match store.load_json_healing(group, name, "job.json", notes)? {
                Some(j) => Job::from_json(&j),
                None => Job::new(name),
            },
        )
    }

    pub fn save(&self, store: &Store, group: Group) -> Result<(), StoreError> {
        store.save_json(group, &self.name, "job.json", &self.to_json())
    }

    pub(crate) fn add_log(
        &mut self,
        now: Micros,
        kind: LogKind,
        status: Option<String>,
        detail: Option<String>,
    ) {
        self.log.insert(
            0,
            LogEntry {
                when: now,
                kind,
                status,
                detail,
            },
        );
        self.log.truncate(MAX_LOG_ENTRIES);
    }

    /// The newest log entry of a kind.
    pub(crate) fn last_log(&self, kind: &LogKind) -> Option<&LogEntry> {
        self.log.iter().find(|e| e.kind == *kind)
    }
}

/// What became of an operator's renewal request made at `since`, as the
/// MD's staging job tells: `None` while it runs (or was not looked at yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// A new set is staged and served (hot activation) from `valid_from`.
    Served { valid_from: Micros },
    /// The run after the request failed; httpd tries again at `next_run`.
    Failed { problem: String, next_run: Micros },
}

impl Job {
    /// What became of a renewal request made at `since` (µs).
    pub fn request_outcome(&self, since: Micros, now: Micros) -> Option<RequestOutcome> {
        if self.finished && self.valid_from >= since - crate::base::time::USEC_PER_SEC {
            if self.valid_from <= now {
                return Some(RequestOutcome::Served {
                    valid_from: self.valid_from,
                });
            }
            return None;
        }
        if self.errors > 0 && self.last_run >= since {
            let problem = self
                .last
                .as_ref()
                .map(|r| {
                    [r.problem.as_deref(), r.detail.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(": ")
                })
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "the renewal failed".into());
            return Some(RequestOutcome::Failed {
                problem,
                next_run: self.next_run,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::time;

    #[test]
    fn the_job_cache_reads_a_job_again_only_when_it_changed() {
        let (_d, store) = crate::testutil::tmpstore("jobcache");
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
            LogKind::RenewalError,
            None,
            Some("x".into()),
        );
        j.add_log(
            time::from_secs(1_795_950_073),
            LogKind::Message("renewing".into()),
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
        assert_eq!((odd.log[0].when, &odd.log[0].kind), (0, &LogKind::Progress));
        for k in [
            "message-renewed",
            "message-error",
            "starting",
            "whatever-else",
        ] {
            assert_eq!(LogKind::from(k).as_str(), k);
        }
        assert_eq!(
            LogKind::from("message-renewed"),
            LogKind::Message("renewed".into())
        );
        for _ in 0..200 {
            j.add_log(0, LogKind::Progress, None, None);
        }
        assert_eq!(j.log.len(), MAX_LOG_ENTRIES);
    }
}
