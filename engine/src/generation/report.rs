//! What the request path answers, from a generation's [`Runtime`]: the
//! status handlers (spec §6: md-status, `/.httpd/certificate-status`, the
//! views the mod_status sections and metrics render), http-01 (§2.6) and
//! the MD whose `MDRequireHttps` applies (§2.5). The glue only finds the
//! runtime and writes the answer.

use crate::base::crypto::FALLBACK_CN;
use crate::base::time::Micros;
use crate::config::vhost::domain_matches;
use crate::config::{Md, RenewMode};
use crate::generation::runtime::Runtime;
use crate::serving::stapling::StaplingView;
use crate::status::mdstatus;
use crate::status::server::{self, MdView};
use crate::store::Group;
use serde_json::{json, Value};

/// The status views of all MDs, sorted by name as the C module lists them,
/// with the staging jobs read live (parsed again only when changed).
pub(crate) fn views(rt: &Runtime) -> Vec<MdView<'_>> {
    let mut v: Vec<_> = rt
        .domains
        .iter()
        .map(|d| {
            let job = rt.jobs.get(&rt.store, &d.md.name);
            let last = job
                .as_ref()
                .map_or(0, |j| server::last_finished(j))
                .max(d.rt.last_success);
            MdView {
                md: &d.md,
                certs: &d.rt.certs,
                renew_at: d.rt.renew_at,
                job,
                last_success: last,
            }
        })
        .collect();
    v.sort_by(|a, b| a.md.name.cmp(&b.md.name));
    v
}

/// The md-status answer (§6.1): the MD named by the last segment of `want`
/// (or the one covering that domain, wildcards too) with its logs, else
/// the overview of all. `serving_staged` says whether hot activation
/// serves an MD's staged set (our `live` member).
pub(crate) fn md_status(
    rt: &Runtime,
    staplings: &[StaplingView],
    want: Option<&str>,
    serving_staged: &dyn Fn(&str) -> bool,
    now: Micros,
) -> Value {
    let want = want
        .filter(|p| p.len() > 1)
        .map(|p| p.rsplit('/').next().unwrap_or(""))
        .filter(|p| !p.is_empty());
    let leases = crate::store::lease::Leases::of(&rt.store, &rt.global);
    // the store as it is now (one stat per page): gone when its file
    // system went away (issue 25)
    let gone = (!rt.store.present()).then(|| {
        format!(
            "the store at {} is gone ({} is missing): renewals cannot be written until it is back",
            rt.store.location(),
            crate::store::STORE_FILE
        )
    });
    let gone = gone.or_else(|| rt.store.problem());
    let requests = rt.store.exists(crate::store::Group::Requests, "", "");
    // CRL results only where the CRL cache exists (one stat per page, not
    // one failed read per MD)
    let crls = rt.global.crl_check && crate::serving::crl::cache_ready(&rt.store);
    let one = |d: &crate::generation::runtime::ManagedDomain, full: bool| {
        let mut j = mdstatus::md_json(
            &rt.store,
            &d.md,
            &d.rt.cert_json,
            d.rt.renew_at,
            d.rt.watched,
            full,
            now,
        );
        mdstatus::add_ocsp(&mut j, staplings, full, &d.rt.certs);
        let live = if serving_staged(&d.md.name) {
            "staging"
        } else if d.rt.cert_json.as_object().is_some_and(|o| !o.is_empty()) {
            "domains"
        } else {
            "none"
        };
        let next =
            d.rt.watched
                .then(|| next_run(&j, d.rt.renew_at, now))
                .flatten();
        if let Some(o) = j.as_object_mut() {
            o.insert("live".into(), json!(live));
            if let Some(t) = next {
                o.insert("next-run".into(), json!(crate::base::time::rfc822(t)));
            }
            if let Some(leases) = &leases {
                o.insert("cluster".into(), cluster_json(leases, &d.md.name, now));
            }
            // what start-up could not do in the store, or found broken
            // there (issue 25): seen by monitoring before the next restart
            let mut problems = d.md.found.store_problems.clone();
            problems.extend(gone.clone());
            if !problems.is_empty() {
                o.insert("store".into(), json!({ "problems": problems }));
            }
            if crls {
                if let Some(c) = crate::serving::crl::status_json(&rt.store, &d.md.name) {
                    o.insert("crl".into(), c);
                }
            }
            // an operator's pending request (`a2md renew`)
            if let Some(r) = requests
                .then(|| crate::store::request::load(&rt.store, &d.md.name))
                .flatten()
            {
                let mut rj = json!({
                    "action": r.action,
                    "since": crate::base::time::rfc822(r.since_micros()),
                });
                if let Some(why) = r.reason {
                    rj["reason"] = json!(why);
                }
                o.insert("request".into(), rj);
            }
        }
        j
    };
    let found = want.and_then(|name| rt.md_named(name).or_else(|| domain_of(rt, name)));
    match found {
        Some(d) => one(d, true),
        None => mdstatus::overview(rt.domains.iter().map(|d| one(d, false)).collect()),
    }
}

/// Our md-status `cluster` member (`MDClusterNode`): this node, and which
/// node holds the MD's renewal lease since when (null when none does).
fn cluster_json(leases: &crate::store::lease::Leases, md: &str, now: Micros) -> Value {
    let lease = leases
        .holder(&crate::lifecycle::renew::lease_name(md))
        .map(|h| {
            json!({
                "node": h.node,
                "pid": h.pid,
                "since": crate::base::time::rfc822(h.since_micros()),
                "until": crate::base::time::rfc822(h.expires_micros()),
                "expired": h.expires_micros() < now,
            })
        })
        .unwrap_or(Value::Null);
    json!({ "node": leases.node(), "lease": lease })
}

/// When the renewal job looks at a watched MD next (our `next-run`): the
/// run its job asked for (back-off, an ARI time, an activation), else its
/// renewal time; not before now.
fn next_run(md_json: &Value, renew_at: Micros, now: Micros) -> Option<Micros> {
    md_json
        .pointer("/renewal/next-run")
        .and_then(Value::as_str)
        .and_then(crate::base::time::parse_rfc822)
        .or((renew_at > 0).then_some(renew_at))
        .map(|t| t.max(now))
}

/// The MD that covers `host`.
fn domain_of<'a>(
    rt: &'a Runtime,
    host: &str,
) -> Option<&'a crate::generation::runtime::ManagedDomain> {
    rt.md_covering(host)
}

/// `/.httpd/certificate-status` for `host` (§6.2); None when no MD covers it.
pub fn certificate_status(rt: &Runtime, host: &str, now: Micros) -> Option<Value> {
    let d = domain_of(rt, host)?;
    let j = mdstatus::md_json(
        &rt.store,
        &d.md,
        &d.rt.cert_json,
        d.rt.renew_at,
        d.rt.watched,
        false,
        now,
    );
    Some(mdstatus::certificate_status(&d.md, &j))
}

/// Whether `/.httpd/certificate-status` answers a request for `path` with
/// Host `host` (§6.2): on, and an MD covers the host. It answers on
/// connections handed a fallback certificate too, as the C module's does.
pub fn answers_certificate_status(rt: &Runtime, path: Option<&str>, host: Option<&str>) -> bool {
    path == Some(CERTIFICATE_STATUS_PATH)
        && rt.global.certificate_status
        && host.is_some_and(|h| domain_of(rt, h).is_some())
}

/// The path of the public certificate status (§6.2).
pub const CERTIFICATE_STATUS_PATH: &str = "/.httpd/certificate-status";

/// Whether a request on server `server`, over a connection whose server
/// certificate has the subject CN `cn`, gets 503: the vhost started with
/// its MD's fallback (hot activation) and this connection was handed it.
/// A connection handed the MD's own certificate is served.
pub fn fallback_unavailable(rt: &Runtime, server: usize, cn: Option<&str>) -> bool {
    rt.vhost(server).is_some_and(|v| v.fallback) && cn == Some(FALLBACK_CN)
}

/// The MD of server `server` that covers `host`, for `MDRequireHttps`.
pub fn https_md<'a>(rt: &'a Runtime, server: usize, host: &str) -> Option<&'a Md> {
    let v = rt.vhost(server)?;
    rt.mds_of(v)
        .map(|d| &d.md)
        .find(|m| m.domains.iter().any(|d| domain_matches(d, host)))
}

/// The answer to a request that may be the CA's http-01 check.
#[derive(Debug, PartialEq)]
pub enum Http01 {
    /// Not ours: other modules handle the request.
    Decline,
    /// Ours, but no challenge is set up for that token.
    NotFound,
    /// The key authorization to send.
    Respond(Vec<u8>),
    /// The store could not be read (AH10081).
    Failed(String),
}

const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// A host name we may use as a directory name in the store.
fn safe_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() < 256
        && !h.starts_with('.')
        && !h.contains("..")
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:*_[]".contains(&b))
}

/// http-01 (§2.6): `GET /.well-known/acme-challenge/<token>` for `host`.
pub fn http01(rt: &Runtime, path: &str, host: &str) -> Http01 {
    let Some(token) = path.strip_prefix(HTTP01_PREFIX) else {
        return Http01::Decline;
    };
    if token.is_empty() || token.contains('/') || !safe_name(host) {
        return Http01::Decline;
    }
    let md = domain_of(rt, host).map(|d| &d.md);
    if let Some(m) = md {
        if !m.ca_challenges.is_empty()
            && !m
                .ca_challenges
                .contains(&crate::base::challenge::ChallengeType::Http01)
        {
            return Http01::Decline;
        }
    }
    match rt
        .store
        .load_bytes(Group::Challenges, host, "acme-http-01.txt")
    {
        Ok(Some(data)) => Http01::Respond(data),
        Ok(None) => match md {
            Some(m) if m.renew_mode != RenewMode::Manual && m.cert_files.is_empty() => {
                Http01::NotFound
            }
            _ => Http01::Decline,
        },
        Err(e) => Http01::Failed(format!("AH10081: loading challenge {host} from store: {e}")),
    }
}

/// tls-alpn-01 (§2.7): the challenge certificate and key (PEM) for `name`;
/// the default (RSA) one first, then those of other key types.
pub fn tls_alpn01(rt: &Runtime, name: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    if !safe_name(name) {
        return None;
    }
    let mut sfxs = vec![String::new()];
    for f in rt.store.names_in(Group::Challenges, name) {
        if let Some(sfx) = f
            .strip_prefix("acme-tls-alpn-01-pubcert")
            .and_then(|x| x.strip_suffix(".pem"))
            .filter(|x| !x.is_empty())
        {
            sfxs.push(sfx.to_string());
        }
    }
    sfxs.into_iter().find_map(|sfx| {
        let load = |what: &str| {
            let file = format!("acme-tls-alpn-01-{what}{sfx}.pem");
            rt.store
                .load_bytes(Group::Challenges, name, &file)
                .ok()
                .flatten()
        };
        Some((load("pubcert")?, load("privkey")?))
    })
}
