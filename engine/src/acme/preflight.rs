//! Challenge pre-flight (issue 16, point 4): before the CA is asked to
//! validate an http-01 or tls-alpn-01 challenge, the renewal job asks its
//! own server the CA's question, through the listener that `MDPortMap`
//! names as the local port of public port 80 (resp. 443), with the name's
//! `Host` (resp. SNI). A setup that cannot answer (no listener there, a
//! port that speaks TLS where the CA speaks plain http, another handler or
//! a redirect that loses the path, a vhost that does not allow
//! `acme-tls/1`) is reported with the reason, and the CA is not asked: a
//! failed validation counts against the account's failed-validation limit.
//!
//! What is checked is this server, not the path from the internet to it
//! (NAT, firewalls, DNS): where the name resolves from here is reported
//! beside the result, for the admin to compare. `MDChallengePreflight off`
//! turns the check off.

use crate::base::challenge::ChallengeType;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_RESPONSE: usize = 64 * 1024;
const MAX_REDIRECTS: usize = 5;

/// Why a pre-flight failed; the text says what and what to correct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreflightError {
    /// The configuration gives the CA no way in: the public port is not
    /// mapped (`MDPortMap`) or httpd does not listen on its local port.
    NotReachable(String),
    /// httpd's own listener could not be talked to (connect, TLS, I/O, not
    /// HTTP).
    Connection(String),
    /// httpd answered, but not the challenge (another handler, a 404, a
    /// redirect that loses the path, another certificate).
    WrongAnswer(String),
}

impl std::fmt::Display for PreflightError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PreflightError::NotReachable(m)
            | PreflightError::Connection(m)
            | PreflightError::WrongAnswer(m) => f.write_str(m),
        }
    }
}

impl PreflightError {
    /// The same kind with `prefix` before its text.
    fn within(self, prefix: impl std::fmt::Display) -> PreflightError {
        match self {
            PreflightError::NotReachable(m) => PreflightError::NotReachable(format!("{prefix}{m}")),
            PreflightError::Connection(m) => PreflightError::Connection(format!("{prefix}{m}")),
            PreflightError::WrongAnswer(m) => PreflightError::WrongAnswer(format!("{prefix}{m}")),
        }
    }
}

use PreflightError::{Connection, NotReachable, WrongAnswer};

/// A failure to talk to a listener.
fn io(e: impl std::fmt::Display) -> PreflightError {
    Connection(e.to_string())
}

/// What the check needs to know about httpd.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Env {
    /// Local ports of the public ports 80 and 443 (`MDPortMap`; None: `-`).
    pub local_80: Option<u16>,
    pub local_443: Option<u16>,
    /// Addresses httpd listens on (all `Listen` sockets for http/https).
    pub listeners: Vec<SocketAddr>,
}

impl Env {
    /// Where to connect for a local port: every listener on it, with a
    /// wildcard address replaced by the loopback one.
    pub(crate) fn endpoints(&self, port: u16) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = Vec::new();
        for l in self.listeners.iter().filter(|l| l.port() == port) {
            let ip = match l.ip() {
                IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                ip => ip,
            };
            let a = SocketAddr::new(ip, port);
            if !out.contains(&a) {
                out.push(a);
            }
        }
        // IPv4 first: loopback over IPv4 is the common case
        out.sort_by_key(|a| !a.is_ipv4());
        out
    }
}

/// Checks the challenge `ctype` for identifier `ident`; Ok with what was
/// checked, or Err with the reason. dns-01 is not checked (the CA asks the
/// DNS, which this server does not answer).
pub fn check(
    env: &Env,
    ctype: &ChallengeType,
    ident: &str,
    token: &str,
    key_authz: &str,
) -> Result<String, PreflightError> {
    match ctype {
        ChallengeType::Http01 => http01(env, ident, token, key_authz),
        ChallengeType::TlsAlpn01 => tls_alpn01(env, ident, key_authz),
        _ => Ok(String::new()),
    }
}

fn local(env: &Env, public: u16) -> Result<(u16, Vec<SocketAddr>), PreflightError> {
    let (port, scheme) = match public {
        80 => (env.local_80, "http"),
        _ => (env.local_443, "https"),
    };
    let port = port.ok_or_else(|| {
        NotReachable(format!(
            "MDPortMap says the server is not reachable on public port {public} ({scheme}:-)"
        ))
    })?;
    let eps = env.endpoints(port);
    if eps.is_empty() {
        return Err(NotReachable(format!(
            "httpd does not listen on port {port}, the local port of public port {public} \
             (MDPortMap {scheme}:{port}); add 'Listen {port}' or correct MDPortMap"
        )));
    }
    Ok((port, eps))
}

/// One answer to a GET: status, `Location`, body.
struct Answer {
    status: u16,
    location: Option<String>,
    body: Vec<u8>,
}

fn http01(env: &Env, ident: &str, token: &str, key_authz: &str) -> Result<String, PreflightError> {
    let path = format!("/.well-known/acme-challenge/{token}");
    let (port, eps) = local(env, 80)?;
    let mut url = format!("http://{ident}{path}");
    let mut tls = false;
    for _ in 0..=MAX_REDIRECTS {
        let (ep, answer) = if tls {
            let (_, eps) = local(env, 443)
                .map_err(|e| e.within(format!("{url} follows a redirect to https, but ")))?;
            get_any(&eps, ident, &path, true)
        } else {
            get_any(&eps, ident, &path, false)
        }
        .map_err(|e| {
            e.within(format!(
                "GET {url} through port {port} (MDPortMap http:{port}): "
            ))
        })?;
        let via = format!("GET {url} through {ep}");
        match answer.status {
            200 if answer.body.trim_ascii() == key_authz.as_bytes() => {
                return Ok(format!("{via} answers the challenge"))
            }
            200 => {
                return Err(WrongAnswer(format!(
                    "{via} answers 200 with other content ({} bytes, '{}'): another handler \
                     serves /.well-known/acme-challenge/ for {ident}",
                    answer.body.len(),
                    excerpt(&answer.body)
                )))
            }
            301 | 302 | 303 | 307 | 308 => {
                let Some(loc) = answer.location else {
                    return Err(WrongAnswer(format!(
                        "{via} redirects ({}) without a Location",
                        answer.status
                    )));
                };
                let (scheme, host, lpath) = split_url(&loc, tls, ident);
                if lpath != path {
                    return Err(WrongAnswer(format!(
                        "{via} redirects to {loc}, which loses the path {path} the CA asks for"
                    )));
                }
                if !host.eq_ignore_ascii_case(ident) {
                    // the CA follows it to another server, which this one
                    // cannot check
                    return Ok(format!("{via} redirects to {loc} (not checked further)"));
                }
                tls = scheme == "https";
                url = loc;
            }
            400 if String::from_utf8_lossy(&answer.body).contains("plain HTTP") => {
                return Err(WrongAnswer(format!(
                    "{via}: port {port} speaks TLS (only SSL virtual hosts on it); the CA \
                     validates http-01 with plain http on public port 80"
                )))
            }
            404 => {
                return Err(WrongAnswer(format!(
                    "{via} answers 404: the request does not reach mod_md's challenge answer \
                     for {ident} there"
                )))
            }
            s => {
                return Err(WrongAnswer(format!(
                    "{via} answers {s} ('{}')",
                    excerpt(&answer.body)
                )))
            }
        }
    }
    Err(WrongAnswer(format!(
        "{url}: more than {MAX_REDIRECTS} redirects"
    )))
}

fn excerpt(body: &[u8]) -> String {
    let t = String::from_utf8_lossy(body);
    let t: String = t.split_whitespace().collect::<Vec<_>>().join(" ");
    t.chars().take(80).collect()
}

/// (scheme, host, path) of a `Location`, relative ones taken as on
/// `host` with the current scheme.
fn split_url(loc: &str, tls: bool, host: &str) -> (String, String, String) {
    let cur = if tls { "https" } else { "http" };
    let Some((scheme, rest)) = loc.split_once("://") else {
        let p = loc.split(['?', '#']).next().unwrap_or("");
        return (cur.into(), host.into(), p.into());
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let u = format!("{scheme}://{authority}/");
    let h = crate::base::uri::host_of(&u)
        .unwrap_or(authority)
        .to_string();
    let path = path.split(['?', '#']).next().unwrap_or("").to_string();
    (scheme.to_ascii_lowercase(), h, path)
}

/// GET through the first endpoint that answers; the error of the last one
/// otherwise.
fn get_any(
    eps: &[SocketAddr],
    host: &str,
    path: &str,
    tls: bool,
) -> Result<(SocketAddr, Answer), PreflightError> {
    let mut err = Connection(String::new());
    for ep in eps {
        match get(*ep, host, path, tls) {
            Ok(a) => return Ok((*ep, a)),
            Err(e) => err = e.within(format!("{ep}: ")),
        }
    }
    Err(err)
}

fn connect(ep: SocketAddr) -> Result<TcpStream, PreflightError> {
    let s = TcpStream::connect_timeout(&ep, CONNECT_TIMEOUT).map_err(io)?;
    s.set_read_timeout(Some(IO_TIMEOUT)).ok();
    s.set_write_timeout(Some(IO_TIMEOUT)).ok();
    Ok(s)
}

fn get(ep: SocketAddr, host: &str, path: &str, tls: bool) -> Result<Answer, PreflightError> {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mod_md pre-flight\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    let stream = connect(ep)?;
    let raw = if tls {
        let mut s = tls_connect(stream, host, None)?;
        exchange(&mut s, req.as_bytes())?
    } else {
        let mut s = stream;
        exchange(&mut s, req.as_bytes())?
    };
    parse(&raw)
}

fn exchange<S: Read + Write>(s: &mut S, req: &[u8]) -> Result<Vec<u8>, PreflightError> {
    s.write_all(req).map_err(io)?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    while raw.len() < MAX_RESPONSE {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            // a TLS peer that closes without close_notify, or a reset
            // after the answer: what came is the answer
            Err(_) if !raw.is_empty() => break,
            Err(e) => return Err(io(e)),
        }
    }
    if raw.is_empty() {
        return Err(io("the connection closed without an answer"));
    }
    Ok(raw)
}

fn parse(raw: &[u8]) -> Result<Answer, PreflightError> {
    if raw.first() == Some(&0x15) || raw.first() == Some(&0x16) {
        return Err(io("answered with TLS where plain http was expected"));
    }
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| io("the answer is not HTTP (no end of headers)"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/")
        .and_then(|r| r.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| {
            io(format!(
                "the answer is not HTTP ('{}')",
                excerpt(status_line.as_bytes())
            ))
        })?;
    let mut location = None;
    let mut chunked = false;
    let mut length = None;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "location" => location = Some(v.to_string()),
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            "content-length" => length = v.parse::<usize>().ok(),
            _ => {}
        }
    }
    let mut body = raw[end + 4..].to_vec();
    if chunked {
        body = dechunk(&body);
    } else if let Some(n) = length {
        body.truncate(n);
    }
    Ok(Answer {
        status,
        location,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = data.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&data[..i]);
        let size = size.split(';').next().unwrap_or("").trim();
        let Ok(n) = usize::from_str_radix(size, 16) else {
            break;
        };
        data = &data[i + 2..];
        if n == 0 || data.len() < n {
            out.extend_from_slice(&data[..n.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..n]);
        data = data.get(n + 2..).unwrap_or(&[]);
    }
    out
}

/// A TLS connection that does not verify the server (its certificate is
/// what is checked), with SNI `sni` and, when given, the ALPN protocols.
fn tls_connect(
    stream: TcpStream,
    sni: &str,
    alpn: Option<&[u8]>,
) -> Result<openssl::ssl::SslStream<TcpStream>, PreflightError> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(io)?;
    b.set_verify(SslVerifyMode::NONE);
    if let Some(p) = alpn {
        b.set_alpn_protos(p).map_err(io)?;
    }
    let mut cfg = b.build().configure().map_err(io)?;
    cfg.set_verify_hostname(false);
    let sni_ok = sni.parse::<IpAddr>().is_err();
    cfg.set_use_server_name_indication(sni_ok);
    cfg.connect(sni, stream)
        .map_err(|e| io(format!("TLS handshake failed: {e}")))
}

fn tls_alpn01(env: &Env, ident: &str, key_authz: &str) -> Result<String, PreflightError> {
    let (port, eps) = local(env, 443)?;
    // RFC 8738 §6: an IP address is named by its reverse DNS name
    let sni = crate::base::crypto::reverse_dns_name(ident).unwrap_or_else(|| ident.to_string());
    let digest = openssl::sha::sha256(key_authz.as_bytes());
    let mut err = Connection(String::new());
    for ep in eps {
        let via =
            format!("TLS to {ep} (MDPortMap https:{port}) with SNI {sni} and ALPN acme-tls/1");
        let s = match connect(ep).and_then(|s| tls_connect(s, &sni, Some(b"\x0aacme-tls/1"))) {
            Ok(s) => s,
            Err(e) => {
                err = e.within(format!("{via}: "));
                continue;
            }
        };
        let alpn = s.ssl().selected_alpn_protocol().map(|p| p.to_vec());
        if alpn.as_deref() != Some(b"acme-tls/1") {
            return Err(WrongAnswer(format!(
                "{via}: the server does not switch to acme-tls/1 for {ident} (the virtual host \
                 of {ident} on that port must allow it: Protocols h2 http/1.1 acme-tls/1)"
            )));
        }
        let ok = s
            .ssl()
            .peer_certificate()
            .and_then(|c| c.to_der().ok())
            .is_some_and(|der| der.windows(digest.len()).any(|w| w == digest));
        return if ok {
            Ok(format!("{via} answers the challenge"))
        } else {
            Err(WrongAnswer(format!(
                "{via}: the certificate presented is not the challenge's (another server or \
                 module answers acme-tls/1 for {ident})"
            )))
        };
    }
    Err(err)
}

/// Where `name` resolves from this host, for the report (at most 3 s).
pub(crate) fn resolution(name: &str) -> String {
    if name.parse::<IpAddr>().is_ok() {
        return String::new();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let n = name.to_string();
    let spawned = std::thread::Builder::new()
        .name("md-preflight-dns".into())
        .spawn(move || {
            let r = (n.as_str(), 80).to_socket_addrs().map(|a| {
                let mut ips: Vec<String> = a.map(|a| a.ip().to_string()).collect();
                ips.dedup();
                ips
            });
            let _ = tx.send(r);
        });
    if spawned.is_err() {
        return String::new();
    }
    match rx.recv_timeout(Duration::from_secs(3)) {
        Ok(Ok(ips)) if !ips.is_empty() => format!("{name} resolves to {} here", ips.join(", ")),
        Ok(Ok(_)) | Ok(Err(_)) => format!("{name} does not resolve here"),
        Err(_) => format!("{name} did not resolve here within 3 s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve(answer: &'static [u8]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().take(MAX_REDIRECTS + 2) {
                let mut s = s.unwrap();
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf);
                let _ = s.write_all(answer);
            }
        });
        a
    }

    fn env(a: SocketAddr) -> Env {
        Env {
            local_80: Some(a.port()),
            local_443: None,
            listeners: vec![a],
        }
    }

    #[test]
    fn wildcards_become_loopback() {
        let e = Env {
            local_80: Some(80),
            local_443: Some(443),
            listeners: vec![
                "0.0.0.0:80".parse().unwrap(),
                "[::]:80".parse().unwrap(),
                "192.0.2.1:443".parse().unwrap(),
            ],
        };
        assert_eq!(
            e.endpoints(80),
            vec![
                "127.0.0.1:80".parse::<SocketAddr>().unwrap(),
                "[::1]:80".parse().unwrap()
            ]
        );
        assert_eq!(e.endpoints(443), vec!["192.0.2.1:443".parse().unwrap()]);
        assert!(e.endpoints(8080).is_empty());
    }

    #[test]
    fn http01_answers() {
        let a = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\ntok.abc");
        assert!(check(&env(a), &ChallengeType::Http01, "a.org", "tok", "tok.abc").is_ok());
        let a = serve(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntok\r\n4\r\n.abc\r\n0\r\n\r\n");
        assert!(check(&env(a), &ChallengeType::Http01, "a.org", "tok", "tok.abc").is_ok());
        let a = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        let e = check(&env(a), &ChallengeType::Http01, "a.org", "tok", "tok.abc").unwrap_err();
        assert!(
            matches!(&e, WrongAnswer(m) if m.contains("other content") && m.contains("hello")),
            "{e}"
        );
        let a = serve(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        assert!(check(&env(a), &ChallengeType::Http01, "a.org", "tok", "x")
            .unwrap_err()
            .to_string()
            .contains("answers 404"));
        let a = serve(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 60\r\n\r\nYou're speaking plain HTTP to an SSL-enabled server port.\n");
        assert!(check(&env(a), &ChallengeType::Http01, "a.org", "tok", "x")
            .unwrap_err()
            .to_string()
            .contains("speaks TLS"));
        let a = serve(b"\x15\x03\x01\x00\x02\x02\x46");
        assert!(check(&env(a), &ChallengeType::Http01, "a.org", "tok", "x")
            .unwrap_err()
            .to_string()
            .contains("TLS where plain http"));
        let a = serve(b"\x15\x03\x01\x00\x02\x02\x46");
        assert!(matches!(
            check(&env(a), &ChallengeType::Http01, "a.org", "tok", "x"),
            Err(Connection(_))
        ));
    }

    #[test]
    fn redirects_that_lose_the_path_fail() {
        let a =
            serve(b"HTTP/1.1 301 Moved\r\nLocation: https://a.org/\r\nContent-Length: 0\r\n\r\n");
        let e = check(&env(a), &ChallengeType::Http01, "a.org", "tok", "x").unwrap_err();
        assert!(
            e.to_string()
                .contains("loses the path /.well-known/acme-challenge/tok"),
            "{e}"
        );
        let a = serve(
            b"HTTP/1.1 302 Found\r\nLocation: http://b.org/.well-known/acme-challenge/tok\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(check(&env(a), &ChallengeType::Http01, "a.org", "tok", "x")
            .unwrap()
            .contains("not checked further"));
        let a = serve(
            b"HTTP/1.1 302 Found\r\nLocation: /.well-known/acme-challenge/tok\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(check(&env(a), &ChallengeType::Http01, "a.org", "tok", "x")
            .unwrap_err()
            .to_string()
            .contains("more than"));
    }

    #[test]
    fn missing_listener_and_refused_connection() {
        let e = Env {
            local_80: Some(8123),
            local_443: None,
            listeners: vec!["127.0.0.1:8124".parse().unwrap()],
        };
        let err = check(&e, &ChallengeType::Http01, "a.org", "t", "x").unwrap_err();
        assert!(
            matches!(&err, NotReachable(m) if m.contains("does not listen on port 8123")),
            "{err}"
        );
        assert!(check(&e, &ChallengeType::TlsAlpn01, "a.org", "t", "x")
            .unwrap_err()
            .to_string()
            .contains("https:-"));
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        drop(l);
        assert!(matches!(
            check(&env(a), &ChallengeType::Http01, "a.org", "t", "x"),
            Err(Connection(_))
        ));
        assert_eq!(
            check(&env(a), &ChallengeType::Dns01, "a.org", "t", "x"),
            Ok(String::new())
        );
    }
}
