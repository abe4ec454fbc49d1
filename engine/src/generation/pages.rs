//! What the request path gets from the generation: the status pages
//! (spec §6) and tls-alpn-01 answers (§2.7).

use super::*;

impl Generation {
    /// The `md-status` (JSON, §6.1; the dashboard page for a browser with
    /// `html`) or `md-metrics` page: content type and text; None before
    /// start-up is complete.
    pub fn status_page(
        &self,
        host: &dyn Host,
        metrics: bool,
        html: bool,
        path_info: Option<&str>,
    ) -> Option<(&'static str, String)> {
        let rt = self.runtime()?;
        let now = time::now();
        if metrics {
            let text = crate::status::server::metrics(&crate::generation::report::views(&rt), now);
            return Some(("text/plain; version=0.0.4; charset=utf-8", text));
        }
        let staplings = self.stapling.views(now);
        let log = |level, msg: &str| host.log(level, msg);
        let staged = |md: &str| self.hot.serving_staged(md, now, &TlsSet::load, &log);
        let body = crate::generation::report::md_status(&rt, &staplings, path_info, &staged, now);
        if html {
            let overview = if body.get("managed-domains").is_some() {
                body
            } else {
                serde_json::json!({ "managed-domains": [body] })
            };
            let page = crate::status::dashboard::html(&overview, now);
            return Some(("text/html; charset=utf-8", page));
        }
        Some(("application/json", crate::base::util::json_pretty(&body)))
    }

    /// The tls-alpn-01 certificate and key (PEM) for `name` (lowercase),
    /// or None (logged: no such challenge).
    pub fn tls_alpn01(&self, host: &dyn Host, name: &str) -> Option<(String, String)> {
        let rt = self.runtime()?;
        let Some((cert, key)) = crate::generation::report::tls_alpn01(&rt, name) else {
            host.log(
                Level::Info,
                &format!("AH10080: {name}: unknown tls-alpn-01 challenge host"),
            );
            return None;
        };
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        Some((text(cert), text(key)))
    }

    /// A mod_status section (with `MDServerStatus on`): the managed
    /// certificates, or the staplings; `short` is the `?auto` form.
    pub fn status_section(&self, staplings: bool, short: bool) -> Option<String> {
        let rt = self.runtime().filter(|rt| rt.global.server_status)?;
        let now = time::now();
        if staplings {
            let views = self.stapling.views(now);
            return Some(if short {
                crate::status::staplings::staplings_text(&views, now)
            } else {
                crate::status::staplings::staplings_html(&views, now)
            });
        }
        let v = crate::generation::report::views(&rt);
        let (name, url) = (&rt.global.cert_check_name, &rt.global.cert_check_url);
        Some(if short {
            crate::status::server::server_status_text(&v, name, url, now)
        } else {
            crate::status::server::server_status_html(&v, name, url, now)
        })
    }
}
