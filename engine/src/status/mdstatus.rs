//! The `md-status` JSON of an MD and the overview (spec §6.1), and the
//! public `/.httpd/certificate-status` derived from it (§6.2).

use crate::base::time::{self, Micros};
use crate::config::Md;
use crate::lifecycle::jobfile::Job;
use crate::lifecycle::state::CertInfo;
use crate::serving::stapling::StaplingView;
use crate::store::Group;
use crate::store::Store;
use openssl::nid::Nid;
use openssl::x509::{X509NameRef, X509};
use serde_json::{json, Map, Value};

/// `X509_NAME_oneline`: `/C=US/O=Pebble/CN=...`.
pub(crate) fn name_oneline(n: &X509NameRef) -> String {
    n.entries()
        .map(|e| {
            let k = e.object().nid().short_name().unwrap_or("?");
            let v = e.data().to_string().unwrap_or_default();
            format!("/{k}={v}")
        })
        .collect()
}

/// The status object of one certificate.
pub(crate) fn cert_json(info: &CertInfo) -> Option<Value> {
    let c = info.leaf()?;
    let mut o = Map::new();
    o.insert("issuer-name".into(), json!(name_oneline(c.issuer_name())));
    if let Some(aia) = c.authority_info() {
        if let Some(uri) = aia
            .iter()
            .filter(|a| a.method().nid() == Nid::AD_CA_ISSUERS)
            .find_map(|a| a.location().uri().map(str::to_string))
        {
            o.insert("issuer-uri".into(), json!(uri));
        }
    }
    o.extend(validity_serial_fingerprint(info, &c)?);
    if let Some(id) = crate::base::crypto::ari_cert_id(&c) {
        o.insert("ari-cert-id".into(), json!(id));
    }
    Some(Value::Object(o))
}

/// `cert` object: one member per key with a certificate, plus `valid`, the
/// intersection of their validity.
pub(crate) fn certs_json(certs: &[Option<CertInfo>]) -> Value {
    let mut o = Map::new();
    let (mut from, mut until): (Micros, Micros) = (0, 0);
    for info in certs.iter().flatten() {
        if let Some(j) = cert_json(info) {
            from = from.max(info.not_before);
            until = if until == 0 {
                info.not_after
            } else {
                until.min(info.not_after)
            };
            o.insert(info.key_name.clone(), j);
        }
    }
    if !o.is_empty() {
        o.insert(
            "valid".into(),
            json!({"from": time::rfc822(from), "until": time::rfc822(until)}),
        );
    }
    Value::Object(o)
}

/// The staged certificates of an MD (for `renewal.cert`).
pub(crate) fn staged_certs(store: &Store, md: &Md) -> Vec<Option<CertInfo>> {
    md.effective_specs()
        .iter()
        .map(|s| {
            let pem = store
                .load_bytes(
                    Group::Staging,
                    &md.name,
                    &format!("pubcert{}.pem", s.file_suffix()),
                )
                .ok()
                .flatten()?;
            CertInfo::from_pem(&s.name(), &pem)
        })
        .collect()
}

/// The md-status object of one MD. `live_certs` (see [`certs_json`]),
/// `renew_at` and `watched` are what
/// post_config froze; the staging job is read live.
pub fn md_json(
    store: &Store,
    md: &Md,
    live_certs: &Value,
    renew_at: Micros,
    watched: bool,
    with_logs: bool,
    now: Micros,
) -> Value {
    let mut j = md.to_json_redacted();
    let o = j.as_object_mut().expect("md json is an object");
    o.insert(
        "cert".into(),
        if live_certs.is_object() {
            live_certs.clone()
        } else {
            json!({})
        },
    );
    if renew_at > 0 {
        o.insert("renew-at".into(), json!(time::rfc822(renew_at)));
    }
    o.insert("stapling".into(), json!(md.stapling));
    o.insert("watched".into(), json!(watched));
    let job = match store.load_json(Group::Staging, &md.name, "job.json") {
        Ok(j) => j,
        Err(e) => {
            // a broken job.json: an error for this MD, not for the page
            o.insert("error".into(), json!(crate::acme::status::EINVAL));
            o.insert("error-description".into(), json!(e.msg));
            None
        }
    };
    // A job claiming a finished, notified renewal without staged results is stale (§3.6).
    // The staged certificates, read once (only when a job exists).
    let staged = job
        .as_ref()
        .map(|_| staged_certs(store, md))
        .unwrap_or_default();
    let job = job.filter(|jj| {
        let parsed = Job::from_json(jj);
        !(parsed.finished && parsed.notified_renewed && staged.iter().any(Option::is_none))
    });
    if job.is_some() || renew_at <= now {
        o.insert("renew".into(), json!(true));
    }
    if let Some(mut jj) = job {
        if !with_logs {
            if let Some(jo) = jj.as_object_mut() {
                jo.remove("log");
            }
        }
        if let Some(jo) = jj.as_object_mut() {
            jo.insert("cert".into(), certs_json(&staged));
        }
        o.insert("renewal".into(), jj);
    }
    j
}

/// The overview: `{"version": ..., "managed-domains": [...]}`, MDs sorted by
/// name, without job logs.
pub(crate) fn overview(items: Vec<Value>) -> Value {
    let mut items = items;
    items.sort_by(|a, b| {
        a["name"]
            .as_str()
            .unwrap_or("")
            .cmp(b["name"].as_str().unwrap_or(""))
    });
    json!({"version": crate::MOD_MD_VERSION, "module": crate::MODULE_NAME, "managed-domains": items})
}

/// `valid`, `serial` (upper-case hex in whole bytes, as `BN_bn2hex`) and
/// `sha256-fingerprint` (lower-case hex) of a certificate.
pub(crate) fn validity_serial_fingerprint(info: &CertInfo, c: &X509) -> Option<Map<String, Value>> {
    let serial = c
        .serial_number()
        .to_bn()
        .ok()?
        .to_hex_str()
        .ok()?
        .to_string();
    let mut o = Map::new();
    o.insert(
        "valid".into(),
        json!({"from": time::rfc822(info.not_before), "until": time::rfc822(info.not_after)}),
    );
    o.insert("serial".into(), json!(serial));
    o.insert("sha256-fingerprint".into(), json!(info.sha256_hex));
    Some(o)
}

/// `/.httpd/certificate-status` (§6.2): the public part of the MD's
/// md-status object `md_json` (see [`md_json`]), as the C module derives
/// it: the `valid` of the installed certificates, one member per key spec
/// (its `valid`, `serial` and `sha256-fingerprint`; empty when that key has
/// no installed certificate), and, when md-status has a `renewal`, its
/// `cert` (the staged certificates, `{}` while none is staged) under
/// `renewal`. What hot activation serves does not change it: the top level
/// is what is installed, `renewal` what is staged.
pub fn certificate_status(md: &Md, md_json: &Value) -> Value {
    let mut o = Map::new();
    if let Some(v) = md_json.pointer("/cert/valid") {
        o.insert("valid".into(), v.clone());
    }
    for spec in md.effective_specs() {
        let name = spec.name();
        let mut c = Map::new();
        if let Some(cert) = md_json.get("cert").and_then(|c| c.get(&name)) {
            for k in ["valid", "serial", "sha256-fingerprint"] {
                if let Some(v) = cert.get(k) {
                    c.insert(k.into(), v.clone());
                }
            }
        }
        o.insert(name, Value::Object(c));
    }
    if let Some(r) = md_json.get("renewal") {
        let cert = r.get("cert").cloned().unwrap_or_else(|| json!({}));
        o.insert("renewal".into(), json!({ "cert": cert }));
    }
    Value::Object(o)
}

/// md-status: adds `ocsp` {status, valid, renewal (the OCSP job.json)} to
/// each certificate of an MD with stapling that has OCSP data (matched by
/// fingerprint).
/// A certificate without a stapling entry that names no OCSP responder
/// gets no `ocsp` object (the C module's shape); our MD-level
/// `stapling-reason` says why, per key name (`certs`: the MD's
/// certificates).
pub(crate) fn add_ocsp(
    md_json: &mut Value,
    views: &[StaplingView],
    with_logs: bool,
    certs: &[Option<CertInfo>],
) {
    if md_json.get("stapling") != Some(&Value::Bool(true)) {
        return;
    }
    let mut reasons = Map::new();
    let Some(cert_objs) = md_json.get_mut("cert").and_then(Value::as_object_mut) else {
        return;
    };
    for (name, c) in cert_objs.iter_mut() {
        let Some(fp) = c.get("sha256-fingerprint").and_then(Value::as_str) else {
            continue;
        };
        let Some(v) = views.iter().find(|v| v.sha256 == fp) else {
            if certs
                .iter()
                .flatten()
                .any(|i| &i.key_name == name && i.ocsp_url.is_none())
            {
                reasons.insert(name.clone(), json!(NO_RESPONDER));
            }
            continue;
        };
        let mut o = Map::new();
        o.insert("status".into(), json!(v.status()));
        if let Some(r) = &v.resp {
            o.insert(
                "valid".into(),
                json!({"from": time::rfc822(r.valid_from), "until": time::rfc822(r.valid_until)}),
            );
        }
        if let Some(j) = &v.job {
            let mut jj = j.to_json();
            if !with_logs {
                if let Some(x) = jj.as_object_mut() {
                    x.remove("log");
                }
            }
            o.insert("renewal".into(), jj);
        }
        if let Some(co) = c.as_object_mut() {
            co.insert("ocsp".into(), Value::Object(o));
        }
    }
    if let (false, Some(o)) = (reasons.is_empty(), md_json.as_object_mut()) {
        o.insert("stapling-reason".into(), Value::Object(reasons));
    }
}

/// Why a certificate of an MD with stapling has nothing stapled.
pub const NO_RESPONDER: &str = "the certificate names no OCSP responder: nothing to staple";
