//! The mod_status section of the managed certificates (spec §6.3): the
//! `?auto` lines and the HTML table, and Prometheus metrics (`md-metrics`).

use crate::base::time::{self, Micros};
use crate::config::{Md, State};
use crate::lifecycle::jobfile::Job;
use crate::lifecycle::state::CertInfo;

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

pub(crate) fn ca_name(url: &str) -> String {
    crate::config::KNOWN_CAS
        .iter()
        .find(|(_, u)| *u == url)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| crate::base::uri::host_of(url).unwrap_or(url).to_string())
}

pub(crate) fn ymd(t: Micros) -> String {
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

pub(crate) fn status_word(v: &MdView<'_>, now: Micros) -> String {
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

pub(crate) fn validity(certs: &[Option<CertInfo>]) -> Option<(Micros, Micros)> {
    let v: Vec<&CertInfo> = certs.iter().flatten().collect();
    if v.is_empty() {
        return None;
    }
    Some((
        v.iter().map(|c| c.not_before).max()?,
        v.iter().map(|c| c.not_after).min()?,
    ))
}

pub(crate) fn due(v: &MdView<'_>, now: Micros) -> bool {
    v.renew_at > 0 && v.renew_at <= now
}

pub(crate) fn job_failed(j: &Job) -> bool {
    j.errors > 0 || j.last.as_ref().is_some_and(|l| l.status != 0)
}

/// mod_status `?auto` lines (§6.3).
pub(crate) fn server_status_text(
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
pub(crate) fn job_status_lines(out: &mut String, p: &str, j: &Job) {
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

pub(crate) fn html_time(t: Micros, now: Micros) -> String {
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

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&#39;")
        .replace('"', "&quot;")
}

/// mod_status HTML section (§6.3).
pub(crate) fn server_status_html(
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

pub(crate) fn label(s: &str) -> String {
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
pub(crate) fn last_finished(job: &Job) -> Micros {
    job.last_log(&crate::lifecycle::jobfile::LogKind::Finished)
        .map_or(0, |e| e.when)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::crypto::{self, Key};
    use crate::base::keyspec::KeySpec;
    use crate::status::mdstatus::cert_json;
    use crate::status::mdstatus::certificate_status;
    use crate::status::mdstatus::certs_json;
    use serde_json::json;

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
