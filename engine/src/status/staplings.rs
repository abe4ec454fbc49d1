//! The mod_status section of the managed staplings (spec §6.3).

use crate::base::time::{self, Micros};
use crate::serving::stapling::StaplingView;
use crate::status::server::html_escape;
use crate::status::server::html_time;
use crate::status::server::job_status_lines;
use crate::status::server::ymd;

/// Sorted by MD name, then certificate id.
pub(crate) fn sorted(views: &[StaplingView]) -> Vec<&StaplingView> {
    let mut v: Vec<&StaplingView> = views.iter().collect();
    v.sort_by(|a, b| (&a.dir, &a.id).cmp(&(&b.dir, &b.id)));
    v
}

/// mod_status `?auto` lines of the managed staplings (§6.3).
pub(crate) fn staplings_text(views: &[StaplingView], now: Micros) -> String {
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
pub(crate) fn staplings_html(views: &[StaplingView], now: Micros) -> String {
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

#[cfg(test)]
mod stapling_tests {
    use super::*;
    use crate::serving::ocsp::{CertStatus, Response};
    use crate::status::mdstatus::add_ocsp;
    use serde_json::json;

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
