//! Status rendering (spec §6.1): the `md-status` JSON of an MD and the
//! overview.

pub mod report;

use crate::base::time::{self, Micros};
use crate::config::{Md, State};
use crate::lifecycle::jobfile::Job;
use crate::lifecycle::state::CertInfo;
use crate::store::{Group, Store};
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
    o.extend(validity_serial_fingerprint(info, &c)?);
    if let Some(id) = crate::base::crypto::ari_cert_id(&c) {
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
pub fn overview(items: Vec<Value>) -> Value {
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
fn validity_serial_fingerprint(info: &CertInfo, c: &X509) -> Option<Map<String, Value>> {
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

/// What the server-status section and the metrics show about one MD.
pub struct MdView<'a> {
    pub md: &'a Md,
    pub certs: &'a [Option<CertInfo>],
    pub renew_at: Micros,
    /// The staging job, read live (None: no job).
    pub job: Option<std::sync::Arc<Job>>,
    /// Newest successful renewal known (µs), 0 if none.
    pub last_success: Micros,
}

fn ca_name(url: &str) -> String {
    crate::config::KNOWN_CAS
        .iter()
        .find(|(_, u)| *u == url)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| crate::base::uri::host_of(url).unwrap_or(url).to_string())
}

fn ymd(t: Micros) -> String {
    // "Sun, 29 Nov 2026 11:01:12 GMT" -> 2026-11-29
    let s = time::rfc822(t);
    let p: Vec<&str> = s.split_whitespace().collect();
    let m = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|x| *x == p[2])
    .unwrap_or(0)
        + 1;
    format!("{}-{m:02}-{}", p[3], p[1])
}

fn status_word(v: &MdView<'_>, now: Micros) -> String {
    match v.md.found.state {
        State::Incomplete => match &v.md.found.descr {
            Some(d) => format!("incomplete: {d}"),
            None => "incomplete".into(),
        },
        State::Complete => {
            let until = v
                .certs
                .iter()
                .flatten()
                .map(|c| c.not_after)
                .min()
                .unwrap_or(0);
            if until > 0 && until < now {
                "expired".into()
            } else {
                "good".into()
            }
        }
        State::Error => "error".into(),
        State::MissingInformation => "missing information".into(),
        _ => "unknown".into(),
    }
}

fn validity(certs: &[Option<CertInfo>]) -> Option<(Micros, Micros)> {
    let v: Vec<&CertInfo> = certs.iter().flatten().collect();
    if v.is_empty() {
        return None;
    }
    Some((
        v.iter().map(|c| c.not_before).max()?,
        v.iter().map(|c| c.not_after).min()?,
    ))
}

fn due(v: &MdView<'_>, now: Micros) -> bool {
    v.renew_at > 0 && v.renew_at <= now
}

fn job_failed(j: &Job) -> bool {
    j.errors > 0 || j.last.as_ref().is_some_and(|l| l.status != 0)
}

/// mod_status `?auto` lines (§6.3).
pub fn server_status_text(
    views: &[MdView<'_>],
    check_name: &str,
    check_url: &str,
    now: Micros,
) -> String {
    let mut out = String::new();
    let ok = views
        .iter()
        .filter(|v| v.md.found.state == State::Complete)
        .count();
    let renew = views.iter().filter(|v| due(v, now)).count();
    let errored = views
        .iter()
        .filter(|v| {
            (due(v, now) && v.job.as_deref().is_some_and(job_failed))
                || !matches!(v.md.found.state, State::Complete | State::Incomplete)
        })
        .count();
    let ready = views
        .iter()
        .filter(|v| due(v, now) && v.job.as_ref().is_some_and(|j| j.finished))
        .count();
    out.push_str(&format!("ManagedCertificatesTotal: {}\n", views.len()));
    out.push_str(&format!("ManagedCertificatesOK: {ok}\n"));
    out.push_str(&format!("ManagedCertificatesRenew: {renew}\n"));
    out.push_str(&format!("ManagedCertificatesErrored: {errored}\n"));
    out.push_str(&format!("ManagedCertificatesReady: {ready}\n"));
    for (i, v) in views.iter().enumerate() {
        let p = format!("ManagedDomain[{i}]");
        out.push_str(&format!("{p}Domain: {}\n", v.md.name));
        for (k, d) in v.md.domains.iter().enumerate() {
            out.push_str(&format!("{p}Names[{k}]: {d}\n"));
        }
        out.push_str(&format!("{p}Status: {}\n", status_word(v, now)));
        if let Some((from, until)) = validity(v.certs) {
            if from > now {
                out.push_str(&format!("{p}ValidFrom: {}\n", ymd(from)));
            }
            out.push_str(&format!("{p}ValidUntil: {}\n", ymd(until)));
        }
        let urls: Vec<String> = match &v.md.found.ca_url {
            Some(u) => vec![u.clone()],
            None => v.md.ca_urls.clone(),
        };
        for (k, u) in urls.iter().enumerate() {
            let n = if k == 0 { String::new() } else { k.to_string() };
            out.push_str(&format!("{p}CAName{n}: {}\n", ca_name(u)));
            out.push_str(&format!("{p}CAURL{n}: {u}\n"));
        }
        if v.md.stapling {
            out.push_str(&format!("{p}Stapling: on\n"));
        }
        for info in v.certs.iter().flatten() {
            let fp = &info.sha256_hex;
            out.push_str(&format!("{p}CheckAtType: {}\n", info.key_name));
            out.push_str(&format!("{p}CheckAtName: {check_name}\n"));
            out.push_str(&format!("{p}CheckAtURL: {check_url}{fp}\n"));
            out.push_str(&format!("{p}CheckAtFingerprint: {fp}\n"));
        }
        match &v.job {
            Some(j) => {
                job_status_lines(&mut out, &p, j);
                if j.finished {
                    let n = v.md.effective_specs().len();
                    out.push_str(&format!("{p}ActivityNewStaged: {n}\n"));
                } else if let Some(d) = j.last.as_ref().and_then(|l| l.detail.as_ref()) {
                    out.push_str(&format!("{p}ActivityLastDetail: {d}\n"));
                }
                if j.next_run > now && !j.finished {
                    out.push_str(&format!(
                        "{p}ActivityNextRun: {}\n",
                        time::secs(j.next_run - now)
                    ));
                }
            }
            // as the C module: a renewal time first (a static or manual MD
            // has one too), "Manual renew" only without
            None if v.renew_at > now => out.push_str(&format!(
                "{p}ActivityRenew: {}\n",
                time::secs(v.renew_at - now)
            )),
            None if v.renew_at != 0 => out.push_str(&format!("{p}Activity: Pending\n")),
            None if v.md.renew_mode == crate::config::RenewMode::Manual => {
                out.push_str(&format!("{p}Activity: Manual renew\n"))
            }
            None => {}
        }
    }
    out
}

/// `?auto` lines of a job's last result (if it failed) and whether it
/// finished, under the line prefix `p`.
fn job_status_lines(out: &mut String, p: &str, j: &Job) {
    if let Some(l) = j.last.as_ref().filter(|l| l.status != 0) {
        out.push_str(&format!(
            "{p}ActivityLastStatus: {}\n",
            crate::acme::status::describe(l.status)
        ));
        out.push_str(&format!(
            "{p}ActivityLastProblem: {}\n",
            l.problem.as_deref().unwrap_or("(null)")
        ));
    }
    out.push_str(&format!(
        "{p}ActivityFinished: {}\n",
        if j.finished { "yes" } else { "no" }
    ));
}

fn html_time(t: Micros, now: Micros) -> String {
    let d = t - now;
    if d.abs() >= time::from_secs(4 * time::SECS_PER_DAY) {
        format!(
            "<span title='{}' style='white-space: nowrap;'>{}</span>",
            time::rfc822(t),
            ymd(t)
        )
    } else if d >= 0 {
        format!(
            "<span title='{}'>in {}</span>",
            time::rfc822(t),
            time::print_duration(d, true)
        )
    } else {
        format!(
            "<span title='{}'>{} ago</span>",
            time::rfc822(t),
            time::print_duration(-d, true)
        )
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;")
        .replace('"', "&quot;")
}

/// mod_status HTML section (§6.3).
pub fn server_status_html(
    views: &[MdView<'_>],
    check_name: &str,
    check_url: &str,
    now: Micros,
) -> String {
    if views.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("<hr>\n<h3>Managed Certificates</h3>\n<table class='md_status'><thead><tr>\n");
    for h in [
        "Domain", "Names", "Status", "Valid", "CA", "Stapling", "CheckAt", "Activity",
    ] {
        out.push_str(&format!("<th class=\"{h}\">{h}</th>"));
    }
    out.push_str("</tr>\n</thead><tbody>");
    for (i, v) in views.iter().enumerate() {
        out.push_str(&format!(
            "<tr class=\"{}\">",
            if i % 2 == 0 { "even" } else { "odd" }
        ));
        out.push_str(&format!("<td>{}</td>", html_escape(&v.md.name)));
        out.push_str(&format!(
            "<td><div style=\"max-width:400px;\">{}</div></td>",
            html_escape(&v.md.domains.join(" "))
        ));
        out.push_str(&format!("<td>{}</td>", html_escape(&status_word(v, now))));
        out.push_str("<td>");
        if let Some((from, until)) = validity(v.certs) {
            if from > now {
                out.push_str(&format!("from {} ", html_time(from, now)));
            }
            out.push_str(&format!(
                "until <span title='{} - {}' style='white-space: nowrap;'>{}</span>",
                time::rfc822(from),
                time::rfc822(until),
                ymd(until)
            ));
        }
        out.push_str("</td><td>");
        let urls: Vec<String> = match &v.md.found.ca_url {
            Some(u) => vec![u.clone()],
            None => v.md.ca_urls.clone(),
        };
        let links: Vec<String> = urls
            .iter()
            .map(|u| {
                format!(
                    "<a href='{}'>{}</a>",
                    html_escape(u),
                    html_escape(&ca_name(u))
                )
            })
            .collect();
        out.push_str(&links.join(" "));
        out.push_str(&format!(
            "</td><td>{}</td><td>",
            if v.md.stapling { "on" } else { "" }
        ));
        for info in v.certs.iter().flatten() {
            out.push_str(&format!(
                "<a href=\"{}{}\">{}[{}]</a><br>",
                html_escape(check_url),
                info.sha256_hex,
                html_escape(check_name),
                html_escape(&info.key_name)
            ));
        }
        out.push_str("</td><td>");
        match &v.job {
            Some(j) => {
                if let Some(l) = j.last.as_ref().filter(|l| l.status != 0) {
                    out.push_str(&format!(
                        " Error[{}]: {}",
                        crate::acme::status::describe(l.status),
                        html_escape(l.problem.as_deref().unwrap_or(""))
                    ));
                }
                if j.finished {
                    out.push_str(&format!(
                        "  finished, {} new certificate{} staged.",
                        v.md.effective_specs().len(),
                        if v.md.effective_specs().len() == 1 {
                            ""
                        } else {
                            "s"
                        }
                    ));
                } else if let Some(d) = j.last.as_ref().and_then(|l| l.detail.as_ref()) {
                    out.push_str(&format!(" {}", html_escape(d)));
                }
                if j.next_run > now && !j.finished {
                    out.push_str(&format!("\nNext run {}", html_time(j.next_run, now)));
                } else {
                    out.push_str("\nOngoing...");
                }
            }
            None if v.renew_at > now => {
                out.push_str(&format!("Renew {}", html_time(v.renew_at, now)))
            }
            None if v.renew_at != 0 => out.push_str("Pending"),
            None if v.md.renew_mode == crate::config::RenewMode::Manual => {
                out.push_str("Manual renew")
            }
            None => {}
        }
        out.push_str("</td></tr>\n");
    }
    out.push_str("</td></tr>\n</tbody>\n</table>\n");
    out
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus text exposition (version 0.0.4) of the managed domains.
pub fn metrics(views: &[MdView<'_>], now: Micros) -> String {
    let mut out = String::new();
    let secs = |t: Micros| t as f64 / 1e6;
    let mut family = |name: &str, help: &str, kind: &str, rows: Vec<(String, f64)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, v) in rows {
            out.push_str(&format!("{name}{labels} {v}\n"));
        }
    };
    let mut expiry = Vec::new();
    let mut renewal = Vec::new();
    for v in views {
        for info in v.certs.iter().flatten() {
            let l = format!(
                "{{md=\"{}\",key=\"{}\"}}",
                label(&v.md.name),
                label(&info.key_name)
            );
            expiry.push((l.clone(), secs(info.not_after)));
            renewal.push((
                l,
                secs(
                    info.not_after
                        - v.md
                            .renew_window
                            .length_within(info.not_after - info.not_before),
                ),
            ));
        }
    }
    family(
        "md_certificate_expiry_timestamp_seconds",
        "When the certificate expires (Unix time).",
        "gauge",
        expiry,
    );
    family(
        "md_certificate_renewal_timestamp_seconds",
        "When the renewal window of the certificate starts (Unix time).",
        "gauge",
        renewal,
    );
    let per_md = |f: &dyn Fn(&MdView<'_>) -> f64| -> Vec<(String, f64)> {
        views
            .iter()
            .map(|v| (format!("{{md=\"{}\"}}", label(&v.md.name)), f(v)))
            .collect()
    };
    family(
        "md_domain_state",
        "State of the managed domain: 0 unknown, 1 incomplete, 2 complete, 4 error.",
        "gauge",
        per_md(&|v| v.md.found.state.code() as f64),
    );
    family(
        "md_domain_renewal_errors",
        "Consecutive failed renewal attempts.",
        "gauge",
        per_md(&|v| v.job.as_ref().map_or(0, |j| j.errors) as f64),
    );
    family(
        "md_domain_renewal_due",
        "1 when the renewal of the managed domain is due.",
        "gauge",
        per_md(&|v| f64::from(u8::from(due(v, now)))),
    );
    family(
        "md_domain_last_renewal_timestamp_seconds",
        "When the last successful renewal finished (Unix time, 0 if none is known).",
        "gauge",
        per_md(&|v| secs(v.last_success)),
    );
    let mut by_state: std::collections::BTreeMap<&str, usize> = [
        ("unknown", 0),
        ("incomplete", 0),
        ("complete", 0),
        ("error", 0),
    ]
    .into_iter()
    .collect();
    for v in views {
        let k = match v.md.found.state {
            State::Incomplete => "incomplete",
            State::Complete => "complete",
            State::Error => "error",
            _ => "unknown",
        };
        *by_state.entry(k).or_default() += 1;
    }
    family(
        "md_domains",
        "Number of managed domains by state.",
        "gauge",
        by_state
            .into_iter()
            .map(|(k, n)| (format!("{{state=\"{k}\"}}"), n as f64))
            .collect(),
    );
    out
}

/// Newest `finished` entry of a job log (µs), 0 if none.
pub fn last_finished(job: &Job) -> Micros {
    job.last_log("finished").map_or(0, |e| e.when)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::crypto::{self, Key};
    use crate::base::keyspec::KeySpec;

    #[test]
    fn status_texts_and_metrics() {
        use crate::config::{MdDef, Settings};
        let def = MdDef::new(vec!["a.org".into(), "www.a.org".into()]);
        let mut md = Md::from_def(&def, &Settings::default(), None);
        md.ca_urls = vec![crate::config::LETSENCRYPT_URL.into()];
        md.found.state = State::Complete;
        let k = Key::generate(&KeySpec::Ec("P-256".into())).unwrap();
        let c = crypto::fallback_cert(&k, &md.domains).unwrap();
        let info = CertInfo::from_pem("rsa", &c.to_pem().unwrap()).unwrap();
        let certs = vec![Some(info.clone())];
        let now = info.not_before + time::from_secs(60);
        let v = MdView {
            md: &md,
            certs: &certs,
            renew_at: now + time::from_secs(100),
            job: None,
            last_success: 0,
        };
        let t = server_status_text(&[v], "crt.sh", "https://crt.sh?q=", now);
        assert!(t.starts_with("ManagedCertificatesTotal: 1\nManagedCertificatesOK: 1\nManagedCertificatesRenew: 0\n"), "{t}");
        assert!(t.contains("ManagedDomain[0]Names[1]: www.a.org\n"));
        assert!(t.contains("ManagedDomain[0]Status: good\n"));
        assert!(t.contains("ManagedDomain[0]CAName: LetsEncrypt\n"));
        assert!(t.contains("ManagedDomain[0]CheckAtURL: https://crt.sh?q="));
        assert!(t.contains("ManagedDomain[0]ActivityRenew: 100\n"));
        let v = MdView {
            md: &md,
            certs: &certs,
            renew_at: now,
            job: None,
            last_success: 0,
        };
        let h = server_status_html(&[v], "crt.sh", "https://crt.sh?q=", now);
        assert!(
            h.contains("<h3>Managed Certificates</h3>")
                && h.contains("<td>good</td>")
                && h.contains("Pending")
        );
        let v = MdView {
            md: &md,
            certs: &certs,
            renew_at: now,
            job: None,
            last_success: 0,
        };
        let m = metrics(&[v], now);
        assert!(m.contains("md_domain_state{md=\"a.org\"} 2\n"), "{m}");
        assert!(m.contains("md_domains{state=\"complete\"} 1\n"));
        assert!(m.contains("md_certificate_expiry_timestamp_seconds{md=\"a.org\",key=\"rsa\"}"));
        let cs = certificate_status(&md, &json!({"cert": certs_json(&certs)}));
        assert!(cs["rsa"]["sha256-fingerprint"].is_string() && cs["valid"].is_object());
        assert!(cs["rsa"].get("issuer-name").is_none() && cs.get("renewal").is_none());
    }

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
        // whole bytes, as BN_bn2hex prints them: an even number of digits,
        // a leading 0 only for a top byte below 0x10 (never a zero byte)
        assert_eq!(serial.len() % 2, 0, "{serial}");
        assert!(!serial.starts_with("00"), "{serial}");
        let all = certs_json(&[Some(info.clone()), None]);
        assert!(all["rsa"].is_object());
        assert_eq!(all["valid"]["until"], j["valid"]["until"]);
        assert_eq!(certs_json(&[None]), json!({}));
    }
}

/// One stapled certificate as the status pages show it (§6.3, §6.1).
#[derive(Debug, Clone)]
pub struct StaplingView {
    /// MD name or `other`.
    pub dir: String,
    /// SHA-1 of the certificate, hex.
    pub id: String,
    /// SHA-256 fingerprint of the certificate, hex.
    pub sha256: String,
    pub responder: String,
    pub resp: Option<crate::serving::ocsp::Response>,
    /// When the response gets refreshed (renewal window start).
    pub refresh_at: Option<Micros>,
    /// `ocsp/<dir>/job.json`.
    pub job: Option<Job>,
}

impl StaplingView {
    fn status(&self) -> &'static str {
        self.resp.as_ref().map_or("unknown", |r| r.status.as_str())
    }

    /// The OCSP job is only shown when the status is unknown or the
    /// refresh time has passed (§6.3).
    fn shown_job(&self, now: Micros) -> Option<&Job> {
        let due = self.resp.is_none() || self.refresh_at.is_some_and(|t| t <= now);
        self.job.as_ref().filter(|_| due)
    }
}

/// Sorted by MD name, then certificate id.
fn sorted(views: &[StaplingView]) -> Vec<&StaplingView> {
    let mut v: Vec<&StaplingView> = views.iter().collect();
    v.sort_by(|a, b| (&a.dir, &a.id).cmp(&(&b.dir, &b.id)));
    v
}

/// mod_status `?auto` lines of the managed staplings (§6.3).
pub fn staplings_text(views: &[StaplingView], now: Micros) -> String {
    let count = |s: &str| views.iter().filter(|v| v.status() == s).count();
    let mut out = format!(
        "ManagedStaplingsTotal: {}\nManagedStaplingsOK: {}\nManagedStaplingsRenew: {}\nManagedStaplingsErrored: {}\n",
        views.len(),
        count("good"),
        count("revoked"),
        count("unknown")
    );
    for (i, v) in sorted(views).into_iter().enumerate() {
        let p = format!("ManagedStapling[{i}]");
        out.push_str(&format!("{p}Domain: {}\n", v.dir));
        out.push_str(&format!("{p}CertificateID: {}\n", v.id));
        out.push_str(&format!("{p}OCSPStatus: {}\n", v.status()));
        if let Some(r) = &v.resp {
            // as for certificates, the start only when it is still ahead
            if r.valid_from > now {
                out.push_str(&format!("{p}StaplingValidFrom: {}\n", ymd(r.valid_from)));
            }
            out.push_str(&format!("{p}StaplingValidUntil: {}\n", ymd(r.valid_until)));
        }
        out.push_str(&format!(
            "{p}ResponderName: {}\n",
            crate::base::uri::host_of(&v.responder).unwrap_or(&v.responder)
        ));
        out.push_str(&format!("{p}ResponderURL: {}\n", v.responder));
        if let Some(t) = v.refresh_at {
            out.push_str(&format!("{p}ActivityRefresh: {}\n", time::secs(t - now)));
        }
        if let Some(j) = v.shown_job(now) {
            job_status_lines(&mut out, &p, j);
            if j.next_run > now && !j.finished {
                out.push_str(&format!(
                    "{p}ActivityNextRun: {}\n",
                    time::secs(j.next_run - now)
                ));
            } else {
                out.push_str(&format!("{p}Activity: Ongoing\n"));
            }
        }
    }
    out
}

/// mod_status HTML table of the managed staplings (§6.3); empty without
/// stapled certificates.
pub fn staplings_html(views: &[StaplingView], now: Micros) -> String {
    if views.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<hr>\n<h3>Managed Staplings</h3>\n<table class='md_ocsp_status'><thead><tr>\n\
<th class=\"Domain\">Domain</th><th class=\"CertificateID\">CertificateID</th>\
<th class=\"OCSPStatus\">OCSPStatus</th><th class=\"StaplingValid\">StaplingValid</th>\
<th class=\"Responder\">Responder</th><th class=\"Activity\">Activity</th></tr>\n</thead><tbody>",
    );
    for (i, v) in sorted(views).into_iter().enumerate() {
        out.push_str(&format!(
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>",
            if i % 2 == 0 { "even" } else { "odd" },
            html_escape(&v.dir),
            v.id,
            v.status()
        ));
        if let Some(r) = &v.resp {
            out.push_str(&format!(
                "until <span title='{} - {}' style='white-space: nowrap;'>{}</span>",
                time::rfc822(r.valid_from),
                time::rfc822(r.valid_until),
                ymd(r.valid_until)
            ));
        }
        out.push_str(&format!(
            "</td><td><a href='{}'>{}</a></td><td>",
            html_escape(&v.responder),
            html_escape(crate::base::uri::host_of(&v.responder).unwrap_or(&v.responder))
        ));
        if let Some(t) = v.refresh_at {
            out.push_str(&format!("Refresh {}", html_time(t, now)));
        }
        if let Some(j) = v.shown_job(now) {
            out.push_str(": ");
            if let Some(l) = j.last.as_ref().filter(|l| l.status != 0) {
                out.push_str(&format!(
                    " Error[{}]: {}",
                    crate::acme::status::describe(l.status),
                    html_escape(l.problem.as_deref().unwrap_or(""))
                ));
            }
            if let Some(e) = j.log.first() {
                if let Some(d) = &e.detail {
                    out.push_str(&format!(" {}", html_escape(d)));
                }
            }
            if j.next_run > now && !j.finished {
                out.push_str(&format!("\nNext run {}", html_time(j.next_run, now)));
            } else {
                out.push_str("\nOngoing...");
            }
        }
        out.push_str("</td></tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// md-status: adds `ocsp` {status, valid, renewal (the OCSP job.json)} to
/// each certificate of an MD with stapling that has OCSP data (matched by
/// fingerprint).
/// A certificate without a stapling entry that names no OCSP responder
/// gets no `ocsp` object (the C module's shape); our MD-level
/// `stapling-reason` says why, per key name (`certs`: the MD's
/// certificates).
pub fn add_ocsp(
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

#[cfg(test)]
mod stapling_tests {
    use super::*;
    use crate::serving::ocsp::{CertStatus, Response};

    fn view(dir: &str, id: &str, status: Option<CertStatus>) -> StaplingView {
        StaplingView {
            dir: dir.into(),
            id: id.into(),
            sha256: format!("fp-{id}"),
            responder: "http://ocsp.example.net/x".into(),
            resp: status.map(|s| Response {
                der: vec![1],
                status: s,
                valid_from: time::from_secs(1_800_000_000),
                valid_until: time::from_secs(1_800_600_000),
            }),
            refresh_at: status.map(|_| time::from_secs(1_800_400_000)),
            job: None,
        }
    }

    #[test]
    fn text_counts_and_sorts() {
        let now = time::from_secs(1_800_300_000);
        let v = vec![
            view("z.org", "bb", Some(CertStatus::Good)),
            view("a.org", "cc", Some(CertStatus::Revoked)),
            view("other", "aa", None),
        ];
        let t = staplings_text(&v, now);
        assert!(t.starts_with(
            "ManagedStaplingsTotal: 3\nManagedStaplingsOK: 1\nManagedStaplingsRenew: 1\nManagedStaplingsErrored: 1\n"
        ));
        assert!(t.contains("ManagedStapling[0]Domain: a.org\nManagedStapling[0]CertificateID: cc\nManagedStapling[0]OCSPStatus: revoked\n"));
        assert!(t.contains("ManagedStapling[0]ResponderName: ocsp.example.net\n"));
        assert!(t.contains("ManagedStapling[0]ActivityRefresh: 100000\n"));
        assert!(t.contains("ManagedStapling[2]Domain: z.org"));
        let h = staplings_html(&v, now);
        assert!(h.contains("<h3>Managed Staplings</h3>"));
        assert!(h.contains("<tr class=\"even\"><td>a.org</td><td>cc</td><td>revoked</td>"));
        assert!(staplings_html(&[], now).is_empty());
    }

    #[test]
    fn md_status_gets_ocsp_by_fingerprint() {
        let mut j = json!({"stapling": true, "cert": {"rsa": {"sha256-fingerprint": "fp-bb"}}});
        add_ocsp(
            &mut j,
            &[view("x", "bb", Some(CertStatus::Good))],
            false,
            &[],
        );
        assert_eq!(j["cert"]["rsa"]["ocsp"]["status"], "good");
        assert!(j["cert"]["rsa"]["ocsp"]["valid"]["until"].is_string());
        let mut off = json!({"stapling": false, "cert": {"rsa": {"sha256-fingerprint": "fp-bb"}}});
        add_ocsp(
            &mut off,
            &[view("x", "bb", Some(CertStatus::Good))],
            false,
            &[],
        );
        assert!(off["cert"]["rsa"].get("ocsp").is_none());
    }
}
