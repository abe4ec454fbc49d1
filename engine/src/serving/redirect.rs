//! `MDRequireHttps` (spec §2.5): redirects of plain http requests and the
//! HSTS header on https.

use crate::config::RequireHttps;

/// The HSTS header value (no directive changes it).
pub const HSTS_VALUE: &str = "max-age=15768000";

/// What to do with a request of a vhost whose MD requires https.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Nothing,
    /// Add `Strict-Transport-Security` unless already set.
    Hsts,
    /// Redirect with this status to this location.
    Redirect(u16, String),
}

/// Decides for one request. `host` is the server name for URLs (IPv6 in
/// brackets), `uri` the request path, `query`/`fragment` as parsed.
pub fn decide(
    mode: RequireHttps,
    is_https: bool,
    path: &str,
    get_or_head: bool,
    host: &str,
    query: Option<&str>,
    fragment: Option<&str>,
) -> Action {
    if mode == RequireHttps::Off || path.starts_with("/.well-known/") {
        return Action::Nothing;
    }
    if is_https {
        return if mode == RequireHttps::Permanent {
            Action::Hsts
        } else {
            Action::Nothing
        };
    }
    let status = match (mode, get_or_head) {
        (RequireHttps::Permanent, true) => 301,
        (RequireHttps::Permanent, false) => 308,
        (_, true) => 302,
        (_, false) => 307,
    };
    let mut url = format!("https://{host}{path}");
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    if let Some(f) = fragment {
        url.push('#');
        url.push_str(f);
    }
    Action::Redirect(status, url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        use RequireHttps::*;
        assert_eq!(
            decide(Off, false, "/", true, "a.org", None, None),
            Action::Nothing
        );
        assert_eq!(
            decide(
                Permanent,
                false,
                "/.well-known/acme-challenge/x",
                true,
                "a.org",
                None,
                None
            ),
            Action::Nothing
        );
        assert_eq!(
            decide(Permanent, true, "/", true, "a.org", None, None),
            Action::Hsts
        );
        assert_eq!(
            decide(Temporary, true, "/", true, "a.org", None, None),
            Action::Nothing
        );
        assert_eq!(
            decide(
                Permanent,
                false,
                "/p/q",
                true,
                "a.org",
                Some("x=1"),
                Some("f")
            ),
            Action::Redirect(301, "https://a.org/p/q?x=1#f".into())
        );
        assert_eq!(
            decide(Permanent, false, "/", false, "a.org", None, None),
            Action::Redirect(308, "https://a.org/".into())
        );
        assert_eq!(
            decide(Temporary, false, "/", true, "[::1]", None, None),
            Action::Redirect(302, "https://[::1]/".into())
        );
        assert_eq!(
            decide(Temporary, false, "/", false, "a.org", None, None),
            Action::Redirect(307, "https://a.org/".into())
        );
    }
}
