//! HTTP client on the system libcurl (spec §4.1): CA file, proxy, proxy CA
//! file, User-Agent, timeouts and a cap on response bodies.

use std::time::Duration;

/// Response body limit for ACME requests (1 MiB).
pub const ACME_BODY_LIMIT: usize = 1024 * 1024;

/// Initialises libcurl and OpenSSL once, in the parent, before any thread
/// exists (`curl_global_init` is not thread-safe).
pub fn global_init() {
    openssl::init();
    curl::init();
}

/// Settings of one client.
#[derive(Debug)]
pub struct Client {
    pub user_agent: String,
    /// `MDCACertificateFile`: PEM file to verify the server with.
    pub ca_file: Option<String>,
    /// `MDHttpProxy`.
    pub proxy: Option<String>,
    /// `MDHttpProxyCACertificateFile`.
    pub proxy_ca_file: Option<String>,
    /// Talk HTTP over this unix socket instead of TCP (tailscaled).
    pub unix_socket: Option<String>,
    /// Extra request headers (`Name: value`).
    pub extra_headers: Vec<String>,
    /// A client certificate and its key (PEM, read by the parent: the
    /// children, as httpd's `User`, cannot read a root-only key file).
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
    pub body_limit: usize,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Abort when slower than `low_speed_bytes` per second for `low_speed_time`.
    pub low_speed_bytes: u32,
    pub low_speed_time: Duration,
    /// One curl handle kept between requests: its connection cache keeps
    /// the connection to the CA open (one TLS handshake per run instead of
    /// one per request).
    handle: std::sync::Mutex<Option<curl::easy::Easy>>,
}

impl Clone for Client {
    fn clone(&self) -> Client {
        Client {
            user_agent: self.user_agent.clone(),
            ca_file: self.ca_file.clone(),
            proxy: self.proxy.clone(),
            proxy_ca_file: self.proxy_ca_file.clone(),
            unix_socket: self.unix_socket.clone(),
            extra_headers: self.extra_headers.clone(),
            client_cert: self.client_cert.clone(),
            body_limit: self.body_limit,
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            low_speed_bytes: self.low_speed_bytes,
            low_speed_time: self.low_speed_time,
            handle: std::sync::Mutex::new(None),
        }
    }
}

impl Client {
    pub fn new(user_agent: impl Into<String>) -> Client {
        Client {
            user_agent: user_agent.into(),
            ca_file: None,
            proxy: None,
            proxy_ca_file: None,
            unix_socket: None,
            extra_headers: Vec::new(),
            client_cert: None,
            body_limit: ACME_BODY_LIMIT,
            timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(30),
            low_speed_bytes: 10,
            low_speed_time: Duration::from_secs(30),
            handle: std::sync::Mutex::new(None),
        }
    }
}

/// A response: status, headers (name lower-cased) and body.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u32,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Media type without parameters, lower-cased.
    pub(crate) fn content_type(&self) -> Option<String> {
        self.header("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }
}

/// What kind of transport failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    Connect,
    Timeout,
    Tls,
    Other,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Could not connect, TLS failed, timed out, … (curl's message).
    Transport(TransportKind, String),
    /// The body exceeded the limit.
    TooLarge(usize),
}

fn transport(e: curl::Error) -> HttpError {
    let kind =
        if e.is_couldnt_connect() || e.is_couldnt_resolve_host() || e.is_couldnt_resolve_proxy() {
            TransportKind::Connect
        } else if e.is_operation_timedout() {
            TransportKind::Timeout
        } else if e.is_ssl_connect_error()
            || e.is_peer_failed_verification()
            || e.is_ssl_certproblem()
            || e.is_ssl_cacert()
        {
            TransportKind::Tls
        } else {
            TransportKind::Other
        };
    let mut msg = e.description().to_string();
    if let Some(extra) = e.extra_description() {
        msg = format!("{msg}: {extra}");
    }
    HttpError::Transport(kind, msg)
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Transport(_, m) => f.write_str(m),
            HttpError::TooLarge(n) => write!(f, "response body exceeds the limit of {n} bytes"),
        }
    }
}

impl Client {
    /// Sets what every request of this client has; the request headers.
    fn configure(
        &self,
        easy: &mut curl::easy::Easy,
        url: &str,
    ) -> Result<curl::easy::List, HttpError> {
        easy.url(url).map_err(transport)?;
        easy.useragent(&self.user_agent).map_err(transport)?;
        easy.timeout(self.timeout).map_err(transport)?;
        easy.connect_timeout(self.connect_timeout)
            .map_err(transport)?;
        easy.low_speed_limit(self.low_speed_bytes)
            .map_err(transport)?;
        easy.low_speed_time(self.low_speed_time)
            .map_err(transport)?;
        easy.signal(false).map_err(transport)?;
        easy.progress(true).map_err(transport)?;
        if let Some(ca) = &self.ca_file {
            easy.cainfo(ca).map_err(transport)?;
            let mut opts = curl::easy::SslOpt::new();
            opts.no_revoke(true);
            easy.ssl_options(&opts).map_err(transport)?;
        }
        match &self.proxy {
            Some(p) => easy.proxy(p).map_err(transport)?,
            // an explicit empty proxy: ignore http_proxy & co. of httpd's environment
            None => easy.proxy("").map_err(transport)?,
        }
        if let Some(pca) = &self.proxy_ca_file {
            easy.proxy_cainfo(pca).map_err(transport)?;
        }
        if let Some(sock) = &self.unix_socket {
            easy.unix_socket(sock).map_err(transport)?;
        }
        if let Some((cert, key)) = &self.client_cert {
            easy.ssl_cert_blob(cert).map_err(transport)?;
            easy.ssl_key_blob(key).map_err(transport)?;
        }
        let mut list = curl::easy::List::new();
        for h in &self.extra_headers {
            list.append(h).map_err(transport)?;
        }
        Ok(list)
    }

    /// A POST whose answer is a stream (etcd's watch): `on_data` gets the
    /// body as it arrives and ends the transfer by returning false (then
    /// `Ok`). The transfer also ends when the server closes it, on
    /// `timeout`, and when the process stops.
    pub(crate) fn stream(
        &self,
        url: &str,
        body: &[u8],
        on_data: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<u32, HttpError> {
        let mut easy = curl::easy::Easy::new();
        let mut list = self.configure(&mut easy, url)?;
        let t = transport;
        easy.post(true).map_err(t)?;
        easy.post_fields_copy(body).map_err(t)?;
        list.append("Content-Type: application/json").map_err(t)?;
        list.append("Expect:").map_err(t)?;
        easy.http_headers(list).map_err(t)?;
        let mut stopped = false;
        {
            let mut tr = easy.transfer();
            tr.write_function(|data| {
                if on_data(data) {
                    Ok(data.len())
                } else {
                    stopped = true;
                    Ok(0)
                }
            })
            .map_err(t)?;
            tr.progress_function(|_, _, _, _| !crate::base::shutdown::requested())
                .map_err(t)?;
            let res = tr.perform();
            drop(tr);
            if !stopped {
                res.map_err(t)?;
            }
        }
        easy.response_code().map_err(t)
    }

    /// Performs one request. `body` with a content type makes it a POST;
    /// `head` a HEAD request.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        body: Option<(&[u8], &str)>,
    ) -> Result<Response, HttpError> {
        let t = transport;
        // Reuse the handle (and its open connection); options are reset.
        let mut easy = self
            .handle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .map(|mut e| {
                e.reset();
                e
            })
            .unwrap_or_else(curl::easy::Easy::new);
        let mut list = self.configure(&mut easy, url)?;
        match method {
            "HEAD" => easy.nobody(true).map_err(t)?,
            "GET" => easy.get(true).map_err(t)?,
            "POST" => {
                let (data, ctype) = body.unwrap_or((b"", "application/octet-stream"));
                easy.post(true).map_err(t)?;
                easy.post_fields_copy(data).map_err(t)?;
                list.append(&format!("Content-Type: {ctype}")).map_err(t)?;
                list.append("Expect:").map_err(t)?;
            }
            other => easy.custom_request(other).map_err(t)?,
        }
        easy.http_headers(list).map_err(t)?;

        let mut resp = Response::default();
        let mut too_large = false;
        {
            let limit = self.body_limit;
            let mut tr = easy.transfer();
            tr.header_function(|line| {
                let line = String::from_utf8_lossy(line);
                let line = line.trim_end();
                if line.starts_with("HTTP/") {
                    // a new response (after a 100 or a redirect): start over
                    resp.headers.clear();
                } else if let Some((n, v)) = line.split_once(':') {
                    resp.headers
                        .push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
                true
            })
            .map_err(t)?;
            tr.write_function(|data| {
                if resp.body.len() + data.len() > limit {
                    too_large = true;
                    return Ok(0); // makes curl abort the transfer
                }
                resp.body.extend_from_slice(data);
                Ok(data.len())
            })
            .map_err(t)?;
            // A child that exits aborts its transfers (crate::base::shutdown).
            tr.progress_function(|_, _, _, _| !crate::base::shutdown::requested())
                .map_err(t)?;
            let res = tr.perform();
            drop(tr);
            if too_large {
                return Err(HttpError::TooLarge(limit));
            }
            res.map_err(t)?;
        }
        resp.status = easy.response_code().map_err(t)?;
        let new_connections = easy.num_connects().map_or(0, u64::from);
        TRAFFIC.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        TRAFFIC
            .1
            .fetch_add(new_connections, std::sync::atomic::Ordering::Relaxed);
        *self.handle.lock().unwrap_or_else(|e| e.into_inner()) = Some(easy);
        Ok(resp)
    }

    pub fn get(&self, url: &str) -> Result<Response, HttpError> {
        self.request("GET", url, None)
    }
}

/// Requests answered and connections opened for them in this process.
static TRAFFIC: (std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU64) = (
    std::sync::atomic::AtomicU64::new(0),
    std::sync::atomic::AtomicU64::new(0),
);

/// (requests answered, connections opened for them) by this process: how
/// well the clients reuse their connections (logged by the renewal job).
pub(crate) fn traffic() -> (u64, u64) {
    (
        TRAFFIC.0.load(std::sync::atomic::Ordering::Relaxed),
        TRAFFIC.1.load(std::sync::atomic::Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// Serves `n` connections with a canned response; returns the port and
    /// a handle yielding the requests it saw.
    fn serve(n: usize, response: Vec<u8>) -> (u16, std::thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..n {
                let (mut s, _) = l.accept().unwrap();
                let mut buf = vec![0u8; 65536];
                let mut got = 0;
                loop {
                    let k = s.read(&mut buf[got..]).unwrap();
                    got += k;
                    let text = String::from_utf8_lossy(&buf[..got]).to_string();
                    if let Some(i) = text.find("\r\n\r\n") {
                        let clen = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if got >= i + 4 + clen || k == 0 {
                            seen.push(text);
                            break;
                        }
                    }
                    if k == 0 {
                        break;
                    }
                }
                let _ = s.write_all(&response);
            }
            seen
        });
        (port, h)
    }

    #[test]
    fn get_and_post() {
        global_init();
        let (port, h) = serve(
            2,
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json; charset=utf-8\r\nReplay-Nonce: abc\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec(),
        );
        let c = Client::new("Apache/2.4 mod_md/2.6.10");
        let url = format!("http://127.0.0.1:{port}/dir");
        let before = traffic();
        let r = c.get(&url).unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.header("Replay-Nonce"), Some("abc"));
        assert_eq!(r.content_type().as_deref(), Some("application/json"));
        assert_eq!(r.body, b"{}");
        let r = c
            .request("POST", &url, Some((b"{\"a\":1}", "application/jose+json")))
            .unwrap();
        assert_eq!(r.status, 201);
        let seen = h.join().unwrap();
        assert!(seen[0].starts_with("GET /dir HTTP/1.1"));
        assert!(seen[0].contains("User-Agent: Apache/2.4 mod_md/2.6.10"));
        assert!(seen[1].starts_with("POST /dir"));
        assert!(seen[1].contains("Content-Type: application/jose+json"));
        assert!(seen[1].ends_with("{\"a\":1}"));
        // counted: two requests, two connections (the server closed the first)
        let after = traffic();
        assert!(after.0 >= before.0 + 2 && after.1 >= before.1 + 2);
    }

    #[test]
    fn body_limit_and_transport_errors() {
        global_init();
        let mut big =
            b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', 5000));
        let (port, h) = serve(1, big);
        let mut c = Client::new("t");
        c.body_limit = 1000;
        let e = c.get(&format!("http://127.0.0.1:{port}/")).unwrap_err();
        assert_eq!(e, HttpError::TooLarge(1000));
        h.join().unwrap();
        // nothing listens on a port we just released
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        match c.get(&format!("http://127.0.0.1:{port}/")) {
            Err(HttpError::Transport(kind, m)) => {
                assert_eq!(kind, TransportKind::Connect);
                assert!(!m.is_empty());
            }
            other => panic!("expected a transport error, got {other:?}"),
        }
    }
}
