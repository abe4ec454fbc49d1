//! Revocation by CRL (issue 16, point 3). Let's Encrypt ended OCSP; a
//! certificate's revocation is now only to be seen in its issuer's CRL.
//! For every certificate the module serves that names a CRL distribution
//! point (managed ones: the live set in `domains/`, or the staged set that
//! hot activation serves in its place; static ones from `MDCertificateFile`),
//! the renewal watchdog fetches the CRL over http(s), checks its signature
//! against the issuer in the certificate's chain, and keeps it in
//! `<store>/crl/` (`<hash>.crl`, DER, beside `<hash>.json`: URL, when
//! fetched, validators, this/next update). A CRL is asked for again when
//! its `nextUpdate` has come, at the latest after [`REFRESH`], with a
//! conditional request (`If-None-Match`/`If-Modified-Since`), never more
//! than [`MAX_SIZE`] bytes. The result for each MD is
//! `crl/md-<name>.json`, which md-status shows; a managed certificate that
//! is listed makes the MD renew at once, a static one is reported (it
//! cannot be renewed). `MDCRLCheck off` turns it all off. The C module
//! ignores the directory.

use crate::base::http::{Client, HttpError};
use crate::base::log::{Level, Note};
use crate::base::time::{self, Micros};
use crate::store::{Group, Store};
use openssl::x509::{CrlStatus, ReasonCode, X509Crl, X509};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
/// The largest CRL fetched (Let's Encrypt's sharded CRLs are far smaller).
pub const MAX_SIZE: usize = 20 * 1024 * 1024;
/// A CRL is asked for again after this long at the latest (conditional).
pub const REFRESH: Micros = 6 * 3600 * time::USEC_PER_SEC;
/// ... and not sooner than this after the last answer.
pub const MIN_REFETCH: Micros = 30 * time::USEC_PER_SEC;
/// After a failed fetch.
pub const RETRY: Micros = 5 * 60 * time::USEC_PER_SEC;
/// A pass runs at least this often (new certificates, new CRL URLs).
pub const PASS: Micros = 3600 * time::USEC_PER_SEC;

/// What is known about one cached CRL.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Meta {
    pub url: String,
    /// When the CRL last came (200 or 304), seconds since the epoch.
    pub fetched: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub this_update: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_update: Option<i64>,
    #[serde(default)]
    pub size: usize,
    /// The last fetch's failure, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i64>,
}

impl Meta {
    /// When the CRL is to be asked for again.
    pub(crate) fn next_fetch(&self) -> Micros {
        if let Some(f) = self.failed.filter(|f| *f >= self.fetched) {
            return time::from_secs(f) + RETRY;
        }
        let fetched = time::from_secs(self.fetched);
        let by_crl = self
            .next_update
            .map(time::from_secs)
            .unwrap_or(fetched + REFRESH);
        by_crl.min(fetched + REFRESH).max(fetched + MIN_REFETCH)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Good,
    Revoked,
    Unknown,
}

/// One certificate's result.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct CertCheck {
    /// The file (`pubcert.pem`, or the path of a static certificate).
    pub file: String,
    /// Upper-case hex, as md-status shows serials.
    pub serial: String,
    pub url: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_next_update: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One MD's result (`crl/md-<name>.json`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct MdCheck {
    pub checked: String,
    /// The certificates are static (`MDCertificateFile`): not renewed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub r#static: bool,
    pub certs: Vec<CertCheck>,
}

/// A certificate to check.
pub struct Target {
    pub md: String,
    pub file: String,
    /// Leaf first, then its issuer (and the rest of the chain).
    pub chain: Vec<X509>,
    pub is_static: bool,
}

/// Whether the store has the CRL cache (made at start by the parent).
pub(crate) fn cache_ready(store: &Store) -> bool {
    store.exists(Group::Crl, "", "")
}

/// The file of the last check's result for `md` in the `crl` group.
fn md_file(md: &str) -> String {
    format!("md-{}.json", md.replace('/', "_"))
}

/// Makes the `crl` group for the renewal job's user (root parent at
/// start-up).
pub(crate) fn ensure_dir(store: &Store) -> Result<(), crate::store::StoreError> {
    store.prepare_group(Group::Crl)
}

/// The last result for `md`, if any.
pub(crate) fn load_md(store: &Store, md: &str) -> Option<MdCheck> {
    serde_json::from_slice(&store.load_bytes(Group::Crl, "", &md_file(md)).ok()??).ok()
}

/// The serial of a certificate as md-status shows it.
pub(crate) fn serial_hex(c: &X509) -> String {
    c.serial_number()
        .to_bn()
        .ok()
        .and_then(|b| b.to_hex_str().ok().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// The http(s) URLs of a certificate's CRL distribution points.
pub(crate) fn cdp_urls(c: &X509) -> Vec<String> {
    let mut out = Vec::new();
    for dp in c.crl_distribution_points().iter().flatten() {
        let Some(names) = dp.distpoint().and_then(|n| n.fullname()) else {
            continue;
        };
        for n in names {
            if let Some(u) = n.uri() {
                let l = u.to_ascii_lowercase();
                if l.starts_with("http://") || l.starts_with("https://") {
                    out.push(u.to_string());
                }
            }
        }
    }
    out
}

/// The certificates of `md` to check: its live set as start-up read it
/// (the parent reads `domains/`, which the child cannot), or the files of a
/// static MD. Only certificates that name a CRL distribution point.
pub(crate) fn targets(
    md: &crate::config::Md,
    certs: &[Option<crate::lifecycle::state::CertInfo>],
) -> Vec<Target> {
    let is_static = !md.cert_files.is_empty();
    let specs = md.effective_specs();
    let mut out = Vec::new();
    for (i, info) in certs.iter().enumerate() {
        // the leaf is parsed already; the chain only when there is a CRL
        let Some(info) = info.as_ref().filter(|c| leaf_names_crl(c)) else {
            continue;
        };
        let file = if is_static {
            md.cert_files.get(i).cloned().unwrap_or_default()
        } else {
            format!(
                "pubcert{}.pem",
                specs.get(i).map(|s| s.file_suffix()).unwrap_or_default()
            )
        };
        if let Ok(chain) = X509::stack_from_pem(&info.chain_pem) {
            out.push(Target {
                md: md.name.clone(),
                file,
                chain,
                is_static,
            });
        }
    }
    out
}

/// The certificates of a managed `md` to check when its vhosts serve a
/// staged set (hot activation): that set's, not the live set's it replaced.
pub(crate) fn targets_of_set(
    md: &crate::config::Md,
    set: &crate::serving::hot::TlsSet,
) -> Vec<Target> {
    let specs = md.effective_specs();
    set.pairs
        .iter()
        .enumerate()
        .filter(|(_, (_, leaf, _))| !cdp_urls(leaf).is_empty())
        .map(|(i, (_, leaf, rest))| Target {
            md: md.name.clone(),
            file: format!(
                "pubcert{}.pem",
                specs.get(i).map(|s| s.file_suffix()).unwrap_or_default()
            ),
            chain: std::iter::once(leaf.clone())
                .chain(rest.iter().map(|c| c.to_owned()))
                .collect(),
            is_static: false,
        })
        .collect()
}

fn leaf_names_crl(c: &crate::lifecycle::state::CertInfo) -> bool {
    c.leaf().is_some_and(|l| !cdp_urls(&l).is_empty())
}

/// Whether one of `certs` names a CRL (start-up: no chain is parsed).
pub(crate) fn any_names_crl(certs: &[Option<crate::lifecycle::state::CertInfo>]) -> bool {
    certs.iter().flatten().any(leaf_names_crl)
}

/// The files of the CRL at `url` and of what is known of it.
fn cache_files(url: &str) -> (String, String) {
    let h = crate::base::util::hex(&openssl::sha::sha256(url.as_bytes())[..12]);
    (format!("{h}.crl"), format!("{h}.json"))
}

fn secs(t: Option<&openssl::asn1::Asn1TimeRef>) -> Option<i64> {
    t.map(|t| crate::base::crypto::asn1_micros(t) / time::USEC_PER_SEC)
}

/// Why no usable CRL came; the text says what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrlError {
    /// It could not be fetched (HTTP status, transport, size limit).
    Fetch(String),
    /// What came is no CRL of the certificate's issuer.
    Invalid(String),
    /// The store could not keep it.
    Store(String),
}

impl std::fmt::Display for CrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CrlError::Fetch(m) | CrlError::Invalid(m) | CrlError::Store(m) => f.write_str(m),
        }
    }
}

/// Whether `crl` is `issuer`'s: the issuer's name and its signature.
fn verify(crl: &X509Crl, issuer: &X509) -> Result<(), CrlError> {
    let name_ok = match (crl.issuer_name().to_der(), issuer.subject_name().to_der()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !name_ok {
        return Err(CrlError::Invalid(
            "it is not issued by the certificate's issuer".into(),
        ));
    }
    let key = issuer
        .public_key()
        .map_err(|e| CrlError::Invalid(e.to_string()))?;
    match crl.verify(&key) {
        Ok(true) => Ok(()),
        _ => Err(CrlError::Invalid(
            "its signature does not verify with the issuer's key".into(),
        )),
    }
}

fn parse(data: &[u8]) -> Result<X509Crl, CrlError> {
    X509Crl::from_der(data)
        .or_else(|_| X509Crl::from_pem(data))
        .map_err(|_| CrlError::Invalid("the answer is not a CRL (neither DER nor PEM)".into()))
}

fn save_meta(store: &Store, file: &str, m: &Meta) {
    if let Ok(data) = serde_json::to_vec_pretty(m) {
        let _ = store.save_bytes(Group::Crl, "", file, &data, false);
    }
}

/// A CRL that came: parsed, its DER, `ETag`, `Last-Modified`.
type Fetched = (X509Crl, Vec<u8>, Option<String>, Option<String>);

/// The CRL at `url` for certificates of `issuer`: the cached one while it
/// is fresh, else fetched (conditionally when one is cached). A failed
/// fetch falls back on the cached CRL (revocations do not expire), with the
/// failure in its meta. Err only when there is no usable CRL.
pub fn get(
    store: &Store,
    client: &Client,
    url: &str,
    issuer: &X509,
    now: Micros,
) -> Result<(X509Crl, Meta), CrlError> {
    let (crl_file, meta_file) = cache_files(url);
    let meta: Option<Meta> = store
        .load_bytes(Group::Crl, "", &meta_file)
        .ok()
        .flatten()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .filter(|m: &Meta| m.url == url);
    let cached = meta.as_ref().and_then(|_| {
        let crl = parse(&store.load_bytes(Group::Crl, "", &crl_file).ok()??).ok()?;
        verify(&crl, issuer).ok()?;
        Some(crl)
    });
    if let Some(m) = meta
        .as_ref()
        .filter(|m| cached.is_some() && now < m.next_fetch())
    {
        let m = m.clone();
        return Ok((cached.expect("checked above"), m));
    }
    if let (Some(m), None) = (&meta, &cached) {
        if m.failed.is_some() && now < m.next_fetch() {
            return Err(CrlError::Fetch(
                m.error.clone().unwrap_or_else(|| "fetch failed".into()),
            ));
        }
    }
    let mut meta = meta.unwrap_or_else(|| Meta {
        url: url.to_string(),
        ..Default::default()
    });
    let mut c = client.clone();
    c.body_limit = MAX_SIZE;
    c.timeout = std::time::Duration::from_secs(60);
    c.connect_timeout = std::time::Duration::from_secs(10);
    if cached.is_some() {
        if let Some(e) = &meta.etag {
            c.extra_headers.push(format!("If-None-Match: {e}"));
        }
        if let Some(l) = &meta.last_modified {
            c.extra_headers.push(format!("If-Modified-Since: {l}"));
        }
    }
    let fetched: Result<Option<Fetched>, CrlError> = match c.get(url) {
        Ok(r) if r.status == 304 && cached.is_some() => Ok(None),
        Ok(r) if r.status == 200 => parse(&r.body).and_then(|crl| {
            verify(&crl, issuer)?;
            let der = crl.to_der().map_err(|e| CrlError::Invalid(e.to_string()))?;
            Ok(Some((
                crl,
                der,
                r.header("etag").map(str::to_string),
                r.header("last-modified").map(str::to_string),
            )))
        }),
        Ok(r) => Err(CrlError::Fetch(format!("HTTP {}", r.status))),
        Err(HttpError::TooLarge(n)) => Err(CrlError::Fetch(format!(
            "larger than the limit of {n} bytes"
        ))),
        Err(e) => Err(CrlError::Fetch(e.to_string())),
    };
    let secs_now = now / time::USEC_PER_SEC;
    match fetched {
        Ok(None) => {
            meta.fetched = secs_now;
            meta.error = None;
            meta.failed = None;
            save_meta(store, &meta_file, &meta);
            let crl = cached.expect("304 only with a cached CRL");
            Ok((crl, meta))
        }
        Ok(Some((crl, der, etag, lm))) => {
            store
                .save_bytes(Group::Crl, "", &crl_file, &der, false)
                .map_err(|e| CrlError::Store(format!("cannot store it: {e}")))?;
            meta = Meta {
                url: url.to_string(),
                fetched: secs_now,
                etag,
                last_modified: lm,
                this_update: secs(Some(crl.last_update())),
                next_update: secs(crl.next_update()),
                size: der.len(),
                error: None,
                failed: None,
            };
            save_meta(store, &meta_file, &meta);
            Ok((crl, meta))
        }
        Err(e) => {
            meta.error = Some(e.to_string());
            meta.failed = Some(secs_now);
            save_meta(store, &meta_file, &meta);
            match cached {
                Some(crl) => Ok((crl, meta)),
                None => Err(e),
            }
        }
    }
}

/// RFC 5280 CRLReason names.
fn reason_name(code: i64) -> String {
    match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        8 => "removeFromCRL",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => return format!("reason {code}"),
    }
    .to_string()
}

/// The CRLs one pass has read, by URL and issuer (SHA-256 of its DER): a
/// CRL that many certificates name is fetched, parsed and verified once per
/// pass, not once per certificate.
type Memo = HashMap<(String, Vec<u8>), Result<(X509Crl, Meta), CrlError>>;

/// Checks one certificate against its CRL.
fn check(
    store: &Store,
    client: &Client,
    t: &Target,
    now: Micros,
    memo: &mut Memo,
) -> (CertCheck, Option<Meta>) {
    let leaf = &t.chain[0];
    let url = cdp_urls(leaf).into_iter().next().unwrap_or_default();
    let mut out = CertCheck {
        file: t.file.clone(),
        serial: serial_hex(leaf),
        url: url.clone(),
        status: Status::Unknown,
        revoked_at: None,
        reason: None,
        crl_next_update: None,
        error: None,
    };
    let Some(issuer) = t.chain.get(1) else {
        out.error = Some(format!(
            "{} holds no issuer certificate after the leaf: the CRL's signature cannot be checked",
            t.file
        ));
        return (out, None);
    };
    let issuer_id = issuer
        .digest(openssl::hash::MessageDigest::sha256())
        .map(|d| d.to_vec())
        .unwrap_or_default();
    let got = memo
        .entry((url.clone(), issuer_id))
        .or_insert_with(|| get(store, client, &url, issuer, now));
    match got {
        Err(e) => {
            out.error = Some(format!("cannot get the CRL at {url}: {e}"));
            (out, None)
        }
        Ok((crl, meta)) => {
            out.crl_next_update = meta.next_update.map(|s| time::rfc822(time::from_secs(s)));
            out.error = meta.error.clone().map(|e| {
                format!("the CRL at {url} could not be fetched again ({e}); the last one is used")
            });
            match crl.get_by_cert(leaf) {
                CrlStatus::Revoked(r) => {
                    out.status = Status::Revoked;
                    out.revoked_at = Some(time::rfc822(crate::base::crypto::asn1_micros(
                        r.revocation_date(),
                    )));
                    out.reason = r
                        .extension::<ReasonCode>()
                        .ok()
                        .flatten()
                        .and_then(|(_, code)| code.get_i64().ok())
                        .map(reason_name);
                }
                _ => out.status = Status::Good,
            }
            (out, Some(meta.clone()))
        }
    }
}

/// What a pass found.
#[derive(Default)]
pub struct Pass {
    /// MD → the serials its CRLs list as revoked.
    pub revoked: HashMap<String, HashSet<String>>,
    /// Revocations not seen before: (MD, check, static).
    pub newly_revoked: Vec<(String, CertCheck, bool)>,
    /// When the next pass is due.
    pub next_due: Micros,
    pub notes: Vec<Note>,
}

/// Checks every target, grouped by MD, writes each MD's result and says
/// what is new. The result of an MD of `mds` without targets (its served
/// certificate names no CRL, e.g. after a renewal) is removed.
pub fn pass(store: &Store, client: &Client, mds: &[&str], targets: &[Target], now: Micros) -> Pass {
    let mut p = Pass {
        next_due: now + PASS,
        ..Default::default()
    };
    let mut by_md: Vec<(String, bool, Vec<CertCheck>)> = Vec::new();
    let mut memo = Memo::new();
    for t in targets {
        if crate::base::shutdown::requested() {
            return p;
        }
        let (c, meta) = check(store, client, t, now, &mut memo);
        if let Some(m) = &meta {
            p.next_due = p.next_due.min(m.next_fetch());
        } else {
            p.next_due = p.next_due.min(now + RETRY);
        }
        match by_md.iter_mut().find(|(m, _, _)| *m == t.md) {
            Some((_, _, v)) => v.push(c),
            None => by_md.push((t.md.clone(), t.is_static, vec![c])),
        }
    }
    for md in mds
        .iter()
        .filter(|m| !by_md.iter().any(|(n, _, _)| n == *m))
    {
        if let Err(e) = store.remove_file(Group::Crl, "", &md_file(md)) {
            p.notes.push(Note::new(
                Level::Warn,
                format!("md({md}): cannot remove its old CRL check result: {e}"),
            ));
        }
    }
    for (md, is_static, certs) in by_md {
        let before = load_md(store, &md);
        for c in certs.iter().filter(|c| c.status == Status::Revoked) {
            p.revoked
                .entry(md.clone())
                .or_default()
                .insert(c.serial.clone());
            let seen = before.as_ref().is_some_and(|b| {
                b.certs
                    .iter()
                    .any(|x| x.serial == c.serial && x.status == Status::Revoked)
            });
            if !seen {
                p.newly_revoked.push((md.clone(), c.clone(), is_static));
            }
        }
        for c in certs.iter().filter_map(|c| c.error.as_ref()) {
            p.notes
                .push(Note::new(Level::Warn, format!("md({md}): CRL check: {c}")));
        }
        let result = MdCheck {
            checked: time::rfc822(now),
            r#static: is_static,
            certs,
        };
        if let Ok(data) = serde_json::to_vec_pretty(&result) {
            if let Err(e) = store.save_bytes(Group::Crl, "", &md_file(&md), &data, false) {
                p.notes.push(Note::new(
                    Level::Warn,
                    format!("md({md}): cannot write the CRL check result: {e}"),
                ));
            }
        }
    }
    p
}

/// The message for a newly seen revocation.
pub(crate) fn revoked_message(md: &str, c: &CertCheck, is_static: bool) -> String {
    let what = format!(
        "md({md}): the certificate {} (serial {}) is revoked: the CRL at {} lists it{}{}",
        c.file,
        c.serial,
        c.url,
        c.revoked_at
            .as_ref()
            .map(|t| format!(" since {t}"))
            .unwrap_or_default(),
        c.reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    if is_static {
        format!("{what}. It is a static certificate (MDCertificateFile) and cannot be renewed by the module: replace it")
    } else {
        format!("{what}; renewing it now")
    }
}

/// The state the renewal watchdog keeps between passes.
#[derive(Default)]
pub struct Registry {
    state: std::sync::Mutex<RegState>,
}

#[derive(Default)]
struct RegState {
    next_due: Micros,
    revoked: HashMap<String, HashSet<String>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, RegState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a pass is due.
    pub(crate) fn due(&self, now: Micros) -> bool {
        now >= self.lock().next_due
    }

    pub(crate) fn next_due(&self) -> Micros {
        self.lock().next_due
    }

    /// Takes a pass's findings.
    pub(crate) fn update(&self, p: &Pass) {
        let mut s = self.lock();
        s.next_due = p.next_due;
        s.revoked = p.revoked.clone();
    }

    /// Whether one of `certs` (an MD's current ones) is listed revoked.
    pub fn revoked(&self, md: &str, certs: &[(String, X509)]) -> bool {
        let s = self.lock();
        s.revoked
            .get(md)
            .is_some_and(|set| certs.iter().any(|(_, c)| set.contains(&serial_hex(c))))
    }
}

/// The md-status member of an MD (`crl`), if it was checked.
pub(crate) fn status_json(store: &Store, md: &str) -> Option<serde_json::Value> {
    serde_json::to_value(load_md(store, md)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn when_a_crl_is_asked_for_again() {
        let m = |next_update: Option<i64>| Meta {
            url: "http://c/1.crl".into(),
            fetched: 1000,
            next_update,
            ..Default::default()
        };
        // at its nextUpdate
        assert_eq!(m(Some(1000 + 3600)).next_fetch(), (1000 + 3600) * S);
        // not later than REFRESH, whatever it says
        assert_eq!(m(Some(1000 + 86400 * 7)).next_fetch(), 1000 * S + REFRESH);
        assert_eq!(m(None).next_fetch(), 1000 * S + REFRESH);
        // a CRL past its nextUpdate (a stale publisher) is not asked for
        // in a loop
        assert_eq!(m(Some(10)).next_fetch(), 1000 * S + MIN_REFETCH);
        // after a failure: the retry delay
        let mut f = m(Some(1000 + 3600));
        f.failed = Some(2000);
        assert_eq!(f.next_fetch(), 2000 * S + RETRY);
        // a failure before the last success does not count
        f.failed = Some(900);
        assert_eq!(f.next_fetch(), (1000 + 3600) * S);
    }

    #[test]
    fn reasons_and_revoked_serials() {
        assert_eq!(reason_name(1), "keyCompromise");
        assert_eq!(reason_name(7), "reason 7");
        let key =
            crate::base::crypto::Key::generate(&crate::base::keyspec::KeySpec::Rsa(2048)).unwrap();
        let cert = crate::base::crypto::fallback_cert(&key, &["a.org".to_string()]).unwrap();
        assert!(cdp_urls(&cert).is_empty());
        let r = Registry::default();
        assert!(r.due(0));
        let mut p = Pass {
            next_due: 5 * S,
            ..Default::default()
        };
        p.revoked
            .entry("a.org".into())
            .or_default()
            .insert(serial_hex(&cert));
        r.update(&p);
        assert!(!r.due(4 * S) && r.due(5 * S));
        let certs = vec![("rsa".to_string(), cert)];
        assert!(r.revoked("a.org", &certs));
        assert!(!r.revoked("b.org", &certs));
        // the renewed certificate is not the listed one
        let other = crate::base::crypto::fallback_cert(&key, &["a.org".to_string()]).unwrap();
        assert!(!r.revoked("a.org", &[("rsa".to_string(), other)]));
    }
}
