//! Status rendering (spec §6.1): the `md-status` JSON of an MD and the
//! overview.

use crate::config::Md;
use crate::job::Job;
use crate::reg::CertInfo;
use crate::store::{Group, Store};
use crate::time::{self, Micros};
use crate::util::b64url_encode;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::x509::{X509NameRef, X509};
use serde_json::{json, Map, Value};

/// `X509_NAME_oneline`: `/C=US/O=Pebble/CN=...`.
pub fn name_oneline(n: &X509NameRef) -> String {
    n.entries()
        .map(|e| {
            let k = e.object().nid().short_name().unwrap_or("?");
            let v = e.data().to_string().unwrap_or_default();
            format!("/{k}={v}")
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The ARI certificate id (§4.9): AKI key id and the serial's magnitude.
pub fn ari_cert_id(c: &X509) -> Option<String> {
    let aki = c.authority_key_id()?;
    let serial = c.serial_number().to_bn().ok()?.to_vec();
    Some(format!(
        "{}.{}",
        b64url_encode(aki.as_slice()),
        b64url_encode(&serial)
    ))
}

/// The status object of one certificate.
pub fn cert_json(info: &CertInfo) -> Option<Value> {
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
    o.insert(
        "valid".into(),
        json!({"from": time::rfc822(info.not_before), "until": time::rfc822(info.not_after)}),
    );
    let serial = c
        .serial_number()
        .to_bn()
        .ok()?
        .to_hex_str()
        .ok()?
        .to_string();
    o.insert("serial".into(), json!(serial.trim_start_matches('0')));
    let fp = c.digest(MessageDigest::sha256()).ok()?;
    o.insert("sha256-fingerprint".into(), json!(hex(&fp)));
    if let Some(id) = ari_cert_id(&c) {
        o.insert("ari-cert-id".into(), json!(id));
    }
    Some(Value::Object(o))
}

/// `cert` object: one member per key with a certificate, plus `valid`, the
/// intersection of their validity.
pub fn certs_json(certs: &[Option<CertInfo>]) -> Value {
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
pub fn staged_certs(store: &Store, md: &Md) -> Vec<Option<CertInfo>> {
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

/// The md-status object of one MD. `certs`/`renew_at`/`watched` are what
/// post_config froze; the staging job is read live.
pub fn md_json(
    store: &Store,
    md: &Md,
    certs: &[Option<CertInfo>],
    renew_at: Micros,
    watched: bool,
    with_logs: bool,
    now: Micros,
) -> Value {
    let mut j = md.to_json();
    if let Some(h) = j.pointer_mut("/eab/hmac") {
        *h = json!("***");
    }
    let o = j.as_object_mut().expect("md json is an object");
    o.insert("cert".into(), certs_json(certs));
    if renew_at > 0 {
        o.insert("renew-at".into(), json!(time::rfc822(renew_at)));
    }
    o.insert("stapling".into(), json!(md.stapling));
    o.insert("watched".into(), json!(watched));
    let job = store
        .load_json(Group::Staging, &md.name, "job.json")
        .ok()
        .flatten();
    // A job claiming a finished, notified renewal without staged results is stale (§3.6).
    let job = job.filter(|jj| {
        let parsed = Job::from_json(jj);
        !(parsed.finished
            && parsed.notified_renewed
            && staged_certs(store, md).iter().any(Option::is_none))
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
            jo.insert("cert".into(), certs_json(&staged_certs(store, md)));
        }
        o.insert("renewal".into(), jj);
    }
    j
}

/// The overview: `{"version": ..., "managed-domains": [...]}`, MDs sorted by
/// name, without job logs.
pub fn overview(items: Vec<Value>) -> Value {
    let mut items = items;
    items.sort_by(|a, b| {
        a["name"]
            .as_str()
            .unwrap_or("")
            .cmp(b["name"].as_str().unwrap_or(""))
    });
    json!({"version": crate::MOD_MD_VERSION, "managed-domains": items})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{self, Key};
    use crate::keyspec::KeySpec;

    #[test]
    fn cert_objects() {
        let k = Key::generate(&KeySpec::Ec("P-256".into())).unwrap();
        let c = crypto::fallback_cert(&k, &["a.org".into()]).unwrap();
        let info = CertInfo::from_pem("rsa", &c.to_pem().unwrap()).unwrap();
        let j = cert_json(&info).unwrap();
        assert_eq!(j["issuer-name"], "/CN=Apache Managed Domain Fallback");
        let fp = j["sha256-fingerprint"].as_str().unwrap();
        assert_eq!(fp.len(), 64);
        assert_eq!(fp, fp.to_lowercase());
        let serial = j["serial"].as_str().unwrap();
        assert_eq!(serial, serial.to_uppercase());
        assert!(!serial.starts_with('0'));
        let all = certs_json(&[Some(info.clone()), None]);
        assert!(all["rsa"].is_object());
        assert_eq!(all["valid"]["until"], j["valid"]["until"]);
        assert_eq!(certs_json(&[None]), json!({}));
    }
}
