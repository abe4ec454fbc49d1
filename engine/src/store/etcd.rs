//! A small etcd v3 client over etcd's JSON gateway (`/v3/kv/range`,
//! `/v3/kv/txn`, `/v3/lease/grant`, `/v3/watch`, …) on the libcurl the
//! module already links (issue 27): no new dependency, no runtime, no
//! thread before httpd forks. Keys and values are bytes (base64 in JSON),
//! revisions and lease ids 64-bit integers (strings in JSON).
//!
//! Requests go to the first endpoint that answers; one that fails to
//! connect is left for the next, so one member down costs one connect
//! timeout once, not one per request.

use crate::base::http::{Client, HttpError};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How to reach an etcd cluster (`MDStoreBackend etcd …` and its options).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `http(s)://host:port` of the members.
    pub endpoints: Vec<String>,
    /// CA file to verify the members with (`MDStoreEtcdCA`).
    pub ca_file: Option<String>,
    /// Client certificate and key, PEM (`MDStoreEtcdClientCert`).
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
    /// User and password (`MDStoreEtcdUser`).
    pub user: Option<(String, String)>,
}

/// Why etcd did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EtcdError {
    /// No member could be reached (each member's error).
    Unreachable(String),
    /// A member answered with an error (gRPC code and message).
    Refused { code: i64, message: String },
    /// An answer that is not what the API says.
    Garbled(String),
}

impl std::fmt::Display for EtcdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EtcdError::Unreachable(m) => write!(f, "etcd cannot be reached ({m})"),
            EtcdError::Refused { code, message } => {
                write!(f, "etcd refused the request: {message} (code {code})")
            }
            EtcdError::Garbled(m) => write!(f, "etcd answered what it should not: {m}"),
        }
    }
}

/// One key's value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    /// Attached to this lease (0: none).
    pub lease: i64,
}

/// One change a watch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put(Kv),
    Delete { key: Vec<u8>, mod_revision: i64 },
}

/// What a watch tells: changes, or that its start was compacted away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchNews {
    Events { revision: i64, events: Vec<Event> },
    Compacted(i64),
}

/// One operation of a transaction.
#[derive(Debug, Clone)]
pub enum Op {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: i64,
    },
    Delete {
        key: Vec<u8>,
        range_end: Option<Vec<u8>>,
    },
    Range {
        key: Vec<u8>,
    },
}

/// A condition of a transaction.
#[derive(Debug, Clone)]
pub enum Cmp {
    /// The key (or, with `range_end`, every key of the range) was created at
    /// this revision; 0: does not exist.
    Created(Vec<u8>, Option<Vec<u8>>, i64),
    /// The key was last modified at this revision.
    Modified(Vec<u8>, i64),
}

/// The end of the range of all keys starting with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn b64(d: &[u8]) -> String {
    openssl::base64::encode_block(d)
}

fn unb64(v: Option<&Value>) -> Result<Vec<u8>, EtcdError> {
    match v.and_then(Value::as_str) {
        None => Ok(Vec::new()),
        Some(s) => openssl::base64::decode_block(s)
            .map_err(|_| EtcdError::Garbled(format!("bad base64 {s:?}"))),
    }
}

/// An int64 of the gateway (a string; absent means 0).
fn int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn kv_of(j: &Value) -> Result<Kv, EtcdError> {
    Ok(Kv {
        key: unb64(j.get("key"))?,
        value: unb64(j.get("value"))?,
        create_revision: int(j.get("create_revision")),
        mod_revision: int(j.get("mod_revision")),
        lease: int(j.get("lease")),
    })
}

/// The keys and values of a range answer.
fn kvs_of(j: &Value) -> Result<Vec<Kv>, EtcdError> {
    Ok(j.get("kvs")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(kv_of).collect::<Result<Vec<_>, _>>())
        .transpose()?
        .unwrap_or_default())
}

fn op_json(op: &Op) -> Value {
    match op {
        Op::Put { key, value, lease } => {
            let mut p = json!({"key": b64(key), "value": b64(value)});
            if *lease != 0 {
                p["lease"] = json!(lease.to_string());
            }
            json!({ "request_put": p })
        }
        Op::Delete { key, range_end } => {
            let mut d = json!({"key": b64(key)});
            if let Some(e) = range_end {
                d["range_end"] = json!(b64(e));
            }
            json!({ "request_delete_range": d })
        }
        Op::Range { key } => json!({"request_range": {"key": b64(key)}}),
    }
}

fn cmp_json(c: &Cmp) -> Value {
    match c {
        Cmp::Created(k, end, rev) => {
            let mut j = json!({"key": b64(k), "target": "CREATE", "result": "EQUAL",
                "create_revision": rev.to_string()});
            if let Some(e) = end {
                j["range_end"] = json!(b64(e));
            }
            j
        }
        Cmp::Modified(k, rev) => json!({"key": b64(k), "target": "MOD", "result": "EQUAL",
            "mod_revision": rev.to_string()}),
    }
}

/// A connection to an etcd cluster.
#[derive(Debug)]
pub struct Etcd {
    conf: EtcdConfig,
    http: Client,
    /// The member that answered last.
    current: AtomicUsize,
    /// The auth token when a user is configured.
    token: Mutex<Option<String>>,
    /// No member answered: until then, requests fail at once (a server
    /// starting or renewing while etcd is away does not wait for every
    /// member's connect timeout on every request), with that error.
    down: Mutex<Option<(std::time::Instant, String)>>,
    /// Since when no member answered, and why (cleared by an answer).
    trouble: Mutex<Option<(crate::base::time::Micros, String)>>,
}

/// How long requests fail at once after no member answered.
const DOWN_FOR: Duration = Duration::from_secs(2);

/// gRPC's UNAVAILABLE: etcd's answer while it has no leader ("etcdserver:
/// no leader"), or lost it while answering ("etcdserver: leader changed").
const UNAVAILABLE: i64 = 14;

/// Pauses before asking again while etcd has no leader: 3 s in all, longer
/// than an election of a healthy cluster takes.
const ELECTION_PAUSES_MS: [u64; 6] = [50, 100, 250, 500, 800, 1300];

/// Whether a request etcd turned away as UNAVAILABLE can be sent again
/// without the risk of doing it twice: reads and lease keep-alives always;
/// writes only when the member had no leader to propose them to (after
/// "leader changed" a write may have been applied).
fn again_is_safe(path: &str, message: &str) -> bool {
    matches!(path, "/v3/kv/range" | "/v3/lease/keepalive") || message.contains("no leader")
}

impl Etcd {
    pub fn new(conf: EtcdConfig) -> Etcd {
        let mut http = Client::new(crate::MODULE_NAME);
        http.ca_file = conf.ca_file.clone();
        http.client_cert = conf.client_cert.clone();
        http.body_limit = 256 * 1024 * 1024;
        http.timeout = Duration::from_secs(10);
        http.connect_timeout = Duration::from_secs(2);
        Etcd {
            conf,
            http,
            current: AtomicUsize::new(0),
            token: Mutex::new(None),
            down: Mutex::new(None),
            trouble: Mutex::new(None),
        }
    }

    /// How it reaches etcd.
    pub fn config(&self) -> &EtcdConfig {
        &self.conf
    }

    /// The endpoints, for messages.
    pub fn endpoints(&self) -> String {
        self.conf.endpoints.join(",")
    }

    fn authenticate(&self, base: &str) -> Result<Option<String>, EtcdError> {
        let Some((user, pass)) = &self.conf.user else {
            return Ok(None);
        };
        if let Some(t) = self.token.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Ok(Some(t));
        }
        let body = json!({"name": user, "password": pass}).to_string();
        let r = self
            .http
            .request(
                "POST",
                &format!("{base}/v3/auth/authenticate"),
                Some((body.as_bytes(), "application/json")),
            )
            .map_err(|e| EtcdError::Unreachable(format!("{base}: {e}")))?;
        let j = answer(r.status, &r.body)?;
        let t = j
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| EtcdError::Garbled("authenticate without a token".into()))?
            .to_string();
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = Some(t.clone());
        Ok(Some(t))
    }

    /// POSTs `body` to `path` at the first member that answers; asks again
    /// (the next member first) while the cluster has no leader, as right
    /// after it starts or when its leader goes away, for as long as an
    /// election takes: where asking twice cannot do a thing twice (reads,
    /// keep-alives; anything the member turned away for want of a leader).
    fn call(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let mut pauses = ELECTION_PAUSES_MS.iter();
        loop {
            match self.call_once(path, body) {
                Err(EtcdError::Refused { code, message })
                    if code == UNAVAILABLE && again_is_safe(path, &message) =>
                {
                    let pause = pauses.next().copied().map(Duration::from_millis);
                    match pause {
                        Some(p) if crate::base::shutdown::sleep(p) => {
                            self.current.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => return Err(EtcdError::Refused { code, message }),
                    }
                }
                r => return r,
            }
        }
    }

    /// One round over the members: the first that answers.
    fn call_once(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        if let Some((until, why)) = &*self.down.lock().unwrap_or_else(|e| e.into_inner()) {
            if std::time::Instant::now() < *until {
                return Err(EtcdError::Unreachable(why.clone()));
            }
        }
        let n = self.conf.endpoints.len();
        let start = self.current.load(Ordering::Relaxed);
        let text = body.to_string();
        let mut errors = Vec::new();
        for i in 0..n {
            let idx = (start + i) % n;
            let base = self.conf.endpoints[idx].trim_end_matches('/');
            let mut http = self.http.clone();
            match self.authenticate(base) {
                Ok(Some(t)) => http.extra_headers.push(format!("Authorization: {t}")),
                Ok(None) => {}
                Err(EtcdError::Unreachable(m)) => {
                    errors.push(m);
                    continue;
                }
                Err(e) => return Err(e),
            }
            match http.request(
                "POST",
                &format!("{base}{path}"),
                Some((text.as_bytes(), "application/json")),
            ) {
                Ok(r) => {
                    self.current.store(idx, Ordering::Relaxed);
                    self.reached(true, "");
                    let res = answer(r.status, &r.body);
                    if let Err(EtcdError::Refused { code: 16, .. }) = res {
                        // an expired token: the next call authenticates again
                        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    }
                    return res;
                }
                Err(e) => errors.push(format!("{base}: {e}")),
            }
        }
        let why = errors.join("; ");
        *self.down.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now() + DOWN_FOR, why.clone()));
        self.reached(false, &why);
        Err(EtcdError::Unreachable(why))
    }

    /// Notes whether a member answered (`why` it did not).
    fn reached(&self, ok: bool, why: &str) {
        let mut t = self.trouble.lock().unwrap_or_else(|e| e.into_inner());
        match (ok, t.is_some()) {
            (true, true) => *t = None,
            (false, false) => *t = Some((crate::base::time::now(), why.to_string())),
            _ => {}
        }
    }

    /// Since when no member answers, and why; `None` while one does.
    pub(crate) fn trouble(&self) -> Option<(crate::base::time::Micros, String)> {
        self.trouble
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The keys from `key` to `range_end` (or `key` alone), with values
    /// unless `keys_only`; and the store's revision.
    pub(crate) fn range(
        &self,
        key: &[u8],
        range_end: Option<&[u8]>,
        keys_only: bool,
    ) -> Result<(Vec<Kv>, i64), EtcdError> {
        let mut req = json!({"key": b64(key)});
        if let Some(e) = range_end {
            req["range_end"] = json!(b64(e));
        }
        if keys_only {
            req["keys_only"] = json!(true);
        }
        let j = self.call("/v3/kv/range", &req)?;
        Ok((kvs_of(&j)?, revision(&j)))
    }

    /// The keys from `key` to `range_end` changed at revision `since` or
    /// later, with their values; and the store's revision.
    pub(crate) fn range_since(
        &self,
        key: &[u8],
        range_end: &[u8],
        since: i64,
    ) -> Result<(Vec<Kv>, i64), EtcdError> {
        let req = json!({"key": b64(key), "range_end": b64(range_end),
            "min_mod_revision": since.to_string()});
        let j = self.call("/v3/kv/range", &req)?;
        Ok((kvs_of(&j)?, revision(&j)))
    }

    /// Sets `key`; the new revision.
    pub(crate) fn put(&self, key: &[u8], value: &[u8], lease: i64) -> Result<i64, EtcdError> {
        let mut req = json!({"key": b64(key), "value": b64(value)});
        if lease != 0 {
            req["lease"] = json!(lease.to_string());
        }
        Ok(revision(&self.call("/v3/kv/put", &req)?))
    }

    /// Removes `key` (or the range to `range_end`).
    pub(crate) fn delete(&self, key: &[u8], range_end: Option<&[u8]>) -> Result<i64, EtcdError> {
        let mut req = json!({"key": b64(key)});
        if let Some(e) = range_end {
            req["range_end"] = json!(b64(e));
        }
        Ok(revision(&self.call("/v3/kv/deleterange", &req)?))
    }

    /// A transaction: `ops` when every `cmp` holds, else `otherwise`.
    /// Whether the conditions held, the new revision, and the values
    /// `Op::Range` operations read.
    pub(crate) fn txn(&self, cmp: &[Cmp], ops: &[Op], otherwise: &[Op]) -> Result<Txn, EtcdError> {
        let req = json!({
            "compare": cmp.iter().map(cmp_json).collect::<Vec<_>>(),
            "success": ops.iter().map(op_json).collect::<Vec<_>>(),
            "failure": otherwise.iter().map(op_json).collect::<Vec<_>>(),
        });
        let j = self.call("/v3/kv/txn", &req)?;
        let mut read = Vec::new();
        for r in j
            .get("responses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(kvs) = r.pointer("/response_range/kvs").and_then(Value::as_array) {
                for kv in kvs {
                    read.push(kv_of(kv)?);
                }
            }
        }
        Ok(Txn {
            succeeded: j.get("succeeded").and_then(Value::as_bool).unwrap_or(false),
            revision: revision(&j),
            read,
        })
    }

    /// A lease of `ttl` seconds, granted and expired by the cluster.
    pub(crate) fn grant(&self, ttl: i64) -> Result<i64, EtcdError> {
        let j = self.call("/v3/lease/grant", &json!({"TTL": ttl.to_string()}))?;
        match int(j.get("ID")) {
            0 => Err(EtcdError::Garbled("lease grant without an ID".into())),
            id => Ok(id),
        }
    }

    /// Keeps a lease alive for its TTL again; false when it is gone.
    pub(crate) fn keep_alive(&self, id: i64) -> Result<bool, EtcdError> {
        let j = self.call("/v3/lease/keepalive", &json!({"ID": id.to_string()}))?;
        Ok(int(j.pointer("/result/TTL")) > 0)
    }

    /// Ends a lease: its keys go at once.
    pub fn revoke(&self, id: i64) -> Result<(), EtcdError> {
        match self.call("/v3/lease/revoke", &json!({"ID": id.to_string()})) {
            // already gone (expired)
            Err(EtcdError::Refused { code: 5, .. }) => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Watches the keys under `prefix` from revision `from` on: `on_news`
    /// hears every batch of changes and ends the watch by returning false.
    /// Returns when the stream ends (an error, `max` passed, the member went
    /// away): the caller watches again from where it got.
    pub(crate) fn watch(
        &self,
        prefix: &[u8],
        from: i64,
        max: Duration,
        on_news: &mut dyn FnMut(WatchNews) -> bool,
    ) -> Result<(), EtcdError> {
        let n = self.conf.endpoints.len().max(1);
        let idx = self.current.load(Ordering::Relaxed) % n;
        let base = self.conf.endpoints[idx].trim_end_matches('/');
        let mut http = self.http.clone();
        http.timeout = max;
        http.low_speed_bytes = 0;
        if let Some(t) = self.authenticate(base)? {
            http.extra_headers.push(format!("Authorization: {t}"));
        }
        let req = json!({"create_request": {
            "key": b64(prefix), "range_end": b64(&prefix_end(prefix)),
            "start_revision": from.to_string(), "progress_notify": true}});
        let mut buf: Vec<u8> = Vec::new();
        let mut failure = None;
        let mut on_data = |data: &[u8]| -> bool {
            buf.extend_from_slice(data);
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let Ok(j) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                match watch_news(&j) {
                    Ok(Some(news)) => {
                        if !on_news(news) {
                            return false;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        failure = Some(e);
                        return false;
                    }
                }
            }
            true
        };
        let res = http.stream(
            &format!("{base}/v3/watch"),
            req.to_string().as_bytes(),
            &mut on_data,
        );
        if let Some(e) = failure {
            return Err(e);
        }
        match res {
            Ok(_) => {
                self.reached(true, "");
                Ok(())
            }
            // the time given to this watch ran out: the caller goes on
            Err(HttpError::Transport(crate::base::http::TransportKind::Timeout, _)) => Ok(()),
            Err(e) => {
                // next time, another member
                self.current.store((idx + 1) % n, Ordering::Relaxed);
                let why = format!("{base}: {e}");
                self.reached(false, &why);
                Err(EtcdError::Unreachable(why))
            }
        }
    }
}

/// What a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub succeeded: bool,
    pub revision: i64,
    pub read: Vec<Kv>,
}

fn revision(j: &Value) -> i64 {
    int(j.pointer("/header/revision"))
}

/// The JSON of an answer, or the error it carries.
fn answer(status: u32, body: &[u8]) -> Result<Value, EtcdError> {
    let j: Value = serde_json::from_slice(body).map_err(|_| {
        EtcdError::Garbled(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    })?;
    // a streamed single answer comes as {"result": …} or {"error": …}
    // {"error": {"code", "message"}} from a stream, or the error fields
    // at the top with an HTTP error status
    let err = match j.get("error") {
        Some(e @ Value::Object(_)) => Some(e.clone()),
        _ => (status != 200 && j.get("code").is_some()).then(|| j.clone()),
    };
    if let Some(e) = err {
        return Err(EtcdError::Refused {
            code: int(e.get("code")),
            message: e
                .get("message")
                .or_else(|| e.get("error"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        });
    }
    if status != 200 {
        return Err(EtcdError::Garbled(format!("HTTP {status}")));
    }
    Ok(j)
}

fn watch_news(j: &Value) -> Result<Option<WatchNews>, EtcdError> {
    if let Some(e) = j.get("error") {
        return Err(EtcdError::Refused {
            code: int(e.get("grpc_code").or_else(|| e.get("code"))),
            message: e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        });
    }
    let Some(r) = j.get("result") else {
        return Ok(None);
    };
    let compact = int(r.get("compact_revision"));
    if compact > 0 {
        return Ok(Some(WatchNews::Compacted(compact)));
    }
    let mut events = Vec::new();
    for e in r
        .get("events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let kv = e.get("kv").cloned().unwrap_or(Value::Null);
        if e.get("type").and_then(Value::as_str) == Some("DELETE") {
            events.push(Event::Delete {
                key: unb64(kv.get("key"))?,
                mod_revision: int(kv.get("mod_revision")),
            });
        } else {
            events.push(Event::Put(kv_of(&kv)?));
        }
    }
    Ok(Some(WatchNews::Events {
        revision: revision(r),
        events,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// An "etcd" on loopback that gives `answers` (HTTP status, body) to
    /// one request each, in turn; the paths it was asked, when joined.
    fn fake_etcd(
        answers: Vec<(u32, &'static str)>,
    ) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let t = std::thread::spawn(move || {
            let mut paths = Vec::new();
            for (status, body) in answers {
                let (mut c, _) = l.accept().unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let n = c.read(&mut buf).unwrap();
                    req.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&req).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|h| {
                                h.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if req.len() >= end + 4 + len || n == 0 {
                            paths.push(text.split_whitespace().nth(1).unwrap_or("").to_string());
                            break;
                        }
                    }
                }
                let resp = format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                c.write_all(resp.as_bytes()).unwrap();
            }
            paths
        });
        (url, t)
    }

    const LEADER_CHANGED: &str = r#"{"error":"etcdserver: leader changed","code":14,"message":"etcdserver: leader changed"}"#;
    const NO_LEADER: &str =
        r#"{"error":"etcdserver: no leader","code":14,"message":"etcdserver: no leader"}"#;

    #[test]
    fn asked_again_while_the_cluster_elects_a_leader_where_that_is_safe() {
        let conf = |url: &str| EtcdConfig {
            endpoints: vec![url.to_string()],
            ..Default::default()
        };
        // a read: asked again after "leader changed" and "no leader"
        let (url, t) = fake_etcd(vec![
            (503, LEADER_CHANGED),
            (503, NO_LEADER),
            (200, r#"{"header":{"revision":"5"}}"#),
        ]);
        let (kvs, rev) = Etcd::new(conf(&url)).range(b"/k", None, false).unwrap();
        assert_eq!((kvs.len(), rev), (0, 5));
        assert_eq!(t.join().unwrap().len(), 3);
        // a write the member turned away for want of a leader: again
        let (url, t) = fake_etcd(vec![
            (503, NO_LEADER),
            (200, r#"{"header":{"revision":"6"}}"#),
        ]);
        assert_eq!(Etcd::new(conf(&url)).put(b"/k", b"v", 0).unwrap(), 6);
        assert_eq!(t.join().unwrap(), ["/v3/kv/put", "/v3/kv/put"]);
        // a transaction that may have been applied when the leader changed:
        // not sent twice, the caller hears why
        let (url, t) = fake_etcd(vec![(503, LEADER_CHANGED)]);
        let e = Etcd::new(conf(&url)).txn(&[], &[], &[]).unwrap_err();
        assert!(matches!(e, EtcdError::Refused { code: 14, .. }), "{e:?}");
        assert_eq!(t.join().unwrap(), ["/v3/kv/txn"]);
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn watch_answers_parse() {
        let j: Value = serde_json::from_str(
            r#"{"result":{"header":{"revision":"4"},"events":[{"type":"DELETE","kv":{"key":"L3QvYg==","mod_revision":"4"}},{"kv":{"key":"L3QvYQ==","create_revision":"2","mod_revision":"3","version":"1","value":"aGVsbG8="}}]}}"#,
        )
        .unwrap();
        let WatchNews::Events { revision, events } = watch_news(&j).unwrap().unwrap() else {
            panic!()
        };
        assert_eq!(revision, 4);
        assert_eq!(
            events[0],
            Event::Delete {
                key: b"/t/b".to_vec(),
                mod_revision: 4
            }
        );
        let Event::Put(kv) = &events[1] else { panic!() };
        assert_eq!((kv.value.as_slice(), kv.mod_revision), (&b"hello"[..], 3));
        let c: Value =
            serde_json::from_str(r#"{"result":{"compact_revision":"7","canceled":true}}"#).unwrap();
        assert_eq!(watch_news(&c).unwrap(), Some(WatchNews::Compacted(7)));
        let created: Value = serde_json::from_str(r#"{"result":{"created":true}}"#).unwrap();
        assert!(matches!(
            watch_news(&created).unwrap(),
            Some(WatchNews::Events { .. })
        ));
    }

    #[test]
    fn errors_are_told_apart() {
        let e = answer(
            400,
            br#"{"error":"etcdserver: requested lease not found","code":5,"message":"etcdserver: requested lease not found"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            EtcdError::Refused {
                code: 5,
                message: "etcdserver: requested lease not found".into()
            }
        );
        assert!(matches!(answer(502, b"<html>"), Err(EtcdError::Garbled(_))));
        assert!(answer(200, br#"{"header":{}}"#).is_ok());
    }
}
