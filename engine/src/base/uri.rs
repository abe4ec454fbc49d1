//! URI checks used by directives (`MDCertificateAuthority`, `MDHttpProxy`),
//! with the C module's error texts.

/// The parts of an absolute URI that the checks look at.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Uri<'a> {
    pub scheme: Option<&'a str>,
    pub hostname: Option<&'a str>,
    pub port_str: Option<&'a str>,
    pub port: u32,
}

fn is_scheme_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'-' || c == b'.'
}

/// The URI cannot be parsed at all (APR: "not an uri").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAnUri;

/// A small `apr_uri_parse`: enough to find scheme, host and port. Errors
/// where APR's parser fails (a non-numeric port).
pub fn parse(uri: &str) -> Result<Uri<'_>, NotAnUri> {
    let mut u = Uri::default();
    let b = uri.as_bytes();
    let mut i = 0;
    while i < b.len() && is_scheme_char(b[i]) {
        i += 1;
    }
    let rest = if i > 0 && i < b.len() && b[i] == b':' {
        u.scheme = Some(&uri[..i]);
        &uri[i + 1..]
    } else {
        uri
    };
    if let Some(auth) = rest.strip_prefix("//") {
        let end = auth.find(['/', '?', '#']).unwrap_or(auth.len());
        let mut hostinfo = &auth[..end];
        if let Some(at) = hostinfo.rfind('@') {
            hostinfo = &hostinfo[at + 1..];
        }
        let (host, port) = if let Some(v6) = hostinfo.strip_prefix('[') {
            let close = v6.find(']').ok_or(NotAnUri)?;
            let after = &v6[close + 1..];
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(NotAnUri),
            };
            (&v6[..close], port)
        } else {
            match hostinfo.rfind(':') {
                Some(c) => (&hostinfo[..c], Some(&hostinfo[c + 1..])),
                None => (hostinfo, None),
            }
        };
        u.hostname = Some(host);
        if let Some(p) = port {
            if !p.is_empty() {
                u.port_str = Some(p);
                u.port = u32::from(port_as_apr_parses(p).ok_or(NotAnUri)?);
            }
        }
    }
    Ok(u)
}

/// The port as `apr_uri_parse` computes it: `strtol` over the whole string
/// (blanks, a sign; saturating at the limits of a `long`), then truncated
/// to `apr_port_t`. None when characters follow the number.
fn port_as_apr_parses(p: &str) -> Option<u16> {
    let t = p.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let v: i64 = match digits.parse::<i64>() {
        Ok(v) if neg => -v,
        Ok(v) => v,
        Err(_) if neg => i64::MIN,
        Err(_) => i64::MAX,
    };
    Some(v as u16)
}

/// `md_dns_is_name` without the FQDN requirement: ASCII letters, digits,
/// `-` and `.`, no empty label.
pub(crate) fn is_dns_name(name: &str) -> bool {
    let mut last = 0u8;
    for c in name.bytes() {
        match c {
            b'.' if last == b'.' => return false,
            b'.' | b'-' => {}
            c if c.is_ascii_alphanumeric() => {}
            _ => return false,
        }
        last = c;
    }
    true
}

fn is_hostname(h: &str) -> bool {
    is_dns_name(h) || h.parse::<std::net::Ipv6Addr>().is_ok()
}

fn check(uri: &str) -> Result<Uri<'_>, &'static str> {
    let mut err = None;
    let parsed = parse(uri);
    match &parsed {
        Err(NotAnUri) => err = Some("not an uri"),
        Ok(u) => {
            if let Some(scheme) = u.scheme {
                if scheme.len() + 1 >= uri.len() {
                    err = Some("missing uri identifier");
                } else if scheme.starts_with("http") {
                    match u.hostname {
                        None => err = Some("missing hostname"),
                        Some(h) if !is_hostname(h) => err = Some("invalid hostname"),
                        _ => {}
                    }
                    if let Some(p) = u.port_str {
                        if u.port == 0
                            || u.port > 65353
                            || !p.starts_with(|c: char| c.is_ascii_digit())
                        {
                            err = Some("invalid port");
                        }
                    }
                } else if scheme == "mailto" {
                    match uri.find('@') {
                        None => err = Some("missing @"),
                        Some(at) => {
                            if uri[at + 1..].contains('@') {
                                err = Some("duplicate @");
                            } else if at == scheme.len() + 1 {
                                err = Some("missing local part");
                            } else if at == uri.len() - 1 {
                                err = Some("missing hostname");
                            } else if uri.contains("..") {
                                err = Some("double period");
                            }
                        }
                    }
                }
            }
        }
    }
    if uri.contains([' ', '\t']) {
        err = Some("whitespace in uri");
    }
    match err {
        Some(e) => Err(e),
        None => parsed.map_err(|_| "not an uri"),
    }
}

/// `md_util_abs_uri_check`: an absolute URI of any scheme.
pub(crate) fn check_absolute(uri: &str) -> Result<(), &'static str> {
    let u = check(uri)?;
    if u.scheme.is_none() {
        return Err("missing uri scheme");
    }
    Ok(())
}

/// `md_util_abs_http_uri_check`: an absolute `http`/`https` URI.
pub fn check_absolute_http(uri: &str) -> Result<(), &'static str> {
    let u = check(uri)?;
    match u.scheme {
        None => Err("missing uri scheme"),
        Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https") => Ok(()),
        Some(_) => Err("uri scheme must be http or https"),
    }
}

/// Host part of a URL, for account ids and status output.
pub(crate) fn host_of(url: &str) -> Option<&str> {
    parse(url)
        .ok()
        .and_then(|u| u.hostname)
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        assert_eq!(check_absolute("foo"), Err("missing uri scheme"));
        assert_eq!(check_absolute("ftp:"), Err("missing uri identifier"));
        assert_eq!(check_absolute("mailto:x"), Err("missing @"));
        assert_eq!(check_absolute("mailto:a@b@c"), Err("duplicate @"));
        assert_eq!(check_absolute("http://a..b/"), Err("invalid hostname"));
        assert_eq!(check_absolute("https://127.0.0.1:14000/dir"), Ok(()));
        assert_eq!(check_absolute("https://[::1]:14000/dir"), Ok(()));
        assert_eq!(check_absolute("file://localhost/var/run/x.sock"), Ok(()));
        assert_eq!(
            check_absolute_http("ftp://x"),
            Err("uri scheme must be http or https")
        );
        assert_eq!(check_absolute_http("http://a_b"), Err("invalid hostname"));
        assert_eq!(check_absolute_http("http://a:0"), Err("invalid port"));
        assert_eq!(check_absolute_http("http://a:x"), Err("not an uri"));
        // APR's strtol and apr_port_t truncation, then the C module's checks
        assert_eq!(check_absolute_http("https://a:-443"), Err("invalid port"));
        assert_eq!(check_absolute_http("https://a:+443"), Err("invalid port"));
        assert_eq!(check_absolute_http("https://a:443x"), Err("not an uri"));
        assert_eq!(check_absolute_http("http://a:99999"), Ok(()));
        assert_eq!(check_absolute_http("http://a:65536"), Err("invalid port"));
        assert_eq!(check_absolute_http("http://a b"), Err("whitespace in uri"));
        assert_eq!(check_absolute_http("http://"), Ok(()));
        assert_eq!(
            host_of("https://acme-v02.api.letsencrypt.org/directory"),
            Some("acme-v02.api.letsencrypt.org")
        );
    }
}
