//! The ACME (RFC 8555) client as the C module implements it (spec §4):
//! directory, nonces, flattened JWS, POST-as-GET, problem documents,
//! retries and polling. Blocking, on the system libcurl.

pub mod preflight;

pub mod account;
pub mod challenge;
pub mod drive;
pub mod order;
pub mod resource;

use crate::base::crypto::{self, Key};
use crate::base::http::{Client, HttpError, Response, TransportKind};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

/// APR status codes, as job.json and the log report them.
pub mod status {
    pub const SUCCESS: i32 = 0;
    pub const ENOENT: i32 = 2;
    pub const EAGAIN: i32 = 11;
    pub const EACCES: i32 = 13;
    pub const EINVAL: i32 = 22;
    pub const ETIMEDOUT: i32 = 110;
    pub const ECONNREFUSED: i32 = 111;
    pub const BADARG: i32 = 20013;
    pub const EGENERAL: i32 = 20014;
    pub const ENOTIMPL: i32 = 20023;
    /// The process is shutting down (APR_ECANCELED would be 125 as errno).
    pub const ECANCELED: i32 = 125;

    /// `apr_strerror` text for the codes this module produces.
    pub fn describe(code: i32) -> String {
        match code {
            BADARG => "An invalid argument was passed to a library function".into(),
            EGENERAL => "Internal error (specific information not available)".into(),
            ENOTIMPL => "This function has not been implemented on this platform".into(),
            c if c > 0 && c < 20000 => {
                let s = std::io::Error::from_raw_os_error(c).to_string();
                match s.find(" (os error") {
                    Some(i) => s[..i].to_string(),
                    None => s,
                }
            }
            c => format!("Error string not specified yet ({c})"),
        }
    }
}

/// What kind of failure an error is. The APR status that job.json, md-status
/// and the log show is derived from it at the edge ([`Kind::apr`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The resource does not exist (at the CA or in the store).
    NotFound,
    /// Try again now: a bad nonce, a CA that is busy.
    Again,
    /// Not allowed: unauthorized, an account that is not valid.
    Denied,
    /// The data is wrong: a malformed request or answer.
    Invalid,
    TimedOut,
    /// The CA (or tailscaled) cannot be reached.
    Refused,
    /// The CA refused an argument: rate limits, rejected identifiers.
    BadArgument,
    General,
    NotImplemented,
    /// The server is shutting down; the work resumes on the next run.
    Canceled,
}

impl Kind {
    /// The APR status code of this kind.
    pub fn apr(self) -> i32 {
        use status::*;
        match self {
            Kind::NotFound => ENOENT,
            Kind::Again => EAGAIN,
            Kind::Denied => EACCES,
            Kind::Invalid => EINVAL,
            Kind::TimedOut => ETIMEDOUT,
            Kind::Refused => ECONNREFUSED,
            Kind::BadArgument => BADARG,
            Kind::General => EGENERAL,
            Kind::NotImplemented => ENOTIMPL,
            Kind::Canceled => ECANCELED,
        }
    }
}

/// When a failed step may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// At once, by re-sending the request (§4.2: up to [`MAX_RETRIES`]).
    Now,
    /// After the job's back-off (§3.5).
    Backoff,
    /// A problem with the input (§3.5): not before a day.
    NextDay,
}

/// A failed ACME step: its kind, the problem type (if the CA sent one or
/// the module assigns one) and a text for the admin.
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeError {
    pub kind: Kind,
    pub problem: Option<String>,
    pub detail: String,
    pub subproblems: Option<Box<Value>>,
}

impl std::fmt::Display for AcmeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.problem {
            Some(p) => write!(f, "problem[{p}] detail[{}]", self.detail),
            None => f.write_str(&self.detail),
        }
    }
}

impl AcmeError {
    pub fn new(kind: Kind, detail: impl Into<String>) -> AcmeError {
        AcmeError {
            kind,
            problem: None,
            detail: detail.into(),
            subproblems: None,
        }
    }

    pub(crate) fn with_problem(kind: Kind, problem: &str, detail: impl Into<String>) -> AcmeError {
        AcmeError {
            kind,
            problem: Some(problem.to_string()),
            detail: detail.into(),
            subproblems: None,
        }
    }

    /// The APR status of the error (job.json, md-status, the log).
    pub fn status(&self) -> i32 {
        self.kind.apr()
    }

    /// "Input related" problems wait a day before the next try (§3.5).
    pub(crate) fn input_related(&self) -> bool {
        self.problem.as_deref().is_some_and(|p| problem_kind(p).1)
    }

    /// When the step may be tried again.
    pub(crate) fn retry(&self) -> Retry {
        if self.input_related() {
            Retry::NextDay
        } else if self.kind == Kind::Again {
            Retry::Now
        } else {
            Retry::Backoff
        }
    }
}

pub type AResult<T> = Result<T, AcmeError>;

/// Err when this process is shutting down ([`crate::base::shutdown`]): the work
/// stops here, at a safe point, and resumes on the next run.
pub(crate) fn check_shutdown() -> AResult<()> {
    if crate::base::shutdown::abandoned() {
        return Err(AcmeError::new(
            Kind::Canceled,
            "another node of the cluster took this renewal over (this node's lease ran out)",
        ));
    }
    if crate::base::shutdown::requested() {
        return Err(AcmeError::new(
            Kind::Canceled,
            "the server is shutting down",
        ));
    }
    Ok(())
}

/// Status and "input related" flag of a problem type (§4.2 table).
pub(crate) fn problem_kind(ptype: &str) -> (Kind, bool) {
    let lower = ptype.to_ascii_lowercase();
    let t = lower
        .strip_prefix("urn:ietf:params:")
        .or_else(|| lower.strip_prefix("urn:"))
        .unwrap_or(&lower);
    match t {
        "acme:error:agreementrequired" => (Kind::General, true),
        "acme:error:badcsr" => (Kind::Invalid, true),
        "acme:error:badnonce" => (Kind::Again, false),
        "acme:error:badsignaturealgorithm" => (Kind::Invalid, true),
        "acme:error:externalaccountrequired" => (Kind::Invalid, true),
        "acme:error:invalidcontact" => (Kind::BadArgument, true),
        "acme:error:unsupportedcontact" => (Kind::General, true),
        "acme:error:malformed" => (Kind::Invalid, true),
        "acme:error:ratelimited" => (Kind::BadArgument, false),
        "acme:error:rejectedidentifier" => (Kind::BadArgument, true),
        "acme:error:serverinternal" => (Kind::General, false),
        "acme:error:unauthorized" => (Kind::Denied, false),
        "acme:error:unsupportedidentifier" => (Kind::BadArgument, true),
        "acme:error:useractionrequired" => (Kind::General, true),
        "acme:error:badrevocationreason" => (Kind::Invalid, true),
        _ => (Kind::General, false),
    }
}

fn http_error(url: &str, e: HttpError) -> AcmeError {
    match e {
        HttpError::Transport(kind, msg) => {
            let st = match kind {
                TransportKind::Connect => Kind::Refused,
                TransportKind::Timeout => Kind::TimedOut,
                _ => Kind::General,
            };
            AcmeError::new(
                st,
                format!(
                    "Unsuccessful in contacting ACME server at <{url}>. If this problem persists, \
                     please check your network connectivity from your Apache server to the ACME \
                     server. Also, older servers might have trouble verifying the certificates of \
                     the ACME server. You can check if you are able to contact it manually via the \
                     curl command. Sometimes, the ACME server might be down for maintenance, so \
                     failing to contact it is not an immediate problem. Apache will continue \
                     retrying this. ({msg})"
                ),
            )
        }
        HttpError::TooLarge(n) => AcmeError::new(
            Kind::Invalid,
            format!("response from {url} exceeds the limit of {n} bytes"),
        ),
    }
}

/// The parsed body of a response when it is JSON (`*/json`, `*+json`,
/// `text/plain`).
pub fn json_body(r: &Response) -> Option<Value> {
    let ct = r.content_type().unwrap_or_default();
    if ct.ends_with("/json") || ct.ends_with("+json") || ct == "text/plain" {
        serde_json::from_slice(&r.body).ok()
    } else {
        None
    }
}

/// Turns a non-2xx response into an error (§4.2).
pub fn response_error(r: &Response) -> AcmeError {
    let problem = json_body(r)
        .filter(|_| r.content_type().as_deref() == Some("application/problem+json"))
        .and_then(|j| resource::Problem::deserialize(&j).ok());
    if let Some(p) = problem {
        let detail = if p.detail.is_empty() {
            // a problem document without a text: say at least what came
            format!(
                "the CA answered HTTP {} with a problem document without detail{}",
                r.status,
                if p.kind.is_empty() { " or type" } else { "" }
            )
        } else {
            p.detail
        };
        let (st, _) = problem_kind(&p.kind);
        return AcmeError {
            kind: st,
            problem: Some(p.kind),
            detail,
            subproblems: p.subproblems.map(|s| Box::new(Value::Array(s))),
        };
    }
    match r.status {
        400 => AcmeError::new(
            Kind::Invalid,
            format!("unexpected http status: {}", r.status),
        ),
        401 | 403 => AcmeError::new(
            Kind::Denied,
            format!("unexpected http status: {}", r.status),
        ),
        404 => AcmeError::new(
            Kind::NotFound,
            format!("unexpected http status: {}", r.status),
        ),
        _ => AcmeError::new(
            Kind::General,
            format!("unexpected http status: {}", r.status),
        ),
    }
}

/// What the CA's directory offers.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub url: String,
    pub new_account: String,
    pub new_order: String,
    pub new_nonce: String,
    pub revoke_cert: Option<String>,
    pub key_change: Option<String>,
    pub renewal_info: Option<String>,
    pub terms_of_service: Option<String>,
    pub eab_required: bool,
    pub profiles: Vec<String>,
}

impl Directory {
    pub fn parse(url: &str, j: &Value) -> AResult<Directory> {
        if let Ok(d) = resource::DirectoryResource::deserialize(j) {
            let meta = d.meta.unwrap_or_default();
            return Ok(Directory {
                url: url.to_string(),
                new_account: d.new_account,
                new_order: d.new_order,
                new_nonce: d.new_nonce,
                revoke_cert: d.revoke_cert,
                key_change: d.key_change,
                renewal_info: d.renewal_info,
                terms_of_service: meta.terms_of_service,
                eab_required: meta.external_account_required,
                profiles: meta.profiles.keys().cloned().collect(),
            });
        }
        if ["new-authz", "new-cert", "new-reg", "revoke-cert"]
            .iter()
            .all(|k| j.get(k).is_some())
        {
            return Err(AcmeError::new(
                Kind::Invalid,
                "ACME server speaks version 1, an obsolete version of the ACME protocol that is no \
                 longer supported.",
            ));
        }
        Err(AcmeError::new(
            Kind::Invalid,
            format!("Unable to understand ACME server response from {url}. Wrong ACME protocol version or link?"),
        ))
    }
}

/// Maximum number of re-sends of a request that failed with EAGAIN.
pub const MAX_RETRIES: u32 = 9;

/// One conversation with a CA.
pub struct Acme {
    pub http: Client,
    pub dir: Directory,
    nonce: Option<String>,
    /// The account in use: URL (the JWS `kid`) and key.
    pub account: Option<(String, Key)>,
}

impl Acme {
    /// Fetches the directory at `url` (a fresh client per attempt, §4.2).
    pub fn connect(http: Client, url: &str) -> AResult<Acme> {
        let r = http.get(url).map_err(|e| http_error(url, e))?;
        if r.status == 503 {
            return Err(AcmeError::new(
                Kind::Again,
                format!(
                    "The ACME server at {url} reports that Service is Unavailable (503). This may \
                     happen during maintenance for short periods of time."
                ),
            ));
        }
        if !(200..300).contains(&r.status) {
            let mut e = response_error(&r);
            e.kind = Kind::Again;
            return Err(e);
        }
        let j = json_body(&r).ok_or_else(|| {
            AcmeError::new(
                Kind::Invalid,
                format!("Unable to understand ACME server response from {url}. Wrong ACME protocol version or link?"),
            )
        })?;
        Ok(Acme {
            http,
            dir: Directory::parse(url, &j)?,
            nonce: None,
            account: None,
        })
    }

    fn remember_nonce(&mut self, r: &Response) {
        if let Some(n) = r.header("replay-nonce") {
            self.nonce = Some(n.to_string());
        }
    }

    fn take_nonce(&mut self) -> AResult<String> {
        if let Some(n) = self.nonce.take() {
            return Ok(n);
        }
        let url = self.dir.new_nonce.clone();
        let r = self
            .http
            .request("HEAD", &url, None)
            .map_err(|e| http_error(&url, e))?;
        r.header("replay-nonce").map(str::to_string).ok_or_else(|| {
            AcmeError::new(
                Kind::General,
                format!("no nonce from {url} (HTTP {})", r.status),
            )
        })
    }

    /// A signed POST. `payload` None is POST-as-GET. With `with_jwk` the
    /// protected header carries the account JWK (newAccount), else its URL.
    /// Requests failing with EAGAIN (e.g. badNonce) are re-sent with a fresh
    /// nonce, up to [`MAX_RETRIES`] times.
    pub(crate) fn post(
        &mut self,
        url: &str,
        payload: Option<&Value>,
        with_jwk: bool,
    ) -> AResult<Response> {
        check_shutdown()?;
        let (acct_url, key) = match &self.account {
            Some((u, k)) => (u.clone(), k),
            None => {
                return Err(AcmeError::new(
                    Kind::Invalid,
                    "no account to sign the request with",
                ))
            }
        };
        let key_alg = key
            .jws_alg()
            .map_err(|e| AcmeError::new(Kind::Invalid, e.0))?;
        let jwk = if with_jwk {
            Some(key.jwk().map_err(|e| AcmeError::new(Kind::Invalid, e.0))?)
        } else {
            None
        };
        let payload_text = match payload {
            Some(v) => serde_json::to_string(v).unwrap_or_default(),
            None => String::new(),
        };
        let mut attempt = 0;
        loop {
            let nonce = self.take_nonce()?;
            let mut prot = Map::new();
            prot.insert("nonce".into(), json!(nonce));
            prot.insert("url".into(), json!(url));
            prot.insert("alg".into(), json!(key_alg));
            match &jwk {
                Some(j) => prot.insert("jwk".into(), j.clone()),
                None => prot.insert("kid".into(), json!(acct_url)),
            };
            let key = &self.account.as_ref().expect("account checked above").1;
            let body = crypto::jws(key, &prot, &payload_text)
                .map_err(|e| AcmeError::new(Kind::Invalid, e.0))?;
            let body = serde_json::to_string_pretty(&body).unwrap_or_default();
            let r = self
                .http
                .request(
                    "POST",
                    url,
                    Some((body.as_bytes(), "application/jose+json")),
                )
                .map_err(|e| http_error(url, e))?;
            self.remember_nonce(&r);
            if (200..300).contains(&r.status) {
                return Ok(r);
            }
            let e = response_error(&r);
            if e.retry() == Retry::Now && attempt < MAX_RETRIES {
                attempt += 1;
                continue;
            }
            return Err(e);
        }
    }

    /// Rolls the account of this client over to `new_key` (RFC 8555
    /// §7.3.5): the inner JWS, signed with the new key, names the account
    /// and its old key; the outer one is signed with the old key. On
    /// success the client signs with the new key.
    pub(crate) fn key_change(&mut self, new_key: &crypto::Key) -> AResult<()> {
        let url = self.dir.key_change.clone().ok_or_else(|| {
            AcmeError::new(Kind::NotImplemented, "the CA's directory has no keyChange")
        })?;
        let Some((acct_url, old)) = self.account.clone() else {
            return Err(AcmeError::new(Kind::Invalid, "no account to roll over"));
        };
        let invalid = |e: crypto::CryptoError| AcmeError::new(Kind::Invalid, e.0);
        let mut prot = Map::new();
        prot.insert("alg".into(), json!(new_key.jws_alg().map_err(invalid)?));
        prot.insert("jwk".into(), new_key.jwk().map_err(invalid)?);
        prot.insert("url".into(), json!(url));
        let payload = json!({ "account": acct_url, "oldKey": old.jwk().map_err(invalid)? });
        let inner = crypto::jws(new_key, &prot, &payload.to_string()).map_err(invalid)?;
        self.post(&url, Some(&inner), false)?;
        self.account = Some((acct_url, new_key.clone()));
        Ok(())
    }

    /// Revokes a certificate (RFC 8555 §7.6), signed with the account of
    /// this client; `reason` is an RFC 5280 CRLReason code.
    pub fn revoke(&mut self, cert_der: &[u8], reason: Option<u8>) -> AResult<()> {
        let url = self.dir.revoke_cert.clone().ok_or_else(|| {
            AcmeError::new(Kind::NotImplemented, "the CA's directory has no revokeCert")
        })?;
        let mut payload = json!({ "certificate": crate::base::util::b64url_encode(cert_der) });
        if let Some(r) = reason {
            payload["reason"] = json!(r);
        }
        self.post(&url, Some(&payload), false).map(|_| ())
    }

    pub(crate) fn post_as_get(&mut self, url: &str) -> AResult<Response> {
        self.post(url, None, false)
    }

    /// POST-as-GET returning the JSON body.
    pub(crate) fn get_json(&mut self, url: &str) -> AResult<Value> {
        let r = self.post_as_get(url)?;
        json_body(&r).ok_or_else(|| {
            AcmeError::new(Kind::Invalid, format!("response from {url} is not JSON"))
        })
    }
}

/// Polls `f` until it yields a value or `timeout` passes: first pause
/// 20 ms (the C module waits 100 ms; validations often finish faster),
/// doubling, at most 10 s, or what a `Retry-After` hint asks
/// (capped at 10 s as well).
pub(crate) fn poll<T>(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> AResult<(Option<T>, Option<Duration>)>,
) -> AResult<T> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        let (v, hint) = f()?;
        if let Some(v) = v {
            return Ok(v);
        }
        if start.elapsed() >= timeout {
            return Err(AcmeError::new(Kind::TimedOut, format!("{what}: timeout")));
        }
        let wait = hint.unwrap_or(pause).min(Duration::from_secs(10));
        if !crate::base::shutdown::sleep(
            wait.min(timeout.saturating_sub(start.elapsed()))
                .max(Duration::from_millis(10)),
        ) {
            return Err(AcmeError::new(
                Kind::Canceled,
                format!("{what}: the server is shutting down"),
            ));
        }
        // at most a second apart while a CA usually answers (validation
        // takes seconds), then backing off to 10 s
        let cap = if start.elapsed() < POLL_FAST_FOR {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(10)
        };
        pause = (pause * 2).min(cap);
    }
}

/// How long [`poll`] asks at least once a second.
const POLL_FAST_FOR: Duration = Duration::from_secs(30);

/// `Retry-After` as a duration (seconds form only; HTTP dates are rare in ACME).
pub fn retry_after(r: &Response) -> Option<Duration> {
    r.header("retry-after")?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_table() {
        assert_eq!(
            problem_kind("urn:ietf:params:acme:error:badNonce"),
            (Kind::Again, false)
        );
        assert_eq!(
            problem_kind("urn:acme:error:rejectedIdentifier"),
            (Kind::BadArgument, true)
        );
        assert_eq!(problem_kind("acme:error:MALFORMED"), (Kind::Invalid, true));
        assert_eq!(
            problem_kind("urn:ietf:params:acme:error:unauthorized"),
            (Kind::Denied, false)
        );
        assert_eq!(
            problem_kind("urn:ietf:params:acme:error:rateLimited"),
            (Kind::BadArgument, false)
        );
        assert_eq!(
            problem_kind("urn:ietf:params:acme:error:externalAccountRequired"),
            (Kind::Invalid, true)
        );
        assert_eq!(
            problem_kind("urn:ietf:params:acme:error:dns"),
            (Kind::General, false)
        );
        assert_eq!(problem_kind("something:else"), (Kind::General, false));
        let e = AcmeError::with_problem(Kind::Invalid, "urn:ietf:params:acme:error:badCSR", "x");
        assert!(e.input_related());
        assert_eq!(e.retry(), Retry::NextDay);
        assert_eq!(e.status(), 22);
        let e = AcmeError::new(Kind::Refused, "x");
        assert!(!e.input_related());
        assert_eq!((e.retry(), e.status()), (Retry::Backoff, 111));
        let e = AcmeError::with_problem(Kind::Again, "urn:ietf:params:acme:error:badNonce", "x");
        assert_eq!(e.retry(), Retry::Now);
    }

    fn resp(status: u32, ctype: &str, body: &str) -> Response {
        Response {
            status,
            headers: vec![("content-type".into(), ctype.into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn errors_from_responses() {
        let e = response_error(&resp(
            400,
            "application/problem+json",
            r#"{"type":"urn:ietf:params:acme:error:rejectedIdentifier","detail":"no","subproblems":[{"type":"x"}]}"#,
        ));
        assert_eq!(e.kind, Kind::BadArgument);
        assert_eq!(
            e.problem.as_deref(),
            Some("urn:ietf:params:acme:error:rejectedIdentifier")
        );
        assert_eq!(e.detail, "no");
        assert!(e.subproblems.is_some());
        assert_eq!(
            response_error(&resp(404, "text/html", "")).kind,
            Kind::NotFound
        );
        assert_eq!(
            response_error(&resp(403, "text/html", "")).kind,
            Kind::Denied
        );
        assert_eq!(
            response_error(&resp(400, "text/html", "")).kind,
            Kind::Invalid
        );
        assert_eq!(
            response_error(&resp(500, "text/html", "")).detail,
            "unexpected http status: 500"
        );
    }

    #[test]
    fn directories() {
        let d = Directory::parse(
            "u",
            &json!({"newAccount":"a","newOrder":"o","newNonce":"n","renewalInfo":"r",
                    "meta":{"termsOfService":"tos","externalAccountRequired":true,
                            "profiles":{"classic":"x","shortlived":"y"}}}),
        )
        .unwrap();
        assert_eq!(d.renewal_info.as_deref(), Some("r"));
        assert_eq!(d.terms_of_service.as_deref(), Some("tos"));
        assert!(d.eab_required);
        assert_eq!(d.profiles, ["classic", "shortlived"]);
        let v1 = Directory::parse(
            "u",
            &json!({"new-authz":1,"new-cert":1,"new-reg":1,"revoke-cert":1}),
        );
        assert!(v1.unwrap_err().detail.contains("speaks version 1"));
        assert!(Directory::parse("u", &json!({}))
            .unwrap_err()
            .detail
            .contains("Unable to understand"));
    }

    #[test]
    fn polling_asks_at_least_once_a_second_at_first() {
        let start = Instant::now();
        let mut at = Vec::new();
        let _ = poll::<()>(Duration::from_millis(4500), "authz", || {
            at.push(start.elapsed());
            Ok((None, None))
        });
        let gaps: Vec<_> = at.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter().all(|g| *g < Duration::from_millis(1300)),
            "{gaps:?}"
        );
        assert!(at.len() >= 9, "{at:?}");
    }

    #[test]
    fn polling() {
        let mut n = 0;
        let v = poll(Duration::from_secs(5), "t", || {
            n += 1;
            Ok((if n == 3 { Some(n) } else { None }, None))
        })
        .unwrap();
        assert_eq!(v, 3);
        let e = poll::<()>(Duration::from_millis(150), "authz", || Ok((None, None))).unwrap_err();
        assert_eq!(e.kind, Kind::TimedOut);
        assert_eq!(status::describe(111), "Connection refused");
        assert_eq!(
            status::describe(status::EGENERAL),
            "Internal error (specific information not available)"
        );
    }
}
