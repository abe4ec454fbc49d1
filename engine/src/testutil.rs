//! What the unit tests share: a temporary directory that is removed when
//! the test ends (also when it fails).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory under the system's temp dir, unique per process and
/// call, removed with everything in it on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("md-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        TempDir(d)
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An MD of `domains` with default settings.
pub fn md(domains: &[&str]) -> crate::config::Md {
    let def = crate::config::MdDef::new(domains.iter().map(|s| s.to_string()).collect());
    crate::config::Md::from_def(&def, &crate::config::Settings::default(), None)
}

/// A server (virtual host) `name` on 127.0.0.1:443 with ServerAdmin
/// `admin`, as start-up sees it.
pub(crate) fn server(
    id: usize,
    name: &str,
    admin: Option<&str>,
) -> crate::generation::runtime::Server {
    crate::generation::runtime::Server {
        id,
        vhost: crate::config::vhost::VHost {
            name: name.into(),
            port: 443,
            aliases: Vec::new(),
            wild_aliases: Vec::new(),
            addrs: vec![("127.0.0.1".into(), 443)],
            is_base: false,
        },
        contact: None,
        admin: admin.map(str::to_string),
    }
}

/// A new store in a temporary directory (removed when the test ends).
pub(crate) fn tmpstore(tag: &str) -> (TempDir, crate::store::Store) {
    let d = TempDir::new(tag);
    let s = crate::store::Store::open(&d, None, &mut Vec::new()).expect("store");
    (d, s)
}

/// A one-member etcd (Debian's `etcd-server`) on free loopback ports with
/// its own data directory, stopped on drop.
pub struct EtcdServer {
    pub url: String,
    child: std::process::Child,
    _dir: TempDir,
}

impl EtcdServer {
    pub fn start(tag: &str) -> EtcdServer {
        EtcdServer::start_with(tag, None)
    }

    /// With TLS: `tls` holds `ca.pem`, `server.pem`, `server.key`; clients
    /// must present a certificate of that CA.
    pub fn start_with(tag: &str, tls: Option<&Path>) -> EtcdServer {
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port")
        };
        let (client, peer) = (free(), free());
        let dir = TempDir::new(&format!("etcd-{tag}"));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut cmd = std::process::Command::new("etcd");
        if let Some(t) = tls {
            cmd.arg("--cert-file")
                .arg(t.join("server.pem"))
                .arg("--key-file")
                .arg(t.join("server.key"))
                .arg("--trusted-ca-file")
                .arg(t.join("ca.pem"))
                .arg("--client-cert-auth");
        }
        let child = cmd
            .args(["--name", "n1", "--data-dir"])
            .arg(dir.join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("n1={peer_url}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("etcd (Debian's etcd-server; t/run-all.sh installs it)");
        let s = EtcdServer {
            url,
            child,
            _dir: dir,
        };
        let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < end {
            let up = std::net::TcpStream::connect(("127.0.0.1", client)).is_ok();
            if up {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("etcd did not start on {}", s.url);
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `pred` every 50 ms for at most `secs` seconds.
pub fn wait_until(secs: f64, mut pred: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs_f64(secs);
    loop {
        if pred() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
