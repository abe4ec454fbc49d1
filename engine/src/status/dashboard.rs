//! The certificate dashboard (issue 28): md-status as a page for a
//! browser (`Accept: text/html`, or `?html`). One row per MD with its
//! state in words and colour, a timeline drawn as inline SVG (each
//! certificate's validity, its renew window, now), the last problem, OCSP
//! and CRL state. No script, no external asset; readable on a phone.
//! Everything on it comes from the md-status overview, so the page and the
//! JSON never disagree.

use crate::base::time::{self, Micros};
use serde_json::Value;
use std::fmt::Write;

/// Text for HTML (element content and quoted attributes).
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn str_at<'a>(j: &'a Value, ptr: &str) -> Option<&'a str> {
    j.pointer(ptr).and_then(Value::as_str)
}

fn time_at(j: &Value, ptr: &str) -> Option<Micros> {
    str_at(j, ptr).and_then(time::parse_rfc822)
}

/// How an MD stands, for the admin: (css class, words).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Standing {
    pub class: &'static str,
    pub text: String,
    pub problem: Option<String>,
}

/// Seven days: a renewal due within them is "due soon".
const SOON: Micros = 7 * 86400 * time::USEC_PER_SEC;

pub(crate) fn standing(md: &Value, now: Micros) -> Standing {
    let until = time_at(md, "/cert/valid/until");
    let renew_at = time_at(md, "/renew-at");
    let r = md.get("renewal");
    let errors = r
        .and_then(|r| r.get("errors"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let finished = r
        .and_then(|r| r.get("finished"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let problem = r.and_then(|r| {
        let d = str_at(r, "/last/detail").or_else(|| str_at(r, "/last/problem"))?;
        Some(d.to_string())
    });
    let store = md
        .pointer("/store/problems")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .map(str::to_string);
    let s = |class, text: &str, problem| Standing {
        class,
        text: text.to_string(),
        problem,
    };
    if errors > 0 && !finished {
        return s("error", &format!("error ({errors}×)"), problem.or(store));
    }
    if store.is_some() {
        return s("error", "store problem", store);
    }
    if finished {
        let live = str_at(md, "/live") == Some("staging");
        return s(
            "renewed",
            if live {
                "renewed, served hot"
            } else {
                "renewed, waiting for restart"
            },
            None,
        );
    }
    // due, and the renewal job has it (or its first certificate is on
    // its way)
    let renew = md.get("renew").and_then(Value::as_bool) == Some(true);
    let watched = md.get("watched").and_then(Value::as_bool) != Some(false);
    if renew && watched {
        return s("renewing", "renewing", None);
    }
    match (until, renew_at) {
        (None, _) => s("none", "no certificate", None),
        (Some(u), _) if u <= now => s("error", "expired", None),
        (_, Some(at)) if at <= now + SOON => s("due", "due soon", None),
        _ => s("ok", "ok", None),
    }
}

/// Whether md-status answers with its page for browsers: asked for with
/// `?html`, or by a client that prefers HTML (a browser's `Accept`); JSON
/// for everything else (curl, monitoring, `*/*`).
pub fn wants_html(args: Option<&str>, accept: Option<&str>) -> bool {
    if args.is_some_and(|a| a.split('&').any(|p| p == "html" || p.starts_with("html="))) {
        return true;
    }
    accept.is_some_and(|a| {
        a.split(',')
            .map(|t| t.split(';').next().unwrap_or("").trim())
            .take_while(|t| *t != "*/*")
            .any(|t| t.eq_ignore_ascii_case("text/html"))
    })
}

/// The time span the timelines share: every certificate and now, with a
/// little room on both sides.
fn span(mds: &[Value], now: Micros) -> (Micros, Micros) {
    let mut lo = now;
    let mut hi = now;
    for m in mds {
        if let Some(f) = time_at(m, "/cert/valid/from") {
            lo = lo.min(f);
        }
        if let Some(u) = time_at(m, "/cert/valid/until") {
            hi = hi.max(u);
        }
    }
    let pad = ((hi - lo) / 20).max(86400 * time::USEC_PER_SEC);
    (lo - pad, hi + pad)
}

/// One MD's timeline: its validity, its renew window, now.
fn timeline(md: &Value, st: &Standing, (lo, hi): (Micros, Micros), now: Micros) -> String {
    const W: f64 = 600.0;
    let x = |t: Micros| ((t - lo) as f64 / (hi - lo).max(1) as f64 * W).clamp(0.0, W);
    let mut svg = format!(
        "<svg class=\"timeline\" viewBox=\"0 0 {W} 24\" preserveAspectRatio=\"none\" role=\"img\" \
         aria-label=\"validity of {}\">",
        esc(str_at(md, "/name").unwrap_or(""))
    );
    svg.push_str("<rect x=\"0\" y=\"10\" width=\"600\" height=\"4\" class=\"axis\"/>");
    if let (Some(f), Some(u)) = (
        time_at(md, "/cert/valid/from"),
        time_at(md, "/cert/valid/until"),
    ) {
        let _ = write!(
            svg,
            "<rect class=\"valid {}\" x=\"{:.1}\" y=\"4\" width=\"{:.1}\" height=\"16\" rx=\"3\">\
             <title>valid {} until {}</title></rect>",
            st.class,
            x(f),
            (x(u) - x(f)).max(1.0),
            esc(str_at(md, "/cert/valid/from").unwrap_or("")),
            esc(str_at(md, "/cert/valid/until").unwrap_or(""))
        );
        if let Some(at) = time_at(md, "/renew-at").filter(|at| *at < u) {
            let from = at.max(f);
            let _ = write!(
                svg,
                "<rect class=\"window\" x=\"{:.1}\" y=\"4\" width=\"{:.1}\" height=\"16\" rx=\"3\">\
                 <title>renew from {}</title></rect>",
                x(from),
                (x(u) - x(from)).max(1.0),
                esc(str_at(md, "/renew-at").unwrap_or(""))
            );
        }
    }
    let _ = write!(
        svg,
        "<line class=\"now\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"0\" y2=\"24\"><title>now</title></line></svg>",
        x(now)
    );
    svg
}

/// OCSP and CRL state in a few words.
fn revocation(md: &Value) -> String {
    let mut out = Vec::new();
    if let Some(certs) = md.get("cert").and_then(Value::as_object) {
        for (k, c) in certs {
            if let Some(s) = str_at(c, "/ocsp/status") {
                out.push(format!("OCSP {k}: {s}"));
            }
        }
    }
    if let Some(r) = md.get("stapling-reason").and_then(Value::as_object) {
        for (k, v) in r {
            out.push(format!("OCSP {k}: {}", v.as_str().unwrap_or("")));
        }
    }
    for c in md
        .pointer("/crl/certs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let status = c.get("status").and_then(Value::as_str).unwrap_or("?");
        out.push(format!("CRL: {status}"));
    }
    out.join("; ")
}

/// The page for an md-status overview (`{"managed-domains": [...]}`).
pub fn html(overview: &Value, now: Micros) -> String {
    let mds: Vec<Value> = overview
        .get("managed-domains")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let range = span(&mds, now);
    let mut rows = String::new();
    for m in &mds {
        let st = standing(m, now);
        let name = str_at(m, "/name").unwrap_or("");
        let names = m
            .get("domains")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(esc)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let short = |ptr: &str| {
            time_at(m, ptr)
                .map(time::short_utc)
                .unwrap_or_else(|| "–".into())
        };
        let until = short("/cert/valid/until");
        let renew = short("/renew-at");
        let _ = write!(
            rows,
            "<tr class=\"md {class}\" data-md=\"{n}\">\
             <td class=\"name\"><b>{n}</b><br><small>{names}</small></td>\
             <td class=\"state\"><span class=\"badge {class}\">{state}</span></td>\
             <td class=\"until\"><small>valid until</small><br><time>{until}</time></td>\
             <td class=\"renew\"><small>renew at</small><br><time>{renew}</time></td>\
             <td class=\"line\">{svg}</td>\
             <td class=\"problem\">{problem}<small>{rev}</small></td></tr>",
            class = st.class,
            n = esc(name),
            state = esc(&st.text),
            until = esc(&until),
            renew = esc(&renew),
            svg = timeline(m, &st, range, now),
            problem = st
                .problem
                .as_deref()
                .map(|p| format!("<span class=\"error-text\">{}</span><br>", esc(p)))
                .unwrap_or_default(),
            rev = esc(&revocation(m)),
        );
    }
    if mds.is_empty() {
        rows.push_str("<tr><td colspan=\"6\">no managed domains</td></tr>");
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Certificates</title><style>{STYLE}</style></head><body>\
         <h1>Certificates</h1><p class=\"meta\">{n} managed domain{s} · {now} · \
         <span class=\"key\"><i class=\"k valid\"></i>valid <i class=\"k window\"></i>renew window \
         <i class=\"k now\"></i>now</span></p>\
         <table><tbody>{rows}</tbody></table></body></html>\n",
        n = mds.len(),
        s = if mds.len() == 1 { "" } else { "s" },
        now = esc(&time::short_utc(now)),
    )
}

const STYLE: &str = "\
body{font:15px/1.4 system-ui,sans-serif;margin:1em;color:#222;background:#fafafa}\
h1{font-size:1.4em;margin:.2em 0}.meta{color:#555}\
table{border-collapse:collapse;width:100%}\
td{padding:.5em;border-bottom:1px solid #ddd;vertical-align:top}time{white-space:nowrap}td.problem{max-width:28em}\
td.line{width:40%;min-width:12em}svg.timeline{width:100%;height:24px}\
.axis{fill:#e4e4e4}.window{fill:#000;opacity:.25}.now{stroke:#c00;stroke-width:2}\
.valid{fill:#2e8b57}.valid.due{fill:#d89000}.valid.error{fill:#c62828}\
.valid.renewing{fill:#1e6fd9}.valid.renewed{fill:#6a5acd}\
.badge{display:inline-block;padding:.1em .5em;border-radius:1em;color:#fff;white-space:nowrap}\
.badge.ok{background:#2e8b57}.badge.due{background:#d89000}.badge.error{background:#c62828}\
.badge.renewing{background:#1e6fd9}.badge.renewed{background:#6a5acd}.badge.none{background:#777}\
.error-text{color:#c62828}small{color:#666}\
.key i.k{display:inline-block;width:1em;height:.7em;margin:0 .2em 0 .6em}\
i.k.valid{background:#2e8b57}i.k.window{background:#999}i.k.now{background:#c00;width:2px}\
@media (max-width:700px){table,tbody,tr,td{display:block;width:auto}\
tr.md{border:1px solid #ddd;border-radius:6px;margin:.6em 0;background:#fff}\
td{border:0;padding:.3em .6em}td.line{width:auto}}";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DAY: Micros = 86400 * time::USEC_PER_SEC;

    fn md(name: &str, from: Micros, until: Micros, renew_at: Micros) -> Value {
        json!({"name": name, "domains": [name],
            "cert": {"rsa": {}, "valid": {"from": time::rfc822(from), "until": time::rfc822(until)}},
            "renew-at": time::rfc822(renew_at)})
    }

    #[test]
    fn who_gets_the_page() {
        let firefox = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(wants_html(None, Some(firefox)));
        assert!(wants_html(Some("html"), None));
        assert!(wants_html(Some("x=1&html"), Some("*/*")));
        assert!(!wants_html(None, Some("*/*")));
        assert!(!wants_html(None, None));
        assert!(!wants_html(None, Some("application/json")));
        assert!(!wants_html(Some("htmlx"), Some("*/*, text/html")));
    }

    #[test]
    fn states_in_words() {
        let now = 1_800_000_000 * time::USEC_PER_SEC;
        let ok = md("ok.org", now - 10 * DAY, now + 80 * DAY, now + 50 * DAY);
        assert_eq!(standing(&ok, now).text, "ok");
        let soon = md("soon.org", now - 80 * DAY, now + 10 * DAY, now + 3 * DAY);
        assert_eq!(standing(&soon, now).class, "due");
        let mut err = md("err.org", now - 80 * DAY, now + 10 * DAY, now - DAY);
        err["renewal"] =
            json!({"errors": 3, "last": {"problem": "urn:x", "detail": "CA said <no>"}});
        let st = standing(&err, now);
        assert_eq!((st.class, st.text.as_str()), ("error", "error (3×)"));
        assert_eq!(st.problem.as_deref(), Some("CA said <no>"));
        let mut renewing = md("r.org", now - 80 * DAY, now + 10 * DAY, now - DAY);
        renewing["renewal"] = json!({"errors": 0});
        renewing["renew"] = json!(true);
        assert_eq!(standing(&renewing, now).text, "renewing");
        let none = json!({"name": "n.org", "cert": {}, "watched": false});
        assert_eq!(standing(&none, now).text, "no certificate");
        let first = json!({"name": "f.org", "cert": {}, "renew": true, "watched": true});
        assert_eq!(standing(&first, now).text, "renewing");
        let page = html(
            &json!({"managed-domains": [ok, soon, err, renewing, none]}),
            now,
        );
        assert_eq!(page.matches("<tr class=\"md ").count(), 5);
        assert_eq!(page.matches("<svg class=\"timeline\"").count(), 5);
        // escaped, and no script or external asset
        assert!(page.contains("CA said &lt;no&gt;"));
        assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("href="));
    }
}
